// Package requestid creates, checks and reads the X-Request-ID of a request.
// The recover stage keeps a valid inbound ID or makes a new one, echoes it on
// the response, and leaves it in the request's header, where everything after
// reads it with [From].
package requestid

import (
	"context"
	"math/rand/v2"

	"github.com/gin-gonic/gin"
)

// Header is the request and response header that carries the ID.
const Header = "X-Request-ID"

// canonicalHeader is Header in net/http's canonical form, for direct map access.
const canonicalHeader = "X-Request-Id"

// MaxLen is the longest inbound ID that is kept.
const MaxLen = 128

// Valid reports whether an inbound ID may be kept: 1 to MaxLen characters from
// A-Z a-z 0-9 and - _ . : / + = (enough for UUIDs, ULIDs and trace-style IDs,
// nothing that could break a log line or a header).
func Valid(id string) bool {
	if len(id) == 0 || len(id) > MaxLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '_', c == '.', c == ':', c == '/', c == '+', c == '=':
		default:
			return false
		}
	}
	return true
}

// New returns a fresh 128-bit random ID as 32 hex digits. It draws from the
// runtime's ChaCha8 generator: unique and unguessable enough for correlation,
// and far cheaper than crypto/rand on the request path.
func New() string {
	const digits = "0123456789abcdef"
	var buf [32]byte
	for half, v := range [2]uint64{rand.Uint64(), rand.Uint64()} { //nolint:gosec // G404: on purpose, as said above: IDs correlate, they guard nothing
		for i := range 16 {
			buf[half*16+i] = digits[(v>>(4*i))&0xf]
		}
	}
	return string(buf[:])
}

// Ensure keeps the request's valid inbound ID or replaces it with a new one,
// echoes it on the response and returns it.
func Ensure(c *gin.Context) string {
	in := c.Request.Header[canonicalHeader]
	var id string
	if len(in) == 1 && Valid(in[0]) {
		id = in[0]
	} else {
		id = New()
		in = []string{id}
		c.Request.Header[canonicalHeader] = in
	}
	c.Writer.Header()[canonicalHeader] = in
	return id
}

// From returns the request's ID as left by [Ensure], or "" before it ran.
func From(c *gin.Context) string {
	if v := c.Request.Header[canonicalHeader]; len(v) == 1 {
		return v[0]
	}
	return ""
}

type contextKey struct{}

// NewContext returns a copy of ctx that carries the request ID id, so that
// code given only the request's context.Context (a logger, an outbound call)
// can find it. The telemetry stage puts it in every traced request's context.
func NewContext(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, contextKey{}, id)
}

// FromContext returns the request ID ctx carries, or "".
func FromContext(ctx context.Context) string {
	id, _ := ctx.Value(contextKey{}).(string)
	return id
}
