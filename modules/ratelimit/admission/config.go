package admission

import (
	"fmt"
	"time"
)

// Config configures overload admission. The YAML section is "overload".
type Config struct {
	// MaxInflight, when above 0, fixes the concurrency limit; 0 (the
	// default) lets it adapt to latency between MinLimit and MaxLimit.
	MaxInflight int `yaml:"max_inflight" env:"SERVICE_OVERLOAD_MAX_INFLIGHT"`
	// InitialLimit is the adaptive limit at start-up. Default 50.
	InitialLimit int `yaml:"initial_limit" env:"SERVICE_OVERLOAD_INITIAL_LIMIT"`
	// MinLimit and MaxLimit bound the adaptive limit. Default 10 and 1000.
	MinLimit int `yaml:"min_limit" env:"SERVICE_OVERLOAD_MIN_LIMIT"`
	MaxLimit int `yaml:"max_limit" env:"SERVICE_OVERLOAD_MAX_LIMIT"`
	// MaxPerClient is the most of the limit one client (its principal, else
	// its address, as the rate limiter keys it) may hold while others need
	// the rest; past it, its requests wait behind the others' and are shed
	// first. 0 (the default): an eighth of the limit, at least 4.
	MaxPerClient int `yaml:"max_per_client" env:"SERVICE_OVERLOAD_MAX_PER_CLIENT"`
	// QueueSize bounds the requests that wait for admission once the limit
	// is reached. 0: none wait. Default 100.
	QueueSize int `yaml:"queue_size" env:"SERVICE_OVERLOAD_QUEUE_SIZE"`
	// QueueTimeout bounds a request's wait (its deadline too, if sooner).
	// Default 100ms.
	QueueTimeout time.Duration `yaml:"queue_timeout" env:"SERVICE_OVERLOAD_QUEUE_TIMEOUT"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{InitialLimit: 50, MinLimit: 10, MaxLimit: 1000, QueueSize: 100, QueueTimeout: 100 * time.Millisecond}
}

// Validate reports an invalid setting, naming its variable.
func (c Config) Validate() error {
	switch {
	case c.MaxInflight < 0:
		return fmt.Errorf("SERVICE_OVERLOAD_MAX_INFLIGHT=%d: must be 0 (adaptive) or more", c.MaxInflight)
	case c.MinLimit < 1:
		return fmt.Errorf("SERVICE_OVERLOAD_MIN_LIMIT=%d: must be at least 1", c.MinLimit)
	case c.MaxLimit < c.MinLimit:
		return fmt.Errorf("SERVICE_OVERLOAD_MAX_LIMIT=%d: must be at least SERVICE_OVERLOAD_MIN_LIMIT (%d)", c.MaxLimit, c.MinLimit)
	case c.InitialLimit < c.MinLimit || c.InitialLimit > c.MaxLimit:
		return fmt.Errorf("SERVICE_OVERLOAD_INITIAL_LIMIT=%d: must be between SERVICE_OVERLOAD_MIN_LIMIT (%d) and SERVICE_OVERLOAD_MAX_LIMIT (%d)",
			c.InitialLimit, c.MinLimit, c.MaxLimit)
	case c.MaxPerClient < 0:
		return fmt.Errorf("SERVICE_OVERLOAD_MAX_PER_CLIENT=%d: must be 0 (an eighth of the limit) or more", c.MaxPerClient)
	case c.QueueSize < 0:
		return fmt.Errorf("SERVICE_OVERLOAD_QUEUE_SIZE=%d: must not be negative", c.QueueSize)
	case c.QueueTimeout < 0:
		return fmt.Errorf("SERVICE_OVERLOAD_QUEUE_TIMEOUT=%s: must not be negative", c.QueueTimeout)
	}
	return nil
}

// NewController returns the controller c describes.
func (c Config) NewController() *Controller {
	o := ControllerOptions{Fixed: c.MaxInflight, MaxPerClient: c.MaxPerClient, QueueSize: c.QueueSize, QueueTimeout: c.QueueTimeout}
	if c.MaxInflight == 0 {
		o.Limit = NewLimit(c.InitialLimit, c.MinLimit, c.MaxLimit)
	}
	return NewController(o)
}
