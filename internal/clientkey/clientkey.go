// Package clientkey names the client a request comes from, the same way for
// every stage that counts per client: the rate limiter keys its buckets by
// it, and admission bounds the share of its limit one client may hold.
package clientkey

import (
	"net/netip"

	"github.com/gin-gonic/gin"

	"github.com/meshkit/meshkit/internal/clientip"
	"github.com/meshkit/meshkit/internal/principal"
)

// Of is the identity a request counts under: the authenticated principal
// when there is one ("principal:" + issuer + "|" + subject), else the client
// address as gin resolves it, believing X-Forwarded-For only from the trusted
// proxies ("ip:" + address). IPv6 clients are keyed by their /64, since one
// host commonly holds a whole /64.
func Of(c *gin.Context) string {
	if p, ok := principal.FromContext(c.Request.Context()); ok && p.Subject != "" {
		return "principal:" + p.Issuer + "|" + p.Subject
	}
	return Address(c)
}

// Address is the key of a request's client address, whoever the caller
// claims to be: "ip:" + the address gin resolves with the trusted proxies, an
// IPv6 one's /64.
func Address(c *gin.Context) string {
	return "ip:" + addrKey(clientip.Of(c))
}

func addrKey(s string) string {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return s
	}
	if a.Is4() {
		return s // ParseAddr takes IPv4 only in its one canonical form
	}
	if a = a.Unmap(); a.Is4() {
		return a.String()
	}
	p, _ := a.WithZone("").Prefix(64)
	return p.String()
}
