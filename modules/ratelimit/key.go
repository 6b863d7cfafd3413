package ratelimit

import (
	"github.com/gin-gonic/gin"

	"github.com/meshkit/meshkit/internal/clientkey"
)

// ClientKey is the identity a request is limited under: the authenticated
// principal when there is one ("principal:" + issuer + "|" + subject), else
// the client address as gin resolves it, believing X-Forwarded-For only from
// the trusted proxies ("ip:" + address). IPv6 clients are keyed by their /64,
// since one host commonly holds a whole /64. It is [clientkey.Of], which the
// admission stage counts its clients by too.
func ClientKey(c *gin.Context) string { return clientkey.Of(c) }

// AddressKey is the key of a request's client address, whoever the caller
// claims to be: "ip:" + the address gin resolves with the trusted proxies, an
// IPv6 one's /64 ([clientkey.Address]).
func AddressKey(c *gin.Context) string { return clientkey.Address(c) }
