package security

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/meshkit/meshkit/internal/config"
)

// A JWKS URL must be https, a loopback host aside, in every environment:
// whoever is on the path of a plain-http fetch could serve keys.
func TestJWKSURLMustBeHTTPS(t *testing.T) {
	tests := []struct {
		url string
		ok  bool
	}{
		{"https://keys.example/jwks", true},
		{"http://127.0.0.1:8081/jwks", true},
		{"http://localhost/jwks", true},
		{"http://[::1]:9/jwks", true},
		{"http://keys.example/jwks", false},
		{"http://10.0.0.1/jwks", false},
		{"http://127.0.0.1.keys.example/jwks", false},
		{"ftp://keys.example/jwks", false},
	}
	for _, tt := range tests {
		for _, env := range []string{config.Development, config.Production} {
			cfg := DefaultConfig()
			cfg.Auth.JWKSURL, cfg.Auth.Issuer, cfg.Auth.Audience = tt.url, "https://issuer.test", "meshkit"
			err := cfg.Validate()
			if err == nil {
				err = cfg.ValidateEnv(env)
			}
			switch {
			case tt.ok && err != nil:
				t.Errorf("%s in %s: %v", tt.url, env, err)
			case !tt.ok && (err == nil || !strings.HasPrefix(err.Error(), "SERVICE_AUTH_JWKS_URL=") || strings.Contains(err.Error(), "\n")):
				t.Errorf("%s in %s: %v, want one line naming SERVICE_AUTH_JWKS_URL", tt.url, env, err)
			}
		}
	}
}

// In production bearer tokens must be bound to this service: the audience
// is required, and with a JWKS the issuer too; each refusal names its
// variable in one line.
func TestProductionBindsTokensToThisService(t *testing.T) {
	tests := []struct {
		name string
		auth AuthConfig
		want string // the variable the refusal names; "" when accepted
	}{
		{"HMAC without audience", AuthConfig{HMACSecret: tokenTestSecret}, "SERVICE_AUTH_AUDIENCE"},
		{"HMAC with audience", AuthConfig{HMACSecret: tokenTestSecret, Audience: "meshkit"}, ""},
		{"JWKS without audience", AuthConfig{JWKSFile: "/k.json", Issuer: "https://i"}, "SERVICE_AUTH_AUDIENCE"},
		{"JWKS without issuer", AuthConfig{JWKSFile: "/k.json", Audience: "meshkit"}, "SERVICE_AUTH_ISSUER"},
		{"JWKS URL without issuer", AuthConfig{JWKSURL: "https://keys.example", Audience: "meshkit"}, "SERVICE_AUTH_ISSUER"},
		{"JWKS with both", AuthConfig{JWKSFile: "/k.json", Issuer: "https://i", Audience: "meshkit"}, ""},
	}
	for _, tt := range tests {
		cfg := DefaultConfig()
		tt.auth.JWKSRefresh, tt.auth.Leeway = time.Minute, time.Second
		cfg.Auth = tt.auth
		if err := cfg.ValidateEnv(config.Development); err != nil {
			t.Errorf("%s in development: %v", tt.name, err)
		}
		err := cfg.ValidateEnv(config.Production)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s in production: %v", tt.name, err)
		case tt.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.want+":") || strings.Contains(err.Error(), "\n")):
			t.Errorf("%s in production: %v, want one line naming %s", tt.name, err, tt.want)
		}
	}
}

// A JWKS fetch follows a redirect on the same host over https, and refuses
// one to http or to another host: nothing is fetched there.
func TestJWKSRedirectsNeverDowngradeOrLeaveTheHost(t *testing.T) {
	k := newSigningKey(t, "k", "P-256")
	var plainFetches atomic.Int32
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		plainFetches.Add(1)
		_, _ = w.Write(jwksJSON(t, k.jwk))
	}))
	t.Cleanup(plain.Close)
	var secure *httptest.Server
	secure = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/keys":
			_, _ = w.Write(jwksJSON(t, k.jwk))
		case "/moved":
			http.Redirect(w, r, "/keys", http.StatusFound)
		case "/to-http":
			http.Redirect(w, r, plain.URL+"/keys", http.StatusFound)
		case "/to-other-host":
			http.Redirect(w, r, strings.Replace(secure.URL, "127.0.0.1", "localhost", 1)+"/keys", http.StatusFound)
		}
	}))
	t.Cleanup(secure.Close)
	client := safeRedirects(secure.Client())
	if _, err := fetchJWKS(t.Context(), client, secure.URL+"/moved"); err != nil {
		t.Errorf("a redirect on the same host over https: %v", err)
	}
	for _, path := range []string{"/to-http", "/to-other-host"} {
		if _, err := fetchJWKS(t.Context(), client, secure.URL+path); !errors.Is(err, errRedirectRefused) {
			t.Errorf("%s: %v, want the redirect refused", path, err)
		}
	}
	if n := plainFetches.Load(); n != 0 {
		t.Errorf("the plain-http server was fetched %d times", n)
	}
	// The verifier's own client has the policy too, even one it is given.
	cfg := jwksAuthConfig()
	cfg.JWKSURL = secure.URL + "/to-http"
	v, err := NewVerifier(cfg, secure.Client(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.keys.reload(t.Context(), false); !errors.Is(err, errRedirectRefused) {
		t.Errorf("the verifier's fetch: %v, want the redirect refused", err)
	}
}

// The window between loads for unknown kids is short by default.
func TestUnknownKIDWindowIsShortByDefault(t *testing.T) {
	for _, refresh := range []time.Duration{DefaultConfig().Auth.JWKSRefresh, time.Hour, 3 * time.Second} {
		cfg := DefaultConfig().Auth
		cfg.JWKSURL, cfg.JWKSRefresh = "https://keys.example", refresh
		if w := newKeySource(cfg, http.DefaultClient, nil).window; w > 5*time.Second || w < time.Second {
			t.Errorf("refresh %s: window %s, want 1s to 5s", refresh, w)
		}
	}
}

// slowJWKS serves a JWKS it can change, after a delay, counting fetches.
type slowJWKS struct {
	*httptest.Server
	delay   time.Duration
	fetches atomic.Int32
	down    atomic.Bool
	mu      sync.Mutex
	body    []byte
}

func newSlowJWKS(t *testing.T, delay time.Duration, keys ...map[string]any) *slowJWKS {
	s := &slowJWKS{delay: delay, body: jwksJSON(t, keys...)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.fetches.Add(1)
		time.Sleep(s.delay)
		if s.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		s.mu.Lock()
		body := s.body
		s.mu.Unlock()
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

// startVerifier starts a verifier of s's JWKS, refreshed every refresh,
// and waits until it is ready.
func (s *slowJWKS) startVerifier(t *testing.T, refresh time.Duration) *Verifier {
	t.Helper()
	cfg := jwksAuthConfig()
	cfg.JWKSURL, cfg.JWKSRefresh = s.URL, refresh
	v, err := NewVerifier(cfg, s.Client(), nil)
	if err != nil {
		t.Fatal(err)
	}
	v.Start()
	t.Cleanup(v.Stop)
	jwksEventually(t, "ready", v.Ready)
	return v
}

func (s *slowJWKS) set(t *testing.T, keys ...map[string]any) {
	body := jwksJSON(t, keys...)
	s.mu.Lock()
	s.body = body
	s.mu.Unlock()
}

// An attacker sending tokens with bogus kids, and cancelling its requests
// 20ms in, can neither make the loads fail nor hold a genuine new key off:
// the loads run detached from the requests, and a key rotated in is
// accepted within seconds. The loads stay bounded by the window.
func TestNewKIDAcceptedWithinSecondsWhileBogusKIDsArrive(t *testing.T) {
	k1, k2 := newSigningKey(t, "k1", "P-256"), newSigningKey(t, "k2", "P-256")
	srv := newSlowJWKS(t, 100*time.Millisecond, k1.jwk)
	v := srv.startVerifier(t, 30*time.Second) // window 3s

	ctx, stop := context.WithCancel(context.Background())
	var attackers sync.WaitGroup
	for a := range 4 {
		attackers.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				tok := signToken(t, jwt.SigningMethodES256, k1.priv, fmt.Sprintf("bogus-%d-%d", a, i), validClaims(time.Now(), nil))
				rctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
				_, _ = v.Verify(rctx, tok)
				cancel()
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	time.Sleep(300 * time.Millisecond) // the attack spends the window first
	srv.set(t, k1.jwk, k2.jwk)
	rotated := time.Now()
	genuine := k2.sign(t, jwt.SigningMethodES256, validClaims(time.Now(), nil))
	var accepted time.Duration
	for accepted == 0 && time.Since(rotated) < 10*time.Second {
		if _, err := v.Verify(context.Background(), genuine); err == nil {
			accepted = time.Since(rotated)
		} else {
			time.Sleep(50 * time.Millisecond)
		}
	}
	stop()
	attackers.Wait()
	t.Logf("the new kid was accepted %s after the rotation; %d fetches in all", accepted.Round(time.Millisecond), srv.fetches.Load())
	if accepted == 0 || accepted > 5*time.Second {
		t.Fatalf("the new kid was accepted after %s, want within 5s", accepted)
	}
	// One fetch at start, then at most one per 3s window (plus the one the
	// window was spent on).
	if n := srv.fetches.Load(); n > 1+int32(time.Since(rotated)/(3*time.Second))+2 {
		t.Errorf("%d fetches: the bogus kids were not bounded by the window", n)
	}
}

// A load for an unknown kid that fails does not spend the window: the next
// unknown kid may load again after a short retry delay.
func TestFailedKIDLoadDoesNotSpendTheWindow(t *testing.T) {
	k1, k2 := newSigningKey(t, "k1", "P-256"), newSigningKey(t, "k2", "P-256")
	srv := newSlowJWKS(t, 0, k1.jwk)
	v := srv.startVerifier(t, time.Hour) // window 5s
	srv.down.Store(true)
	genuine := k2.sign(t, jwt.SigningMethodES256, validClaims(time.Now(), nil))
	_, err := v.Verify(context.Background(), genuine)
	wantReason(t, err, reasonUnknownKey)
	srv.down.Store(false)
	srv.set(t, k1.jwk, k2.jwk)
	time.Sleep(2 * jwksFirstRetry)
	if _, err := v.Verify(context.Background(), genuine); err != nil {
		t.Fatalf("the new kid after a failed load, well within the window: %v", err)
	}
}

// A token issued in the future beyond the leeway is refused; within it, it
// is accepted.
func TestVerifyRefusesAFutureIAT(t *testing.T) {
	clock := newTokenClock()
	v := newTestVerifier(t, hmacAuthConfig(), clock)
	sign := func(iat time.Time) string {
		claims := validClaims(clock.now(), func(c jwt.MapClaims) { c["iat"] = iat.Unix(); delete(c, "nbf") })
		return signToken(t, jwt.SigningMethodHS256, []byte(tokenTestSecret), "", claims)
	}
	_, err := v.Verify(context.Background(), sign(clock.now().Add(2*time.Minute)))
	wantReason(t, err, reasonNotYetValid)
	if _, err := v.Verify(context.Background(), sign(clock.now().Add(10*time.Second))); err != nil {
		t.Errorf("an iat 10s ahead (leeway 30s): %v", err)
	}
}
