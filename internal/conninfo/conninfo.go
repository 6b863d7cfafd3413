// Package conninfo carries what the HTTP server knows of the connection a
// request came on, shared by every request of that connection: when it was
// accepted, and the security stage's note of when it last authorized the
// connection's peer. The HTTP server puts a [Conn] in each connection's
// context (http.Server.ConnContext); stages find it with [FromContext]. It
// is a leaf package, so that neither module depends on the other.
package conninfo

import (
	"context"
	"sync/atomic"
	"time"
)

// Conn is one connection's information. Its requests (several at once over
// HTTP/2) share it.
type Conn struct {
	// Accepted is when the server accepted the connection.
	Accepted time.Time
	// PeerEpoch is the security stage's: one more than the epoch of the
	// trust material under which the connection's peer was last
	// authorized, 0 before.
	PeerEpoch atomic.Uint64
}

type contextKey struct{}

// NewContext returns ctx carrying c.
func NewContext(ctx context.Context, c *Conn) context.Context {
	return context.WithValue(ctx, contextKey{}, c)
}

// FromContext returns the Conn of ctx, or nil when the server did not put
// one there.
func FromContext(ctx context.Context) *Conn {
	c, _ := ctx.Value(contextKey{}).(*Conn)
	return c
}
