package httpserver

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"runtime/debug"

	"github.com/gin-gonic/gin"

	"github.com/meshkit/meshkit/internal/problem"
	"github.com/meshkit/meshkit/internal/requestid"
	"github.com/meshkit/meshkit/internal/route"
)

// recoverStage is the outermost stage: it settles the request ID, turns a
// panic into a logged 500 problem, and writes a problem for an error a handler
// left in c.Errors without answering.
func recoverStage(log *slog.Logger) route.Middleware {
	handler := func(c *gin.Context) {
		requestid.Ensure(c)
		defer func() {
			if v := recover(); v != nil {
				recovered(c, log, v)
			}
		}()
		c.Next()
		if len(c.Errors) > 0 && !c.Writer.Written() {
			writeError(c, log, c.Errors.Last().Err)
		}
	}
	return route.Middleware{
		Name:     "recover",
		Stage:    route.StageRecover,
		ForRoute: func(route.Policy) gin.HandlerFunc { return handler },
		Problems: func(route.Policy) []int { return []int{http.StatusInternalServerError} },
		Headers: func(route.Policy) []route.Header {
			return []route.Header{{Name: requestid.Header, Description: "The request's ID: the caller's when it sent a valid one, else a new one."}}
		},
	}
}

// recovered handles a panic value v from further down the chain.
func recovered(c *gin.Context, log *slog.Logger, v any) {
	if v == http.ErrAbortHandler { //nolint:errorlint // net/http compares it the same way
		panic(v) // the handler asked net/http to abort the response
	}
	log.ErrorContext(c, "panic in handler",
		slog.Any("panic", v),
		slog.String("stack", string(debug.Stack())),
		slog.String("route", c.FullPath()),
		slog.String("request_id", requestid.From(c)))
	if c.Writer.Written() {
		// Part of the response is out; the only honest signal left is to cut
		// the connection so the client sees it incomplete.
		panic(http.ErrAbortHandler)
	}
	problem.Abort(c, http.StatusInternalServerError, "the server failed to handle the request")
}

// writeError answers for an error a handler reported with c.Error.
func writeError(c *gin.Context, log *slog.Logger, err error) {
	var p *problem.Problem
	switch {
	case errors.As(err, &p):
		problem.Write(c, p)
	case errors.Is(err, context.DeadlineExceeded):
		problem.Abort(c, http.StatusGatewayTimeout, "the request took longer than its deadline")
	case errors.Is(err, context.Canceled):
		c.Abort() // the client has gone; nobody reads an answer
	default:
		log.ErrorContext(c, "handler error",
			slog.String("error", err.Error()),
			slog.String("route", c.FullPath()),
			slog.String("request_id", requestid.From(c)))
		problem.Abort(c, http.StatusInternalServerError, "the server failed to handle the request")
	}
}
