package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestParseResult(t *testing.T) {
	for _, tt := range []struct {
		line, name, cas string
		n               int64
		metrics         map[string]float64
	}{
		{
			line: "BenchmarkHelloLoopback/sampled=100%-2         	       1	       112.0 bare-allocs/op	    715990 bare-ns/op	         0.9819 rps-ratio",
			name: "BenchmarkHelloLoopback", cas: "sampled=100%", n: 1,
			metrics: map[string]float64{"bare-allocs/op": 112, "bare-ns/op": 715990, "rps-ratio": 0.9819},
		},
		{
			line: "BenchmarkServerStage/sampled=1%/no-access-log-2        	   100000	         8.500 stage-allocs/op	     28669 stage-ns/op",
			name: "BenchmarkServerStage", cas: "sampled=1%/no-access-log", n: 100000,
			metrics: map[string]float64{"stage-allocs/op": 8.5, "stage-ns/op": 28669},
		},
		{
			line: "BenchmarkMemoryBytesPerClient-2   	       1	        33.60 B/client	       151.8 B/client-peer",
			name: "BenchmarkMemoryBytesPerClient", n: 1,
			metrics: map[string]float64{"B/client": 33.6, "B/client-peer": 151.8},
		},
		{ // GOMAXPROCS=1: no suffix
			line: "BenchmarkVerify/ES256/cached 	  20000	      2264 ns/op	     320 B/op	       1 allocs/op",
			name: "BenchmarkVerify", cas: "ES256/cached", n: 20000,
			metrics: map[string]float64{"ns/op": 2264, "B/op": 320, "allocs/op": 1},
		},
		{ // a comparison's hidden total
			line: "BenchmarkMemoryDecisions/callers=64-2 	 3000000	 0 ns/op	 16601 ns/decision",
			name: "BenchmarkMemoryDecisions", cas: "callers=64", n: 3000000,
			metrics: map[string]float64{"ns/decision": 16601},
		},
	} {
		got, ok := parseResult(tt.line)
		if !ok {
			t.Errorf("parseResult(%q) failed", tt.line)
			continue
		}
		if got.Name != tt.name || got.Case != tt.cas || got.N != tt.n {
			t.Errorf("parseResult(%q) = %q, %q, %d; want %q, %q, %d", tt.line, got.Name, got.Case, got.N, tt.name, tt.cas, tt.n)
		}
		if !mapsEqual(got.Metrics, tt.metrics) {
			t.Errorf("parseResult(%q) metrics = %v, want %v", tt.line, got.Metrics, tt.metrics)
		}
	}
	for _, line := range []string{
		"goos: linux", "PASS", "ok  	github.com/meshkit/meshkit/app	0.274s",
		"BenchmarkX-2 	 1	 12 ns/op	 13", // odd fields
		"    bench_test.go:12: some log line",
	} {
		if _, ok := parseResult(line); ok {
			t.Errorf("parseResult(%q) took it for a result", line)
		}
	}
}

func mapsEqual(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func parseFile(t *testing.T, name string) *Run {
	t.Helper()
	data, err := os.ReadFile(filepath.Clean(name))
	if err != nil {
		t.Fatal(err)
	}
	run, err := Parse(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return run
}

// TestParseQuickRun reads output captured from scripts/bench -quick.
func TestParseQuickRun(t *testing.T) {
	run := parseFile(t, "testdata/quick.txt")
	if run.CPU != "Oxide Virtual Turin-like Processor" || run.GOOS != "linux" || run.GOARCH != "amd64" {
		t.Errorf("machine %q %s/%s", run.CPU, run.GOOS, run.GOARCH)
	}
	if len(run.Failures) != 0 {
		t.Errorf("failures %q, want none", run.Failures)
	}
	var got []string
	for _, s := range run.Sections {
		for _, tab := range s.Tables {
			got = append(got, shortPkg(tab.Pkg)+" "+tab.Name+" "+strings.Repeat("x", len(tab.Results)))
		}
	}
	want := []string{
		"app BenchmarkHelloLoopback xx",
		"modules/ratelimit BenchmarkRedisVsRedisRate xxx",
		"modules/ratelimit BenchmarkRedisDeniedFlood xx",
		"bench BenchmarkPeersLoopback xx",
	}
	if !slices.Equal(got, want) {
		t.Errorf("tables:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(run.Sections) != 3 || !strings.Contains(run.Sections[0].Command, "HelloLoopback") {
		t.Errorf("%d sections, first %q", len(run.Sections), run.Sections[0].Command)
	}

	var out strings.Builder
	if err := run.WriteMarkdown(&out); err != nil {
		t.Fatal(err)
	}
	md := out.String()
	for _, want := range []string{
		"Machine: Oxide Virtual Turin-like Processor, linux/amd64.\n",
		"## `go test -run '^$' -bench 'HelloLoopback' -benchtime 1x -count 1 ./app/`\n",
		"### BenchmarkHelloLoopback (app)\n\n" +
			"| case | bare ns/op | meshkit ns/op | bare allocs/op | meshkit allocs/op | bare req/s | meshkit req/s | **rps-ratio** |\n" +
			"|---|---:|---:|---:|---:|---:|---:|---:|\n" +
			"| sampled=100% | 715,990 | 729,195 | 112 | 146 | 1,397 | 1,371 | **0.982** |\n" +
			"| sampled=1% | 605,122 | 660,896 | 103 | 143 | 1,653 | 1,513 | **0.821** |\n",
		"| case | ns/op | decisions/s | meshkit decisions/s | redis_rate decisions/s | **x-redis_rate** |\n",
		"| ratio | | | 3,092 | 3,043 | **1.098** |\n",
		"| case | bare ns/op | naive ns/op | meshkit ns/op | bare allocs/op | naive allocs/op | meshkit allocs/op | bare req/s | naive req/s | meshkit req/s | **meshkit/bare-rps** | **meshkit/naive-rps** | **naive/bare-rps** |\n",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks\n%s\ngot:\n%s", want, md)
		}
	}
}

func TestParseFailures(t *testing.T) {
	in := strings.Join([]string{
		"benchtable-command: go test -bench . ./x/",
		"pkg: example.com/x",
		"BenchmarkA-2 	 10	 5.0 ns/op",
		"--- FAIL: BenchmarkB",
		"    b_test.go:9: no Redis",
		"FAIL	example.com/x	0.1s",
	}, "\n")
	run, err := Parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"--- FAIL: BenchmarkB", "FAIL	example.com/x	0.1s"}; !slices.Equal(run.Failures, want) {
		t.Errorf("failures %q, want %q", run.Failures, want)
	}
	if _, err := Parse(strings.NewReader("PASS\nok  	x	0.1s\n")); !errors.Is(err, errNoResults) {
		t.Errorf("Parse of no results: %v, want errNoResults", err)
	}
}

func TestColumnOrder(t *testing.T) {
	cols := []string{
		"rps-ratio", "meshkit-req/s", "bare-allocs/op", "meshkit-ns/op", "bare-ns/op", "bare-req/s",
		"x-peer", "ns/decision-peer", "ns/decision", "with-ns/op", "stage-ns/op", "without-ns/op",
	}
	slices.SortFunc(cols, compareColumns)
	want := []string{
		"bare-ns/op", "without-ns/op", "with-ns/op", "stage-ns/op", "meshkit-ns/op",
		"ns/decision", "ns/decision-peer", "bare-allocs/op", "bare-req/s", "meshkit-req/s",
		"rps-ratio", "x-peer",
	}
	if !slices.Equal(cols, want) {
		t.Errorf("order\n%q\nwant\n%q", cols, want)
	}
	for m, label := range map[string]string{
		"bare-ns/op": "bare ns/op", "ns/decision-peer": "ns/decision-peer", "B/client": "B/client",
		"meshkit/bare-rps": "meshkit/bare-rps", "redis_rate-decisions/s": "redis_rate decisions/s",
	} {
		if got := columnLabel(m); got != label {
			t.Errorf("columnLabel(%q) = %q, want %q", m, got, label)
		}
	}
}

func TestFormatValue(t *testing.T) {
	for _, tt := range []struct {
		metric string
		v      float64
		want   string
	}{
		{"rps-ratio", 0.9819, "0.982"},
		{"x-peer", 2, "2.000"},
		{"meshkit/naive-rps", 1.1604, "1.160"},
		{"bare-ns/op", 715990, "715,990"},
		{"bare-ns/op", 1300.4, "1,300"},
		{"bare-ns/op", 316.54, "316.5"},
		{"B/client", 33.60, "33.6"},
		{"bare-allocs/op", 112, "112"},
		{"calls/retry-interval", 0.9794, "0.9794"},
		{"calls/retry-interval", 0, "0"},
		{"decisions/s", 1234567.8, "1,234,568"},
	} {
		if got := FormatValue(tt.metric, tt.v); got != tt.want {
			t.Errorf("FormatValue(%q, %v) = %q, want %q", tt.metric, tt.v, got, tt.want)
		}
	}
}

func TestThroughputChart(t *testing.T) {
	run := parseFile(t, "testdata/peers-quiet.txt")
	chart := run.Throughput(regexp.MustCompile("PeersLoopback"))
	if want := []string{"bare", "naive", "meshkit"}; !slices.Equal(chart.Peers, want) {
		t.Errorf("peers %q, want %q", chart.Peers, want)
	}
	if len(chart.Cases) != 2 || chart.Cases[0].Name != "sampled=100%" || chart.Cases[1].Name != "sampled=1%" {
		t.Fatalf("cases %+v", chart.Cases)
	}
	c := chart.Cases[0]
	if c.Lines != 2 || c.RPS["bare"] != (20853+20647)/2.0 || c.RPS["meshkit"] != (15874+15475)/2.0 {
		t.Errorf("sampled=100%%: %d lines, bare %v, meshkit %v", c.Lines, c.RPS["bare"], c.RPS["meshkit"])
	}
	if got := c.Ratios["meshkit/naive-rps"]; math.Abs(got-1.171) > 1e-9 {
		t.Errorf("sampled=100%%: meshkit/naive %v", got)
	}

	chart.Title = "a <title> & more"
	svg := chart.SVG()
	dec := xml.NewDecoder(strings.NewReader(svg))
	bars := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the SVG is not well-formed XML: %v\n%s", err, svg)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "rect" {
			for _, a := range se.Attr {
				if a.Name.Local == "fill" && a.Value != "#ffffff" {
					bars++
				}
			}
		}
	}
	if want := 3 + 2*3; bars != want { // legend swatches and bars
		t.Errorf("%d colored rects, want %d", bars, want)
	}
	for _, want := range []string{"20,750", "15,675", "meshkit/naive 1.17", "a &lt;title&gt; &amp; more"} {
		if !strings.Contains(svg, want) {
			t.Errorf("the SVG lacks %q", want)
		}
	}
}

func TestNiceStep(t *testing.T) {
	for raw, want := range map[float64]float64{4150: 5000, 1900: 2000, 0.3: 0.5, 1000: 1000, 0: 1} {
		if got := niceStep(raw); got != want {
			t.Errorf("niceStep(%v) = %v, want %v", raw, got, want)
		}
	}
}
