package benchstat

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// StartServer serves h from a plain http.Server, as gin's Run serves an
// engine, on a loopback port of the system's choosing until the test ends,
// and returns its base URL ("http://127.0.0.1:port").
func StartServer(tb testing.TB, h http.Handler) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	tb.Cleanup(func() {
		_ = srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			tb.Error(err)
		}
	})
	return "http://" + ln.Addr().String()
}

// StopTimeout is how long StopAtCleanup gives a stop.
const StopTimeout = 10 * time.Second

// StopAtCleanup calls stop when the test ends, with a context that ends
// after StopTimeout, and fails the test with stop's error.
func StopAtCleanup(tb testing.TB, stop func(context.Context) error) {
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), StopTimeout)
		defer cancel()
		if err := stop(ctx); err != nil {
			tb.Error(err)
		}
	})
}

// NewClient is an HTTP/1.1 keep-alive client with enough idle connections
// for every benchmark goroutine; they are closed when the test ends.
func NewClient(tb testing.TB) *http.Client {
	t := &http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 64, IdleConnTimeout: time.Minute}
	tb.Cleanup(t.CloseIdleConnections)
	return &http.Client{Transport: t}
}

// CheckGet makes sure that the peer called name answers GET url with 200 and
// the body want before it is measured.
func CheckGet(tb testing.TB, name string, client *http.Client, url, want string) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	var body bytes.Buffer
	if err := Get(client, req, &body, want); err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
}

// GetParallel does b.N GET url calls from b.RunParallel's goroutines
// (GOMAXPROCS of them unless the benchmark called b.SetParallelism), each
// checked as Get checks it; the first wrong answer fails the benchmark.
func GetParallel(b *testing.B, client *http.Client, url, want string) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.RunParallel(func(pb *testing.PB) {
		req := req.Clone(context.Background())
		var body bytes.Buffer
		for pb.Next() {
			if err := Get(client, req, &body, want); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// Get does req and reads the whole answer into body (reset first), so that
// the connection goes back to the pool; an answer other than 200 with the
// body want is an error.
func Get(client *http.Client, req *http.Request, body *bytes.Buffer, want string) error {
	resp, err := client.Do(req) //nolint:gosec // G704: benchmarks call the loopback server they started
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	body.Reset()
	if _, err := io.Copy(body, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || body.String() != want {
		return fmt.Errorf("GET %s = %d %q, want 200 %s", req.URL, resp.StatusCode, body.String(), want)
	}
	return nil
}
