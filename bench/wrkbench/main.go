// Command wrkbench is the throughput benchmark of docs/BENCHMARKS.md: it
// drives the built binaries of three peers with wrk, an external load
// generator, in one run: bare gin (bench/baregin), go-zero's rest with its
// default chain (bench/gozero) and meshkit (cmd/service), each serving
// GET /v1/hello on loopback. scripts/bench builds them and runs it.
//
// It measures each condition in turn: traces off (sampler 0), 1% and 100%
// of the requests traced and exported over OTLP/HTTP to a discarding sink
// (bench/otlpsink, one per peer), each with access logs off (log level
// error) and on (info; to /dev/null). For a condition it starts the peers,
// warms each up, then runs rounds of `wrk -t2 -c64 -d4s --latency`, the
// peers' order turning by one each round, and prints one `go test -bench`
// style line per condition: each peer's median req/s and latency (p50, p99
// in ms) over the rounds, and the medians of the rounds' ratios
// meshkit/bare-rps, gozero/bare-rps and meshkit/gozero-rps. The rate limits
// are out of reach; a connection error fails the run, as does a traced condition whose sink received nothing (or an untraced one
// whose sink received spans). scripts/benchtable turns the lines into
// markdown and a chart; -raw keeps wrk's own output. req/s counts 2xx
// answers only: a peer that sheds load is not credited for its refusals,
// whose median share is reported as <peer>-non2xx-%. <peer>-cpu-us/req is
// the peer process's CPU time (user and system, from /proc) per request: on
// a loaded machine it moves less than req/s, since it does not count the
// time the peer waited for a core; bare/meshkit-cpu-ratio and
// gozero/meshkit-cpu-ratio are the medians of the rounds' ratios of it
// (above 1: meshkit spends less per request than that peer), what the req/s
// ratios tend to when the peers are CPU-bound.
//
//	wrkbench -bin DIR [-duration 4s] [-rounds 3] [-only REGEXP] [-raw FILE] [-profile DIR]
//
// DIR holds the binaries service, baregin, gozero and otlpsink. -profile
// takes a CPU profile of meshkit (SERVICE_ADMIN_PPROF) during its last
// round of each condition, into DIR/meshkit-<condition>.pprof.
package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const helloBody = `{"message":"hello, world"}`

func main() {
	bin := flag.String("bin", "", "the `dir`ectory holding the binaries service, baregin, gozero and otlpsink")
	duration := flag.Duration("duration", 4*time.Second, "each wrk run's duration")
	rounds := flag.Int("rounds", 3, "rounds per condition")
	threads := flag.Int("threads", 2, "wrk threads (-t)")
	conns := flag.Int("connections", 64, "wrk connections (-c)")
	only := flag.String("only", "", "measure only the conditions this `regexp` matches (traces=off,logs=off, ...)")
	raw := flag.String("raw", "", "append wrk's own output to this `file`")
	profile := flag.String("profile", "", "write a CPU profile of meshkit's last round of each condition into this `dir`")
	flag.Parse()

	b := &bench{
		bin: *bin, duration: *duration, rounds: *rounds, profileDir: *profile,
		wrkArgs: []string{"-t" + strconv.Itoa(*threads), "-c" + strconv.Itoa(*conns), "--latency"},
		raw:     io.Discard,
	}
	if err := b.run(*only, *raw); err != nil {
		fmt.Fprintln(os.Stderr, "wrkbench:", err)
		os.Exit(1)
	}
}

// bench is one run's settings.
type bench struct {
	bin        string
	duration   time.Duration
	rounds     int
	wrkArgs    []string
	profileDir string
	raw        io.Writer
}

// condition is what the peers are measured under.
type condition struct {
	traces  string  // "off", "1%" or "100%"
	sampler float64 // the fraction traced
	logs    bool    // access logs on (log level info)
}

func (c condition) String() string {
	return "traces=" + c.traces + ",logs=" + map[bool]string{false: "off", true: "on"}[c.logs]
}

func conditions() []condition {
	var cs []condition
	for _, t := range []struct {
		name    string
		sampler float64
	}{{"off", 0}, {"1%", 0.01}, {"100%", 1}} {
		for _, logs := range []bool{false, true} {
			cs = append(cs, condition{traces: t.name, sampler: t.sampler, logs: logs})
		}
	}
	return cs
}

// peerNames is the order of the first round; each round turns it by one.
var peerNames = []string{"bare", "gozero", "meshkit"}

func (b *bench) run(only, rawFile string) error {
	if _, err := exec.LookPath("wrk"); err != nil {
		return errors.New("wrk is not on PATH: install it (Debian/Ubuntu: sudo apt-get install wrk; macOS: brew install wrk), then run again")
	}
	if b.bin == "" {
		return errors.New("-bin is required: the directory holding service, baregin, gozero and otlpsink (scripts/bench builds them)")
	}
	re, err := regexp.Compile(only)
	if err != nil {
		return fmt.Errorf("-only: %w", err)
	}
	if rawFile != "" {
		f, err := os.OpenFile(filepath.Clean(rawFile), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		defer func() { _ = f.Close() }()
		b.raw = f
	}
	if b.profileDir != "" {
		if err := os.MkdirAll(b.profileDir, 0o750); err != nil {
			return err
		}
	}
	fmt.Printf("goos: linux\ngoarch: amd64\ncpu: %s\npkg: wrk %s -d%s, %d rounds\n", cpuModel(), strings.Join(b.wrkArgs, " "), durationArg(b.duration), b.rounds)
	for _, c := range conditions() {
		if !re.MatchString(c.String()) {
			continue
		}
		line, err := b.measure(c)
		if err != nil {
			return fmt.Errorf("%s: %w", c, err)
		}
		fmt.Println(line)
	}
	return nil
}

// sample is one wrk run's figures.
type sample struct {
	rps, p50, p99 float64 // 2xx answers/s; latency in ms
	refused       float64 // the share of non-2xx answers
	cpu           float64 // the peer process's CPU time per request, in us
	requests      float64 // answers of any status
}

// measure starts the peers under c, runs the rounds and returns the result
// line.
func (b *bench) measure(c condition) (string, error) {
	peers := map[string]*process{}
	sinks := map[string]*process{}
	defer func() {
		for _, p := range peers {
			if p != nil {
				p.stop()
			}
		}
		for _, s := range sinks {
			if s != nil {
				s.stop()
			}
		}
	}()
	for _, name := range []string{"gozero", "meshkit"} {
		s, err := b.startSink()
		if err != nil {
			return "", err
		}
		sinks[name] = s
	}
	var err error
	if peers["bare"], err = b.startBare(); err != nil {
		return "", err
	}
	if peers["gozero"], err = b.startGoZero(c, sinks["gozero"].addr); err != nil {
		return "", err
	}
	if peers["meshkit"], err = b.startService(c, sinks["meshkit"].addr); err != nil {
		return "", err
	}
	for _, name := range peerNames {
		if _, err := b.wrk(peers[name], "warm-up "+name+" "+c.String(), time.Second); err != nil {
			return "", err
		}
	}

	samples := map[string][]sample{}
	var ratios [5][]float64 // meshkit/bare, gozero/bare, meshkit/gozero req/s; bare/meshkit, gozero/meshkit CPU per request
	for round := range b.rounds {
		got := map[string]sample{}
		for i := range peerNames {
			name := peerNames[(i+round)%len(peerNames)]
			var profile chan error
			if name == "meshkit" && round == b.rounds-1 && b.profileDir != "" {
				profile = make(chan error, 1)
				go func() { profile <- b.cpuProfile(peers[name], c) }()
			}
			s, err := b.wrk(peers[name], fmt.Sprintf("round %d %s %s", round+1, name, c), b.duration)
			if err != nil {
				return "", err
			}
			if profile != nil {
				if err := <-profile; err != nil {
					return "", err
				}
			}
			got[name] = s
			samples[name] = append(samples[name], s)
		}
		ratios[0] = append(ratios[0], got["meshkit"].rps/got["bare"].rps)
		ratios[1] = append(ratios[1], got["gozero"].rps/got["bare"].rps)
		ratios[2] = append(ratios[2], got["meshkit"].rps/got["gozero"].rps)
		ratios[3] = append(ratios[3], got["bare"].cpu/got["meshkit"].cpu)
		ratios[4] = append(ratios[4], got["gozero"].cpu/got["meshkit"].cpu)
	}
	// The sinks must have what the condition says: spans when traced, none
	// when not. Stopping the peers flushes their exporters.
	for _, name := range []string{"gozero", "meshkit"} {
		peers[name].stop()
		got, err := sinkRequests(sinks[name].addr)
		if err != nil {
			return "", err
		}
		if traced := c.sampler > 0; traced != (got > 0) {
			return "", fmt.Errorf("%s's OTLP sink received %d export requests under %s; want %s", name, got, c,
				map[bool]string{true: "some", false: "none"}[traced])
		}
	}

	var line strings.Builder
	fmt.Fprintf(&line, "BenchmarkWrkHello/%s\t%d", c, b.rounds)
	for _, name := range peerNames {
		fmt.Fprintf(&line, "\t%.0f %s-req/s", median(samples[name], func(s sample) float64 { return s.rps }), name)
	}
	for _, name := range peerNames {
		fmt.Fprintf(&line, "\t%.3g %s-p50-ms\t%.3g %s-p99-ms", median(samples[name], func(s sample) float64 { return s.p50 }), name,
			median(samples[name], func(s sample) float64 { return s.p99 }), name)
	}
	for _, name := range peerNames {
		fmt.Fprintf(&line, "\t%.3g %s-cpu-us/req", median(samples[name], func(s sample) float64 { return s.cpu }), name)
	}
	for _, name := range peerNames {
		if r := median(samples[name], func(s sample) float64 { return s.refused }); r > 0 {
			fmt.Fprintf(&line, "\t%.3g %s-non2xx-%%", 100*r, name)
		}
	}
	for i, unit := range []string{"meshkit/bare-rps", "gozero/bare-rps", "meshkit/gozero-rps", "bare/meshkit-cpu-ratio", "gozero/meshkit-cpu-ratio"} {
		fmt.Fprintf(&line, "\t%.3f %s", median(ratios[i], func(v float64) float64 { return v }), unit)
	}
	return line.String(), nil
}

// wrk runs wrk against p's hello route for d and returns its figures. Any
// non-2xx answer or socket error is an error.
func (b *bench) wrk(p *process, label string, d time.Duration) (sample, error) {
	args := append(slices.Clone(b.wrkArgs), "-d"+durationArg(d), p.url)
	cpuBefore, cpuErr := cpuTime(p.cmd.Process.Pid)
	out, err := exec.Command("wrk", args...).CombinedOutput() //nolint:gosec // wrk with our own arguments
	cpuAfter, cpuErr2 := cpuTime(p.cmd.Process.Pid)
	_, _ = fmt.Fprintf(b.raw, "### %s: wrk %s\n%s\n", label, strings.Join(args, " "), out) // the raw copy is a courtesy
	if err != nil {
		return sample{}, fmt.Errorf("wrk %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	if err := p.alive(); err != nil {
		return sample{}, err
	}
	s, err := parseWrk(string(out))
	if err = cmp.Or(err, cpuErr, cpuErr2); err != nil {
		return sample{}, fmt.Errorf("%s: %w", label, err)
	}
	s.cpu = float64((cpuAfter - cpuBefore).Microseconds()) / s.requests
	return s, nil
}

// cpuTime is the user and system CPU time process pid has used, from
// /proc/PID/stat (in clock ticks of 10ms, the USER_HZ of Linux).
func cpuTime(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("the CPU time of a peer (Linux only): %w", err)
	}
	// The fields after the command, which is in parentheses: state is the
	// 3rd field of the line, utime and stime the 14th and 15th.
	fields := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, data)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err := cmp.Or(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

var (
	rpsLine      = regexp.MustCompile(`(?m)^Requests/sec:\s+([0-9.]+)`)
	totalLine    = regexp.MustCompile(`(?m)^\s+([0-9]+) requests in `)
	non2xxLine   = regexp.MustCompile(`(?m)^\s*Non-2xx or 3xx responses: ([0-9]+)`)
	latencyLine  = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
	socketErrors = regexp.MustCompile(`(?m)^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

// parseWrk reads wrk --latency's output. Its req/s counts the 2xx answers
// only: a peer that sheds load (go-zero's default chain answers 503 once the
// CPU passes 90%) is not credited for its refusals; their share is reported.
func parseWrk(out string) (sample, error) {
	// A connection error fails the run; a request slower than wrk's 2s
	// timeout (a peer starved by a loaded machine) only goes uncounted.
	if bad := socketErrors.FindStringSubmatch(out); bad != nil && (bad[1] != "0" || bad[2] != "0" || bad[3] != "0") {
		return sample{}, fmt.Errorf("wrk reports %q:\n%s", strings.TrimSpace(bad[0]), out)
	}
	m, total := rpsLine.FindStringSubmatch(out), totalLine.FindStringSubmatch(out)
	if m == nil || total == nil {
		return sample{}, fmt.Errorf("no Requests/sec in wrk's output:\n%s", out)
	}
	s := sample{}
	s.rps, _ = strconv.ParseFloat(m[1], 64)
	s.requests, _ = strconv.ParseFloat(total[1], 64)
	if bad := non2xxLine.FindStringSubmatch(out); bad != nil {
		refused, _ := strconv.ParseFloat(bad[1], 64)
		s.refused = refused / s.requests
		s.rps *= 1 - s.refused
	}
	for _, l := range latencyLine.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(l[2], 64)
		v *= map[string]float64{"us": 0.001, "ms": 1, "s": 1000}[l[3]]
		if l[1] == "50" {
			s.p50 = v
		} else {
			s.p99 = v
		}
	}
	if s.rps <= 0 || s.requests <= 0 || s.p50 <= 0 || s.p99 <= 0 {
		return sample{}, fmt.Errorf("incomplete wrk output (req/s %v, p50 %v, p99 %v):\n%s", s.rps, s.p50, s.p99, out)
	}
	return s, nil
}

// cpuProfile saves a CPU profile of meshkit, taken from its admin listener
// for most of a wrk run.
func (b *bench) cpuProfile(p *process, c condition) error {
	seconds := max(1, int((b.duration-time.Second)/time.Second))
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", p.adminAddr, seconds)
	resp, err := http.Get(url) //nolint:gosec,noctx // our own loopback URL; bounded by seconds
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %v %s", url, resp.StatusCode, err, body)
	}
	name := strings.NewReplacer("traces=", "traces-", "logs=", "logs-", ",", "_", "%", "pct").Replace(c.String())
	file := filepath.Join(b.profileDir, "meshkit-"+name+".pprof")
	fmt.Fprintf(os.Stderr, "wrkbench: CPU profile of meshkit under %s: %s\n", c, file)
	return os.WriteFile(file, body, 0o600)
}

// process is a started peer or sink.
type process struct {
	name      string
	cmd       *exec.Cmd
	addr      string // host:port it serves on
	adminAddr string // meshkit's admin listener
	url       string // the hello route
	exited    chan struct{}
	err       error // set when exited is closed
}

// startProcess starts bin with args and env added to ours, its output
// discarded, and waits until ready() succeeds.
func (b *bench) startProcess(name, addr, bin string, args, env []string, ready func() error) (*process, error) {
	cmd := exec.Command(filepath.Join(b.bin, bin), args...) //nolint:gosec // our own binaries
	cmd.Env = append(os.Environ(), env...)
	p := &process{name: name, cmd: cmd, addr: addr, url: "http://" + addr + "/v1/hello", exited: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := ready()
		if err == nil {
			return p, nil
		}
		if perr := p.alive(); perr != nil || time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("%s (%s %s, env %s) did not become ready: %w; run it by hand to see its output",
				name, cmd.Path, strings.Join(args, " "), strings.Join(env, " "), cmp.Or(perr, err))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// alive is nil while p runs.
func (p *process) alive() error {
	select {
	case <-p.exited:
		return fmt.Errorf("%s exited: %v", p.name, p.err)
	default:
		return nil
	}
}

// stop ends p with SIGTERM (SIGKILL after 15s) and waits for it.
func (p *process) stop() {
	if p.alive() != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

func (b *bench) startSink() (*process, error) {
	addr := freeAddr()
	return b.startProcess("otlpsink", addr, "otlpsink", []string{"-addr", addr}, nil, func() error {
		_, err := sinkRequests(addr)
		return err
	})
}

func (b *bench) startBare() (*process, error) {
	addr := freeAddr()
	return b.startProcess("bare", addr, "baregin", []string{"-addr", addr}, nil, helloReady(addr))
}

func (b *bench) startGoZero(c condition, sink string) (*process, error) {
	addr, dev := freeAddr(), freeAddr()
	_, port, _ := net.SplitHostPort(addr)
	_, devPort, _ := net.SplitHostPort(dev)
	level := "error"
	if c.logs {
		level = "info"
	}
	args := []string{"-port", port, "-devport", devPort, "-log", level,
		"-sampler", strconv.FormatFloat(c.sampler, 'g', -1, 64), "-otlp", sink}
	return b.startProcess("gozero", addr, "gozero", args, nil, helloReady(addr))
}

func (b *bench) startService(c condition, sink string) (*process, error) {
	addr, admin := freeAddr(), freeAddr()
	level, sampler := "error", "traceidratio"
	if c.logs {
		level = "info"
	}
	switch c.sampler {
	case 0:
		sampler = "always_off"
	case 1:
		sampler = "always_on"
	}
	env := []string{
		"SERVICE_HTTP_ADDR=" + addr, "SERVICE_ADMIN_ADDR=" + admin, "SERVICE_ADMIN_PPROF=true",
		"SERVICE_LOG_LEVEL=" + level,
		// Out of reach: every request still pays for its token.
		"SERVICE_RATELIMIT_RATE=1000000", "SERVICE_RATELIMIT_PERIOD=1s", "SERVICE_RATELIMIT_BURST=1000000000",
		"OTEL_TRACES_SAMPLER=" + sampler, "OTEL_TRACES_SAMPLER_ARG=" + strconv.FormatFloat(c.sampler, 'g', -1, 64),
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + sink, "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
	}
	p, err := b.startProcess("meshkit", addr, "service", nil, env, helloReady(addr))
	if p != nil {
		p.adminAddr = admin
	}
	return p, err
}

// helloReady succeeds once GET /v1/hello at addr answers 200 with the body.
func helloReady(addr string) func() error {
	return func() error {
		body, status, err := get("http://" + addr + "/v1/hello")
		if err == nil && (status != http.StatusOK || !bytes.Equal(bytes.TrimSpace(body), []byte(helloBody))) {
			err = fmt.Errorf("GET /v1/hello = %d %s, want 200 %s", status, body, helloBody)
		}
		return err
	}
}

// sinkRequests is the number of export requests the sink at addr has had.
func sinkRequests(addr string) (int64, error) {
	body, _, err := get("http://" + addr + "/stats")
	if err != nil {
		return 0, err
	}
	var requests, bytes int64
	if _, err := fmt.Sscanf(string(body), "requests=%d bytes=%d", &requests, &bytes); err != nil {
		return 0, fmt.Errorf("sink stats %q: %w", body, err)
	}
	return requests, nil
}

func get(url string) ([]byte, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	return body, resp.StatusCode, err
}

// freeAddr is a loopback address whose port was free a moment ago.
func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

func durationArg(d time.Duration) string {
	return strconv.Itoa(max(1, int(d.Round(time.Second)/time.Second))) + "s"
}

func median[T any](vs []T, f func(T) float64) float64 {
	s := make([]float64, 0, len(vs))
	for _, v := range vs {
		s = append(s, f(v))
	}
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// cpuModel is the first "model name" of /proc/cpuinfo, with the core count.
func cpuModel() string {
	data, _ := os.ReadFile("/proc/cpuinfo")
	model := "unknown CPU"
	for line := range strings.SplitSeq(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			model = strings.TrimSpace(v)
			break
		}
	}
	return fmt.Sprintf("%s, %d cores", model, strings.Count(string(data), "processor\t:"))
}
