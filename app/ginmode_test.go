package app_test

import (
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/meshkit/meshkit/app"
)

// Building the app puts gin in release mode unless GIN_MODE says otherwise
// or the program chose a mode itself, so that an app.New outside
// cmd/service prints no gin debug lines.
func TestAppSetsGinMode(t *testing.T) {
	t.Cleanup(func() { gin.SetMode(gin.TestMode) })
	for _, tt := range []struct {
		env, before, want string
	}{
		{"", gin.DebugMode, gin.ReleaseMode}, // gin's own default outside tests
		{"", gin.TestMode, gin.TestMode},     // chosen by the program
		{"debug", gin.DebugMode, gin.DebugMode},
		{"release", gin.ReleaseMode, gin.ReleaseMode},
	} {
		t.Setenv(gin.EnvGinMode, tt.env)
		gin.SetMode(tt.before)
		_ = app.Options(app.WithEnvironment(nil))
		if got := gin.Mode(); got != tt.want {
			t.Errorf("GIN_MODE=%q, mode %s before: app.Options left gin in %s mode, want %s", tt.env, tt.before, got, tt.want)
		}
	}
}
