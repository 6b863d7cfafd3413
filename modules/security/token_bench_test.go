package security

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// verifyCase is a verifier configuration and a token it accepts.
type verifyCase struct {
	name  string
	cfg   AuthConfig
	token func(tb testing.TB, claims jwt.MapClaims) string
}

func verifyCases(b *testing.B) []verifyCase {
	rsaKey, ecKey := newSigningKey(b, "rsa", "RSA"), newSigningKey(b, "ec", "P-256")
	jwks := jwksAuthConfig()
	jwks.JWKSFile = jwksFile(b, rsaKey.jwk, ecKey.jwk)
	return []verifyCase{
		{"HS256", hmacAuthConfig(), hmacToken},
		{"RS256", jwks, func(tb testing.TB, c jwt.MapClaims) string { return rsaKey.sign(tb, jwt.SigningMethodRS256, c) }},
		{"ES256", jwks, func(tb testing.TB, c jwt.MapClaims) string { return ecKey.sign(tb, jwt.SigningMethodES256, c) }},
	}
}

// BenchmarkVerify measures Verify of one valid token: cached (a repeat
// caller: a hash and a cache hit) and uncached (a verifier without cache:
// parsing, signature and claims every time).
func BenchmarkVerify(b *testing.B) {
	eachVerifier(b, func(b *testing.B, v *Verifier, token string) {
		ctx := context.Background()
		if _, err := v.Verify(ctx, token); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(ctx, token); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// eachVerifier runs bench as a sub-benchmark per token kind, cached (a
// verifier with its cache) and uncached (CacheSize 0), with a valid token.
func eachVerifier(b *testing.B, bench func(b *testing.B, v *Verifier, token string)) {
	for _, vc := range verifyCases(b) {
		token := vc.token(b, validClaims(time.Now(), nil))
		for _, mode := range []string{"cached", "uncached"} {
			b.Run(vc.name+"/"+mode, func(b *testing.B) {
				cfg := vc.cfg
				if mode == "uncached" {
					cfg.CacheSize = 0
				}
				bench(b, newTestVerifier(b, cfg, nil), token)
			})
		}
	}
}

// BenchmarkVerifyParallel measures cached Verify from GOMAXPROCS callers,
// each with its own token, in a cache that holds them all: hits take one
// shard's read lock and nothing global.
func BenchmarkVerifyParallel(b *testing.B) {
	const tokens = 1024
	for _, vc := range verifyCases(b) {
		b.Run(vc.name+"/cached", func(b *testing.B) {
			v := newTestVerifier(b, vc.cfg, nil)
			ctx := context.Background()
			all := make([]string, tokens)
			for i := range all {
				all[i] = vc.token(b, validClaims(time.Now(), func(c jwt.MapClaims) { c["sub"] = fmt.Sprint("user", i) }))
				if _, err := v.Verify(ctx, all[i]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for i := 0; pb.Next(); i++ {
					if _, err := v.Verify(ctx, all[i%tokens]); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
