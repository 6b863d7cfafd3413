package ratelimit

import (
	"fmt"
	"strings"
	"time"
)

// Backends SERVICE_RATELIMIT_BACKEND may name.
const (
	BackendMemory = "memory"
	BackendRedis  = "redis"
)

// FailureMode is what the Redis limiter does while Redis is unreachable.
type FailureMode string

// The failure modes SERVICE_RATELIMIT_FAILURE_MODE may name.
const (
	// FailLocal decides with a local bucket at a share of the rate
	// (SERVICE_RATELIMIT_LOCAL_SHARE) until Redis is back.
	FailLocal FailureMode = "local"
	// FailOpen admits every request, and counts it.
	FailOpen FailureMode = "open"
	// FailClosed answers 503 with Retry-After.
	FailClosed FailureMode = "closed"
)

// Config configures rate limiting. The YAML section is "ratelimit".
type Config struct {
	// Backend is "memory" (one instance; the default) or "redis" (buckets
	// shared by every replica).
	Backend string `yaml:"backend" env:"SERVICE_RATELIMIT_BACKEND"`
	// Rate is how many tokens a bucket regains per Period. Default 100.
	Rate int `yaml:"rate" env:"SERVICE_RATELIMIT_RATE"`
	// Period is the time Rate tokens take to come back. Default 1m.
	Period time.Duration `yaml:"period" env:"SERVICE_RATELIMIT_PERIOD"`
	// Burst is a bucket's capacity: how many requests a fresh client may send
	// at once. Default 20.
	Burst int `yaml:"burst" env:"SERVICE_RATELIMIT_BURST"`
	// MaxClients caps the clients the memory backend tracks; past it, a new
	// client takes the place of the tracked client nearest to a full bucket.
	// Default 1048576 (at most 64 MiB of buckets).
	MaxClients int `yaml:"max_clients" env:"SERVICE_RATELIMIT_MAX_CLIENTS"`
	// FailureMode is what the Redis backend does while Redis is unreachable:
	// "local" (default), "open" or "closed".
	FailureMode FailureMode `yaml:"failure_mode" env:"SERVICE_RATELIMIT_FAILURE_MODE"`
	// LocalShare is the share of Rate and Burst each replica allows on its own
	// in the "local" failure mode. Default 0.5; 1/replicas keeps the fleet's
	// total at the limit.
	LocalShare float64 `yaml:"local_share" env:"SERVICE_RATELIMIT_LOCAL_SHARE"`
	// Redis is the Redis backend's connection.
	Redis RedisConfig `yaml:"redis"`
}

// RedisConfig configures the connection of the Redis backend.
type RedisConfig struct {
	// Addr is a single Redis node. Default "127.0.0.1:6379".
	Addr string `yaml:"addr" env:"SERVICE_REDIS_ADDR"`
	// Addrs, when set, are the seed nodes of a Redis Cluster, and Addr is
	// ignored. Default: none.
	Addrs []string `yaml:"addrs" env:"SERVICE_REDIS_ADDRS"`
	// Username and Password authenticate with Redis ACLs. Default: none.
	Username string `yaml:"username" env:"SERVICE_REDIS_USERNAME"`
	Password string `yaml:"password" env:"SERVICE_REDIS_PASSWORD"`
	// DB selects the database of a single node. Default 0.
	DB int `yaml:"db" env:"SERVICE_REDIS_DB"`
	// Timeout is each Redis call's deadline, dialing included. Past it the
	// decision falls to the failure mode. Default 50ms.
	Timeout time.Duration `yaml:"timeout" env:"SERVICE_REDIS_TIMEOUT"`
	// KeyPrefix starts every key the limiter writes. Default "meshkit:rl".
	KeyPrefix string `yaml:"key_prefix" env:"SERVICE_RATELIMIT_KEY_PREFIX"`
}

// DefaultConfig returns the embedded defaults.
func DefaultConfig() Config {
	return Config{
		Backend:     BackendMemory,
		Rate:        100,
		Period:      time.Minute,
		Burst:       20,
		MaxClients:  1 << 20,
		FailureMode: FailLocal,
		LocalShare:  0.5,
		Redis: RedisConfig{
			Addr:      "127.0.0.1:6379",
			Timeout:   50 * time.Millisecond,
			KeyPrefix: "meshkit:rl",
		},
	}
}

// Limit is the service's default limit, under the policy name "default".
func (c Config) Limit() Limit {
	return Limit{Name: DefaultPolicy, Rate: c.Rate, Period: c.Period, Burst: c.Burst}
}

// Validate reports the first invalid setting, naming its variable.
func (c Config) Validate() error {
	switch c.Backend {
	case BackendMemory, BackendRedis:
	default:
		return fmt.Errorf("SERVICE_RATELIMIT_BACKEND=%q: must be memory or redis", c.Backend)
	}
	if err := c.Limit().validate("SERVICE_RATELIMIT_"); err != nil {
		return err
	}
	if c.MaxClients < 1 {
		return fmt.Errorf("SERVICE_RATELIMIT_MAX_CLIENTS=%d: must be at least 1", c.MaxClients)
	}
	switch c.FailureMode {
	case FailLocal, FailOpen, FailClosed:
	default:
		return fmt.Errorf("SERVICE_RATELIMIT_FAILURE_MODE=%q: must be local, open or closed", c.FailureMode)
	}
	if !(c.LocalShare > 0 && c.LocalShare <= 1) {
		return fmt.Errorf("SERVICE_RATELIMIT_LOCAL_SHARE=%v: must be more than 0 and at most 1", c.LocalShare)
	}
	if c.Backend == BackendRedis {
		return c.Redis.validate()
	}
	return nil
}

func (c RedisConfig) validate() error {
	if c.Addr == "" && len(c.Addrs) == 0 {
		return fmt.Errorf("SERVICE_REDIS_ADDR: must be set (or SERVICE_REDIS_ADDRS for a cluster) when SERVICE_RATELIMIT_BACKEND=redis")
	}
	if c.Timeout <= 0 {
		return fmt.Errorf("SERVICE_REDIS_TIMEOUT=%s: must be positive", c.Timeout)
	}
	if c.KeyPrefix == "" || strings.ContainsAny(c.KeyPrefix, "{}") {
		return fmt.Errorf("SERVICE_RATELIMIT_KEY_PREFIX=%q: must be set, without braces (they would put every client on one cluster slot)", c.KeyPrefix)
	}
	return nil
}
