package security

import (
	"context"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/meshkit/meshkit/internal/check"
	"github.com/meshkit/meshkit/internal/devpki"
)

// The TLS material's health component warns while a changed file could not
// be loaded (the old certificate stays in use) and passes again once the
// files load; the gauge gives the seconds until the served certificate
// expires.
func TestTLSHealthWarnsOnAFailedReload(t *testing.T) {
	p := newTestPKI(t, true)
	tl := p.newTLS(nil)
	if h := tl.Health(); h.Status != check.Pass || h.Details["last_reload"] != nil {
		t.Fatalf("health after load: %+v, want pass", h)
	}
	good := p.issueServer()
	writeAtomic(t, p.cfg.CertFile, []byte("garbage"))
	if err := tl.Reload(); err == nil {
		t.Fatal("a garbage certificate file reloaded")
	}
	if h := tl.Health(); h.Status != check.Warn || h.Details["last_reload"] != "failed" {
		t.Fatalf("health after a failed reload: %+v, want warn, last_reload failed", h)
	}
	p.writeServer(good)
	if err := tl.Reload(); err != nil {
		t.Fatal(err)
	}
	if h := tl.Health(); h.Status != check.Pass {
		t.Fatalf("health after a good reload: %+v, want pass", h)
	}

	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() { _ = mp.Shutdown(context.Background()) }()
	if err := tl.registerMetrics(mp); err != nil {
		t.Fatal(err)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	want := time.Until(good.Certificate.NotAfter).Seconds()
	found := false
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "tls.certificate.time_to_expiry" {
				continue
			}
			g := m.Data.(metricdata.Gauge[float64])
			if got := g.DataPoints[0].Value; got < want-60 || got > want+60 || m.Unit != "s" {
				t.Errorf("time to expiry %f %s, want about %f s", got, m.Unit, want)
			}
			found = true
		}
	}
	if !found {
		t.Error("no tls.certificate.time_to_expiry gauge")
	}
}

// A served certificate that expires within 7 days makes the component warn.
func TestTLSHealthWarnsBeforeExpiry(t *testing.T) {
	p := newTestPKI(t, false)
	soon := issueLeaf(t, p.ca, devpki.DNSNames("localhost"), devpki.ServerAuth(), devpki.ValidFor(time.Now().Add(-time.Hour), 3*24*time.Hour))
	p.writeServer(soon)
	if h := p.newTLS(nil).Health(); h.Status != check.Warn {
		t.Fatalf("health with 3 days left: %+v, want warn", h)
	}
}
