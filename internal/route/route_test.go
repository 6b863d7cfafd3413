package route_test

import (
	"testing"

	"go.uber.org/fx"

	"github.com/meshkit/meshkit/internal/route"
)

// TestOutsFillTheirGroups provides a RoutesOut and a MiddlewareOut and
// reads the groups back by their constants' names: the structs' tags are
// string literals, and must name the groups the server collects.
func TestOutsFillTheirGroups(t *testing.T) {
	var got struct {
		fx.In

		Routes     []route.Route      `group:"routes"`
		Middleware []route.Middleware `group:"middleware"`
	}
	if route.RoutesGroup != "routes" || route.MiddlewareGroup != "middleware" {
		t.Fatalf("groups %q, %q: change the tags of RoutesOut, MiddlewareOut and this test with them", route.RoutesGroup, route.MiddlewareGroup)
	}
	app := fx.New(fx.NopLogger,
		fx.Provide(
			func() route.RoutesOut {
				return route.RoutesOut{Routes: []route.Route{{Method: "GET", Path: "/a"}, {Method: "GET", Path: "/b"}}}
			},
			func() route.MiddlewareOut { return route.MiddlewareOut{Middleware: []route.Middleware{{Name: "m"}}} },
			func() route.RoutesOut { return route.RoutesOut{} }, // adds none
		),
		fx.Populate(&got),
	)
	if err := app.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got.Routes) != 2 || len(got.Middleware) != 1 || got.Middleware[0].Name != "m" {
		t.Errorf("routes %+v, middleware %+v; want /a and /b, and m", got.Routes, got.Middleware)
	}
}
