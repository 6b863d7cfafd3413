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
	lastForced time.Time // when the last load for an unknown kid started (moved back when it failed)
	// loads waits for the detached loads (see key) on Stop.
	loads sync.WaitGroup
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
	// minForcedWindow and maxForcedWindow bound the window between loads
	// for unknown kids: a tenth of the refresh interval within them, so that
	// a rotated key is accepted within seconds.
	minForcedWindow = time.Second
	maxForcedWindow = 5 * time.Second
	// forcedLoadTimeout bounds a load for an unknown kid, which runs detached
	// from the request that asked for it.
	forcedLoadTimeout = 10 * time.Second
)

func newKeySource(cfg AuthConfig, client *http.Client, log *slog.Logger) *keySource {
	window := min(max(cfg.JWKSRefresh/10, minForcedWindow), maxForcedWindow)
	s := &keySource{every: cfg.JWKSRefresh, window: window, log: log}
	if cfg.JWKSFile != "" {
		s.name, s.load = cfg.JWKSFile, func(context.Context) ([]byte, error) { return readJWKSFile(cfg.JWKSFile) }
	} else {
		client = safeRedirects(client)
		s.name, s.load = cfg.JWKSURL, func(ctx context.Context) ([]byte, error) { return fetchJWKS(ctx, client, cfg.JWKSURL) }
	}
	return s
}

// key returns the key for a token's kid and alg. An unknown kid (or no key
// loaded yet) makes it load the set again, once per window, and look again;
// a token without kid never does. The load runs detached from ctx, under
// its own timeout: a caller that gives up (ctx ends) stops waiting, not the
// load, so that it cannot make the load fail.
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
// its error; it stops waiting when ctx ends. A forced load (for an unknown
// kid) that would be the second in a window is refused with
// errLoadThrottled; it runs detached from ctx, and when it fails the window
// is given back but for jwksFirstRetry, so that the next unknown kid may try
// again soon while a failing key server is not asked more often than that.
func (s *keySource) reload(ctx context.Context, forced bool) error {
	s.mu.Lock()
	if c := s.running; c != nil {
		s.mu.Unlock()
		return c.wait(ctx)
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

	if !forced {
		s.finish(c, s.loadOnce(ctx), forced)
		return c.err
	}
	s.loads.Go(func() {
		lctx, cancel := context.WithTimeout(context.Background(), forcedLoadTimeout)
		defer cancel()
		s.finish(c, s.loadOnce(lctx), forced)
	})
	return c.wait(ctx)
}

// finish ends the load c with err.
func (s *keySource) finish(c *loadCall, err error, forced bool) {
	s.mu.Lock()
	s.running = nil
	if forced && err != nil {
		s.lastForced = time.Now().Add(jwksFirstRetry - s.window) // the next forced load in jwksFirstRetry
	}
	s.mu.Unlock()
	c.err = err
	close(c.done)
}

// wait waits for c's end, or ctx's.
func (c *loadCall) wait(ctx context.Context) error {
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	}
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

// errRedirectRefused is the fetch's error for a redirect to another host or
// from https to http.
var errRedirectRefused = errors.New("redirect refused")

// maxJWKSRedirects bounds the redirects a JWKS fetch follows.
const maxJWKSRedirects = 3

// safeRedirects returns client with a redirect policy that follows at most
// maxJWKSRedirects redirects, each to the same host, never from https to
// http: whoever could make the fetch go elsewhere could serve keys.
func safeRedirects(client *http.Client) *http.Client {
	c := *client
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		first := via[0].URL
		switch {
		case len(via) > maxJWKSRedirects:
			return fmt.Errorf("%w: more than %d", errRedirectRefused, maxJWKSRedirects)
		case req.URL.Host != first.Host:
			return fmt.Errorf("%w: to another host (%s)", errRedirectRefused, req.URL.Host)
		case first.Scheme == "https" && req.URL.Scheme != "https":
			return fmt.Errorf("%w: from https to %s", errRedirectRefused, req.URL.Scheme)
		}
		return nil
	}
	return &c
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
