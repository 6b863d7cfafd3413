package devpki_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/meshkit/meshkit/internal/devpki"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// parseHS256 verifies token as the service would for an HMAC secret: HS256
// only, exp required.
func parseHS256(token string, secret []byte, opts ...jwt.ParserOption) (*jwt.Token, jwt.MapClaims, error) {
	claims := jwt.MapClaims{}
	opts = append([]jwt.ParserOption{jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired()}, opts...)
	parsed, err := jwt.ParseWithClaims(token, claims, func(*jwt.Token) (any, error) { return secret, nil }, opts...)
	return parsed, claims, err
}

func TestDevTokenVerifiesWithTheSecret(t *testing.T) {
	before := time.Now().Truncate(time.Second)
	token, err := devpki.DevToken(testSecret, "alice", "https://issuer.test", "meshkit", time.Hour)
	if err != nil {
		t.Fatalf("DevToken: %v", err)
	}
	parsed, claims, err := parseHS256(token, testSecret, jwt.WithIssuer("https://issuer.test"), jwt.WithAudience("meshkit"), jwt.WithIssuedAt())
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if parsed.Method.Alg() != "HS256" || parsed.Header["typ"] != "JWT" {
		t.Errorf("header = %v, want alg HS256, typ JWT", parsed.Header)
	}
	if sub, _ := claims.GetSubject(); sub != "alice" {
		t.Errorf("sub = %q, want alice", sub)
	}
	iat, _ := claims.GetIssuedAt()
	nbf, _ := claims.GetNotBefore()
	exp, _ := claims.GetExpirationTime()
	if iat == nil || nbf == nil || exp == nil {
		t.Fatalf("iat %v, nbf %v, exp %v; want all three", iat, nbf, exp)
	}
	if iat.Before(before) || !nbf.Equal(iat.Time) || exp.Sub(iat.Time) != time.Hour {
		t.Errorf("iat %v, nbf %v, exp %v; want iat = nbf = now and exp = iat + 1h", iat, nbf, exp)
	}

	t.Run("wrong secret", func(t *testing.T) {
		if _, _, err := parseHS256(token, []byte("another secret, also 32 bytes..")); !errors.Is(err, jwt.ErrTokenSignatureInvalid) {
			t.Errorf("parse with another secret: %v, want ErrTokenSignatureInvalid", err)
		}
	})
	t.Run("only HS256", func(t *testing.T) {
		_, err := jwt.Parse(token, func(*jwt.Token) (any, error) { return testSecret, nil }, jwt.WithValidMethods([]string{"RS256"}))
		if !errors.Is(err, jwt.ErrTokenSignatureInvalid) {
			t.Errorf("parse allowing only RS256: %v, want ErrTokenSignatureInvalid", err)
		}
	})
	t.Run("wrong audience", func(t *testing.T) {
		if _, _, err := parseHS256(token, testSecret, jwt.WithAudience("other")); !errors.Is(err, jwt.ErrTokenInvalidAudience) {
			t.Errorf("parse expecting audience other: %v, want ErrTokenInvalidAudience", err)
		}
	})
}

func TestDevTokenOmitsEmptyIssuerAndAudience(t *testing.T) {
	token, err := devpki.DevToken(testSecret, "bob", "", "", time.Minute)
	if err != nil {
		t.Fatalf("DevToken: %v", err)
	}
	_, claims, err := parseHS256(token, testSecret)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	for _, name := range []string{"iss", "aud"} {
		if v, ok := claims[name]; ok {
			t.Errorf("claim %s = %v, want none", name, v)
		}
	}
}

func TestDevTokenRefusesBadArguments(t *testing.T) {
	for _, tt := range []struct {
		name    string
		secret  []byte
		subject string
		ttl     time.Duration
	}{
		{"empty secret", nil, "alice", time.Hour},
		{"empty subject", testSecret, "", time.Hour},
		{"zero ttl", testSecret, "alice", 0},
		{"negative ttl", testSecret, "alice", -time.Hour},
		{"sub-second ttl", testSecret, "alice", 500 * time.Millisecond},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if token, err := devpki.DevToken(tt.secret, tt.subject, "", "", tt.ttl); err == nil {
				t.Errorf("DevToken = %q, nil error; want an error", token)
			}
		})
	}
}

func TestSignHS256SignsTheClaimsAsGiven(t *testing.T) {
	// No exp: a token the service must refuse, which SignHS256 makes as asked.
	token, err := devpki.SignHS256(testSecret, map[string]any{"sub": "carol", "scope": "read write"})
	if err != nil {
		t.Fatalf("SignHS256: %v", err)
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[1])
	if err != nil {
		t.Fatalf("decode the payload: %v", err)
	}
	if got, want := string(payload), `{"scope":"read write","sub":"carol"}`; got != want {
		t.Errorf("payload = %s, want %s", got, want)
	}
	if _, _, err := parseHS256(token, testSecret); !errors.Is(err, jwt.ErrTokenRequiredClaimMissing) {
		t.Errorf("parse requiring exp: %v, want ErrTokenRequiredClaimMissing", err)
	}
	if _, err := devpki.SignHS256(nil, map[string]any{"sub": "x"}); err == nil {
		t.Error("SignHS256 with an empty secret: nil error")
	}
}
