package benchstat_test

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/meshkit/meshkit/internal/benchstat"
)

func TestMedian(t *testing.T) {
	xs := []float64{5, 1, 3, 2}
	if got := benchstat.Median(xs); got != 2.5 {
		t.Errorf("Median(%v) = %v, want 2.5", xs, got)
	}
	if !slices.Equal(xs, []float64{5, 1, 3, 2}) {
		t.Errorf("Median changed its argument to %v", xs)
	}
	if got := benchstat.Median([]float64{4, 9, 1}); got != 4 {
		t.Errorf("Median of three = %v, want 4", got)
	}
}

func TestOrderTurnsByOnePeerARound(t *testing.T) {
	for _, tt := range []struct {
		n, round int
		want     []int
	}{
		{2, 0, []int{0, 1}},
		{2, 1, []int{1, 0}},
		{2, 4, []int{0, 1}},
		{3, 0, []int{0, 1, 2}},
		{3, 1, []int{1, 2, 0}},
		{3, 2, []int{2, 0, 1}},
		{3, 3, []int{0, 1, 2}},
	} {
		if got := benchstat.Order(tt.n, tt.round); !slices.Equal(got, tt.want) {
			t.Errorf("Order(%d, %d) = %v, want %v", tt.n, tt.round, got, tt.want)
		}
	}
}

func TestRoundRatiosAreRequestsPerSecond(t *testing.T) {
	// A peer that takes twice the time serves half the requests per second.
	got := benchstat.RoundRatios([]float64{200, 300}, []float64{100, 100})
	if want := []float64{0.5, 1.0 / 3}; !slices.Equal(got, want) {
		t.Errorf("RoundRatios = %v, want %v", got, want)
	}
}

func TestGetChecksStatusAndBody(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ok", func(w http.ResponseWriter, _ *http.Request) { _, _ = fmt.Fprint(w, "fine") })
	mux.HandleFunc("GET /teapot", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusTeapot)
		_, _ = fmt.Fprint(w, "fine")
	})
	base := benchstat.StartServer(t, mux)
	client := benchstat.NewClient(t)
	benchstat.CheckGet(t, "ok", client, base+"/ok", "fine")

	var body bytes.Buffer
	for path, want := range map[string]string{
		"/ok":     "other", // the wrong body
		"/teapot": "fine",  // the right body, the wrong status
	} {
		req, err := http.NewRequest(http.MethodGet, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := benchstat.Get(client, req, &body, want); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("Get %s want %q: err = %v, want an error naming the URL", path, want, err)
		}
	}
}

func BenchmarkCompareSmoke(b *testing.B) {
	base := benchstat.StartServer(b, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = fmt.Fprint(w, "fine")
	}))
	client := benchstat.NewClient(b)
	get := func(b *testing.B) { benchstat.GetParallel(b, client, base+"/", "fine") }
	benchstat.Compare(b,
		[]benchstat.Peer{{Name: "a", Measure: get}, {Name: "b", Measure: get}},
		benchstat.Ratio{Unit: "b/a", Of: "b", Over: "a"},
	)
}
