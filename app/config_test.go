package app_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshkit/meshkit/app"
	"github.com/meshkit/meshkit/internal/config"
	"github.com/meshkit/meshkit/modules/health"
	"github.com/meshkit/meshkit/modules/httpserver"
	"github.com/meshkit/meshkit/modules/telemetry"
)

// env is a fake environment for LoadConfig.
func env(vars map[string]string) config.LookupFunc { return config.MapLookup(vars) }

// loaded is what the default app's sections hold after loading.
type loaded struct {
	Env       string
	HTTP      httpserver.Config
	Health    health.Config
	Telemetry telemetry.Config
}

// loadConfig loads the default app's configuration from src.
func loadConfig(t *testing.T, src config.Source) loaded {
	t.Helper()
	l, err := app.LoadConfig(src)
	if err != nil {
		t.Fatal(err)
	}
	return loaded{
		Env:       l.Env(),
		HTTP:      section[httpserver.Config](t, l, "http"),
		Health:    section[health.Config](t, l, "health"),
		Telemetry: section[telemetry.Config](t, l, "telemetry"),
	}
}

func section[T any](t *testing.T, l *config.Loaded, key string) T {
	t.Helper()
	v, err := config.ValueOf[T](l, key)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadConfigDefaults(t *testing.T) {
	cfg := loadConfig(t, config.Source{Lookup: env(nil)})
	if cfg.Env != "development" || cfg.HTTP.Addr != ":8080" || cfg.HTTP.AdminAddr != ":9090" ||
		cfg.HTTP.MaxBodyBytes != 1048576 || cfg.HTTP.RequestTimeout != 30*time.Second ||
		cfg.HTTP.ShutdownTimeout != 30*time.Second || cfg.Health.DrainDelay != 0 ||
		len(cfg.HTTP.TrustedProxies) != 0 || len(cfg.HTTP.CORS.AllowedOrigins) != 0 {
		t.Errorf("defaults = %+v, not the contract's", cfg)
	}
}

// devSecret is an HS256 key long enough for SERVICE_AUTH_HMAC_SECRET.
const devSecret = "0123456789abcdef0123456789abcdef"

func TestLoadConfigProductionDrainDelay(t *testing.T) {
	cfg := loadConfig(t, config.Source{Lookup: env(map[string]string{"SERVICE_ENV": "production", "SERVICE_AUTH_HMAC_SECRET": devSecret, "SERVICE_AUTH_AUDIENCE": "meshkit"})})
	if cfg.Health.DrainDelay != 5*time.Second {
		t.Errorf("production drain delay = %v, want 5s", cfg.Health.DrainDelay)
	}
	// From the file too, and an explicit value wins.
	file := writeFile(t, "env: production\nhealth:\n  drain_delay: 2s\nsecurity:\n  auth:\n    audience: meshkit\n    hmac_secret: "+devSecret+"\n")
	cfg = loadConfig(t, config.Source{File: file, Lookup: env(nil)})
	if cfg.Env != "production" || cfg.Health.DrainDelay != 2*time.Second {
		t.Errorf("env %q, drain delay %v; want production, 2s", cfg.Env, cfg.Health.DrainDelay)
	}
}

func TestLoadConfigFileThenEnvironment(t *testing.T) {
	file := writeFile(t, `
http:
  addr: 127.0.0.1:7000
  admin_addr: 127.0.0.1:7001
  request_timeout: 5s
  trusted_proxies: [10.0.0.0/8]
  cors:
    allowed_origins: ["https://a.example"]
telemetry:
  log_format: text
`)
	cfg := loadConfig(t, config.Source{Lookup: env(map[string]string{
		"SERVICE_CONFIG_FILE":          file,
		"SERVICE_HTTP_ADDR":            "127.0.0.1:7100",
		"SERVICE_TRUSTED_PROXIES":      " 10.1.0.0/16 , 192.168.0.1 ,",
		"SERVICE_CORS_ALLOWED_ORIGINS": "https://b.example,https://c.example",
	})})
	if cfg.HTTP.Addr != "127.0.0.1:7100" || cfg.HTTP.AdminAddr != "127.0.0.1:7001" || cfg.HTTP.RequestTimeout != 5*time.Second ||
		cfg.Telemetry.LogFormat != "text" || strings.Join(cfg.HTTP.TrustedProxies, "|") != "10.1.0.0/16|192.168.0.1" ||
		strings.Join(cfg.HTTP.CORS.AllowedOrigins, "|") != "https://b.example|https://c.example" {
		t.Errorf("got %+v; want file values overridden by the environment", cfg)
	}
}

func TestLoadConfigErrorsNameTheSetting(t *testing.T) {
	tests := []struct {
		name string
		file string
		vars map[string]string
		want string
	}{
		{"bad duration", "", map[string]string{"SERVICE_HTTP_REQUEST_TIMEOUT": "3x"}, "SERVICE_HTTP_REQUEST_TIMEOUT"},
		{"negative body cap", "", map[string]string{"SERVICE_HTTP_MAX_BODY_BYTES": "-1"}, "SERVICE_HTTP_MAX_BODY_BYTES"},
		{"non-numeric body cap", "", map[string]string{"SERVICE_HTTP_MAX_BODY_BYTES": "lots"}, "SERVICE_HTTP_MAX_BODY_BYTES"},
		{"zero timeout", "", map[string]string{"SERVICE_SHUTDOWN_TIMEOUT": "0s"}, "SERVICE_SHUTDOWN_TIMEOUT"},
		{"negative drain delay", "", map[string]string{"SERVICE_SHUTDOWN_DRAIN_DELAY": "-1s"}, "SERVICE_SHUTDOWN_DRAIN_DELAY"},
		{"unknown env", "", map[string]string{"SERVICE_ENV": "staging"}, "SERVICE_ENV"},
		{"production without auth", "", map[string]string{"SERVICE_ENV": "production"}, "SERVICE_ENV=production: refusing to start with auth off"},
		{"key without certificate", "", map[string]string{"SERVICE_TLS_KEY_FILE": "k.pem"}, "SERVICE_TLS_CERT_FILE"},
		{"client CA without TLS", "", map[string]string{"SERVICE_TLS_CLIENT_CA_FILE": "ca.pem"}, "SERVICE_TLS_CLIENT_CA_FILE"},
		{"bad SPIFFE ID", "", map[string]string{"SERVICE_TLS_CERT_FILE": "c", "SERVICE_TLS_KEY_FILE": "k", "SERVICE_TLS_CLIENT_CA_FILE": "ca", "SERVICE_TLS_ALLOWED_SPIFFE_IDS": "https://x"}, "SERVICE_TLS_ALLOWED_SPIFFE_IDS"},
		{"short HMAC secret", "", map[string]string{"SERVICE_AUTH_HMAC_SECRET": "short"}, "SERVICE_AUTH_HMAC_SECRET"},
		{"HMAC and JWKS mixed", "", map[string]string{"SERVICE_AUTH_HMAC_SECRET": devSecret, "SERVICE_AUTH_JWKS_FILE": "jwks.json"}, "cannot be mixed"},
		{"leeway over a minute", "", map[string]string{"SERVICE_AUTH_LEEWAY": "2m"}, "SERVICE_AUTH_LEEWAY"},
		{"bad address", "", map[string]string{"SERVICE_HTTP_ADDR": "8080"}, "SERVICE_HTTP_ADDR"},
		{"same addresses", "", map[string]string{"SERVICE_HTTP_ADDR": ":9000", "SERVICE_ADMIN_ADDR": ":9000"}, "SERVICE_ADMIN_ADDR"},
		{"bad proxy", "", map[string]string{"SERVICE_TRUSTED_PROXIES": "10.0.0.0/8,proxy.local"}, "SERVICE_TRUSTED_PROXIES"},
		{"bad origin", "", map[string]string{"SERVICE_CORS_ALLOWED_ORIGINS": "example.com"}, "SERVICE_CORS_ALLOWED_ORIGINS"},
		{"wildcard with credentials", "", map[string]string{"SERVICE_CORS_ALLOWED_ORIGINS": "*", "SERVICE_CORS_ALLOW_CREDENTIALS": "true"}, "SERVICE_CORS_ALLOWED_ORIGINS"},
		{"bad boolean", "", map[string]string{"SERVICE_CORS_ALLOW_CREDENTIALS": "sure"}, "SERVICE_CORS_ALLOW_CREDENTIALS"},
		{"bad log level", "", map[string]string{"SERVICE_LOG_LEVEL": "loud"}, "SERVICE_LOG_LEVEL"},
		{"rate limit rate 0", "", map[string]string{"SERVICE_RATELIMIT_RATE": "0"}, "SERVICE_RATELIMIT_RATE"},
		{"rate limit burst 0", "", map[string]string{"SERVICE_RATELIMIT_BURST": "0"}, "SERVICE_RATELIMIT_BURST"},
		{"rate limit period", "", map[string]string{"SERVICE_RATELIMIT_PERIOD": "-1m"}, "SERVICE_RATELIMIT_PERIOD"},
		{"rate limit backend", "", map[string]string{"SERVICE_RATELIMIT_BACKEND": "etcd"}, "SERVICE_RATELIMIT_BACKEND"},
		{"rate limit failure mode", "", map[string]string{"SERVICE_RATELIMIT_FAILURE_MODE": "maybe"}, "SERVICE_RATELIMIT_FAILURE_MODE"},
		{"rate limit local share", "", map[string]string{"SERVICE_RATELIMIT_LOCAL_SHARE": "1.5"}, "SERVICE_RATELIMIT_LOCAL_SHARE"},
		{"redis timeout", "", map[string]string{"SERVICE_RATELIMIT_BACKEND": "redis", "SERVICE_REDIS_TIMEOUT": "0s"}, "SERVICE_REDIS_TIMEOUT"},
		{"key prefix with a hash tag", "", map[string]string{"SERVICE_RATELIMIT_BACKEND": "redis", "SERVICE_RATELIMIT_KEY_PREFIX": "rl{x}"}, "SERVICE_RATELIMIT_KEY_PREFIX"},
		{"rate limit in file", "ratelimit:\n  burst: 0\n", nil, "SERVICE_RATELIMIT_BURST"},
		{"unknown key in file", "http:\n  adress: :1\n", nil, "adress"}, //nolint:misspell // the misspelt key is the test
		{"unknown section in file", "htp:\n  addr: :1\n", nil, "htp (line 1): unknown setting (the sections are: env, "},
		{"bad duration in file", "http:\n  request_timeout: 3x\n", nil, "request_timeout"},
		{"not YAML", "http: [", nil, "config file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := config.Source{Lookup: env(tt.vars)}
			if tt.file != "" {
				src.File = writeFile(t, tt.file)
			}
			_, err := app.LoadConfig(src)
			if err == nil {
				t.Fatal("LoadConfig succeeded, want an error")
			}
			if _, ok := errors.AsType[*config.Error](err); !ok {
				t.Errorf("error %q is a %T, want a *config.Error", err, err)
			}
			if msg := err.Error(); !strings.Contains(msg, tt.want) || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line naming %q", msg, tt.want)
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		_, err := app.LoadConfig(config.Source{File: filepath.Join(t.TempDir(), "nope.yaml"), Lookup: env(nil)})
		if err == nil || !strings.Contains(err.Error(), "nope.yaml") {
			t.Errorf("error %v, want one naming the file", err)
		}
	})
}
