package main_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const helloBody = `{"message":"hello, world"}`

// The no-request-lost test's clients model what the service sees in a mesh
// (kube-proxy, or a sidecar's connection pool): clients that keep their
// connections alive for as long as the server lets them, and a load balancer
// that sends new connections elsewhere once readiness has failed for a
// while (the endpoint's removal reaching every node). Its clients hold a
// connection each and loop GET /apptest/hello on it; on SIGTERM /readyz must turn
// 503 while they go on being served, each response must close its connection
// (Connection: close), and a client that needs a new connection must get one
// until the endpoint is removed, halfway through the drain delay here. Then
// nobody should be sending when the listener closes, every request must have
// got its 200, slow requests must finish after the listener has closed, new
// connections must be refused, and the exit status must be 0.
//
// Clients that went on dialing until the listener closed could not be held
// to "no request lost": Linux resets a connection whose handshake the kernel
// completed but which the server had not accepted yet when its listening
// socket closes, and with this load one such connection is there at the
// moment of the close in many runs, whatever the server does. The drain
// delay is what keeps those connections away.
func TestSIGTERMLosesNoRequest(t *testing.T) {
	const (
		loadClients     = 32
		slowRequests    = 4
		lateRequests    = 4
		warmUp          = 500 * time.Millisecond
		drainDelay      = 2 * time.Second
		endpointRemoval = drainDelay / 2 // after /readyz turned 503
		upstreamDelay   = 4 * time.Second
		shutdownTimeout = 10 * time.Second // so the slow requests end well within it
	)
	upstream := newSlowUpstream(t, upstreamDelay, "slow-ok")
	svc := startService(t, loopbackEnv(
		"SERVICE_SHUTDOWN_DRAIN_DELAY="+drainDelay.String(),
		"SERVICE_SHUTDOWN_TIMEOUT="+shutdownTimeout.String(),
		"SERVICE_APPTEST_UPSTREAM_URL="+upstream.URL,
		// All the clients are one address to the limiter: room for them all.
		"SERVICE_RATELIMIT_RATE=1000000", "SERVICE_RATELIMIT_PERIOD=1s", "SERVICE_RATELIMIT_BURST=1000000",
	))

	slow := make(chan exchange, slowRequests)
	for range slowRequests {
		go func() {
			c := &rawClient{addr: svc.apiAddr}
			defer c.close()
			slow <- c.get("/apptest/upstream")
		}()
	}
	upstream.waitForRequests(t, slowRequests, requestTimeout)

	var removed atomic.Bool // the endpoint is out of rotation: no new connections
	loads := make([][]exchange, loadClients)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	stopLoad := sync.OnceFunc(func() { close(stop) })
	for i := range loads {
		wg.Go(func() { loads[i] = loadClient(svc.apiAddr, &removed, stop) })
	}
	// Stopped here too, for a test that fails early.
	t.Cleanup(func() { stopLoad(); wg.Wait() })
	time.Sleep(warmUp) // steady load before the signal

	// Requests on connections accepted long before the listener closes that
	// finish arriving after it closed.
	late := make([]*rawClient, lateRequests)
	lateStarted := make([]exchange, lateRequests)
	for i := range late {
		late[i] = &rawClient{addr: svc.apiAddr}
		defer late[i].close()
		if lateStarted[i] = late[i].start("/apptest/hello"); lateStarted[i].err != nil {
			t.Fatalf("late request %d: %v", i+1, lateStarted[i].err)
		}
	}

	signalled := time.Now()
	svc.signal(syscall.SIGTERM)
	notReady := waitNotReady(t, svc, drainDelay)
	time.Sleep(time.Until(notReady.Add(endpointRemoval)))
	removed.Store(true)

	refused := waitRefused(t, svc.apiAddr, drainDelay+requestTimeout)
	for i, c := range late {
		if e := c.finish(lateStarted[i]); !e.ok(helloBody) || !e.closed {
			t.Errorf("late request %d of %d, finished after the listener closed: %s, want 200 with Connection: close", i+1, lateRequests, e.describe(signalled))
		}
	}
	stopLoad()
	wg.Wait()
	code := svc.waitExit(upstreamDelay + exitTimeout)
	exited := time.Since(signalled)

	var all []exchange
	for _, l := range loads {
		all = append(all, l...)
	}
	report := summarize(all, signalled, notReady)
	t.Logf("%d clients sent %d requests (%d on new connections, %d during the drain delay); %d answered 200, %d lost; "+
		"/readyz 503 after %s, endpoint removed after %s, listener closed after %s, exit status %d after %s",
		loadClients, report.sent, report.fresh, report.whileNotReady, report.ok, len(report.lost),
		notReady.Sub(signalled).Round(time.Millisecond), (notReady.Sub(signalled) + endpointRemoval).Round(time.Millisecond),
		refused.Sub(signalled).Round(time.Millisecond), code, exited.Round(time.Millisecond))

	for i, e := range report.lost {
		if i == 10 {
			t.Errorf("... and %d more lost requests", len(report.lost)-i)
			break
		}
		t.Errorf("request lost: %s", e.describe(signalled))
	}
	if report.whileNotReady == 0 {
		t.Errorf("no GET /apptest/hello was answered 200 while /readyz answered 503: the API must go on serving during the drain delay")
	}
	if report.closeBeforeSignal > 0 {
		t.Errorf("%d responses said Connection: close before SIGTERM, want keep-alive until then", report.closeBeforeSignal)
	}
	if report.closeWhileNotReady == 0 {
		t.Errorf("no response during the drain delay said Connection: close: keep-alive clients would keep their connections until the listener closes them")
	}
	if since := refused.Sub(signalled); since < drainDelay {
		t.Errorf("the API listener refused connections %s after SIGTERM, before the %s drain delay had passed", since, drainDelay)
	}
	for i := range slowRequests {
		e := <-slow // the process has exited: each has its answer or its error
		if !e.ok("slow-ok") {
			t.Errorf("slow request %d of %d: %s, want 200 \"slow-ok\"", i+1, slowRequests, e.describe(signalled))
		} else if e.done.Before(refused) {
			t.Errorf("slow request %d of %d answered %s before the listener closed: it proves nothing about Shutdown", i+1, slowRequests, refused.Sub(e.done))
		}
	}
	if code != 0 {
		t.Errorf("exit status after a clean drain = %d, want 0", code)
	}
}

// loadClient loops GET /apptest/hello on a kept-alive connection of its own,
// dialing a new one when the server closed the last, until stop is closed; it
// opens no new connection once removed is set. It returns every exchange.
func loadClient(addr string, removed *atomic.Bool, stop <-chan struct{}) []exchange {
	c := &rawClient{addr: addr}
	defer c.close()
	var done []exchange
	for {
		select {
		case <-stop:
			return done
		default:
		}
		if c.conn == nil && removed.Load() {
			return done
		}
		done = append(done, c.get("/apptest/hello"))
	}
}

// waitNotReady polls the admin /readyz until it answers 503 and returns when
// it did; it fails the test unless that happens within timeout.
func waitNotReady(t *testing.T, svc *service, timeout time.Duration) time.Time {
	t.Helper()
	client := newClient(t)
	var last response
	if !pollUntil(timeout, func() bool {
		last = fetch(client, svc.adminURL("/readyz"))
		return last.status == http.StatusServiceUnavailable
	}) {
		t.Fatalf("admin /readyz did not answer 503 within %s of SIGTERM; last: %s", timeout, last)
	}
	return time.Now()
}

// waitRefused dials addr until a dial is refused and returns when; it fails
// the test unless that happens within timeout. A dial that connects is closed
// without a request.
func waitRefused(t *testing.T, addr string, timeout time.Duration) time.Time {
	t.Helper()
	var err error
	if !pollUntil(timeout, func() bool {
		var conn net.Conn
		conn, err = net.DialTimeout("tcp", addr, requestTimeout)
		if err == nil {
			_ = conn.Close()
		}
		return errors.Is(err, syscall.ECONNREFUSED)
	}) {
		t.Fatalf("the API listener %s did not refuse connections within %s of readiness failing; last dial: %v", addr, timeout, err)
	}
	return time.Now()
}

// rawClient sends GETs over one HTTP/1.1 connection at a time, kept alive
// until the server answers Connection: close. It never retries, so that each
// request's fate is plain: unlike http.Transport, which resends an idempotent
// request that met a closed kept-alive connection.
type rawClient struct {
	addr string
	conn *countingConn
	br   *bufio.Reader
}

// exchange is one request of a rawClient and what came of it.
type exchange struct {
	path       string
	sent, done time.Time
	fresh      bool  // sent on a connection dialed for it
	refused    bool  // the dial was refused: nothing was sent
	received   int64 // response bytes read before done
	status     int
	body       string
	closed     bool // the response said Connection: close
	err        error
}

// ok reports whether the request got a complete 200 with wantBody.
func (e exchange) ok(wantBody string) bool {
	return e.err == nil && e.status == http.StatusOK && e.body == wantBody
}

// describe says what happened, with times relative to t0.
func (e exchange) describe(t0 time.Time) string {
	conn := "a kept-alive connection"
	if e.fresh {
		conn = "a new connection"
	}
	at := fmt.Sprintf("GET %s sent at %s on %s, %d response bytes", e.path, e.sent.Sub(t0).Round(time.Millisecond), conn, e.received)
	if e.err != nil {
		return at + ": " + e.err.Error()
	}
	return fmt.Sprintf("%s: %d %q", at, e.status, e.body)
}

// get sends GET path and reads the whole response, dialing first when the
// client has no connection. A refused dial comes back with refused set.
func (c *rawClient) get(path string) exchange {
	e := c.start(path)
	if e.err != nil {
		return e
	}
	return c.finish(e)
}

// start sends the first line of GET path, dialing first when the client has
// no connection; finish sends the rest and reads the response.
func (c *rawClient) start(path string) exchange {
	e := exchange{path: path, fresh: c.conn == nil, sent: time.Now()}
	if c.conn == nil {
		conn, err := net.DialTimeout("tcp", c.addr, requestTimeout)
		if err != nil {
			e.refused, e.err, e.done = errors.Is(err, syscall.ECONNREFUSED), fmt.Errorf("dial: %w", err), time.Now()
			return e
		}
		c.conn = &countingConn{Conn: conn}
		c.br = bufio.NewReader(c.conn)
	}
	err := c.conn.SetDeadline(time.Now().Add(requestTimeout))
	if err == nil {
		_, err = io.WriteString(c.conn, "GET "+path+" HTTP/1.1\r\n")
	}
	if err != nil {
		e.err, e.done = err, time.Now()
		c.close()
	}
	return e
}

func (c *rawClient) finish(e exchange) exchange {
	before := c.conn.read
	_, err := io.WriteString(c.conn, "Host: meshkit.test\r\n\r\n")
	if err == nil {
		e.status, e.body, e.closed, err = readResponse(c.br)
	}
	e.done, e.received, e.err = time.Now(), c.conn.read-before, err
	if err != nil || e.closed {
		c.close()
	}
	return e
}

func (c *rawClient) close() {
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn, c.br = nil, nil
	}
}

// readResponse reads one whole response from br.
func readResponse(br *bufio.Reader) (status int, body string, closed bool, err error) {
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, "", false, fmt.Errorf("read response: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, string(b), resp.Close, fmt.Errorf("read body: %w", err)
	}
	return resp.StatusCode, string(b), resp.Close, nil
}

// countingConn counts the bytes read from a connection.
type countingConn struct {
	net.Conn
	read int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read += int64(n)
	return n, err
}

// loadReport is the load's accounting.
type loadReport struct {
	sent, fresh, ok    int
	whileNotReady      int // 200s to requests sent after /readyz turned 503
	closeBeforeSignal  int // Connection: close answers before SIGTERM
	closeWhileNotReady int // Connection: close answers after /readyz turned 503
	lost               []exchange
}

// summarize counts the load's exchanges: every request sent must have got a
// complete 200. (Load clients dial nothing once the endpoint is removed, so
// none of theirs can be refused.)
func summarize(all []exchange, signalled, notReady time.Time) loadReport {
	var r loadReport
	for _, e := range all {
		r.sent++
		if e.fresh {
			r.fresh++
		}
		if !e.ok(helloBody) {
			r.lost = append(r.lost, e)
			continue
		}
		r.ok++
		switch {
		case e.sent.After(notReady):
			r.whileNotReady++
			if e.closed {
				r.closeWhileNotReady++
			}
		case e.closed && e.done.Before(signalled):
			r.closeBeforeSignal++
		}
	}
	return r
}

func TestSecondSignalDuringTheDrainExitsAtOnce(t *testing.T) {
	const drainDelay = time.Minute // far longer than the test waits
	svc := startService(t, loopbackEnv("SERVICE_SHUTDOWN_DRAIN_DELAY="+drainDelay.String()))
	svc.signal(syscall.SIGTERM)
	waitNotReady(t, svc, requestTimeout) // the first signal was taken: the drain is on

	signalled := time.Now()
	svc.signal(syscall.SIGTERM)
	code := svc.waitExit(exitTimeout)
	t.Logf("exited with status %d %s after the second SIGTERM", code, time.Since(signalled).Round(time.Millisecond))
	if code != 2 {
		t.Errorf("exit status after a second SIGTERM = %d, want 2", code)
	}
	if log := svc.stderr.String(); !strings.Contains(log, "second signal") {
		t.Errorf("stderr does not say why the service exited early:\n%s", log)
	}
}

// Start-up with the rate limiter's Redis down: nothing at start-up waits for
// it, so the service is live at once and serves (the limiter's "local"
// failure mode). Redis is an optional dependency: readiness says warn and
// stays 200, unless SERVICE_HEALTH_REQUIRED_CHECKS names its check, when
// /readyz answers 503 while /livez stays 200.
func TestStartsAndServesWithRedisDown(t *testing.T) {
	const startBound = 5 * time.Second
	for _, tt := range []struct {
		name      string
		env       []string
		wantReady int
	}{
		{name: "optional", wantReady: http.StatusOK},
		{name: "required", env: []string{"SERVICE_HEALTH_REQUIRED_CHECKS=redis"}, wantReady: http.StatusServiceUnavailable},
	} {
		t.Run(tt.name, func(t *testing.T) {
			began := time.Now()
			svc := startService(t, loopbackEnv(append([]string{
				"SERVICE_RATELIMIT_BACKEND=redis",
				"SERVICE_REDIS_ADDR=" + unusedLoopbackAddr(t),
				"SERVICE_HEALTH_CHECK_PERIOD=200ms",
			}, tt.env...)...))
			client := newClient(t)
			if r := mustGet(t, client, svc.adminURL("/livez")); r.status != http.StatusOK {
				t.Errorf("admin /livez with Redis down = %s, want 200", r)
			}
			if took := time.Since(began); took > startBound {
				t.Errorf("live %s after start with Redis down, want within %s", took.Round(time.Millisecond), startBound)
			}
			for i := range 5 { // enough failed Redis calls to open the limiter's breaker
				if r := mustGet(t, client, svc.apiURL("/apptest/hello")); r.status != http.StatusOK {
					t.Fatalf("GET /apptest/hello %d with Redis down = %s, want 200 (failure mode local)", i+1, r)
				}
			}

			var readyz response
			if !pollUntil(requestTimeout, func() bool {
				readyz = fetch(client, svc.adminURL("/readyz"))
				return readyz.status == tt.wantReady && readinessStatus(readyz) != "pass"
			}) {
				t.Errorf("admin /readyz with Redis down = %s, want %d and not \"pass\"", readyz, tt.wantReady)
			}
			t.Logf("admin /readyz with Redis down: %s", readyz)
			if r := mustGet(t, client, svc.adminURL("/livez")); r.status != http.StatusOK {
				t.Errorf("admin /livez once readiness saw Redis down = %s, want 200", r)
			}
		})
	}
}

// readinessStatus is the "status" member of a /readyz answer: a report
// ("pass", "warn") or a problem with the failing checks (none at the top).
func readinessStatus(r response) string {
	var body struct {
		Status any `json:"status"`
	}
	if json.Unmarshal([]byte(r.body), &body) != nil {
		return ""
	}
	s, _ := body.Status.(string)
	return s
}
