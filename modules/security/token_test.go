package security

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/meshkit/meshkit/internal/devpki"
	"github.com/meshkit/meshkit/internal/principal"
)

const (
	tokenTestSecret   = "0123456789abcdef0123456789abcdef"
	tokenTestIssuer   = "https://issuer.test"
	tokenTestAudience = "meshkit"
)

// tokenClock is a clock a test sets; safe for concurrent use.
type tokenClock struct{ ns atomic.Int64 }

func newTokenClock() *tokenClock {
	c := &tokenClock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

func (c *tokenClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *tokenClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// hmacAuthConfig is the default auth configuration with the test secret,
// issuer and audience.
func hmacAuthConfig() AuthConfig {
	cfg := DefaultConfig().Auth
	cfg.HMACSecret = tokenTestSecret
	cfg.Issuer = tokenTestIssuer
	cfg.Audience = tokenTestAudience
	return cfg
}

func newTestVerifier(t testing.TB, cfg AuthConfig, clock *tokenClock) *Verifier {
	t.Helper()
	now := time.Now
	if clock != nil {
		now = clock.now
	}
	v, err := newVerifier(cfg, nil, nil, now)
	if err != nil {
		t.Fatalf("newVerifier: %v", err)
	}
	t.Cleanup(v.Stop)
	return v
}

// validClaims are claims the test verifiers accept at now, with edit applied.
func validClaims(now time.Time, edit func(jwt.MapClaims)) jwt.MapClaims {
	c := jwt.MapClaims{
		"sub":   "alice",
		"iss":   tokenTestIssuer,
		"aud":   tokenTestAudience,
		"iat":   now.Unix(),
		"nbf":   now.Unix(),
		"exp":   now.Add(time.Hour).Unix(),
		"scope": "read write",
	}
	if edit != nil {
		edit(c)
	}
	return c
}

// signToken signs claims with method and key, with kid in the header when
// it is not empty.
func signToken(t testing.TB, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", method.Alg(), err)
	}
	return s
}

func hmacToken(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	s, err := devpki.SignHS256([]byte(tokenTestSecret), claims)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rawToken assembles a token from a JSON header and claims and a signature,
// none of them checked.
func rawToken(header, claims, signature string) string {
	return jwtSegment(header) + "." + jwtSegment(claims) + "." + signature
}

func jwtSegment(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// wantReason checks that err is a *TokenError with reason.
func wantReason(t *testing.T, err error, reason string) {
	t.Helper()
	var te *TokenError
	if !errors.As(err, &te) {
		t.Fatalf("error %v (%T), want a *TokenError", err, err)
	}
	if te.Reason != reason {
		t.Fatalf("reason %q (%v), want %q", te.Reason, te.Err, reason)
	}
	if te.Err == nil || errors.Unwrap(err) != te.Err {
		t.Fatalf("TokenError %q wraps no cause", te.Reason)
	}
}

func TestVerifyHMACValidToken(t *testing.T) {
	v := newTestVerifier(t, hmacAuthConfig(), nil)
	if !v.Ready() {
		t.Fatal("an HMAC verifier is not ready")
	}
	p, err := v.Verify(context.Background(), hmacToken(t, validClaims(time.Now(), nil)))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	want := principal.Principal{Subject: "alice", Issuer: tokenTestIssuer,
		Audience: []string{tokenTestAudience}, Scopes: []string{"read", "write"}}
	if fmt.Sprint(p) != fmt.Sprint(want) {
		t.Fatalf("principal %+v, want %+v", p, want)
	}
}

func TestVerifyScopes(t *testing.T) {
	v := newTestVerifier(t, hmacAuthConfig(), nil)
	for _, tc := range []struct {
		name  string
		claim map[string]any
		want  []string
	}{
		{"scope string", map[string]any{"scope": " a  b c "}, []string{"a", "b", "c"}},
		{"scp array", map[string]any{"scp": []string{"x", "y"}}, []string{"x", "y"}},
		{"scp string", map[string]any{"scp": "x y"}, []string{"x", "y"}},
		{"scope wins over scp", map[string]any{"scope": "a", "scp": []string{"x"}}, []string{"a"}},
		{"none", map[string]any{}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			claims := validClaims(time.Now(), func(c jwt.MapClaims) {
				delete(c, "scope")
				for k, val := range tc.claim {
					c[k] = val
				}
			})
			p, err := v.Verify(context.Background(), hmacToken(t, claims))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if fmt.Sprint(p.Scopes) != fmt.Sprint(tc.want) {
				t.Fatalf("scopes %q, want %q", p.Scopes, tc.want)
			}
		})
	}
}

func TestVerifyAudienceArray(t *testing.T) {
	v := newTestVerifier(t, hmacAuthConfig(), nil)
	tok := hmacToken(t, validClaims(time.Now(), func(c jwt.MapClaims) { c["aud"] = []string{"other", tokenTestAudience} }))
	p, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if fmt.Sprint(p.Audience) != fmt.Sprint([]string{"other", tokenTestAudience}) {
		t.Fatalf("audience %q", p.Audience)
	}
}

func TestVerifyRefusesBadTokens(t *testing.T) {
	now := time.Now()
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	claims := func(edit func(jwt.MapClaims)) jwt.MapClaims { return validClaims(now, edit) }
	validJSON := fmt.Sprintf(`{"sub":"alice","iss":%q,"aud":%q,"exp":%d}`, tokenTestIssuer, tokenTestAudience, now.Add(time.Hour).Unix())
	for _, tc := range []struct {
		name, token, reason string
	}{
		{"alg none", rawToken(`{"alg":"none","typ":"JWT"}`, validJSON, ""), reasonAlgorithm},
		{"alg none signed", signToken(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", claims(nil)), reasonAlgorithm},
		{"alg HS512", signToken(t, jwt.SigningMethodHS512, []byte(tokenTestSecret), "", claims(nil)), reasonAlgorithm},
		{"alg ES256", signToken(t, jwt.SigningMethodES256, ecKey, "", claims(nil)), reasonAlgorithm},
		{"alg unknown", rawToken(`{"alg":"XX256"}`, validJSON, "c2ln"), reasonAlgorithm},
		{"no alg", rawToken(`{"typ":"JWT"}`, validJSON, "c2ln"), reasonAlgorithm},
		{"other secret", signToken(t, jwt.SigningMethodHS256, []byte(strings.Repeat("x", 32)), "", claims(nil)), reasonSignature},
		{"expired beyond leeway", hmacToken(t, claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-31 * time.Second).Unix() })), reasonExpired},
		{"missing exp", hmacToken(t, claims(func(c jwt.MapClaims) { delete(c, "exp") })), reasonMissingExp},
		{"missing exp and wrong iss", hmacToken(t, claims(func(c jwt.MapClaims) { delete(c, "exp"); c["iss"] = "x" })), reasonMissingExp},
		{"wrong iss", hmacToken(t, claims(func(c jwt.MapClaims) { c["iss"] = "https://other.test" })), reasonWrongIssuer},
		{"missing iss", hmacToken(t, claims(func(c jwt.MapClaims) { delete(c, "iss") })), reasonWrongIssuer},
		{"wrong aud", hmacToken(t, claims(func(c jwt.MapClaims) { c["aud"] = "other" })), reasonWrongAudience},
		{"missing aud", hmacToken(t, claims(func(c jwt.MapClaims) { delete(c, "aud") })), reasonWrongAudience},
		{"nbf in the future", hmacToken(t, claims(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Minute).Unix() })), reasonNotYetValid},
		{"exp not a number", hmacToken(t, claims(func(c jwt.MapClaims) { c["exp"] = "tomorrow" })), reasonMalformed},
		{"scope not a string", hmacToken(t, claims(func(c jwt.MapClaims) { c["scope"] = []string{"a"} })), reasonMalformed},
		{"crit header", rawSigned(t, `{"alg":"HS256","crit":["b64"],"b64":false}`, validJSON), reasonMalformed},
		{"empty", "", reasonMalformed},
		{"two segments", "a.b", reasonMalformed},
		{"four segments", "a.b.c.d", reasonMalformed},
		{"not base64", "!!!.???.***", reasonMalformed},
		{"header not JSON", rawToken(`{"alg":`, validJSON, "c2ln"), reasonMalformed},
		{"padded base64", jwtSegment(`{"alg":"HS256"}`) + "=." + jwtSegment(validJSON) + ".c2ln", reasonMalformed},
		{"over 8 KiB", hmacToken(t, claims(func(c jwt.MapClaims) { c["pad"] = strings.Repeat("p", maxTokenBytes) })), reasonTooLarge},
		{"over 8 KiB of garbage", strings.Repeat("a", maxTokenBytes+1), reasonTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newTestVerifier(t, hmacAuthConfig(), nil)
			_, err := v.Verify(context.Background(), tc.token)
			wantReason(t, err, tc.reason)
			if n := v.cache.len(); n != 0 {
				t.Fatalf("a refused token left %d cache entries", n)
			}
			if tc.token != "" {
				wantChallenge(t, v, tc.token, tc.reason)
			}
		})
	}
}

// wantChallenge sends token through the security stage and wants the 401
// problem a refused token gets: a Bearer challenge with error="invalid_token"
// and the short reason, nothing more.
func wantChallenge(t *testing.T, v *Verifier, token, reason string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	stageEngine(Stage{Verifier: v}).ServeHTTP(rec, req)
	var p struct {
		Status int
		Detail string
	}
	if rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") != `Bearer realm="meshkit", error="invalid_token"` ||
		rec.Header().Get("Content-Type") != "application/problem+json" || json.Unmarshal(rec.Body.Bytes(), &p) != nil ||
		p.Status != 401 || p.Detail != "the bearer token is not valid: "+reason {
		t.Fatalf("through the stage: %d, WWW-Authenticate %q, body %s; want a 401 problem saying %q", rec.Code, rec.Header().Get("WWW-Authenticate"), rec.Body, reason)
	}
}

// rawSigned signs a hand-made header and claims with the test secret.
func rawSigned(t *testing.T, header, claims string) string {
	t.Helper()
	signing := jwtSegment(header) + "." + jwtSegment(claims)
	sig, err := jwt.SigningMethodHS256.Sign(signing, []byte(tokenTestSecret))
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func TestVerifyLeeway(t *testing.T) {
	clock := newTokenClock()
	cfg := hmacAuthConfig()
	cfg.Leeway = 30 * time.Second
	v := newTestVerifier(t, cfg, clock)
	now := clock.now()
	for _, tc := range []struct {
		name   string
		edit   func(jwt.MapClaims)
		reason string // "" when accepted
	}{
		{"expired within leeway", func(c jwt.MapClaims) { c["exp"] = now.Add(-20 * time.Second).Unix() }, ""},
		{"expired beyond leeway", func(c jwt.MapClaims) { c["exp"] = now.Add(-40 * time.Second).Unix() }, reasonExpired},
		{"nbf within leeway", func(c jwt.MapClaims) { c["nbf"] = now.Add(20 * time.Second).Unix() }, ""},
		{"nbf beyond leeway", func(c jwt.MapClaims) { c["nbf"] = now.Add(40 * time.Second).Unix() }, reasonNotYetValid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(context.Background(), hmacToken(t, validClaims(now, tc.edit)))
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			wantReason(t, err, tc.reason)
		})
	}
}

func TestTokenErrorWrapsTheCause(t *testing.T) {
	v := newTestVerifier(t, hmacAuthConfig(), nil)
	tok := hmacToken(t, validClaims(time.Now(), func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() }))
	_, err := v.Verify(context.Background(), tok)
	if !errors.Is(err, jwt.ErrTokenExpired) {
		t.Fatalf("%v does not wrap jwt.ErrTokenExpired", err)
	}
	if !strings.HasPrefix(err.Error(), "bearer token expired: ") {
		t.Fatalf("error text %q", err)
	}
}

func TestCachedTokenSkipsTheSignatureCheck(t *testing.T) {
	v := newTestVerifier(t, hmacAuthConfig(), nil)
	tok := hmacToken(t, validClaims(time.Now(), nil))
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	// With another secret, only a cache hit can accept the token.
	v.hmacKey = []byte(strings.Repeat("z", 32))
	if p, err := v.Verify(context.Background(), tok); err != nil || p.Subject != "alice" {
		t.Fatalf("second Verify: %+v, %v; want the cached principal", p, err)
	}
	// A token the cache has not seen is checked.
	other := hmacToken(t, validClaims(time.Now(), func(c jwt.MapClaims) { c["sub"] = "bob" }))
	_, err := v.Verify(context.Background(), other)
	wantReason(t, err, reasonSignature)
}

func TestCachedTokenIsRefusedAfterItsExp(t *testing.T) {
	clock := newTokenClock()
	cfg := hmacAuthConfig()
	cfg.Leeway = 0
	v := newTestVerifier(t, cfg, clock)
	tok := hmacToken(t, validClaims(clock.now(), func(c jwt.MapClaims) { c["exp"] = clock.now().Add(time.Minute).Unix() }))
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if n := v.cache.len(); n != 1 {
		t.Fatalf("%d cache entries, want 1", n)
	}
	clock.advance(59 * time.Second)
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("Verify before exp: %v", err)
	}
	clock.advance(2 * time.Second)
	_, err := v.Verify(context.Background(), tok)
	wantReason(t, err, reasonExpired)
}

func TestCacheWithinLeewayIsNotExtended(t *testing.T) {
	clock := newTokenClock()
	v := newTestVerifier(t, hmacAuthConfig(), clock) // leeway 30s
	tok := hmacToken(t, validClaims(clock.now(), func(c jwt.MapClaims) { c["exp"] = clock.now().Add(-10 * time.Second).Unix() }))
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("Verify within leeway: %v", err)
	}
	if n := v.cache.len(); n != 0 {
		t.Fatalf("a token past its exp was cached (%d entries)", n)
	}
}

func TestCacheSize(t *testing.T) {
	for _, size := range []int{0, 1, 3, 100, 1000} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			cfg := hmacAuthConfig()
			cfg.CacheSize = size
			v := newTestVerifier(t, cfg, nil)
			for i := range 2*size + 10 {
				tok := hmacToken(t, validClaims(time.Now(), func(c jwt.MapClaims) { c["sub"] = fmt.Sprint("user", i) }))
				if p, err := v.Verify(context.Background(), tok); err != nil || p.Subject != fmt.Sprint("user", i) {
					t.Fatalf("Verify %d: %+v, %v", i, p, err)
				}
				if n := v.cache.len(); n > size {
					t.Fatalf("%d entries in a cache of %d", n, size)
				}
			}
			if size > 0 && v.cache.len() == 0 {
				t.Fatal("nothing was cached")
			}
		})
	}
}

func TestCacheEvictsExpiredEntriesFirst(t *testing.T) {
	// One full shard of cacheEvictionSample entries: eviction sees them all.
	c := &tokenCache{shards: []cacheShard{{m: map[tokenKey]cacheEntry{}}}, perShard: cacheEvictionSample}
	now := time.Now()
	for i := range cacheEvictionSample {
		k := tokenKey{byte(i)}
		exp := now.Add(time.Hour)
		if i == 3 {
			exp = now.Add(time.Second)
		}
		c.put(&k, principal.Principal{Subject: fmt.Sprint(i)}, exp, 0, now)
	}
	later := now.Add(2 * time.Second)
	fresh := tokenKey{0xff}
	c.put(&fresh, principal.Principal{Subject: "fresh"}, now.Add(time.Hour), 0, later)
	for i := range cacheEvictionSample {
		k := tokenKey{byte(i)}
		_, ok := c.get(&k, now, 0)
		if ok == (i == 3) {
			t.Fatalf("entry %d: cached %v after eviction; want only the expired entry gone", i, ok)
		}
	}
	if p, ok := c.get(&fresh, later, 0); !ok || p.Subject != "fresh" {
		t.Fatal("the new entry is missing")
	}
}

func TestVerifyConcurrently(t *testing.T) {
	cfg := hmacAuthConfig()
	cfg.CacheSize = 16
	v := newTestVerifier(t, cfg, nil)
	tokens := make([]string, 64)
	for i := range tokens {
		tokens[i] = hmacToken(t, validClaims(time.Now(), func(c jwt.MapClaims) { c["sub"] = fmt.Sprint("user", i) }))
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				n := (g*31 + i) % len(tokens)
				p, err := v.Verify(context.Background(), tokens[n])
				if err != nil || p.Subject != fmt.Sprint("user", n) {
					t.Errorf("Verify %d: %+v, %v", n, p, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestNewVerifierRefusesBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*AuthConfig)
	}{
		{"auth off", func(c *AuthConfig) { c.HMACSecret = "" }},
		{"short secret", func(c *AuthConfig) { c.HMACSecret = "short" }},
		{"mixed sources", func(c *AuthConfig) { c.JWKSURL = "https://issuer.test/jwks" }},
		{"leeway over 60s", func(c *AuthConfig) { c.Leeway = 2 * time.Minute }},
		{"missing JWKS file", func(c *AuthConfig) { c.HMACSecret, c.JWKSFile = "", t.TempDir()+"/none.json" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := hmacAuthConfig()
			tc.edit(&cfg)
			if v, err := NewVerifier(cfg, nil, nil); err == nil {
				v.Stop()
				t.Fatal("NewVerifier accepted it")
			}
		})
	}
}

func TestStartAndStopWithHMAC(t *testing.T) {
	v := newTestVerifier(t, hmacAuthConfig(), nil)
	v.Start()
	v.Start()
	v.Stop()
	v.Stop()
	if !v.Ready() {
		t.Fatal("not ready")
	}
}

func ExampleVerifier_Verify() {
	cfg := DefaultConfig().Auth
	cfg.HMACSecret = "a secret of at least thirty-two bytes"
	v, err := NewVerifier(cfg, nil, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	v.Start() // nothing to load for HMAC; with a JWKS, the first fetch
	defer v.Stop()

	token, _ := devpki.SignHS256([]byte(cfg.HMACSecret), map[string]any{
		"sub": "alice", "scope": "read", "exp": time.Now().Add(time.Hour).Unix(),
	})
	p, err := v.Verify(context.Background(), token)
	fmt.Println(p.Subject, p.Scopes, err)

	_, err = v.Verify(context.Background(), "a.b")
	var te *TokenError
	if errors.As(err, &te) {
		fmt.Println(te.Reason)
	}
	// Output:
	// alice [read] <nil>
	// malformed
}

// FuzzVerify: any input gives a principal or a *TokenError with a known
// reason, never a panic.
func FuzzVerify(f *testing.F) {
	now := time.Now()
	f.Add(hmacToken(f, validClaims(now, nil)))
	f.Add(rawToken(`{"alg":"none"}`, `{"exp":4102444800}`, ""))
	f.Add("a.b.c")
	f.Add("")
	cfg := hmacAuthConfig()
	cfg.CacheSize = 0
	v := newTestVerifier(f, cfg, nil)
	reasons := []string{reasonTooLarge, reasonMalformed, reasonAlgorithm, reasonUnknownKey, reasonSignature,
		reasonMissingExp, reasonExpired, reasonNotYetValid, reasonWrongIssuer, reasonWrongAudience, reasonInvalid}
	f.Fuzz(func(t *testing.T, token string) {
		_, err := v.Verify(context.Background(), token)
		if err == nil {
			return
		}
		var te *TokenError
		if !errors.As(err, &te) || !slices.Contains(reasons, te.Reason) {
			t.Fatalf("Verify(%q): %v, want a *TokenError with a known reason", token, err)
		}
	})
}
