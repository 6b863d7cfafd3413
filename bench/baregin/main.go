// Command baregin is the bare-gin peer of scripts/bench: gin.New() in
// release mode with one route, GET /v1/hello, answering meshkit's body
// {"message":"hello, world"}, behind a plain http.Server.
//
//	baregin -addr 127.0.0.1:8082
package main

import (
	"flag"
	"log"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

type message struct {
	Message string `json:"message"`
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8082", "listen address")
	flag.Parse()
	gin.SetMode(gin.ReleaseMode)
	engine := gin.New()
	engine.GET("/v1/hello", func(c *gin.Context) {
		c.JSON(http.StatusOK, message{Message: "hello, world"})
	})
	srv := &http.Server{Addr: *addr, Handler: engine, ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
