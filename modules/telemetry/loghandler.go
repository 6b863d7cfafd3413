package telemetry

import (
	"context"
	"log/slog"
	"slices"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/trace"

	"github.com/meshkit/meshkit/internal/requestid"
)

// The keys [LogHandler] adds, always at the top level of a record.
const (
	logKeyTraceID   = "trace_id"
	logKeySpanID    = "span_id"
	logKeyRequestID = "request_id"
)

// LogHandler is an slog.Handler that adds the request's identity to every
// record logged with a context (log.InfoContext(ctx, ...), log.LogAttrs(ctx,
// ...)) before handing it to the handler it wraps, whatever that handler is:
//
//   - trace_id and span_id, when the context holds a valid span context (the
//     telemetry stage puts the server span in every request's context);
//   - request_id, from the *gin.Context, or from the request's context, where
//     the telemetry stage puts it (requestid.NewContext).
//
// A record logged without a context (log.Info) is passed on unchanged. The
// added keys are at the top level of the record, as the OpenTelemetry log
// data model has trace and span IDs, also in a logger made with WithGroup;
// a key the record or the logger (With) already has at the top level is not
// added again, so that every line has unique keys.
type LogHandler struct {
	// next is the wrapped handler with the attributes added before the
	// first group; grouped is next with the groups and the attributes after
	// them, which nested lists for Handle to rebuild when it adds IDs.
	next, grouped slog.Handler
	nested        []groupOrAttrs
	// has says which of the added keys next already has (With).
	has idKeys
}

// groupOrAttrs is a WithGroup (group set) or a WithAttrs call.
type groupOrAttrs struct {
	group string
	attrs []slog.Attr
}

// idKeys is a set of the keys LogHandler adds.
type idKeys uint8

const (
	hasTraceID idKeys = 1 << iota
	hasSpanID
	hasRequestID
)

// idKeyOf is key's bit, 0 for another key.
func idKeyOf(key string) idKeys {
	switch key {
	case logKeyTraceID:
		return hasTraceID
	case logKeySpanID:
		return hasSpanID
	case logKeyRequestID:
		return hasRequestID
	}
	return 0
}

var _ slog.Handler = (*LogHandler)(nil)

// NewLogHandler wraps next. [Module]'s logger is made with it.
func NewLogHandler(next slog.Handler) *LogHandler {
	return &LogHandler{next: next, grouped: next}
}

// Enabled reports whether the wrapped handler handles records at level.
func (h *LogHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.grouped.Enabled(ctx, level)
}

// Handle adds the IDs ctx has to r and passes it on.
func (h *LogHandler) Handle(ctx context.Context, r slog.Record) error {
	if ctx == nil {
		return h.grouped.Handle(ctx, r)
	}
	sc := trace.SpanContextFromContext(ctx)
	id := requestid.FromContext(ctx)
	if c, ok := ctx.(*gin.Context); ok && id == "" && c.Request != nil {
		id = requestid.From(c)
	}
	if !sc.IsValid() && id == "" {
		return h.grouped.Handle(ctx, r)
	}
	has := h.has
	if len(h.nested) == 0 { // the record's own attributes are at the top level
		r.Attrs(func(a slog.Attr) bool {
			has |= idKeyOf(a.Key)
			return true
		})
	}
	var ids [3]slog.Attr
	n := 0
	if sc.IsValid() && has&hasTraceID == 0 {
		ids[n] = slog.String(logKeyTraceID, sc.TraceID().String())
		n++
	}
	if sc.IsValid() && has&hasSpanID == 0 {
		ids[n] = slog.String(logKeySpanID, sc.SpanID().String())
		n++
	}
	if id != "" && has&hasRequestID == 0 {
		ids[n] = slog.String(logKeyRequestID, id)
		n++
	}
	switch {
	case n == 0:
		return h.grouped.Handle(ctx, r)
	case len(h.nested) == 0:
		r.AddAttrs(ids[:n]...)
		return h.next.Handle(ctx, r)
	}
	// In a group: the record's attributes and the logger's since the first
	// group go inside the groups, the IDs beside them at the top level.
	var inner []slog.Attr
	r.Attrs(func(a slog.Attr) bool {
		inner = append(inner, a)
		return true
	})
	for i := len(h.nested) - 1; i >= 0; i-- {
		if g := h.nested[i]; g.group != "" {
			inner = []slog.Attr{{Key: g.group, Value: slog.GroupValue(inner...)}}
		} else {
			inner = append(slices.Clip(g.attrs), inner...)
		}
	}
	top := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	top.AddAttrs(inner...)
	top.AddAttrs(ids[:n]...)
	return h.next.Handle(ctx, top)
}

// WithAttrs returns a LogHandler whose records have attrs too.
func (h *LogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	h2 := *h
	h2.grouped = h.grouped.WithAttrs(attrs)
	if len(h.nested) > 0 {
		h2.nested = append(slices.Clip(h.nested), groupOrAttrs{attrs: slices.Clone(attrs)})
		return &h2
	}
	h2.next = h2.grouped
	for _, a := range attrs {
		h2.has |= idKeyOf(a.Key)
	}
	return &h2
}

// WithGroup returns a LogHandler whose records' attributes, and those of
// later WithAttrs calls, are in group name; the IDs it adds stay at the top
// level.
func (h *LogHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.grouped = h.grouped.WithGroup(name)
	h2.nested = append(slices.Clip(h.nested), groupOrAttrs{group: name})
	return &h2
}
