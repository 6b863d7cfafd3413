package app

import (
	"fmt"
	"os"

	"gopkg.in/yaml.v3"

	"github.com/meshkit/meshkit/internal/config"
	"github.com/meshkit/meshkit/modules/example"
	"github.com/meshkit/meshkit/modules/health"
	"github.com/meshkit/meshkit/modules/httpserver"
	"github.com/meshkit/meshkit/modules/ratelimit"
	"github.com/meshkit/meshkit/modules/ratelimit/admission"
	"github.com/meshkit/meshkit/modules/security"
	"github.com/meshkit/meshkit/modules/telemetry"
)

// Environments SERVICE_ENV may name.
const (
	Development = "development"
	Production  = "production"
)

// Config is the root configuration: one section per module. It is loaded
// from an optional YAML file, then overridden by environment variables.
type Config struct {
	// Env is "development" (default) or "production", which changes some
	// defaults and refuses to start without auth or mTLS.
	Env string `yaml:"env" env:"SERVICE_ENV"`
	// HTTP configures the listeners and request limits.
	HTTP httpserver.Config `yaml:"http"`
	// Health configures readiness and the drain delay.
	Health health.Config `yaml:"health"`
	// Security configures TLS, mutual TLS and bearer tokens.
	Security security.Config `yaml:"security"`
	// RateLimit configures the per-client token buckets and their backend.
	RateLimit ratelimit.Config `yaml:"ratelimit"`
	// Overload configures the admission stage's concurrency limit and queue.
	Overload admission.Config `yaml:"overload"`
	// Telemetry configures logging.
	Telemetry telemetry.Config `yaml:"telemetry"`
	// Example configures the example module.
	Example example.Config `yaml:"example"`
}

// DefaultConfig returns the embedded defaults for an environment.
func DefaultConfig(env string) Config {
	return Config{
		Env:       env,
		HTTP:      httpserver.DefaultConfig(),
		Health:    health.DefaultConfig(env),
		Security:  security.DefaultConfig(),
		RateLimit: ratelimit.DefaultConfig(),
		Overload:  admission.DefaultConfig(),
		Telemetry: telemetry.DefaultConfig(),
	}
}

// Validate checks every section and reports the first invalid setting.
func (c Config) Validate() error {
	if c.Env != Development && c.Env != Production {
		return fmt.Errorf("SERVICE_ENV=%q: must be development or production", c.Env)
	}
	if c.Env == Production && !c.Security.Auth.On() && !c.Security.TLS.MutualTLSOn() {
		return fmt.Errorf("SERVICE_ENV=production: refusing to start with auth off: set bearer-token keys (SERVICE_AUTH_HMAC_SECRET, SERVICE_AUTH_JWKS_FILE or SERVICE_AUTH_JWKS_URL) or mutual TLS (SERVICE_TLS_CLIENT_CA_FILE)")
	}
	// The first error only: LoadConfig's error must stay one line, and
	// errors.Join would put each section's error on its own.
	for _, validate := range []func() error{
		c.HTTP.Validate,
		c.Health.Validate,
		c.Security.Validate,
		c.RateLimit.Validate,
		c.Overload.Validate,
		c.Telemetry.Validate,
		c.Example.Validate,
	} {
		if err := validate(); err != nil {
			return err
		}
	}
	return nil
}

// ConfigSource says where configuration comes from.
type ConfigSource struct {
	// File is a YAML file; "" means SERVICE_CONFIG_FILE, and none if unset.
	File string
	// Lookup reads environment variables. Default: os.LookupEnv.
	Lookup config.LookupFunc
}

// LoadConfig reads the defaults, the YAML file, then the environment, and
// validates the result. Its error is one line naming the variable or file.
func LoadConfig(src ConfigSource) (Config, error) {
	lookup := src.Lookup
	if lookup == nil {
		lookup = os.LookupEnv
	}
	file := src.File
	if file == "" {
		file, _ = lookup("SERVICE_CONFIG_FILE")
	}
	var data []byte
	if file != "" {
		var err error
		if data, err = os.ReadFile(file); err != nil { //nolint:gosec // G304: the operator names the configuration file
			return Config{}, fmt.Errorf("config file: %w", err)
		}
	}

	// The environment picks the defaults, so find it first.
	var head struct {
		Env string `yaml:"env"`
	}
	_ = yaml.Unmarshal(data, &head) // a broken file is reported below
	env := head.Env
	if v, ok := lookup("SERVICE_ENV"); ok {
		env = v
	}
	if env == "" {
		env = Development
	}

	cfg := DefaultConfig(env)
	if err := config.FromYAML(&cfg, data); err != nil {
		return Config{}, fmt.Errorf("config file %s: %w", file, err)
	}
	if err := config.FromEnv(&cfg, lookup); err != nil {
		return Config{}, err
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}
