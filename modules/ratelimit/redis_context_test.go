package ratelimit

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"

	"github.com/meshkit/meshkit/internal/redistest"
)

// scriptStarts signals on calls each script call the client begins.
type scriptStarts struct{ calls chan struct{} }

func newScriptStarts(client redis.UniversalClient) *scriptStarts {
	s := &scriptStarts{calls: make(chan struct{}, 64)}
	client.AddHook(s)
	return s
}

func (s *scriptStarts) DialHook(next redis.DialHook) redis.DialHook { return next }

func (s *scriptStarts) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if name := cmd.Name(); name == "evalsha" || name == "eval" {
			select {
			case s.calls <- struct{}{}:
			default:
			}
		}
		return next(ctx, cmd)
	}
}

func (s *scriptStarts) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// drain forgets the calls signalled so far.
func (s *scriptStarts) drain() {
	for {
		select {
		case <-s.calls:
		default:
			return
		}
	}
}

// wait waits for the next script call to begin.
func (s *scriptStarts) wait(t *testing.T) {
	t.Helper()
	select {
	case <-s.calls:
	case <-time.After(10 * time.Second):
		t.Fatal("no script call began within 10s")
	}
}

// waitQueued waits until the queue of the worker deciding key under limit
// holds n requests.
func waitQueued(t *testing.T, r *Redis, key string, limit Limit, n int) {
	t.Helper()
	queue := r.queues[hashKey(r.seed, limit, key)%numWorkers]
	for deadline := time.Now().Add(10 * time.Second); len(queue) != n; {
		if time.Now().After(deadline) {
			t.Fatalf("the worker's queue holds %d requests after 10s, want %d", len(queue), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestRedisCallerGoneWhileQueued: a client that disconnects while its
// request waits in a worker's queue behind a slow Redis call is not charged,
// and the worker that takes the request afterwards reads nothing of its gin
// context, which gin has handed to the next requests by then (under -race, a
// read of it is a reported data race; without, the abandoned request was
// decided with the next request's live context and charged).
func TestRedisCallerGoneWhileQueued(t *testing.T) {
	server := redistest.Start(t)
	client := newTestClient(t, RedisConfig{Addr: server.Addr(), Timeout: 10 * time.Second})
	starts := newScriptStarts(client)
	r := newTestRedis(t, client, RedisOptions{Timeout: 10 * time.Second, FailureMode: FailClosed, Log: slog.New(slog.DiscardHandler)})

	const (
		rounds  = 3
		holders = 8 // requests that take gin contexts from the pool meanwhile
		key     = "ip:127.0.0.1"
	)
	engine := gin.New()
	engine.ContextWithFallback = true // as httpserver's engine has it
	left := make(chan struct{}, 1)
	limits := make([]Limit, rounds)
	for i := range limits {
		limits[i] = Limit{Name: fmt.Sprintf("round%d", i), Rate: 1, Period: time.Hour, Burst: 10}.prepared()
		engine.GET(fmt.Sprintf("/limited/%d", i), func(c *gin.Context) {
			c.Next()
			left <- struct{}{}
		}, limitHandler(r, limits[i], nil), func(c *gin.Context) { c.Status(http.StatusNoContent) })
	}
	held, release := make(chan struct{}), make(chan struct{})
	engine.GET("/hold", func(c *gin.Context) {
		held <- struct{}{}
		<-release
		c.Status(http.StatusNoContent)
	})
	srv := httptest.NewServer(engine)
	t.Cleanup(srv.Close)
	transport := &http.Transport{MaxIdleConnsPerHost: holders}
	t.Cleanup(transport.CloseIdleConnections)
	httpClient := &http.Client{Transport: transport}
	get := func(ctx context.Context, path string) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+path, nil)
		if err != nil {
			return err
		}
		resp, err := httpClient.Do(req)
		if err != nil {
			return err
		}
		return resp.Body.Close()
	}
	ctx := context.Background()
	if _, err := r.Allow(ctx, "ip:192.0.2.1", sharedLimit); err != nil { // loads the script
		t.Fatal(err)
	}

	for round, limit := range limits {
		server.Pause()
		starts.drain()
		// A call the worker is busy with, for as long as Redis is paused...
		first := make(chan error, 1)
		go func() {
			_, err := r.Allow(ctx, key, limit)
			first <- err
		}()
		starts.wait(t)
		// ...a request queued behind it, whose client goes.
		gone, cancel := context.WithCancel(ctx)
		abandoned := make(chan error, 1)
		go func() { abandoned <- get(gone, fmt.Sprintf("/limited/%d", round)) }()
		waitQueued(t, r, key, limit, 1)
		cancel()
		<-left
		if err := <-abandoned; err == nil {
			t.Fatal("the abandoned request got an answer")
		}
		// Gin hands its context on to the next requests, which wait...
		var holding sync.WaitGroup
		for range holders {
			holding.Go(func() {
				if err := get(ctx, "/hold"); err != nil {
					t.Error(err)
				}
			})
		}
		for range holders {
			<-held
		}
		// ...while the worker takes the abandoned request.
		server.Resume()
		if err := <-first; err != nil {
			t.Fatal(err)
		}
		d, err := r.Allow(ctx, key, limit) // queued after the abandoned one
		for range holders {
			release <- struct{}{}
		}
		holding.Wait()
		if err != nil {
			t.Fatal(err)
		}
		if want := limit.Burst - 2; d.Remaining != want {
			t.Fatalf("round %d: Remaining %d after the first call and this one, want %d: the abandoned request was charged", round, d.Remaining, want)
		}
	}
}
