package httpserver

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshkit/meshkit/internal/conninfo"
	"github.com/meshkit/meshkit/internal/route"
)

// Server is the API listener and the admin listener with their gin engines.
// Build it with [New]; [Server.Start] listens and serves, [Server.Stop] drains.
type Server struct {
	cfg          Config
	log          *slog.Logger
	tlsConfig    *tls.Config
	onServeError func(error)
	// authentication: see RequireAuthentication and WarnUnauthenticated.
	authentication authentication

	api, admin *http.Server
	draining   atomic.Bool // set by StartDraining: responses carry Connection: close
	stopping   atomic.Bool // set by Stop before it closes the listeners
	conns      connStates
	handlers   atomic.Int64 // requests whose handler chain is running

	mu                 sync.Mutex
	apiAddr, adminAddr net.Addr
	listeners          []net.Listener // until Stop closes them
	serving            sync.WaitGroup
}

// Option adjusts a Server built by New.
type Option func(*Server)

// WithTLS serves the API listener over TLS with cfg (the admin listener stays
// plain HTTP).
func WithTLS(cfg *tls.Config) Option {
	return func(s *Server) { s.tlsConfig = cfg }
}

// OnServeError sets what to call when a listener stops serving on its own
// (not through Stop). The Fx module shuts the app down.
func OnServeError(f func(error)) Option {
	return func(s *Server) { s.onServeError = f }
}

// New builds both listeners' engines and servers. middleware is ordered by
// stage, whatever its order here; pass [DefaultMiddleware] among it for the
// server's own stages. It fails on an invalid config or route.
func New(cfg Config, log *slog.Logger, routes []route.Route, middleware []route.Middleware, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, onServeError: func(error) {}}
	for _, opt := range opts {
		opt(s)
	}
	if err := s.checkAuthentication(routes, middleware); err != nil {
		return nil, err
	}
	mws := sortMiddleware(middleware)
	apiEngine, err := newEngine(cfg, route.API, routes, mws, route.Policy{})
	if err != nil {
		return nil, err
	}
	adminEngine, err := newEngine(cfg, route.Admin, routes, mws, route.OperationalPolicy())
	if err != nil {
		return nil, err
	}
	backstop := backstopTimeout(cfg, routes)
	s.api = s.newHTTPServer(apiEngine, backstop)
	var admin http.Handler = adminEngine
	if cfg.AdminPprof {
		admin = withPprof(adminEngine)
	}
	s.admin = s.newHTTPServer(admin, backstop)
	return s, nil
}

func (s *Server) newHTTPServer(h http.Handler, backstop time.Duration) *http.Server {
	return &http.Server{
		Handler:           closeConnections{next: h, draining: &s.draining, maxAge: s.cfg.MaxConnectionAge, running: &s.handlers},
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       cmp.Or(s.cfg.ReadTimeout, backstop),
		WriteTimeout:      cmp.Or(s.cfg.WriteTimeout, backstop),
		IdleTimeout:       s.cfg.IdleTimeout,
		// Over HTTP/2 (TLS with ALPN h2) one connection carries many
		// requests: bound them, as a connection each would be bounded by
		// the client's connections.
		HTTP2: &http.HTTP2Config{MaxConcurrentStreams: s.cfg.MaxConcurrentStreams},
		// net/http's own limit is a backstop at twice the configured one: up to
		// there the limits stage answers 431 with a problem body.
		MaxHeaderBytes: 2 * s.cfg.MaxHeaderBytes,
		ConnState:      s.conns.track,
		// Each connection's information (when it was accepted; the
		// security stage's note of its peer) for its requests.
		ConnContext: func(ctx context.Context, _ net.Conn) context.Context {
			return conninfo.NewContext(ctx, &conninfo.Conn{Accepted: time.Now()})
		},
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// closeConnections asks for each connection to be closed after its response
// once the server is draining, and for a connection older than maxAge (when
// positive): net/http honours a handler's Connection: close, and over HTTP/2
// sends GOAWAY.
//
// It also counts the requests whose handlers are running, for Stop to wait
// for those the shutdown timeout cut off.
type closeConnections struct {
	next     http.Handler
	draining *atomic.Bool
	maxAge   time.Duration
	running  *atomic.Int64
}

func (h closeConnections) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.running.Add(1)
	defer h.running.Add(-1)
	if h.draining.Load() || h.tooOld(r) {
		w.Header().Set("Connection", "close")
	}
	h.next.ServeHTTP(w, r)
}

// tooOld reports whether r's connection has passed the maximum age.
func (h closeConnections) tooOld(r *http.Request) bool {
	if h.maxAge <= 0 {
		return false
	}
	c := conninfo.FromContext(r.Context())
	return c != nil && time.Since(c.Accepted) >= h.maxAge
}

// APIHandler is the API listener's handler, for tests and benchmarks that
// serve in process.
func (s *Server) APIHandler() http.Handler { return s.api.Handler }

// AdminHandler is the admin listener's handler.
func (s *Server) AdminHandler() http.Handler { return s.admin.Handler }

// APIAddr is the API listener's bound address once started, else nil.
func (s *Server) APIAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.apiAddr
}

// AdminAddr is the admin listener's bound address once started, else nil.
func (s *Server) AdminAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.adminAddr
}

// Start binds both listeners and serves them on their own goroutines. A bind
// error (such as a port in use) is returned, naming the variable, and nothing
// is left listening.
func (s *Server) Start(ctx context.Context) error {
	var lc net.ListenConfig
	apiLn, err := lc.Listen(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("httpserver: listen on SERVICE_HTTP_ADDR=%s: %w", s.cfg.Addr, err)
	}
	adminLn, err := lc.Listen(ctx, "tcp", s.cfg.AdminAddr)
	if err != nil {
		_ = apiLn.Close()
		return fmt.Errorf("httpserver: listen on SERVICE_ADMIN_ADDR=%s: %w", s.cfg.AdminAddr, err)
	}
	if s.tlsConfig != nil {
		apiLn = tls.NewListener(apiLn, s.tlsConfig)
	}
	s.mu.Lock()
	s.apiAddr, s.adminAddr = apiLn.Addr(), adminLn.Addr()
	s.listeners = []net.Listener{apiLn, adminLn}
	s.mu.Unlock()
	s.serve("api", s.api, apiLn)
	s.serve("admin", s.admin, adminLn)
	return nil
}

func (s *Server) serve(name string, srv *http.Server, ln net.Listener) {
	s.log.Info("http server listening", slog.String("listener", name), slog.String("addr", ln.Addr().String()),
		slog.Bool("tls", name == "api" && s.tlsConfig != nil))
	s.serving.Add(1)
	go func() {
		defer s.serving.Done()
		err := srv.Serve(ln)
		if err != nil && !errors.Is(err, http.ErrServerClosed) && !s.stopping.Load() {
			s.log.Error("http server stopped serving", slog.String("listener", name), slog.String("error", err.Error()))
			s.onServeError(err)
		}
	}()
}

// StartDraining makes every response from now on carry Connection: close and
// closes its connection after it, on both listeners, while they go on
// serving. The health module calls it when readiness starts failing (it is
// this module's drain hook, check.DrainHooksGroup): keep-alive clients then reconnect, through a load balancer
// that no longer routes here, one response at a time, instead of holding
// connections that Stop would close under them. Idle connections are left
// alone, since closing one races a request the client may be sending on it;
// Stop closes those still idle. It returns at once; calling it again does
// nothing.
func (s *Server) StartDraining() {
	if s.draining.CompareAndSwap(false, true) {
		s.log.Info("http server draining: responses close their connections")
	}
}

// CutOffGrace bounds how long Stop waits, after the shutdown timeout closed
// the connections of requests still running, for their handlers to return
// (their contexts are cancelled): so that the telemetry stopped after the
// server has their spans and access lines.
const CutOffGrace = 2 * time.Second

// Stop stops accepting connections and waits for in-flight requests, at most
// SERVICE_SHUTDOWN_TIMEOUT (or until ctx ends). When requests are still running
// then, their connections are closed, Stop waits at most [CutOffGrace] more
// (within ctx) for their handlers to return, and an error says so.
//
// It closes the listeners itself and waits until every connection is idle
// before it calls http.Server.Shutdown, which closes the idle ones: Shutdown
// alone would drop, unanswered, a request it finds still unread on a
// connection accepted just before the listener closed (golang/go#75591).
// Responses close their connections from the start of Stop, as after
// StartDraining.
func (s *Server) Stop(stopCtx context.Context) error {
	ctx, cancel := context.WithTimeout(stopCtx, s.cfg.ShutdownTimeout)
	defer cancel()
	s.StartDraining()
	s.closeListeners()
	err := s.conns.waitIdle(ctx)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, srv := range []*http.Server{s.api, s.admin} {
		wg.Go(func() {
			if err != nil {
				_ = srv.Close()
				return
			}
			if errs[i] = srv.Shutdown(ctx); errs[i] != nil {
				_ = srv.Close()
			}
		})
	}
	wg.Wait()
	if err := errors.Join(append(errs, err)...); err != nil {
		if n := s.waitHandlers(stopCtx, CutOffGrace); n > 0 {
			s.log.Warn("http server stopped with handlers still running", slog.Int64("handlers", n))
		}
		return fmt.Errorf("httpserver: requests still running when the shutdown timeout (%s) passed: %w", s.cfg.ShutdownTimeout, err)
	}
	s.log.Info("http server stopped")
	return nil
}

// waitHandlers waits until no handler runs, at most grace or until ctx
// ends, and returns how many still run.
func (s *Server) waitHandlers(ctx context.Context, grace time.Duration) int64 {
	ctx, cancel := context.WithTimeout(ctx, grace)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		n := s.handlers.Load()
		if n == 0 {
			return 0
		}
		select {
		case <-ctx.Done():
			return n
		case <-tick.C:
		}
	}
}

// closeListeners closes both listeners, so that new connections are
// refused, and waits until both Serve calls have returned.
func (s *Server) closeListeners() {
	s.stopping.Store(true)
	s.mu.Lock()
	for _, ln := range s.listeners {
		_ = ln.Close()
	}
	s.listeners = nil
	s.mu.Unlock()
	s.serving.Wait()
}

// connStates knows the connections of both listeners that are new (accepted,
// no request read yet) or active (serving a request), from
// http.Server.ConnState.
type connStates struct {
	mu   sync.Mutex
	busy map[net.Conn]struct{}
}

func (c *connStates) track(conn net.Conn, state http.ConnState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch state {
	case http.StateNew, http.StateActive:
		if c.busy == nil {
			c.busy = make(map[net.Conn]struct{})
		}
		c.busy[conn] = struct{}{}
	default:
		delete(c.busy, conn)
	}
}

// waitIdle waits until no connection is new or active, or ctx ends.
func (c *connStates) waitIdle(ctx context.Context) error {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		c.mu.Lock()
		busy := len(c.busy)
		c.mu.Unlock()
		if busy == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("connections still new or active: %d: %w", busy, ctx.Err())
		case <-tick.C:
		}
	}
}
