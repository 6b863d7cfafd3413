package security

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// signingKey is a private key a test signs with, and its public JWK.
type signingKey struct {
	kid  string
	priv crypto.Signer
	jwk  map[string]any
}

func newSigningKey(t testing.TB, kid, kind string) signingKey {
	t.Helper()
	var (
		priv crypto.Signer
		err  error
	)
	switch kind {
	case "RSA":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case "P-256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "P-384":
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "P-521":
		priv, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "Ed25519":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("unknown key kind %q", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	return signingKey{kid: kid, priv: priv, jwk: publicJWK(t, kid, priv.Public())}
}

// publicJWK is the JWK of pub with kid and use "sig".
func publicJWK(t testing.TB, kid string, pub crypto.PublicKey) map[string]any {
	t.Helper()
	b64 := base64.RawURLEncoding.EncodeToString
	j := map[string]any{"kid": kid, "use": "sig"}
	switch pub := pub.(type) {
	case *rsa.PublicKey:
		j["kty"], j["n"], j["e"] = "RSA", b64(pub.N.Bytes()), b64(big.NewInt(int64(pub.E)).Bytes())
	case *ecdsa.PublicKey:
		point, err := pub.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		size := (len(point) - 1) / 2
		j["kty"], j["crv"] = "EC", pub.Curve.Params().Name
		j["x"], j["y"] = b64(point[1:1+size]), b64(point[1+size:])
	case ed25519.PublicKey:
		j["kty"], j["crv"], j["x"] = "OKP", "Ed25519", b64(pub)
	default:
		t.Fatalf("no JWK for %T", pub)
	}
	return j
}

func jwksJSON(t testing.TB, keys ...map[string]any) []byte {
	t.Helper()
	if keys == nil {
		keys = []map[string]any{}
	}
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (k signingKey) sign(t testing.TB, method jwt.SigningMethod, claims jwt.MapClaims) string {
	t.Helper()
	return signToken(t, method, k.priv, k.kid, claims)
}

// jwksFile writes a JWKS of keys and returns its path.
func jwksFile(t testing.TB, keys ...map[string]any) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, jwksJSON(t, keys...), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func jwksAuthConfig() AuthConfig {
	cfg := DefaultConfig().Auth
	cfg.Issuer, cfg.Audience = tokenTestIssuer, tokenTestAudience
	return cfg
}

// jwksServer serves a JWKS it can change, counts the fetches, and answers
// 503 while down.
type jwksServer struct {
	*httptest.Server
	fetches atomic.Int32
	down    atomic.Bool
	mu      sync.Mutex
	body    []byte
}

func newJWKSServer(t testing.TB, keys ...map[string]any) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.set(t, keys...)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.fetches.Add(1)
		if s.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		s.mu.Lock()
		body := s.body
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(t testing.TB, keys ...map[string]any) {
	body := jwksJSON(t, keys...)
	s.mu.Lock()
	s.body = body
	s.mu.Unlock()
}

// startURLVerifier starts a verifier of srv's JWKS, refreshed every refresh.
func startURLVerifier(t testing.TB, srv *jwksServer, refresh time.Duration, log *slog.Logger) *Verifier {
	t.Helper()
	cfg := jwksAuthConfig()
	cfg.JWKSURL, cfg.JWKSRefresh = srv.URL, refresh
	v, err := NewVerifier(cfg, srv.Client(), log)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	v.Start()
	t.Cleanup(v.Stop)
	return v
}

// jwksEventually polls cond every 10ms for up to 5s.
func jwksEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestJWKSVerifiesEachAlgorithm(t *testing.T) {
	keys := map[string]signingKey{}
	var jwks []map[string]any
	for _, kind := range []string{"RSA", "P-256", "P-384", "P-521", "Ed25519"} {
		keys[kind] = newSigningKey(t, "kid-"+kind, kind)
		jwks = append(jwks, keys[kind].jwk)
	}
	cfg := jwksAuthConfig()
	cfg.JWKSFile = jwksFile(t, jwks...)
	v := newTestVerifier(t, cfg, nil)
	if !v.Ready() {
		t.Fatal("a verifier of a JWKS file is not ready")
	}
	for _, tc := range []struct {
		method jwt.SigningMethod
		key    string
	}{
		{jwt.SigningMethodRS256, "RSA"}, {jwt.SigningMethodRS384, "RSA"}, {jwt.SigningMethodRS512, "RSA"},
		{jwt.SigningMethodPS256, "RSA"}, {jwt.SigningMethodPS384, "RSA"}, {jwt.SigningMethodPS512, "RSA"},
		{jwt.SigningMethodES256, "P-256"}, {jwt.SigningMethodES384, "P-384"}, {jwt.SigningMethodES512, "P-521"},
		{jwt.SigningMethodEdDSA, "Ed25519"},
	} {
		t.Run(tc.method.Alg(), func(t *testing.T) {
			tok := keys[tc.key].sign(t, tc.method, validClaims(time.Now(), nil))
			p, err := v.Verify(context.Background(), tok)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if p.Subject != "alice" || p.Issuer != tokenTestIssuer || fmt.Sprint(p.Audience) != "[meshkit]" ||
				fmt.Sprint(p.Scopes) != "[read write]" {
				t.Fatalf("principal %+v", p)
			}
		})
	}
}

func TestJWKSRefusesBadTokens(t *testing.T) {
	rsaKey := newSigningKey(t, "rsa", "RSA")
	ec256 := newSigningKey(t, "ec256", "P-256")
	ec384 := newSigningKey(t, "ec384", "P-384")
	bound := publicJWK(t, "rsa-rs256", rsaKey.priv.Public())
	bound["alg"] = "RS256"
	cfg := jwksAuthConfig()
	cfg.JWKSFile = jwksFile(t, rsaKey.jwk, ec256.jwk, ec384.jwk, bound)
	der, err := x509.MarshalPKIXPublicKey(rsaKey.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	publicPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})

	now := time.Now()
	claims := func(edit func(jwt.MapClaims)) jwt.MapClaims { return validClaims(now, edit) }
	valid := rsaKey.sign(t, jwt.SigningMethodRS256, claims(nil))
	parts := strings.Split(valid, ".")
	tampered := parts[0] + "." + jwtSegment(`{"sub":"mallory","iss":"https://issuer.test","aud":"meshkit","exp":4102444800}`) + "." + parts[2]

	for _, tc := range []struct {
		name, token, reason string
	}{
		{"HS256 with the RSA public key PEM as secret", signToken(t, jwt.SigningMethodHS256, publicPEM, "rsa", claims(nil)), reasonAlgorithm},
		{"HS256 with the PEM, no kid", signToken(t, jwt.SigningMethodHS256, publicPEM, "", claims(nil)), reasonAlgorithm},
		{"HS256 with the modulus as secret", signToken(t, jwt.SigningMethodHS256, rsaKey.priv.Public().(*rsa.PublicKey).N.Bytes(), "rsa", claims(nil)), reasonAlgorithm},
		{"alg none", signToken(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "rsa", claims(nil)), reasonAlgorithm},
		{"unknown kid", signToken(t, jwt.SigningMethodRS256, rsaKey.priv, "nobody", claims(nil)), reasonUnknownKey},
		{"no kid in a set of several", signToken(t, jwt.SigningMethodRS256, rsaKey.priv, "", claims(nil)), reasonUnknownKey},
		{"ES384 under a P-256 kid", signToken(t, jwt.SigningMethodES384, ec384.priv, "ec256", claims(nil)), reasonAlgorithm},
		{"ES256 under an RSA kid", signToken(t, jwt.SigningMethodES256, ec256.priv, "rsa", claims(nil)), reasonAlgorithm},
		{"PS256 under a kid bound to RS256", signToken(t, jwt.SigningMethodPS256, rsaKey.priv, "rsa-rs256", claims(nil)), reasonAlgorithm},
		{"claims changed after signing", tampered, reasonSignature},
		{"signed by another key of the same curve", signToken(t, jwt.SigningMethodES256, newSigningKey(t, "x", "P-256").priv, "ec256", claims(nil)), reasonSignature},
		{"expired", ec256.sign(t, jwt.SigningMethodES256, claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Hour).Unix() })), reasonExpired},
		{"missing exp", ec256.sign(t, jwt.SigningMethodES256, claims(func(c jwt.MapClaims) { delete(c, "exp") })), reasonMissingExp},
		{"wrong iss", ec256.sign(t, jwt.SigningMethodES256, claims(func(c jwt.MapClaims) { c["iss"] = "x" })), reasonWrongIssuer},
		{"wrong aud", ec256.sign(t, jwt.SigningMethodES256, claims(func(c jwt.MapClaims) { c["aud"] = "x" })), reasonWrongAudience},
		{"nbf in the future", ec256.sign(t, jwt.SigningMethodES256, claims(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Hour).Unix() })), reasonNotYetValid},
		{"kid not a string", rawToken(`{"alg":"ES256","kid":7}`, `{"exp":4102444800}`, "c2ln"), reasonMalformed},
		{"malformed", "a.b.c.d", reasonMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newTestVerifier(t, cfg, nil)
			_, err := v.Verify(context.Background(), tc.token)
			wantReason(t, err, tc.reason)
			wantChallenge(t, v, tc.token, tc.reason)
		})
	}
	v := newTestVerifier(t, cfg, nil)
	if _, err := v.Verify(context.Background(), valid); err != nil {
		t.Fatalf("the untampered token: %v", err)
	}
}

func TestJWKSWithOneKeyAcceptsATokenWithoutKID(t *testing.T) {
	k := newSigningKey(t, "only", "P-256")
	cfg := jwksAuthConfig()
	cfg.JWKSFile = jwksFile(t, k.jwk)
	v := newTestVerifier(t, cfg, nil)
	if _, err := v.Verify(context.Background(), signToken(t, jwt.SigningMethodES256, k.priv, "", validClaims(time.Now(), nil))); err != nil {
		t.Fatalf("no kid: %v", err)
	}
	_, err := v.Verify(context.Background(), signToken(t, jwt.SigningMethodES256, k.priv, "other", validClaims(time.Now(), nil)))
	wantReason(t, err, reasonUnknownKey)
}

func TestParseJWKSLeavesOutUnusableKeys(t *testing.T) {
	good := newSigningKey(t, "good", "P-256").jwk
	ec := newSigningKey(t, "ec", "P-256").jwk
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	with := func(j map[string]any, kv ...any) map[string]any {
		c := map[string]any{}
		for k, v := range j {
			c[k] = v
		}
		for pair := range slices.Chunk(kv, 2) {
			c[pair[0].(string)] = pair[1]
		}
		return c
	}
	for _, tc := range []struct {
		name string
		key  map[string]any
		want string // in the ignored line
	}{
		{"use enc", with(ec, "use", "enc"), `use "enc"`},
		{"kty oct", map[string]any{"kty": "oct", "kid": "s", "k": "c2VjcmV0"}, `kty "oct"`},
		{"alg HS256", with(ec, "alg", "HS256"), `alg "HS256" not allowed`},
		{"alg of another key type", with(ec, "alg", "RS256"), "does not fit"},
		{"RSA under 2048 bits", publicJWK(t, "small", small.Public()), "1024 bits"},
		{"curve P-224", with(ec, "crv", "P-224"), `crv "P-224"`},
		{"point off the curve", with(ec, "y", ec["x"]), "point"},
		{"short coordinate", with(ec, "x", "AQAB"), "32 bytes"},
		{"OKP X25519", map[string]any{"kty": "OKP", "kid": "x", "crv": "X25519", "x": ec["x"]}, `crv "X25519"`},
		{"padded base64", with(ec, "x", ec["x"].(string)+"="), `"x"`},
		{"use not a string", with(ec, "use", 1), "not a JWK"},
		{"no kid in a set of several", with(ec, "kid", ""), "without kid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set, ignored, err := parseJWKS(jwksJSON(t, good, tc.key))
			if err != nil {
				t.Fatalf("parseJWKS: %v", err)
			}
			if len(set.keys) != 1 || set.keys[0].kid != "good" {
				t.Fatalf("keys %+v, want the good one only", set.keys)
			}
			if len(ignored) != 1 || !strings.Contains(ignored[0], tc.want) {
				t.Fatalf("ignored %q, want one containing %q", ignored, tc.want)
			}
		})
	}
	for _, doc := range []string{`not json`, `{}`, `{"keys":[]}`, `{"keys":[{"kty":"oct"}]}`, `{"keys":{}}`} {
		if _, _, err := parseJWKS([]byte(doc)); err == nil {
			t.Errorf("parseJWKS(%s) succeeded", doc)
		}
	}
}

// jwksLogCounter is a slog handler counting records by message.
type jwksLogCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func (l *jwksLogCounter) Enabled(context.Context, slog.Level) bool { return true }
func (l *jwksLogCounter) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *jwksLogCounter) WithGroup(string) slog.Handler            { return l }
func (l *jwksLogCounter) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.counts == nil {
		l.counts = map[string]int{}
	}
	l.counts[r.Message]++
	return nil
}

func (l *jwksLogCounter) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts[msg]
}

func TestJWKSIgnoredKeysAreLoggedOncePerLoad(t *testing.T) {
	good := newSigningKey(t, "good", "Ed25519").jwk
	srv := newJWKSServer(t, good,
		map[string]any{"kty": "oct", "kid": "a"},
		map[string]any{"kty": "RSA", "kid": "b", "use": "enc"},
		map[string]any{"kty": "EC", "kid": "c", "crv": "P-192"})
	logs := &jwksLogCounter{}
	v := startURLVerifier(t, srv, time.Hour, slog.New(logs))
	jwksEventually(t, "ready", v.Ready)
	if n := logs.count("jwks: keys ignored"); n != 1 {
		t.Fatalf("%d log lines for the ignored keys of one load, want 1", n)
	}
	if err := v.keys.reload(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if n := logs.count("jwks: keys ignored"); n != 2 {
		t.Fatalf("%d log lines after two loads, want 2", n)
	}
}

func TestJWKSUnknownKIDLoadsAtMostOncePerWindow(t *testing.T) {
	k1, k2 := newSigningKey(t, "k1", "P-256"), newSigningKey(t, "k2", "P-256")
	srv := newJWKSServer(t, k1.jwk)
	v := startURLVerifier(t, srv, 10*time.Second, nil) // window: 1s
	jwksEventually(t, "ready", v.Ready)
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches at start, want 1", n)
	}

	// A kid added to the JWKS is accepted at once: its first token loads it.
	srv.set(t, k1.jwk, k2.jwk)
	if _, err := v.Verify(context.Background(), k2.sign(t, jwt.SigningMethodES256, validClaims(time.Now(), nil))); err != nil {
		t.Fatalf("a token of the new kid: %v", err)
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches after the new kid, want 2", n)
	}
	unknownBurst := func() {
		t.Helper()
		var wg sync.WaitGroup
		for i := range 100 {
			tok := signToken(t, jwt.SigningMethodES256, k1.priv, fmt.Sprint("unknown-", i), validClaims(time.Now(), nil))
			wg.Go(func() {
				_, err := v.Verify(context.Background(), tok)
				var te *TokenError
				if !errors.As(err, &te) || te.Reason != reasonUnknownKey {
					t.Errorf("unknown kid: %v", err)
				}
			})
		}
		wg.Wait()
	}
	// Within the window of that load: no fetch at all.
	unknownBurst()
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches after 100 unknown kids in the same window, want 2", n)
	}
	// In the next window: one fetch for all of them.
	time.Sleep(1100 * time.Millisecond)
	unknownBurst()
	if n := srv.fetches.Load(); n != 3 {
		t.Fatalf("%d fetches after 100 unknown kids in a new window, want 3", n)
	}
}

func TestJWKSURLDownAtStart(t *testing.T) {
	k := newSigningKey(t, "k", "Ed25519")
	srv := newJWKSServer(t, k.jwk)
	srv.down.Store(true)
	v := startURLVerifier(t, srv, 10*time.Second, nil)
	jwksEventually(t, "two failed fetches", func() bool { return srv.fetches.Load() >= 2 })
	if v.Ready() {
		t.Fatal("ready while the JWKS URL is down")
	}
	_, err := v.Verify(context.Background(), k.sign(t, jwt.SigningMethodEdDSA, validClaims(time.Now(), nil)))
	wantReason(t, err, reasonUnknownKey)

	srv.down.Store(false)
	jwksEventually(t, "ready", v.Ready)
	if _, err := v.Verify(context.Background(), k.sign(t, jwt.SigningMethodEdDSA, validClaims(time.Now(), nil))); err != nil {
		t.Fatalf("Verify once ready: %v", err)
	}

	// A later outage keeps the keys in use.
	srv.down.Store(true)
	if err := v.keys.reload(context.Background(), false); err == nil {
		t.Fatal("a load from a server that is down succeeded")
	}
	if !v.Ready() {
		t.Fatal("a failed load dropped the keys")
	}
}

func TestJWKSDroppedKeyEndsItsCachedTokens(t *testing.T) {
	k1, k2 := newSigningKey(t, "k1", "P-256"), newSigningKey(t, "k2", "P-256")
	srv := newJWKSServer(t, k1.jwk, k2.jwk)
	v := startURLVerifier(t, srv, time.Hour, nil)
	jwksEventually(t, "ready", v.Ready)
	t1 := k1.sign(t, jwt.SigningMethodES256, validClaims(time.Now(), nil))
	t2 := k2.sign(t, jwt.SigningMethodES256, validClaims(time.Now(), nil))
	for _, tok := range []string{t1, t2} {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}

	// A load that changes nothing keeps the cache.
	if err := v.keys.reload(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if k := sha256.Sum256([]byte(t1)); !tokenCached(v, &k) {
		t.Fatal("a load of the same keys emptied the cache")
	}

	srv.set(t, k2.jwk)
	if err := v.keys.reload(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	_, err := v.Verify(context.Background(), t1)
	wantReason(t, err, reasonUnknownKey)
	if _, err := v.Verify(context.Background(), t2); err != nil {
		t.Fatalf("a token of the key kept: %v", err)
	}
}

func tokenCached(v *Verifier, k *tokenKey) bool {
	_, ok := v.cache.get(k, time.Now(), v.epoch())
	return ok
}

func TestJWKSFileIsReadAgain(t *testing.T) {
	k1, k2 := newSigningKey(t, "k1", "P-256"), newSigningKey(t, "k2", "RSA")
	cfg := jwksAuthConfig()
	cfg.JWKSFile, cfg.JWKSRefresh = jwksFile(t, k1.jwk), 50*time.Millisecond
	v := newTestVerifier(t, cfg, nil)
	v.Start()
	t2 := k2.sign(t, jwt.SigningMethodRS256, validClaims(time.Now(), nil))

	// A half-written file keeps the keys in use.
	if err := os.WriteFile(cfg.JWKSFile, []byte(`{"keys":[`), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond)
	if _, err := v.Verify(context.Background(), k1.sign(t, jwt.SigningMethodES256, validClaims(time.Now(), nil))); err != nil {
		t.Fatalf("after a bad file: %v", err)
	}

	if err := os.WriteFile(cfg.JWKSFile, jwksJSON(t, k1.jwk, k2.jwk), 0o600); err != nil {
		t.Fatal(err)
	}
	jwksEventually(t, "the new key", func() bool {
		_, err := v.Verify(context.Background(), t2)
		return err == nil
	})
}

func TestFetchJWKSRefusesBadAnswers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   []byte
	}{
		{"not found", http.StatusNotFound, []byte(`{"keys":[]}`)},
		{"too large", http.StatusOK, bytes.Repeat([]byte(" "), maxJWKSBytes+1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tc.status)
				_, _ = w.Write(tc.body)
			}))
			defer srv.Close()
			if _, err := fetchJWKS(context.Background(), srv.Client(), srv.URL); err == nil {
				t.Fatal("fetchJWKS succeeded")
			}
		})
	}
}

// FuzzParseJWKS: any document gives a set of usable keys or an error, never
// a panic, and every key of a set fits one of the algorithms allowed.
func FuzzParseJWKS(f *testing.F) {
	f.Add(jwksJSON(f, newSigningKey(f, "ec", "P-256").jwk, newSigningKey(f, "ed", "Ed25519").jwk))
	f.Add([]byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-521","x":"","y":""}]}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		set, _, err := parseJWKS(doc)
		if err != nil {
			return
		}
		for _, k := range set.keys {
			if !slices.ContainsFunc(jwksAlgorithms(), k.fits) {
				t.Fatalf("key %+v fits no allowed algorithm", k)
			}
		}
	})
}
