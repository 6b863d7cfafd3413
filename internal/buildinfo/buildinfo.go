// Package buildinfo names the service and its build. Name is the one place
// the service's name is written: the OpenTelemetry service.name default,
// `service version`, the auth realm and the Redis key prefix all read it.
// scripts/rename-module sets it to the last element of the new module path.
package buildinfo

import "runtime/debug"

// Name is the service's name.
const Name = "meshkit"

// Version is the module version the binary was built from; a build from a
// working tree reads "devel", or "devel+<vcs revision>" when Go recorded one.
func Version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" {
			return "devel+" + s.Value
		}
	}
	return "devel"
}
