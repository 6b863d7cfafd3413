package renametest

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/meshkit/meshkit/internal/buildinfo"
	"github.com/meshkit/meshkit/scripts/scratch"
)

// newPath is what the README's recipe renames the module to, and newName
// the service's name the script takes from it.
const (
	newPath = "example.com/acme/orders"
	newName = "orders"
)

// TestRenameModuleRenamesEverything does what "Make it yours" tells a new
// user: scripts/rename-module on a copy of the repository's tracked files.
// Afterwards no file of the copy mentions the old module path or the old
// service name (in any case), the copy builds and vets in its three modules,
// the binary's `service version` names the new service, and the tests of
// the packages whose behaviour reads the name pass: buildinfo, the dev CA,
// the auth realm, the OTel service name, the benchmark tables, the
// Kubernetes manifests, and in cmd/service the configuration reference (the
// Redis key prefix default), the compose file, the dashboard against
// /metrics, the README's certificate-and-token walk-through and the API
// document (it names the service; the script regenerated it). The module
// cache is the one this test runs with and GOPROXY is off, so the renamed
// module needs nothing that is not already downloaded.
func TestRenameModuleRenamesEverything(t *testing.T) {
	scratch.SkipInCopy(t)
	root := scratch.RepoRoot(t)
	oldPath, oldName := scratch.ModulePath(t, root), buildinfo.Name
	if oldName == newName {
		t.Fatalf("the service is already named %q: this test renames it to that name", newName)
	}
	dir := t.TempDir()
	scratch.CopyTracked(t, root, dir)
	// The script itself, as it is in the working tree (new or changed before
	// it is committed).
	scratch.CopyFile(t, filepath.Join(root, "scripts", "rename-module"), filepath.Join(dir, "scripts", "rename-module"))

	out := scratch.Run(t, dir, filepath.Join(dir, "scripts", "rename-module"), newPath)
	t.Logf("scripts/rename-module %s:\n%s", newPath, out)
	if strings.Contains(out, "still mentioned") {
		t.Errorf("scripts/rename-module left mentions of %s or %s:\n%s", oldPath, oldName, out)
	}

	if got := scratch.Read(t, filepath.Join(dir, "go.mod")); !strings.HasPrefix(got, "module "+newPath+"\n") {
		t.Errorf("go.mod starts %q, want module %s", scratch.FirstLine(got), newPath)
	}
	for sub, wants := range map[string][]string{
		"bench":             {"module " + newPath + "/bench\n", "\t" + newPath + " v", "replace " + newPath + " => ../"},
		"deploy/kubernetes": {"module " + newPath + "/deploy/kubernetes\n", "replace " + newPath + " => ../.."},
	} {
		mod := scratch.Read(t, filepath.Join(dir, filepath.FromSlash(sub), "go.mod"))
		for _, want := range wants {
			if !strings.Contains(mod, want) {
				t.Errorf("%s/go.mod has no %q:\n%s", sub, want, mod)
			}
		}
	}
	if got, want := scratch.Read(t, filepath.Join(dir, "internal", "buildinfo", "buildinfo.go")), `const Name = "`+newName+`"`; !strings.Contains(got, want) {
		t.Errorf("internal/buildinfo/buildinfo.go has no %s", want)
	}
	checkNoMention(t, dir, oldPath, oldName)

	if out := scratch.Run(t, dir, "gofmt", "-l", "."); out != "" {
		t.Errorf("gofmt -l lists:\n%s", out)
	}
	for _, mod := range []string{dir, filepath.Join(dir, "bench"), filepath.Join(dir, "deploy", "kubernetes")} {
		scratch.Run(t, mod, "go", "build", "./...")
		scratch.Run(t, mod, "go", "vet", "./...")
	}
	scratch.Run(t, dir, "go", "vet", "-tags", "apptest", "./cmd/service")

	binary := filepath.Join(t.TempDir(), "service")
	scratch.Run(t, dir, "go", "build", "-o", binary, "./cmd/service")
	if got := scratch.Run(t, dir, binary, "version"); !strings.HasPrefix(got, newName+" ") {
		t.Errorf("service version printed %q, want %q and the version", got, newName+" ...")
	}

	scratch.Run(t, dir, "go", "test", "-count=1",
		"./internal/buildinfo", "./internal/devpki", "./modules/security", "./modules/telemetry", "./scripts/benchtable")
	scratch.Run(t, filepath.Join(dir, "deploy", "kubernetes"), "go", "test", "-count=1", "./...")
	scratch.Run(t, dir, "go", "test", "-count=1", "-run",
		"^(TestVersionCommand|TestConfigReference.*|TestCompose.*|TestDashboardQueriesOnlyExportedMetrics|TestServiceWithDevCertificatesAndATokenAsTheREADMEShows|TestDevcertsCommand|TestOpenAPICommand.*|TestServedDocumentIsTheCommittedOne)$",
		"./cmd/service")
}

// checkNoMention fails t for every file of dir whose name or text mentions
// the old module path or, in any case, the old service name: Go code and
// tests, go.mod, Dockerfile, docker-compose.yml, Makefile, everything under
// deploy/, the README and docs/ alike.
func checkNoMention(t *testing.T, dir, oldPath, oldName string) {
	t.Helper()
	lowerName := strings.ToLower(oldName)
	checked := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := filepath.ToSlash(strings.TrimPrefix(path, dir+string(filepath.Separator)))
		if strings.Contains(strings.ToLower(d.Name()), lowerName) {
			t.Errorf("%s is still named after %s", rel, oldName)
		}
		if d.IsDir() {
			return nil
		}
		text := scratch.Read(t, path)
		if !utf8.ValidString(text) {
			return nil // not text: the script leaves it alone
		}
		checked++
		for i, line := range strings.Split(text, "\n") {
			if strings.Contains(line, oldPath) || strings.Contains(strings.ToLower(line), lowerName) {
				t.Errorf("%s:%d still mentions %s or %s: %s", rel, i+1, oldPath, oldName, strings.TrimSpace(line))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, must := range []string{"Dockerfile", "docker-compose.yml", "Makefile", "deploy/kubernetes/deployment.yaml", "deploy/prometheus.yml", "deploy/grafana/dashboards/service.json"} {
		if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(must))); err != nil {
			t.Errorf("the copy has no %s: %v", must, err)
		}
	}
	if checked < 100 {
		t.Errorf("checked %d files of the copy, want the whole repository", checked)
	}
}
