package app_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/otel/baggage"

	"github.com/meshkit/meshkit/app/apptest"
)

// The class the admission stage gave a request travels to the upstream in
// the baggage member "priority": an authenticated caller's X-Request-Priority
// within the route's ceiling (high for apptest's routes), never an
// anonymous caller's ask, which is replaced by the route's class.
func TestPriorityTravelsInBaggageToTheUpstream(t *testing.T) {
	received := make(chan string, 1)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bag, err := baggage.Parse(r.Header.Get("Baggage"))
		if err != nil {
			t.Errorf("the upstream received baggage %q: %v", r.Header.Get("Baggage"), err)
		}
		received <- bag.Member("priority").Value()
		_, _ = io.WriteString(w, "from upstream")
	}))
	t.Cleanup(upstream.Close)
	cfg := loopbackConfig()
	token := withHMACAuth(t, cfg)
	a := startTracedApp(t, cfg, apptest.WithUpstream(upstream.URL))

	for _, tc := range []struct {
		name   string
		header http.Header
		want   string
	}{
		{"authenticated, asking high", http.Header{"Authorization": {"Bearer " + token("alice")}, "X-Request-Priority": {"high"}}, "high"},
		{"authenticated, asking critical above the ceiling", http.Header{"Authorization": {"Bearer " + token("alice")}, "X-Request-Priority": {"critical"}}, "high"},
		{"authenticated, asking low", http.Header{"Authorization": {"Bearer " + token("alice")}, "X-Request-Priority": {"low"}}, "low"},
		{"authenticated, with its caller's baggage", http.Header{"Authorization": {"Bearer " + token("alice")}, "Baggage": {"priority=low"}}, "low"},
	} {
		if got := a.get(t, a.api+apptest.UpstreamPath, tc.header); got.status != http.StatusOK {
			t.Fatalf("%s: GET /apptest/upstream = %d %s", tc.name, got.status, got.body)
		}
		if got := <-received; got != tc.want {
			t.Errorf("%s: the upstream received priority %q, want %q", tc.name, got, tc.want)
		}
	}
	// Anonymous callers are refused by auth here; the stage's own tests show
	// their ask ignored and replaced (modules/ratelimit/admission).
	if got := a.get(t, a.api+apptest.UpstreamPath, http.Header{"X-Request-Priority": {"critical"}}); got.status != http.StatusUnauthorized {
		t.Errorf("anonymous: %d, want 401 with auth on", got.status)
	}
}
