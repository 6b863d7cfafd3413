package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshkit/meshkit/internal/config"
)

// orders is a section as a team's module would write it: defaults that
// differ by environment, Validate, and a rule production adds.
type orders struct {
	Limit   int           `yaml:"limit" env:"T_ORDERS_LIMIT"`
	Timeout time.Duration `yaml:"timeout" env:"T_ORDERS_TIMEOUT"`
	Audit   bool          `yaml:"audit" env:"T_ORDERS_AUDIT"`
}

func ordersDefaults(env string) orders {
	o := orders{Limit: 10, Timeout: time.Second}
	if env == config.Production {
		o.Limit = 100
	}
	return o
}

func (o orders) Validate() error {
	if o.Limit < 1 {
		return errors.New("T_ORDERS_LIMIT: must be at least 1")
	}
	return nil
}

func (o orders) ValidateEnv(env string) error {
	if env == config.Production && !o.Audit {
		return errors.New("T_ORDERS_AUDIT: production needs it on")
	}
	return nil
}

type billing struct {
	Currency string `yaml:"currency" env:"T_BILLING_CURRENCY"`
}

func sections() []config.Section {
	return []config.Section{
		config.NewSection("orders", ordersDefaults),
		config.NewSection("billing", config.AnyEnv(func() billing { return billing{Currency: "EUR"} })),
	}
}

func writeYAML(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "service.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadServesEverySection(t *testing.T) {
	file := writeYAML(t, "orders:\n  limit: 7\n  timeout: 5s\nbilling:\n  currency: USD\n")
	l, err := config.Load(config.Source{File: file, Lookup: lookup(map[string]string{"T_ORDERS_LIMIT": "8"})}, sections())
	if err != nil {
		t.Fatal(err)
	}
	o, err := config.ValueOf[orders](l, "orders")
	if err != nil {
		t.Fatal(err)
	}
	b, err := config.ValueOf[billing](l, "billing")
	if err != nil {
		t.Fatal(err)
	}
	// The environment wins over the file, the file over the defaults.
	if o.Limit != 8 || o.Timeout != 5*time.Second || b.Currency != "USD" || l.Env() != config.Development {
		t.Errorf("loaded %+v %+v in %s; want limit 8 (env), timeout 5s and USD (file), development", o, b, l.Env())
	}
	var keys []string
	for _, s := range l.Sections() {
		keys = append(keys, s.Key)
	}
	if strings.Join(keys, ",") != "billing,orders" {
		t.Errorf("sections %v, want billing and orders, sorted", keys)
	}
	if _, err := config.ValueOf[billing](l, "orders"); err == nil {
		t.Error("ValueOf with the wrong type succeeded")
	}
}

func TestLoadTellsSectionsTheEnvironment(t *testing.T) {
	// Production's defaults, and its rule.
	_, err := config.Load(config.Source{Lookup: lookup(map[string]string{"SERVICE_ENV": "production"})}, sections())
	if err == nil || err.Error() != "T_ORDERS_AUDIT: production needs it on" {
		t.Fatalf("error %v, want production's rule", err)
	}
	l, err := config.Load(config.Source{Lookup: lookup(map[string]string{"SERVICE_ENV": "production", "T_ORDERS_AUDIT": "true"})}, sections())
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := config.ValueOf[orders](l, "orders"); o.Limit != 100 || l.Env() != config.Production {
		t.Errorf("limit %d in %s, want production's default 100", o.Limit, l.Env())
	}
	// The file's env picks the defaults too; SERVICE_ENV wins over it.
	file := writeYAML(t, "env: production\norders:\n  audit: true\n")
	l, err = config.Load(config.Source{File: file, Lookup: lookup(nil)}, sections())
	if err != nil || l.Env() != config.Production {
		t.Fatalf("env from the file: %v, %v", l, err)
	}
	l, err = config.Load(config.Source{File: file, Lookup: lookup(map[string]string{"SERVICE_ENV": "development"})}, sections())
	if err != nil || l.Env() != config.Development {
		t.Fatalf("SERVICE_ENV over the file: %v, %v", l, err)
	}
}

func TestLoadErrorsAreOneLineNamingTheSetting(t *testing.T) {
	tests := []struct {
		name     string
		file     string
		vars     map[string]string
		sections []config.Section
		want     string
	}{
		{"validate", "", map[string]string{"T_ORDERS_LIMIT": "0"}, nil, "T_ORDERS_LIMIT: must be at least 1"},
		{"bad value", "", map[string]string{"T_ORDERS_TIMEOUT": "soon"}, nil, `T_ORDERS_TIMEOUT="soon": not a duration`},
		{"unknown environment", "", map[string]string{"SERVICE_ENV": "staging"}, nil, `SERVICE_ENV="staging": must be development or production`},
		{"unknown section", "shipping:\n  fast: true\n", nil, nil, "shipping (line 1): unknown setting (the sections are: env, billing, orders)"},
		{"unknown key", "orders:\n  limitt: 3\n", nil, nil, "orders.limitt (line 2): unknown setting"},
		{"not a mapping", "- a\n", nil, nil, "want a mapping of settings"},
		{"two sections, one key", "", nil, append(sections(), config.NewSection("orders", config.AnyEnv(func() billing { return billing{} }))),
			`two sections have the key "orders"`},
		{"one variable, two sections", "", nil, append(sections(), config.NewSection("invoices", config.AnyEnv(func() billing { return billing{} }))),
			`T_BILLING_CURRENCY is read by two sections, "billing" and "invoices"`},
		{"reserved key", "", nil, []config.Section{config.NewSection("env", ordersDefaults)}, `the key "env" is reserved`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := config.Source{Lookup: lookup(tt.vars)}
			if tt.file != "" {
				src.File = writeYAML(t, tt.file)
			}
			secs := tt.sections
			if secs == nil {
				secs = sections()
			}
			_, err := config.Load(src, secs)
			var cfgErr *config.Error
			if !errors.As(err, &cfgErr) {
				t.Fatalf("error %v (%T), want a *config.Error", err, err)
			}
			if msg := err.Error(); !strings.Contains(msg, tt.want) || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line containing %q", msg, tt.want)
			}
		})
	}
}

func TestLoadSectionIgnoresTheOtherSections(t *testing.T) {
	file := writeYAML(t, "orders:\n  limit: 3\nbilling:\n  currency: GBP\n")
	b, err := config.LoadSection(config.Source{File: file, Lookup: lookup(nil)}, "billing",
		config.AnyEnv(func() billing { return billing{Currency: "EUR"} }))
	if err != nil || b.Currency != "GBP" {
		t.Errorf("LoadSection = %+v, %v; want GBP from the file", b, err)
	}
}

func TestSectionEnvNames(t *testing.T) {
	got := config.NewSection("s", config.AnyEnv(func() settings { return settings{} })).EnvNames()
	want := "T_NAME,T_ON,T_COUNT,T_BYTES,T_SMALL,T_SHARE,T_ORIGINS,T_DELAY"
	if strings.Join(got, ",") != want {
		t.Errorf("EnvNames = %v, want %s", got, want)
	}
}
