package app

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.uber.org/fx"

	"github.com/meshkit/meshkit/modules/example"
	"github.com/meshkit/meshkit/modules/health"
	"github.com/meshkit/meshkit/modules/httpserver"
	"github.com/meshkit/meshkit/modules/openapi"
	"github.com/meshkit/meshkit/modules/ratelimit"
	"github.com/meshkit/meshkit/modules/ratelimit/admission"
	"github.com/meshkit/meshkit/modules/security"
	"github.com/meshkit/meshkit/modules/telemetry"
)

// Module is one entry of the app's list of modules: the name [Without] and
// [Replace] know it by, and its Fx option.
type Module struct {
	Name   string
	Option fx.Option
}

// Modules is the template's list of modules. Their order does not matter:
// what starts first follows from what depends on what (see lifecycle.go).
func Modules() []Module {
	return []Module{
		{"telemetry", telemetry.Module},
		{"telemetry-client", telemetry.ClientModule},
		{"httpserver", httpserver.Module},
		{"health", health.Module},
		{"security", security.Module},
		{"admission", admission.Module},
		{"ratelimit", ratelimit.Module},
		{"example", example.Module},
		{"openapi", openapi.Module},
	}
}

// Without removes the module name from the app, e.g. app.Without("example").
// Pass it to [New] or [Options] directly: anywhere else (fx.New, inside
// fx.Options) it is an error, never silently nothing.
func Without(name string) fx.Option {
	return newModuleEdit(name, nil)
}

// Replace puts m in place of the module name, e.g.
// app.Replace("ratelimit", mylimiter.Module): m must provide what the other
// modules take from the one it replaces (for the rate limiter, its stage in
// the middleware group, and an attempt.Charger if the security stage should
// charge bad tokens to the caller). Pass it to [New] or [Options] directly,
// like [Without].
func Replace(name string, m fx.Option) fx.Option {
	return newModuleEdit(name, m)
}

// errEditOutsideApp is what a module edit does when Fx itself applies it:
// compose takes the edits New and Options are given out of the options, so
// Fx sees one only when it was passed somewhere else.
var errEditOutsideApp = errors.New("pass it to app.New or app.Options directly, not to fx.New or inside fx.Options, where it cannot change the list of modules")

// moduleEdit is an option that changes the list of modules. compose reads
// the edit; its embedded Option, an fx.Error, is applied only if Fx gets the
// edit, which then fails the app instead of doing nothing.
type moduleEdit struct {
	fx.Option
	name        string
	replacement fx.Option // nil: remove the module
}

func newModuleEdit(name string, replacement fx.Option) moduleEdit {
	e := moduleEdit{name: name, replacement: replacement}
	e.Option = fx.Error(fmt.Errorf("%s: %w", e, errEditOutsideApp))
	return e
}

func (e moduleEdit) String() string {
	if e.replacement == nil {
		return fmt.Sprintf("app.Without(%q)", e.name)
	}
	return fmt.Sprintf("app.Replace(%q, %v)", e.name, e.replacement)
}

// errNoSuchModule is returned (through the app's Err) for an edit that names
// a module not in the list.
var errNoSuchModule = errors.New("no such module")

// compose applies the edits among opts to modules, and returns the modules'
// options and the other options.
func compose(modules []Module, opts []fx.Option) (composed, rest []fx.Option, err error) {
	modules = slices.Clone(modules)
	for _, opt := range opts {
		edit, ok := opt.(moduleEdit)
		if !ok {
			rest = append(rest, opt)
			continue
		}
		i := slices.IndexFunc(modules, func(m Module) bool { return m.Name == edit.name })
		switch {
		case i < 0:
			names := make([]string, len(modules))
			for j, m := range modules {
				names[j] = m.Name
			}
			return nil, nil, fmt.Errorf("%s: %w; the modules are: %s", edit, errNoSuchModule, strings.Join(names, ", "))
		case edit.replacement != nil:
			modules[i].Option = edit.replacement
		case edit.name == "httpserver":
			return nil, nil, fmt.Errorf("%s: the HTTP server is the core every module plugs into: replace it with app.Replace, do not remove it", edit)
		default:
			modules = slices.Delete(modules, i, i+1)
		}
	}
	for _, m := range modules {
		composed = append(composed, m.Option)
	}
	return composed, rest, nil
}
