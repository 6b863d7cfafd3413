package ratelimit

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// ginCallees are the functions of other packages that may be given a
// *gin.Context: each takes it as a *gin.Context and keeps it no longer than
// the call. A function of this package is checked by its own declaration.
var ginCallees = []string{"problem.Abort", "clientip.Of", "clientkey.Of", "clientkey.Address"}

// TestNoGinContextOutlivesItsHandler keeps the package from holding a
// *gin.Context past its handler (gin reuses it for the next request, so a
// worker reading it later races with that request), the way the Redis
// limiter's queue once did: no type stores a context.Context or a
// *gin.Context, and a handler's *gin.Context is only used in place, passed
// as a *gin.Context, never as a context.Context, never assigned, sent,
// returned or captured by a closure.
func TestNoGinContextOutlivesItsHandler(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var sources []source
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		text, err := os.ReadFile(name) //nolint:gosec // G304: this package's own files
		if err != nil {
			t.Fatal(err)
		}
		sources = append(sources, source{name, string(text)})
	}
	if len(sources) < 10 {
		t.Fatalf("found %d source files, want the package's", len(sources))
	}
	for _, v := range checkContexts(t, sources) {
		t.Error(v)
	}
}

// TestContextCheckFindsLeaks: the check of TestNoGinContextOutlivesItsHandler
// finds what it is for, and passes what it must.
func TestContextCheckFindsLeaks(t *testing.T) {
	const header = `package ratelimit

import (
	"context"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel"

	"github.com/meshkit/meshkit/internal/problem"
)
`
	for _, tt := range []struct {
		name, code string
		want       []string // a part of each violation, in order
	}{
		{"a request's context passed on", `
func Allow(ctx context.Context, key string) {}
func h(c *gin.Context) { Allow(c.Request.Context(), "k") }`, nil},
		{"the gin context as a context", `
type L interface{ Allow(ctx context.Context, key string) }
func h(l L) gin.HandlerFunc { return func(c *gin.Context) { l.Allow(c, "k") } }`, []string{"c passed to Allow"}},
		{"the gin context to a function of another package", `
func h(c *gin.Context) { otel.Start(c) }`, []string{"c passed to otel.Start"}},
		{"the gin context to a function that takes one", `
func key(c *gin.Context) string { return c.ClientIP() }
func h(c *gin.Context) { _ = key(c); problem.Abort(c, 429, "") }`, nil},
		{"a context in a struct", `
type request struct { ctx context.Context; n int }`, []string{"field ctx"}},
		{"a gin context in a struct", `
type request struct { c *gin.Context }`, []string{"field c"}},
		{"a channel of gin contexts", `
var queue chan *gin.Context`, []string{"variable queue"}},
		{"assigned", `
type request struct{ v any }
func h(c *gin.Context, r *request) { r.v = c }`, []string{"c assigned"}},
		{"in a literal", `
type request struct{ v any }
func h(c *gin.Context) { _ = request{v: c} }`, []string{"c in a composite literal"}},
		{"sent", `
func h(c *gin.Context, q chan any) { q <- c }`, []string{"c sent"}},
		{"returned", `
func h(c *gin.Context) any { return c }`, []string{"c returned"}},
		{"captured", `
func h(c *gin.Context) func() { return func() { _ = c.Request } }`, []string{"c captured"}},
		{"in a goroutine", `
func key(c *gin.Context) string { return c.ClientIP() }
func h(c *gin.Context) { go key(c) }`, []string{"c used by a go statement"}},
		{"one name, two kinds of function", `
func (Memory) Allow(c *gin.Context) {}
func (Redis) Allow(ctx context.Context) {}
func h(c *gin.Context, r Redis) { r.Allow(c) }`, []string{"c passed to Allow"}},
		{"used in place", `
func h(c *gin.Context) { c.Header("a", "b"); _ = c.Request.Context(); c.Next() }`, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := checkContexts(t, []source{{"x.go", header + tt.code}})
			if len(got) != len(tt.want) {
				t.Fatalf("violations %q, want %d: %q", got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("violation %q, want it to say %q", got[i], w)
				}
			}
		})
	}
}

type source struct{ name, text string }

// checkContexts parses sources, the files of one package, and returns the
// violations of TestNoGinContextOutlivesItsHandler's rules, each as
// "file:line: what".
func checkContexts(t *testing.T, sources []source) []string {
	t.Helper()
	fset := token.NewFileSet()
	var files []*ast.File
	for _, s := range sources {
		f, err := parser.ParseFile(fset, s.name, s.text, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	c := &contextChecker{fset: fset, takesGin: make(map[string][]int)}
	for _, f := range files {
		c.collect(f)
	}
	for _, f := range files {
		c.imports = importNames(f)
		c.check(f)
	}
	return c.violations
}

type contextChecker struct {
	fset *token.FileSet
	// takesGin: a function or method of the package, by name, and the
	// positions where every one of that name takes a *gin.Context.
	takesGin   map[string][]int
	imports    map[string]bool // the names of the file's imports
	violations []string
}

// importNames are the names f's imports go by: their own, or the last
// element of the path without a major version or a "go-" prefix.
func importNames(f *ast.File) map[string]bool {
	names := make(map[string]bool)
	for _, im := range f.Imports {
		if im.Name != nil {
			names[im.Name.Name] = true
			continue
		}
		p, _ := strconv.Unquote(im.Path.Value)
		name := path.Base(p)
		if len(name) > 1 && name[0] == 'v' && strings.Trim(name[1:], "0123456789") == "" {
			name = path.Base(path.Dir(p))
		}
		names[strings.TrimPrefix(name, "go-")] = true
	}
	return names
}

func (c *contextChecker) report(pos token.Pos, format string, args ...any) {
	c.violations = append(c.violations, c.fset.Position(pos).String()+": "+fmt.Sprintf(format, args...))
}

// collect notes which of f's functions take a *gin.Context where.
func (c *contextChecker) collect(f *ast.File) {
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok {
			continue
		}
		at := ginParams(fd.Type)
		if before, ok := c.takesGin[fd.Name.Name]; ok {
			at = slices.DeleteFunc(at, func(i int) bool { return !slices.Contains(before, i) })
		}
		c.takesGin[fd.Name.Name] = at
	}
}

// ginParams are the positions of ft's *gin.Context parameters.
func ginParams(ft *ast.FuncType) []int {
	var at []int
	i := 0
	for _, field := range ft.Params.List {
		n := max(len(field.Names), 1)
		if isGinContext(field.Type) {
			for j := range n {
				at = append(at, i+j)
			}
		}
		i += n
	}
	return at
}

func (c *contextChecker) check(f *ast.File) {
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.StructType:
			for _, field := range n.Fields.List {
				if holdsContext(field.Type) {
					c.report(field.Pos(), "field %s holds a context", fieldName(field))
				}
			}
		case *ast.ValueSpec:
			if n.Type != nil && holdsContext(n.Type) {
				c.report(n.Pos(), "variable %s holds a context", n.Names[0].Name)
			}
		case *ast.FuncDecl:
			if n.Body != nil {
				c.checkHandler(n.Type, n.Body)
			}
		case *ast.FuncLit:
			c.checkHandler(n.Type, n.Body)
		}
		return true
	})
}

// checkHandler checks the uses of the *gin.Context parameters of a function.
func (c *contextChecker) checkHandler(ft *ast.FuncType, body *ast.BlockStmt) {
	for _, field := range ft.Params.List {
		if !isGinContext(field.Type) {
			continue
		}
		for _, name := range field.Names {
			if name.Name != "_" {
				c.checkUses(name.Name, body)
			}
		}
	}
}

// checkUses reports where body lets the *gin.Context named name out.
func (c *contextChecker) checkUses(name string, body *ast.BlockStmt) {
	is := func(e ast.Expr) bool {
		id, ok := ast.Unparen(e).(*ast.Ident)
		return ok && id.Name == name
	}
	leaks := func(exprs []ast.Expr, how string) {
		for _, e := range exprs {
			if is(e) {
				c.report(e.Pos(), "%s %s", name, how)
			}
		}
	}
	ast.Inspect(body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.FuncLit:
			if usesName(n.Body, name) && !shadows(n.Type, name) {
				c.report(n.Pos(), "%s captured by a closure", name)
			}
			return false // its own parameters are checked on their own
		case *ast.GoStmt:
			if usesName(n.Call, name) {
				c.report(n.Pos(), "%s used by a go statement", name)
			}
			return false
		case *ast.CallExpr:
			callee := c.calleeName(n.Fun)
			for i, arg := range n.Args {
				if is(arg) && !c.mayTake(callee, i) {
					c.report(arg.Pos(), "%s passed to %s: pass %s.Request.Context() for a context", name, callee, name)
				}
			}
		case *ast.AssignStmt:
			leaks(n.Rhs, "assigned")
		case *ast.ValueSpec:
			leaks(n.Values, "assigned")
		case *ast.CompositeLit:
			values := make([]ast.Expr, len(n.Elts))
			for i, e := range n.Elts {
				if kv, ok := e.(*ast.KeyValueExpr); ok {
					e = kv.Value
				}
				values[i] = e
			}
			leaks(values, "in a composite literal")
		case *ast.SendStmt:
			leaks([]ast.Expr{n.Value}, "sent on a channel")
		case *ast.ReturnStmt:
			leaks(n.Results, "returned")
		}
		return true
	})
}

// mayTake reports whether the function called callee takes a *gin.Context
// as its argument i.
func (c *contextChecker) mayTake(callee string, i int) bool {
	if slices.Contains(ginCallees, callee) {
		return true
	}
	at, ok := c.takesGin[callee]
	return ok && slices.Contains(at, i)
}

// calleeName is "f" for f(...), "pkg.f" for a function of an imported
// package, and a method's name alone for x.f(...).
func (c *contextChecker) calleeName(fun ast.Expr) string {
	switch f := ast.Unparen(fun).(type) {
	case *ast.Ident:
		return f.Name
	case *ast.SelectorExpr:
		if x, ok := f.X.(*ast.Ident); ok && c.imports[x.Name] {
			return x.Name + "." + f.Sel.Name
		}
		return f.Sel.Name
	}
	return fmt.Sprintf("a %T", fun)
}

// usesName reports whether name appears as an identifier in n.
func usesName(n ast.Node, name string) bool {
	found := false
	ast.Inspect(n, func(n ast.Node) bool {
		if id, ok := n.(*ast.Ident); ok && id.Name == name {
			found = true
		}
		return !found
	})
	return found
}

// shadows reports whether ft declares a parameter or result named name.
func shadows(ft *ast.FuncType, name string) bool {
	for _, list := range []*ast.FieldList{ft.Params, ft.Results} {
		if list == nil {
			continue
		}
		for _, f := range list.List {
			for _, n := range f.Names {
				if n.Name == name {
					return true
				}
			}
		}
	}
	return false
}

// isGinContext reports whether e is *gin.Context.
func isGinContext(e ast.Expr) bool {
	star, ok := e.(*ast.StarExpr)
	return ok && isSelector(star.X, "gin", "Context")
}

// holdsContext reports whether the type e mentions context.Context or
// gin.Context.
func holdsContext(e ast.Expr) bool {
	found := false
	ast.Inspect(e, func(n ast.Node) bool {
		if s, ok := n.(ast.Expr); ok && (isSelector(s, "context", "Context") || isSelector(s, "gin", "Context")) {
			found = true
		}
		if _, ok := n.(*ast.FuncType); ok {
			return false // a function taking a context holds none
		}
		return !found
	})
	return found
}

func isSelector(e ast.Expr, pkg, name string) bool {
	s, ok := e.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	x, ok := s.X.(*ast.Ident)
	return ok && x.Name == pkg && s.Sel.Name == name
}

func fieldName(f *ast.Field) string {
	if len(f.Names) == 0 {
		return "(embedded)"
	}
	return f.Names[0].Name
}
