package health

import (
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/trace"

	"github.com/meshkit/meshkit/internal/check"
	"github.com/meshkit/meshkit/internal/problem"
	"github.com/meshkit/meshkit/internal/requestid"
	"github.com/meshkit/meshkit/internal/route"
)

// HealthContentType is the media type of /healthz (the IETF draft "Health
// Check Response Format for HTTP APIs").
const HealthContentType = "application/health+json"

// retryAfter is the Retry-After of a 503 probe, in seconds.
const retryAfter = "1"

// Routes returns the probes of s and of these components alone, with no
// checks running in the background: for tests and servers built without
// Fx. It panics if two components share a name, as a mux does with two
// handlers for one pattern.
func Routes(s *State, components ...check.Component) []route.Route {
	r, err := NewRegistry(RegistryOptions{Components: components})
	if err != nil {
		panic(err)
	}
	return r.Routes(s)
}

// Routes returns the probes of s and of r's checks: /livez and /readyz on
// both listeners, /healthz on the admin listener only. The API listener's
// /readyz answers the status only (no checks, no reason naming one): the
// details stay on the admin listener. A probe only reads r's last results.
func (r *Registry) Routes(s *State) []route.Route {
	policy := route.OperationalPolicy()
	p := probes{state: s, registry: r}
	liveOp := route.Operation{
		Summary:     "Liveness",
		Description: "200 while the process can answer at all; never looks at a dependency, so an outage of one never restarts the service.",
		Tags:        []string{"probes"},
		Response:    probeBody{},
		Examples:    []route.Example{{Name: "live", Summary: "The process answers"}},
	}
	ready := route.Operation{
		Summary:  "Readiness",
		Tags:     []string{"probes"},
		Response: probeBody{},
		Problems: []int{http.StatusServiceUnavailable},
		Examples: []route.Example{{Name: "ready", Summary: "A started service whose critical checks pass"}},
	}
	apiReady, adminReady := ready, ready
	apiReady.Description = "200 with the status when the service has started, is not draining and no critical check fails; else a 503 problem that does not say why."
	adminReady.Description = "The same answer with the details: the 200 lists each check and component in checks, and the 503 problem names what fails (its checks member lists them too)."
	return []route.Route{
		{Method: http.MethodGet, Path: "/livez", Policy: policy, Listener: route.Both, Handler: live, Operation: liveOp},
		{Method: http.MethodGet, Path: "/readyz", Policy: policy, Listener: route.API, Handler: p.readyStatus, Operation: apiReady},
		{Method: http.MethodGet, Path: "/readyz", Policy: policy, Listener: route.Admin, Handler: p.ready, Operation: adminReady},
		{Method: http.MethodGet, Path: "/healthz", Policy: policy, Listener: route.Admin, Handler: p.health, Operation: route.Operation{
			Summary:     "Health report",
			Description: "Every check and component with its status, whether it is critical, when it last ran and how long it took (application/health+json). Always 200: its status says fail when the service is not ready.",
			Tags:        []string{"probes"},
			ContentType: HealthContentType,
			Response:    healthBody{},
			Examples:    []route.Example{{Name: "report", Summary: "The report"}},
		}},
	}
}

type probes struct {
	state    *State
	registry *Registry
}

// live answers 200 while the process can answer at all.
func live(c *gin.Context) {
	c.JSON(http.StatusOK, probeBody{Status: check.Pass})
}

// probeBody is /livez's answer, and /readyz's when ready.
type probeBody struct {
	Status string                `json:"status"`
	Checks map[string]readyEntry `json:"checks,omitempty"`
}

// readyEntry is a check or component in /readyz's "checks".
type readyEntry struct {
	Status string `json:"status"`
	// Output is the reason a check fails, one word of the check package's
	// vocabulary.
	Output  string         `json:"output,omitempty"`
	Details map[string]any `json:"details,omitempty"`
}

// ready answers 200 when started, not draining and no critical check
// fails; else a 503 problem.
func (p probes) ready(c *gin.Context) {
	if ok, why := p.state.Ready(); !ok {
		c.Header("Retry-After", retryAfter)
		problem.Abort(c, http.StatusServiceUnavailable, why)
		return
	}
	rep := p.registry.Report()
	var checks map[string]readyEntry
	if len(rep.Entries) > 0 {
		checks = make(map[string]readyEntry, len(rep.Entries))
		for _, e := range rep.Entries {
			checks[e.Name] = readyEntry{Status: e.Status, Output: e.Reason, Details: e.Details}
		}
	}
	if rep.Failing != "" {
		c.Header("Retry-After", retryAfter)
		writeChecksProblem(c, problem.New(http.StatusServiceUnavailable, rep.Failing+" is failing"), checks)
		return
	}
	c.JSON(http.StatusOK, probeBody{Status: rep.Status, Checks: checks})
}

// readyStatus is the API listener's /readyz: 200 {"status": ...} when
// ready, else a 503 problem that does not say what fails.
func (p probes) readyStatus(c *gin.Context) {
	ok, _ := p.state.Ready()
	rep := p.registry.Report()
	if !ok || rep.Failing != "" {
		c.Header("Retry-After", retryAfter)
		problem.Abort(c, http.StatusServiceUnavailable, "not ready")
		return
	}
	c.JSON(http.StatusOK, probeBody{Status: rep.Status})
}

// checksProblem is a problem with the checks as an extension member.
type checksProblem struct {
	*problem.Problem
	Checks map[string]readyEntry `json:"checks,omitempty"`
}

// writeChecksProblem writes p with checks as problem.Write would write p
// alone: with the request and trace IDs, and aborting the chain.
func writeChecksProblem(c *gin.Context, p *problem.Problem, checks map[string]readyEntry) {
	p.RequestID = requestid.From(c)
	if sc := trace.SpanContextFromContext(c.Request.Context()); sc.HasTraceID() {
		p.TraceID = sc.TraceID().String()
	}
	body, err := json.Marshal(checksProblem{Problem: p, Checks: checks})
	if err != nil {
		// A component's details that do not encode: the problem without them.
		problem.Write(c, p)
		return
	}
	c.Abort()
	h := c.Writer.Header()
	h.Set("Content-Type", problem.ContentType)
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	c.Writer.WriteHeader(p.Status)
	_, _ = c.Writer.Write(body)
}

// healthBody is /healthz's application/health+json report.
type healthBody struct {
	Status string `json:"status"`
	// Notes say why the service is not ready when that is not a check: it
	// is starting or shutting down.
	Notes  []string               `json:"notes,omitempty"`
	Checks map[string]healthEntry `json:"checks"`
}

// healthEntry is one check or component of the report.
type healthEntry struct {
	Status   string `json:"status"`
	Critical bool   `json:"critical"`
	// Time is when the check last ran (RFC 3339); absent while pending.
	Time string `json:"time,omitempty"`
	// ObservedValue is how long that run took, in ObservedUnit ("ms").
	ObservedValue *float64 `json:"observedValue,omitempty"`
	ObservedUnit  string   `json:"observedUnit,omitempty"`
	// Output is the reason a check fails, one word of the check package's
	// vocabulary; never the error itself.
	Output  string         `json:"output,omitempty"`
	Details map[string]any `json:"details,omitempty"`
}

// health answers 200 with the full report; its status says fail when the
// service is not ready. (An error status would have to be a problem, see
// the README's contract; the probes are /livez and /readyz.)
func (p probes) health(c *gin.Context) {
	rep := p.registry.Report()
	body := healthBody{Status: rep.Status, Checks: make(map[string]healthEntry, len(rep.Entries))}
	if ok, why := p.state.Ready(); !ok {
		body.Status, body.Notes = check.Fail, []string{why}
	}
	for _, e := range rep.Entries {
		h := healthEntry{Status: e.Status, Critical: e.Critical, Output: e.Reason, Details: e.Details}
		if !e.Time.IsZero() {
			ms := math.Round(float64(e.Duration)/float64(time.Microsecond)) / 1000
			h.Time, h.ObservedValue, h.ObservedUnit = e.Time.UTC().Format(time.RFC3339Nano), &ms, "ms"
		}
		body.Checks[e.Name] = h
	}
	data, err := json.Marshal(body)
	if err != nil {
		_ = c.Error(err) // a component's details that do not encode: a 500 problem
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Data(http.StatusOK, HealthContentType, data)
}
