// Command gozero is go-zero's rest server with its default chain (trace, log,
// prometheus, max conns, breaker, shedding, timeout, recover, metrics, max
// bytes, gunzip) and one route, GET /v1/hello, answering meshkit's body
// {"message":"hello, world"}: the go-zero peer of scripts/bench. It is a
// module of its own so that go-zero's dependencies stay out of meshkit's and
// bench/'s go.mod.
//
//	gozero -port 8081 -devport 6061 -log error -sampler 0 -otlp 127.0.0.1:4318
//
// -log info logs every request (go-zero's access log, one line each, to
// stdout); -otlp exports the sampled spans over OTLP/HTTP to host:port/v1/traces. The
// Prometheus metrics are on, as by default, served on -devport.
package main

import (
	"flag"
	"log"
	"net/http"

	"github.com/zeromicro/go-zero/core/conf"
	"github.com/zeromicro/go-zero/rest"
	"github.com/zeromicro/go-zero/rest/httpx"
)

type message struct {
	Message string `json:"message"`
}

func main() {
	port := flag.Int("port", 8081, "the API's port, on 127.0.0.1")
	devPort := flag.Int("devport", 6061, "go-zero's dev server (metrics, health) port")
	level := flag.String("log", "error", "log level: info or error")
	sampler := flag.Float64("sampler", 0, "the fraction of requests traced")
	otlp := flag.String("otlp", "", "host:port of an OTLP/HTTP receiver; none: no exporter")
	flag.Parse()

	var c rest.RestConf
	if err := conf.FillDefault(&c); err != nil {
		log.Fatal(err)
	}
	c.Name, c.Host, c.Port = "gozero-bench", "127.0.0.1", *port
	c.Log.Level, c.Log.Mode = *level, "console"
	c.DevServer.Host, c.DevServer.Port = "127.0.0.1", *devPort
	c.Telemetry.Sampler = *sampler
	if *otlp != "" {
		c.Telemetry.Endpoint, c.Telemetry.Batcher, c.Telemetry.OtlpHttpPath = *otlp, "otlphttp", "/v1/traces"
	}
	server := rest.MustNewServer(c)
	defer server.Stop()
	server.AddRoute(rest.Route{Method: http.MethodGet, Path: "/v1/hello", Handler: func(w http.ResponseWriter, _ *http.Request) {
		httpx.OkJson(w, message{Message: "hello, world"})
	}})
	server.Start()
}
