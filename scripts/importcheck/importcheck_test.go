package importcheck

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// serverCore is the one module any module's tests may build a server with.
const serverCore = "modules/httpserver"

// The rules, as the failures state them.
const (
	moduleRule = "a module's code and tests import no other module (" + serverCore + " aside), nor app/ or cmd/"
	leafRule   = "internal/ is the leaf layer: its code and tests import nothing from app/, cmd/ or modules/"
)

// TestModulesImportNoOtherModule runs go list -test -deps for each package
// under modules/ and fails naming every import by which it reaches a
// package of another module, or of app/ or cmd/. A module is a package that
// declares Module (its fx.Module), with the packages below it that do not:
// modules/ratelimit/admission is a module of its own.
func TestModulesImportNoOtherModule(t *testing.T) {
	g := newGoList(t)
	pkgs := g.packages(t, "./modules/...")
	modules := moduleRoots(t, pkgs)
	for _, p := range pkgs {
		t.Run(p.rel, func(t *testing.T) {
			own := moduleOf(p.rel, modules)
			allowed := func(dep string) bool {
				return isUnder(dep, "internal") || moduleOf(dep, modules) == own || moduleOf(dep, modules) == serverCore
			}
			for _, v := range violations(g.deps(t, p.rel), allowed) {
				t.Errorf("%s: %s", v, moduleRule)
			}
		})
	}
}

// TestInternalIsALeaf runs go list -test -deps for each package under
// internal/ and fails naming every import by which it reaches a package of
// this repository outside internal/.
func TestInternalIsALeaf(t *testing.T) {
	g := newGoList(t)
	for _, p := range g.packages(t, "./internal/...") {
		t.Run(p.rel, func(t *testing.T) {
			for _, v := range violations(g.deps(t, p.rel), func(dep string) bool { return isUnder(dep, "internal") }) {
				t.Errorf("%s: %s", v, leafRule)
			}
		})
	}
}

// TestViolationsNameTheCrossingImport shows what the rules catch on a made-up
// graph: the import that crosses, by the package that makes it (the
// package's own tests or its external test package included), and not the
// imports further on; a package below a module that declares its own
// Module (as modules/ratelimit/admission does) is another module.
func TestViolationsNameTheCrossingImport(t *testing.T) {
	deps := []pkg{
		{rel: "modules/a", imports: []string{"internal/check", "modules/httpserver", "modules/a/own"}},
		{rel: "modules/a/own"},
		{rel: "modules/a [modules/a.test]", imports: []string{"internal/check", "modules/a/sub"}},
		{rel: "modules/a_test [modules/a.test]", imports: []string{"modules/a [modules/a.test]", "modules/b", "internal/x"}},
		{rel: "modules/a.test", imports: []string{"modules/a [modules/a.test]", "modules/a_test [modules/a.test]"}},
		{rel: "modules/a/sub"},
		{rel: "internal/x", imports: []string{"app"}},
		{rel: "modules/b", imports: []string{"modules/c"}},
		{rel: "app", imports: []string{"modules/a", "modules/b"}},
	}
	modules := map[string]bool{"modules/a": true, "modules/a/own": true, "modules/b": true, "modules/c": true, serverCore: true}
	allowed := func(dep string) bool {
		return isUnder(dep, "internal") || moduleOf(dep, modules) == "modules/a" || moduleOf(dep, modules) == serverCore
	}
	got := violations(deps, allowed)
	want := []string{"internal/x imports app", "modules/a imports modules/a/own", "modules/a_test (the external tests) imports modules/b"}
	if !slices.Equal(got, want) {
		t.Errorf("violations %q, want %q", got, want)
	}
	if got := violations(deps, func(string) bool { return true }); len(got) != 0 {
		t.Errorf("with everything allowed: %q, want none", got)
	}
}

// pkg is a package of this repository as go list shows it: its path
// relative to the module (with go list's " [P.test]" suffix for the
// variants built for P's tests) and its imports of this repository's
// packages, relative too.
type pkg struct {
	rel     string
	dir     string
	goFiles []string
	imports []string
}

// goList runs go list in the repository's root.
type goList struct {
	root, module string
}

func newGoList(t *testing.T) goList {
	t.Helper()
	out := run(t, "", "go", "list", "-m", "-f", "{{.Dir}}\t{{.Path}}")
	root, module, ok := strings.Cut(strings.TrimSpace(out), "\t")
	if !ok {
		t.Fatalf("go list -m: %q", out)
	}
	return goList{root: root, module: module}
}

// packages lists the packages matching pattern, with their files.
func (g goList) packages(t *testing.T, pattern string) []pkg {
	t.Helper()
	pkgs := g.list(t, "-e", "-f", "{{.ImportPath}}\t{{.Dir}}\t{{join .GoFiles \" \"}}", pattern)
	if len(pkgs) == 0 {
		t.Fatalf("go list %s: no packages", pattern)
	}
	return pkgs
}

// deps lists rel, its test variants and everything they import, with
// their imports.
func (g goList) deps(t *testing.T, rel string) []pkg {
	t.Helper()
	return g.list(t, "-test", "-deps", "-f", "{{.ImportPath}}\t{{.Dir}}\t\t{{join .Imports \"\\t\"}}", "./"+rel)
}

// list runs go list with args and keeps the packages of this repository;
// each output line is the import path, the directory, the Go files
// (space-separated) and the imports (tab-separated).
func (g goList) list(t *testing.T, args ...string) []pkg {
	t.Helper()
	var pkgs []pkg
	for line := range strings.Lines(run(t, g.root, "go", append([]string{"list"}, args...)...)) {
		fields := strings.Split(strings.TrimRight(line, "\n"), "\t")
		rel, ok := g.relative(fields[0])
		if !ok {
			continue
		}
		p := pkg{rel: rel, dir: fields[1], goFiles: strings.Fields(fields[2])}
		for _, imp := range fields[3:] {
			if r, ok := g.relative(imp); ok {
				p.imports = append(p.imports, r)
			}
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// relative is importPath relative to the module, and whether it is in it.
func (g goList) relative(importPath string) (string, bool) {
	if importPath == g.module {
		return ".", true
	}
	return strings.CutPrefix(importPath, g.module+"/")
}

// violations lists, sorted, the imports by which packages in deps that are
// allowed reach a package that is not: the imports that cross the line,
// not those of packages already beyond it. allowed is given paths without
// go list's test suffixes.
func violations(deps []pkg, allowed func(rel string) bool) []string {
	var found []string
	for _, p := range deps {
		if !allowed(base(p.rel)) {
			continue
		}
		for _, imp := range p.imports {
			if !allowed(base(imp)) {
				found = append(found, describe(p.rel)+" imports "+base(imp))
			}
		}
	}
	slices.Sort(found)
	return slices.Compact(found)
}

// base is the package a go list path stands for: P for P's test variant
// "P [P.test]", its external tests "P_test [P.test]" and its test main
// "P.test".
func base(rel string) string {
	rel, _, _ = strings.Cut(rel, " [")
	rel = strings.TrimSuffix(rel, ".test")
	return strings.TrimSuffix(rel, "_test")
}

// describe names a go list path for a failure: P's tests for its test
// variant, its external tests for P_test.
func describe(rel string) string {
	variant, forTest, _ := strings.Cut(rel, " [")
	switch {
	case strings.HasSuffix(variant, "_test"):
		return variant + " (the external tests)"
	case forTest != "":
		return variant + " (with its tests)"
	case strings.HasSuffix(variant, ".test"):
		return variant + " (the test main)"
	}
	return variant
}

// isUnder reports whether rel is dir or below it.
func isUnder(rel, dir string) bool {
	return rel == dir || strings.HasPrefix(rel, dir+"/")
}

// moduleRoots are the packages of pkgs that declare Module.
func moduleRoots(t *testing.T, pkgs []pkg) map[string]bool {
	t.Helper()
	roots := map[string]bool{}
	for _, p := range pkgs {
		if declaresModule(t, p) {
			roots[p.rel] = true
		}
	}
	if !roots[serverCore] {
		t.Fatalf("%s declares no Module: the check would allow nothing it should", serverCore)
	}
	return roots
}

// moduleOf is the module rel belongs to: the nearest of rel and the
// packages above it that declares Module, else the folder right under
// modules/; "" when rel is not under modules/.
func moduleOf(rel string, roots map[string]bool) string {
	if !isUnder(rel, "modules") || rel == "modules" {
		return ""
	}
	for p := rel; p != "modules"; p = path.Dir(p) {
		if roots[p] {
			return p
		}
	}
	first, _, _ := strings.Cut(strings.TrimPrefix(rel, "modules/"), "/")
	return "modules/" + first
}

// declaresModule reports whether p's non-test files declare a package-level
// Module.
func declaresModule(t *testing.T, p pkg) bool {
	t.Helper()
	fset := token.NewFileSet()
	for _, name := range p.goFiles {
		f, err := parser.ParseFile(fset, filepath.Join(p.dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.VAR {
				continue
			}
			for _, s := range gd.Specs {
				if slices.ContainsFunc(s.(*ast.ValueSpec).Names, func(n *ast.Ident) bool { return n.Name == "Module" }) {
					return true
				}
			}
		}
	}
	return false
}

// run runs name with args in dir, offline, and returns its output; a
// failure fails the test with its standard error.
func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOPROXY=off", "GOWORK=off", "GOTOOLCHAIN=local")
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			stderr = ee.Stderr
		}
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr)
	}
	return string(out)
}
