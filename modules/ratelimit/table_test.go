package ratelimit

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestTableConcurrentUpdatesLoseNothing races decisions on a few hundred
// clients against what moves entries: shards growing as a stream of new
// clients arrives, and sweeps. With the clock standing still each client must
// get exactly its burst, however often its entry moved meanwhile. At the
// cap, evictions join in: a client evicted comes back with a full bucket, so
// there only the cap is checked (and the race detector watches).
func TestTableConcurrentUpdatesLoseNothing(t *testing.T) {
	for _, tt := range []struct {
		name string
		max  int
	}{
		{"growing", 1 << 20},
		{"at the cap", 2000},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tab := newTable(tt.max)
			b := Limit{Name: "t", Rate: 1, Period: time.Hour, Burst: 5}.bucket()
			const now, hot, deciders = 1_000, 300, 8
			var admitted [hot]atomic.Int64
			var wg sync.WaitGroup
			stop := make(chan struct{})
			for g := range deciders {
				wg.Go(func() {
					for round := 0; round < 30; round++ {
						for i := range hot {
							k := uint64(i*7919+g) % hot // each goroutine in its own order
							if tab.allow(hashOf(k), b, now).Allowed {
								admitted[k].Add(1)
							}
						}
					}
				})
			}
			var churn sync.WaitGroup
			churn.Go(func() { // new clients, so shards grow and move
				for i := uint64(hot); ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					tab.allow(hashOf(i), b, now)
				}
			})
			churn.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
						tab.sweep(now) // drops nothing (the clock stands), but moves sparse shards
					}
				}
			})
			wg.Wait()
			close(stop)
			churn.Wait()
			if n := tab.len(); n > tt.max+numShards {
				t.Fatalf("%d entries, over the cap %d (+%d)", n, tt.max, numShards)
			}
			if tt.max < 1<<20 {
				return
			}
			for k := range hot {
				if got := admitted[k].Load(); got != 5 {
					t.Fatalf("client %d: %d admitted, want exactly the burst, 5", k, got)
				}
			}
		})
	}
}

func TestTableDroppedEntriesComeBackFull(t *testing.T) {
	tab := newTable(1 << 20)
	b := Limit{Name: "t", Rate: 1, Period: time.Second, Burst: 2}.bucket()
	h := hashOf(42)
	tab.allow(h, b, 1)
	tab.allow(h, b, 1)
	if tab.allow(h, b, 1).Allowed {
		t.Fatal("a third token from a bucket of two")
	}
	tab.sweep(3_000_000) // full again: dropped
	if tab.len() != 0 || tab.load(h) != 0 {
		t.Fatalf("after the sweep: %d entries, value %d; want none", tab.len(), tab.load(h))
	}
	if d := tab.allow(h, b, 3_000_001); !d.Allowed || d.Remaining != 1 {
		t.Fatalf("a dropped client came back to %+v, want a full bucket", d)
	}
	if tab.len() != 1 {
		t.Fatalf("%d entries, want 1", tab.len())
	}
}

func TestTableStoreAndLoad(t *testing.T) {
	tab := newTable(1 << 20)
	for i := range uint64(10_000) {
		tab.store(hashOf(i), int64(i+1), 0)
	}
	for i := range uint64(10_000) {
		if got := tab.load(hashOf(i)); got != int64(i+1) {
			t.Fatalf("load(%d) = %d, want %d", i, got, i+1)
		}
	}
	tab.store(hashOf(7), 99, 0)
	if got := tab.load(hashOf(7)); got != 99 {
		t.Fatalf("after a second store: %d, want 99", got)
	}
	tab.sweep(5_000)
	if tab.len() != 5_000 || tab.load(hashOf(4_999)) != 0 || tab.load(hashOf(5_000)) != 5_001 {
		t.Fatalf("after sweeping values up to 5000: %d entries, %d and %d", tab.len(), tab.load(hashOf(4_999)), tab.load(hashOf(5_000)))
	}
}

// hashOf spreads small integers over the shards and slots, as hashKey would.
func hashOf(i uint64) uint64 {
	i ^= i >> 33
	i *= 0xff51afd7ed558ccd
	i ^= i >> 33
	i *= 0xc4ceb9fe1a85ec53
	i ^= i >> 33
	return i
}

func ExampleLimit_Window() {
	l := Limit{Name: "default", Rate: 100, Period: time.Minute, Burst: 20}
	fmt.Println(l.Window(), PolicyField(l))
	// Output: 12s "default";q=20;w=12
}
