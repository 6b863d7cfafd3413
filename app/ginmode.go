package app

import (
	"os"

	"github.com/gin-gonic/gin"
)

// setGinMode puts gin in release mode, whoever builds the app (cmd/service,
// a test, a team's own main): debug mode prints every route and a warning
// at start-up, outside the JSON log. An operator who wants gin's debug
// output sets GIN_MODE=debug, which is kept, and so is a mode the program
// chose itself before building the app (a test's gin.TestMode).
func setGinMode() {
	if os.Getenv(gin.EnvGinMode) == "" && gin.Mode() == gin.DebugMode {
		gin.SetMode(gin.ReleaseMode)
	}
}
