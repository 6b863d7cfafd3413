package main_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshkit/meshkit/internal/devpki"
)

// tricklers is how many client addresses trickle bodies, and bodies each.
const (
	tricklers       = 4
	bodiesPerClient = 10
)

// sourceDialer dials from 127.0.0.<host>: a client address of its own on
// loopback.
func sourceDialer(host int) *net.Dialer {
	return &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(host))}, Timeout: 5 * time.Second}
}

// trickleHTTP1 opens one connection from 127.0.0.<host> and sends on it a
// POST /apptest/echo that declares 100 bytes of body and sends one: the rest
// would come a byte every 2s. The connection closes when the test ends.
func trickleHTTP1(t *testing.T, s *service, host int) {
	t.Helper()
	conn, err := sourceDialer(host).Dial("tcp", s.apiAddr)
	if err != nil {
		t.Fatalf("dial from 127.0.0.%d: %v", host, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if _, err := io.WriteString(conn, "POST /apptest/echo HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"); err != nil {
		t.Fatal(err)
	}
}

// waitInflight waits until the service has at least n requests admitted in
// progress, and returns how many.
func waitInflight(t *testing.T, s *service, n int) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := admissionGauge(t, s, "admission_inflight")
		if got >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests in progress 10s after the bodies began to trickle, want at least %d", got, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fifthClient sends 20 POST /apptest/echo with its whole body through
// client and returns how many got 200, and the statuses.
func fifthClient(t *testing.T, client *http.Client, url string) (int, map[int]int) {
	t.Helper()
	statuses := map[int]int{}
	for range 20 {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(`{"message":"hi"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			statuses[0]++
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		statuses[resp.StatusCode]++
	}
	return statuses[http.StatusOK], statuses
}

// TestSlowBodiesCannotStarveAnotherClient: with the defaults, four client
// addresses each trickle ten request bodies, which hold their admission
// places while they arrive; a fifth client still gets its answers. Each
// trickling address holds at most the limit less a share while others need
// room (the client share), and the limit serves anybody's request
// (work-conserving), so room is left.
func TestSlowBodiesCannotStarveAnotherClient(t *testing.T) {
	s := startService(t, loopbackEnv())
	for host := 2; host < 2+tricklers; host++ {
		for range bodiesPerClient {
			trickleHTTP1(t, s, host)
		}
	}
	held := waitInflight(t, s, 30)
	client := &http.Client{Transport: &http.Transport{DialContext: sourceDialer(2 + tricklers).DialContext}, Timeout: requestTimeout}
	t.Cleanup(client.CloseIdleConnections)
	ok, statuses := fifthClient(t, client, s.apiURL("/apptest/echo"))
	t.Logf("%d trickling bodies in progress; the fifth client's answers: %v", held, statuses)
	if ok < 19 {
		t.Errorf("the fifth client got %d of 20 answers 200 (%v), want at least 19", ok, statuses)
	}
}

// startTLSService starts the binary serving TLS (ALPN h2) with a
// certificate the test makes, env added, and returns it with the CA's pool.
func startTLSService(t *testing.T, env ...string) (*service, *tls.Config) {
	t.Helper()
	ca, err := devpki.NewCA("slow body test CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(devpki.IPAddresses(net.IPv4(127, 0, 0, 1)), devpki.ServerAuth())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
	if err := os.WriteFile(cert, leaf.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, leaf.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	s := startService(t, loopbackEnv(append([]string{"SERVICE_TLS_CERT_FILE=" + cert, "SERVICE_TLS_KEY_FILE=" + key}, env...)...))
	return s, &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}
}

// h2Client is an HTTP/2 client whose connections come from 127.0.0.<host>.
func h2Client(t *testing.T, tlsConfig *tls.Config, host int) *http.Client {
	transport := &http.Transport{DialContext: sourceDialer(host).DialContext, TLSClientConfig: tlsConfig.Clone(), ForceAttemptHTTP2: true}
	t.Cleanup(transport.CloseIdleConnections)
	return &http.Client{Transport: transport, Timeout: requestTimeout}
}

// trickleHTTP2 sends n POST /apptest/echo on one HTTP/2 connection from
// 127.0.0.<host>, each declaring 100 bytes of body and sending one. Their
// bodies end (and the requests with them) when the test ends.
func trickleHTTP2(t *testing.T, client *http.Client, url string, n int) {
	t.Helper()
	// One stream first, so that the others share its connection.
	for i := range n {
		r, w := io.Pipe()
		t.Cleanup(func() { _ = w.CloseWithError(context.Canceled) })
		req, err := http.NewRequest(http.MethodPost, url, r)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = 100
		req.Header.Set("Content-Type", "application/json")
		sent := make(chan struct{})
		go func() {
			_, _ = io.WriteString(w, "{")
			close(sent)
		}()
		go func() {
			resp, err := client.Do(req)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			}
		}()
		if i == 0 {
			select {
			case <-sent: // the connection is up and the first stream open
			case <-time.After(10 * time.Second):
				t.Fatal("the first trickling stream never sent its byte")
			}
		}
	}
}

// The HTTP/2 variant over TLS: each of the four addresses trickles its ten
// bodies as streams of one connection; the fifth client, on a connection of
// its own, still gets its answers.
func TestSlowBodiesCannotStarveAnotherClientOverHTTP2(t *testing.T) {
	s, tlsConfig := startTLSService(t)
	_, port, _ := net.SplitHostPort(s.apiAddr)
	url := "https://127.0.0.1:" + port + "/apptest/echo"
	for host := 2; host < 2+tricklers; host++ {
		client := h2Client(t, tlsConfig, host)
		trickleHTTP2(t, client, url, bodiesPerClient)
	}
	held := waitInflight(t, s, 30)
	client := h2Client(t, tlsConfig, 2+tricklers)
	ok, statuses := fifthClient(t, client, url)
	t.Logf("%d trickling streams in progress; the fifth client's answers over HTTP/2: %v", held, statuses)
	if ok < 19 {
		t.Errorf("the fifth client got %d of 20 answers 200 (%v), want at least 19", ok, statuses)
	}
}

// A trickling body is cut at the request deadline: the 504 problem comes
// then, and its admission place with it, while the client is still sending.
func TestSlowBodyIsCutAtTheDeadline(t *testing.T) {
	const timeout = time.Second
	s := startService(t, loopbackEnv(fmt.Sprint("SERVICE_HTTP_REQUEST_TIMEOUT=", timeout)))
	conn, err := net.Dial("tcp", s.apiAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	began := time.Now()
	if _, err := io.WriteString(conn, "POST /apptest/echo HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	head := make([]byte, len("HTTP/1.1 504"))
	if _, err := io.ReadFull(conn, head); err != nil {
		t.Fatalf("no answer to a trickling body: %v", err)
	}
	elapsed := time.Since(began)
	if string(head) != "HTTP/1.1 504" || elapsed < timeout || elapsed > 10*time.Second {
		t.Fatalf("%q after %s, want a 504 at the deadline of %s", head, elapsed, timeout)
	}
	// The place comes back as the 504 goes out; the gauge may be read a
	// moment before.
	for wait := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		n := admissionGauge(t, s, "admission_inflight")
		if n == 0 {
			break
		}
		if time.Now().After(wait) {
			t.Fatalf("%d requests in progress 5s after the deadline answered, want the trickling one's place back", n)
		}
	}
}
