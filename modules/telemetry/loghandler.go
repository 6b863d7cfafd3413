package telemetry

import (
	"context"
	"log/slog"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/trace"

	"github.com/meshkit/meshkit/internal/requestid"
)

// LogHandler is an slog.Handler that adds the request's identity to every
// record logged with a context (log.InfoContext(ctx, ...), log.LogAttrs(ctx,
// ...)) before handing it to the handler it wraps:
//
//   - trace_id and span_id, when the context holds a valid span context (the
//     telemetry stage puts the server span in every request's context);
//   - request_id, from the *gin.Context, or from the request's context, where
//     the telemetry stage puts it (requestid.NewContext).
//
// A record logged without a context (log.Info) is passed on unchanged. In a
// logger made with WithGroup, the added attributes are qualified by the group,
// like the record's own.
type LogHandler struct {
	next slog.Handler
}

var _ slog.Handler = (*LogHandler)(nil)

// NewLogHandler wraps next. [Module]'s logger is made with it.
func NewLogHandler(next slog.Handler) *LogHandler {
	return &LogHandler{next: next}
}

// Enabled reports whether the wrapped handler handles records at level.
func (h *LogHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

// Handle adds the IDs ctx has to r and passes it on.
func (h *LogHandler) Handle(ctx context.Context, r slog.Record) error {
	if ctx == nil {
		return h.next.Handle(ctx, r)
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(
			slog.String("trace_id", sc.TraceID().String()),
			slog.String("span_id", sc.SpanID().String()))
	}
	id := requestid.FromContext(ctx)
	if c, ok := ctx.(*gin.Context); ok && id == "" && c.Request != nil {
		id = requestid.From(c)
	}
	if id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.next.Handle(ctx, r)
}

// WithAttrs returns a LogHandler wrapping next.WithAttrs(attrs).
func (h *LogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &LogHandler{next: h.next.WithAttrs(attrs)}
}

// WithGroup returns a LogHandler wrapping next.WithGroup(name).
func (h *LogHandler) WithGroup(name string) slog.Handler {
	return &LogHandler{next: h.next.WithGroup(name)}
}
