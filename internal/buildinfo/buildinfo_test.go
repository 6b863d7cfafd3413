package buildinfo

import (
	"strings"
	"testing"
)

func TestVersionNamesADevelopmentBuild(t *testing.T) {
	// A test binary is built from the working tree: Go records no module
	// version for it, so Version says it is a development build.
	if v := Version(); !strings.HasPrefix(v, "devel") {
		t.Errorf("Version() = %q, want a devel version in a test binary", v)
	}
	if Name == "" || strings.ContainsAny(Name, " /:") {
		t.Errorf("Name = %q, want one word usable in a realm, a key prefix and service.name", Name)
	}
}
