// Package telemetry provides the service's structured logger. (Tracing and
// metrics join it here.)
//
// Swappable with fx.Decorate or fx.Replace: [Config], *slog.Logger.
package telemetry

import (
	"fmt"
	"io"
	"log/slog"
	"os"

	"go.uber.org/fx"
)

// Config configures logging. The YAML section is "telemetry".
type Config struct {
	// LogFormat is "json" (default) or "text" for humans.
	LogFormat string `yaml:"log_format" env:"SERVICE_LOG_FORMAT"`
	// LogLevel is "debug", "info" (default), "warn" or "error".
	LogLevel string `yaml:"log_level" env:"SERVICE_LOG_LEVEL"`
}

// DefaultConfig returns the embedded defaults.
func DefaultConfig() Config {
	return Config{LogFormat: "json", LogLevel: "info"}
}

// Validate reports an invalid setting, naming its variable.
func (c Config) Validate() error {
	if c.LogFormat != "json" && c.LogFormat != "text" {
		return fmt.Errorf("SERVICE_LOG_FORMAT=%q: must be json or text", c.LogFormat)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return fmt.Errorf("SERVICE_LOG_LEVEL=%q: must be debug, info, warn or error", c.LogLevel)
	}
	return nil
}

// NewLogger returns a logger writing to w in the configured format and level.
func NewLogger(cfg Config, w io.Writer) (*slog.Logger, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // checked by Validate
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return slog.New(slog.NewJSONHandler(w, opts)), nil
}

// Module provides the *slog.Logger, writing to standard error.
var Module = fx.Module("telemetry",
	fx.Provide(func(cfg Config) (*slog.Logger, error) { return NewLogger(cfg, os.Stderr) }),
)
