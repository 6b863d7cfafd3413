package telemetry

import (
	"net/http"
	"net/url"
	"strings"

	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
)

// methodOther is http.request.method for a method not known.
var methodOther = semconv.HTTPRequestMethodOther.Value.AsString()

// defaultKnownMethods are the methods the HTTP semantic conventions know.
var defaultKnownMethods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace,
}

// knownMethods is a set of methods recorded as they are.
type knownMethods map[string]bool

// newKnownMethods returns the set of methods, or the conventions' own
// when methods is empty. Methods are case-sensitive, as in HTTP.
func newKnownMethods(methods []string) knownMethods {
	if len(methods) == 0 {
		methods = defaultKnownMethods
	}
	k := make(knownMethods, len(methods))
	for _, m := range methods {
		if m = strings.TrimSpace(m); m != "" {
			k[m] = true
		}
	}
	return k
}

// of returns method when it is known, else "_OTHER", so that a client cannot
// grow the metrics' label sets.
func (k knownMethods) of(method string) string {
	if k[method] {
		return method
	}
	return methodOther
}

// spanName is the conventions' span name for method (known or "_OTHER")
// before the route: the method, "HTTP" for "_OTHER".
func spanName(method string) string {
	if method == methodOther {
		return "HTTP"
	}
	return method
}

// redactedQueryParams are the query parameters whose values url.query must
// not carry (the conventions' list: they are credentials).
var redactedQueryParams = map[string]bool{
	"AWSAccessKeyId": true, "Signature": true, "sig": true, "X-Goog-Signature": true,
}

// redactQuery returns the raw query with the values of redactedQueryParams
// replaced by "REDACTED", the rest as it came.
func redactQuery(raw string) string {
	if !strings.Contains(raw, "=") {
		return raw
	}
	parts := strings.Split(raw, "&")
	changed := false
	for i, p := range parts {
		name, _, ok := strings.Cut(p, "=")
		if !ok {
			continue
		}
		if unescaped, err := url.QueryUnescape(name); err == nil {
			name = unescaped
		}
		if redactedQueryParams[name] {
			parts[i] = p[:strings.IndexByte(p, '=')+1] + "REDACTED"
			changed = true
		}
	}
	if !changed {
		return raw
	}
	return strings.Join(parts, "&")
}
