package main_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// TestOpenAPICommandPrintsTheCommittedDocument runs `service openapi` (the
// binary of the tests, whose test routes it leaves out: it prints the
// document of modules()) and compares its output with docs/openapi.json,
// byte for byte: a route added, changed or removed without regenerating the
// committed copy fails here, saying how to regenerate it.
func TestOpenAPICommandPrintsTheCommittedDocument(t *testing.T) {
	r := runService(t, cleanEnv(), "openapi")
	if r.exitCode != 0 || r.stderr != "" {
		t.Fatalf("service openapi: exit %d, stderr:\n%s", r.exitCode, r.stderr)
	}
	committed, err := os.ReadFile(filepath.Join("..", "..", "docs", "openapi.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal([]byte(r.stdout), committed) {
		t.Fatalf("service openapi prints another document than docs/openapi.json (%d bytes, committed %d): regenerate it with\n\tgo run ./cmd/service openapi > docs/openapi.json", len(r.stdout), len(committed))
	}
	if !strings.HasSuffix(r.stdout, "}\n") || !strings.Contains(r.stdout, "\n  \"openapi\": \"3.1.0\",\n") {
		t.Errorf("want indented JSON of OpenAPI 3.1.0 ending in a newline, got:\n%.300s", r.stdout)
	}
	doc, err := openapi3.NewLoader().LoadFromData([]byte(r.stdout))
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(t.Context()); err != nil {
		t.Fatalf("the document is not valid OpenAPI 3.1: %v", err)
	}
	// Its own path, whichever other modules a team removes.
	if doc.Paths.Value("/openapi.json") == nil {
		t.Errorf("no /openapi.json in the document")
	}
	if doc.Paths.Value("/apptest/hello") != nil {
		t.Errorf("the document has the tests' routes: service openapi prints the app of modules() alone")
	}
}

// TestOpenAPICommandFailsLikeServe: a configuration that does not load
// stops `service openapi` as it stops the service, in one line naming the
// setting, with exit status 1; a bad flag exits 2.
func TestOpenAPICommandFailsLikeServe(t *testing.T) {
	r := runService(t, cleanEnv("SERVICE_HTTP_MAX_BODY_BYTES=-1"), "openapi")
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	if r.exitCode != 1 || r.stdout != "" || len(lines) != 1 ||
		!strings.HasPrefix(lines[0], "openapi: configuration: ") || !strings.Contains(lines[0], "SERVICE_HTTP_MAX_BODY_BYTES") {
		t.Errorf("a bad setting: exit %d, stdout %q, stderr:\n%s\nwant 1, nothing printed, one line naming SERVICE_HTTP_MAX_BODY_BYTES", r.exitCode, r.stdout, r.stderr)
	}
	if r := runService(t, cleanEnv(), "openapi", "-no-such-flag"); r.exitCode != 2 || r.stdout != "" {
		t.Errorf("a bad flag: exit %d, stdout %q, want 2 and nothing printed", r.exitCode, r.stdout)
	}
}
