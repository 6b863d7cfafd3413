package ratelimit

import (
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"
)

// NewRedisClient builds the Redis client of cfg, which must be valid (see
// [Config.Validate]):
//
//   - SentinelMaster set: a failover client that asks the sentinels at
//     Addrs where the master is, and follows it when they promote a replica;
//   - Addrs set: a ClusterClient seeded with them;
//   - else a single-node Client, of URL (parsed by go-redis) or of Addr,
//     Username, Password and DB.
//
// With TLS on (a "rediss://" URL, or cfg.TLS) every connection, to a node
// or a sentinel, is TLS 1.2 or later, verified against cfg.TLSCAFile (else
// the system roots), with the client certificate of cfg.TLSCertFile and
// TLSKeyFile when set; the files are read again for each new connection
// and a change that does not load is logged on log and leaves the last good
// ones in use. Credentials apply to every node. Dialing, reading and
// writing are each bounded by cfg.Timeout, a context's deadline bounds a
// call too, and nothing is retried: the limiter has its own deadline and
// failure mode. The caller closes the client.
func NewRedisClient(cfg RedisConfig, log *slog.Logger) (redis.UniversalClient, error) {
	if log == nil {
		log = slog.Default()
	}
	var tlsFiles *tlsFiles
	if cfg.tlsOn() {
		var err error
		if tlsFiles, err = newTLSFiles(cfg); err != nil {
			return nil, err
		}
		tlsFiles.log = log
	}
	opt := &redis.Options{
		Addr:     cfg.Addr,
		Username: cfg.Username,
		Password: cfg.Password,
		DB:       cfg.DB,
	}
	if cfg.URL != "" {
		var err error
		if opt, err = redis.ParseURL(cfg.URL); err != nil {
			return nil, fmt.Errorf("SERVICE_REDIS_URL: %w", err)
		}
		opt.TLSConfig = nil // the dialer below makes TLS connections
	}
	if opt.Addr == "" {
		opt.Addr = DefaultRedisAddr
	}
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = cfg.Timeout, cfg.Timeout, cfg.Timeout
	opt.ContextTimeoutEnabled = true
	opt.MaxRetries, opt.DialerRetries = -1, 1
	if tlsFiles != nil {
		opt.Dialer = tlsFiles.dialer(cfg.Timeout)
	}
	if len(cfg.Addrs) == 0 {
		return redis.NewClient(opt), nil
	}
	// Sentinels, or a cluster's seed nodes (one is enough to find the rest).
	return redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:            cfg.Addrs,
		MasterName:       cfg.SentinelMaster,
		SentinelPassword: cfg.SentinelPassword,
		IsClusterMode:    cfg.SentinelMaster == "",
		Username:         opt.Username,
		Password:         opt.Password,
		DB:               opt.DB,
		Dialer:           opt.Dialer,
		DialTimeout:      opt.DialTimeout,
		ReadTimeout:      opt.ReadTimeout,
		WriteTimeout:     opt.WriteTimeout,
		// No redirect or retry on a cluster either: go-redis retries a
		// pipeline's commands for a node it could not reach after a pause,
		// and a pause that outlasts the deadline fails the whole pipeline,
		// the healthy masters' answers included. A MOVED reply fails its
		// key once, and makes the client reload the slots.
		MaxRedirects:          -1,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1,
		DialerRetries:         1,
	}), nil
}
