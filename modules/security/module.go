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
// HTTP server uses; *[Verifier] (Example_swapVerifier).
// fx.Decorate(func(v T) T {...}) receives the module's value and returns
// yours; fx.Replace(v) puts v in its place when v's static type is T. For an
// interface T, say so: fx.Replace(fx.Annotate(v, fx.As(new(T)))). A plain
// fx.Replace(v) with v an interface-typed variable replaces v's dynamic
// type, which nothing asks for, and silently changes nothing.
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
// *TLS that makes it, the *Verifier (nil without tokens), the security
// stage, the verifier's readiness and the TLS material's health on the
// probes, and the certificate's time to expiry as a gauge.
var Module = fx.Module("security",
	config.Provide("security", config.AnyEnv(DefaultConfig)),
	fx.Provide(
		NewFx,
		middlewareFx,
		componentsFx,
	),
)

// Params are what [NewFx] needs.
type Params struct {
	fx.In

	Lifecycle fx.Lifecycle
	Config    Config
	Log       *slog.Logger
	// MeterProvider, from the telemetry module when it is there, gets the
	// gauge tls.certificate.time_to_expiry.
	MeterProvider metric.MeterProvider `optional:"true"`
}

// Result is what [NewFx] provides.
type Result struct {
	fx.Out

	// TLSConfig serves the API over TLS; nil without TLS.
	TLSConfig *tls.Config
	// TLS is the source of TLSConfig's material; nil without TLS.
	TLS *TLS
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
		r.TLSConfig, r.TLS = t.Config(), t
		if p.MeterProvider != nil {
			if err := t.registerMetrics(p.MeterProvider); err != nil {
				return Result{}, fmt.Errorf("security: TLS metrics: %w", err)
			}
		}
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
		slog.String("tls_source", cfg.TLS.Source), slog.String("trust_domain", cfg.TLS.TrustDomain),
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
	TLS           *TLS
	Charger       attempt.Charger `optional:"true"`
	Log           *slog.Logger
	MeterProvider metric.MeterProvider `optional:"true"`
}

func middlewareFx(p MiddlewareParams) (route.MiddlewareOut, error) {
	s := Stage{MutualTLS: p.Config.TLS.MutualTLSOn(), Peers: p.TLS, Verifier: p.Verifier, Charger: p.Charger, Log: p.Log}
	if p.MeterProvider != nil {
		m, err := NewMetrics(p.MeterProvider)
		if err != nil {
			return route.MiddlewareOut{}, fmt.Errorf("security: metrics: %w", err)
		}
		s.Metrics = m
	}
	return route.MiddlewareOut{Middleware: s.Middleware()}, nil
}

// componentsFx reports on the probes whether the token keys are loaded
// (the service is not ready before it can check a token), and the TLS
// material's health (see [TLS.Health]).
func componentsFx(v *Verifier, t *TLS) check.ComponentsOut {
	var cs []check.Component
	if v != nil {
		cs = append(cs, check.Component{Name: "auth", Critical: true, State: func() check.State {
			if v.Ready() {
				return check.State{Status: check.Pass}
			}
			return check.State{Status: check.Fail, Details: map[string]any{"keys": "not loaded yet"}}
		}})
	}
	if t != nil {
		cs = append(cs, check.Component{Name: "tls", State: t.Health})
	}
	return check.ComponentsOut{Components: cs}
}
