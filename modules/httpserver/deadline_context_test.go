package httpserver

import (
	"context"
	"errors"
	"testing"
	"time"
)

type key struct{}

func closedWithin(ch <-chan struct{}, d time.Duration) bool {
	select {
	case <-ch:
		return true
	default:
	}
	select {
	case <-ch:
		return true
	case <-time.After(d):
		return false
	}
}

func TestDeadlineContext(t *testing.T) {
	deadline := time.Now().Add(time.Hour)

	t.Run("reports the sooner deadline", func(t *testing.T) {
		parent, cancel := context.WithDeadline(context.Background(), deadline.Add(-time.Minute))
		defer cancel()
		if d, ok := newDeadlineContext(parent, deadline).Deadline(); !ok || !d.Equal(deadline.Add(-time.Minute)) {
			t.Errorf("Deadline = %v %v, want the parent's sooner one", d, ok)
		}
		if d, ok := newDeadlineContext(context.Background(), deadline).Deadline(); !ok || !d.Equal(deadline) {
			t.Errorf("Deadline = %v %v, want ours", d, ok)
		}
	})
	t.Run("ended by its timer", func(t *testing.T) {
		for _, doneFirst := range []bool{true, false} {
			ctx := newDeadlineContext(context.WithValue(context.Background(), key{}, "v"), deadline)
			var done <-chan struct{}
			if doneFirst {
				done = ctx.Done()
			}
			if ctx.Err() != nil {
				t.Fatalf("Err before the end = %v", ctx.Err())
			}
			ctx.end(context.DeadlineExceeded)
			ctx.end(context.Canceled) // a second end changes nothing
			if done == nil {
				done = ctx.Done()
			}
			if !closedWithin(done, 0) || !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				t.Errorf("doneFirst=%v: Done closed=%v, Err=%v; want closed, DeadlineExceeded", doneFirst, closedWithin(done, 0), ctx.Err())
			}
			if ctx.Value(key{}) != "v" {
				t.Error("values of the parent are lost")
			}
		}
	})
	t.Run("ended by its parent", func(t *testing.T) {
		// Nobody asked for Done: Err asks the parent.
		parent, cancel := context.WithCancel(context.Background())
		ctx := newDeadlineContext(parent, deadline)
		cancel()
		if !errors.Is(ctx.Err(), context.Canceled) || !closedWithin(ctx.Done(), 0) {
			t.Errorf("Err=%v after the parent ended, want Canceled and Done closed", ctx.Err())
		}
		// Done asked first: the watch on the parent closes it.
		parent, cancel = context.WithCancel(context.Background())
		ctx = newDeadlineContext(parent, deadline)
		done := ctx.Done()
		cancel()
		if !closedWithin(done, 5*time.Second) || !errors.Is(ctx.Err(), context.Canceled) {
			t.Errorf("Err=%v after the parent ended, want Canceled and Done closed", ctx.Err())
		}
	})
	t.Run("children end with it", func(t *testing.T) {
		ctx := newDeadlineContext(context.Background(), deadline)
		child, cancel := context.WithCancel(ctx)
		defer cancel()
		ctx.end(context.DeadlineExceeded)
		if !closedWithin(child.Done(), 5*time.Second) || !errors.Is(child.Err(), context.DeadlineExceeded) {
			t.Errorf("child Err = %v, want DeadlineExceeded", child.Err())
		}
	})
	t.Run("end releases the watch on the parent", func(t *testing.T) {
		parent, cancel := context.WithCancel(context.Background())
		defer cancel()
		ctx := newDeadlineContext(parent, deadline)
		_ = ctx.Done()
		ctx.end(context.Canceled)
		if ctx.stopWatch != nil {
			t.Error("the watch on the parent is still registered")
		}
	})
	t.Run("AfterFunc runs once it ends, unless stopped", func(t *testing.T) {
		ctx := newDeadlineContext(context.Background(), deadline)
		ran, stopped := make(chan struct{}), make(chan struct{})
		ctx.AfterFunc(func() { close(ran) })
		stop := ctx.AfterFunc(func() { close(stopped) })
		if !stop() || stop() {
			t.Error("stop = false before the end, or true twice; want true, then false")
		}
		if closedWithin(ran, 0) {
			t.Fatal("AfterFunc's function ran before the context ended")
		}
		ctx.end(context.DeadlineExceeded)
		if !closedWithin(ran, 5*time.Second) || closedWithin(stopped, 100*time.Millisecond) {
			t.Error("after the end: want the registered function run and the stopped one not")
		}
		late := make(chan struct{})
		if stop := ctx.AfterFunc(func() { close(late) }); !closedWithin(late, 5*time.Second) || stop() {
			t.Error("AfterFunc on an ended context: want its function run at once, and stop false")
		}
	})
}
