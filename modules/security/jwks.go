package security

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
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

// keySource holds the key set of a JWKS file or URL and loads it again: on
// a schedule (run), and when a token names an unknown kid (key), at most
// once per window. Loads never overlap: a caller that finds one running
// waits for it instead of starting another.
type keySource struct {
	name   string // the file or URL, for errors and logs
	load   func(ctx context.Context) ([]byte, error)
	every  time.Duration // the refresh interval
	window time.Duration // at most one load per window for unknown kids
	log    *slog.Logger

	keys  atomic.Pointer[keySet] // nil until the first load succeeds
	epoch atomic.Uint64          // counts the loads that dropped or changed a key

	mu         sync.Mutex
	running    *loadCall // the load under way, nil when none
	lastForced time.Time // when the last load for an unknown kid started
}

// loadCall is one load of the set; err is set before done is closed.
type loadCall struct {
	done chan struct{}
	err  error
}

// errLoadThrottled is reload's answer to a forced load within the window
// of the last one.
var errLoadThrottled = errors.New("a load for an unknown kid already ran in this window")

const (
	// maxJWKSBytes caps a JWKS document.
	maxJWKSBytes = 1 << 20
	// jwksFirstRetry and jwksMaxRetry bound the wait between failed loads: it
	// doubles from jwksFirstRetry up to jwksMaxRetry or the refresh interval.
	jwksFirstRetry = 250 * time.Millisecond
	jwksMaxRetry   = 30 * time.Second
	// minForcedWindow is the shortest window between loads for unknown kids.
	minForcedWindow = time.Second
)

func newKeySource(cfg AuthConfig, client *http.Client, log *slog.Logger) *keySource {
	s := &keySource{every: cfg.JWKSRefresh, window: max(cfg.JWKSRefresh/10, minForcedWindow), log: log}
	if cfg.JWKSFile != "" {
		s.name, s.load = cfg.JWKSFile, func(context.Context) ([]byte, error) { return readJWKSFile(cfg.JWKSFile) }
	} else {
		s.name, s.load = cfg.JWKSURL, func(ctx context.Context) ([]byte, error) { return fetchJWKS(ctx, client, cfg.JWKSURL) }
	}
	return s
}

// key returns the key for a token's kid and alg. An unknown kid (or no key
// loaded yet) makes it load the set again, once per window, and look again;
// a token without kid never does.
func (s *keySource) key(ctx context.Context, kid, alg string) (crypto.PublicKey, error) {
	set := s.keys.Load()
	k, err := set.lookup(kid, alg)
	if !errors.Is(err, errUnknownKey) || (kid == "" && set != nil) {
		return k, err
	}
	if lerr := s.reload(ctx, true); lerr != nil {
		return nil, fmt.Errorf("%w (reload: %w)", err, lerr)
	}
	return s.keys.Load().lookup(kid, alg)
}

// reload loads the set once, or waits for the load under way and returns
// its error. A forced load (for an unknown kid) that would be the second in
// a window is refused with errLoadThrottled.
func (s *keySource) reload(ctx context.Context, forced bool) error {
	s.mu.Lock()
	if c := s.running; c != nil {
		s.mu.Unlock()
		select {
		case <-c.done:
			return c.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if forced {
		now := time.Now()
		if !s.lastForced.IsZero() && now.Sub(s.lastForced) < s.window {
			s.mu.Unlock()
			return errLoadThrottled
		}
		s.lastForced = now
	}
	c := &loadCall{done: make(chan struct{})}
	s.running = c
	s.mu.Unlock()

	c.err = s.loadOnce(ctx)
	s.mu.Lock()
	s.running = nil
	s.mu.Unlock()
	close(c.done)
	return c.err
}

// loadOnce reads and parses the set and, when it is usable, puts it in use.
// Keys left out are logged in one line. On error the old set stays.
func (s *keySource) loadOnce(ctx context.Context) error {
	data, err := s.load(ctx)
	if err != nil {
		return fmt.Errorf("jwks %s: %w", s.name, err)
	}
	set, ignored, err := parseJWKS(data)
	if len(ignored) > 0 {
		s.log.Warn("jwks: keys ignored", "source", s.name, "keys", strings.Join(ignored, "; "))
	}
	if err != nil {
		return fmt.Errorf("jwks %s: %w", s.name, err)
	}
	// Swap before the epoch moves: a verification that reads the new epoch
	// then finds the new keys.
	if old := s.keys.Swap(set); old != nil && !set.covers(old) {
		s.epoch.Add(1)
	}
	s.log.Debug("jwks: keys loaded", "source", s.name, "keys", len(set.keys))
	return nil
}

// run loads the set until ctx is done: at once when none is loaded yet,
// then every refresh interval. After a failure, which keeps the old set, it
// tries again sooner: after jwksFirstRetry, doubled each time up to
// jwksMaxRetry (or the interval when shorter). It returns when ctx is done.
func (s *keySource) run(ctx context.Context) {
	wait, retry := s.every, jwksFirstRetry
	if s.keys.Load() == nil {
		wait = 0
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		if err := s.reload(ctx, false); err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("jwks: load failed, keeping the keys in use", "error", err, "ready", s.keys.Load() != nil, "retry_in", retry)
			timer.Reset(retry)
			retry = min(retry*2, jwksMaxRetry, s.every)
			continue
		}
		retry = jwksFirstRetry
		timer.Reset(s.every)
	}
}

func readJWKSFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readJWKS(f)
}

func fetchJWKS(ctx context.Context, client *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	return readJWKS(resp.Body)
}

// readJWKS reads a JWKS document whole from r, refusing more than maxJWKSBytes.
func readJWKS(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxJWKSBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxJWKSBytes {
		return nil, fmt.Errorf("more than %d bytes", maxJWKSBytes)
	}
	return data, nil
}
