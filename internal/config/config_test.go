package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/meshkit/meshkit/internal/config"
)

type inner struct {
	Origins []string      `yaml:"origins" env:"T_ORIGINS"`
	Delay   time.Duration `yaml:"delay" env:"T_DELAY"`
}

type settings struct {
	Name    string  `yaml:"name" env:"T_NAME"`
	On      bool    `yaml:"on" env:"T_ON"`
	Count   int     `yaml:"count" env:"T_COUNT"`
	Bytes   int64   `yaml:"bytes" env:"T_BYTES"`
	Small   uint8   `yaml:"small" env:"T_SMALL"`
	Share   float64 `yaml:"share" env:"T_SHARE"`
	Inner   inner   `yaml:"inner"`
	Ignored string
}

func lookup(vars map[string]string) config.LookupFunc {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

func TestFromEnvSetsEveryKind(t *testing.T) {
	s := settings{Name: "default", Count: 7}
	err := config.FromEnv(&s, lookup(map[string]string{
		"T_ON": "true", "T_COUNT": " 42 ", "T_BYTES": "1048576", "T_SMALL": "255", "T_SHARE": "0.25",
		"T_ORIGINS": "a, b,,c ", "T_DELAY": "1m30s",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := settings{Name: "default", On: true, Count: 42, Bytes: 1 << 20, Small: 255, Share: 0.25,
		Inner: inner{Origins: []string{"a", "b", "c"}, Delay: 90 * time.Second}}
	if s.Name != want.Name || s.On != want.On || s.Count != want.Count || s.Bytes != want.Bytes ||
		s.Small != want.Small || s.Share != want.Share || s.Inner.Delay != want.Inner.Delay ||
		strings.Join(s.Inner.Origins, "|") != "a|b|c" {
		t.Errorf("got %+v, want %+v", s, want)
	}
}

func TestFromEnvErrorsNameTheVariable(t *testing.T) {
	for name, value := range map[string]string{
		"T_ON": "yes please", "T_COUNT": "12abc", "T_BYTES": "1e6", "T_SMALL": "256",
		"T_SHARE": "half", "T_DELAY": "90",
	} {
		var s settings
		err := config.FromEnv(&s, lookup(map[string]string{name: value}))
		if err == nil || !strings.HasPrefix(err.Error(), name+"=") {
			t.Errorf("%s=%q: error %v, want one starting with the variable", name, value, err)
		}
	}
}

func TestFromYAML(t *testing.T) {
	s := settings{Name: "default", Count: 7}
	doc := "name: from-file\ninner:\n  origins: [x, y]\n  delay: 250ms\nshare: 0.5\n"
	if err := config.FromYAML(&s, []byte(doc)); err != nil {
		t.Fatal(err)
	}
	if s.Name != "from-file" || s.Count != 7 || s.Share != 0.5 || s.Inner.Delay != 250*time.Millisecond ||
		strings.Join(s.Inner.Origins, "|") != "x|y" {
		t.Errorf("got %+v", s)
	}
	for _, empty := range []string{"", "\n# only a comment\n"} {
		if err := config.FromYAML(&s, []byte(empty)); err != nil {
			t.Errorf("empty document %q: %v", empty, err)
		}
	}
}

func TestFromYAMLErrorsNameThePathAndLine(t *testing.T) {
	for doc, want := range map[string]string{
		"nmae: x\n":                 "nmae (line 1): unknown setting", //nolint:misspell // the misspelt key is the test
		"inner:\n  delay: soon\n":   `inner.delay="soon" (line 2): not a duration`,
		"inner:\n  extra: 1\n":      "inner.extra (line 2): unknown setting",
		"count: [1, 2]\n":           "count",
		"inner: 5\n":                "inner (line 1): want a mapping",
		"- a\n- b\n":                "the document",
		"name: [unclosed\n":         "yaml:",
		"on: maybe\n":               `on="maybe" (line 1): not a boolean`,
		"inner:\n  origins: {a: 1}": "inner.origins",
	} {
		var s settings
		err := config.FromYAML(&s, []byte(doc))
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: error %v, want one line containing %q", doc, err, want)
		}
	}
}
