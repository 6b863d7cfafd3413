package recipetest

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/meshkit/meshkit/scripts/scratch"
)

// copyWithScripts copies the repository's tracked files, and the scripts
// as they are in the work tree (new or changed before they are committed).
func copyWithScripts(t *testing.T) string {
	t.Helper()
	root := scratch.RepoRoot(t)
	dir := t.TempDir()
	scratch.CopyTracked(t, root, dir)
	for _, script := range []string{"new-module", "rename-module"} {
		scratch.CopyFile(t, filepath.Join(root, "scripts", script), filepath.Join(dir, "scripts", script))
	}
	return dir
}

// documentTests are the tests of cmd/service that the recipes must keep
// passing in a copy: the configuration reference's, and the API document's
// (docs/openapi.json is what `service openapi` prints and the service
// serves, and every operation answers its examples as documented).
const documentTests = "ConfigReference|OpenAPI|ServedDocument|EveryOperation"

// TestNewModuleBuildsTestsAndServes runs scripts/new-module widgets in a
// copy: then the copy builds and vets, the new package's tests, the
// configuration reference's and the API document's pass (the script
// documented the section and regenerated docs/openapi.json), and the built
// service answers GET /v1/widgets, shows the check on /healthz, the counter
// on /metrics and the route in its /openapi.json.
func TestNewModuleBuildsTestsAndServes(t *testing.T) {
	scratch.SkipInCopy(t)
	dir := copyWithScripts(t)
	out := scratch.Run(t, dir, filepath.Join(dir, "scripts", "new-module"), "widgets")
	t.Logf("scripts/new-module widgets:\n%s", out)

	scratch.Run(t, dir, "go", "build", "./...")
	scratch.Run(t, dir, "go", "vet", "./...")
	if out := scratch.Run(t, dir, "gofmt", "-l", "."); out != "" {
		t.Errorf("gofmt -l lists:\n%s", out)
	}
	scratch.Run(t, dir, "go", "test", "-count=1", "./modules/widgets/")
	scratch.Run(t, dir, "go", "test", "-count=1", "-run", documentTests, "./cmd/service/")

	binary := filepath.Join(t.TempDir(), "service")
	scratch.Run(t, dir, "go", "build", "-o", binary, "./cmd/service")
	s := scratch.StartService(t, binary)
	status, header, body := scratch.Get(t, s.API+"/v1/widgets")
	var answer struct{ Message string }
	if status != http.StatusOK || !strings.HasPrefix(header.Get("Content-Type"), "application/json") ||
		json.Unmarshal([]byte(body), &answer) != nil || answer.Message != "hello from widgets" {
		t.Errorf("GET /v1/widgets: %d %q %s; want 200 JSON {\"message\":\"hello from widgets\"}", status, header.Get("Content-Type"), body)
	}
	waitForCheck(t, s, "widgets")
	if _, _, metrics := scratch.Get(t, s.Admin+"/metrics"); !regexp.MustCompile(`(?m)^widgets_requests_total\{.*\} 1$`).MatchString(metrics) {
		t.Errorf("/metrics has no widgets_requests_total of 1:\n%s", metrics)
	}
	checkDocumented(t, s, "/v1/widgets")
}

// checkDocumented reads the service's /openapi.json and fails unless it
// describes GET path, as the copy's committed docs/openapi.json must too.
func checkDocumented(t *testing.T, s scratch.Service, path string) {
	t.Helper()
	status, _, body := scratch.Get(t, s.API+"/openapi.json")
	var doc struct {
		Paths map[string]struct {
			Get *struct {
				Summary string `json:"summary"`
			} `json:"get"`
		} `json:"paths"`
	}
	if status != http.StatusOK || json.Unmarshal([]byte(body), &doc) != nil || doc.Paths[path].Get == nil || doc.Paths[path].Get.Summary == "" {
		t.Errorf("GET /openapi.json: %d; want a document describing GET %s:\n%.500s", status, path, body)
	}
}

// TestMakeItYoursRecipes follows the README's recipes one after the other
// in a copy, as a team starting a service would: rename the module, add a
// module with scripts/new-module, add middleware and swap a part (a
// decorated configuration) in modules(). The whole copy builds and vets,
// the packages touched pass their tests (the API document's among them:
// the scripts regenerated it, and neither the middleware nor the
// configuration changes it), and the built service shows each change.
func TestMakeItYoursRecipes(t *testing.T) {
	scratch.SkipInCopy(t)
	dir := copyWithScripts(t)
	const path = "example.com/acme/orders"
	scratch.Run(t, dir, filepath.Join(dir, "scripts", "rename-module"), path)
	scratch.Run(t, dir, filepath.Join(dir, "scripts", "new-module"), "widgets")

	// "Add middleware" and "Swap a module's part", in cmd/service.
	write(t, filepath.Join(dir, "cmd", "service", "servedby.go"), `package main

import (
	"github.com/gin-gonic/gin"

	"`+path+`/internal/route"
)

func newMiddleware() route.MiddlewareOut {
	return route.MiddlewareOut{Middleware: []route.Middleware{{
		Name:  "served-by",
		Stage: route.StageLimits + 50, // after the limits stage, before the handler
		ForRoute: func(p route.Policy) gin.HandlerFunc {
			if p.Operational {
				return nil // stay out of the probes' chains
			}
			return func(c *gin.Context) { c.Header("X-Served-By", "replica-a"); c.Next() }
		},
	}}}
}
`)
	main := filepath.Join(dir, "cmd", "service", "main.go")
	src := scratch.Read(t, main)
	const added = "\t\twidgets.Module,\n"
	if !strings.Contains(src, added) {
		t.Fatalf("scripts/new-module did not add %q to modules():\n%s", added, src)
	}
	src = strings.Replace(src, added, added+`		fx.Provide(newMiddleware),
		fx.Decorate(func(cfg httpserver.Config) httpserver.Config {
			cfg.MaxBodyBytes = 64 << 10
			return cfg
		}),
`, 1)
	write(t, main, src)

	scratch.Run(t, dir, "go", "build", "./...")
	scratch.Run(t, dir, "go", "vet", "./...")
	if out := scratch.Run(t, dir, "gofmt", "-l", "."); out != "" {
		t.Errorf("gofmt -l lists:\n%s", out)
	}
	scratch.Run(t, dir, "go", "test", "-count=1", "./modules/widgets/")
	scratch.Run(t, dir, "go", "test", "-count=1", "-run", documentTests, "./cmd/service/")

	binary := filepath.Join(t.TempDir(), "service")
	scratch.Run(t, dir, "go", "build", "-o", binary, "./cmd/service")
	s := scratch.StartService(t, binary)
	status, header, body := scratch.Get(t, s.API+"/v1/widgets")
	if status != http.StatusOK || header.Get("X-Served-By") != "replica-a" {
		t.Errorf("GET /v1/widgets: %d X-Served-By %q %s; want 200 from replica-a", status, header.Get("X-Served-By"), body)
	}
	if _, header, _ := scratch.Get(t, s.API+"/livez"); header.Get("X-Served-By") != "" {
		t.Errorf("/livez went through the served-by middleware")
	}
	checkDocumented(t, s, "/v1/widgets")
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Post(s.API+"/v1/echo", "application/json", strings.NewReader(`{"message":"`+strings.Repeat("x", 70<<10)+`"}`)) //nolint:noctx // the client's timeout bounds it
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("a 70 KiB body with the body cap decorated to 64 KiB: %d, want 413", resp.StatusCode)
	}
}

// waitForCheck polls the admin /healthz until the check name passes.
func waitForCheck(t *testing.T, s scratch.Service, name string) {
	t.Helper()
	var report struct {
		Checks map[string]struct{ Status string } `json:"checks"`
	}
	deadline := time.Now().Add(time.Minute)
	for {
		_, _, body := scratch.Get(t, s.Admin+"/healthz")
		if err := json.Unmarshal([]byte(body), &report); err != nil {
			t.Fatalf("/healthz: %v: %s", err, body)
		}
		if report.Checks[name].Status == "pass" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz has no passing check %q after a minute: %s", name, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil { //nolint:gosec // G703: a file of the scratch copy
		t.Fatal(err)
	}
}
