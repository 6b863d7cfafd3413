package ratelimit

import (
	"context"
	"errors"
)

// Limiter decides whether a client's request may go on.
type Limiter interface {
	// Allow takes one token from the bucket of key under limit, if there is
	// one. Buckets are told apart by limit.Name and key; a denied request
	// takes nothing. Allow never blocks for longer than the backend's own
	// deadline. An error means no decision could be made: [ErrUnavailable]
	// when the backend is down and the failure mode is "closed", or ctx's
	// error. It is safe for concurrent use.
	Allow(ctx context.Context, key string, limit Limit) (Decision, error)
}

// ErrUnavailable is returned by the Redis limiter's Allow while Redis is
// unreachable and the failure mode is "closed".
var ErrUnavailable = errors.New("ratelimit: the shared limiter is unavailable")
