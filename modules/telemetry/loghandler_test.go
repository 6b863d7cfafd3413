package telemetry_test

import (
	"context"
	"log/slog"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/meshkit/meshkit/internal/logtest"
	"github.com/meshkit/meshkit/internal/requestid"
	"github.com/meshkit/meshkit/modules/telemetry"
)

// requestContext is a context with a span and a request ID, as a request's.
func requestContext(t *testing.T) (ctx context.Context, traceID, spanID, requestID string) {
	t.Helper()
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0xab, 1}, SpanID: trace.SpanID{0xcd, 2}, TraceFlags: trace.FlagsSampled,
	})
	ctx = requestid.NewContext(trace.ContextWithSpanContext(t.Context(), sc), "req-1")
	return ctx, sc.TraceID().String(), sc.SpanID().String(), "req-1"
}

// In a logger made with WithGroup, the IDs stay at the top level, where the
// OpenTelemetry log data model puts trace and span IDs, while the record's
// and the logger's own attributes go in the groups; every line has unique
// keys, whatever the inner handler (slog's JSON and text handlers here).
func TestLogHandlerKeepsTheIDsAtTheTopLevelOfGroups(t *testing.T) {
	ctx, traceID, spanID, requestID := requestContext(t)
	var buf logtest.Buffer
	base := slog.New(telemetry.NewLogHandler(slog.NewJSONHandler(&buf, nil)))

	base.With("app", "x").WithGroup("db").With("pool", "main").WithGroup("call").InfoContext(ctx, "query", "rows", 3)
	base.WithGroup("empty").InfoContext(ctx, "nothing in the group")
	base.WithGroup("g").Info("no context")

	recs := buf.Records(t) // strict: no duplicate keys
	if len(recs) != 3 {
		t.Fatalf("%d records, want 3:\n%s", len(recs), buf.String())
	}
	for i, rec := range recs[:2] {
		if rec["trace_id"] != traceID || rec["span_id"] != spanID || rec["request_id"] != requestID {
			t.Errorf("record %d %v: want trace_id, span_id and request_id at the top level", i, rec)
		}
	}
	db, _ := recs[0]["db"].(map[string]any)
	call, _ := db["call"].(map[string]any)
	if recs[0]["app"] != "x" || db["pool"] != "main" || call["rows"] != float64(3) || len(call) != 1 {
		t.Errorf("record %v: want app at the top, db.pool and db.call.rows in the groups", recs[0])
	}
	if _, ok := recs[1]["empty"]; ok {
		t.Errorf("record %v: an empty group is left out, as slog does", recs[1])
	}
	if _, ok := recs[2]["trace_id"]; ok || recs[2]["msg"] != "no context" {
		t.Errorf("record %v: without a context nothing is added", recs[2])
	}
}

// A key the record or the logger already has is not added a second time: the
// line would otherwise carry it twice (the recover stage logs request_id
// itself, for loggers without a LogHandler).
func TestLogHandlerAddsNoKeyTwice(t *testing.T) {
	ctx, traceID, _, _ := requestContext(t)
	var buf logtest.Buffer
	log := slog.New(telemetry.NewLogHandler(slog.NewJSONHandler(&buf, nil)))

	log.ErrorContext(ctx, "panic in handler", slog.String("request_id", "own"))
	log.With("trace_id", "from-with").InfoContext(ctx, "with")
	log.WithGroup("g").With(slog.String("request_id", "grouped")).InfoContext(ctx, "grouped")

	recs := buf.Records(t) // fails on a duplicate key
	if len(recs) != 3 {
		t.Fatalf("%d records, want 3:\n%s", len(recs), buf.String())
	}
	if recs[0]["request_id"] != "own" || recs[0]["trace_id"] != traceID {
		t.Errorf("record %v: want the record's own request_id and the added trace_id", recs[0])
	}
	if recs[1]["trace_id"] != "from-with" || recs[1]["request_id"] != "req-1" {
		t.Errorf("record %v: want the logger's trace_id and the added request_id", recs[1])
	}
	if g, _ := recs[2]["g"].(map[string]any); g["request_id"] != "grouped" || recs[2]["request_id"] != "req-1" {
		t.Errorf("record %v: a key in a group is another key than the top-level one", recs[2])
	}
}
