package removetest

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/meshkit/meshkit/scripts/scratch"
)

// TestRemovingTheExampleModuleLeavesEverythingGreen does what "Make it
// yours" tells a team that does not want the example: delete the folder
// modules/example, the lines of app/ and cmd/ (not their tests) that name
// it, and the rows of its settings in docs/CONFIGURATION.md (the reference's
// test names them otherwise), and regenerate configs/service.yaml and
// docs/openapi.json from what is left (their tests name the difference
// otherwise), as the README says. Then the whole copy builds and vets, and the
// tests of every package of app/, cmd/ and modules/ that imported the example
// (its code or its tests, directly or not) pass: none of them needs the
// example's routes. The other packages cannot tell the example is gone.
func TestRemovingTheExampleModuleLeavesEverythingGreen(t *testing.T) {
	scratch.SkipInCopy(t)
	root := scratch.RepoRoot(t)
	module := scratch.ModulePath(t, root)
	example := module + "/modules/example"
	touched := scratch.Dependents(t, root, example, "./app/...", "./cmd/...", "./modules/...")
	if !slices.Contains(touched, module+"/cmd/service") {
		t.Fatalf("cmd/service is not among the packages that import %s: %v", example, touched)
	}
	dir := copyWithout(t, "example")
	dropRows(t, filepath.Join(dir, "docs", "CONFIGURATION.md"), "SERVICE_EXAMPLE_")
	// The sample configuration follows: the example's section leaves it.
	scratch.Run(t, dir, "go", "test", "./cmd/service", "-run", "^TestConfigReferenceSampleFile$", "-count=1", "-update")
	if strings.Contains(scratch.Read(t, filepath.Join(dir, "configs", "service.yaml")), "\nexample:") {
		t.Errorf("configs/service.yaml still has the section example after its regeneration")
	}
	// The API document loses the example's routes: regenerated, as the
	// README says, it is again what the service serves.
	scratch.RegenerateOpenAPI(t, dir)
	if doc := scratch.Read(t, filepath.Join(dir, "docs", "openapi.json")); strings.Contains(doc, "/v1/echo") || !strings.Contains(doc, "/readyz") {
		t.Errorf("the regenerated docs/openapi.json still has the example's /v1/echo, or lost /readyz")
	}
	scratch.Run(t, dir, "go", "build", "./...")
	scratch.Run(t, dir, "go", "vet", "./...")
	// One package at a time: this runs beside the rest of the suite.
	out := scratch.Run(t, dir, "go", append([]string{"test", "-count=1", "-p=1"}, touched...)...)
	t.Logf("go test in the copy without modules/example, of the packages that imported it:\n%s", out)
}

// TestProductionRefusesToStartWithoutTheSecurityModule deletes the security
// module from a copy, builds the service, and starts it in production with a
// token secret, as an operator who did not notice would: it must not serve
// an API that no stage authenticates.
func TestProductionRefusesToStartWithoutTheSecurityModule(t *testing.T) {
	scratch.SkipInCopy(t)
	dir := copyWithout(t, "security")
	binary := filepath.Join(t.TempDir(), "service")
	scratch.Run(t, dir, "go", "build", "-o", binary, "./cmd/service")

	cmd := exec.CommandContext(t.Context(), binary)
	cmd.Env = []string{
		"SERVICE_ENV=production",
		"SERVICE_AUTH_HMAC_SECRET=" + strings.Repeat("k", 32), // read by nothing now
		"SERVICE_HTTP_ADDR=127.0.0.1:0", "SERVICE_ADMIN_ADDR=127.0.0.1:0",
	}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("the service without a security module started in production (error %v):\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	last := lines[len(lines)-1]
	if !strings.Contains(last, "refusing to start: no stage authenticates callers") {
		t.Errorf("exit %d; want the last line to say why, got:\n%s", exit.ExitCode(), out)
	}
}

// copyWithout copies the repository's tracked files and removes the module
// modules/name: its folder, and every line of app/ and cmd/ (tests aside)
// that names it.
func copyWithout(t *testing.T, name string) string {
	t.Helper()
	root := scratch.RepoRoot(t)
	dir := t.TempDir()
	scratch.CopyTracked(t, root, dir)
	if err := os.RemoveAll(filepath.Join(dir, "modules", name)); err != nil {
		t.Fatal(err)
	}
	mentions := regexp.MustCompile(`/modules/` + name + `"|\b` + name + `\.[A-Z]|"` + name + `"`)
	removed := 0
	for _, top := range []string{"app", "cmd"} {
		err := filepath.WalkDir(filepath.Join(dir, top), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			var kept []string
			for line := range strings.SplitSeq(scratch.Read(t, path), "\n") {
				if mentions.MatchString(line) {
					t.Logf("removed from %s: %s", strings.TrimPrefix(path, dir), strings.TrimSpace(line))
					removed++
					continue
				}
				kept = append(kept, line)
			}
			return os.WriteFile(path, []byte(strings.Join(kept, "\n")), 0o600) //nolint:gosec // G703: a file of the scratch copy
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if removed == 0 {
		t.Fatalf("no line of app/ or cmd/ names the module %s: is it still in the list?", name)
	}
	return dir
}

// dropRows deletes the table rows of the markdown file path that document a
// variable starting with prefix.
func dropRows(t *testing.T, path, prefix string) {
	t.Helper()
	var kept []string
	dropped := 0
	for line := range strings.SplitSeq(scratch.Read(t, path), "\n") {
		if strings.HasPrefix(line, "| `"+prefix) {
			dropped++
			continue
		}
		kept = append(kept, line)
	}
	if dropped == 0 {
		t.Fatalf("%s documents no %s* variable", path, prefix)
	}
	if err := os.WriteFile(path, []byte(strings.Join(kept, "\n")), 0o600); err != nil { //nolint:gosec // G703: a file of the scratch copy
		t.Fatal(err)
	}
}
