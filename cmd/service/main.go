// Command service runs the meshkit service.
//
//	service [-config FILE]    run the service (configuration: docs/CONFIGURATION.md)
//	service healthcheck       exit 0 when the admin /readyz says ready, else 1
//	service version           print the version
//	service devcerts [-dir DIR] [-trust-domain TD] [-force]
//	                          write development certificates for mTLS
//	service devtoken -secret-env VAR [-sub S] [-iss I] [-aud A] [-ttl D]
//	                          print an HS256 token for local development
//	service openapi [-config FILE]
//	                          print the API document (OpenAPI 3.1, docs/openapi.json)
//
// It is the only place that exits.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/fx"

	"github.com/meshkit/meshkit/app"
	"github.com/meshkit/meshkit/internal/buildinfo"
	"github.com/meshkit/meshkit/internal/config"
	"github.com/meshkit/meshkit/modules/httpserver"
)

// modules is this service's list of modules: the template's (app.Modules:
// telemetry, telemetry-client, httpserver, health, security, admission,
// ratelimit, example, openapi), changed here one line at a time:
//
//	app.Without("example"),                     // remove a module
//	app.Replace("ratelimit", mylimiter.Module), // replace a whole module
//	orders.Module,                              // add a module of your own
func modules() []fx.Option {
	return []fx.Option{}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "version":
			if _, err := fmt.Fprintln(stdout, version()); err != nil {
				_, _ = fmt.Fprintln(stderr, "version:", err)
				return 1
			}
			return 0
		case "healthcheck":
			return healthcheck(args[1:], stderr)
		case "devcerts":
			return devcerts(args[1:], stdout, stderr)
		case "devtoken":
			return devtoken(args[1:], stdout, stderr)
		case "openapi":
			return openapiCommand(args[1:], stdout, stderr)
		}
	}
	src, ok := parseConfigFlag("service", args, stderr)
	if !ok {
		return 2
	}
	return serve(src, stderr)
}

// parseConfigFlag parses the -config flag of command name; false means bad
// flags (exit 2), already reported.
func parseConfigFlag(name string, args []string, stderr io.Writer) (config.Source, bool) {
	flags := flag.NewFlagSet(name, flag.ContinueOnError)
	flags.SetOutput(stderr)
	configFile := flags.String("config", "", "YAML configuration file (default: $SERVICE_CONFIG_FILE)")
	if err := flags.Parse(args); err != nil {
		return config.Source{}, false
	}
	return config.Source{File: *configFile}, true
}

// reportStartError prints why the app could not be built: a bad configuration
// in one line, naming the setting, else the error itself.
func reportStartError(name string, err error, stderr io.Writer) {
	if cfgErr, ok := errors.AsType[*config.Error](err); ok {
		_, _ = fmt.Fprintln(stderr, name+": configuration:", cfgErr)
		return
	}
	_, _ = fmt.Fprintln(stderr, name+":", err)
}

// serve runs the app until SIGTERM or SIGINT, then stops it within the
// shutdown budget: readiness fails and the listeners start closing each
// connection after its response, the drain delay passes while they serve,
// in-flight requests get the shutdown timeout, then the rest stops. It
// returns 0 after a clean drain and 1 when the stop failed (requests still
// running at the deadline). A second signal exits at once, with 2.
func serve(src config.Source, stderr io.Writer) int {
	var loaded *config.Loaded
	a := app.New(append(modules(), testModules(), app.WithConfigSource(src), fx.Populate(&loaded))...)
	if err := a.Err(); err != nil {
		reportStartError("service", err, stderr)
		return 1
	}
	// Fx relays SIGTERM and SIGINT here, and a Shutdowner's request with its
	// exit code. Asked for before Start, so a signal during start-up waits.
	// It is the only receiver of the first signal: one of our own would get
	// a copy of it too, to be taken for a second one.
	stopRequested := a.Wait()

	startCtx, cancel := context.WithTimeout(context.Background(), a.StartTimeout())
	defer cancel()
	if err := a.Start(startCtx); err != nil {
		_, _ = fmt.Fprintln(stderr, "service: start:", err)
		return 1
	}

	exitCode := (<-stopRequested).ExitCode
	exitOnNextSignal(stderr)
	stopCtx, cancelStop := context.WithTimeout(context.Background(), app.StopTimeout(loaded))
	defer cancelStop()
	if err := a.Stop(stopCtx); err != nil {
		_, _ = fmt.Fprintln(stderr, "service: stop:", err)
		return 1
	}
	return exitCode
}

// exitOnNextSignal exits at once on a SIGTERM or SIGINT from now on. Its
// channel is registered after the first signal was handed out, so it cannot
// receive that one.
func exitOnNextSignal(stderr io.Writer) {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-signals
		_, _ = fmt.Fprintln(stderr, "service: second signal, exiting now")
		os.Exit(2)
	}()
}

// healthcheck asks the admin listener's /readyz, for container health checks
// in an image without curl.
func healthcheck(args []string, stderr io.Writer) int {
	src, ok := parseConfigFlag("healthcheck", args, stderr)
	if !ok {
		return 2
	}
	// The admin address alone: the HTTP server's section, whatever modules
	// the service has.
	cfg, err := config.LoadSection(src, "http", config.AnyEnv(httpserver.DefaultConfig))
	if err != nil {
		reportStartError("healthcheck", err, stderr)
		return 1
	}
	host, port, _ := net.SplitHostPort(cfg.AdminAddr) // checked by LoadSection
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	client := &http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get("http://" + net.JoinHostPort(host, port) + "/readyz")
	if err != nil {
		_, _ = fmt.Fprintln(stderr, "healthcheck:", err)
		return 1
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = fmt.Fprintln(stderr, "healthcheck: /readyz answered", resp.Status)
		return 1
	}
	return 0
}

// version is the service's name and the version it was built from.
func version() string {
	return buildinfo.Name + " " + buildinfo.Version()
}
