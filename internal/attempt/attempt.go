// Package attempt lets a stage that does costly work for unverified callers
// (the security stage checking a token's signature) charge it to the
// caller's address, so that a flood of bad credentials is limited before it
// burns CPU. The rate limiter provides the [Charger]; the security stage uses
// it when one is there. It is a leaf package, so neither module depends on
// the other.
package attempt

import (
	"time"

	"github.com/gin-gonic/gin"
)

// Charger charges attempts to the rate-limit bucket of a request's client
// address (never its principal: the attempt is not authenticated yet).
type Charger interface {
	// Charge takes one token from the bucket of c's client address. It
	// reports false, with the time until the next token, when there is none.
	// It does not write the response. An error means no decision could be
	// made; the caller may go on.
	Charge(c *gin.Context) (ok bool, retryAfter time.Duration, err error)
}
