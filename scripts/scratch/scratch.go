// Package scratch is test tooling: it copies the repository's tracked files
// to a scratch directory and runs commands there offline, for the tests that
// follow the README's recipes (rename, remove or add a module) on a copy
// instead of the work tree, and starts the service built there.
//
// A test that runs tests inside a copy sets [InCopy] in their environment;
// such tests call [SkipInCopy] first, so that they do not run themselves
// again in the copy.
package scratch

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// InCopy is the environment variable set for the commands run in a copy.
const InCopy = "SCRATCH_COPY"

// SkipInCopy skips a scratch-copy test when it runs inside a copy made by
// another: the outer run is the one that counts.
func SkipInCopy(t *testing.T) {
	t.Helper()
	if os.Getenv(InCopy) != "" {
		t.Skip("inside a scratch copy (" + InCopy + " is set): the test that made the copy runs this one")
	}
}

// Run runs name with args in dir, offline, and returns its combined output;
// a failure fails the test with that output.
//
// Go commands build with -trimpath: the build cache then keys a package by
// its content, not its folder, so that a copy's packages the recipe left
// alone are compiled once, not once per copy and per run.
func Run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), name, args...) //nolint:gosec // G204: the test names the command it runs in its copy
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOPROXY=off", "GOFLAGS=-mod=mod -trimpath", "GOWORK=off", "GOTOOLCHAIN=local", InCopy+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s in %s: %v\n%s", name, strings.Join(args, " "), dir, err, out)
	}
	return string(out)
}

// RegenerateOpenAPI rewrites the copy's committed API document, as the
// README says to after a change of the routes or the modules:
// go run ./cmd/service openapi > docs/openapi.json.
func RegenerateOpenAPI(t *testing.T, dir string) {
	t.Helper()
	Run(t, dir, "sh", "-c", "go run ./cmd/service openapi > docs/openapi.json")
}

// RepoRoot is the root of the git work tree holding this package.
func RepoRoot(t *testing.T) string {
	t.Helper()
	git, err := exec.LookPath("git")
	if err != nil {
		t.Fatalf("this test copies the repository's tracked files and needs git on PATH: install it (apt-get install git, brew install git, or https://git-scm.com/downloads): %v", err)
	}
	out, err := exec.CommandContext(t.Context(), git, "rev-parse", "--show-toplevel").Output() //nolint:gosec // G204: git from PATH
	if err != nil {
		t.Fatalf("git rev-parse --show-toplevel: %v: this test runs in a git clone of the repository", err)
	}
	return strings.TrimSpace(string(out))
}

// CopyTracked copies the files git tracks in root to dir, as they are in the
// work tree; a tracked file deleted from the work tree is left out.
func CopyTracked(t *testing.T, root, dir string) {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), "git", "-C", root, "ls-files", "-z").Output() //nolint:gosec // G204: root is this repository
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	n := 0
	for name := range bytes.SplitSeq(bytes.TrimSuffix(out, []byte{0}), []byte{0}) {
		src := filepath.Join(root, filepath.FromSlash(string(name)))
		if _, err := os.Lstat(src); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		CopyFile(t, src, filepath.Join(dir, filepath.FromSlash(string(name))))
		n++
	}
	if n == 0 {
		t.Fatal("git ls-files listed no files")
	}
}

// CopyFile copies src to dst with its permission bits, making dst's directory.
func CopyFile(t *testing.T, src, dst string) {
	t.Helper()
	info, err := os.Stat(src)
	if err != nil {
		t.Fatal(err)
	}
	if !info.Mode().IsRegular() {
		return
	}
	data, err := os.ReadFile(src) //nolint:gosec // G304: a file of this repository
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, info.Mode().Perm()); err != nil { //nolint:gosec // G703: dst is under the test's temporary directory
		t.Fatal(err)
	}
}

// Read returns the file at path; a failure fails the test.
func Read(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path) //nolint:gosec // G304: a file of the copy
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// ModulePath is the module path in root's go.mod.
func ModulePath(t *testing.T, root string) string {
	t.Helper()
	line := FirstLine(Read(t, filepath.Join(root, "go.mod")))
	path, ok := strings.CutPrefix(line, "module ")
	if !ok {
		t.Fatalf("go.mod starts %q, not with its module path", line)
	}
	return strings.TrimSpace(path)
}

// FirstLine is s up to its first newline.
func FirstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// Service is the service's binary running on free loopback ports.
type Service struct {
	// API and Admin are the listeners' base URLs, "http://127.0.0.1:port".
	API, Admin string
}

// StartService starts binary with env (and loopback listeners on free
// ports), waits until its admin /readyz answers 200, and stops it with
// SIGTERM when the test ends. It fails the test, with the service's log,
// when the service exits or is not ready within a minute.
func StartService(t *testing.T, binary string, env ...string) Service {
	t.Helper()
	api, admin := freePort(t), freePort(t)
	cmd := exec.Command(binary) //nolint:gosec,noctx // G204: the binary the test built; stopped with SIGTERM below
	cmd.Env = append([]string{"SERVICE_HTTP_ADDR=" + api, "SERVICE_ADMIN_ADDR=" + admin, "PATH=" + os.Getenv("PATH")}, env...)
	var log syncBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		var err error
		select {
		case err = <-exited:
		case <-time.After(time.Minute):
			_ = cmd.Process.Kill()
			err = <-exited
		}
		if err != nil {
			t.Logf("the service's stop: %v\n%s", err, log.String())
		}
	})
	s := Service{API: "http://" + api, Admin: "http://" + admin}
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(time.Minute)
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("the service exited (%v) before it was ready:\n%s", err, log.String())
		default:
		}
		if resp, err := client.Get(s.Admin + "/readyz"); err == nil { //nolint:noctx // a probe with the client's timeout
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the service was not ready within a minute:\n%s", log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Get returns the status, headers and body of GET url; a failure to get an
// answer fails the test.
func Get(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url) //nolint:noctx // the client's timeout bounds it
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, resp.Header, string(body)
}

// freePort returns a loopback address with a port that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().String()
}

// syncBuffer is a bytes.Buffer the service's output goroutines and the
// test may use at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Dependents lists the packages matched by patterns (go list patterns, run in
// dir) whose code or tests import pkg, directly or not, pkg itself aside: the
// packages a change to pkg can break, and the ones a copy's test must run.
func Dependents(t *testing.T, dir, pkg string, patterns ...string) []string {
	t.Helper()
	args := append([]string{"list", "-test", "-f", "{{.ImportPath}}{{range .Deps}} {{.}}{{end}}"}, patterns...)
	out := Run(t, dir, "go", args...)
	var found []string
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || !slices.Contains(fields[1:], pkg) {
			continue
		}
		// A test variant is listed as "p [p.test]", "p_test [p.test]" or "p.test".
		name := strings.TrimSuffix(strings.TrimSuffix(fields[0], ".test"), "_test")
		if name != pkg && !slices.Contains(found, name) {
			found = append(found, name)
		}
	}
	return found
}
