// Package logtest holds what tests need to read what a logger wrote.
package logtest

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"
)

// Buffer is a log destination that a logger and a test may share: writes and
// reads are safe for concurrent use. The zero value is empty and ready.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Lines returns the non-empty lines written so far.
func (b *Buffer) Lines() []string {
	return strings.FieldsFunc(b.String(), func(r rune) bool { return r == '\n' })
}

// Records decodes the lines written so far as JSON records, failing t on a
// line that is not one, or that has a key twice in one object
// ([CheckStrictJSON]).
func (b *Buffer) Records(t testing.TB) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for _, line := range b.Lines() {
		if err := CheckStrictJSON([]byte(line)); err != nil {
			t.Errorf("log line %q: %v", line, err)
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		recs = append(recs, rec)
	}
	return recs
}
