package httpserver_test

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/meshkit/meshkit/internal/route"
)

// slowRoutes take longer than a short deadline, politely or not.
func slowRoutes(release <-chan struct{}) []route.Route {
	return []route.Route{
		{Method: http.MethodGet, Path: "/test/ignores-deadline", Handler: func(c *gin.Context) {
			<-release // a handler that never looks at its context
			c.Header("X-Late", "yes")
			c.String(http.StatusOK, "too late")
		}},
		{Method: http.MethodGet, Path: "/test/honours-deadline", Handler: func(c *gin.Context) {
			<-c.Done()
			_ = c.Error(c.Err())
		}},
		{Method: http.MethodGet, Path: "/test/own-timeout", Policy: route.Policy{Timeout: 2 * time.Second},
			Handler: func(c *gin.Context) {
				select {
				case <-time.After(300 * time.Millisecond):
					c.String(http.StatusOK, "in time")
				case <-c.Done():
					_ = c.Error(c.Err())
				}
			}},
		{Method: http.MethodGet, Path: "/test/no-timeout", Policy: route.Policy{Timeout: -1},
			Handler: func(c *gin.Context) {
				if _, ok := c.Deadline(); ok {
					c.String(http.StatusOK, "has a deadline")
					return
				}
				c.String(http.StatusOK, "no deadline")
			}},
	}
}

func TestRequestDeadline(t *testing.T) {
	cfg := testConfig()
	cfg.RequestTimeout = 200 * time.Millisecond
	release := make(chan struct{})
	s := start(t, cfg, slowRoutes(release)...)

	t.Run("handler ignores its context", func(t *testing.T) {
		begin := time.Now()
		resp, body := s.get(t, "/test/ignores-deadline")
		elapsed := time.Since(begin)
		p := expectProblem(t, resp, body, http.StatusGatewayTimeout)
		if p.Detail == "" || resp.Header.Get("X-Late") != "" {
			t.Errorf("got %+v with X-Late=%q; want the deadline's problem only", p, resp.Header.Get("X-Late"))
		}
		// The answer came from the deadline, not from the handler (which is
		// still blocked): generous bound, not a performance assertion.
		if elapsed > 5*time.Second {
			t.Errorf("504 took %v; want it at the 200ms deadline", elapsed)
		}
		close(release) // let the handler finish; its late write is dropped
	})
	t.Run("handler honours its context", func(t *testing.T) {
		resp, body := s.get(t, "/test/honours-deadline")
		expectProblem(t, resp, body, http.StatusGatewayTimeout)
	})
	t.Run("route with a longer deadline", func(t *testing.T) {
		resp, body := s.get(t, "/test/own-timeout")
		if resp.StatusCode != http.StatusOK || string(body) != "in time" {
			t.Errorf("GET /test/own-timeout = %d %s, want 200 in time", resp.StatusCode, body)
		}
	})
	t.Run("route without a deadline", func(t *testing.T) {
		resp, body := s.get(t, "/test/no-timeout")
		if string(body) != "no deadline" {
			t.Errorf("GET /test/no-timeout = %d %s, want no deadline", resp.StatusCode, body)
		}
	})
	s.expectServing(t)
}

// TestDeadlineRaceGivesOneWholeAnswer sends requests that finish around
// their deadline: each answer must be the handler's whole or the 504 whole,
// never a mix of both.
func TestDeadlineRaceGivesOneWholeAnswer(t *testing.T) {
	cfg := testConfig()
	cfg.RequestTimeout = 5 * time.Millisecond
	var calls atomic.Int64
	racer := route.Route{Method: http.MethodGet, Path: "/test/racer", Handler: func(c *gin.Context) {
		time.Sleep(time.Duration(calls.Add(1)%10) * time.Millisecond)
		c.Header("X-Handler", "yes")
		if calls.Load()%3 == 0 {
			c.Status(http.StatusAccepted) // status only, no body
			return
		}
		c.String(http.StatusOK, "whole")
	}}
	s := start(t, cfg, racer)
	var wg sync.WaitGroup
	var answers [3]atomic.Int64 // handler body, handler status only, deadline
	for range 8 {
		wg.Go(func() {
			for range 40 {
				resp, body := s.get(t, "/test/racer")
				handler := resp.Header.Get("X-Handler") == "yes"
				switch {
				case resp.StatusCode == http.StatusOK && handler && string(body) == "whole":
					answers[0].Add(1)
				case resp.StatusCode == http.StatusAccepted && handler && len(body) == 0:
					answers[1].Add(1)
				case resp.StatusCode == http.StatusGatewayTimeout && !handler:
					expectProblem(t, resp, body, http.StatusGatewayTimeout)
					answers[2].Add(1)
				default:
					t.Errorf("mixed answer: %d X-Handler=%q body %q", resp.StatusCode, resp.Header.Get("X-Handler"), body)
				}
			}
		})
	}
	wg.Wait()
	t.Logf("handler answers %d, status-only %d, deadline answers %d", answers[0].Load(), answers[1].Load(), answers[2].Load())
	if answers[0].Load() == 0 || answers[2].Load() == 0 {
		t.Errorf("the race was not exercised: %d handler answers, %d deadline answers", answers[0].Load(), answers[2].Load())
	}
}

// TestContextsDerivedFromTheRequestStartNoGoroutine derives 100 contexts
// from a request's context (as net/http's transport does for an outbound
// call) and checks that none of them starts the goroutine context.WithCancel
// falls back on when a parent can neither be found as a cancelCtx nor
// implements AfterFunc: it counts, in a dump of every goroutine's stack,
// those waiting in context's propagateCancel, before and while the contexts
// live.
func TestContextsDerivedFromTheRequestStartNoGoroutine(t *testing.T) {
	propagating := func() int {
		buf := make([]byte, 1<<20)
		for {
			n := runtime.Stack(buf, true)
			if n < len(buf) {
				return strings.Count(string(buf[:n]), "context.(*cancelCtx).propagateCancel")
			}
			buf = make([]byte, 2*len(buf))
		}
	}
	derive := route.Route{Method: http.MethodGet, Path: "/test/derive", Handler: func(c *gin.Context) {
		before := propagating()
		cancels := make([]context.CancelFunc, 0, 100)
		for i := range 100 {
			var cancel context.CancelFunc
			if i%2 == 0 {
				_, cancel = context.WithCancel(c.Request.Context())
			} else {
				_, cancel = context.WithTimeout(c.Request.Context(), time.Minute)
			}
			cancels = append(cancels, cancel)
		}
		during := propagating()
		for _, cancel := range cancels {
			cancel()
		}
		c.String(http.StatusOK, "%d %d", before, during)
	}}
	s := start(t, testConfig(), derive)
	resp, body := s.get(t, "/test/derive")
	var before, during int
	if _, err := fmt.Sscanf(string(body), "%d %d", &before, &during); resp.StatusCode != http.StatusOK || err != nil {
		t.Fatalf("GET /test/derive = %d %s (%v)", resp.StatusCode, body, err)
	}
	if during != before {
		t.Errorf("goroutines propagating a cancellation: %d before deriving 100 contexts, %d with them; want no new one", before, during)
	}
}
