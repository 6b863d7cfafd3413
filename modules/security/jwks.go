package security

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
)

// Errors of a key lookup, which Verify turns into a TokenError's Reason.
var (
	// errUnknownKey: the set has no key of the token's kid, or the token
	// names no kid and the set does not hold exactly one key.
	errUnknownKey = errors.New("no key for the token's kid")
	// errKeyAlgorithm: the token's kid names keys, none of which may verify
	// the token's alg (another key type or curve, or the key's own "alg").
	errKeyAlgorithm = errors.New("the token's alg does not fit its key")
)

// minRSABits is the smallest RSA modulus a JWKS key may have.
const minRSABits = 2048

// jwksAlgorithms returns the algorithms a JWKS key source allows. HS256 is
// never among them: an HMAC secret is a separate key source.
func jwksAlgorithms() []string {
	return []string{
		"RS256", "RS384", "RS512",
		"PS256", "PS384", "PS512",
		"ES256", "ES384", "ES512",
		"EdDSA",
	}
}

// verificationKey is a public key of a JWKS and what it may verify.
type verificationKey struct {
	kid string
	alg string           // the JWK's "alg"; "" when it names none
	key crypto.PublicKey // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

// fits reports whether k may verify a token signed with alg: RS* and PS*
// need an RSA key, ES256/384/512 an EC key on P-256/384/521, EdDSA an
// Ed25519 key; and the JWK's own "alg", when it has one, must be alg.
func (k verificationKey) fits(alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch pk := k.key.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		return alg == ecAlgorithm(pk.Curve)
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// equal reports whether k and o are the same key with the same binding.
func (k verificationKey) equal(o verificationKey) bool {
	eq, ok := k.key.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.kid == o.kid && k.alg == o.alg && eq.Equal(o.key)
}

func ecAlgorithm(c elliptic.Curve) string {
	switch c {
	case elliptic.P256():
		return "ES256"
	case elliptic.P384():
		return "ES384"
	case elliptic.P521():
		return "ES512"
	}
	return ""
}

// keySet is a parsed JWKS: its usable keys, by kid. It is never modified
// once made, so readers share it without locks.
type keySet struct {
	keys  []verificationKey
	byKID map[string][]verificationKey
}

// lookup returns the key that verifies a token with kid and alg. A token
// without kid is accepted only when the set holds exactly one key: with
// several, the kid is required. A nil set has no keys.
func (s *keySet) lookup(kid, alg string) (crypto.PublicKey, error) {
	var candidates []verificationKey
	switch {
	case s == nil:
	case kid != "":
		candidates = s.byKID[kid]
	case len(s.keys) == 1:
		candidates = s.keys
	}
	if len(candidates) == 0 {
		return nil, errUnknownKey
	}
	for _, k := range candidates {
		if k.fits(alg) {
			return k.key, nil
		}
	}
	return nil, errKeyAlgorithm
}

// covers reports whether s holds every key of old, unchanged: when it does
// not, a token verified with old may no longer be valid.
func (s *keySet) covers(old *keySet) bool {
	for _, k := range old.keys {
		if !slices.ContainsFunc(s.byKID[k.kid], k.equal) {
			return false
		}
	}
	return true
}

// jwk is a JSON Web Key's members that verification uses (RFC 7517, 7518,
// 8037).
type jwk struct {
	Kty string `json:"kty"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// parseJWKS parses a JSON Web Key Set. Keys it cannot use (use other than
// "sig", an unsupported kty or curve, an alg outside jwksAlgorithms, an RSA
// modulus under 2048 bits, a point off its curve, no kid in a set of
// several) are left out and described in ignored. It fails when the
// document is not a JWKS or no key is usable.
func parseJWKS(data []byte) (set *keySet, ignored []string, err error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, nil, fmt.Errorf("not a JWKS: %w", err)
	}
	set = &keySet{byKID: make(map[string][]verificationKey)}
	for i, raw := range doc.Keys {
		k, err := parseJWK(raw)
		if err != nil {
			ignored = append(ignored, fmt.Sprintf("key %d: %v", i, err))
			continue
		}
		set.keys = append(set.keys, k)
	}
	if len(set.keys) > 1 {
		set.keys = slices.DeleteFunc(set.keys, func(k verificationKey) bool {
			if k.kid == "" {
				ignored = append(ignored, "a key without kid in a set of several")
			}
			return k.kid == ""
		})
	}
	if len(set.keys) == 0 {
		return nil, ignored, fmt.Errorf("no usable key among %d", len(doc.Keys))
	}
	for _, k := range set.keys {
		set.byKID[k.kid] = append(set.byKID[k.kid], k)
	}
	return set, ignored, nil
}

// parseJWK parses one key of a set; its error says why the key is ignored.
func parseJWK(raw []byte) (verificationKey, error) {
	var j jwk
	if err := json.Unmarshal(raw, &j); err != nil {
		return verificationKey{}, fmt.Errorf("not a JWK: %w", err)
	}
	k := verificationKey{kid: j.Kid, alg: j.Alg}
	if j.Use != "" && j.Use != "sig" {
		return k, fmt.Errorf("kid %q: use %q, not sig", j.Kid, j.Use)
	}
	if j.Alg != "" && !slices.Contains(jwksAlgorithms(), j.Alg) {
		return k, fmt.Errorf("kid %q: alg %q not allowed", j.Kid, j.Alg)
	}
	var err error
	switch j.Kty {
	case "RSA":
		k.key, err = rsaKey(j)
	case "EC":
		k.key, err = ecKey(j)
	case "OKP":
		k.key, err = ed25519Key(j)
	default:
		err = fmt.Errorf("unsupported kty %q", j.Kty)
	}
	if err != nil {
		return k, fmt.Errorf("kid %q: %w", j.Kid, err)
	}
	if j.Alg != "" && !k.fits(j.Alg) {
		return k, fmt.Errorf("kid %q: alg %q does not fit a %s key", j.Kid, j.Alg, j.Kty)
	}
	return k, nil
}

func rsaKey(j jwk) (*rsa.PublicKey, error) {
	n, err := decodeMember("n", j.N)
	if err != nil {
		return nil, err
	}
	e, err := decodeMember("e", j.E)
	if err != nil {
		return nil, err
	}
	if len(e) > 4 {
		return nil, errors.New("RSA exponent too large")
	}
	exp := new(big.Int).SetBytes(e).Int64()
	if exp < 3 || exp > 1<<31-1 || exp%2 == 0 {
		return nil, fmt.Errorf("RSA exponent %d: not an odd number from 3 to 2^31-1", exp)
	}
	key := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(exp)}
	if bits := key.N.BitLen(); bits < minRSABits {
		return nil, fmt.Errorf("RSA modulus of %d bits, under %d", bits, minRSABits)
	}
	return key, nil
}

func ecKey(j jwk) (*ecdsa.PublicKey, error) {
	var curve elliptic.Curve
	switch j.Crv {
	case "P-256":
		curve = elliptic.P256()
	case "P-384":
		curve = elliptic.P384()
	case "P-521":
		curve = elliptic.P521()
	default:
		return nil, fmt.Errorf("unsupported EC crv %q", j.Crv)
	}
	size := (curve.Params().BitSize + 7) / 8
	x, err := decodeMember("x", j.X)
	if err != nil {
		return nil, err
	}
	y, err := decodeMember("y", j.Y)
	if err != nil {
		return nil, err
	}
	if len(x) != size || len(y) != size {
		return nil, fmt.Errorf("%s coordinates must be %d bytes", j.Crv, size)
	}
	point := append(append([]byte{4}, x...), y...)
	key, err := ecdsa.ParseUncompressedPublicKey(curve, point)
	if err != nil {
		return nil, fmt.Errorf("%s point: %w", j.Crv, err)
	}
	return key, nil
}

func ed25519Key(j jwk) (ed25519.PublicKey, error) {
	if j.Crv != "Ed25519" {
		return nil, fmt.Errorf("unsupported OKP crv %q", j.Crv)
	}
	x, err := decodeMember("x", j.X)
	if err != nil {
		return nil, err
	}
	if len(x) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("Ed25519 x must be %d bytes", ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(x), nil
}

// decodeMember decodes a key member: base64url without padding, not empty.
func decodeMember(name, s string) ([]byte, error) {
	if s == "" {
		return nil, fmt.Errorf("no %q", name)
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", name, err)
	}
	return b, nil
}
