//go:build !apptest

package main

import "go.uber.org/fx"

// testModules is empty: only the binary built with -tags apptest runs the
// test routes (apptest.go).
func testModules() fx.Option { return fx.Options() }
