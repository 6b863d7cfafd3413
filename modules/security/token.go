package security

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/meshkit/meshkit/internal/principal"
)

// maxTokenBytes is the longest raw token Verify looks at.
const maxTokenBytes = 8 << 10

// The reasons a TokenError gives: short, and safe to show to the caller.
const (
	reasonTooLarge      = "too large"
	reasonMalformed     = "malformed"
	reasonAlgorithm     = "algorithm not allowed"
	reasonUnknownKey    = "unknown key"
	reasonSignature     = "bad signature"
	reasonMissingExp    = "missing exp"
	reasonExpired       = "expired"
	reasonNotYetValid   = "not yet valid"
	reasonWrongIssuer   = "wrong issuer"
	reasonWrongAudience = "wrong audience"
	reasonInvalid       = "invalid"
)

// errCritHeader: the token asks for extensions (RFC 7515 "crit") that the
// verifier does not implement, so it must be refused.
var errCritHeader = errors.New(`the "crit" header is not supported`)

// TokenError is the error of Verify. Reason is one of a few short phrases,
// safe to show to the caller ("expired", "malformed", "bad signature",
// "unknown key", "wrong issuer", "wrong audience", "not yet valid", "missing
// exp", "algorithm not allowed", "too large", or "invalid" for anything
// else); Err is the cause, for logs only.
type TokenError struct {
	Reason string
	Err    error
}

func (e *TokenError) Error() string { return "bearer token " + e.Reason + ": " + e.Err.Error() }

func (e *TokenError) Unwrap() error { return e.Err }

// Verifier validates bearer tokens (JWT) against one key source: the HMAC
// secret (HS256 only) or a JWKS file or URL (RS256/384/512, PS256/384/512,
// ES256/384/512 and EdDSA only), never both. exp is required; iss and aud
// are checked when configured; exp, nbf and iat get the configured leeway.
//
// With a JWKS, a token's kid selects its key; a token without kid is
// accepted only when the set holds exactly one key. The key must fit the
// token's alg: its type and curve, and its own "alg" when the JWK has one.
//
// Verified tokens are cached (see Verify). Its methods are safe for
// concurrent use.
type Verifier struct {
	hmacKey []byte     // the HS256 secret, or nil
	keys    *keySource // the JWKS, or nil
	algs    []string   // the allow-list of the key source
	issuer  string
	aud     string
	parser  *jwt.Parser
	cache   *tokenCache
	now     func() time.Time

	mu      sync.Mutex
	started bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// NewVerifier returns the bearer-token verifier of cfg, which must be valid
// with auth on. client fetches the JWKS URL (nil: a client with a 10s
// timeout); log gets the JWKS loads that fail and the keys left out (nil:
// none). A JWKS file is read now, and a file that cannot be read or holds
// no usable key is an error; a JWKS URL is first fetched by Start. It starts
// nothing.
func NewVerifier(cfg AuthConfig, client *http.Client, log *slog.Logger) (*Verifier, error) {
	return newVerifier(cfg, client, log, time.Now)
}

// newVerifier is NewVerifier on the clock now.
func newVerifier(cfg AuthConfig, client *http.Client, log *slog.Logger, now func() time.Time) (*Verifier, error) {
	if !cfg.On() {
		return nil, errors.New("security: bearer tokens: no key source is set")
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("security: bearer tokens: %w", err)
	}
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	v := &Verifier{issuer: cfg.Issuer, aud: cfg.Audience, cache: newTokenCache(cfg.CacheSize), now: now}
	if cfg.HMACSecret != "" {
		v.hmacKey, v.algs = []byte(cfg.HMACSecret), []string{"HS256"}
	} else {
		v.keys, v.algs = newKeySource(cfg, client, log), jwksAlgorithms()
		if cfg.JWKSFile != "" {
			if err := v.keys.loadOnce(context.Background()); err != nil {
				return nil, fmt.Errorf("security: bearer tokens: %w", err)
			}
		}
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(v.algs),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(), // an iat in the future beyond the leeway is refused
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithStrictDecoding(),
		jwt.WithTimeFunc(now),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// Start begins loading a JWKS in the background and returns at once: a URL
// is fetched now, retried with a backoff while it fails (so start-up does
// not fail when it is briefly down; Ready stays false until it answers),
// then fetched again every JWKSRefresh; a file is read again on the same
// schedule. A load that fails keeps the keys in use. With an HMAC secret it
// does nothing. Start after Start or Stop does nothing.
func (v *Verifier) Start() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.started || v.keys == nil {
		return
	}
	v.started = true
	ctx, cancel := context.WithCancel(context.Background())
	v.cancel = cancel
	v.wg.Go(func() { v.keys.run(ctx) })
}

// Stop stops the background loads and waits for them to end. Verify goes
// on working with the keys loaded last.
func (v *Verifier) Stop() {
	v.mu.Lock()
	v.started = true
	cancel := v.cancel
	v.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	v.wg.Wait()
	if v.keys != nil {
		v.keys.loads.Wait()
	}
}

// Ready reports whether keys are loaded: always with an HMAC secret, and
// once the first JWKS load succeeded.
func (v *Verifier) Ready() bool {
	return v.keys == nil || v.keys.keys.Load() != nil
}

// Verify validates a raw JWT (without "Bearer ") and returns its
// principal: Subject is "sub", Issuer "iss", Audience "aud", and Scopes
// the space-separated "scope", else "scp" (an array, or a space-separated
// string). The principal's slices are shared: callers must not modify them.
//
// A verified token is cached, keyed by its SHA-256, until its exp (the
// leeway does not extend the cache) or until a JWKS load drops or changes
// a key; a cached token costs no parsing or signature check. Tokens over 8
// KiB are refused unread.
//
// An unknown kid makes Verify load the JWKS again and wait for it (the wait
// bounded by ctx; the load, detached from ctx, by its own timeout), once
// per window of JWKSRefresh/10 (from 1s to 5s); a load that fails gives the
// window back. Later in the window it waits for a load under way, if any,
// else refuses the token at once. The error is always a *TokenError.
func (v *Verifier) Verify(ctx context.Context, token string) (principal.Principal, error) {
	if len(token) > maxTokenBytes {
		return principal.Principal{}, &TokenError{Reason: reasonTooLarge,
			Err: fmt.Errorf("%d bytes, more than %d", len(token), maxTokenBytes)}
	}
	var key tokenKey
	now, epoch := v.now(), v.epoch()
	if v.cache != nil {
		key = sha256.Sum256([]byte(token))
		if p, ok := v.cache.get(&key, now, epoch); ok {
			return p, nil
		}
	}
	p, exp, err := v.verify(ctx, token)
	if err != nil {
		return principal.Principal{}, err
	}
	v.cache.put(&key, p, exp, epoch, now)
	return p, nil
}

// Cached returns the principal of token if it was verified before and is
// still valid, at the cost of a hash: no parsing, no signature check. The
// security stage asks it first, to charge only the tokens that need a check.
func (v *Verifier) Cached(token string) (principal.Principal, bool) {
	if v.cache == nil || len(token) > maxTokenBytes {
		return principal.Principal{}, false
	}
	key := tokenKey(sha256.Sum256([]byte(token)))
	return v.cache.get(&key, v.now(), v.epoch())
}

// epoch is the key epoch: cache entries from an older one are misses.
func (v *Verifier) epoch() uint64 {
	if v.keys == nil {
		return 0
	}
	return v.keys.epoch.Load()
}

// verify parses and checks token with no cache: signature, then claims.
func (v *Verifier) verify(ctx context.Context, token string) (principal.Principal, time.Time, error) {
	var c tokenClaims
	t, err := v.parser.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) { return v.key(ctx, t) })
	if err != nil {
		return principal.Principal{}, time.Time{}, &TokenError{Reason: v.reason(err, t, &c), Err: err}
	}
	return c.principal(), c.ExpiresAt.Time, nil
}

// key is the jwt.Keyfunc: the parser has already checked the alg against
// the allow-list.
func (v *Verifier) key(ctx context.Context, t *jwt.Token) (any, error) {
	if _, ok := t.Header["crit"]; ok {
		return nil, errCritHeader
	}
	if v.hmacKey != nil {
		return v.hmacKey, nil
	}
	kid, ok := t.Header["kid"].(string)
	if !ok && t.Header["kid"] != nil {
		return nil, fmt.Errorf("%w: kid is not a string", jwt.ErrTokenMalformed)
	}
	return v.keys.key(ctx, kid, t.Method.Alg())
}

// reason maps a parse error to the TokenError's Reason. t and c are what
// the parser got before it failed (t may be nil).
func (v *Verifier) reason(err error, t *jwt.Token, c *tokenClaims) string {
	switch {
	case errors.Is(err, errUnknownKey):
		return reasonUnknownKey
	case errors.Is(err, errKeyAlgorithm):
		return reasonAlgorithm
	case t == nil || errors.Is(err, jwt.ErrTokenMalformed) || errors.Is(err, errCritHeader):
		return reasonMalformed
	}
	if alg, _ := t.Header["alg"].(string); !slices.Contains(v.algs, alg) {
		return reasonAlgorithm
	}
	switch {
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return reasonSignature
	case !errors.Is(err, jwt.ErrTokenInvalidClaims):
		return reasonInvalid
	case c.ExpiresAt == nil:
		return reasonMissingExp
	case errors.Is(err, jwt.ErrTokenExpired):
		return reasonExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return reasonNotYetValid
	case errors.Is(err, jwt.ErrTokenInvalidIssuer), v.issuer != "" && c.Issuer != v.issuer:
		return reasonWrongIssuer
	case errors.Is(err, jwt.ErrTokenInvalidAudience), v.aud != "" && !slices.Contains(c.Audience, v.aud):
		return reasonWrongAudience
	}
	return reasonInvalid
}

// tokenClaims are the claims Verify reads.
type tokenClaims struct {
	jwt.RegisteredClaims
	Scope string    `json:"scope"`
	Scp   scopeList `json:"scp"`
}

func (c *tokenClaims) principal() principal.Principal {
	scopes := strings.Fields(c.Scope)
	if c.Scope == "" {
		scopes = c.Scp
	}
	return principal.Principal{
		Subject:  c.Subject,
		Issuer:   c.Issuer,
		Audience: slices.Clip([]string(c.Audience)),
		Scopes:   slices.Clip(scopes),
	}
}

// scopeList is a claim given as an array of strings or as one
// space-separated string.
type scopeList []string

func (s *scopeList) UnmarshalJSON(data []byte) error {
	var one string
	if err := json.Unmarshal(data, &one); err == nil {
		*s = strings.Fields(one)
		return nil
	}
	var many []string
	if err := json.Unmarshal(data, &many); err != nil {
		return fmt.Errorf("scp: neither a string nor an array of strings: %w", err)
	}
	*s = many
	return nil
}
