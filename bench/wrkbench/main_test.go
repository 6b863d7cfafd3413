package main

import (
	"math"
	"os"
	"strings"
	"testing"
)

const wrkOK = `Running 4s test @ http://127.0.0.1:34401/v1/hello
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    14.13ms   21.03ms 140.49ms   88.79%
    Req/Sec     4.24k     2.95k   17.00k    79.22%
  Latency Distribution
     50%  696.00us
     75%   15.89ms
     90%   38.55ms
     99%    1.05s
  33634 requests in 4.08s, 11.35MB read
Requests/sec:   8252.10
Transfer/sec:      2.79MB
`

func TestParseWrk(t *testing.T) {
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-6*math.Max(1, math.Abs(b)) }
	t.Run("all 2xx, latency in us, ms and s", func(t *testing.T) {
		s, err := parseWrk(wrkOK)
		if err != nil {
			t.Fatal(err)
		}
		if !near(s.rps, 8252.10) || !near(s.requests, 33634) || !near(s.p50, 0.696) || !near(s.p99, 1050) || s.refused != 0 {
			t.Errorf("got %+v; want 8252.10 req/s of 33634, p50 0.696ms, p99 1050ms, none refused", s)
		}
	})
	t.Run("non-2xx answers are not credited", func(t *testing.T) {
		out := strings.Replace(wrkOK, "Requests/sec:", "  Non-2xx or 3xx responses: 3363\nRequests/sec:", 1)
		s, err := parseWrk(out)
		if err != nil {
			t.Fatal(err)
		}
		if !near(s.refused, 3363.0/33634) || !near(s.rps, 8252.10*(1-3363.0/33634)) {
			t.Errorf("got %+v; want a tenth refused and req/s cut by as much", s)
		}
	})
	t.Run("timeouts only go uncounted", func(t *testing.T) {
		out := strings.Replace(wrkOK, "Requests/sec:", "  Socket errors: connect 0, read 0, write 0, timeout 12\nRequests/sec:", 1)
		if _, err := parseWrk(out); err != nil {
			t.Error(err)
		}
	})
	for name, out := range map[string]string{
		"socket errors":  strings.Replace(wrkOK, "Requests/sec:", "  Socket errors: connect 0, read 3, write 0, timeout 0\nRequests/sec:", 1),
		"no req/s":       strings.Replace(wrkOK, "Requests/sec:", "Something:", 1),
		"no percentiles": strings.Replace(wrkOK, "99%", "98%", 1),
		"empty":          "",
	} {
		t.Run(name, func(t *testing.T) {
			if s, err := parseWrk(out); err == nil {
				t.Errorf("parseWrk = %+v, nil; want an error", s)
			}
		})
	}
}

func TestCPUTimeOfThisProcess(t *testing.T) {
	// Spend some CPU, then read it back: it must be positive and plausible.
	x := 0
	for i := range 50_000_000 {
		x += i % 7
	}
	d, err := cpuTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if d <= 0 || d.Hours() > 24 || x < 0 {
		t.Errorf("cpuTime = %v; want a positive time of this test process", d)
	}
}
