package httpserver

import (
	"context"
	"sync"
	"time"
)

// deadlineContext is a request's context with its deadline, but without a
// timer of its own: the deadline writer's recycled timer ends it. Its Done
// channel, and the watch on the parent behind it, are made only when somebody
// asks for Done, which a handler that answers at once never does. So a
// request pays one small allocation for its deadline, where
// context.WithTimeout costs a timer and four allocations.
type deadlineContext struct {
	context.Context // the parent

	deadline time.Time // ours; Deadline reports the parent's when it is sooner

	mu        sync.Mutex
	done      chan struct{} // made on the first call to Done
	err       error         // set once, when the context ends
	stopWatch func() bool   // stops the watch on the parent, once Done made one
}

var _ context.Context = (*deadlineContext)(nil)

func newDeadlineContext(parent context.Context, deadline time.Time) *deadlineContext {
	if d, ok := parent.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	return &deadlineContext{Context: parent, deadline: deadline}
}

// Deadline reports the sooner of ours and the parent's.
func (c *deadlineContext) Deadline() (time.Time, bool) {
	return c.deadline, true
}

// Done returns a channel closed when the deadline passes (the timer calls
// end), the parent ends, or the request is over.
func (c *deadlineContext) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done != nil {
		return c.done
	}
	c.done = make(chan struct{})
	if c.err == nil {
		c.err = c.Context.Err()
	}
	if c.err != nil {
		close(c.done)
		return c.done
	}
	parent := c.Context
	c.stopWatch = context.AfterFunc(parent, func() { c.end(parent.Err()) })
	return c.done
}

// Err is nil until the context ends, then why it ended.
func (c *deadlineContext) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil && c.done == nil {
		// Nobody watches the parent for us; ask it.
		c.err = c.Context.Err()
	}
	return c.err
}

// end ends the context with err, unless it has ended already, and stops
// watching the parent.
func (c *deadlineContext) end(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
		if c.done != nil {
			close(c.done)
		}
	}
	if c.stopWatch != nil {
		c.stopWatch()
		c.stopWatch = nil
	}
}
