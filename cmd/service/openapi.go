package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"go.uber.org/fx"

	"github.com/meshkit/meshkit/app"
	"github.com/meshkit/meshkit/internal/config"
	"github.com/meshkit/meshkit/modules/openapi"
)

// openapiCommand prints the API document of the app of modules(): built,
// not started, its configuration read as serve reads it (-config, the
// environment), though the document does not depend on it. docs/openapi.json
// is this output, committed; after a change of the routes:
//
//	go run ./cmd/service openapi > docs/openapi.json
func openapiCommand(flags *flag.FlagSet) func(stdout, stderr io.Writer) int {
	configFile := configFlag(flags)
	return func(stdout, stderr io.Writer) int {
		return printOpenAPI(config.Source{File: *configFile}, stdout, stderr)
	}
}

// printOpenAPI writes the document of the app of modules() with the
// configuration src to stdout: 0, or 1 when the app cannot be built.
func printOpenAPI(src config.Source, stdout, stderr io.Writer) int {
	var found struct {
		fx.In

		Document *openapi.Document `optional:"true"`
	}
	a := app.New(append(modules(),
		app.WithConfigSource(src),
		// Quiet: the modules' start-up lines are for a running service. An
		// error still comes back from fx.New.
		fx.Decorate(func(*slog.Logger) *slog.Logger { return slog.New(slog.DiscardHandler) }),
		fx.Populate(&found))...)
	if err := a.Err(); err != nil {
		reportStartError("openapi", err, stderr)
		return 1
	}
	if found.Document == nil {
		reportStartError("openapi", errors.New(`no API document: the openapi module is not in modules() (app.Without("openapi"))`), stderr)
		return 1
	}
	if _, err := stdout.Write(found.Document.JSON()); err != nil {
		_, _ = fmt.Fprintln(stderr, "openapi:", err)
		return 1
	}
	return 0
}
