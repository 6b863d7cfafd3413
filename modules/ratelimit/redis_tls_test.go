package ratelimit

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshkit/meshkit/internal/logtest"
	"github.com/meshkit/meshkit/internal/redistest"
)

// tlsLimit is the limit of the TLS tests: a burst of 3, then one a minute.
var tlsLimit = Limit{Name: "default", Rate: 1, Period: time.Minute, Burst: 3}

// TestRedisTLSSharesBuckets: two limiters share buckets through a Redis
// that speaks only TLS and asks for a client certificate, one configured
// with a rediss:// URL, the other with SERVICE_REDIS_ADDR and
// SERVICE_REDIS_TLS=true.
func TestRedisTLSSharesBuckets(t *testing.T) {
	files := redistest.NewTLSFiles(t, "redis test CA")
	srv := redistest.StartTLS(t, files)
	tlsFiles := RedisConfig{TLSCAFile: files.CAFile, TLSCertFile: files.ClientCertFile, TLSKeyFile: files.ClientKeyFile, Timeout: sharedTimeout}
	byURL, byAddr := tlsFiles, tlsFiles
	byURL.URL = "rediss://" + srv.Addr() + "/0"
	byAddr.Addr, byAddr.TLS = srv.Addr(), true
	prefix := testPrefix(t)
	var limiters []*Redis
	for _, cfg := range []RedisConfig{byURL, byAddr} {
		if err := (Config{Backend: BackendRedis, Rate: 1, Period: time.Minute, Burst: 1, MaxClients: 1, FailureMode: FailClosed, LocalShare: 1, Redis: withPrefix(cfg, prefix)}).Validate(); err != nil {
			t.Fatalf("Validate: %v", err)
		}
		limiters = append(limiters, newTestRedis(t, newTestClient(t, cfg), RedisOptions{KeyPrefix: prefix, Timeout: sharedTimeout, FailureMode: FailClosed}))
	}
	ctx := context.Background()
	for i := range tlsLimit.Burst {
		d, err := limiters[i%2].Allow(ctx, "ip:192.0.2.7", tlsLimit)
		if err != nil || !d.Allowed {
			t.Fatalf("request %d: %+v, %v; want allowed through Redis over TLS", i+1, d, err)
		}
	}
	for i, r := range limiters {
		d, err := r.Allow(ctx, "ip:192.0.2.7", tlsLimit)
		if err != nil || d.Allowed {
			t.Fatalf("limiter %d after the burst: %+v, %v; want denied by the shared bucket", i, d, err)
		}
	}
}

func withPrefix(c RedisConfig, prefix string) RedisConfig {
	c.KeyPrefix = prefix
	return c
}

// TestRedisTLSNeverFallsToPlainText: a CA that did not issue Redis's
// certificate, or a Redis that speaks plain text, puts the limiter in its
// failure mode with one log line, and it never talks to Redis in the
// clear; a CA file corrected on disk is read by the next dial, and the
// limiter is back on Redis without a restart.
func TestRedisTLSNeverFallsToPlainText(t *testing.T) {
	files := redistest.NewTLSFiles(t, "redis test CA")
	wrong := redistest.NewTLSFiles(t, "another CA")
	tlsSrv := redistest.StartTLS(t, files)
	plainSrv := redistest.Start(t)
	caFile := t.TempDir() + "/ca.pem"
	copyFile(t, wrong.CAFile, caFile)
	for _, c := range []struct {
		name, addr, wantError string
	}{
		{"wrong CA", tlsSrv.Addr(), "certificate signed by unknown authority"},
		{"plain-text Redis", plainSrv.Addr(), "deadline exceeded"}, // the handshake waits for a ServerHello
	} {
		t.Run(c.name, func(t *testing.T) {
			var logs logtest.Buffer
			cfg := RedisConfig{Addr: c.addr, TLS: true, TLSCAFile: caFile, TLSCertFile: files.ClientCertFile, TLSKeyFile: files.ClientKeyFile, Timeout: outageTimeout}
			r := newTestRedis(t, newTestClient(t, cfg), RedisOptions{
				KeyPrefix: testPrefix(t), Timeout: outageTimeout, FailureMode: FailLocal, LocalShare: 1,
				Log: slog.New(slog.NewJSONHandler(&logs, nil)),
			})
			ctx := context.Background()
			deadline := time.Now().Add(time.Second)
			for calls := 0; time.Now().Before(deadline) || calls < 20; calls++ {
				d, err := r.Allow(ctx, "ip:192.0.2.8", Limit{Name: "default", Rate: 1000, Period: time.Second, Burst: 1000})
				if err != nil || !d.Allowed {
					t.Fatalf("call %d: %+v, %v; want allowed by the local bucket", calls, d, err)
				}
				time.Sleep(5 * time.Millisecond)
			}
			if r.Mode() != string(FailLocal) {
				t.Fatalf("Mode() = %q, want local", r.Mode())
			}
			lines := logs.Lines()
			if len(lines) != 1 || !strings.Contains(lines[0], c.wantError) || !strings.Contains(lines[0], "Redis is unavailable") {
				t.Fatalf("log: %d lines, want one saying Redis is unavailable with %q:\n%s", len(lines), c.wantError, logs.String())
			}
		})
	}
	if out := tlsSrv.Output(); strings.Contains(out, "wrong version number") || strings.Contains(out, "http request") {
		t.Errorf("the TLS-only Redis saw plain text:\n%s", out)
	}
	if info, err := redistest.Do(plainSrv.Addr(), time.Second, "INFO", "stats"); err != nil || !strings.Contains(info, "total_commands_processed:1\r\n") {
		t.Errorf("the plain-text Redis processed commands other than the test's own INFO: %v\n%s", err, info)
	}

	t.Run("corrected on disk", func(t *testing.T) {
		var logs logtest.Buffer
		cfg := RedisConfig{Addr: tlsSrv.Addr(), TLS: true, TLSCAFile: caFile, TLSCertFile: files.ClientCertFile, TLSKeyFile: files.ClientKeyFile, Timeout: outageTimeout}
		r := newTestRedis(t, newTestClient(t, cfg), RedisOptions{
			KeyPrefix: testPrefix(t), Timeout: outageTimeout, FailureMode: FailClosed,
			Log: slog.New(slog.NewJSONHandler(&logs, nil)),
		})
		ctx := context.Background()
		for r.Mode() == BackendRedis {
			_, _ = r.Allow(ctx, "ip:192.0.2.9", tlsLimit)
		}
		copyFile(t, files.CAFile, caFile)
		waitModeWithin(t, r, BackendRedis, 10*time.Second)
		if d, err := r.Allow(ctx, "ip:192.0.2.9", tlsLimit); err != nil || !d.Allowed {
			t.Fatalf("after the CA file was corrected: %+v, %v", d, err)
		}
	})
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from) //nolint:gosec // G304: the test's own files
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil { //nolint:gosec // G703: the test's own temp files
		t.Fatal(err)
	}
}

// waitModeWithin polls r until its mode is want, and fails the test after
// within; it returns how long that took.
func waitModeWithin(t *testing.T, r *Redis, want string, within time.Duration) time.Duration {
	t.Helper()
	begin := time.Now()
	for r.Mode() != want {
		if time.Since(begin) > within {
			t.Fatalf("Mode() = %q after %v, want %q", r.Mode(), within, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(begin)
}

// TestRedisTLSFilesBadChangeKeepsTheLastGood: files that change but do not
// load leave the last good ones in use, logged once however often they are
// read; once they load again they are used, and that is logged.
func TestRedisTLSFilesBadChangeKeepsTheLastGood(t *testing.T) {
	files := redistest.NewTLSFiles(t, "redis test CA")
	caFile := t.TempDir() + "/ca.pem"
	copyFile(t, files.CAFile, caFile)
	f, err := newTLSFiles(RedisConfig{TLS: true, TLSCAFile: caFile})
	if err != nil {
		t.Fatal(err)
	}
	var logs logtest.Buffer
	f.log = slog.New(slog.NewJSONHandler(&logs, nil))
	good := f.current()
	if err := os.WriteFile(caFile, []byte("half a PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if f.current() != good {
			t.Fatal("a CA file that does not load replaced the last good one")
		}
	}
	if lines := logs.Lines(); len(lines) != 1 || !strings.Contains(lines[0], "do not load") {
		t.Fatalf("log after three reads of a bad file:\n%s", logs.String())
	}
	other := redistest.NewTLSFiles(t, "another CA")
	copyFile(t, other.CAFile, caFile)
	if c := f.current(); c == good || !c.RootCAs.Equal(other.CA.Pool()) {
		t.Fatal("a CA file that loads again is not used")
	}
	if lines := logs.Lines(); len(lines) != 2 || !strings.Contains(lines[1], "reloaded") {
		t.Fatalf("log after the file loads again:\n%s", logs.String())
	}
}

// TestRedisTLSCluster: SERVICE_REDIS_TLS=true with a cluster's addresses;
// the nodes speak only TLS, to clients and on their bus, and the TLS files
// serve every master the client finds.
func TestRedisTLSCluster(t *testing.T) {
	files := redistest.NewTLSFiles(t, "redis test CA")
	cluster := redistest.StartClusterWith(t, redistest.ClusterOptions{Masters: 3, TLS: files})
	cfg := RedisConfig{Addrs: cluster.Addrs()[:1], TLS: true, TLSCAFile: files.CAFile, TLSCertFile: files.ClientCertFile, TLSKeyFile: files.ClientKeyFile, Timeout: sharedTimeout}
	prefix := testPrefix(t)
	var limiters []*Redis
	for range 2 {
		limiters = append(limiters, newTestRedis(t, newTestClient(t, cfg), RedisOptions{KeyPrefix: prefix, Timeout: sharedTimeout, FailureMode: FailClosed}))
	}
	ctx := context.Background()
	const clients = 30
	for c := range clients {
		key := "ip:10.5.0." + strconv.Itoa(c)
		for i := range tlsLimit.Burst {
			if d, err := limiters[0].Allow(ctx, key, tlsLimit); err != nil || !d.Allowed {
				t.Fatalf("client %d, request %d: %+v, %v", c, i+1, d, err)
			}
		}
		if d, err := limiters[1].Allow(ctx, key, tlsLimit); err != nil || d.Allowed {
			t.Fatalf("client %d on the other limiter: %+v, %v; want denied by the shared bucket", c, d, err)
		}
	}
	for _, n := range cluster.Nodes() {
		size, err := n.Do(time.Second, "DBSIZE")
		if count, _ := strconv.Atoi(size); err != nil || count == 0 {
			t.Errorf("%s holds %q keys (%v), want a share of the %d clients'", n.Addr(), size, err, clients)
		}
	}
}

// TestRedisTLSSentinel: SERVICE_REDIS_TLS=true with sentinels that speak
// only TLS, like the primary and its replica: the TLS files serve the
// sentinels and the master they name.
func TestRedisTLSSentinel(t *testing.T) {
	files := redistest.NewTLSFiles(t, "redis test CA")
	g := redistest.StartSentinels(t, redistest.SentinelOptions{TLS: files})
	cfg := RedisConfig{Addrs: g.Addrs(), SentinelMaster: g.Master, TLS: true, TLSCAFile: files.CAFile, TLSCertFile: files.ClientCertFile, TLSKeyFile: files.ClientKeyFile, Timeout: sharedTimeout}
	r := newTestRedis(t, newTestClient(t, cfg), RedisOptions{KeyPrefix: testPrefix(t), Timeout: sharedTimeout, FailureMode: FailClosed})
	ctx := context.Background()
	for i := range tlsLimit.Burst + 1 {
		d, err := r.Allow(ctx, "ip:192.0.2.10", tlsLimit)
		if err != nil || d.Allowed != (i < tlsLimit.Burst) {
			t.Fatalf("request %d: %+v, %v", i+1, d, err)
		}
	}
	if size, err := g.Primary.Do(time.Second, "DBSIZE"); err != nil || size == "0" {
		t.Fatalf("the primary holds %q keys (%v), want the limiter's", size, err)
	}
}
