// Package clientip finds a request's client address as gin resolves it with
// the server's trusted proxies, without gin's allocations in the common case.
// The rate limiter keys anonymous clients by it and the access log shows it,
// so both see the same address.
package clientip

import (
	"net"

	"github.com/gin-gonic/gin"
)

// Of returns the client address of c's request: what c.ClientIP() finds
// (the peer, or a trusted proxy's X-Forwarded-For / X-Real-IP), taken
// straight from RemoteAddr when no such header came, since then the peer is
// the client, trusted or not. Only when RemoteAddr is not host:port (which
// net/http never does) is it the raw RemoteAddr.
func Of(c *gin.Context) string {
	var ip string
	if h := c.Request.Header; h["X-Forwarded-For"] == nil && h["X-Real-Ip"] == nil {
		ip = c.RemoteIP()
	} else {
		ip = c.ClientIP()
	}
	if ip == "" {
		ip = c.Request.RemoteAddr
		if host, _, err := net.SplitHostPort(ip); err == nil {
			ip = host
		}
	}
	return ip
}
