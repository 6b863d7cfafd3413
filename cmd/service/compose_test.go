package main_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	"net/http"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/meshkit/meshkit/app/apptest/confignames"
	"github.com/meshkit/meshkit/internal/buildinfo"
	"github.com/meshkit/meshkit/internal/redistest"
)

// The files of the compose stack, from this package's directory.
const (
	composePath   = "../../docker-compose.yml"
	dashboardPath = "../../deploy/grafana/dashboards/service.json"
	telemetryDir  = "../../modules/telemetry"
)

// composeReplicas are the compose file's two replicas of the service.
var composeReplicas = []string{"service-a", "service-b"}

// composeFile is the part of docker-compose.yml the tests read.
type composeFile struct {
	Services map[string]struct {
		Environment map[string]string `yaml:"environment"`
	} `yaml:"services"`
}

func readCompose(t *testing.T) composeFile {
	t.Helper()
	var c composeFile
	if err := yaml.Unmarshal(readFile(t, composePath), &c); err != nil {
		t.Fatalf("%s: %v", composePath, err)
	}
	for _, name := range composeReplicas {
		if len(c.Services[name].Environment) == 0 {
			t.Fatalf("%s: service %s has no environment (a map of NAME: value)", composePath, name)
		}
	}
	return c
}

// knownVariables are the variables the service reads: confignames.Service
// (the env tags of the default app's configuration sections, SERVICE_ENV and SERVICE_CONFIG_FILE), and the
// OTEL_* names the telemetry module's sources mention (the ones it reads
// and the ones it leaves to the OpenTelemetry SDK and exporter).
func knownVariables(t *testing.T) map[string]bool {
	t.Helper()
	known := confignames.Service(t)

	sources, err := filepath.Glob(filepath.Join(telemetryDir, "*.go"))
	if err != nil || len(sources) == 0 {
		t.Fatalf("no Go sources in %s (%v)", telemetryDir, err)
	}
	otel := regexp.MustCompile(`\bOTEL_[A-Z0-9_]*[A-Z0-9]\b`)
	for _, src := range sources {
		if strings.HasSuffix(src, "_test.go") {
			continue
		}
		for _, name := range otel.FindAllString(string(readFile(t, src)), -1) {
			known[name] = true
		}
	}
	for _, must := range []string{"SERVICE_HTTP_ADDR", "SERVICE_REDIS_ADDR", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME"} {
		if !known[must] {
			t.Fatalf("the known variables miss %s: the sections' names or the scan of %s is broken", must, telemetryDir)
		}
	}
	return known
}

// TestComposeFileNamesOnlyVariablesTheServiceKnows keeps docker-compose.yml
// honest: a misspelt SERVICE_* or OTEL_* name would be silently ignored by
// the service in the container.
func TestComposeFileNamesOnlyVariablesTheServiceKnows(t *testing.T) {
	compose := readCompose(t)
	known := knownVariables(t)
	for _, replica := range composeReplicas {
		for name := range compose.Services[replica].Environment {
			if (strings.HasPrefix(name, "SERVICE_") || strings.HasPrefix(name, "OTEL_")) && !known[name] {
				t.Errorf("%s: %s sets %s, which the service does not read (see docs/CONFIGURATION.md and modules/telemetry)", composePath, replica, name)
			}
		}
	}
}

// nativeEnv is a replica's compose environment for the built binary on
// loopback. Only what must differ outside the containers changes: the
// listeners go to free loopback ports, Redis to redisAddr, the certificate
// paths under /certs to certDir, the OTLP endpoint to otlpURL. A value that
// names another compose service and is not rewritten here fails the test:
// the native topology would not match the file's. One setting is added:
// SERVICE_REDIS_TIMEOUT=1s, as checkSharedLimit has it, so that a slow
// moment of a loaded test machine does not open the breaker, whose local
// buckets are not shared.
func nativeEnv(t *testing.T, compose composeFile, replica, redisAddr, certDir, otlpURL string) []string {
	t.Helper()
	rewrites := map[string]string{
		"SERVICE_HTTP_ADDR":           "127.0.0.1:0",
		"SERVICE_ADMIN_ADDR":          "127.0.0.1:0",
		"SERVICE_REDIS_ADDR":          redisAddr,
		"SERVICE_REDIS_ADDRS":         redisAddr,
		"OTEL_EXPORTER_OTLP_ENDPOINT": otlpURL,
		"SERVICE_REDIS_TIMEOUT":       "1s",
	}
	var env []string
	for name, value := range compose.Services[replica].Environment {
		switch native, ok := rewrites[name]; {
		case ok:
			value = native
		case strings.HasPrefix(value, "/certs/"):
			value = filepath.Join(certDir, path.Base(value))
		default:
			for host := range compose.Services {
				if strings.Contains(value, host+":") || strings.Contains(value, "//"+host) {
					t.Fatalf("%s: %s=%s names the compose service %s, and the test does not know its native address: add a rewrite to nativeEnv", replica, name, value, host)
				}
			}
		}
		env = append(env, name+"="+value)
	}
	for _, name := range []string{"SERVICE_HTTP_ADDR", "SERVICE_ADMIN_ADDR", "SERVICE_REDIS_TIMEOUT"} {
		if _, ok := compose.Services[replica].Environment[name]; !ok {
			env = append(env, name+"="+rewrites[name]) // the defaults :8080 and :9090 would collide
		}
	}
	sort.Strings(env)
	return cleanEnv(env...)
}

// mTLSClient calls the service with the client certificate of the dev set in
// dir, as the compose file's client container does.
func mTLSClient(t *testing.T, dir string) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(readFile(t, filepath.Join(dir, "ca.pem"))) {
		t.Fatalf("%s/ca.pem holds no certificate", dir)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	transport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}}
	t.Cleanup(transport.CloseIdleConnections)
	return &http.Client{Transport: transport, Timeout: requestTimeout}
}

// localhostURL is an HTTPS URL of the listener at addr by the name the dev
// server certificate holds, as the client container's --connect-to does.
func localhostURL(t *testing.T, addr, path string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("listener address %q: %v", addr, err)
	}
	return "https://localhost:" + port + path
}

var remainingParam = regexp.MustCompile(`;r=(\d+)`)

// TestComposeTopologyNatively starts docker-compose.yml's two replicas as
// the built binary with the file's environment, a redis-server and an OTLP
// receiver, and checks that both are ready on the admin listener (and to
// `service healthcheck`, the image's HEALTHCHECK), serve the dev client
// certificate over mutual TLS, share one bucket per client through Redis,
// and export spans.
func TestComposeTopologyNatively(t *testing.T) {
	compose := readCompose(t)
	envA := compose.Services[composeReplicas[0]].Environment
	burst, err := strconv.Atoi(envA["SERVICE_RATELIMIT_BURST"])
	if err != nil || envA["SERVICE_RATELIMIT_BACKEND"] != "redis" {
		t.Fatalf("%s: %s has SERVICE_RATELIMIT_BACKEND=%q SERVICE_RATELIMIT_BURST=%q, want redis and a number", composePath, composeReplicas[0],
			envA["SERVICE_RATELIMIT_BACKEND"], envA["SERVICE_RATELIMIT_BURST"])
	}
	rate, err1 := strconv.Atoi(envA["SERVICE_RATELIMIT_RATE"])
	period, err2 := time.ParseDuration(envA["SERVICE_RATELIMIT_PERIOD"])
	if err1 != nil || err2 != nil || rate <= 0 || period <= 0 {
		t.Fatalf("%s: %s has SERVICE_RATELIMIT_RATE=%q SERVICE_RATELIMIT_PERIOD=%q, want both set", composePath, composeReplicas[0],
			envA["SERVICE_RATELIMIT_RATE"], envA["SERVICE_RATELIMIT_PERIOD"])
	}

	// The certs service: `service devcerts -dir /certs`, here into a temporary directory.
	certDir := filepath.Join(t.TempDir(), "certs")
	if r := runService(t, cleanEnv(), "devcerts", "-dir", certDir); r.exitCode != 0 {
		t.Fatalf("devcerts: exit %d\n%s", r.exitCode, r.stderr)
	}
	// A Redis of the test's own, so that the compose file's keys (no prefix
	// of the test's) start from a full bucket on every run.
	redis := redistest.Start(t)
	receiver := newOTLPReceiver(t)

	replicas := make([]*service, len(composeReplicas))
	for i, name := range composeReplicas {
		env := nativeEnv(t, compose, name, redis.Addr(), certDir, receiver.URL)
		replicas[i] = startService(t, env)
		// The image's HEALTHCHECK, which the compose file's depends_on
		// conditions wait for, with the replica's environment.
		if r := runService(t, append(slices.Clip(env), "SERVICE_ADMIN_ADDR="+replicas[i].adminAddr), "healthcheck"); r.exitCode != 0 {
			t.Errorf("%s: service healthcheck: exit %d, want 0\n%s", name, r.exitCode, r.stderr)
		}
	}
	plain := newClient(t)
	for i, s := range replicas {
		if mode := limiterMode(t, plain, s); mode != "redis" {
			t.Errorf("%s: admin /readyz says the rate limiter is in mode %q, want redis", composeReplicas[i], mode)
		}
	}

	// The compose file's client container calls GET /v1/hello, the example
	// module's; the binary here calls apptest.Module's GET /apptest/hello,
	// which answers alike (same policy, same body), so that the test holds
	// without the example module.
	//
	// One client identity, the replicas in turn, until both refuse: two
	// buckets would admit 2 x burst; one shared bucket admits burst plus
	// what refills meanwhile, and each answer's remaining count continues
	// the other replica's.
	client := mTLSClient(t, certDir)
	var answers []string
	admitted, limited := 0, make([]bool, len(replicas))
	previous := burst
	began := time.Now()
	for i := 0; i < 4*burst && slices.Contains(limited, false); i++ {
		s := replicas[i%len(replicas)]
		r := fetch(client, localhostURL(t, s.apiAddr, "/apptest/hello"))
		if r.err != nil {
			t.Fatalf("GET /apptest/hello over mutual TLS from %s: %v", composeReplicas[i%len(replicas)], r.err)
		}
		field := r.header.Get("RateLimit")
		answers = append(answers, composeReplicas[i%len(replicas)]+": "+strconv.Itoa(r.status)+" "+field)
		m := remainingParam.FindStringSubmatch(field)
		if m == nil {
			t.Fatalf("answer %d has no remaining count in RateLimit %q: %s", i, field, r)
		}
		remaining, _ := strconv.Atoi(m[1])
		refilled := int(float64(rate)*time.Since(began).Seconds()/period.Seconds()) + 1
		switch r.status {
		case http.StatusOK:
			admitted++
			if remaining > previous-1+refilled {
				t.Errorf("answer %d: %s remaining after the previous answer's %d: not one bucket (answers: %q)", i, m[1], previous, answers)
			}
		case http.StatusTooManyRequests:
			limited[i%len(replicas)] = true
		default:
			t.Fatalf("answer %d: %s, want 200 or 429", i, r)
		}
		previous = remaining
	}
	elapsed := time.Since(began)
	for i, s := range replicas {
		if mode := limiterMode(t, plain, s); mode != "redis" {
			t.Errorf("%s: after the calls the rate limiter is in mode %q, want redis (its local buckets are not shared)", composeReplicas[i], mode)
		}
	}
	bound := float64(burst) + float64(rate)*elapsed.Seconds()/period.Seconds()
	t.Logf("two replicas, one client: %d admitted in %s (burst %d, bound %.1f): %q", admitted, elapsed.Round(time.Millisecond), burst, bound, answers)
	if slices.Contains(limited, false) {
		t.Errorf("after %d calls not both replicas answered 429: %q", len(answers), answers)
	}
	if float64(admitted) > bound+1 || admitted < burst {
		t.Errorf("%d admitted across the replicas, want the one shared bucket's %d to %.1f", admitted, burst, bound+1)
	}

	// Spans reach the OTLP endpoint under the compose file's service name
	// (the batch goes out within its 5s delay).
	wantService := envA["OTEL_SERVICE_NAME"]
	if !pollUntil(15*time.Second, func() bool {
		spans, services := receiver.seen()
		return slices.Contains(spans, "GET /apptest/hello") && slices.Contains(services, wantService)
	}) {
		spans, services := receiver.seen()
		t.Errorf("the OTLP receiver got spans %q of services %q, want GET /apptest/hello of %q", spans, services, wantService)
	}
}

// dashboard is the part of the Grafana dashboard the test reads.
type dashboard struct {
	Panels []struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// The parts of a PromQL expression that are not metric names.
var (
	promStrings    = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promMatchers   = regexp.MustCompile(`\{[^}]*\}`)
	promRanges     = regexp.MustCompile(`\[[^\]]*\]`)
	promGrouping   = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)`)
	promIdentifier = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*(\s*\()?`)
	promKeywords   = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "inf": true, "nan": true, "group_left": true, "group_right": true}
)

// promQLNames returns the metric names an expression selects, and the label
// names it groups by. It knows the PromQL of our dashboard, not all of it:
// strings, label matchers and ranges are dropped, then every identifier
// that is not a function call, a keyword or part of a number is a metric.
func promQLNames(expr string) (metrics, labels []string) {
	s := promStrings.ReplaceAllString(expr, `""`)
	s = promMatchers.ReplaceAllString(s, " ")
	s = promRanges.ReplaceAllString(s, " ")
	for _, m := range promGrouping.FindAllStringSubmatch(s, -1) {
		for label := range strings.SplitSeq(m[1], ",") {
			if label = strings.TrimSpace(label); label != "" {
				labels = append(labels, label)
			}
		}
	}
	s = promGrouping.ReplaceAllString(s, " ")
	for _, loc := range promIdentifier.FindAllStringSubmatchIndex(s, -1) {
		word := s[loc[0]:loc[1]]
		if loc[2] >= 0 || promKeywords[strings.ToLower(word)] {
			continue // a function call or a keyword
		}
		if loc[0] > 0 && strings.ContainsRune("0123456789.", rune(s[loc[0]-1])) {
			continue // the exponent of a number, 1e3
		}
		metrics = append(metrics, word)
	}
	return metrics, labels
}

func TestPromQLNames(t *testing.T) {
	for _, tt := range []struct {
		expr            string
		metrics, labels []string
	}{
		{`sum by (http_route, le) (rate(http_server_request_duration_seconds_bucket{job="x, y"}[$__rate_interval]))`,
			[]string{"http_server_request_duration_seconds_bucket"}, []string{"http_route", "le"}},
		{`histogram_quantile(0.99, sum without(instance) (rate(a_bucket[5m])))`, []string{"a_bucket"}, []string{"instance"}},
		{`max by (mode) (ratelimit_redis_mode) == 1`, []string{"ratelimit_redis_mode"}, []string{"mode"}},
		{`a / on(x) group_left b offset 5m > 1e3 and c`, []string{"a", "b", "c"}, []string{"x"}},
	} {
		metrics, labels := promQLNames(tt.expr)
		if !slices.Equal(metrics, tt.metrics) || !slices.Equal(labels, tt.labels) {
			t.Errorf("promQLNames(%q) = %q, %q; want %q, %q", tt.expr, metrics, labels, tt.metrics, tt.labels)
		}
	}
}

// scrapedLabels reads a Prometheus text exposition into each sample name's
// label names.
func scrapedLabels(text string) map[string]map[string]bool {
	series := map[string]map[string]bool{}
	label := regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_]*)="`)
	for line := range strings.SplitSeq(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, rest, _ := strings.Cut(line, "{")
		name, _, _ = strings.Cut(name, " ")
		if series[name] == nil {
			series[name] = map[string]bool{}
		}
		if labels, _, ok := strings.Cut(rest, "}"); ok {
			for _, m := range label.FindAllStringSubmatch(labels, -1) {
				series[name][m[1]] = true
			}
		}
	}
	return series
}

// TestDashboardQueriesOnlyExportedMetrics: every metric the Grafana
// dashboard queries is a series the built binary's /metrics has after
// traffic with a 200, a 429 and a shed, on the Redis backend as in the
// compose file; every label it groups by is one of that metric's (or
// instance and job, which Prometheus adds); no metric is named after the
// service, and the dashboard does not name it either.
func TestDashboardQueriesOnlyExportedMetrics(t *testing.T) {
	var dash dashboard
	raw := readFile(t, dashboardPath)
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	// One dashboard for every service made from the template: it picks
	// them by scrape job and names none.
	if strings.Contains(strings.ToLower(string(raw)), strings.ToLower(buildinfo.Name)) {
		t.Errorf("%s names the service %q: it is every service's dashboard, which select by the job variable", dashboardPath, buildinfo.Name)
	}

	upstream := newSlowUpstream(t, time.Second, `{"upstream":"ok"}`)
	s := startService(t, redisEnv(t, "SERVICE_REDIS_ADDR="+redistest.Addr(t),
		"SERVICE_RATELIMIT_BURST=3", "SERVICE_RATELIMIT_RATE=1", "SERVICE_RATELIMIT_PERIOD=1m",
		"SERVICE_OVERLOAD_MAX_INFLIGHT=1", "SERVICE_OVERLOAD_QUEUE_SIZE=0",
		"SERVICE_APPTEST_UPSTREAM_URL="+upstream.URL))
	client := newClient(t)

	if r := mustGet(t, client, s.apiURL("/apptest/hello")); r.status != http.StatusOK {
		t.Fatalf("GET /apptest/hello: %s, want 200", r)
	}
	// The one admission slot held by a call to the slow upstream: the next
	// request is shed.
	var wg sync.WaitGroup
	var slow response
	wg.Go(func() { slow = fetch(client, s.apiURL("/apptest/upstream")) })
	upstream.waitForRequests(t, 1, requestTimeout)
	shed := mustGet(t, client, s.apiURL("/apptest/hello"))
	wg.Wait()
	if shed.status != http.StatusServiceUnavailable || slow.status != http.StatusOK {
		t.Fatalf("GET /apptest/hello while /apptest/upstream held the only slot: %s, want 503 (and the upstream call 200: %s)", shed, slow)
	}
	// The bucket of 3 has had two: the third is the last.
	statuses := map[int]int{}
	for range 3 {
		statuses[mustGet(t, client, s.apiURL("/apptest/hello")).status]++
	}
	if statuses[http.StatusOK] != 1 || statuses[http.StatusTooManyRequests] != 2 {
		t.Fatalf("three more GET /apptest/hello: %v, want one 200 and two 429", statuses)
	}

	metrics := mustGet(t, client, s.adminURL("/metrics"))
	if metrics.status != http.StatusOK {
		t.Fatalf("admin /metrics: %s", metrics)
	}
	exported := scrapedLabels(metrics.body)
	// A metric's name says what it measures, never which service: the
	// service is a label (target_info's service_name, the scrape job), so
	// that every service made from this template shares the dashboard.
	servicePrefix := strings.ReplaceAll(strings.ToLower(buildinfo.Name), "-", "_") + "_"
	for name := range exported {
		if strings.HasPrefix(name, servicePrefix) {
			t.Errorf("/metrics serves %s, whose name starts with the service's name %q", name, buildinfo.Name)
		}
	}
	queried := 0
	for _, panel := range dash.Panels {
		for _, target := range panel.Targets {
			names, labels := promQLNames(target.Expr)
			if len(names) == 0 {
				t.Errorf("panel %q: no metric found in %q", panel.Title, target.Expr)
			}
			for _, name := range names {
				queried++
				// Every selector picks the services of the dashboard's
				// variable, so that services sharing a Prometheus do not mix.
				if !regexp.MustCompile(`\b` + regexp.QuoteMeta(name) + `\{[^}]*job=~"\$job"`).MatchString(target.Expr) {
					t.Errorf("panel %q: %s in %q is not filtered by {job=~\"$job\"}", panel.Title, name, target.Expr)
				}
				if exported[name] == nil {
					t.Errorf("panel %q queries %s, which /metrics does not export after the traffic", panel.Title, name)
				}
			}
			for _, label := range labels {
				if label == "instance" || label == "job" {
					continue
				}
				if !slices.ContainsFunc(names, func(name string) bool { return exported[name][label] }) {
					t.Errorf("panel %q groups by %s, a label none of %q has on /metrics", panel.Title, label, names)
				}
			}
		}
	}
	if queried == 0 {
		t.Fatalf("%s: no panel queries a metric", dashboardPath)
	}
	if t.Failed() {
		t.Logf("/metrics after the traffic:\n%s", metrics.body)
	}
}
