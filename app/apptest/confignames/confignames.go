// Package confignames lists the environment variables the service reads, so
// that tests can check that deployment files (docker-compose.yml, the
// Kubernetes manifests) name only real ones: a misspelt name is silently
// ignored by the service.
package confignames

import (
	"reflect"

	"github.com/meshkit/meshkit/app"
)

// ConfigFile names the YAML configuration file; app.LoadConfig reads it
// before the env-tagged settings.
const ConfigFile = "SERVICE_CONFIG_FILE"

// Service returns the names of the variables app.Config reads: the env tags
// of its fields, nested sections included, and [ConfigFile]. The map is new
// on each call; callers may add to it.
func Service() map[string]bool {
	known := map[string]bool{ConfigFile: true}
	var walk func(reflect.Type)
	walk = func(typ reflect.Type) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			if name := f.Tag.Get("env"); name != "" {
				known[name] = true
			}
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct && f.IsExported() {
				walk(ft)
			}
		}
	}
	walk(reflect.TypeOf(app.DefaultConfig(app.Production)))
	return known
}
