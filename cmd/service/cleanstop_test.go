package main_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"syscall"
	"testing"
)

// The untouched template, started with no configuration (on loopback
// ports), answers, and stops on SIGTERM with exit status 0 and nothing in
// its log at WARN or ERROR but the development "auth is off" warning, and
// nothing at all on stdout (gin's debug output). Several stops, because the
// warning this catches (a health check "still running" at a clean stop)
// came from a race that did not always lose.
func TestCleanStopLogsNoWarning(t *testing.T) {
	const stops = 5
	for i := range stops {
		s := startService(t, loopbackEnv())
		client := newClient(t)
		if r := mustGet(t, client, s.apiURL("/apptest/hello")); r.status != http.StatusOK {
			t.Fatalf("stop %d: GET /apptest/hello: %s, want 200", i+1, r)
		}
		if r := mustGet(t, client, s.adminURL("/readyz")); r.status != http.StatusOK {
			t.Fatalf("stop %d: admin GET /readyz: %s, want 200", i+1, r)
		}
		client.CloseIdleConnections()
		s.signal(syscall.SIGTERM)
		if code := s.waitExit(exitTimeout); code != 0 {
			t.Fatalf("stop %d: exit status %d after SIGTERM, want 0\nstderr:\n%s", i+1, code, s.stderr)
		}

		authOff, accessLines := 0, 0
		for _, line := range strings.Split(s.stderr.String(), "\n") {
			var rec struct {
				Level      string   `json:"level"`
				Msg        string   `json:"msg"`
				Route      string   `json:"route"`
				DurationMS *float64 `json:"duration_ms"`
			}
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Errorf("stop %d: a stderr line that is not a JSON log record: %q", i+1, line)
				continue
			}
			switch {
			case rec.Level == "WARN" && strings.HasPrefix(rec.Msg, "auth is off:"):
				authOff++
			case rec.Level == "WARN" || rec.Level == "ERROR":
				t.Errorf("stop %d: the log has %s", i+1, line)
			case rec.Msg == "request" && rec.Route == "/apptest/hello":
				accessLines++
				if rec.DurationMS == nil || *rec.DurationMS <= 0 {
					t.Errorf("stop %d: access line without a positive duration_ms: %s", i+1, line)
				}
			}
		}
		if authOff != 1 || accessLines != 1 {
			t.Errorf("stop %d: %d \"auth is off\" warnings and %d access lines of GET /apptest/hello, want one each\nstderr:\n%s", i+1, authOff, accessLines, s.stderr)
		}
		if out := s.stdout.String(); out != "" {
			t.Errorf("stop %d: the service wrote to stdout (gin in debug mode?):\n%s", i+1, out)
		}
		if t.Failed() {
			return
		}
	}
}
