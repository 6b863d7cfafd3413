// Command service runs the meshkit service.
//
//	service [-config FILE]    run the service (configuration: DESIGN.md section 3)
//	service healthcheck       exit 0 when the admin /readyz says ready, else 1
//	service version           print the version
//	service devcerts [-dir DIR] [-trust-domain TD] [-force]
//	                          write development certificates for mTLS
//	service devtoken -secret-env VAR [-sub S] [-iss I] [-aud A] [-ttl D]
//	                          print an HS256 token for local development
//
// It is the only place that exits.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/meshkit/meshkit/app"
)

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
		}
	}
	cfg, code := loadConfig("service", args, stderr)
	if code != 0 {
		return code
	}
	return serve(cfg, stderr)
}

// loadConfig parses the -config flag of command name and loads the
// configuration. A non-zero code is the exit status: 2 for bad flags, 1 for a
// bad configuration, reported in one line.
func loadConfig(name string, args []string, stderr io.Writer) (app.Config, int) {
	flags := flag.NewFlagSet(name, flag.ContinueOnError)
	flags.SetOutput(stderr)
	configFile := flags.String("config", "", "YAML configuration file (default: $SERVICE_CONFIG_FILE)")
	if err := flags.Parse(args); err != nil {
		return app.Config{}, 2
	}
	cfg, err := app.LoadConfig(app.ConfigSource{File: *configFile})
	if err != nil {
		_, _ = fmt.Fprintln(stderr, name+": configuration:", err)
		return app.Config{}, 1
	}
	return cfg, 0
}

// serve runs the app until SIGTERM or SIGINT, then stops it within the
// shutdown budget: readiness fails and the listeners start closing each
// connection after its response, the drain delay passes while they serve,
// in-flight requests get the shutdown timeout, then the rest stops. It
// returns 0 after a clean drain and 1 when the stop failed (requests still
// running at the deadline). A second signal exits at once, with 2.
func serve(cfg app.Config, stderr io.Writer) int {
	gin.SetMode(gin.ReleaseMode)
	a := app.New(app.WithConfig(cfg), testModules())
	if err := a.Err(); err != nil {
		_, _ = fmt.Fprintln(stderr, "service:", err)
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
	stopCtx, cancelStop := context.WithTimeout(context.Background(), a.StopTimeout())
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
	cfg, code := loadConfig("healthcheck", args, stderr)
	if code != 0 {
		return code
	}
	host, port, _ := net.SplitHostPort(cfg.HTTP.AdminAddr) // checked by LoadConfig
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

// version is the module version the binary was built from, or "devel".
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok || info.Main.Version == "" || info.Main.Version == "(devel)" {
		rev := "devel"
		if ok {
			for _, s := range info.Settings {
				if s.Key == "vcs.revision" {
					rev = "devel+" + s.Value
				}
			}
		}
		return "meshkit " + rev
	}
	return "meshkit " + info.Main.Version
}
