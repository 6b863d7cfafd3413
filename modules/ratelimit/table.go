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
// sweep may drop it. It is sharded by the hash's top bits; each shard is an
// open-addressing hash table (linear probing) under its own mutex, held for
// one lookup and store. An entry costs one 16-byte slot at a load between 3/8
// and 3/4: 21 to 43 bytes.
//
// The number of entries is capped: a new entry in a full table takes the
// place of an old one, the one that expires first among a few its shard
// holds. The cap may be passed by at most one entry per shard.
type table struct {
	shards [numShards]shard
	count  atomic.Int64
	max    int64
}

type shard struct {
	mu    sync.Mutex
	slots []slot // a power of two long, or nil
	used  int
	_     [88]byte // 128 bytes in all: no two shards share a cache line
}

// slot is one entry; key 0 marks an empty slot (a hash of 0 is stored as 1).
type slot struct {
	key uint64
	val int64
}

const (
	minSlots = 8
	// evictionSample is how many entries a full table looks at to find one
	// to replace.
	evictionSample = 8
)

func newTable(maxEntries int) *table {
	return &table{max: int64(maxEntries)}
}

// shard returns the locked shard of h; the caller unlocks it.
func (t *table) shard(h uint64) *shard {
	s := &t.shards[h>>(64-shardBits)]
	s.mu.Lock()
	return s
}

// allow takes a token from the bucket stored under h, b and now as in
// bucket.allow. The bucket of a new client starts full.
func (t *table) allow(h uint64, b bucket, now int64) Decision {
	s := t.shard(h)
	defer s.mu.Unlock()
	newTAT, d := b.allow(s.get(h), now)
	if d.Allowed {
		t.put(s, h, newTAT, now)
	}
	return d
}

// load returns h's value, 0 when there is none.
func (t *table) load(h uint64) int64 {
	s := t.shard(h)
	defer s.mu.Unlock()
	return s.get(h)
}

// store sets h's value to v. now says which entries have expired, should
// room be needed.
func (t *table) store(h uint64, v, now int64) {
	s := t.shard(h)
	defer s.mu.Unlock()
	t.put(s, h, v, now)
}

// slotKey is h as a slot key: never 0, which marks an empty slot.
func slotKey(h uint64) uint64 { return max(h, 1) }

// find returns the index of h's slot in the locked shard s, and whether h is
// there; when it is not, the index is where it would go (-1 if s has no
// slots).
func (s *shard) find(h uint64) (int, bool) {
	if s.slots == nil {
		return -1, false
	}
	k, mask := slotKey(h), len(s.slots)-1
	for i := int(k) & mask; ; i = (i + 1) & mask { //nolint:gosec // G115: a hash; the mask keeps only the bits below the table size
		switch s.slots[i].key {
		case k:
			return i, true
		case 0:
			return i, false
		}
	}
}

// get returns h's value in the locked shard s, 0 if it is absent.
func (s *shard) get(h uint64) int64 {
	if i, ok := s.find(h); ok {
		return s.slots[i].val
	}
	return 0
}

// put stores v under h in the locked shard s, making room first if h is new
// and the table is full. now says which entries have expired.
func (t *table) put(s *shard, h uint64, v, now int64) {
	i, ok := s.find(h)
	if ok {
		s.slots[i].val = v
		return
	}
	if t.count.Load() >= t.max && s.used > 0 {
		s.evict(h, now)
	} else {
		t.count.Add(1)
	}
	if s.slots == nil || (s.used+1)*4 > len(s.slots)*3 {
		s.resize(max(2*len(s.slots), minSlots))
	}
	i, _ = s.find(h)
	s.slots[i] = slot{key: slotKey(h), val: v}
	s.used++
}

// evict drops, among the few entries from a pseudo-random place (from h's
// bits) on, the one that expires first, or the first that has expired. The
// table's count is unchanged, since the caller adds an entry in its place.
func (s *shard) evict(h uint64, now int64) {
	mask := len(s.slots) - 1
	victim, seen := -1, 0
	for i := int(h>>24) & mask; seen < evictionSample && seen < s.used; i = (i + 1) & mask {
		e := s.slots[i]
		if e.key == 0 {
			continue
		}
		if victim < 0 || e.val < s.slots[victim].val {
			victim = i
		}
		seen++
		if e.val <= now {
			break
		}
	}
	s.remove(victim)
}

// remove empties slot i of the locked shard s, moving later entries of the
// same probe run back so that every entry stays reachable from its home slot.
func (s *shard) remove(i int) {
	mask := len(s.slots) - 1
	for j := (i + 1) & mask; s.slots[j].key != 0; j = (j + 1) & mask {
		home := int(s.slots[j].key) & mask //nolint:gosec // G115: a hash; the mask keeps only the bits below the table size
		// The entry at j may fill the hole at i unless its home lies
		// cyclically in (i, j].
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			s.slots[i] = s.slots[j]
			i = j
		}
	}
	s.slots[i] = slot{}
	s.used--
}

// resize moves the entries of the locked shard s into n slots (nil for 0).
func (s *shard) resize(n int) {
	old := s.slots
	s.slots = nil
	if n > 0 {
		s.slots = make([]slot, n)
	}
	mask := n - 1
	for _, e := range old {
		if e.key == 0 {
			continue
		}
		i := int(e.key) & mask //nolint:gosec // G115: a hash; the mask keeps only the bits below the table size
		for s.slots[i].key != 0 {
			i = (i + 1) & mask
		}
		s.slots[i] = e
	}
}

// sweep drops every entry that has expired at now, and gives back the memory
// of shards that have shrunk to under a quarter full. It locks one shard at a
// time.
func (t *table) sweep(now int64) {
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		dropped := s.sweep(now)
		s.mu.Unlock()
		t.count.Add(int64(-dropped))
	}
}

func (s *shard) sweep(now int64) (dropped int) {
	for i := 0; i < len(s.slots); {
		if e := s.slots[i]; e.key != 0 && e.val <= now {
			s.remove(i) // may move a later entry into i: look at i again
			dropped++
			continue
		}
		i++
	}
	if s.used*4 < len(s.slots) {
		n := 0
		for n*3 < s.used*4 { // the smallest power of two at most 3/4 full
			n = max(2*n, minSlots)
		}
		s.resize(n)
	}
	return dropped
}

// len is the number of entries.
func (t *table) len() int { return int(t.count.Load()) }
