package security_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/meshkit/meshkit/internal/devpki"
	"github.com/meshkit/meshkit/modules/security"
)

func newTestMetrics(t *testing.T) (*security.Metrics, *sdkmetric.ManualReader) {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	m, err := security.NewMetrics(mp)
	if err != nil {
		t.Fatal(err)
	}
	return m, reader
}

// failures reads auth.failures by reason.
func failures(t *testing.T, reader *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "auth.failures" {
				continue
			}
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok || !sum.IsMonotonic {
				t.Fatalf("auth.failures is a %T, want a counter", m.Data)
			}
			for _, dp := range sum.DataPoints {
				reason, ok := dp.Attributes.Value(attribute.Key("reason"))
				if !ok || dp.Attributes.Len() != 1 {
					t.Errorf("a data point with attributes %v, want only reason", dp.Attributes.ToSlice())
				}
				got[reason.AsString()] = dp.Value
			}
		}
	}
	return got
}

func checkFailures(t *testing.T, got, want map[string]int64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("failures %v, want %v", got, want)
		return
	}
	for r, n := range want {
		if got[r] != n {
			t.Errorf("failures %v, want %v", got, want)
			return
		}
	}
}

func signed(t *testing.T, claims map[string]any) string {
	t.Helper()
	tok, err := devpki.SignHS256([]byte(secret), claims)
	if err != nil {
		t.Fatal(err)
	}
	return "Bearer " + tok
}

func TestMetricsCountFailuresByReason(t *testing.T) {
	m, reader := newTestMetrics(t)
	s := startServer(t, security.Stage{Verifier: newHMACVerifier(t), Metrics: m}, nil, &http.Client{Transport: &http.Transport{}})
	past := time.Now().Add(-time.Hour).Unix()
	for _, tt := range []struct {
		name, authorization string
		status              int
	}{
		{"no header", "", 401},
		{"another scheme", "Basic YWxpY2U6c2VjcmV0", 401},
		{"not a token", "Bearer not.a.token", 401},
		{"not a token again", "Bearer still.not.one", 401},
		{"signed with another key", "Bearer " + mustSign(t, "another-secret-another-secret-xx"), 401},
		{"expired", signed(t, map[string]any{"sub": "alice", "exp": past}), 401},
		{"without exp", signed(t, map[string]any{"sub": "alice"}), 401},
		{"valid", "Bearer " + token(t, "alice"), 200},
	} {
		if a := s.get(t, "/whoami", tt.authorization); a.status != tt.status {
			t.Errorf("%s: %d, want %d (%s)", tt.name, a.status, tt.status, a.body)
		}
	}
	if a := s.get(t, "/readyz", ""); a.status != 200 { // public: not a failure
		t.Errorf("/readyz: %d", a.status)
	}
	checkFailures(t, failures(t, reader), map[string]int64{
		"missing": 1, "invalid_request": 1, "malformed": 2, "bad_signature": 1, "expired": 1, "missing_exp": 1,
	})
}

func TestMetricsCountThrottledCallers(t *testing.T) {
	m, reader := newTestMetrics(t)
	charger := newAddressCharger(2)
	s := startServer(t, security.Stage{Verifier: newHMACVerifier(t), Charger: charger, Metrics: m}, nil, &http.Client{Transport: &http.Transport{}})
	for i := range 4 {
		want := []int{401, 401, 429, 429}[i]
		if a := s.get(t, "/whoami", "Bearer "+mustSign(t, "wrong-key-wrong-key-wrong-key-xx")); a.status != want {
			t.Errorf("bad token %d: %d, want %d", i, a.status, want)
		}
	}
	checkFailures(t, failures(t, reader), map[string]int64{"bad_signature": 2, "throttled": 2})
}

func TestMetricsCountMissingClientCertificates(t *testing.T) {
	m, reader := newTestMetrics(t)
	// Mutual TLS required, but the listener is plain: no verified peer.
	s := startServer(t, security.Stage{MutualTLS: true, Metrics: m}, nil, &http.Client{Transport: &http.Transport{}})
	if a := s.get(t, "/whoami", ""); a.status != 401 {
		t.Errorf("no client certificate: %d, want 401", a.status)
	}
	checkFailures(t, failures(t, reader), map[string]int64{"no_client_certificate": 1})
}

func TestNilMetricsRecordNothing(t *testing.T) {
	s := startServer(t, security.Stage{Verifier: newHMACVerifier(t)}, nil, &http.Client{Transport: &http.Transport{}})
	if a := s.get(t, "/whoami", "Bearer not.a.token"); a.status != 401 {
		t.Errorf("a bad token without metrics: %d, want 401", a.status)
	}
}
