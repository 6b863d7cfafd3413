// Command benchtable reads `go test -bench` output on stdin and prints it as
// markdown: one table per benchmark (per package), a row per result line, a
// column per metric. scripts/bench runs every benchmark of
// docs/BENCHMARKS.md through it.
//
//	go test -run '^$' -bench . ./app/ | go run ./scripts/benchtable
//	go run ./scripts/benchtable -svg docs/bench-throughput.svg < peers.txt
//
// Metrics are ordered as docs/BENCHMARKS.md writes them: times, then bytes
// and allocations, then rates, each for the peers in a fixed order (bare,
// naive, without, with, stage, meshkit, then the other peers); the ratios
// (rps-ratio, meshkit/bare-rps, x-peer, ...) come last, in bold. A metric
// "<peer>-<unit>" is headed "<peer> <unit>". The standard ns/op is left out
// when a comparison hides it (reports 0).
//
// A line "benchtable-command: CMD" (scripts/bench writes one before each
// command) starts a section headed by CMD. Lines that say a test failed
// (--- FAIL, FAIL, panic:) are copied to stderr, and make the exit status 1.
//
// With -svg FILE it also writes a bar chart of the req/s of each peer
// (metrics "<peer>-req/s", the median of the lines of a case) of the
// benchmarks that -plot matches, one group of bars per case.
package main

import (
	"bufio"
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

func main() {
	svgFile := flag.String("svg", "", "also write a bar chart of the peers' req/s to this `file`")
	plot := flag.String("plot", "PeersLoopback", "the benchmarks (a `regexp` on their names) whose req/s the chart shows")
	title := flag.String("title", "GET /v1/hello over loopback: requests per second (higher is better)", "the chart's `title`")
	flag.Parse()

	run, err := Parse(os.Stdin)
	if err != nil && run != nil {
		for _, line := range run.Failures {
			fmt.Fprintln(os.Stderr, line)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
	for _, line := range run.Failures {
		fmt.Fprintln(os.Stderr, line)
	}
	if err := run.WriteMarkdown(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
	if *svgFile != "" {
		re, err := regexp.Compile(*plot)
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchtable: -plot:", err)
			os.Exit(2)
		}
		chart := run.Throughput(re)
		if len(chart.Cases) == 0 {
			fmt.Fprintf(os.Stderr, "benchtable: -svg: no benchmark matching %q reports <peer>-req/s\n", *plot)
			os.Exit(1)
		}
		chart.Title = *title
		if err := writeFile(*svgFile, chart.SVG()); err != nil {
			fmt.Fprintln(os.Stderr, "benchtable:", err)
			os.Exit(1)
		}
	}
	if len(run.Failures) > 0 {
		os.Exit(1)
	}
}

// writeFile creates (or truncates) the file name and writes text to it.
func writeFile(name, text string) error {
	f, err := os.Create(filepath.Clean(name))
	if err != nil {
		return err
	}
	_, err = f.WriteString(text)
	return errors.Join(err, f.Close())
}

// Result is one result line of `go test -bench`.
type Result struct {
	Pkg string
	// Name is the top-level benchmark, "BenchmarkHelloLoopback".
	Name string
	// Case is the sub-benchmark's path, "sampled=100%", or "" for none.
	Case string
	N    int64
	// Metrics holds each value by its unit, "bare-ns/op".
	Metrics map[string]float64
}

// Table is the results of one benchmark of one package, in input order.
type Table struct {
	Pkg, Name string
	Results   []Result
}

// Section is the tables of one command.
type Section struct {
	Command string
	Tables  []*Table
}

// Run is the parsed output.
type Run struct {
	// CPU, GOOS and GOARCH as the first package's header says.
	CPU, GOOS, GOARCH string
	Sections          []*Section
	// Failures are the lines that say a test or benchmark failed.
	Failures []string
}

var (
	resultLine = regexp.MustCompile(`^(Benchmark[^\s/]*)(/\S*?)?(-\d+)?\s+(\d+)\s+(.+)$`)
	procSuffix = regexp.MustCompile(`-\d+$`)
)

// Parse reads `go test -bench` output.
func Parse(r io.Reader) (*Run, error) {
	run := &Run{}
	var (
		pkg     string
		section *Section
	)
	tables := map[string]*Table{} // by section, package and name
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), " \t\r")
		switch {
		case strings.HasPrefix(line, "benchtable-command: "):
			section = &Section{Command: strings.TrimPrefix(line, "benchtable-command: ")}
			run.Sections = append(run.Sections, section)
			continue
		case strings.HasPrefix(line, "pkg: "):
			pkg = strings.TrimPrefix(line, "pkg: ")
			continue
		case strings.HasPrefix(line, "cpu: "):
			run.CPU = cmp.Or(run.CPU, strings.TrimSpace(strings.TrimPrefix(line, "cpu: ")))
			continue
		case strings.HasPrefix(line, "goos: "):
			run.GOOS = cmp.Or(run.GOOS, strings.TrimPrefix(line, "goos: "))
			continue
		case strings.HasPrefix(line, "goarch: "):
			run.GOARCH = cmp.Or(run.GOARCH, strings.TrimPrefix(line, "goarch: "))
			continue
		case isFailure(line):
			run.Failures = append(run.Failures, line)
			continue
		}
		res, ok := parseResult(line)
		if !ok {
			continue
		}
		res.Pkg = pkg
		if section == nil {
			section = &Section{}
			run.Sections = append(run.Sections, section)
		}
		key := fmt.Sprintf("%p %s %s", section, pkg, res.Name)
		t := tables[key]
		if t == nil {
			t = &Table{Pkg: pkg, Name: res.Name}
			tables[key] = t
			section.Tables = append(section.Tables, t)
		}
		t.Results = append(t.Results, res)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(tables) == 0 {
		return run, errNoResults
	}
	return run, nil
}

func isFailure(line string) bool {
	trimmed := strings.TrimSpace(line)
	return strings.HasPrefix(trimmed, "--- FAIL") || strings.HasPrefix(line, "FAIL") ||
		strings.HasPrefix(line, "panic:")
}

// parseResult reads "BenchmarkX/case-2  N  v unit  v unit ...".
func parseResult(line string) (Result, bool) {
	m := resultLine.FindStringSubmatch(line)
	if m == nil {
		return Result{}, false
	}
	name, sub := m[1], strings.TrimPrefix(m[2], "/")
	if m[3] == "" && sub == "" {
		name = procSuffix.ReplaceAllString(name, "")
	}
	n, err := strconv.ParseInt(m[4], 10, 64)
	if err != nil {
		return Result{}, false
	}
	fields := strings.Fields(m[5])
	if len(fields)%2 != 0 {
		return Result{}, false
	}
	res := Result{Name: name, Case: sub, N: n, Metrics: map[string]float64{}}
	for i := 0; i < len(fields); i += 2 {
		v, err := strconv.ParseFloat(fields[i], 64)
		if err != nil {
			return Result{}, false
		}
		res.Metrics[fields[i+1]] = v
	}
	if v, ok := res.Metrics["ns/op"]; ok && v == 0 {
		delete(res.Metrics, "ns/op") // a comparison's hidden total
	}
	return res, true
}

// WriteMarkdown prints the machine, then each section's tables.
func (run *Run) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	if run.CPU != "" {
		fmt.Fprintf(&b, "Machine: %s, %s/%s.\n\n", run.CPU, run.GOOS, run.GOARCH)
	}
	for _, s := range run.Sections {
		if s.Command != "" {
			fmt.Fprintf(&b, "## `%s`\n\n", s.Command)
		}
		if len(s.Tables) == 0 {
			b.WriteString("No results.\n\n")
		}
		for _, t := range s.Tables {
			t.writeMarkdown(&b)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (t *Table) writeMarkdown(b *strings.Builder) {
	fmt.Fprintf(b, "### %s (%s)\n\n", t.Name, shortPkg(t.Pkg))
	cols := t.Columns()
	b.WriteString("| case |")
	for _, c := range cols {
		label := columnLabel(c)
		if isRatio(c) {
			label = "**" + label + "**"
		}
		b.WriteString(" " + label + " |")
	}
	b.WriteString("\n|---|" + strings.Repeat("---:|", len(cols)) + "\n")
	for _, r := range t.Results {
		fmt.Fprintf(b, "| %s |", cmp.Or(r.Case, "-"))
		for _, c := range cols {
			v, ok := r.Metrics[c]
			switch {
			case !ok:
				b.WriteString(" |")
			case isRatio(c):
				fmt.Fprintf(b, " **%s** |", FormatValue(c, v))
			default:
				fmt.Fprintf(b, " %s |", FormatValue(c, v))
			}
		}
		b.WriteString("\n")
	}
	b.WriteString("\n")
}

// shortPkg is the package path relative to the module, or as it is.
func shortPkg(pkg string) string {
	if rest, ok := strings.CutPrefix(pkg, "github.com/meshkit/meshkit/"); ok {
		return rest
	}
	if pkg == "" {
		return "?"
	}
	return pkg
}

// Columns returns the metrics of the table's results, in display order.
func (t *Table) Columns() []string {
	var cols []string
	for _, r := range t.Results {
		for m := range r.Metrics {
			if !slices.Contains(cols, m) {
				cols = append(cols, m)
			}
		}
	}
	slices.SortFunc(cols, compareColumns)
	return cols
}

// units are the metric units a column may start or end with, in the order
// the columns show them.
var units = []string{
	"ns/op", "ns/decision", "B/client", "B/op", "allocs/op",
	"req/s", "p50-ms", "p99-ms", "cpu-us/req", "non2xx-%", "decisions/s", "calls/retry-interval", "admitted/retry-interval",
}

// ratioPeers is the order of the ratios' columns by the peer they divide
// (meshkit/bare-rps before naive/bare-rps); others come after, by name.
var ratioPeers = []string{"meshkit", "naive"}

// peers is the order of the peers' columns; others come after, by name.
var peers = []string{"", "bare", "naive", "gozero", "without", "with", "stage", "meshkit", "redis_rate", "peer", "peer-nokeys"}

// splitMetric returns a metric's peer and unit: "bare-ns/op" is bare's ns/op,
// "ns/decision-peer" peer's ns/decision, "ns/op" nobody's (the benchmark's
// own, "" for peer).
func splitMetric(m string) (peer, unit string) {
	for _, u := range units {
		if m == u {
			return "", u
		}
		if p, ok := strings.CutSuffix(m, "-"+u); ok {
			return p, u
		}
		if p, ok := strings.CutPrefix(m, u+"-"); ok {
			return p, u
		}
	}
	return "", m
}

// isRatio reports whether metric m is a ratio of peers: rps-ratio,
// meshkit/bare-rps, x-peer, x-redis_rate.
func isRatio(m string) bool {
	return strings.HasSuffix(m, "ratio") || strings.HasPrefix(m, "x-") ||
		(strings.Contains(m, "/") && strings.HasSuffix(m, "-rps"))
}

// isRPSRatio reports whether m is a ratio of req/s (the chart shows those):
// rps-ratio, meshkit/bare-rps.
func isRPSRatio(m string) bool {
	return isRatio(m) && (strings.HasSuffix(m, "-rps") || m == "rps-ratio")
}

func compareColumns(a, b string) int {
	if ra, rb := isRatio(a), isRatio(b); ra != rb {
		if ra {
			return 1
		}
		return -1
	} else if ra {
		// The template's own ratios first, whatever the service is named.
		na, _, _ := strings.Cut(a, "/")
		nb, _, _ := strings.Cut(b, "/")
		if c := cmp.Compare(rank(ratioPeers, na), rank(ratioPeers, nb)); c != 0 {
			return c
		}
	}
	pa, ua := splitMetric(a)
	pb, ub := splitMetric(b)
	return cmp.Or(
		cmp.Compare(rank(units, ua), rank(units, ub)),
		cmp.Compare(rank(peers, pa), rank(peers, pb)),
		strings.Compare(a, b),
	)
}

// rank is s's index in order, or past its end.
func rank(order []string, s string) int {
	if i := slices.Index(order, s); i >= 0 {
		return i
	}
	return len(order)
}

// columnLabel heads a column: "bare ns/op" for "bare-ns/op".
func columnLabel(m string) string {
	if isRatio(m) {
		return m
	}
	if peer, unit := splitMetric(m); peer != "" && strings.HasSuffix(m, "-"+unit) {
		return peer + " " + unit
	}
	return m
}

// FormatValue writes v as docs/BENCHMARKS.md does: ratios with three
// decimals; from 1,000 up whole numbers with thousands separators; below,
// four significant digits at most.
func FormatValue(metric string, v float64) string {
	switch {
	case isRatio(metric):
		return strconv.FormatFloat(v, 'f', 3, 64)
	case math.Abs(v) >= 1000:
		return thousands(int64(math.Round(v)))
	case v == math.Trunc(v):
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	rounded, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 4, 64), 64)
	return strconv.FormatFloat(rounded, 'f', -1, 64)
}

func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// Chart is the data of the throughput chart: for each case, each peer's
// median req/s.
type Chart struct {
	Title string
	Cases []ChartCase
	Peers []string
}

// ChartCase is one group of bars.
type ChartCase struct {
	Name string
	// RPS is each peer's median req/s, by peer; Lines how many lines it is
	// the median of.
	RPS   map[string]float64
	Lines int
	// Ratios are the case's ratio metrics (medians), by name.
	Ratios map[string]float64
}

// Throughput gathers the "<peer>-req/s" metrics of the benchmarks whose
// name matches re.
func (run *Run) Throughput(re *regexp.Regexp) Chart {
	var chart Chart
	values := map[string]map[string][]float64{} // case, metric
	var order []string
	for _, s := range run.Sections {
		for _, t := range s.Tables {
			if !re.MatchString(t.Name) {
				continue
			}
			for _, r := range t.Results {
				name := cmp.Or(r.Case, strings.TrimPrefix(t.Name, "Benchmark"))
				for m, v := range r.Metrics {
					peer, unit := splitMetric(m)
					if (unit != "req/s" || peer == "") && !isRPSRatio(m) {
						continue
					}
					if values[name] == nil {
						values[name] = map[string][]float64{}
						order = append(order, name)
					}
					values[name][m] = append(values[name][m], v)
					if unit == "req/s" && !slices.Contains(chart.Peers, peer) {
						chart.Peers = append(chart.Peers, peer)
					}
				}
			}
		}
	}
	slices.SortFunc(chart.Peers, func(a, b string) int {
		return cmp.Or(cmp.Compare(rank(peers, a), rank(peers, b)), strings.Compare(a, b))
	})
	for _, name := range order {
		c := ChartCase{Name: name, RPS: map[string]float64{}, Ratios: map[string]float64{}}
		for m, vs := range values[name] {
			if isRPSRatio(m) {
				c.Ratios[m] = median(vs)
				continue
			}
			peer, _ := splitMetric(m)
			c.RPS[peer] = median(vs)
			c.Lines = max(c.Lines, len(vs))
		}
		chart.Cases = append(chart.Cases, c)
	}
	return chart
}

func median(vs []float64) float64 {
	s := slices.Sorted(slices.Values(vs))
	if len(s) == 0 {
		return math.NaN()
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// peerLabels names the peers in the chart's legend.
var peerLabels = map[string]string{
	"bare":    "bare gin",
	"naive":   "naive (otelgin + histogram + rate map)",
	"gozero":  "go-zero rest (default chain)",
	"meshkit": "meshkit (default chain)",
}

var peerColors = []string{"#9e9e9e", "#e8a33d", "#2f6db5", "#5aa469", "#b5482f"}

// SVG draws the chart: a group of bars per case, a bar per peer with its
// req/s above it, the case's ratios under the group, and a legend.
func (c Chart) SVG() string {
	const (
		height                   = 460
		left, right, top, bottom = 80, 20, 70, 130
	)
	width := max(760, left+right+150*len(c.Cases)) // room for each group's labels
	plotW, plotH := float64(width-left-right), float64(height-top-bottom)
	top0 := 0.0
	for _, cs := range c.Cases {
		for _, v := range cs.RPS {
			top0 = max(top0, v)
		}
	}
	step := niceStep(top0 / 5)
	yMax := math.Ceil(top0/step) * step
	if yMax <= 0 {
		yMax, step = 1, 1
	}
	y := func(v float64) float64 { return float64(top) + plotH*(1-v/yMax) }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="15" font-weight="bold">%s</text>`+"\n", left, xmlEscape(c.Title))
	// Legend.
	lx := float64(left)
	for i, p := range c.Peers {
		label := cmp.Or(peerLabels[p], p)
		fmt.Fprintf(&b, `<rect x="%.1f" y="36" width="12" height="12" fill="%s"/>`+"\n", lx, peerColors[i%len(peerColors)])
		fmt.Fprintf(&b, `<text x="%.1f" y="46">%s</text>`+"\n", lx+16, xmlEscape(label))
		lx += 16 + 6.5*float64(len(label)) + 18
	}
	// Grid and y axis.
	for v := 0.0; v <= yMax+step/2; v += step {
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#dddddd"/>`+"\n", left, width-right, y(v), y(v))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y(v)+4, thousands(int64(v)))
	}
	fmt.Fprintf(&b, `<text x="16" y="%.1f" transform="rotate(-90 16 %.1f)" text-anchor="middle">requests per second</text>`+"\n", float64(top)+plotH/2, float64(top)+plotH/2)
	// Bars.
	groupW := plotW / float64(max(len(c.Cases), 1))
	barW := groupW * 0.7 / float64(max(len(c.Peers), 1))
	for gi, cs := range c.Cases {
		x0 := float64(left) + groupW*float64(gi) + groupW*0.15
		for pi, p := range c.Peers {
			v, ok := cs.RPS[p]
			if !ok {
				continue
			}
			x := x0 + barW*float64(pi)
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s, %s: %s req/s</title></rect>`+"\n",
				x+2, y(v), barW-4, y(0)-y(v), peerColors[pi%len(peerColors)], xmlEscape(cs.Name), xmlEscape(p), thousands(int64(math.Round(v))))
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x+barW/2, y(v)-5, thousands(int64(math.Round(v))))
		}
		cx := float64(left) + groupW*(float64(gi)+0.5)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-weight="bold">%s</text>`+"\n", cx, y(0)+20, xmlEscape(cs.Name))
		for i, m := range slices.Sorted(maps.Keys(cs.Ratios)) {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#555555">%s %.2f</text>`+"\n",
				cx, y(0)+38+15*float64(i), xmlEscape(strings.TrimSuffix(m, "-rps")), cs.Ratios[m])
		}
	}
	fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#333333"/>`+"\n", left, width-right, y(0), y(0))
	lines := 0
	for _, cs := range c.Cases {
		lines = max(lines, cs.Lines)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#555555" font-size="11">A bar: the median of %d result line(s); under each group, the median of their req/s ratios. See docs/BENCHMARKS.md.</text>`+"\n", left, height-12, lines)
	b.WriteString("</svg>\n")
	return b.String()
}

// niceStep rounds a grid step up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	pow := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*pow >= raw {
			return m * pow
		}
	}
	return 10 * pow
}

func xmlEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		case '"':
			b.WriteString("&quot;")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// errNoResults is Parse's error when the input holds no result line.
var errNoResults = errors.New("no benchmark results in the input")
