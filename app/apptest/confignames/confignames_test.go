package confignames_test

import (
	"testing"

	"github.com/meshkit/meshkit/app/apptest/confignames"
)

// TestServiceFindsNestedSections guards the reflection: a name from the
// root, from each level of nesting, and the configuration file.
func TestServiceFindsNestedSections(t *testing.T) {
	known := confignames.Service(t)
	for _, name := range []string{
		"SERVICE_ENV",                  // the loader
		"SERVICE_HTTP_ADDR",            // httpserver.Config
		"SERVICE_CORS_ALLOWED_ORIGINS", // httpserver.Config.CORS
		"SERVICE_SHUTDOWN_DRAIN_DELAY", // health.Config
		"SERVICE_AUTH_HMAC_SECRET",     // security.Config.Auth
		"SERVICE_REDIS_ADDR",           // ratelimit.Config.Redis
		confignames.ConfigFile,
	} {
		if !known[name] {
			t.Errorf("Service() misses %s", name)
		}
	}
	if known["SERVICE_NO_SUCH_SETTING"] {
		t.Error("Service() holds a name no field has")
	}
}
