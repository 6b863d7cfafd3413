package ratelimit

import (
	"context"
	"hash/maphash"
	"math/bits"
	"sync"
	"time"
)

// MemoryOptions configures a [Memory] limiter. The zero value is usable.
type MemoryOptions struct {
	// MaxClients caps the tracked clients. Default 1048576.
	MaxClients int
	// SweepInterval is how often buckets that have filled up again are
	// dropped. Default 10s.
	SweepInterval time.Duration
	// Now is the clock. Default time.Now; its monotonic reading is used.
	Now func() time.Time
}

// Memory is the in-process limiter: one GCRA time per client, in a sharded
// table, with no goroutine or timer per client. A client whose bucket has
// filled up again is indistinguishable from a new one, so [Memory.Start]'s
// background loop drops it, and memory goes back to where it was when clients
// go idle. Past MaxClients, a new client takes the place of the tracked one
// nearest to a full bucket; a client that stays tracked is never allowed more
// than its limit.
type Memory struct {
	table *table
	seed  maphash.Seed
	clock clock
	sweep time.Duration

	startOnce, stopOnce sync.Once
	stop, done          chan struct{}
}

var _ Limiter = (*Memory)(nil)

// NewMemory returns a limiter with no clients. Its sweep loop runs from Start
// to Stop; without it, idle clients stay until the cap pushes them out.
func NewMemory(o MemoryOptions) *Memory {
	if o.MaxClients <= 0 {
		o.MaxClients = 1 << 20
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = 10 * time.Second
	}
	return &Memory{
		table: newTable(o.MaxClients),
		seed:  maphash.MakeSeed(),
		clock: newClock(o.Now),
		sweep: o.SweepInterval,
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
}

// Allow takes a token from the bucket of key under limit, which must be valid
// (see [Limit.Validate]). It never fails.
func (m *Memory) Allow(_ context.Context, key string, limit Limit) (Decision, error) {
	return m.allow(key, limit), nil
}

func (m *Memory) allow(key string, limit Limit) Decision {
	return m.table.allow(hashKey(m.seed, limit, key), limit.bucket(), m.clock.micros())
}

// Len reports how many clients are tracked.
func (m *Memory) Len() int { return m.table.len() }

// Start starts the loop that drops full buckets. It returns at once.
func (m *Memory) Start() {
	m.startOnce.Do(func() { go m.sweepLoop() })
}

// Stop stops the sweep loop and waits for it. The limiter goes on deciding.
func (m *Memory) Stop() {
	m.stopOnce.Do(func() { close(m.stop) })
	m.startOnce.Do(func() { close(m.done) }) // never started: nothing to wait for
	<-m.done
}

func (m *Memory) sweepLoop() {
	defer close(m.done)
	t := time.NewTicker(m.sweep)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.table.sweep(m.clock.micros())
		}
	}
}

// hashKey is the table key of a client's bucket under limit: the client's
// key hashed with a random seed per process, so that no client can aim at
// another's bucket, mixed with the limit's name. The chance that any two of a
// million clients share a bucket is about 3 in 10^8.
func hashKey(seed maphash.Seed, limit Limit, key string) uint64 {
	return maphash.String(seed, key) ^ limit.nameHash()
}

// hashName spreads a limit's name over 64 bits (FNV-1a, then a multiply so
// that the top bits, which pick the shard, depend on every byte). Names are
// the service's own, so no seed is needed.
func hashName(name string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(name); i++ {
		h ^= uint64(name[i])
		h *= 1099511628211
	}
	return bits.RotateLeft64(h*0x9e3779b97f4a7c15, 32)
}

// clock reads monotonic microseconds since it was made (plus one, so that a
// time is never zero).
type clock struct {
	now  func() time.Time // nil: the system's monotonic clock
	base time.Time
}

func newClock(now func() time.Time) clock {
	if now == nil {
		return clock{base: time.Now().Add(-time.Microsecond)}
	}
	return clock{now: now, base: now().Add(-time.Microsecond)}
}

func (c clock) micros() int64 {
	if c.now == nil {
		// time.Since reads only the monotonic clock: half the cost of time.Now.
		return time.Since(c.base).Microseconds()
	}
	return c.now().Sub(c.base).Microseconds()
}
