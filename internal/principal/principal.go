// Package principal holds the authenticated caller of a request. The security
// stage puts it in the request's context; handlers and the rate limiter read it
// with [FromContext]. It is a leaf package so that no module needs the security
// module's internals to know who is calling.
package principal

import "context"

// Principal is a verified caller: an mTLS peer, a bearer token's subject, or both.
type Principal struct {
	// Subject is the caller's identity: the token's "sub" claim, else the peer's
	// SPIFFE ID, else the peer certificate's subject.
	Subject string
	// Issuer is the token's "iss" claim, when a token was presented.
	Issuer string
	// Audience is the token's "aud" claim, when a token was presented.
	Audience []string
	// Scopes are the token's scopes ("scope" or "scp" claim).
	Scopes []string
	// PeerID is the mTLS peer's SPIFFE ID (or subject), when the connection had one.
	PeerID string
}

type contextKey struct{}

// WithContext returns a copy of ctx that carries p.
func WithContext(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, contextKey{}, p)
}

// FromContext returns the principal in ctx, and false when the request is
// anonymous. A *gin.Context works as ctx: the server falls back to the
// request's context.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(contextKey{}).(Principal)
	return p, ok
}
