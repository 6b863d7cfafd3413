package httpserver

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"sync"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/trace"

	"github.com/meshkit/meshkit/internal/problem"
	"github.com/meshkit/meshkit/internal/requestid"
)

// deadlineWriter stands between a handler and the response while a request
// deadline runs, so that the deadline's timer (on its own goroutine) and the
// handler never write at once. The handler gets a header map of its own, which
// is copied out when it commits, so the timer never races it on headers either.
// After the timer has answered, the handler's writes are dropped.
type deadlineWriter struct {
	gin.ResponseWriter // the response under the handler; written only under mu

	// Captured on the handler's goroutine for the timer's answer.
	requestID string
	ctx       context.Context // the request context with the deadline

	header http.Header // the handler's headers, until committed; no lock needed

	mu        sync.Mutex
	status    int  // the status the handler asked for, before committing
	committed bool // the handler's headers have gone out
	expired   bool // the timer has answered 504
	finished  bool // the handler has returned; the timer may no longer write
}

var _ gin.ResponseWriter = (*deadlineWriter)(nil)

func newDeadlineWriter(c *gin.Context, ctx context.Context) *deadlineWriter {
	return &deadlineWriter{ResponseWriter: c.Writer, requestID: requestid.From(c), ctx: ctx}
}

// expire runs on the timer's goroutine when the request context is done.
func (w *deadlineWriter) expire() {
	w.mu.Lock()
	defer w.mu.Unlock()
	// A cancelled parent (the client went away) is no deadline: nobody reads.
	if w.finished || w.committed || w.expired || !errors.Is(w.ctx.Err(), context.DeadlineExceeded) {
		return
	}
	w.expired = true
	p := problem.New(http.StatusGatewayTimeout, "the request took longer than its deadline")
	p.RequestID = w.requestID
	if sc := trace.SpanContextFromContext(w.ctx); sc.HasTraceID() {
		p.TraceID = sc.TraceID().String()
	}
	// The handler still holds the connection; make the client open a new one.
	w.ResponseWriter.Header().Set("Connection", "close")
	problem.WriteTo(w.ResponseWriter, p)
	w.ResponseWriter.Flush()
}

// finish marks the handler as returned: from now on the timer does nothing.
// A status and headers the handler set without writing a body are handed to
// the response under it, which gin sends when the chain ends.
func (w *deadlineWriter) finish() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.finished = true
	if w.committed || w.expired {
		return
	}
	dst := w.ResponseWriter.Header()
	for k, v := range w.header {
		dst[k] = v
	}
	if w.status != 0 {
		w.ResponseWriter.WriteHeader(w.status)
	}
}

// commitLocked sends the handler's status and headers. Call with mu held.
func (w *deadlineWriter) commitLocked() {
	if w.committed {
		return
	}
	w.committed = true
	dst := w.ResponseWriter.Header()
	for k, v := range w.header {
		dst[k] = v
	}
	if w.status != 0 {
		w.ResponseWriter.WriteHeader(w.status)
	}
	w.ResponseWriter.WriteHeaderNow()
}

func (w *deadlineWriter) Header() http.Header {
	if w.header == nil {
		w.header = make(http.Header)
	}
	return w.header
}

func (w *deadlineWriter) WriteHeader(code int) {
	w.mu.Lock()
	if !w.committed && !w.expired {
		w.status = code
	}
	w.mu.Unlock()
}

func (w *deadlineWriter) WriteHeaderNow() {
	w.mu.Lock()
	if !w.expired {
		w.commitLocked()
	}
	w.mu.Unlock()
}

func (w *deadlineWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.expired {
		return 0, http.ErrHandlerTimeout
	}
	w.commitLocked()
	return w.ResponseWriter.Write(b)
}

func (w *deadlineWriter) WriteString(s string) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.expired {
		return 0, http.ErrHandlerTimeout
	}
	w.commitLocked()
	return w.ResponseWriter.WriteString(s)
}

func (w *deadlineWriter) Status() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.committed && !w.expired && w.status != 0 {
		return w.status
	}
	return w.ResponseWriter.Status()
}

func (w *deadlineWriter) Size() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ResponseWriter.Size()
}

func (w *deadlineWriter) Written() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.committed || w.expired
}

func (w *deadlineWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.expired {
		w.commitLocked()
		w.ResponseWriter.Flush()
	}
}

func (w *deadlineWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.expired {
		return nil, nil, http.ErrHandlerTimeout
	}
	w.committed = true // the handler owns the connection now
	return w.ResponseWriter.Hijack()
}
