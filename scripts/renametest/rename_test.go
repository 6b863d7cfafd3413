package renametest

import (
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshkit/meshkit/scripts/scratch"
)

// newPath is what the README's recipe renames the module to.
const newPath = "example.com/acme/orders"

// TestRenameModuleBuildsAndVets does what "Make it yours" tells a new user:
// scripts/rename-module on a copy of the repository's tracked files, then
// go build and go vet in the module and in the nested bench/ module. The
// module cache is the one this test runs with and GOPROXY is off, so the
// renamed module needs nothing that is not already downloaded.
func TestRenameModuleBuildsAndVets(t *testing.T) {
	scratch.SkipInCopy(t)
	root := scratch.RepoRoot(t)
	dir := t.TempDir()
	scratch.CopyTracked(t, root, dir)
	// The script itself, as it is in the working tree (new or changed before
	// it is committed).
	scratch.CopyFile(t, filepath.Join(root, "scripts", "rename-module"), filepath.Join(dir, "scripts", "rename-module"))

	out := scratch.Run(t, dir, filepath.Join(dir, "scripts", "rename-module"), newPath)
	t.Logf("scripts/rename-module %s:\n%s", newPath, out)

	if got := scratch.Read(t, filepath.Join(dir, "go.mod")); !strings.HasPrefix(got, "module "+newPath+"\n") {
		t.Errorf("go.mod starts %q, want module %s", scratch.FirstLine(got), newPath)
	}
	bench := scratch.Read(t, filepath.Join(dir, "bench", "go.mod"))
	for _, want := range []string{"module " + newPath + "/bench\n", "\t" + newPath + " v", "replace " + newPath + " => ../"} {
		if !strings.Contains(bench, want) {
			t.Errorf("bench/go.mod has no %q:\n%s", want, bench)
		}
	}
	old := scratch.ModulePath(t, root)
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if name := d.Name(); strings.HasSuffix(name, ".go") || name == "go.mod" || name == ".golangci.yml" {
			if strings.Contains(scratch.Read(t, path), old) {
				t.Errorf("%s still mentions %s", strings.TrimPrefix(path, dir+string(filepath.Separator)), old)
			}
		}
		return nil
	})
	if out := scratch.Run(t, dir, "gofmt", "-l", "."); out != "" {
		t.Errorf("gofmt -l lists:\n%s", out)
	}
	for _, mod := range []string{dir, filepath.Join(dir, "bench"), filepath.Join(dir, "deploy", "kubernetes")} {
		scratch.Run(t, mod, "go", "build", "./...")
		scratch.Run(t, mod, "go", "vet", "./...")
	}
}
