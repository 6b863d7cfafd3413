package security

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/meshkit/meshkit/internal/attempt"
	"github.com/meshkit/meshkit/internal/buildinfo"
	"github.com/meshkit/meshkit/internal/principal"
	"github.com/meshkit/meshkit/internal/problem"
	"github.com/meshkit/meshkit/internal/route"
)

// realm names the service in WWW-Authenticate challenges.
const realm = buildinfo.Name

// Stage is the security stage's configuration: what a caller of a route
// that is not public must present.
type Stage struct {
	// MutualTLS requires a verified client certificate; its SPIFFE ID (or
	// subject) becomes the principal's PeerID, and its Subject when there is
	// no token.
	MutualTLS bool
	// Peers, when set with MutualTLS, re-checks on each request the peer
	// of a connection the handshake authorized: expired since, or no
	// longer authorized by the current CAs, bundles or allow-list (see
	// [TLS.CheckPeer]). The refused request's connection is closed.
	Peers *TLS
	// Verifier, when set, requires a valid bearer token; its claims become
	// the principal.
	Verifier *Verifier
	// Charger, when set, is charged for every signature check a caller
	// causes (a token not in the verifier's cache), so that a flood of bad
	// tokens from one address is refused with 429 before it costs CPU.
	Charger attempt.Charger
	// Log receives failures at debug level (never the token).
	Log *slog.Logger
	// Metrics, when set, counts the refused callers by reason.
	Metrics *Metrics
}

// Middleware returns the security stage. Public routes are left out (the TLS
// handshake still applies to them). Without mTLS and tokens it gives no
// route a handler (the API is open, and the HTTP server warns, or refuses
// to start in production), but it is still there to declare its problems in
// the API document: the document describes the service, not one
// configuration of it.
func (s Stage) Middleware() []route.Middleware {
	if s.Log == nil {
		s.Log = slog.Default()
	}
	on := s.MutualTLS || s.Verifier != nil
	return []route.Middleware{{
		Name:  "security",
		Stage: route.StageSecurity,
		ForRoute: func(p route.Policy) gin.HandlerFunc {
			if p.Public || !on {
				return nil
			}
			return s.handle
		},
		Problems: s.problems,
		Headers:  s.headers,
	}}
}

// problems are the stage's answers on a route that is not public: 401
// without valid credentials, 403 for a client certificate no longer
// authorized, and 429 when the Charger refuses another signature check.
func (s Stage) problems(p route.Policy) []int {
	if p.Public {
		return nil
	}
	statuses := []int{http.StatusUnauthorized, http.StatusForbidden}
	if s.Charger != nil {
		statuses = append(statuses, http.StatusTooManyRequests)
	}
	return statuses
}

// headers are the challenge of a 401 and the wait of a 429.
func (s Stage) headers(p route.Policy) []route.Header {
	if p.Public {
		return nil
	}
	return []route.Header{
		{Name: "WWW-Authenticate", Description: `The Bearer challenge (RFC 6750), e.g. Bearer realm="` + realm + `", error="invalid_token".`, Statuses: []int{http.StatusUnauthorized}},
		route.RetryAfterHeader(http.StatusTooManyRequests),
	}
}

func (s Stage) handle(c *gin.Context) {
	var p principal.Principal
	if s.MutualTLS {
		peer, ok := PeerPrincipal(c.Request.TLS)
		if !ok {
			// The handshake requires a certificate; only a request that did
			// not come through it (a plain listener in front) gets here.
			s.Metrics.failed(c.Request.Context(), failureNoClientCertificate)
			challenge(c, "", "a verified client certificate is required")
			return
		}
		if s.Peers != nil {
			if err := s.Peers.CheckPeer(c.Request); err != nil {
				s.refusePeer(c, err)
				return
			}
		}
		p = peer
	}
	if s.Verifier != nil {
		raw, present := bearerToken(c.Request.Header)
		if raw == "" {
			if present {
				s.Metrics.failed(c.Request.Context(), failureInvalidRequest)
				challenge(c, "invalid_request", "the Authorization header must be: Bearer <token>")
			} else {
				s.Metrics.failed(c.Request.Context(), failureMissing)
				challenge(c, "", "a bearer token is required")
			}
			return
		}
		claims, cached := s.Verifier.Cached(raw)
		if !cached {
			if !s.charge(c) {
				return
			}
			var err error
			if claims, err = s.Verifier.Verify(c, raw); err != nil {
				s.refuse(c, err)
				return
			}
		}
		claims.PeerID = p.PeerID
		p = claims
	}
	c.Request = c.Request.WithContext(principal.WithContext(c.Request.Context(), p))
}

// charge charges a signature check to the caller's address. It answers 429
// and reports false when the address has no tokens left.
func (s Stage) charge(c *gin.Context) bool {
	if s.Charger == nil {
		return true
	}
	ok, retryAfter, err := s.Charger.Charge(c)
	if err != nil || ok {
		return true // no decision: the rate-limit stage still applies
	}
	s.Metrics.failed(c.Request.Context(), failureThrottled)
	after := problem.RetryAfterSeconds(retryAfter)
	c.Header("Retry-After", strconv.FormatInt(after, 10))
	problem.Abort(c, http.StatusTooManyRequests, fmt.Sprintf("too many token checks from this address: retry in %d s", after))
	return false
}

// refusePeer answers a request whose connection's peer no longer passes:
// 401 when its certificate expired, else 403; either way the connection
// closes after the answer, so that the client's next attempt goes through
// a new handshake.
func (s Stage) refusePeer(c *gin.Context, err error) {
	c.Header("Connection", "close")
	s.Log.DebugContext(c.Request.Context(), "mTLS peer refused on an open connection", slog.Any("error", err), slog.String("client", c.ClientIP()))
	if errors.Is(err, ErrPeerExpired) {
		s.Metrics.failed(c.Request.Context(), failurePeerExpired)
		challenge(c, "", "the client certificate has expired")
		return
	}
	s.Metrics.failed(c.Request.Context(), failurePeerRefused)
	problem.Abort(c, http.StatusForbidden, "the client certificate is no longer authorized")
}

func (s Stage) refuse(c *gin.Context, err error) {
	reason := "invalid token"
	var te *TokenError
	if errors.As(err, &te) {
		reason = te.Reason
	}
	s.Metrics.tokenFailed(c.Request.Context(), reason)
	s.Log.DebugContext(c.Request.Context(), "bearer token refused", slog.String("reason", reason), slog.String("client", c.ClientIP()))
	challenge(c, "invalid_token", "the bearer token is not valid: "+reason)
}

// challenge answers 401 with a Bearer challenge: with an error attribute
// when a token (or something in its place) was sent, without one when none
// was (RFC 6750, section 3).
func challenge(c *gin.Context, code, detail string) {
	v := `Bearer realm="` + realm + `"`
	if code != "" {
		v += `, error="` + code + `"`
	}
	c.Header("WWW-Authenticate", v)
	problem.Abort(c, http.StatusUnauthorized, detail)
}

// bearerToken returns the token of an "Authorization: Bearer <token>"
// header, and whether an Authorization header was there at all.
func bearerToken(h http.Header) (token string, present bool) {
	values := h.Values("Authorization")
	if len(values) == 0 {
		return "", false
	}
	if len(values) > 1 {
		return "", true
	}
	scheme, token, ok := strings.Cut(values[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", true
	}
	return strings.TrimSpace(token), true
}
