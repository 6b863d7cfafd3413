package ratelimit

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

var testLimit = Limit{Name: "default", Rate: 100, Period: time.Minute, Burst: 20}

func TestMemoryConcurrentCallersGetExactlyTheBurst(t *testing.T) {
	clk := newFakeClock()
	m := NewMemory(MemoryOptions{Now: clk.Now})
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for range 10 {
				if d, _ := m.Allow(context.Background(), "ip:192.0.2.1", testLimit); d.Allowed {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if got := allowed.Load(); got != int64(testLimit.Burst) {
		t.Fatalf("640 requests at one instant: %d allowed, want the burst, %d", got, testLimit.Burst)
	}
	clk.Advance(testLimit.Period / time.Duration(testLimit.Rate))
	if d, _ := m.Allow(context.Background(), "ip:192.0.2.1", testLimit); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("one interval later: %+v, want one token and none left", d)
	}
}

func TestMemoryKeepsLimitsAndClientsApart(t *testing.T) {
	m := NewMemory(MemoryOptions{Now: newFakeClock().Now})
	other := Limit{Name: "uploads", Rate: 1, Period: time.Minute, Burst: 1}
	ctx := context.Background()
	if d, _ := m.Allow(ctx, "ip:192.0.2.1", other); !d.Allowed {
		t.Fatal("first upload denied")
	}
	if d, _ := m.Allow(ctx, "ip:192.0.2.1", other); d.Allowed {
		t.Fatal("second upload allowed past a burst of 1")
	}
	if d, _ := m.Allow(ctx, "ip:192.0.2.1", testLimit); !d.Allowed || d.Remaining != testLimit.Burst-1 {
		t.Fatalf("the default limit shares the uploads bucket: %+v", d)
	}
	if d, _ := m.Allow(ctx, "ip:192.0.2.2", other); !d.Allowed {
		t.Fatal("another client shares the first one's bucket")
	}
	if m.Len() != 3 {
		t.Fatalf("tracking %d buckets, want 3", m.Len())
	}
}

func TestMemorySweepDropsFullBuckets(t *testing.T) {
	clk := newFakeClock()
	m := NewMemory(MemoryOptions{Now: clk.Now})
	ctx := context.Background()
	for i := range 1000 {
		_, _ = m.Allow(ctx, fmt.Sprintf("ip:10.0.%d.%d", i/256, i%256), testLimit)
	}
	for range 20 { // one client empties its bucket
		_, _ = m.Allow(ctx, "ip:192.0.2.9", testLimit)
	}
	clk.Advance(time.Second) // the thousand have their one token back, the hot one not
	m.table.sweep(m.clock.micros())
	if m.Len() != 1 {
		t.Fatalf("after the sweep %d clients tracked, want 1 (the one whose bucket is not full)", m.Len())
	}
	if d, _ := m.Allow(ctx, "ip:192.0.2.9", testLimit); d.Remaining != 0 {
		t.Fatalf("the sweep lost a bucket that was not full: %+v", d)
	}
	clk.Advance(testLimit.Window())
	m.table.sweep(m.clock.micros())
	if m.Len() != 0 {
		t.Fatalf("%d clients tracked once every bucket is full, want 0", m.Len())
	}
}

func TestMemorySweepGivesMemoryBack(t *testing.T) {
	clk := newFakeClock()
	m := NewMemory(MemoryOptions{Now: clk.Now})
	ctx := context.Background()
	before := heapAlloc()
	const clients = 300_000
	for i := range clients {
		_, _ = m.Allow(ctx, clientName(i), testLimit)
	}
	grown := heapAlloc() - before
	clk.Advance(time.Second)
	m.table.sweep(m.clock.micros())
	left := heapAlloc() - before
	if m.Len() != 0 || grown < clients*16 || left > grown/10 {
		t.Fatalf("%d clients took %d bytes; after they went idle and the sweep, %d clients and %d bytes are left, want 0 and under a tenth",
			clients, grown, m.Len(), left)
	}
	runtime.KeepAlive(m)
}

func TestMemoryCapKeepsAHotClientLimited(t *testing.T) {
	clk := newFakeClock()
	const maxClients = 10_000
	m := NewMemory(MemoryOptions{MaxClients: maxClients, Now: clk.Now})
	ctx := context.Background()
	for range testLimit.Burst {
		_, _ = m.Allow(ctx, "ip:192.0.2.1", testLimit)
	}
	// A spray of new addresses, ten times the cap, while the hot client
	// keeps asking: it must stay tracked, so it is never let through.
	for i := range 10 * maxClients {
		_, _ = m.Allow(ctx, clientName(i), testLimit)
		if i%97 == 0 {
			if d, _ := m.Allow(ctx, "ip:192.0.2.1", testLimit); d.Allowed {
				t.Fatalf("after %d new clients the hot client was allowed: it lost its bucket", i)
			}
		}
		clk.Advance(time.Microsecond)
	}
	if n := m.Len(); n > maxClients+numShards {
		t.Fatalf("%d clients tracked, want at most the cap %d (+%d)", n, maxClients, numShards)
	}
}

func TestMemorySweepLoopRunsUntilStopped(t *testing.T) {
	m := NewMemory(MemoryOptions{SweepInterval: 5 * time.Millisecond})
	m.Start()
	defer m.Stop()
	fast := Limit{Name: "fast", Rate: 1000, Period: time.Second, Burst: 1} // full again after 1ms
	_, _ = m.Allow(context.Background(), "ip:192.0.2.1", fast)
	deadline := time.Now().Add(5 * time.Second)
	for m.Len() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the sweep loop never dropped a full bucket")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestMemoryStopWithoutStart(t *testing.T) {
	m := NewMemory(MemoryOptions{})
	m.Stop()
	m.Stop()
	if d, _ := m.Allow(context.Background(), "k", testLimit); !d.Allowed {
		t.Fatal("a stopped limiter stopped deciding")
	}
}

func clientName(i int) string {
	return fmt.Sprintf("ip:%d.%d.%d.%d", 10+i>>24&0xff, i>>16&0xff, i>>8&0xff, i&0xff)
}

func heapAlloc() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}
