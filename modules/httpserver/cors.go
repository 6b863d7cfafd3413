package httpserver

import (
	"net/http"
	"slices"
	"strings"

	"github.com/gin-contrib/cors"
	"github.com/gin-gonic/gin"

	"github.com/meshkit/meshkit/internal/problem"
	"github.com/meshkit/meshkit/internal/route"
)

// corsStage answers preflights from allowed origins and adds the CORS headers
// to their requests, using gin-contrib/cors. A request from another origin
// gets no CORS headers (the browser then keeps the answer from the page); a
// preflight from one gets a 403 problem rather than gin-contrib/cors's bare
// 403. With no origins configured the stage is left out of every chain.
//
// A trace header on the response (traceparent or Server-Timing, which the
// telemetry stage, before this one, sets only when
// SERVICE_TELEMETRY_RESPONSE_TRACE_HEADER asks for it) is exposed to the
// page only when it is there: CORS never exposes what was not opted in.
func corsStage(cfg CORSConfig) []route.Middleware {
	if len(cfg.AllowedOrigins) == 0 {
		return nil
	}
	anyOrigin := slices.Contains(cfg.AllowedOrigins, "*")
	allowed := make(map[string]bool, len(cfg.AllowedOrigins))
	for _, o := range cfg.AllowedOrigins {
		allowed[strings.ToLower(strings.TrimSuffix(o, "/"))] = true
	}
	corsConfig := cors.Config{
		AllowAllOrigins:  anyOrigin,
		AllowMethods:     []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete},
		AllowHeaders:     []string{"Origin", "Content-Type", "Authorization", "X-Request-ID", "X-Request-Priority", "traceparent", "tracestate", "baggage"},
		ExposeHeaders:    []string{"X-Request-ID", "RateLimit", "RateLimit-Policy", "Retry-After"},
		AllowCredentials: cfg.AllowCredentials,
		MaxAge:           cfg.MaxAge,
	}
	if !anyOrigin {
		corsConfig.AllowOriginFunc = func(origin string) bool { return allowed[strings.ToLower(origin)] }
	}
	apply := cors.New(corsConfig)
	handler := func(c *gin.Context) {
		origin := c.Request.Header.Get("Origin")
		if origin == "" || anyOrigin || allowed[strings.ToLower(origin)] {
			apply(c)
			exposeTraceHeaders(c.Writer.Header())
			return
		}
		if c.Request.Method == http.MethodOptions && c.Request.Header.Get("Access-Control-Request-Method") != "" {
			problem.Abort(c, http.StatusForbidden, "origin "+origin+" may not call this API")
		}
	}
	return []route.Middleware{{
		Name:     "cors",
		Stage:    route.StageCORS,
		ForRoute: func(route.Policy) gin.HandlerFunc { return handler },
	}}
}

// optInTraceHeaders are the response headers that tell the caller its trace,
// set only when the service is configured to.
var optInTraceHeaders = []string{"Traceparent", "Server-Timing"}

// exposeTraceHeaders adds to Access-Control-Expose-Headers the opt-in trace
// headers h already has, when h is a CORS answer.
func exposeTraceHeaders(h http.Header) {
	if h.Get("Access-Control-Allow-Origin") == "" || h.Get("Access-Control-Expose-Headers") == "" {
		return
	}
	for _, name := range optInTraceHeaders {
		if _, ok := h[name]; ok {
			h.Set("Access-Control-Expose-Headers", h.Get("Access-Control-Expose-Headers")+","+name)
		}
	}
}
