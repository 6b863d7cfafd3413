package httpserver

import (
	"net/http"
	"net/http/pprof"
	"strings"
)

// pprofPrefix is where [withPprof] serves the profiles.
const pprofPrefix = "/debug/pprof/"

// withPprof serves net/http/pprof's handlers under /debug/pprof/ and every
// other path with next. The profiles bypass next's middleware chain: a CPU
// profile or an execution trace runs for as long as it was asked to, which
// the request deadline would cut.
func withPprof(next http.Handler) http.Handler {
	profiles := http.NewServeMux()
	profiles.HandleFunc(pprofPrefix, pprof.Index) // the index, and the named profiles (heap, goroutine, ...)
	profiles.HandleFunc(pprofPrefix+"cmdline", pprof.Cmdline)
	profiles.HandleFunc(pprofPrefix+"profile", pprof.Profile)
	profiles.HandleFunc(pprofPrefix+"symbol", pprof.Symbol)
	profiles.HandleFunc(pprofPrefix+"trace", pprof.Trace)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, pprofPrefix) {
			profiles.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}
