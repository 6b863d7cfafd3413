package logtest

import (
	"strings"
	"testing"
)

func TestCheckStrictJSON(t *testing.T) {
	for _, tc := range []struct {
		line, wantErr string // "" for a valid line
	}{
		{`{"msg":"request","status":200}`, ""},
		{`{"a":{"b":1,"c":[{"d":1},{"d":2}]},"e":[1,"x",null,true]}`, ""},
		{`{}`, ""},
		{`{"request_id":"X","trace_id":"t","request_id":"X"}`, `$: duplicate key "request_id"`},
		{`{"a":{"b":1,"b":2}}`, `$.a: duplicate key "b"`},
		{`{"a":[{"b":1,"b":2}]}`, `$.a[0]: duplicate key "b"`},
		{`[1,2]`, "not a JSON object"},
		{`plain text`, "not JSON"},
		{`{"a":1}{"b":2}`, "more than one JSON value"},
		{`{"a":1`, "EOF"},
	} {
		err := CheckStrictJSON([]byte(tc.line))
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v, want valid", tc.line, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: %v, want an error with %q", tc.line, err, tc.wantErr)
		}
	}
}
