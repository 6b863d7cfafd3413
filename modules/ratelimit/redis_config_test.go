package ratelimit

import (
	"os"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/meshkit/meshkit/internal/redistest"
)

// TestRedisConfigForms: each way of naming Redis, and each contradiction
// between them, which Validate refuses naming the variables.
func TestRedisConfigForms(t *testing.T) {
	dir := t.TempDir()
	ca := redistest.NewTLSFiles(t, "config test CA").CAFile
	tests := []struct {
		name    string
		redis   func(*RedisConfig)
		wantErr string // "" for valid
	}{
		{"default node", func(*RedisConfig) {}, ""},
		{"addr", func(c *RedisConfig) { c.Addr = "redis:6379" }, ""},
		{"url", func(c *RedisConfig) { c.URL = "redis://user:secret@redis:6379/2" }, ""},
		{"rediss url with a CA", func(c *RedisConfig) { c.URL, c.TLSCAFile = "rediss://redis:6380", ca }, ""},
		{"cluster over TLS", func(c *RedisConfig) { c.Addrs, c.TLS = []string{"a:1", "b:1"}, true }, ""},
		{"sentinels", func(c *RedisConfig) {
			c.Addrs, c.SentinelMaster, c.SentinelPassword, c.DB = []string{"s1:26379"}, "mymaster", "pw", 1
		}, ""},
		{"url and addr", func(c *RedisConfig) { c.URL, c.Addr = "redis://redis:6379", "redis:6379" }, "SERVICE_REDIS_URL and SERVICE_REDIS_ADDR: both set"},
		{"url and password", func(c *RedisConfig) { c.URL, c.Password = "redis://redis:6379", "pw" }, "SERVICE_REDIS_URL and SERVICE_REDIS_PASSWORD: both set"},
		{"url and db", func(c *RedisConfig) { c.URL, c.DB = "redis://redis:6379", 3 }, "SERVICE_REDIS_URL and SERVICE_REDIS_DB: both set"},
		{"url and addrs", func(c *RedisConfig) { c.URL, c.Addrs = "redis://redis:6379", []string{"a:1"} }, "SERVICE_REDIS_URL and SERVICE_REDIS_ADDRS: both set"},
		{"bad url scheme", func(c *RedisConfig) { c.URL = "http://user:secret@redis:6379" }, "SERVICE_REDIS_URL: "},
		{"addr and addrs", func(c *RedisConfig) { c.Addr, c.Addrs = "redis:6379", []string{"a:1"} }, "SERVICE_REDIS_ADDR and SERVICE_REDIS_ADDRS: both set"},
		{"sentinel master alone", func(c *RedisConfig) { c.SentinelMaster = "mymaster" }, "SERVICE_REDIS_SENTINEL_MASTER=\"mymaster\": needs the sentinels in SERVICE_REDIS_ADDRS"},
		{"sentinel password alone", func(c *RedisConfig) { c.Addrs, c.SentinelPassword = []string{"a:1"}, "pw" }, "SERVICE_REDIS_SENTINEL_PASSWORD: set without SERVICE_REDIS_SENTINEL_MASTER"},
		{"db on a cluster", func(c *RedisConfig) { c.Addrs, c.DB = []string{"a:1"}, 1 }, "SERVICE_REDIS_DB=1: a Redis Cluster has only database 0"},
		{"cert without key", func(c *RedisConfig) { c.TLS, c.TLSCertFile = true, ca }, "SERVICE_REDIS_TLS_CERT_FILE and SERVICE_REDIS_TLS_KEY_FILE: set both or neither"},
		{"CA with TLS off", func(c *RedisConfig) { c.TLSCAFile = ca }, "set while TLS is off"},
		{"CA file missing", func(c *RedisConfig) { c.TLS, c.TLSCAFile = true, dir+"/none.pem" }, "SERVICE_REDIS_TLS_CA_FILE: open " + dir + "/none.pem"},
		{"CA file without PEM", func(c *RedisConfig) {
			c.URL, c.TLSCAFile = "rediss://redis:6380", writeFile(t, dir+"/empty.pem", "not PEM")
		}, "SERVICE_REDIS_TLS_CA_FILE=" + dir + "/empty.pem: no PEM certificate in it"},
		{"key not matching", func(c *RedisConfig) { c.TLS, c.TLSCertFile, c.TLSKeyFile = true, ca, ca }, "SERVICE_REDIS_TLS_CERT_FILE=" + ca + ", SERVICE_REDIS_TLS_KEY_FILE=" + ca},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Backend = BackendRedis
			tt.redis(&cfg.Redis)
			err := cfg.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Validate: %v, want an error containing %q", err, tt.wantErr)
			case err != nil && (strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "\n")):
				t.Fatalf("Validate: %q, want one line without the URL's password", err)
			case err == nil:
				client, err := NewRedisClient(cfg.Redis, nil)
				if err != nil {
					t.Fatalf("NewRedisClient: %v", err)
				}
				_ = client.Close()
			}
		})
	}
}

// TestRedisURLIsParsedByGoRedis: the URL's user, password and database
// reach the client, with the limiter's timeouts and no retries.
func TestRedisURLIsParsedByGoRedis(t *testing.T) {
	cfg := DefaultConfig().Redis
	cfg.URL = "redis://alice:s3cret@redis.example:6390/4"
	client, err := NewRedisClient(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = client.Close() }()
	opt := client.(*redis.Client).Options()
	if opt.Addr != "redis.example:6390" || opt.Username != "alice" || opt.Password != "s3cret" || opt.DB != 4 {
		t.Errorf("options: addr %q user %q password %q db %d", opt.Addr, opt.Username, opt.Password, opt.DB)
	}
	if opt.ReadTimeout != cfg.Timeout || opt.DialTimeout != cfg.Timeout || opt.MaxRetries > 0 || opt.TLSConfig != nil {
		t.Errorf("options: read %v dial %v retries %d tls %v", opt.ReadTimeout, opt.DialTimeout, opt.MaxRetries, opt.TLSConfig)
	}
	if got := redisAddrs(Config{Redis: cfg}.Redis); len(got) != 1 || got[0] != "redis.example:6390" {
		t.Errorf("redisAddrs = %v, want the host alone, never the URL's password", got)
	}
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
