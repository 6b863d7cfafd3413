package httpserver_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/meshkit/meshkit/internal/devpki"
	"github.com/meshkit/meshkit/internal/route"
	"github.com/meshkit/meshkit/modules/httpserver"
)

// bodyReads is a route that reads its whole body, and tells when the read
// ended and how.
type bodyReads chan error

func (b bodyReads) route() route.Route {
	return route.Route{Method: http.MethodPost, Path: "/test/read-body", Handler: func(c *gin.Context) {
		_, err := io.ReadAll(c.Request.Body)
		b <- err
		if err != nil {
			_ = c.Error(err)
			return
		}
		c.Status(http.StatusNoContent)
	}}
}

// ended waits for the handler's read to end, and returns its error.
func (b bodyReads) ended(t *testing.T) error {
	t.Helper()
	select {
	case err := <-b:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("the handler's body read still blocked 10s after the deadline")
		return nil
	}
}

// A body that trickles in cannot hold its handler past the request's
// deadline: the read is cut, the 504 problem answered at the deadline and
// the connection closed.
func TestSlowBodyIsCutAtTheDeadline(t *testing.T) {
	cfg := testConfig()
	cfg.RequestTimeout = 300 * time.Millisecond
	reads := make(bodyReads, 1)
	s := start(t, cfg, reads.route())

	conn, err := net.Dial("tcp", s.APIAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	began := time.Now()
	// 100 bytes declared, one sent: the rest never comes.
	if _, err := io.WriteString(conn, "POST /test/read-body HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer to a trickling body: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	elapsed := time.Since(began)
	expectProblem(t, resp, body, http.StatusGatewayTimeout)
	if !resp.Close || elapsed < cfg.RequestTimeout || elapsed > 5*time.Second {
		t.Errorf("answered after %s (closing: %t), want a 504 at the deadline of %s closing the connection",
			elapsed, resp.Close, cfg.RequestTimeout)
	}
	if err := reads.ended(t); err == nil {
		t.Error("the handler's read of a body cut short ended without an error")
	}
	if n, err := br.ReadByte(); err == nil {
		t.Errorf("the connection still open after the cut read (read %q)", n)
	}
	s.expectServing(t)
}

// startTLS starts a server with TLS (ALPN h2 and http/1.1) and returns it
// with a client that trusts its certificate and speaks HTTP/2.
func startTLS(t *testing.T, cfg httpserver.Config, routes ...route.Route) (*httpserver.Server, *http.Client) {
	t.Helper()
	ca, err := devpki.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(devpki.IPAddresses(net.IPv4(127, 0, 0, 1)), devpki.ServerAuth())
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := httpserver.New(cfg, log, routes, httpserver.DefaultMiddleware(cfg, log),
		httpserver.WithTLS(&tls.Config{Certificates: []tls.Certificate{leaf.TLS()}, NextProtos: []string{"h2", "http/1.1"}, MinVersion: tls.VersionTLS12}))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	transport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, ForceAttemptHTTP2: true}
	t.Cleanup(func() {
		transport.CloseIdleConnections()
		if err := srv.Stop(context.Background()); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return srv, &http.Client{Transport: transport, Timeout: 10 * time.Second}
}

// Over HTTP/2 each stream's body read is cut at its deadline, on one
// connection carrying them all.
func TestSlowBodyIsCutAtTheDeadlineOverHTTP2(t *testing.T) {
	cfg := testConfig()
	cfg.RequestTimeout = 300 * time.Millisecond
	const streams = 5
	reads := make(bodyReads, streams)
	srv, client := startTLS(t, cfg, reads.route())
	url := "https://" + srv.APIAddr().String() + "/test/read-body"

	type answer struct {
		resp    *http.Response
		body    []byte
		err     error
		elapsed time.Duration
	}
	answers := make(chan answer, streams)
	var writers []*io.PipeWriter
	defer func() {
		for _, w := range writers {
			_ = w.Close()
		}
	}()
	for range streams {
		r, w := io.Pipe()
		writers = append(writers, w)
		req := newRequest(t, http.MethodPost, url, r)
		req.ContentLength = 100
		req.Header.Set("Content-Type", "application/json")
		go func() { _, _ = io.WriteString(w, "{") }() // one byte of 100
		go func() {
			began := time.Now()
			resp, err := client.Do(req)
			a := answer{resp: resp, err: err}
			if err == nil {
				a.body, a.err = io.ReadAll(resp.Body)
				_ = resp.Body.Close()
			}
			a.elapsed = time.Since(began)
			answers <- a
		}()
	}
	for range streams {
		a := <-answers
		if a.err != nil {
			t.Fatalf("a trickling stream: %v", a.err)
		}
		if a.resp.ProtoMajor != 2 {
			t.Fatalf("answered over %s, want HTTP/2", a.resp.Proto)
		}
		expectProblem(t, a.resp, a.body, http.StatusGatewayTimeout)
		if a.elapsed < cfg.RequestTimeout || a.elapsed > 5*time.Second {
			t.Errorf("answered after %s, want at the deadline of %s", a.elapsed, cfg.RequestTimeout)
		}
		if err := reads.ended(t); err == nil {
			t.Error("a handler's read of a body cut short ended without an error")
		}
	}
}

// One HTTP/2 connection carries at most SERVICE_HTTP_MAX_CONCURRENT_STREAMS
// requests at once: the client opens another connection for more.
func TestHTTP2StreamsPerConnectionAreBounded(t *testing.T) {
	cfg := testConfig()
	cfg.MaxConcurrentStreams = 2
	const requests = 6
	var (
		mu       sync.Mutex
		open     = map[string]int{} // requests in progress by connection
		most     int
		entered  = make(chan struct{}, requests)
		release  = make(chan struct{})
		released sync.Once
	)
	hold := route.Route{Method: http.MethodGet, Path: "/test/hold", Handler: func(c *gin.Context) {
		mu.Lock()
		open[c.Request.RemoteAddr]++
		most = max(most, open[c.Request.RemoteAddr])
		mu.Unlock()
		entered <- struct{}{}
		<-release
		mu.Lock()
		open[c.Request.RemoteAddr]--
		mu.Unlock()
		c.Status(http.StatusNoContent)
	}}
	srv, client := startTLS(t, cfg, hold)
	defer released.Do(func() { close(release) })
	url := "https://" + srv.APIAddr().String() + "/test/hold"
	done := make(chan error, requests)
	for range requests {
		go func() {
			resp, err := client.Do(newRequest(t, http.MethodGet, url, nil))
			if err == nil {
				_ = resp.Body.Close()
				if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusNoContent {
					err = &protoError{resp.Proto, resp.StatusCode}
				}
			}
			done <- err
		}()
	}
	for range requests {
		select {
		case <-entered:
		case <-time.After(10 * time.Second):
			t.Fatal("not every request reached the handler: the client waited for a stream instead of a connection")
		}
	}
	mu.Lock()
	conns, peak := len(open), most
	mu.Unlock()
	released.Do(func() { close(release) })
	for range requests {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if peak > 2 || conns < requests/2 {
		t.Errorf("%d requests in progress on one connection, %d connections: want at most 2 streams each", peak, conns)
	}
}

type protoError struct {
	proto  string
	status int
}

func (e *protoError) Error() string {
	return "answered " + strings.TrimSpace(e.proto) + " " + http.StatusText(e.status) + ", want HTTP/2.0 204"
}
