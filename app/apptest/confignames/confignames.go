// Package confignames lists the environment variables the service reads, so
// that tests can check that deployment files (docker-compose.yml, the
// Kubernetes manifests) name only real ones: a misspelt name is silently
// ignored by the service.
package confignames

import (
	"testing"

	"github.com/meshkit/meshkit/app"
	"github.com/meshkit/meshkit/internal/config"
)

// ConfigFile names the YAML configuration file; the loader reads it before
// the env-tagged settings.
const ConfigFile = "SERVICE_CONFIG_FILE"

// Service returns the names of the variables the default app reads: the env
// tags of every section its modules register, SERVICE_ENV and [ConfigFile].
// The map is new on each call; callers may add to it.
func Service(t testing.TB) map[string]bool {
	t.Helper()
	loaded, err := app.LoadConfig(config.Source{Lookup: config.MapLookup(nil)})
	if err != nil {
		t.Fatalf("the default app's configuration does not load: %v", err)
	}
	known := map[string]bool{ConfigFile: true, "SERVICE_ENV": true}
	for _, s := range loaded.Sections() {
		for _, name := range s.EnvNames() {
			known[name] = true
		}
	}
	return known
}
