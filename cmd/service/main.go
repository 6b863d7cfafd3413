// Command service runs the meshkit service, and its subcommands: health
// checks for containers, the version, development certificates and tokens,
// the API document.
// `service help` lists them with their flags, from the table subcommands().
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
	"slices"
	"strings"
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

// subcommand is one of the service's subcommands. `service help` lists
// each with its summary and the flags its setup function defines.
type subcommand struct {
	name    string // "" is the server: the first argument is a flag, or there is none
	summary string // one line, for service help
	details string // more, for `service NAME -h`; may be empty
	// setup defines the subcommand's flags on fs and returns the function
	// that runs it once they are parsed. service help calls it too, only to
	// read the flags back.
	setup func(fs *flag.FlagSet) (run func(stdout, stderr io.Writer) int)
}

// subcommands is the table of the service's subcommands, in the order
// service help lists them. A subcommand of your own is one line here.
func subcommands() []subcommand {
	return []subcommand{
		{name: "", summary: "run the service until SIGTERM or SIGINT (settings: docs/CONFIGURATION.md)", setup: serveCommand},
		{name: "healthcheck", summary: "exit 0 when the admin listener's /readyz says ready, else 1", setup: healthcheckCommand},
		{name: "version", summary: "print the service's name and version", setup: versionCommand},
		{name: "devcerts", summary: "write a development CA, server and client certificate for mutual TLS", details: devcertsDetails, setup: devcertsCommand},
		{name: "devtoken", summary: "print an HS256 bearer token for local development", details: devtokenDetails, setup: devtokenCommand},
		{name: "openapi", summary: "print the API document, OpenAPI 3.1 (docs/openapi.json is its output)", setup: openapiCommand},
		{name: "help", summary: "print this help (also -h, -help and --help)", setup: helpCommand},
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs the subcommand that the first argument names, or the server when
// that argument is a flag or there is none, and returns the exit status: 2
// for an unknown subcommand or a bad flag, which start nothing.
func run(args []string, stdout, stderr io.Writer) int {
	cmds := subcommands()
	name, named := "", len(args) > 0 && !strings.HasPrefix(args[0], "-")
	if named {
		name, args = args[0], args[1:]
	}
	i := slices.IndexFunc(cmds, func(c subcommand) bool { return c.name == name })
	if i < 0 || named && name == "" { // an empty argument names no subcommand
		_, _ = fmt.Fprintf(stderr, "service: unknown subcommand %q\n\n", name)
		printHelp(stderr, cmds)
		return 2
	}
	cmd := cmds[i]

	flags, runCmd := flagSet(cmd)
	flags.SetOutput(stderr) // the flag package's messages: a bad flag, a bad value
	// Parse calls Usage for -h as for a bad flag; the usage is printed below,
	// to stdout when asked for and to stderr after an error.
	flags.Usage = func() {}
	err := flags.Parse(args)
	flags.Usage = func() { printUsage(stderr, cmd, flags) } // for the subcommand's own usage errors
	switch {
	case errors.Is(err, flag.ErrHelp) && cmd.name == "":
		return printHelp(stdout, cmds) // service -h, -help, --help
	case errors.Is(err, flag.ErrHelp):
		return printUsage(stdout, cmd, flags)
	case err != nil:
		flags.Usage()
		return 2
	case flags.NArg() > 0:
		return usageError(flags, "unexpected argument "+flags.Arg(0))
	}
	return runCmd(stdout, stderr)
}

// configFlag defines -config, which the server, healthcheck and openapi read.
func configFlag(flags *flag.FlagSet) *string {
	return flags.String("config", "", "read settings from the YAML `FILE` (default $SERVICE_CONFIG_FILE; a sample: configs/service.yaml)")
}

// serveCommand is the server: `service [-config FILE]`.
func serveCommand(flags *flag.FlagSet) func(stdout, stderr io.Writer) int {
	configFile := configFlag(flags)
	return func(_, stderr io.Writer) int {
		return serve(config.Source{File: *configFile}, stderr)
	}
}

// versionCommand is `service version`: no flags.
func versionCommand(*flag.FlagSet) func(stdout, stderr io.Writer) int {
	return func(stdout, stderr io.Writer) int {
		if _, err := fmt.Fprintln(stdout, version()); err != nil {
			_, _ = fmt.Fprintln(stderr, "version:", err)
			return 1
		}
		return 0
	}
}

// helpCommand is `service help`: no flags.
func helpCommand(*flag.FlagSet) func(stdout, stderr io.Writer) int {
	return func(stdout, _ io.Writer) int { return printHelp(stdout, subcommands()) }
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

// healthcheckCommand asks the admin listener's /readyz, for container health
// checks in an image without curl.
func healthcheckCommand(flags *flag.FlagSet) func(stdout, stderr io.Writer) int {
	configFile := configFlag(flags)
	return func(_, stderr io.Writer) int {
		return checkReady(config.Source{File: *configFile}, stderr)
	}
}

// checkReady asks the admin listener of the configuration src for /readyz:
// 0 when it answers 200, else 1.
func checkReady(src config.Source, stderr io.Writer) int {
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
