package renametest

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

// newPath is what the README's recipe renames the module to.
const newPath = "example.com/acme/orders"

// TestRenameModuleBuildsAndVets does what "Make it yours" tells a new user:
// scripts/rename-module on a copy of the repository's tracked files, then
// go build and go vet in the module and in the nested bench/ module. The
// module cache is the one this test runs with and GOPROXY is off, so the
// renamed module needs nothing that is not already downloaded.
func TestRenameModuleBuildsAndVets(t *testing.T) {
	root := repoRoot(t)
	dir := t.TempDir()
	copyTracked(t, root, dir)
	// The script itself, as it is in the working tree (new or changed before
	// it is committed).
	copyFile(t, filepath.Join(root, "scripts", "rename-module"), filepath.Join(dir, "scripts", "rename-module"))

	out := run(t, dir, filepath.Join(dir, "scripts", "rename-module"), newPath)
	t.Logf("scripts/rename-module %s:\n%s", newPath, out)

	if got := read(t, filepath.Join(dir, "go.mod")); !strings.HasPrefix(got, "module "+newPath+"\n") {
		t.Errorf("go.mod starts %q, want module %s", firstLine(got), newPath)
	}
	bench := read(t, filepath.Join(dir, "bench", "go.mod"))
	for _, want := range []string{"module " + newPath + "/bench\n", "\t" + newPath + " v", "replace " + newPath + " => ../"} {
		if !strings.Contains(bench, want) {
			t.Errorf("bench/go.mod has no %q:\n%s", want, bench)
		}
	}
	old := modulePath(t, root)
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if name := d.Name(); strings.HasSuffix(name, ".go") || name == "go.mod" || name == ".golangci.yml" {
			if strings.Contains(read(t, path), old) {
				t.Errorf("%s still mentions %s", strings.TrimPrefix(path, dir+string(filepath.Separator)), old)
			}
		}
		return nil
	})
	if out := run(t, dir, "gofmt", "-l", "."); out != "" {
		t.Errorf("gofmt -l lists:\n%s", out)
	}
	for _, mod := range []string{dir, filepath.Join(dir, "bench")} {
		run(t, mod, "go", "build", "./...")
		run(t, mod, "go", "vet", "./...")
	}
}

// run runs name with args in dir, offline, and returns its combined output;
// a failure fails the test with that output.
func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOPROXY=off", "GOFLAGS=-mod=mod", "GOWORK=off", "GOTOOLCHAIN=local")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s in %s: %v\n%s", name, strings.Join(args, " "), dir, err, out)
	}
	return string(out)
}

// repoRoot is the root of the git work tree holding this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	git, err := exec.LookPath("git")
	if err != nil {
		t.Fatalf("this test copies the repository's tracked files and needs git on PATH: install it (apt-get install git, brew install git, or https://git-scm.com/downloads): %v", err)
	}
	out, err := exec.CommandContext(t.Context(), git, "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Fatalf("git rev-parse --show-toplevel: %v: this test runs in a git clone of the repository", err)
	}
	return strings.TrimSpace(string(out))
}

// copyTracked copies the files git tracks in root to dir, as they are in the
// work tree; a tracked file deleted from the work tree is left out.
func copyTracked(t *testing.T, root, dir string) {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), "git", "-C", root, "ls-files", "-z").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	n := 0
	for name := range bytes.SplitSeq(bytes.TrimSuffix(out, []byte{0}), []byte{0}) {
		src := filepath.Join(root, filepath.FromSlash(string(name)))
		if _, err := os.Lstat(src); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		copyFile(t, src, filepath.Join(dir, filepath.FromSlash(string(name))))
		n++
	}
	if n == 0 {
		t.Fatal("git ls-files listed no files")
	}
}

// copyFile copies src to dst with its permission bits, making dst's directory.
func copyFile(t *testing.T, src, dst string) {
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

func read(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path) //nolint:gosec // G304: a file of the copy
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// modulePath is the module path in root's go.mod.
func modulePath(t *testing.T, root string) string {
	t.Helper()
	line := firstLine(read(t, filepath.Join(root, "go.mod")))
	path, ok := strings.CutPrefix(line, "module ")
	if !ok {
		t.Fatalf("go.mod starts %q, not with its module path", line)
	}
	return strings.TrimSpace(path)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
