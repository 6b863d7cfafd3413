package benchstat

import (
	"testing"
)

// Rounds is how many times Compare measures each peer.
const Rounds = 5

// Peer is one side of a comparison: the name its metrics carry, and the
// function that does b.N operations on it.
type Peer struct {
	Name    string
	Measure func(*testing.B)
}

// Ratio is a metric of Compare: the median over the rounds of peer Of's
// operations per second over peer Over's, each round's two figures measured
// in that round. Unit is the metric's name in the benchmark's output.
type Ratio struct {
	Unit     string
	Of, Over string
}

// Compare measures the peers alternately, Rounds times each, every one doing
// b.N operations per round, and reports on b for each peer the medians of
// its rounds as <name>-ns/op, <name>-allocs/op and <name>-req/s, then each
// ratio. The order turns by one peer a round (round r starts with peers[r
// mod n]: with two peers, the first one leads in even rounds and the second
// in odd ones), so that drift in the machine's speed hits every peer alike.
// The benchmark's own ns/op, the time of all peers together, is reported as
// 0, which hides it.
//
// One op of such a benchmark is one operation on each peer in each round.
// (testing.Benchmark cannot be used for the rounds: it waits for the lock
// the running benchmark holds.)
func Compare(b *testing.B, peers []Peer, ratios ...Ratio) {
	b.Helper()
	index := make(map[string]int, len(peers))
	for i, p := range peers {
		if _, dup := index[p.Name]; dup {
			b.Fatalf("benchstat.Compare: two peers named %q", p.Name)
		}
		index[p.Name] = i
	}
	for _, r := range ratios {
		if _, ok := index[r.Of]; !ok {
			b.Fatalf("benchstat.Compare: ratio %s: no peer %q", r.Unit, r.Of)
		}
		if _, ok := index[r.Over]; !ok {
			b.Fatalf("benchstat.Compare: ratio %s: no peer %q", r.Unit, r.Over)
		}
	}
	ns := make([][]float64, len(peers))
	allocs := make([][]float64, len(peers))
	b.ResetTimer()
	for round := range Rounds {
		for _, i := range Order(len(peers), round) {
			n, a := Measure(b, peers[i].Measure)
			if b.Failed() {
				b.FailNow()
			}
			ns[i] = append(ns[i], n)
			allocs[i] = append(allocs[i], a)
		}
	}
	for i, p := range peers {
		median := Median(ns[i])
		b.ReportMetric(median, p.Name+"-ns/op")
		b.ReportMetric(Median(allocs[i]), p.Name+"-allocs/op")
		b.ReportMetric(1e9/median, p.Name+"-req/s")
	}
	for _, r := range ratios {
		b.ReportMetric(Median(RoundRatios(ns[index[r.Of]], ns[index[r.Over]])), r.Unit)
	}
	b.ReportMetric(0, "ns/op")
}

// Order is the order in which Compare measures n peers in a round: their
// indexes, starting at round mod n.
func Order(n, round int) []int {
	order := make([]int, n)
	for i := range order {
		order[i] = (round + i) % n
	}
	return order
}

// RoundRatios is, for each round, the operations per second of the peer that
// took ofNs ns/op over those of the one that took overNs.
func RoundRatios(ofNs, overNs []float64) []float64 {
	ratios := make([]float64, len(ofNs))
	for i := range ratios {
		ratios[i] = overNs[i] / ofNs[i]
	}
	return ratios
}
