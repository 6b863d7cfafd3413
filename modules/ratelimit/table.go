package ratelimit

import (
	"sync"
	"sync/atomic"
)

// shardBits sets the number of shards of a table: enough that two cores, or
// sixty-four, seldom meet on one lock.
const (
	shardBits = 8
	numShards = 1 << shardBits
)

// table maps 64-bit client hashes to a time in microseconds after which the
// entry means nothing (a full bucket's tat, the end of a cached denial), so
// sweep may drop it. It is sharded by the hash's top bits, each shard a plain
// map under its own mutex, held for one map operation. An entry costs the
// map's 16-byte slot and its share of the map's control bytes and slack:
// 19 to 39 bytes.
//
// The number of entries is capped: a new entry in a full table takes the
// place of an old one, the one that expires first among a few the shard
// holds. The cap may be passed by at most one entry per shard.
type table struct {
	shards [numShards]shard
	count  atomic.Int64
	max    int64
}

type shard struct {
	mu sync.Mutex
	m  map[uint64]int64
	// peak is the most entries m has held since it was made: Go's maps never
	// shrink, so sweep makes a new one when peak is far above len.
	peak int
	_    [40]byte // keep neighbouring shards' locks off one cache line
}

// evictionSample is how many entries a full table looks at to find one to
// replace.
const evictionSample = 8

func newTable(max int) *table {
	t := &table{max: int64(max)}
	for i := range t.shards {
		t.shards[i].m = make(map[uint64]int64)
	}
	return t
}

// shard returns the locked shard of h; the caller unlocks it.
func (t *table) shard(h uint64) *shard {
	s := &t.shards[h>>(64-shardBits)]
	s.mu.Lock()
	return s
}

// put stores v under h in the locked shard s, making room first if h is new
// and the table is full. now says which entries have expired.
func (t *table) put(s *shard, h uint64, v, now int64) {
	if _, ok := s.m[h]; !ok {
		if t.count.Load() >= t.max && len(s.m) > 0 {
			s.evict(now)
		} else {
			t.count.Add(1)
		}
	}
	s.m[h] = v
	s.peak = max(s.peak, len(s.m))
}

// evict drops the entry, among the first few a map iteration meets (a
// random start), that expires first: an expired one if there is one. The
// table's count is unchanged, since the caller adds an entry in its place.
func (s *shard) evict(now int64) {
	var victim uint64
	earliest, seen := int64(0), 0
	for h, v := range s.m {
		if seen == 0 || v < earliest {
			victim, earliest = h, v
		}
		seen++
		if v <= now || seen == evictionSample {
			break
		}
	}
	delete(s.m, victim)
}

// delete drops h from the locked shard s.
func (t *table) delete(s *shard, h uint64) {
	if _, ok := s.m[h]; ok {
		delete(s.m, h)
		t.count.Add(-1)
	}
}

// sweep drops every entry that has expired at now, and gives back the memory
// of shards that have shrunk to a quarter of their peak. It locks one shard
// at a time.
func (t *table) sweep(now int64) {
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		dropped := 0
		for h, v := range s.m {
			if v <= now {
				delete(s.m, h)
				dropped++
			}
		}
		if len(s.m) < s.peak/4 {
			s.m = clone(s.m)
			s.peak = len(s.m)
		}
		s.mu.Unlock()
		t.count.Add(int64(-dropped))
	}
}

// clone copies m into a map sized for its entries alone.
func clone(m map[uint64]int64) map[uint64]int64 {
	c := make(map[uint64]int64, len(m))
	for h, v := range m {
		c[h] = v
	}
	return c
}

// len is the number of entries.
func (t *table) len() int { return int(t.count.Load()) }
