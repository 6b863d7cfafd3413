package ratelimit

import (
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/meshkit/meshkit/internal/buildinfo"
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
	// Addr is a single Redis node. Default: none, which is
	// "127.0.0.1:6379" when neither URL nor Addrs is set.
	Addr string `yaml:"addr" env:"SERVICE_REDIS_ADDR"`
	// Addrs, when set, are the seed nodes of a Redis Cluster, or the
	// sentinels when SentinelMaster is set. Default: none.
	Addrs []string `yaml:"addrs" env:"SERVICE_REDIS_ADDRS"`
	// URL is a single node as a "redis://" or "rediss://" (TLS) URL with
	// user, password and database ("rediss://user:pass@host:6380/0"), parsed
	// by go-redis: instead of Addr, Username, Password and DB, which must
	// then be unset. Default: none.
	URL string `yaml:"url" env:"SERVICE_REDIS_URL"`
	// Username and Password authenticate with Redis ACLs, on every node.
	// Default: none.
	Username string `yaml:"username" env:"SERVICE_REDIS_USERNAME"`
	Password string `yaml:"password" env:"SERVICE_REDIS_PASSWORD"`
	// DB selects the database of a single node or a Sentinel's master.
	// Default 0.
	DB int `yaml:"db" env:"SERVICE_REDIS_DB"`
	// TLS turns TLS on for Addr, Addrs and the sentinels; a "rediss://" URL
	// turns it on by itself. Default false.
	TLS bool `yaml:"tls" env:"SERVICE_REDIS_TLS"`
	// TLSCAFile is a PEM file of the CAs that verify Redis's certificate.
	// Default: none, the system roots.
	TLSCAFile string `yaml:"tls_ca_file" env:"SERVICE_REDIS_TLS_CA_FILE"`
	// TLSCertFile and TLSKeyFile are a client certificate and its key, for a
	// Redis that asks for one (tls-auth-clients). Default: none.
	TLSCertFile string `yaml:"tls_cert_file" env:"SERVICE_REDIS_TLS_CERT_FILE"`
	TLSKeyFile  string `yaml:"tls_key_file" env:"SERVICE_REDIS_TLS_KEY_FILE"`
	// SentinelMaster, when set, is the name of the master that the
	// sentinels at Addrs watch: the limiter follows it through failovers.
	// Default: none.
	SentinelMaster string `yaml:"sentinel_master" env:"SERVICE_REDIS_SENTINEL_MASTER"`
	// SentinelPassword authenticates with the sentinels. Default: none.
	SentinelPassword string `yaml:"sentinel_password" env:"SERVICE_REDIS_SENTINEL_PASSWORD"`
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
			Timeout:   50 * time.Millisecond,
			KeyPrefix: buildinfo.Name + ":rl",
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
	if c.URL != "" {
		if set := c.nodeSettings(); len(set) > 0 {
			return fmt.Errorf("SERVICE_REDIS_URL and %s: both set; give the node either as a URL or with SERVICE_REDIS_ADDR, _USERNAME, _PASSWORD and _DB", strings.Join(set, ", "))
		}
		if _, err := redis.ParseURL(c.URL); err != nil {
			return fmt.Errorf("SERVICE_REDIS_URL: %s", strings.ReplaceAll(err.Error(), c.URL, "(the URL)"))
		}
	}
	if c.Addr != "" && len(c.Addrs) > 0 {
		return fmt.Errorf("SERVICE_REDIS_ADDR and SERVICE_REDIS_ADDRS: both set; SERVICE_REDIS_ADDR is one node, SERVICE_REDIS_ADDRS a cluster's nodes or the sentinels")
	}
	if c.SentinelMaster != "" && len(c.Addrs) == 0 {
		return fmt.Errorf("SERVICE_REDIS_SENTINEL_MASTER=%q: needs the sentinels in SERVICE_REDIS_ADDRS", c.SentinelMaster)
	}
	if c.SentinelPassword != "" && c.SentinelMaster == "" {
		return fmt.Errorf("SERVICE_REDIS_SENTINEL_PASSWORD: set without SERVICE_REDIS_SENTINEL_MASTER")
	}
	if c.DB != 0 && len(c.Addrs) > 0 && c.SentinelMaster == "" {
		return fmt.Errorf("SERVICE_REDIS_DB=%d: a Redis Cluster has only database 0", c.DB)
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return fmt.Errorf("SERVICE_REDIS_TLS_CERT_FILE and SERVICE_REDIS_TLS_KEY_FILE: set both or neither")
	}
	if !c.tlsOn() && (c.TLSCAFile != "" || c.TLSCertFile != "") {
		return fmt.Errorf("SERVICE_REDIS_TLS_CA_FILE, _CERT_FILE, _KEY_FILE: set while TLS is off; use a rediss:// URL or SERVICE_REDIS_TLS=true")
	}
	if c.tlsOn() {
		if _, err := newTLSFiles(c); err != nil {
			return err
		}
	}
	if c.Timeout <= 0 {
		return fmt.Errorf("SERVICE_REDIS_TIMEOUT=%s: must be positive", c.Timeout)
	}
	if c.KeyPrefix == "" || strings.ContainsAny(c.KeyPrefix, "{}") {
		return fmt.Errorf("SERVICE_RATELIMIT_KEY_PREFIX=%q: must be set, without braces (they would put every client on one cluster slot)", c.KeyPrefix)
	}
	return nil
}

// DefaultRedisAddr is the node the Redis backend uses when none is
// configured.
const DefaultRedisAddr = "127.0.0.1:6379"

// nodeSettings names the settings of the single-node form that are set.
func (c RedisConfig) nodeSettings() []string {
	var set []string
	if c.Addr != "" {
		set = append(set, "SERVICE_REDIS_ADDR")
	}
	if len(c.Addrs) > 0 {
		set = append(set, "SERVICE_REDIS_ADDRS")
	}
	if c.Username != "" {
		set = append(set, "SERVICE_REDIS_USERNAME")
	}
	if c.Password != "" {
		set = append(set, "SERVICE_REDIS_PASSWORD")
	}
	if c.DB != 0 {
		set = append(set, "SERVICE_REDIS_DB")
	}
	return set
}

// tlsOn reports whether connections to Redis use TLS.
func (c RedisConfig) tlsOn() bool {
	return c.TLS || strings.HasPrefix(c.URL, "rediss://")
}
