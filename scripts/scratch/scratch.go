// Package scratch is test tooling: it copies the repository's tracked files
// to a scratch directory and runs commands there offline, for the tests that
// follow the README's recipes (rename, remove or add a module) on a copy
// instead of the work tree.
//
// A test that runs tests inside a copy sets [InCopy] in their environment;
// such tests call [SkipInCopy] first, so that they do not run themselves
// again in the copy.
package scratch

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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
func Run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), name, args...) //nolint:gosec // G204: the test names the command it runs in its copy
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOPROXY=off", "GOFLAGS=-mod=mod", "GOWORK=off", "GOTOOLCHAIN=local", InCopy+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s in %s: %v\n%s", name, strings.Join(args, " "), dir, err, out)
	}
	return string(out)
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
