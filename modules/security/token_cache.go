package security

import (
	"crypto/sha256"
	"sync"
	"time"

	"github.com/meshkit/meshkit/internal/principal"
)

// maxCacheShards bounds the shards of a token cache: enough that concurrent
// callers seldom meet on one lock.
const maxCacheShards = 64

// cacheEvictionSample is how many entries a full shard looks at for an expired
// one to replace before it replaces any.
const cacheEvictionSample = 8

// tokenKey is the SHA-256 of a raw token: the cache never holds a token.
type tokenKey = [sha256.Size]byte

// tokenCache holds verified tokens' principals until their exp, so that a
// repeat caller costs a hash and a map lookup instead of a signature check.
//
// It is sharded by the key's first byte; each shard is a map under its own
// RWMutex, so a hit takes one shard's read lock and nothing global. The
// number of entries never passes the size it was made with: a shard holds
// size/shards, and a new entry in a full shard replaces an expired one among
// a few it looks at, else one of those (map order makes it a random one).
// Entries past their exp, or made under an older key epoch, are misses and
// the first to go.
//
// A nil *tokenCache is an empty cache that keeps nothing.
type tokenCache struct {
	shards   []cacheShard
	mask     byte
	perShard int
}

type cacheShard struct {
	mu sync.RWMutex
	m  map[tokenKey]cacheEntry
	_  [32]byte // 64 bytes in all: neighbouring shards seldom share a cache line
}

type cacheEntry struct {
	p     principal.Principal
	exp   int64  // unix nanoseconds; the entry is a miss from then on
	epoch uint64 // the key epoch the token was verified under
}

// newTokenCache returns a cache of at most size entries, or nil (no cache)
// when size is 0.
func newTokenCache(size int) *tokenCache {
	if size <= 0 {
		return nil
	}
	n := 1
	for n*2 <= maxCacheShards && n*2 <= size {
		n *= 2
	}
	c := &tokenCache{shards: make([]cacheShard, n), mask: byte(n - 1), perShard: size / n} //nolint:gosec // G115: n <= maxCacheShards (64)
	for i := range c.shards {
		c.shards[i].m = make(map[tokenKey]cacheEntry)
	}
	return c
}

// get returns the principal cached under k when its entry is neither past
// exp at now nor from an epoch other than epoch.
func (c *tokenCache) get(k *tokenKey, now time.Time, epoch uint64) (principal.Principal, bool) {
	if c == nil {
		return principal.Principal{}, false
	}
	s := &c.shards[k[0]&c.mask]
	s.mu.RLock()
	e, ok := s.m[*k]
	s.mu.RUnlock()
	if !ok || now.UnixNano() >= e.exp || e.epoch != epoch {
		return principal.Principal{}, false
	}
	return e.p, true
}

// put caches p under k until exp, as verified under epoch. Entries already
// past exp are not kept.
func (c *tokenCache) put(k *tokenKey, p principal.Principal, exp time.Time, epoch uint64, now time.Time) {
	if c == nil || !now.Before(exp) {
		return
	}
	s := &c.shards[k[0]&c.mask]
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[*k]; !ok && len(s.m) >= c.perShard {
		s.evictOne(now.UnixNano(), epoch)
	}
	s.m[*k] = cacheEntry{p: p, exp: exp.UnixNano(), epoch: epoch}
}

// evictOne deletes an entry of the locked shard: the first stale one among
// cacheEvictionSample, else the first of them.
func (s *cacheShard) evictOne(now int64, epoch uint64) {
	var victim tokenKey
	seen := 0
	for k, e := range s.m {
		if now >= e.exp || e.epoch != epoch {
			victim = k
			break
		}
		if seen == 0 {
			victim = k
		}
		if seen++; seen == cacheEvictionSample {
			break
		}
	}
	delete(s.m, victim)
}

// len returns the number of entries, stale ones included.
func (c *tokenCache) len() int {
	if c == nil {
		return 0
	}
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
