package devpki

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// SignHS256 signs claims as a compact JWT with HMAC-SHA256 and secret; the
// header is {"alg":"HS256","typ":"JWT"}. It adds no claims of its own, so a
// test can make tokens without exp or with any other defect. secret must not
// be empty (RFC 7518 asks for at least 32 bytes; that is left to the
// verifier).
func SignHS256(secret []byte, claims map[string]any) (string, error) {
	if len(secret) == 0 {
		return "", errors.New("devpki: sign HS256: empty secret")
	}
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(claims)).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("devpki: sign HS256: %w", err)
	}
	return token, nil
}

// DevToken signs an HS256 token for subject with [SignHS256]: sub, iat and
// nbf (now, in whole seconds), exp (now + ttl), and iss and aud when they
// are not empty. subject must not be empty and ttl must be at least a second.
func DevToken(secret []byte, subject, issuer, audience string, ttl time.Duration) (string, error) {
	if subject == "" {
		return "", errors.New("devpki: dev token: empty subject")
	}
	if ttl < time.Second {
		return "", fmt.Errorf("devpki: dev token: ttl %s: must be at least 1s", ttl)
	}
	now := time.Now()
	claims := map[string]any{
		"sub": subject,
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(ttl).Unix(),
	}
	if issuer != "" {
		claims["iss"] = issuer
	}
	if audience != "" {
		claims["aud"] = audience
	}
	return SignHS256(secret, claims)
}
