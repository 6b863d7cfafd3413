package telemetry_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"

	"github.com/meshkit/meshkit/modules/telemetry"
)

func TestNewLogger(t *testing.T) {
	var buf bytes.Buffer
	log, err := telemetry.NewLogger(telemetry.DefaultConfig(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("hidden")
	log.Info("shown", "k", "v")
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil || rec["msg"] != "shown" || rec["k"] != "v" {
		t.Errorf("default logger wrote %q, want one JSON info record", buf.String())
	}

	buf.Reset()
	log, err = telemetry.NewLogger(telemetry.Config{LogFormat: "text", LogLevel: "debug"}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("visible")
	if !strings.Contains(buf.String(), "level=DEBUG msg=visible") {
		t.Errorf("text debug logger wrote %q", buf.String())
	}
}

func TestConfigValidate(t *testing.T) {
	for _, bad := range []telemetry.Config{{LogFormat: "xml", LogLevel: "info"}, {LogFormat: "json", LogLevel: "loud"}} {
		if _, err := telemetry.NewLogger(bad, &bytes.Buffer{}); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// OpenTelemetry's own errors become records of the service's log.
func TestErrorHandlerLogsInTheServiceFormat(t *testing.T) {
	prev := otel.GetErrorHandler()
	t.Cleanup(func() { otel.SetErrorHandler(prev) })
	var buf bytes.Buffer
	telemetry.InstallErrorHandler(slog.New(slog.NewJSONHandler(&buf, nil)))
	otel.Handle(errors.New("traces export: connection refused"))
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("log %q: %v", buf.String(), err)
	}
	if rec["level"] != "WARN" || rec["msg"] != "opentelemetry" || rec["error"] != "traces export: connection refused" {
		t.Errorf("record %v, want a WARN opentelemetry record with the error", rec)
	}
}
