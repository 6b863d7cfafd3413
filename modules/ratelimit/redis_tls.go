package ratelimit

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"
)

// tlsFiles is the TLS material of the connections to Redis, read from its
// files again for each new connection: a change that loads is used from the
// next connection on (open ones keep theirs), and one that does not (a
// half-written file, a key that does not match) leaves the last good
// material in use and is logged once.
type tlsFiles struct {
	caFile, certFile, keyFile string
	log                       *slog.Logger

	mu      sync.Mutex
	key     [sha256.Size]byte // of the contents in use
	config  *tls.Config       // of the contents in use
	badKey  [sha256.Size]byte // of the last contents that did not load
	badSeen bool
}

// newTLSFiles loads the files of cfg; it fails when they do not load.
func newTLSFiles(cfg RedisConfig) (*tlsFiles, error) {
	f := &tlsFiles{caFile: cfg.TLSCAFile, certFile: cfg.TLSCertFile, keyFile: cfg.TLSKeyFile, log: slog.Default()}
	contents, key, err := f.read()
	if err != nil {
		return nil, err
	}
	if f.config, err = f.load(contents); err != nil {
		return nil, err
	}
	f.key = key
	return f, nil
}

// read reads the files: CA, certificate, key (those set).
func (f *tlsFiles) read() ([3][]byte, [sha256.Size]byte, error) {
	var contents [3][]byte
	h := sha256.New()
	for i, name := range [3]string{f.caFile, f.certFile, f.keyFile} {
		if name == "" {
			continue
		}
		data, err := os.ReadFile(name) //nolint:gosec // G304: the files the operator configured
		if err != nil {
			return contents, [sha256.Size]byte{}, fmt.Errorf("%s: %w", redisTLSVariables[i], err)
		}
		contents[i] = data
		_, _ = fmt.Fprintf(h, "%d:%d:", i, len(data))
		h.Write(data)
	}
	return contents, [sha256.Size]byte(h.Sum(nil)), nil
}

// redisTLSVariables name the files of tlsFiles.read, in its order.
var redisTLSVariables = [3]string{"SERVICE_REDIS_TLS_CA_FILE", "SERVICE_REDIS_TLS_CERT_FILE", "SERVICE_REDIS_TLS_KEY_FILE"}

// load makes the client configuration of the files' contents: TLS 1.2 at
// least, the CA file's roots (else the system's), the client certificate.
func (f *tlsFiles) load(contents [3][]byte) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if contents[0] != nil {
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(contents[0]) {
			return nil, fmt.Errorf("%s=%s: no PEM certificate in it", redisTLSVariables[0], f.caFile)
		}
	}
	if contents[1] != nil {
		cert, err := tls.X509KeyPair(contents[1], contents[2])
		if err != nil {
			return nil, fmt.Errorf("SERVICE_REDIS_TLS_CERT_FILE=%s, SERVICE_REDIS_TLS_KEY_FILE=%s: %w", f.certFile, f.keyFile, err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// current is the configuration for a new connection, reloaded when the
// files have changed and load.
func (f *tlsFiles) current() *tls.Config {
	contents, key, err := f.read()
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil && key == f.key {
		f.badSeen = false
		return f.config
	}
	if err == nil {
		if f.badSeen && key == f.badKey {
			return f.config
		}
		var c *tls.Config
		if c, err = f.load(contents); err == nil {
			f.config, f.key, f.badSeen = c, key, false
			f.log.Info("rate limiter: Redis TLS files reloaded")
			return c
		}
		f.badKey = key
	}
	if !f.badSeen {
		f.badSeen = true
		f.log.Warn("rate limiter: Redis TLS files changed but do not load; keeping the last good ones",
			slog.String("error", err.Error()))
	}
	return f.config
}

// dialer dials Redis with TLS, verifying the server's certificate for the
// host of the address dialed, within timeout and the context.
func (f *tlsFiles) dialer(timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		c := f.current().Clone()
		c.ServerName = host
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout, KeepAlive: 5 * time.Minute}, Config: c}
		conn, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, fmt.Errorf("tls %s: %w", addr, err)
		}
		return conn, nil
	}
}
