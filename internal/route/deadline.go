package route

import "context"

// deadlineHookKey is the context key of the hook [OnDeadline] sets.
type deadlineHookKey struct{}

// OnDeadline returns a copy of ctx that carries f, for the stage that puts
// the route's deadline on the request (the limits stage, [StageLimits]): it
// calls f once, from its timer's goroutine, when the request's context ends
// before the rest of the chain has returned: the deadline has passed (the
// 504 is answered, and the read of the request's body cut), or the client
// has gone. A stage before it that holds something for the request (the
// admission stage its place under the concurrency limit) lets go then,
// rather than when a handler that ignores its context returns. f must be
// safe to call together with the stage's own code after c.Next, and cheap.
// Hooks set on ctx before are called too, the latest first.
func OnDeadline(ctx context.Context, f func()) context.Context {
	if prev, ok := ctx.Value(deadlineHookKey{}).(func()); ok {
		next := f
		f = func() { next(); prev() }
	}
	return context.WithValue(ctx, deadlineHookKey{}, f)
}

// DeadlinePassed calls the hooks [OnDeadline] set on ctx, if any. The
// stage that owns the request's deadline calls it.
func DeadlinePassed(ctx context.Context) {
	if f, ok := ctx.Value(deadlineHookKey{}).(func()); ok {
		f()
	}
}
