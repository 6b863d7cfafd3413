package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Bounds on every wait, so that a broken service fails the suite instead of
// hanging it.
const (
	buildTimeout   = 5 * time.Minute
	startTimeout   = 15 * time.Second // until "service ready"
	exitTimeout    = 10 * time.Second // until a stopped or failing process is gone
	requestTimeout = 10 * time.Second // one HTTP exchange with the service
)

// serviceBinary is the binary TestMain builds from this package, once.
var serviceBinary string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

// runTests builds the binary, runs the tests and checks that they left no
// goroutine behind. It never skips: a binary that cannot be built fails.
func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "meshkit-service-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: cannot make a directory for the service binary:", err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	serviceBinary = filepath.Join(dir, "service")
	if err := buildService(serviceBinary); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "FAIL: goroutines left running after the tests:", err)
			return 1
		}
	}
	return code
}

// buildService runs `go build -tags apptest -o out .` in this package's
// directory: the binary then also runs apptest.Module (apptest.go), whose
// routes under /apptest/ the tests call, so that they need no route of a
// module a team may remove.
func buildService(out string) error {
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-tags", "apptest", "-o", out, ".")
	if output, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("cannot build the service binary (go build -tags apptest -o %s .): %w\n%s", out, err, output)
	}
	return nil
}

// cleanEnv is an environment with only PATH and HOME from the test's own plus
// vars ("NAME=value"), so that the developer's SERVICE_* settings cannot leak
// into the service.
func cleanEnv(vars ...string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	return append(env, vars...)
}

// loopbackEnv is cleanEnv with both listeners on free loopback ports.
func loopbackEnv(vars ...string) []string {
	return cleanEnv(append([]string{"SERVICE_HTTP_ADDR=127.0.0.1:0", "SERVICE_ADMIN_ADDR=127.0.0.1:0"}, vars...)...)
}

// service is a running service binary.
type service struct {
	t      testing.TB
	cmd    *exec.Cmd
	stderr *stderrLog
	stdout *stderrLog    // the same kind of collector: lines, whatever they hold
	exited chan struct{} // closed once the process is gone and its output read

	apiAddr, adminAddr string // bound addresses, from the log
}

// startService runs the binary with env and args and waits until it logs
// "service ready". The process is killed when the test ends, and its stderr
// logged if the test failed.
func startService(t testing.TB, env []string, args ...string) *service {
	t.Helper()
	s := &service{
		t:      t,
		cmd:    exec.Command(serviceBinary, args...),
		stderr: newStderrLog(),
		stdout: newStderrLog(),
		exited: make(chan struct{}),
	}
	s.cmd.Env = env
	s.cmd.Stderr, s.cmd.Stdout = s.stderr, s.stdout
	s.cmd.WaitDelay = exitTimeout // bounds reading the output after exit
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", serviceBinary, err)
	}
	go func() {
		_ = s.cmd.Wait() // the exit status is read from cmd.ProcessState
		close(s.exited)
	}()
	t.Cleanup(s.kill)

	select {
	case <-s.stderr.ready:
	case <-s.exited:
		t.Fatalf("service exited with status %d before it was ready", s.cmd.ProcessState.ExitCode())
	case <-time.After(startTimeout):
		t.Fatalf("service not ready after %s", startTimeout)
	}
	s.apiAddr, s.adminAddr = s.stderr.listenAddr("api"), s.stderr.listenAddr("admin")
	if s.apiAddr == "" || s.adminAddr == "" {
		t.Fatalf(`service ready without logging both "http server listening" lines (api=%q admin=%q)`, s.apiAddr, s.adminAddr)
	}
	return s
}

// kill ends the process if it still runs, and waits for it; on a failed test
// it logs the service's stderr.
func (s *service) kill() {
	select {
	case <-s.exited:
	default:
		_ = s.cmd.Process.Kill()
		select {
		case <-s.exited:
		case <-time.After(exitTimeout):
			s.t.Errorf("service (pid %d) still running %s after SIGKILL", s.cmd.Process.Pid, exitTimeout)
		}
	}
	if s.t.Failed() {
		s.t.Logf("service stderr:\n%s", s.stderr)
	}
}

// signal sends sig to the process.
func (s *service) signal(sig os.Signal) {
	s.t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("send %v to the service: %v", sig, err)
	}
}

// waitExit waits at most timeout for the process to exit and returns its exit
// status (-1 when a signal killed it).
func (s *service) waitExit(timeout time.Duration) int {
	s.t.Helper()
	select {
	case <-s.exited:
		return s.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		s.t.Fatalf("service still running after %s", timeout)
		return 0
	}
}

func (s *service) apiURL(path string) string   { return "http://" + s.apiAddr + path }
func (s *service) adminURL(path string) string { return "http://" + s.adminAddr + path }

// stderrLog collects the service's stderr line by line and notes the JSON log
// lines the tests wait for. It is safe for concurrent use.
type stderrLog struct {
	ready chan struct{} // closed at {"msg":"service ready"}

	mu      sync.Mutex
	partial []byte            // the last line, until its newline arrives
	lines   []string          // complete lines
	addrs   map[string]string // listener name -> bound address
	isReady bool
}

func newStderrLog() *stderrLog {
	return &stderrLog{ready: make(chan struct{}), addrs: make(map[string]string)}
}

// Write implements io.Writer for exec.Cmd.Stderr.
func (l *stderrLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.addLine(string(l.partial[:i]))
		l.partial = l.partial[i+1:]
	}
	return len(p), nil
}

// logEntry is the part of a JSON log line the tests read.
type logEntry struct {
	Msg      string `json:"msg"`
	Listener string `json:"listener"`
	Addr     string `json:"addr"`
}

func (l *stderrLog) addLine(line string) {
	l.lines = append(l.lines, line)
	var e logEntry
	if json.Unmarshal([]byte(line), &e) != nil {
		return
	}
	switch e.Msg {
	case "http server listening":
		l.addrs[e.Listener] = e.Addr
	case "service ready":
		if !l.isReady {
			l.isReady = true
			close(l.ready)
		}
	}
}

func (l *stderrLog) listenAddr(listener string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.addrs[listener]
}

// count is the number of lines of the service's stderr that contain s.
func (l *stderrLog) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

// String is everything written so far.
func (l *stderrLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := l.lines
	if len(l.partial) > 0 {
		lines = append(lines[:len(lines):len(lines)], string(l.partial))
	}
	return strings.Join(lines, "\n")
}

// result is a finished run of the binary.
type result struct {
	exitCode       int
	stdout, stderr string
	elapsed        time.Duration
}

// runService runs the binary to its end, at most exitTimeout; a run that
// takes longer fails the test.
func runService(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), exitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, serviceBinary, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = time.Second
	began := time.Now()
	err := cmd.Run()
	elapsed := time.Since(began)
	if ctx.Err() != nil {
		t.Fatalf("service %s did not exit within %s\nstderr:\n%s", strings.Join(args, " "), exitTimeout, &stderr)
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("run service %s: %v", strings.Join(args, " "), err)
	}
	return result{exitCode: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String(), elapsed: elapsed}
}

// newClient is an HTTP client with a bounded timeout whose idle connections
// are closed when the test ends.
func newClient(t testing.TB) *http.Client {
	transport := &http.Transport{}
	t.Cleanup(transport.CloseIdleConnections)
	return &http.Client{Transport: transport, Timeout: requestTimeout}
}

// response is what a GET got: an answer or an error.
type response struct {
	status int
	header http.Header
	body   string
	err    error
}

func (r response) String() string {
	if r.err != nil {
		return "error: " + r.err.Error()
	}
	return fmt.Sprintf("%d %q (Content-Type %q)", r.status, r.body, r.header.Get("Content-Type"))
}

// fetch GETs url, with header holding name, value pairs, and reads the whole
// body. It may run on any goroutine.
func fetch(client *http.Client, url string, header ...string) response {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return response{err: err}
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		return response{err: err}
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: string(body), err: err}
}

// mustGet is fetch on the test goroutine, failing the test on a transport error.
func mustGet(t testing.TB, client *http.Client, url string, header ...string) response {
	t.Helper()
	r := fetch(client, url, header...)
	if r.err != nil {
		t.Fatalf("GET %s: %v", url, r.err)
	}
	return r
}

// slowUpstream is an upstream server that answers each request after a delay.
type slowUpstream struct {
	*httptest.Server
	received chan struct{} // one value per request received
}

// newSlowUpstream answers 200 body after delay, or gives up early when the
// caller goes away or the test ends.
func newSlowUpstream(t *testing.T, delay time.Duration, body string) *slowUpstream {
	u := &slowUpstream{received: make(chan struct{}, 100)}
	testEnded := make(chan struct{})
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case u.received <- struct{}{}:
		default:
		}
		timer := time.NewTimer(delay)
		defer timer.Stop()
		select {
		case <-timer.C:
			_, _ = io.WriteString(w, body)
		case <-r.Context().Done():
		case <-testEnded:
		}
	}))
	t.Cleanup(u.Close)
	t.Cleanup(func() { close(testEnded) }) // runs first, so Close does not wait out delay
	return u
}

// waitForRequests waits until the upstream has received n requests.
func (u *slowUpstream) waitForRequests(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for i := range n {
		select {
		case <-u.received:
		case <-deadline:
			t.Fatalf("the upstream received %d of %d requests within %s", i, n, timeout)
		}
	}
}

// pollUntil calls check every few milliseconds until it reports true, at most
// timeout; it returns whether check succeeded.
func pollUntil(timeout time.Duration, check func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if check() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// unusedLoopbackAddr is a loopback address nothing listens on (a port the
// kernel just handed out and got back).
func unusedLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatalf("close listener: %v", err)
	}
	return addr
}
