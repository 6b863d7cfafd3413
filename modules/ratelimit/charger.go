package ratelimit

import (
	"context"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/meshkit/meshkit/internal/attempt"
)

// Charger charges attempts (e.g. a token's signature check) to the bucket of
// the client's address under the service's default limit: the bucket that
// address's anonymous requests use too.
type Charger struct {
	limiter Limiter
	limit   Limit
}

var _ attempt.Charger = (*Charger)(nil)

// NewCharger returns a Charger taking tokens from l under limit.
func NewCharger(l Limiter, limit Limit) *Charger {
	return &Charger{limiter: l, limit: limit.prepared()}
}

// localCharger is a limiter with a local bucket for when its shared store
// cannot decide (the Redis limiter).
type localCharger interface {
	allowLocal(ctx context.Context, key string, limit Limit) (Decision, error)
}

// Charge takes one token from the bucket of c's client address. While the
// limiter cannot decide (Redis unreachable, whatever its failure mode:
// "closed" would give no decision, "open" would admit everything) the
// charge goes to the address's local bucket instead, so that a flood of
// attempts stays bounded.
func (ch *Charger) Charge(c *gin.Context) (bool, time.Duration, error) {
	ctx, key := c.Request.Context(), AddressKey(c) // never c: see limitHandler
	d, err := ch.limiter.Allow(ctx, key, ch.limit)
	if l, ok := ch.limiter.(localCharger); ok && (err != nil || d.Unmetered) {
		d, err = l.allowLocal(ctx, key, ch.limit)
	}
	if err != nil {
		return false, 0, err
	}
	return d.Allowed, d.RetryAfter, nil
}
