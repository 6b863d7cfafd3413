package ratelimit

import (
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

// Charge takes one token from the bucket of c's client address.
func (ch *Charger) Charge(c *gin.Context) (bool, time.Duration, error) {
	d, err := ch.limiter.Allow(c.Request.Context(), AddressKey(c), ch.limit) // never c: see limitHandler
	if err != nil {
		return false, 0, err
	}
	return d.Allowed, d.RetryAfter, nil
}
