package redistest_test

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/meshkit/meshkit/internal/redistest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// pingTimeout bounds one PING to a server that should answer.
const pingTimeout = 2 * time.Second

func mustPing(t *testing.T, addr string) {
	t.Helper()
	if err := redistest.Ping(addr, pingTimeout); err != nil {
		t.Fatalf("PING %s: %v", addr, err)
	}
}

func TestStartAnswersPing(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	mustPing(t, srv.Addr())
	if !strings.HasPrefix(srv.Addr(), "127.0.0.1:") {
		t.Errorf("Addr() = %q, want 127.0.0.1:<port>", srv.Addr())
	}
}

func TestStartPassesArgs(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, "--maxmemory", "12345678")
	got, err := redistest.Do(srv.Addr(), pingTimeout, "INFO", "memory")
	if err != nil {
		t.Fatalf("INFO memory: %v", err)
	}
	if !strings.Contains(got, "maxmemory:12345678\r\n") {
		t.Errorf("INFO memory does not show --maxmemory 12345678:\n%s", got)
	}
}

func TestStopBreaksClientsAndRefusesConnections(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	conn, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer func() { _ = conn.Close() }()
	r := bufio.NewReader(conn)
	if _, err := conn.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		t.Fatalf("PING on an open connection: %v", err)
	}
	if line, err := r.ReadString('\n'); err != nil || line != "+PONG\r\n" {
		t.Fatalf("PING on an open connection answered %q, %v", line, err)
	}

	srv.Stop()

	if err := redistest.Ping(srv.Addr(), pingTimeout); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("PING after Stop: %v, want connection refused", err)
	}
	if err := conn.SetDeadline(time.Now().Add(pingTimeout)); err != nil {
		t.Fatal(err)
	}
	_, _ = conn.Write([]byte("*1\r\n$4\r\nPING\r\n")) // may still be buffered; the read must fail
	if line, err := r.ReadString('\n'); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("open connection after Stop read %q, %v; want the connection closed or reset", line, err)
	}
	srv.Stop() // stopping a stopped server does nothing
}

func TestRestartAnswersOnTheSameAddr(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	addr := srv.Addr()
	if _, err := redistest.Do(addr, pingTimeout, "SET", "k", "v"); err != nil {
		t.Fatalf("SET: %v", err)
	}

	srv.Stop()
	srv.Restart()

	if srv.Addr() != addr {
		t.Fatalf("Addr() after Restart = %s, want %s", srv.Addr(), addr)
	}
	mustPing(t, addr)
	if got, err := redistest.Do(addr, pingTimeout, "GET", "k"); err != nil || got != "" {
		t.Errorf("GET k after Restart = %q, %v; want an empty server (nothing is saved)", got, err)
	}

	srv.Restart() // restarting a running server stops it first
	mustPing(t, addr)
}

func TestPauseHangsAndResumeAnswers(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)

	srv.Pause()
	err := redistest.Ping(srv.Addr(), 200*time.Millisecond)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("PING to a paused server: %v, want a timeout", err)
	}

	srv.Resume()
	mustPing(t, srv.Addr())
}

func TestStopWhilePaused(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	srv.Pause()
	srv.Stop()
	if err := redistest.Ping(srv.Addr(), pingTimeout); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("PING after Stop: %v, want connection refused", err)
	}
	srv.Restart()
	mustPing(t, srv.Addr())
}

func TestCleanupKillsAPausedServer(t *testing.T) {
	t.Parallel()
	var addr string
	t.Run("paused", func(t *testing.T) {
		srv := redistest.Start(t)
		addr = srv.Addr()
		srv.Pause()
	})
	if err := redistest.Ping(addr, pingTimeout); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("PING after the owning test ended: %v, want connection refused", err)
	}
}

func TestStartClusterAssignsEverySlot(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3)
	addrs := c.Addrs()
	if len(addrs) != 3 || len(c.Nodes()) != 3 {
		t.Fatalf("Addrs() = %v and %d Nodes(), want 3 of each", addrs, len(c.Nodes()))
	}
	for _, addr := range addrs {
		info, err := redistest.Do(addr, pingTimeout, "CLUSTER", "INFO")
		if err != nil {
			t.Fatalf("CLUSTER INFO: %v", err)
		}
		for _, want := range []string{"cluster_state:ok", "cluster_slots_assigned:16384", "cluster_known_nodes:3", "cluster_size:3"} {
			if !strings.Contains(info, want+"\r\n") {
				t.Errorf("CLUSTER INFO on %s lacks %s:\n%s", addr, want, info)
			}
		}
	}
	// "foo" hashes to slot 12182, in the last node's share: the others redirect.
	if _, err := redistest.Do(addrs[2], pingTimeout, "SET", "foo", "bar"); err != nil {
		t.Errorf("SET foo on its own node: %v", err)
	}
	_, err := redistest.Do(addrs[0], pingTimeout, "SET", "foo", "bar")
	if want := "MOVED 12182 " + addrs[2]; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("SET foo on another node: %v, want %s", err, want)
	}
}

func TestAddrAnswersPing(t *testing.T) {
	mustPing(t, redistest.Addr(t))
}

func TestAddrUsesREDIS_ADDR(t *testing.T) {
	srv := redistest.Start(t)
	t.Setenv("REDIS_ADDR", srv.Addr())
	if got := redistest.Addr(t); got != srv.Addr() {
		t.Errorf("Addr() = %s, want REDIS_ADDR %s", got, srv.Addr())
	}
}

func TestAddrFailsWhenREDIS_ADDRDoesNotAnswer(t *testing.T) {
	srv := redistest.Start(t)
	srv.Stop()
	t.Setenv("REDIS_ADDR", srv.Addr())
	msg := fatalMessage(t, func(tb testing.TB) { redistest.Addr(tb) })
	if want := "REDIS_ADDR=" + srv.Addr() + " does not answer PING"; !strings.Contains(msg, want) {
		t.Errorf("Addr failed with %q, want it to say %q", msg, want)
	}
}

func TestStartWithoutRedisServerSaysHowToGetOne(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	msg := fatalMessage(t, func(tb testing.TB) { redistest.Start(tb) })
	if want := "apt-get install redis-server, or set REDIS_ADDR=host:port"; !strings.Contains(msg, want) {
		t.Errorf("Start failed with %q, want it to say %q", msg, want)
	}
}

func TestDoReplies(t *testing.T) {
	t.Parallel()
	addr := redistest.Start(t).Addr()
	for _, tc := range []struct {
		args    []string
		want    string
		wantErr error
	}{
		{args: []string{"SET", "k", "v\r\nwith CRLF"}, want: "OK"},
		{args: []string{"GET", "k"}, want: "v\r\nwith CRLF"},
		{args: []string{"GET", "missing"}, want: ""},
		{args: []string{"INCR", "n"}, want: "1"},
		{args: []string{"NOSUCHCOMMAND"}, wantErr: redistest.ErrReply},
	} {
		got, err := redistest.Do(addr, pingTimeout, tc.args...)
		if got != tc.want || !errors.Is(err, tc.wantErr) {
			t.Errorf("Do(%q) = %q, %v; want %q, %v", tc.args, got, err, tc.want, tc.wantErr)
		}
	}
}

// fatalRecorder is the test's TB except that Fatalf records the message and
// ends the goroutine, as the real one does.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// fatalMessage runs fn with a TB whose Fatalf is recorded, and returns the
// message; it fails the test if fn returns without calling Fatalf.
func fatalMessage(t *testing.T, fn func(testing.TB)) string {
	t.Helper()
	rec := &fatalRecorder{TB: t}
	done := make(chan bool)
	go func() {
		returned := false
		defer func() { done <- returned }()
		fn(rec)
		returned = true
	}()
	if <-done {
		t.Fatal("returned without calling Fatalf")
	}
	return rec.msg
}
