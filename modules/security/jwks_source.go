package security

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

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
	f, err := os.Open(path) //nolint:gosec // G304: the operator names the JWKS file in the configuration
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
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
	defer func() { _ = resp.Body.Close() }()
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
