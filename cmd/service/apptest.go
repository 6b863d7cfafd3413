//go:build apptest

package main

import (
	"go.uber.org/fx"

	"github.com/meshkit/meshkit/app/apptest"
)

// testModules are what the binary built with -tags apptest runs beside the
// app's modules, for its black-box tests (main_test.go builds it so):
// apptest.Module's routes under /apptest/, its upstream from
// SERVICE_APPTEST_UPSTREAM_URL. The binary built without the tag has none.
func testModules() fx.Option {
	return apptest.Module
}
