package app_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"go.uber.org/fx"

	"github.com/meshkit/meshkit/app"
	openapidoc "github.com/meshkit/meshkit/internal/openapi"
	"github.com/meshkit/meshkit/internal/route"
	"github.com/meshkit/meshkit/modules/openapi"
)

// undocumented is a module of a route added without an Operation.
func undocumented() fx.Option {
	return fx.Provide(func() route.RoutesOut {
		return route.RoutesOut{Routes: []route.Route{{Method: http.MethodPost, Path: "/v1/undocumented/:id", Handler: func(c *gin.Context) { c.Status(http.StatusNoContent) }}}}
	})
}

// TestARouteWithoutAnOperationFailsTheApp: the openapi module builds the
// document in fx.New, so a route without a description stops every app
// (and every test that builds one) there, in an error that names the route
// and says what to add.
func TestARouteWithoutAnOperationFailsTheApp(t *testing.T) {
	a := app.New(undocumented(), fx.NopLogger, app.WithEnvironment(nil))
	err := a.Err()
	if !errors.Is(err, openapidoc.ErrNoOperation) {
		t.Fatalf("error %v, want openapi.ErrNoOperation", err)
	}
	for _, want := range []string{"POST /v1/undocumented/:id", "route.Operation", "Summary"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// TestWithoutTheOpenAPIModule: app.Without("openapi") removes the document
// and its route; nothing then asks the routes for an Operation.
func TestWithoutTheOpenAPIModule(t *testing.T) {
	srv := build(t, app.Without("openapi"), undocumented())
	resp := serve(t, srv, http.MethodGet, openapi.Path)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET %s without the module: %d, want 404", openapi.Path, resp.StatusCode)
	}
	var doc *openapi.Document
	if err := fx.ValidateApp(app.Options(app.Without("openapi"), app.WithEnvironment(nil), fx.Populate(&doc))); err == nil {
		t.Error("the app without the module provides a *openapi.Document")
	}
}
