package httpserver_test

import (
	"net/http"
	"net/http/httptrace"
	"testing"
	"time"
)

// A keep-alive connection older than SERVICE_HTTP_MAX_CONNECTION_AGE is
// closed after its next response (Connection: close), and the client's
// next request opens a new one; a young connection is kept.
func TestMaxConnectionAgeClosesOldConnections(t *testing.T) {
	cfg := testConfig()
	cfg.MaxConnectionAge = 2 * time.Second
	s := start(t, cfg)
	get := func() (reused, closed bool) {
		t.Helper()
		req := newRequest(t, http.MethodGet, s.url("/v1/hello"), nil)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused },
		}))
		resp, _ := s.do(t, req)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		return reused, resp.Close
	}
	if _, closed := get(); closed {
		t.Fatal("a new connection's first response closes it")
	}
	if reused, closed := get(); !reused || closed {
		t.Fatalf("a young connection: reused %v, closed %v; want reused and kept", reused, closed)
	}
	time.Sleep(cfg.MaxConnectionAge)
	if reused, closed := get(); !reused || !closed {
		t.Fatalf("a connection past its age: reused %v, closed %v; want its response to close it", reused, closed)
	}
	if reused, _ := get(); reused {
		t.Fatal("the request after the closing response reused the old connection")
	}
}

// SERVICE_HTTP_MAX_CONNECTION_AGE=0 keeps connections whatever their age.
func TestMaxConnectionAgeZeroKeepsConnections(t *testing.T) {
	cfg := testConfig()
	cfg.MaxConnectionAge = 0
	s := start(t, cfg)
	for range 3 {
		resp, _ := s.get(t, "/v1/hello")
		if resp.Close {
			t.Fatal("a response closed its connection with no maximum age")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
