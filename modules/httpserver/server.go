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
	"time"

	"github.com/meshkit/meshkit/internal/route"
)

// Server is the API listener and the admin listener with their gin engines.
// Build it with [New]; [Server.Start] listens and serves, [Server.Stop] drains.
type Server struct {
	cfg          Config
	log          *slog.Logger
	tlsConfig    *tls.Config
	onServeError func(error)

	api, admin *http.Server

	mu                 sync.Mutex
	apiAddr, adminAddr net.Addr
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
	s.admin = s.newHTTPServer(adminEngine, backstop)
	return s, nil
}

func (s *Server) newHTTPServer(h http.Handler, backstop time.Duration) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       cmp.Or(s.cfg.ReadTimeout, backstop),
		WriteTimeout:      cmp.Or(s.cfg.WriteTimeout, backstop),
		IdleTimeout:       s.cfg.IdleTimeout,
		// net/http's own limit is a backstop at twice the configured one: up to
		// there the limits stage answers 431 with a problem body.
		MaxHeaderBytes: 2 * s.cfg.MaxHeaderBytes,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
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
	s.mu.Lock()
	s.apiAddr, s.adminAddr = apiLn.Addr(), adminLn.Addr()
	s.mu.Unlock()
	if s.tlsConfig != nil {
		apiLn = tls.NewListener(apiLn, s.tlsConfig)
	}
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
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server stopped serving", slog.String("listener", name), slog.String("error", err.Error()))
			s.onServeError(err)
		}
	}()
}

// Stop stops accepting connections and waits for in-flight requests, at most
// SERVICE_SHUTDOWN_TIMEOUT (or until ctx ends). When requests are still running
// then, their connections are closed and an error says so.
func (s *Server) Stop(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ShutdownTimeout)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, srv := range []*http.Server{s.api, s.admin} {
		wg.Go(func() {
			if err := srv.Shutdown(ctx); err != nil {
				errs[i] = err
				_ = srv.Close()
			}
		})
	}
	wg.Wait()
	s.serving.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("httpserver: requests still running when the shutdown timeout (%s) passed: %w", s.cfg.ShutdownTimeout, err)
	}
	s.log.Info("http server stopped")
	return nil
}
