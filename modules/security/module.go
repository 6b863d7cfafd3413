// Package security authenticates callers of the API, the way a mesh sidecar
// would, inside the process: TLS with certificates that rotate without a
// restart, mutual TLS with SPIFFE authorization of the peer, and bearer
// tokens (JWT) checked against an HMAC secret or a JSON Web Key Set. What a
// caller proved becomes the request's principal.Principal.
//
// Routes whose policy is Public (the probes always are) skip the stage; the
// TLS handshake still applies to them. With neither tokens nor mutual TLS
// configured the stage authenticates nothing: the HTTP server warns at
// start-up, and refuses to start in production (so does this section's
// ValidateEnv, naming the settings).
//
// Swappable with fx.Decorate or fx.Replace: [Config]; the *tls.Config the
// HTTP server uses; *[Verifier].
package security

import (
	"crypto/tls"
	"fmt"
	"log/slog"

	"go.opentelemetry.io/otel/metric"
	"go.uber.org/fx"

	"github.com/meshkit/meshkit/internal/attempt"
	"github.com/meshkit/meshkit/internal/check"
	"github.com/meshkit/meshkit/internal/config"
	"github.com/meshkit/meshkit/internal/route"
)

// Module provides the API listener's *tls.Config (nil without TLS), the
// *Verifier (nil without tokens), the security stage, and the verifier's
// readiness on /readyz.
var Module = fx.Module("security",
	config.Provide("security", config.AnyEnv(DefaultConfig)),
	fx.Provide(
		NewFx,
		route.AsMiddleware(middlewareFx),
		check.AsComponents(componentsFx),
	),
)

// Params are what [NewFx] needs.
type Params struct {
	fx.In

	Lifecycle fx.Lifecycle
	Config    Config
	Log       *slog.Logger
}

// Result is what [NewFx] provides.
type Result struct {
	fx.Out

	// TLSConfig serves the API over TLS; nil without SERVICE_TLS_CERT_FILE.
	TLSConfig *tls.Config
	// Verifier checks bearer tokens; nil without a key source.
	Verifier *Verifier
}

// NewFx loads the certificates and the token keys of the configuration, and
// ties their reloading to the app's lifecycle.
func NewFx(p Params) (Result, error) {
	cfg := p.Config
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	var r Result
	if cfg.TLS.TLSOn() {
		t, err := NewTLS(cfg.TLS, p.Log)
		if err != nil {
			return Result{}, err
		}
		p.Lifecycle.Append(fx.StartStopHook(t.Start, t.Stop))
		r.TLSConfig = t.Config()
	}
	if cfg.Auth.On() {
		v, err := NewVerifier(cfg.Auth, nil, p.Log)
		if err != nil {
			return Result{}, err
		}
		p.Lifecycle.Append(fx.StartStopHook(v.Start, v.Stop))
		r.Verifier = v
	}
	p.Log.Info("security", slog.Bool("tls", cfg.TLS.TLSOn()), slog.Bool("mutual_tls", cfg.TLS.MutualTLSOn()),
		slog.Int("allowed_spiffe_ids", len(cfg.TLS.AllowedSPIFFEIDs)), slog.Bool("bearer_tokens", cfg.Auth.On()))
	return r, nil
}

// MiddlewareParams are what the security stage needs; the charger comes
// from the rate limiter when it is there, the meter provider for its
// [Metrics] from the telemetry module.
type MiddlewareParams struct {
	fx.In

	Config        Config
	Verifier      *Verifier
	Charger       attempt.Charger `optional:"true"`
	Log           *slog.Logger
	MeterProvider metric.MeterProvider `optional:"true"`
}

func middlewareFx(p MiddlewareParams) ([]route.Middleware, error) {
	s := Stage{MutualTLS: p.Config.TLS.MutualTLSOn(), Verifier: p.Verifier, Charger: p.Charger, Log: p.Log}
	if p.MeterProvider != nil {
		m, err := NewMetrics(p.MeterProvider)
		if err != nil {
			return nil, fmt.Errorf("security: metrics: %w", err)
		}
		s.Metrics = m
	}
	return s.Middleware(), nil
}

// componentsFx reports on /readyz whether the token keys are loaded: the
// service is not ready before it can check a token.
func componentsFx(v *Verifier) []check.Component {
	if v == nil {
		return nil
	}
	return []check.Component{{Name: "auth", Critical: true, State: func() check.State {
		if v.Ready() {
			return check.State{Status: check.Pass}
		}
		return check.State{Status: check.Fail, Details: map[string]any{"keys": "not loaded yet"}}
	}}}
}
