// Package redistest gives tests a real Redis: REDIS_ADDR, else 127.0.0.1:6379, else a redis-server it starts.
//
// Addr finds or starts a Redis that tests may share. Start runs a
// redis-server that the test owns and can stop, restart and pause, for fault
// tests; StartTLS runs one that speaks only TLS, with certificates the test
// makes (NewTLSFiles); StartReplica runs a replica of a server,
// StartSentinels a primary with replicas watched by sentinels, and
// StartCluster (StartClusterWith, for replicas) a Redis Cluster. Do and Ping speak just enough RESP
// to check on them, so the package needs no Redis client library. It needs
// redis-server on PATH only when it has to start one, and it never skips a
// test: without a Redis the test fails with a message saying how to get one.
package redistest

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// DefaultAddr is where Addr looks for a Redis when REDIS_ADDR is unset.
const DefaultAddr = "127.0.0.1:6379"

// Bounds on the checks Addr makes.
const (
	envPingTimeout     = 2 * time.Second        // REDIS_ADDR was asked for: give it time
	defaultPingTimeout = 300 * time.Millisecond // DefaultAddr is a guess: fail over fast
)

// ErrReply is wrapped by the error Do returns when Redis answers with an
// error reply ("-ERR ...").
var ErrReply = errors.New("redis error reply")

// Addr returns the address ("host:port") of a Redis the test should use:
// REDIS_ADDR if it is set, else DefaultAddr if a Redis answers PING there
// within 300ms, else a redis-server from PATH that Addr starts on a free
// loopback port and stops when the test ends.
//
// The Redis may be shared with other tests and other packages running at the
// same time: use keys unique to the test and never FLUSHDB or FLUSHALL. A test
// that needs a Redis to itself, or to break it, uses Start.
//
// Addr fails the test with t.Fatalf if REDIS_ADDR is set but does not answer
// PING, or if it has to start a redis-server and none is on PATH.
func Addr(t testing.TB) string {
	t.Helper()
	if addr := os.Getenv("REDIS_ADDR"); addr != "" {
		if err := Ping(addr, envPingTimeout); err != nil {
			t.Fatalf("redistest: REDIS_ADDR=%s does not answer PING: %v (unset REDIS_ADDR to use %s or a redis-server started by the test)", addr, err, DefaultAddr)
		}
		return addr
	}
	if Ping(DefaultAddr, defaultPingTimeout) == nil {
		return DefaultAddr
	}
	if _, err := exec.LookPath(serverBinary); err != nil {
		t.Fatalf("redistest: this test needs Redis: REDIS_ADDR is unset, nothing answers PING on %s, and %s is not on PATH (%v); apt-get install redis-server, or set REDIS_ADDR=host:port", DefaultAddr, serverBinary, err)
	}
	return Start(t).Addr()
}

// Ping sends PING to the Redis at addr and returns nil if it answers PONG
// within timeout, which bounds the dial and the exchange together. A Redis
// that accepts the connection but does not answer in time gives an error
// wrapping os.ErrDeadlineExceeded.
func Ping(addr string, timeout time.Duration) error {
	reply, err := Do(addr, timeout, "PING")
	if err != nil {
		return err
	}
	if reply != "PONG" {
		return fmt.Errorf("redis %s: PING answered %q, want PONG", addr, reply)
	}
	return nil
}

// Do sends one command on a new connection to addr and returns the reply,
// all within timeout. It understands the replies a test needs to check on a
// server: simple strings, integers (as decimal text) and bulk strings (a nil
// bulk string is ""). An error reply gives an error wrapping ErrReply; any
// other reply type, such as an array, gives an error.
func Do(addr string, timeout time.Duration, args ...string) (string, error) {
	return do(addr, nil, timeout, args)
}

// DoTLS is Do over TLS with config.
func DoTLS(addr string, config *tls.Config, timeout time.Duration, args ...string) (string, error) {
	return do(addr, config, timeout, args)
}

// do is Do, over TLS when config is not nil.
func do(addr string, config *tls.Config, timeout time.Duration, args []string) (string, error) {
	if len(args) == 0 {
		return "", errors.New("redistest.Do: no command")
	}
	deadline := time.Now().Add(timeout)
	dialer := &net.Dialer{Deadline: deadline}
	var conn net.Conn
	var err error
	if config != nil {
		conn, err = (&tls.Dialer{NetDialer: dialer, Config: config}).Dial("tcp", addr)
	} else {
		conn, err = dialer.Dial("tcp", addr)
	}
	if err != nil {
		return "", fmt.Errorf("redis %s: %w", addr, err)
	}
	defer func() { _ = conn.Close() }()
	if err := conn.SetDeadline(deadline); err != nil {
		return "", fmt.Errorf("redis %s: %w", addr, err)
	}
	if _, err := conn.Write(encodeCommand(args)); err != nil {
		return "", fmt.Errorf("redis %s: sending %s: %w", addr, args[0], err)
	}
	reply, err := readReply(bufio.NewReader(conn))
	if err != nil {
		return "", fmt.Errorf("redis %s: %s: %w", addr, args[0], err)
	}
	return reply, nil
}

// encodeCommand is args as a RESP array of bulk strings; PING is
// "*1\r\n$4\r\nPING\r\n".
func encodeCommand(args []string) []byte {
	b := fmt.Appendf(nil, "*%d\r\n", len(args))
	for _, arg := range args {
		b = fmt.Appendf(b, "$%d\r\n%s\r\n", len(arg), arg)
	}
	return b
}

// readReply reads one reply of a type Do understands.
func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("reading reply: %w", err)
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", errors.New("empty reply line")
	}
	switch kind, rest := line[0], line[1:]; kind {
	case '+', ':':
		return rest, nil
	case '-':
		return "", fmt.Errorf("%w: %s", ErrReply, rest)
	case '$':
		return readBulk(r, rest)
	default:
		return "", fmt.Errorf("unsupported reply %q", line)
	}
}

// readBulk reads the body of a bulk string whose header gave size.
func readBulk(r *bufio.Reader, size string) (string, error) {
	n, err := strconv.Atoi(size)
	if err != nil {
		return "", fmt.Errorf("bad bulk string length %q: %w", size, err)
	}
	if n < 0 {
		return "", nil
	}
	body := make([]byte, n+2) // with the closing CRLF
	if _, err := io.ReadFull(r, body); err != nil {
		return "", fmt.Errorf("reading bulk string: %w", err)
	}
	return string(body[:n]), nil
}

// serverBinary is the program Start runs, looked up on PATH.
const serverBinary = "redis-server"

// Bounds on waiting for a redis-server, so that a broken one fails the test
// instead of hanging it.
const (
	readyTimeout   = 10 * time.Second // from exec until it answers as itself
	rebindTimeout  = 5 * time.Second  // Restart retrying a port still in use
	stopTimeout    = 5 * time.Second  // from SIGKILL until the port refuses
	pollInterval   = 20 * time.Millisecond
	probeTimeout   = 200 * time.Millisecond // one readiness or port probe
	startAttempts  = 3                      // fresh ports Start tries
	outputTailSize = 4096                   // bytes of output in failure messages
)

// Server is a redis-server process that the test owns. Its methods are safe
// for concurrent use, but Start, Stop, Restart, Pause and Resume fail the test
// with t.Fatalf, so call them from the goroutine running the test.
type Server struct {
	t    testing.TB
	dir  string   // working directory, where the output log is kept
	args []string // extra arguments, after the ones Start always gives
	port int
	// tls, when set, makes the port a TLS port ("--port 0 --tls-port"),
	// and is the configuration the package's own commands dial it with.
	tls *tls.Config
	// conf, when set, is written to redis.conf in dir before the first run,
	// and that file given as the first argument (a sentinel rewrites it).
	conf string

	mu   sync.Mutex
	proc *process // nil while stopped
}

// process is one run of redis-server.
type process struct {
	cmd    *exec.Cmd
	done   chan struct{} // closed when cmd.Wait has returned
	paused bool
}

// Start starts redis-server from PATH in a fresh t.TempDir() working
// directory with the arguments
//
//	--port <free port> --bind 127.0.0.1 --save "" --appendonly no --protected-mode no
//
// followed by args, and returns once it answers PING. When the test ends the
// server is resumed if paused, killed, and waited for. Start fails the test if
// redis-server is not on PATH or does not answer within 10 seconds; the
// message includes the server's output.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	return start(t, freePort, args)
}

// start is Start with a chooser of ports. A port that another process takes
// between being chosen and redis-server binding it makes the server exit, so
// start tries a few ports.
func start(t testing.TB, choosePort func() (int, error), args []string) *Server {
	t.Helper()
	return startServer(t, &Server{args: args}, choosePort)
}

// startServer starts s, whose args, tls and conf are set, on a port of
// choosePort.
func startServer(t testing.TB, s *Server, choosePort func() (int, error)) *Server {
	t.Helper()
	s.t, s.dir = t, t.TempDir()
	t.Cleanup(s.cleanup)
	var err error
	for range startAttempts {
		if s.port, err = choosePort(); err != nil {
			t.Fatalf("redistest: choosing a port: %v", err)
		}
		var exited bool
		if exited, err = s.run(); err == nil || !exited {
			break
		}
	}
	if err != nil {
		t.Fatalf("redistest: starting %s: %v\n%s", serverBinary, err, s.tail())
	}
	return s
}

// Do is the package's Do on the server, over TLS for a StartTLS server.
func (s *Server) Do(timeout time.Duration, args ...string) (string, error) {
	return do(s.Addr(), s.tls, timeout, args)
}

// Addr is the server's address, "127.0.0.1:<port>". It stays the same across
// Stop and Restart.
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// Output is what the server has written to stdout and stderr so far, across
// restarts, for failure messages.
func (s *Server) Output() string {
	out, err := os.ReadFile(s.logPath())
	if err != nil {
		return fmt.Sprintf("(no output: %v)", err)
	}
	return string(out)
}

// Stop kills the server with SIGKILL, even while it is paused, and returns
// once its port refuses connections: clients in the middle of a command see
// their connection fail, as with a crash. Stopping a stopped server does
// nothing.
func (s *Server) Stop() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.stop(); err != nil {
		s.t.Fatalf("redistest: stopping %s: %v\n%s", s.Addr(), err, s.tail())
	}
}

// Restart stops the server if it is running, then starts it again on the
// same port and in the same directory, and returns once it answers PING. It
// retries for up to 5 seconds while the port cannot be bound.
func (s *Server) Restart() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.stop(); err != nil {
		s.t.Fatalf("redistest: stopping %s: %v\n%s", s.Addr(), err, s.tail())
	}
	deadline := time.Now().Add(rebindTimeout)
	for {
		exited, err := s.run()
		if err == nil {
			return
		}
		if !exited || time.Now().After(deadline) {
			s.t.Fatalf("redistest: restarting %s: %v\n%s", s.Addr(), err, s.tail())
		}
		time.Sleep(pollInterval)
	}
}

// Pause stops the server with SIGSTOP: it still accepts TCP connections (the
// kernel queues them) but answers nothing until Resume, like a hung Redis.
func (s *Server) Pause() {
	s.t.Helper()
	s.signal(syscall.SIGSTOP, true)
}

// Resume continues a paused server with SIGCONT.
func (s *Server) Resume() {
	s.t.Helper()
	s.signal(syscall.SIGCONT, false)
}

// signal sends sig to the running process and records whether it is paused.
func (s *Server) signal(sig syscall.Signal, paused bool) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		s.t.Fatalf("redistest: %v to %s: the server is stopped", sig, s.Addr())
	}
	if err := s.proc.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("redistest: %v to %s: %v", sig, s.Addr(), err)
	}
	s.proc.paused = paused
}

// cleanup stops the server when the test ends.
func (s *Server) cleanup() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.stop(); err != nil {
		s.t.Errorf("redistest: stopping %s at the end of the test: %v", s.Addr(), err)
	}
}

// run starts a process on s.port and waits until it answers. On failure it
// leaves no process behind and reports whether the process exited by itself,
// as it does when the port is taken.
func (s *Server) run() (exited bool, err error) {
	p, err := s.launch()
	if err != nil {
		return false, err
	}
	s.proc = p
	if err := s.waitReady(p); err != nil {
		select {
		case <-p.done:
			exited = true
		default:
		}
		if stopErr := s.stop(); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
		return exited, err
	}
	return false, nil
}

// launch execs redis-server with its output appended to the log, and reaps
// it in a goroutine that ends when the process does.
func (s *Server) launch() (*process, error) {
	bin, err := exec.LookPath(serverBinary)
	if err != nil {
		return nil, fmt.Errorf("%w (apt-get install redis-server, or set REDIS_ADDR=host:port and use redistest.Addr)", err)
	}
	log, err := os.OpenFile(s.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the output log: %w", err)
	}
	defer func() { _ = log.Close() }() // the child has its own descriptor
	ports := []string{"--port", strconv.Itoa(s.port)}
	if s.tls != nil {
		ports = []string{"--port", "0", "--tls-port", strconv.Itoa(s.port)}
	}
	var args []string
	if s.conf != "" {
		conf := filepath.Join(s.dir, "redis.conf")
		if _, err := os.Stat(conf); errors.Is(err, os.ErrNotExist) {
			if err := os.WriteFile(conf, []byte(s.conf), 0o600); err != nil {
				return nil, fmt.Errorf("writing %s: %w", conf, err)
			}
		}
		args = append(args, conf)
	}
	args = append(args, ports...)
	args = append(args, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "no")
	args = append(args, s.args...)
	cmd := exec.Command(bin, args...) //nolint:gosec // G204: bin is redis-server from PATH, args are the test's own
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("exec %s: %w", bin, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait() // the exit status is expected to be "killed"
		close(p.done)
	}()
	return p, nil
}

// waitReady polls until the server on s.port is p, which proves that p has
// bound the port and answers commands.
func (s *Server) waitReady(p *process) error {
	want := fmt.Sprintf("\nprocess_id:%d\r\n", p.cmd.Process.Pid)
	deadline := time.Now().Add(readyTimeout)
	for {
		info, err := s.Do(probeTimeout, "INFO", "server")
		if err == nil && strings.Contains(info, want) {
			return nil
		}
		if err == nil {
			err = errors.New("another process answers on the port")
		}
		select {
		case <-p.done:
			return fmt.Errorf("redis-server exited: %v", p.cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not answering after %v: %w", readyTimeout, err)
		}
		time.Sleep(pollInterval)
	}
}

// stop kills the running process, if any, waits for it, and waits until its
// port refuses connections. The caller holds s.mu.
func (s *Server) stop() error {
	p := s.proc
	if p == nil {
		return nil
	}
	s.proc = nil
	if p.paused {
		_ = p.cmd.Process.Signal(syscall.SIGCONT) // SIGKILL would do, but leave nothing stopped
	}
	_ = p.cmd.Process.Kill() // fails only if it has already exited
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		return fmt.Errorf("pid %d still running %v after SIGKILL", p.cmd.Process.Pid, stopTimeout)
	}
	return waitRefused(s.Addr(), stopTimeout)
}

// waitRefused polls addr until a dial fails.
func waitRefused(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		conn, err := net.DialTimeout("tcp", addr, probeTimeout)
		if err != nil {
			return nil
		}
		_ = conn.Close()
		if time.Now().After(deadline) {
			return fmt.Errorf("%s still accepts connections %v after the server was killed", addr, timeout)
		}
		time.Sleep(pollInterval)
	}
}

// logPath is the file that collects the server's stdout and stderr.
func (s *Server) logPath() string { return filepath.Join(s.dir, "redis-server.log") }

// tail is the end of the output, for failure messages.
func (s *Server) tail() string {
	out := s.Output()
	if len(out) > outputTailSize {
		out = "..." + out[len(out)-outputTailSize:]
	}
	return out
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("listening on a free port: %w", err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}
