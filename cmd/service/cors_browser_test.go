package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/meshkit/meshkit/app/apptest"
	"github.com/meshkit/meshkit/internal/devpki"
)

// browserTimeout bounds each step in the browser (its start, a page load, a
// fetch, its close): seconds on a quiet machine, more under load.
const browserTimeout = time.Minute

// chromeNames are the programs looked for on PATH, in order, when CHROME_PATH
// does not name one.
var chromeNames = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

// TestCORSInABrowser is CORS as browsers apply it, which is what it exists
// for: headless Chromium loads a page from an allowed origin and one from a
// foreign origin, and each page calls the built binary's API with fetch, a
// bearer token and a JSON body, so that the browser sends a preflight first.
// It runs the binary (not app.New in process), because what a team ships is
// the binary and its SERVICE_CORS_* settings read from the environment: the
// test covers the loader, the stage and the listener as deployed.
//
// Three origins take part: the allowed page (http://127.0.0.1:P1), the
// foreign page (http://localhost:P2: another host is another origin) and the
// API (http://127.0.0.1:P3). The API's address is a recording reverse proxy
// in front of the service, so that the test sees on the wire what the browser
// sent (the preflight, the request, its Cookie) and what the service answered,
// which the browser hides from the page.
//
// Table-driven over SERVICE_CORS_ALLOW_CREDENTIALS: a fetch with
// credentials: 'include' (which sends the API origin's cookie) works only when
// it is true, and a fetch without credentials, the bearer token set by the
// page included, works either way.
func TestCORSInABrowser(t *testing.T) {
	chrome := findChrome(t)
	const secret = "0123456789abcdef0123456789abcdef"
	token, err := devpki.DevToken([]byte(secret), "alice", "", "meshkit", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, allowCredentials := range []bool{false, true} {
		t.Run("SERVICE_CORS_ALLOW_CREDENTIALS="+strconv.FormatBool(allowCredentials), func(t *testing.T) {
			allowedPage := newPageServer(t, "127.0.0.1")
			foreignPage := newPageServer(t, "localhost")
			s := startService(t, loopbackEnv(
				"SERVICE_CORS_ALLOWED_ORIGINS="+allowedPage.origin,
				"SERVICE_CORS_ALLOW_CREDENTIALS="+strconv.FormatBool(allowCredentials),
				"SERVICE_AUTH_HMAC_SECRET="+secret, "SERVICE_AUTH_AUDIENCE=meshkit",
			))
			api := newWire(t, s.apiURL(""))
			b := startBrowser(t, chrome)
			// A cookie of the API's origin, which only a credentialed fetch sends.
			b.do(t, "set a cookie for the API", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
				_, err := cdp.Call(ctx, t, network.SetCookie, network.SetCookieParams{Name: "session", Value: "s3cret", URL: api.origin + "/"})
				return err
			}))
			echo := api.origin + apptest.EchoPath
			postEcho := func(credentials string) fetchInit {
				return fetchInit{
					Method:      http.MethodPost,
					Headers:     map[string]string{"Authorization": "Bearer " + token, "Content-Type": "application/json"},
					Body:        `{"message":"from the page"}`,
					Credentials: credentials,
				}
			}

			// The foreign page: the preflight gets the 403 problem, the
			// browser refuses the fetch, and the POST is never sent.
			b.open(t, foreignPage.origin)
			if got := b.fetch(t, echo, postEcho("same-origin")); !got.blocked() {
				t.Errorf("POST from the foreign origin %s: the page read %s, want fetch to fail with a TypeError", foreignPage.origin, got)
			}
			foreign := api.from(foreignPage.origin)
			if len(foreign) != 1 || !foreign[0].isPreflight(http.MethodPost) || foreign[0].status != http.StatusForbidden ||
				foreign[0].respHeader.Get("Content-Type") != "application/problem+json" {
				t.Errorf("the foreign page's requests on the wire:\n%s\nwant only its preflight, answered 403 application/problem+json (and never its POST)", foreign)
			}
			b.wantConsole(t, "blocked by CORS policy", foreignPage.origin, "preflight")
			if n := s.stderr.count(`"method":"POST"`); n != 0 {
				t.Errorf("the service logged %d POST requests after the foreign page's fetch, want none", n)
			}
			// A simple request (a GET without headers of its own) needs no
			// preflight: it reaches the service, which answers without CORS
			// headers, and the browser keeps the answer from the page. CORS
			// guards what a page may read, not who may call: that is what
			// authentication is for.
			if got := b.fetch(t, api.origin+"/livez", fetchInit{Method: http.MethodGet}); !got.blocked() {
				t.Errorf("GET /livez from the foreign origin: the page read %s, want fetch to fail with a TypeError", got)
			}
			if foreign := api.from(foreignPage.origin); len(foreign) != 2 || foreign[1].method != http.MethodGet || foreign[1].status != http.StatusOK ||
				foreign[1].respHeader.Get("Access-Control-Allow-Origin") != "" {
				t.Errorf("the foreign page's requests on the wire:\n%s\nwant its GET /livez last, answered 200 without Access-Control-Allow-Origin", foreign)
			}

			// The allowed page: preflight, then the POST with the token; the
			// page reads the answer and the exposed headers.
			b.open(t, allowedPage.origin)
			got := b.fetch(t, echo, postEcho("same-origin"))
			if got.Status != http.StatusOK || got.Body != `{"message":"from the page"}` {
				t.Fatalf("POST %s from the allowed origin: the page read %s, want 200 and its message back", apptest.EchoPath, got)
			}
			allowed := api.from(allowedPage.origin)
			if len(allowed) != 2 || !allowed[0].isPreflight(http.MethodPost) || allowed[0].status != http.StatusNoContent ||
				!strings.EqualFold(allowed[0].reqHeader.Get("Access-Control-Request-Headers"), "authorization,content-type") {
				t.Fatalf("the allowed page's requests on the wire:\n%s\nwant its preflight (asking for authorization,content-type) answered 204, then the POST", allowed)
			}
			post := allowed[1]
			if post.method != http.MethodPost || post.reqHeader.Get("Authorization") != "Bearer "+token || post.reqHeader.Get("Cookie") != "" {
				t.Errorf("the POST on the wire: %s, want it with the bearer token and without the cookie (no credentials)", post)
			}
			// Exposed headers reach the page; a header CORS does not expose
			// (Date, on every answer) does not.
			if got.RequestID == nil || *got.RequestID != post.respHeader.Get("X-Request-Id") || *got.RequestID == "" {
				t.Errorf("X-Request-ID as the page read it: %s, want %q as sent", jsString(got.RequestID), post.respHeader.Get("X-Request-Id"))
			}
			if got.RateLimit == nil || *got.RateLimit != post.respHeader.Get("RateLimit") || *got.RateLimit == "" {
				t.Errorf("RateLimit as the page read it: %s, want %q as sent", jsString(got.RateLimit), post.respHeader.Get("RateLimit"))
			}
			if got.Date != nil || post.respHeader.Get("Date") == "" {
				t.Errorf("Date as the page read it: %s (sent: %q), want it sent and hidden from the page", jsString(got.Date), post.respHeader.Get("Date"))
			}

			// The token passed the preflight: the answer names its subject.
			hello := b.fetch(t, api.origin+apptest.HelloPath, fetchInit{Method: http.MethodGet, Headers: map[string]string{"Authorization": "Bearer " + token}})
			if hello.Status != http.StatusOK || hello.Body != `{"message":"hello, alice"}` {
				t.Errorf("GET %s with the token from the allowed page: the page read %s, want hello, alice", apptest.HelloPath, hello)
			}

			// credentials: 'include' sends the API origin's cookie; the
			// browser lets the page have the answer only when the service
			// allows credentials.
			before := len(api.from(allowedPage.origin))
			got = b.fetch(t, echo, postEcho("include"))
			var posts wireExchanges
			for _, e := range api.from(allowedPage.origin)[before:] {
				if e.method == http.MethodPost {
					posts = append(posts, e)
				}
			}
			if allowCredentials {
				if got.Status != http.StatusOK || got.Body != `{"message":"from the page"}` {
					t.Errorf("credentialed POST: the page read %s, want 200 and its message back", got)
				}
				if len(posts) != 1 || posts[0].reqHeader.Get("Cookie") != "session=s3cret" ||
					posts[0].respHeader.Get("Access-Control-Allow-Credentials") != "true" {
					t.Errorf("credentialed POST on the wire:\n%s\nwant one POST with the cookie, answered with Access-Control-Allow-Credentials: true", posts)
				}
			} else {
				if !got.blocked() {
					t.Errorf("credentialed POST: the page read %s, want fetch to fail: the service does not allow credentials", got)
				}
				if len(posts) != 0 {
					t.Errorf("credentialed POST on the wire:\n%s\nwant none: the preflight does not allow credentials", posts)
				}
				b.wantConsole(t, "Access-Control-Allow-Credentials", allowedPage.origin)
			}
		})
	}
}

// findChrome is CHROME_PATH, else the first of chromeNames on PATH. Without
// one the test fails and says how to get it: the browser is the client that
// CORS is for, and no test skips for want of a part.
func findChrome(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROME_PATH"); p != "" {
		found, err := exec.LookPath(p)
		if err != nil {
			t.Fatalf("CHROME_PATH=%s: %v", p, err)
		}
		return found
	}
	for _, name := range chromeNames {
		if found, err := exec.LookPath(name); err == nil {
			return found
		}
	}
	t.Fatalf("no Chromium or Chrome for the CORS browser test: none of %s is on PATH. "+
		"Install it (Debian/Ubuntu: apt-get install chromium), put one of those on PATH, or set CHROME_PATH to the browser's binary",
		strings.Join(chromeNames, ", "))
	return ""
}

// pageHTML is the page both page servers serve: callAPI is what a
// single-page app does, fetch and read the answer; it reports what the page
// could read, or the error fetch rejected with.
const pageHTML = `<!doctype html>
<meta charset="utf-8">
<title>CORS test page</title>
<script>
async function callAPI(url, init) {
  try {
    const res = await fetch(url, init);
    return {
      status: res.status,
      body: await res.text(),
      requestID: res.headers.get("X-Request-ID"),
      rateLimit: res.headers.get("RateLimit"),
      date: res.headers.get("Date"),
    };
  } catch (e) {
    return {error: e.name + ": " + e.message};
  }
}
</script>
`

// pageServer serves pageHTML from origin.
type pageServer struct {
	origin string
}

// newPageServer serves the page on a loopback port and names its origin with
// host: "localhost" and "127.0.0.1" reach the same listener, but are two
// origins to the browser.
func newPageServer(t *testing.T, host string) pageServer {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(pageHTML))
	}))
	t.Cleanup(srv.Close)
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return pageServer{origin: "http://" + net.JoinHostPort(host, port)}
}

// wireExchange is one request that reached the wire and the service's answer.
type wireExchange struct {
	method, path          string
	reqHeader, respHeader http.Header
	status                int
}

// isPreflight reports whether e is a CORS preflight for method.
func (e wireExchange) isPreflight(method string) bool {
	return e.method == http.MethodOptions && e.reqHeader.Get("Access-Control-Request-Method") == method
}

func (e wireExchange) String() string {
	return fmt.Sprintf("%s %s (Origin %q, Access-Control-Request-Method %q, Authorization set: %t, Cookie %q) -> %d (Access-Control-Allow-Origin %q, Content-Type %q)",
		e.method, e.path, e.reqHeader.Get("Origin"), e.reqHeader.Get("Access-Control-Request-Method"), e.reqHeader.Get("Authorization") != "",
		e.reqHeader.Get("Cookie"), e.status, e.respHeader.Get("Access-Control-Allow-Origin"), e.respHeader.Get("Content-Type"))
}

// wireExchanges prints one wireExchange a line.
type wireExchanges []wireExchange

func (es wireExchanges) String() string {
	if len(es) == 0 {
		return "  (none)"
	}
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = "  " + e.String()
	}
	return strings.Join(lines, "\n")
}

// wire is the API's address as the pages know it: a reverse proxy to the
// service that notes every wireExchange. It changes nothing on the way.
type wire struct {
	origin string

	mu   sync.Mutex
	seen []wireExchange
}

func newWire(t *testing.T, target string) *wire {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	w := &wire{}
	transport := &http.Transport{}
	t.Cleanup(transport.CloseIdleConnections)
	proxy := &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(u) },
		Transport: transport,
		ModifyResponse: func(resp *http.Response) error {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.seen = append(w.seen, wireExchange{
				method: resp.Request.Method, path: resp.Request.URL.Path,
				reqHeader: resp.Request.Header.Clone(), respHeader: resp.Header.Clone(), status: resp.StatusCode,
			})
			return nil
		},
	}
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)
	w.origin = srv.URL
	return w
}

// from is the wireExchanges whose request came with this Origin, in order.
func (w *wire) from(origin string) wireExchanges {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out wireExchanges
	for _, e := range w.seen {
		if e.reqHeader.Get("Origin") == origin {
			out = append(out, e)
		}
	}
	return out
}

// browser is a headless Chromium of one test, with one tab.
type browser struct {
	ctx context.Context // the tab's chromedp context

	mu      sync.Mutex
	console []string // the console's messages, "level: text"
}

// startBrowser starts Chromium with a fresh profile under t.TempDir() and
// opens a tab; the browser is closed, and every process it started gone,
// before the test ends.
func startBrowser(t *testing.T, chrome string) *browser {
	t.Helper()
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chrome),
		chromedp.UserDataDir(filepath.Join(dir, "profile")),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true), // the sandbox needs user namespaces or a setuid helper, and refuses root
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		// No traffic of its own: the browser talks to the test's servers only.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		// Chromium's crash handler keeps its database under the default
		// profile's folder, not the one above, and outlives the browser by
		// moments: a HOME of the test's keeps it out of the developer's
		// ~/.config, and lets the cleanup find it with the others.
		chromedp.Env("HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config")),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	b := &browser{ctx: ctx}
	t.Cleanup(func() {
		closeCtx, cancelClose := context.WithTimeout(ctx, browserTimeout)
		defer cancelClose()
		if err := chromedp.Cancel(closeCtx); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("close the browser: %v", err)
		}
		cancel()
		cancelAlloc() // waits for the allocator's goroutines
		if left := processesUsing(dir, browserTimeout); len(left) > 0 {
			t.Errorf("browser processes still running %s after the browser closed (killed now): %v", browserTimeout, left)
		}
	})

	// The first action starts the browser, whose life is ctx's; a watchdog
	// bounds the start without giving ctx a deadline.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start %s: %v", chrome, err)
		}
	case <-time.After(browserTimeout):
		cancel()
		t.Fatalf("%s did not start within %s (then: %v)", chrome, browserTimeout, <-started)
	}
	// The console says why the browser refused a fetch: the page only gets
	// "TypeError: Failed to fetch".
	if err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*cdplog.EventEntryAdded); ok {
			b.mu.Lock()
			b.console = append(b.console, string(e.Entry.Level)+": "+e.Entry.Text)
			b.mu.Unlock()
		}
	}); err != nil {
		t.Fatalf("listen to the browser's console: %v", err)
	}
	b.do(t, "enable the console log", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, cdplog.Enable, cdp.Empty{})
		return err
	}))
	return b
}

// do runs step in the tab within browserTimeout.
func (b *browser) do(t *testing.T, what string, step chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, step); err != nil {
		t.Fatalf("browser: %s: %v", what, err)
	}
}

// open loads the page of origin.
func (b *browser) open(t *testing.T, origin string) {
	t.Helper()
	b.do(t, "open "+origin, chromedp.Navigate(origin+"/"))
}

// fetchInit is fetch's init argument.
type fetchInit struct {
	Method      string            `json:"method"`
	Headers     map[string]string `json:"headers,omitempty"`
	Body        string            `json:"body,omitempty"`
	Credentials string            `json:"credentials,omitempty"`
}

// pageRead is what callAPI reports: what the page could read of the answer,
// or the error fetch rejected with. A header the page may not read is nil.
type pageRead struct {
	Status    int     `json:"status"`
	Body      string  `json:"body"`
	RequestID *string `json:"requestID"`
	RateLimit *string `json:"rateLimit"`
	Date      *string `json:"date"`
	Error     string  `json:"error"`
}

// blocked reports whether fetch rejected as browsers do when CORS refuses:
// a TypeError, with nothing of the answer.
func (r pageRead) blocked() bool {
	return strings.HasPrefix(r.Error, "TypeError") && r.Status == 0
}

func (r pageRead) String() string {
	if r.Error != "" {
		return "error " + r.Error
	}
	return fmt.Sprintf("%d %q", r.Status, r.Body)
}

// jsString prints a header value the page read: null when it could not.
func jsString(p *string) string {
	if p == nil {
		return "null"
	}
	return strconv.Quote(*p)
}

// fetch runs callAPI(url, init) in the open page and waits for its report.
func (b *browser) fetch(t *testing.T, url string, init fetchInit) pageRead {
	t.Helper()
	args, err := json.Marshal([]any{url, init})
	if err != nil {
		t.Fatal(err)
	}
	expr := "callAPI(..." + string(args) + ")"
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	defer cancel()
	got, err := chromedp.Run(ctx, chromedp.Evaluate[pageRead](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("browser: %s: %v", expr, err)
	}
	return got
}

// wantConsole waits until the console has logged a message with every one of
// parts: the browser's reason for refusing a fetch.
func (b *browser) wantConsole(t *testing.T, parts ...string) {
	t.Helper()
	found := pollUntil(browserTimeout, func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, m := range b.console {
			if containsAll(m, parts) {
				return true
			}
		}
		return false
	})
	if !found {
		b.mu.Lock()
		defer b.mu.Unlock()
		t.Errorf("the browser's console has no message with %q; it has:\n%s", parts, strings.Join(b.console, "\n"))
	}
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// processesUsing waits up to timeout for every process whose command line
// mentions dir to exit, kills those left, and returns them ("pid: command").
// It reads /proc: elsewhere it finds none.
func processesUsing(dir string, timeout time.Duration) []string {
	find := func() map[int]string {
		found := map[int]string{}
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			if err == nil && bytes.Contains(cmdline, []byte(dir)) {
				found[pid] = string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
			}
		}
		return found
	}
	if pollUntil(timeout, func() bool { return len(find()) == 0 }) {
		return nil
	}
	var left []string
	for pid, cmd := range find() {
		if p, err := os.FindProcess(pid); err == nil {
			_ = p.Kill()
		}
		left = append(left, fmt.Sprintf("%d: %.200s", pid, cmd))
	}
	return left
}
