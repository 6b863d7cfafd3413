package ratelimit

import (
	"math"
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
// sweep may drop it.
//
// It is sharded by the hash's top bits; each shard is an open-addressing
// hash table (linear probing) whose entries are read and updated without a
// lock: a lookup probes with atomic loads and an update is a compare-and-swap
// of the entry's value, so a request touches one cache line of the table and
// a refusal writes none. The shard's mutex is taken only to add an entry, to
// drop entries and to move them to a new array. An entry's key never changes
// within an array: a dropped entry becomes a tombstone, reclaimed when the
// shard moves to a new array, and an entry being moved is frozen first, so a
// lock-free update never lands on the wrong client or in an array left
// behind. An entry costs one 16-byte slot at a load between 3/16 and 3/4.
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
	slots atomic.Pointer[[]slot] // a power of two long, or nil
	live  int                    // entries with a value, under mu
	tombs int                    // dropped entries not reclaimed yet, under mu
	_     [88]byte               // 128 bytes in all: no two shards share a cache line
}

// slot is one entry; key 0 marks an empty slot (a hash of 0 is stored as 1).
// Values are positive; the two negative ones below mark entries without one.
type slot struct {
	key atomic.Uint64
	val atomic.Int64
}

const (
	// frozen marks an entry moved to the shard's new array: look again,
	// under the lock.
	frozen int64 = math.MinInt64
	// tomb marks a dropped entry.
	tomb int64 = math.MinInt64 + 1
)

const (
	minSlots = 8
	// evictionSample is how many entries a full table looks at to find one
	// to replace.
	evictionSample = 8
)

func newTable(max int) *table {
	return &table{max: int64(max)}
}

func (t *table) shardOf(h uint64) *shard { return &t.shards[h>>(64-shardBits)] }

// slotKey is h as a slot key: never 0, which marks an empty slot.
func slotKey(h uint64) uint64 { return max(h, 1) }

// find returns k's slot in arr, or nil. It needs no lock: a key is never
// moved or changed within an array, and an array always has an empty slot.
func find(arr *[]slot, k uint64) *slot {
	if arr == nil {
		return nil
	}
	s := *arr
	mask := len(s) - 1
	for i := int(k) & mask; ; i = (i + 1) & mask {
		switch s[i].key.Load() {
		case k:
			return &s[i]
		case 0:
			return nil
		}
	}
}

// allow takes a token from the bucket stored under h, b and now as in
// bucket.allow. The bucket of a new client starts full.
func (t *table) allow(h uint64, b bucket, now int64) Decision {
	s, k := t.shardOf(h), slotKey(h)
	if e := find(s.slots.Load(), k); e != nil {
		if d, ok := e.allow(b, now); ok {
			return d
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := find(s.slots.Load(), k); e != nil {
		if d, ok := e.allow(b, now); ok {
			return d
		}
	}
	newTAT, d := b.allow(0, now)
	if d.Allowed {
		t.insertLocked(s, k, newTAT, now)
	}
	return d
}

// allow decides on the entry e by compare-and-swap. It reports false when e
// holds no value (dropped, or frozen for a move).
func (e *slot) allow(b bucket, now int64) (Decision, bool) {
	for {
		old := e.val.Load()
		if old < 0 {
			return Decision{}, false
		}
		newTAT, d := b.allow(old, now)
		if !d.Allowed || e.val.CompareAndSwap(old, newTAT) {
			return d, true
		}
	}
}

// load returns h's value, 0 when there is none.
func (t *table) load(h uint64) int64 {
	s, k := t.shardOf(h), slotKey(h)
	if e := find(s.slots.Load(), k); e != nil {
		if v := e.val.Load(); v != frozen {
			return max(v, 0)
		}
		s.mu.Lock() // frozen: the move is under way and ends with the lock
		defer s.mu.Unlock()
		if e := find(s.slots.Load(), k); e != nil {
			return max(e.val.Load(), 0)
		}
	}
	return 0
}

// store sets h's value to v (positive). now says which entries have expired,
// should room be needed.
func (t *table) store(h uint64, v, now int64) {
	s, k := t.shardOf(h), slotKey(h)
	if e := find(s.slots.Load(), k); e != nil && e.set(v) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := find(s.slots.Load(), k); e != nil && e.set(v) {
		return
	}
	t.insertLocked(s, k, v, now)
}

// set replaces the value of e, if it holds one.
func (e *slot) set(v int64) bool {
	for {
		old := e.val.Load()
		if old < 0 {
			return false
		}
		if e.val.CompareAndSwap(old, v) {
			return true
		}
	}
}

// insertLocked gives k the value v in the locked shard s, where k has no
// value: it revives k's tombstone or takes an empty slot, making room first
// if the table is full.
func (t *table) insertLocked(s *shard, k uint64, v, now int64) {
	if t.count.Load() >= t.max && s.live > 0 {
		s.evictLocked(k, now)
	} else {
		t.count.Add(1)
	}
	if e := find(s.slots.Load(), k); e != nil { // a tombstone: no one else writes it
		e.val.Store(v)
		s.tombs--
		s.live++
		return
	}
	arr := s.slots.Load()
	if arr == nil || (s.live+s.tombs+1)*4 > len(*arr)*3 {
		s.moveLocked(s.live + 1)
		arr = s.slots.Load()
	}
	e := emptySlot(*arr, k)
	e.val.Store(v) // before the key: a lookup that sees the key sees a value
	e.key.Store(k)
	s.live++
}

// emptySlot is the first empty slot of k's probe run in arr.
func emptySlot(arr []slot, k uint64) *slot {
	mask := len(arr) - 1
	i := int(k) & mask
	for arr[i].key.Load() != 0 {
		i = (i + 1) & mask
	}
	return &arr[i]
}

// evictLocked drops, among the few live entries from a pseudo-random place
// (from k's bits) on, the one that expires first, or the first that has
// expired. The table's count is unchanged, since the caller adds an entry in
// its place.
func (s *shard) evictLocked(k uint64, now int64) {
	arr := *s.slots.Load()
	mask := len(arr) - 1
	var victim *slot
	earliest, seen := int64(0), 0
	for i := int(k>>24) & mask; seen < evictionSample && seen < s.live; i = (i + 1) & mask {
		v := arr[i].val.Load()
		if arr[i].key.Load() == 0 || v < 0 {
			continue
		}
		if victim == nil || v < earliest {
			victim, earliest = &arr[i], v
		}
		seen++
		if v <= now {
			break
		}
	}
	if victim != nil && s.dropLocked(victim, math.MaxInt64) {
		return
	}
	// Every sampled entry changed under us; drop whichever comes first.
	for i := range arr {
		if arr[i].key.Load() != 0 && s.dropLocked(&arr[i], math.MaxInt64) {
			return
		}
	}
}

// dropLocked turns e into a tombstone if its value is at most notAfter, and
// reports whether it did.
func (s *shard) dropLocked(e *slot, notAfter int64) bool {
	for {
		v := e.val.Load()
		if v < 0 || v > notAfter {
			return false
		}
		if e.val.CompareAndSwap(v, tomb) {
			s.live--
			s.tombs++
			return true
		}
	}
}

// moveLocked moves the live entries of the locked shard s to a new array
// sized for room entries (none if room is 0). Each old entry is frozen
// before it is copied, so that no update is lost in the old array.
func (s *shard) moveLocked(room int) {
	var next *[]slot
	if room > 0 {
		n := minSlots
		for n*3 < room*4 { // at most 3/4 full
			n *= 2
		}
		arr := make([]slot, n)
		next = &arr
	}
	if old := s.slots.Load(); old != nil {
		for i := range *old {
			e := &(*old)[i]
			if k := e.key.Load(); k != 0 {
				if v := e.val.Swap(frozen); v > 0 {
					n := emptySlot(*next, k)
					n.key.Store(k)
					n.val.Store(v)
				}
			}
		}
	}
	s.slots.Store(next)
	s.tombs = 0
}

// sweep drops every entry that has expired at now, and moves shards that
// have many tombstones, or are under a quarter full, to a smaller array. It
// locks one shard at a time.
func (t *table) sweep(now int64) {
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		dropped := s.sweepLocked(now)
		s.mu.Unlock()
		t.count.Add(int64(-dropped))
	}
}

func (s *shard) sweepLocked(now int64) (dropped int) {
	arr := s.slots.Load()
	if arr == nil {
		return 0
	}
	for i := range *arr {
		if e := &(*arr)[i]; e.key.Load() != 0 && s.dropLocked(e, now) {
			dropped++
		}
	}
	if n := len(*arr); s.live == 0 || (n > minSlots && s.live*4 < n) || s.tombs*4 > n {
		s.moveLocked(s.live)
	}
	return dropped
}

// len is the number of entries.
func (t *table) len() int { return int(t.count.Load()) }
