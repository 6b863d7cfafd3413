package httpserver

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/meshkit/meshkit/internal/problem"
	"github.com/meshkit/meshkit/internal/route"
)

// limitsStage caps the request's headers and body and puts the route's
// deadline on it, last before the handler.
func limitsStage(cfg Config) route.Middleware {
	return route.Middleware{
		Name:  "limits",
		Stage: route.StageLimits,
		ForRoute: func(p route.Policy) gin.HandlerFunc {
			maxBody, timeout := routeBodyCap(cfg, p), routeTimeout(cfg, p)
			maxHeader := int64(cfg.MaxHeaderBytes)
			var writers deadlineWriterPool
			return func(c *gin.Context) {
				if headerBytes(c.Request) > maxHeader {
					c.Header("Connection", "close")
					problem.Abort(c, http.StatusRequestHeaderFieldsTooLarge,
						"request headers are larger than "+strconv.FormatInt(maxHeader, 10)+" bytes")
					return
				}
				if !capBody(c, maxBody) {
					return
				}
				if timeout > 0 {
					runWithDeadline(c, &writers, timeout)
				}
			}
		},
		Problems: limitsProblems,
	}
}

// limitsProblems are the limits stage's answers: 431 for headers over the
// cap, 413 for a body over it (the document lists it for operations that
// take a body), 504 when the route has a deadline (the default, unless its
// Timeout is negative).
func limitsProblems(p route.Policy) []int {
	statuses := []int{http.StatusRequestEntityTooLarge, http.StatusRequestHeaderFieldsTooLarge}
	if p.Timeout >= 0 {
		statuses = append(statuses, http.StatusGatewayTimeout)
	}
	return statuses
}

// routeBodyCap is the route's own body cap, else the server's.
func routeBodyCap(cfg Config, p route.Policy) int64 {
	if p.MaxBodyBytes > 0 {
		return p.MaxBodyBytes
	}
	return cfg.MaxBodyBytes
}

// routeTimeout is the route's own deadline, else the server's; negative means none.
func routeTimeout(cfg Config, p route.Policy) time.Duration {
	if p.Timeout != 0 {
		return p.Timeout
	}
	return cfg.RequestTimeout
}

// capBody refuses a declared Content-Length over limit at once and wraps the
// body so that reading past limit fails, which catches chunked bodies too.
func capBody(c *gin.Context, limit int64) bool {
	r := c.Request
	if r.ContentLength > limit {
		// The body stays unread, so the connection cannot be reused.
		c.Header("Connection", "close")
		problem.Abort(c, http.StatusRequestEntityTooLarge,
			"request body is larger than "+strconv.FormatInt(limit, 10)+" bytes")
		return false
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = http.MaxBytesReader(c.Writer, r.Body, limit)
	}
	return true
}

// headerBytes counts the request line and headers about as net/http does.
func headerBytes(r *http.Request) int64 {
	n := int64(len(r.Method) + len(r.RequestURI) + len(r.Proto) + 4)
	for k, vs := range r.Header {
		for _, v := range vs {
			n += int64(len(k) + len(v) + 4)
		}
	}
	return n + int64(len(r.Host)+8)
}

// runWithDeadline runs the rest of the chain under a context deadline. If the
// handler has not answered when it passes, a 504 problem goes out at once from
// the timer's goroutine; whatever the handler writes afterwards is dropped.
func runWithDeadline(c *gin.Context, writers *deadlineWriterPool, timeout time.Duration) {
	now := time.Now()
	ctx := newDeadlineContext(c.Request.Context(), now.Add(timeout))
	w := writers.get(c, ctx, ctx.deadline.Sub(now))
	c.Request = c.Request.WithContext(ctx)
	c.Writer = w

	returned := false
	defer func() {
		if !returned {
			// A panic is on its way to the recover stage, which answers
			// through w; the deadline must not answer after it.
			w.timer.Stop()
			ctx.end(context.Canceled)
		}
	}()
	c.Next()
	returned = true

	stopped := w.timer.Stop() // false: expire has started, so w cannot be recycled
	answered := w.finish()
	c.Writer = w.ResponseWriter
	ctx.end(context.Canceled) // the request is over, as a deferred cancel would say
	if !answered && !time.Now().Before(ctx.deadline) {
		// The handler returned with nothing to say after its deadline, before
		// the timer could answer.
		problem.Abort(c, http.StatusGatewayTimeout, "the request took longer than its deadline")
	}
	if stopped {
		writers.put(w)
	}
}
