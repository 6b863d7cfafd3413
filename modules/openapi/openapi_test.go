package openapi_test

import (
	"net"
	"testing"

	"github.com/meshkit/meshkit/modules/httpserver"
	"github.com/meshkit/meshkit/modules/openapi"
)

// TestDefaultAdminPortIsTheServers: the document's admin server names the
// port of the HTTP server's default SERVICE_ADMIN_ADDR, which this module
// may not import.
func TestDefaultAdminPortIsTheServers(t *testing.T) {
	_, port, err := net.SplitHostPort(httpserver.DefaultConfig().AdminAddr)
	if err != nil || port != openapi.DefaultAdminPort {
		t.Errorf("httpserver's default admin address %q (%v), openapi.DefaultAdminPort %q: make them agree",
			httpserver.DefaultConfig().AdminAddr, err, openapi.DefaultAdminPort)
	}
}
