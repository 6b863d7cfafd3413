package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/meshkit/meshkit/app"
	"github.com/meshkit/meshkit/internal/config"
)

// The configuration reference, docs/CONFIGURATION.md, is checked here
// against the sections this service's modules register (main's modules():
// the template's list with a team's changes, so a module a team adds shows up
// here until it is documented), so that it cannot drift:
//
//   - its settings table (variable | YAML key | default | meaning) has one
//     row per leaf field of each section, naming the field's env tag and the
//     dotted path of its yaml tags (the section's key first), plus
//     SERVICE_ENV, and no other row;
//   - each row's default, given to config.FromEnv as the variable's value,
//     loads to the field's value in the section's defaults for development
//     and for production, unless the row names each environment's value
//     ("`0s` in development, `5s` in production"); "(none...)" stands for
//     the empty value;
//   - its environment-only table (variable | default | meaning) lists the
//     SERVICE_* names the configuration loader reads itself and exactly the
//     OTEL_* names the telemetry module's code mentions, none of them a
//     field's variable.
//
// The sample configuration file, configs/service.yaml, is made here from
// the same sections and the reference's meanings (sampleConfig), and checked
// to be what they make, and to load to the development defaults:
//
//	go test ./cmd/service -run TestConfigReferenceSampleFile -update
//
// rewrites it.

const (
	referenceFile = "../../docs/CONFIGURATION.md"
	sampleFile    = "../../configs/service.yaml"
	// regenerateSample is the command that rewrites sampleFile, from the root.
	regenerateSample = "go test ./cmd/service -run TestConfigReferenceSampleFile -update"
)

var update = flag.Bool("update", false, "rewrite configs/service.yaml from the sections and docs/CONFIGURATION.md")

// row is one row of a table of the reference.
type row struct {
	line             int
	variable, yaml   string
	defaults, remark string
}

// setting is a leaf field of a section, or SERVICE_ENV (no section).
type setting struct {
	env, yaml string
	section   config.Section
	index     []int
}

// environments are the environments whose defaults the reference gives.
var environments = []string{config.Development, config.Production}

func TestConfigReferenceCoversEveryField(t *testing.T) {
	settings, envOnly := readReference(t)
	fields := configSettings(t)

	byEnv := map[string]setting{}
	for _, f := range fields {
		byEnv[f.env] = f
	}
	documented := map[string]row{}
	for _, r := range settings {
		if prev, dup := documented[r.variable]; dup {
			t.Errorf("%s:%d: %s is documented twice (also line %d)", referenceFile, r.line, r.variable, prev.line)
			continue
		}
		documented[r.variable] = r
		f, ok := byEnv[r.variable]
		switch {
		case !ok:
			t.Errorf("%s:%d: %s is not a variable of any section (environment-only names go in the second table)", referenceFile, r.line, r.variable)
		case r.yaml != f.yaml:
			t.Errorf("%s:%d: %s has YAML key %q in the table, %q in its section", referenceFile, r.line, r.variable, r.yaml, f.yaml)
		case r.remark == "":
			t.Errorf("%s:%d: %s has no meaning", referenceFile, r.line, r.variable)
		}
	}
	for _, f := range fields {
		if _, ok := documented[f.env]; !ok {
			t.Errorf("%s (YAML %s) is a setting of the section %q but not in %s", f.env, f.yaml, f.section.Key, referenceFile)
		}
	}

	// The environment-only table: real names, and every OTEL_* name the
	// telemetry module knows.
	loaderSource := goSource(t, "../../internal/config")
	otelNames := map[string]bool{}
	for _, name := range regexp.MustCompile(`OTEL_[A-Z][A-Z_]*[A-Z]`).FindAllString(goSource(t, "../../modules/telemetry"), -1) {
		otelNames[name] = true
	}
	seen := map[string]bool{}
	for _, r := range envOnly {
		switch {
		case seen[r.variable]:
			t.Errorf("%s:%d: %s is documented twice", referenceFile, r.line, r.variable)
		case byEnv[r.variable].env != "":
			t.Errorf("%s:%d: %s is a variable of a section: document it in the settings table, with its YAML key", referenceFile, r.line, r.variable)
		case strings.HasPrefix(r.variable, "OTEL_") && !otelNames[r.variable]:
			t.Errorf("%s:%d: %s is not read by modules/telemetry", referenceFile, r.line, r.variable)
		case strings.HasPrefix(r.variable, "SERVICE_") && !strings.Contains(loaderSource, `"`+r.variable+`"`):
			t.Errorf("%s:%d: %s is not read by the configuration loader (internal/config)", referenceFile, r.line, r.variable)
		case !strings.HasPrefix(r.variable, "OTEL_") && !strings.HasPrefix(r.variable, "SERVICE_"):
			t.Errorf("%s:%d: %s: want a SERVICE_ or OTEL_ name", referenceFile, r.line, r.variable)
		case r.remark == "" || r.defaults == "":
			t.Errorf("%s:%d: %s needs a default and a meaning", referenceFile, r.line, r.variable)
		}
		seen[r.variable] = true
	}
	for name := range otelNames {
		if !seen[name] {
			t.Errorf("modules/telemetry reads %s, which %s's environment-only table does not list", name, referenceFile)
		}
	}
	if !seen["SERVICE_CONFIG_FILE"] {
		t.Errorf("%s: SERVICE_CONFIG_FILE is missing from the environment-only table", referenceFile)
	}
}

func TestConfigReferenceDefaults(t *testing.T) {
	settings, _ := readReference(t)
	byEnv := map[string]setting{}
	for _, f := range configSettings(t) {
		byEnv[f.env] = f
	}
	for _, r := range settings {
		f, ok := byEnv[r.variable]
		if !ok {
			continue // TestConfigReferenceCoversEveryField reports it
		}
		perEnv, err := parseDefault(r.defaults)
		if err != "" {
			t.Errorf("%s:%d: %s: default %q: %s", referenceFile, r.line, r.variable, r.defaults, err)
			continue
		}
		if f.env == "SERVICE_ENV" {
			if doc := perEnv[config.Development]; doc.text != config.Development {
				t.Errorf("%s:%d: SERVICE_ENV: the table's default is %s, the loader's is %q", referenceFile, r.line, doc, config.Development)
			}
			continue
		}
		for _, env := range environments {
			doc, want := perEnv[env], reflect.ValueOf(f.section.Defaults(env)).Elem().FieldByIndex(f.index)
			got, err := loadDocumented(f, doc)
			if err != nil {
				t.Errorf("%s:%d: %s: default %q does not load: %v", referenceFile, r.line, r.variable, doc.text, err)
				continue
			}
			if same := reflect.DeepEqual(got.Interface(), want.Interface()) || isEmpty(got) && isEmpty(want); !same {
				t.Errorf("%s:%d: %s: the table's default %s loads to %s, but the section's defaults for %s have %s", referenceFile, r.line, r.variable, doc, show(got), env, show(want))
			}
		}
	}

	// With nothing set, the loader picks development and its defaults.
	loaded := loadServiceConfig(t)
	if loaded.Env() != config.Development {
		t.Errorf("with nothing set the environment is %q, want %q", loaded.Env(), config.Development)
	}
	for _, s := range loaded.Sections() {
		got, _ := loaded.Value(s.Key)
		if want := s.Defaults(config.Development); !reflect.DeepEqual(got, want) {
			t.Errorf("section %q with nothing set = %+v, want its development defaults %+v", s.Key, got, want)
		}
	}
}

// TestParseDefault pins down the default column's convention.
func TestParseDefault(t *testing.T) {
	for _, tt := range []struct {
		cell, dev, prod, err string
	}{
		{cell: "`30s`", dev: "`30s`", prod: "`30s`"},
		{cell: "`0s` (the longest route deadline + 5s)", dev: "`0s`", prod: "`0s`"},
		{cell: "`0s` in development, `5s` in production", dev: "`0s`", prod: "`5s`"},
		{cell: "(none)", dev: "(none)", prod: "(none)"},
		{cell: "(none: CORS off)", dev: "(none)", prod: "(none)"},
		{cell: "`1s` in development", err: "names development but not production"},
		{cell: "30s", err: "want `value`, (none), or `a` in development, `b` in production"},
		{cell: "", err: "want `value`, (none), or `a` in development, `b` in production"},
	} {
		got, err := parseDefault(tt.cell)
		if err != tt.err {
			t.Errorf("parseDefault(%q) error %q, want %q", tt.cell, err, tt.err)
			continue
		}
		if err == "" && (got[config.Development].String() != tt.dev || got[config.Production].String() != tt.prod) {
			t.Errorf("parseDefault(%q) = %s, %s; want %s, %s", tt.cell, got[config.Development], got[config.Production], tt.dev, tt.prod)
		}
	}
}

// documentedValue is one default as the table writes it.
type documentedValue struct {
	none bool
	text string // without its backquotes
}

func (d documentedValue) String() string {
	if d.none {
		return "(none)"
	}
	return "`" + d.text + "`"
}

var (
	perEnvDefault = regexp.MustCompile("`([^`]*)` in (development|production)")
	plainDefault  = regexp.MustCompile("^`([^`]*)`(?: \\(.*\\))?$")
)

// parseDefault reads a default cell: "`value`" with an optional
// parenthesized remark, "`a` in development, `b` in production", or
// "(none)" with an optional ": remark" inside the parentheses. It returns
// the value for each environment, or what is wrong.
func parseDefault(cell string) (map[string]documentedValue, string) {
	if m := perEnvDefault.FindAllStringSubmatch(cell, -1); m != nil {
		values := map[string]documentedValue{}
		for _, sub := range m {
			values[sub[2]] = documentedValue{text: sub[1]}
		}
		for _, env := range environments {
			if _, ok := values[env]; !ok {
				other := config.Production
				if env == config.Production {
					other = config.Development
				}
				return nil, "names " + other + " but not " + env
			}
		}
		return values, ""
	}
	var v documentedValue
	switch {
	case cell == "(none)" || strings.HasPrefix(cell, "(none:") && strings.HasSuffix(cell, ")"):
		v.none = true
	case plainDefault.MatchString(cell):
		v.text = plainDefault.FindStringSubmatch(cell)[1]
	default:
		return nil, "want `value`, (none), or `a` in development, `b` in production"
	}
	return map[string]documentedValue{config.Development: v, config.Production: v}, ""
}

// loadDocumented returns the field f of a zero value of its section after
// loading the documented value as f's variable, through the service's own
// parser.
func loadDocumented(f setting, v documentedValue) (reflect.Value, error) {
	cfg := reflect.New(f.section.Type())
	if !v.none {
		err := config.FromEnv(cfg.Interface(), func(name string) (string, bool) {
			return v.text, name == f.env
		})
		if err != nil {
			return reflect.Value{}, err
		}
	}
	return cfg.Elem().FieldByIndex(f.index), nil
}

// show formats a setting's value for a message: durations as Go writes them.
func show(v reflect.Value) string {
	if v.Kind() == reflect.String {
		return fmt.Sprintf("%q", v.Interface())
	}
	return fmt.Sprintf("%v", v.Interface())
}

// isEmpty reports whether v is a zero value or an empty list ((none)).
func isEmpty(v reflect.Value) bool {
	return v.IsZero() || v.Kind() == reflect.Slice && v.Len() == 0
}

// loadServiceConfig loads this service's configuration (main's modules())
// with nothing set.
func loadServiceConfig(t *testing.T) *config.Loaded {
	t.Helper()
	loaded, err := app.LoadConfig(config.Source{Lookup: config.MapLookup(nil)}, modules()...)
	if err != nil {
		t.Fatal(err)
	}
	return loaded
}

// configSettings walks every section's nested structs and returns every leaf
// field with its env tag and the dotted path of its yaml tags, and
// SERVICE_ENV, the loader's own.
func configSettings(t *testing.T) []setting {
	t.Helper()
	out := []setting{{env: "SERVICE_ENV", yaml: "env"}}
	var walk func(s config.Section, typ reflect.Type, prefix string, index []int)
	walk = func(s config.Section, typ reflect.Type, prefix string, index []int) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			if !f.IsExported() {
				continue
			}
			key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			path := prefix + key
			idx := append(slices.Clone(index), i)
			if key == "" || key == "-" {
				t.Errorf("section %q: %s (%s) has no yaml tag", s.Key, f.Name, typ)
				continue
			}
			if f.Type.Kind() == reflect.Struct && f.Tag.Get("env") == "" {
				walk(s, f.Type, path+".", idx)
				continue
			}
			env := f.Tag.Get("env")
			if env == "" {
				t.Errorf("section %q: %s (YAML %s) has no env tag; every setting has a variable", s.Key, f.Name, path)
				continue
			}
			out = append(out, setting{env: env, yaml: path, section: s, index: idx})
		}
	}
	for _, s := range loadServiceConfig(t).Sections() {
		walk(s, s.Type(), s.Key+".", nil)
	}
	if len(out) == 1 {
		t.Fatal("the service's modules register no settings")
	}
	return out
}

// readReference parses the reference's two tables: the settings (variable,
// YAML key, default, meaning) and the environment-only names (variable,
// default, meaning).
func readReference(t *testing.T) (settings, envOnly []row) {
	t.Helper()
	data, err := os.ReadFile(referenceFile)
	if err != nil {
		t.Fatal(err)
	}

	const (
		settingsHeader = "| variable | YAML key | default | meaning |"
		envOnlyHeader  = "| variable | default | meaning |"
	)
	var table *[]row
	columns := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		switch {
		case text == settingsHeader:
			table, columns = &settings, 4
			continue
		case text == envOnlyHeader:
			table, columns = &envOnly, 3
			continue
		case !strings.HasPrefix(text, "|"):
			table = nil
			continue
		case table == nil || strings.HasPrefix(text, "|---"):
			continue
		}
		cells := strings.Split(strings.Trim(text, "|"), "|")
		if len(cells) != columns {
			t.Fatalf("%s:%d: %d cells, want %d (no | inside a cell): %s", referenceFile, line, len(cells), columns, text)
		}
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		r := row{line: line, variable: unquote(cells[0]), defaults: cells[columns-2], remark: cells[columns-1]}
		if columns == 4 {
			r.yaml = unquote(cells[1])
		}
		if !regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`).MatchString(r.variable) {
			t.Errorf("%s:%d: %q: want one variable name a row", referenceFile, line, cells[0])
		}
		*table = append(*table, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(settings) == 0 || len(envOnly) == 0 {
		t.Fatalf("%s: found %d settings and %d environment-only rows; want both tables, headed %q and %q", referenceFile, len(settings), len(envOnly), settingsHeader, envOnlyHeader)
	}
	return settings, envOnly
}

// unquote strips a cell's backquotes.
func unquote(cell string) string {
	return strings.TrimSuffix(strings.TrimPrefix(cell, "`"), "`")
}

// goSource is the text of the non-test Go files in dir.
func goSource(t *testing.T, dir string) string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		data, err := os.ReadFile(filepath.Clean(name))
		if err != nil {
			t.Fatal(err)
		}
		b.Write(data)
	}
	return b.String()
}

// TestConfigReferenceSampleFile checks configs/service.yaml: it is what
// sampleConfig makes of the sections and the reference (-update writes it),
// it sets every setting, and the configuration loader reads it, in
// development, to exactly each section's development defaults.
func TestConfigReferenceSampleFile(t *testing.T) {
	want := sampleConfig(t)
	if *update {
		if err := os.MkdirAll(filepath.Dir(sampleFile), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(sampleFile, want, 0o644); err != nil { //nolint:gosec // G306: a file of the repository, read by everyone
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(sampleFile)
	if err != nil {
		t.Fatalf("%v: write it with\n\t%s", err, regenerateSample)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is not what the sections and %s make (%s): regenerate it with\n\t%s", sampleFile, referenceFile, firstDifference(got, want), regenerateSample)
	}

	// Every setting is in the file, at its YAML key.
	var doc yaml.Node
	if err := yaml.Unmarshal(got, &doc); err != nil {
		t.Fatalf("%s: %v", sampleFile, err)
	}
	var keys []string
	for _, s := range configSettings(t) {
		keys = append(keys, s.yaml)
	}
	if leaves := yamlLeaves(doc.Content[0], ""); !slices.Equal(slices.Sorted(slices.Values(leaves)), slices.Sorted(slices.Values(keys))) {
		t.Errorf("%s sets %v, the sections have %v", sampleFile, leaves, keys)
	}

	// A real load, as `service -config configs/service.yaml` does.
	loaded, err := app.LoadConfig(config.Source{File: sampleFile, Lookup: config.MapLookup(nil)}, modules()...)
	if err != nil {
		t.Fatalf("%s does not load: %v", sampleFile, err)
	}
	if loaded.Env() != config.Development {
		t.Errorf("%s loads for %q, want %q", sampleFile, loaded.Env(), config.Development)
	}
	for _, s := range loaded.Sections() {
		got, _ := loaded.Value(s.Key)
		if want := s.Defaults(config.Development); !reflect.DeepEqual(got, want) {
			t.Errorf("section %q loaded from %s = %+v, want its development defaults %+v", s.Key, sampleFile, got, want)
		}
	}
}

// sampleConfig makes configs/service.yaml: a header that says what the file
// is, then env and every section with every setting at its development
// default, each under a comment with its meaning from the reference, its
// variable and, where production's default differs, that default. The
// sections come in the order the reference documents them, a section's
// settings in the order of its struct's fields.
func sampleConfig(t *testing.T) []byte {
	t.Helper()
	rows, _ := readReference(t)
	documented := map[string]row{}
	for _, r := range rows {
		documented[r.variable] = r
	}
	comment := func(indent int, env, production string) string {
		r, ok := documented[env]
		if !ok {
			t.Fatalf("%s has no row in %s: add its meaning there, then regenerate %s with\n\t%s", env, referenceFile, sampleFile, regenerateSample)
		}
		lines := wrap(r.remark, 80-indent-2)
		if strings.Contains(r.defaults, "(") && r.defaults != "(none)" {
			lines = append(lines, wrap("default: "+r.defaults, 80-indent-2)...)
		}
		last := env
		if production != "" {
			last += "; production: " + production
		}
		return "# " + strings.Join(append(lines, last), "\n# ")
	}

	root := &yaml.Node{Kind: yaml.MappingNode}
	envKey := &yaml.Node{Kind: yaml.ScalarNode, Value: "env", HeadComment: comment(0, "SERVICE_ENV", "")}
	root.Content = append(root.Content, envKey, &yaml.Node{Kind: yaml.ScalarNode, Value: config.Development})

	sections := loadServiceConfig(t).Sections()
	firstRow := func(s config.Section) int {
		i := slices.IndexFunc(rows, func(r row) bool { return strings.HasPrefix(r.yaml, s.Key+".") })
		if i < 0 {
			return len(rows) // undocumented: its settings fail below
		}
		return i
	}
	slices.SortStableFunc(sections, func(a, b config.Section) int { return firstRow(a) - firstRow(b) })

	var mapping func(dev, prod reflect.Value, indent int) *yaml.Node
	mapping = func(dev, prod reflect.Value, indent int) *yaml.Node {
		m := &yaml.Node{Kind: yaml.MappingNode}
		for i := range dev.NumField() {
			f := dev.Type().Field(i)
			key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if !f.IsExported() || key == "" || key == "-" {
				continue // configSettings reports a field without a yaml tag
			}
			keyNode := &yaml.Node{Kind: yaml.ScalarNode, Value: key}
			var value *yaml.Node
			if f.Type.Kind() == reflect.Struct && f.Tag.Get("env") == "" {
				value = mapping(dev.Field(i), prod.Field(i), indent+2)
			} else {
				value = yamlValue(t, dev.Field(i))
				production := ""
				if !reflect.DeepEqual(dev.Field(i).Interface(), prod.Field(i).Interface()) {
					production = yamlText(t, yamlValue(t, prod.Field(i)))
				}
				keyNode.HeadComment = comment(indent, f.Tag.Get("env"), production)
			}
			m.Content = append(m.Content, keyNode, value)
		}
		return m
	}
	for _, s := range sections {
		dev := reflect.ValueOf(s.Defaults(config.Development)).Elem()
		prod := reflect.ValueOf(s.Defaults(config.Production)).Elem()
		key := &yaml.Node{Kind: yaml.ScalarNode, Value: s.Key, HeadComment: "\n"} // a blank line before each section
		root.Content = append(root.Content, key, mapping(dev, prod, 2))
	}

	doc := &yaml.Node{Kind: yaml.DocumentNode, HeadComment: sampleHeader, Content: []*yaml.Node{root}}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// sampleHeader is the comment at the top of configs/service.yaml.
const sampleHeader = `# A sample configuration file: every setting of the service at its development
# default, under its meaning and the environment variable that overrides it
# (docs/CONFIGURATION.md has them as a table). Run the service with it:
#   service -config configs/service.yaml
#   go run ./cmd/service -config configs/service.yaml
# or with SERVICE_CONFIG_FILE=configs/service.yaml. Environment variables
# override the file. For a file of your own, copy it, keep the settings you
# change and delete the others: a setting the file leaves out keeps its
# default.
#
# Production (SERVICE_ENV=production, or env: production below) has other
# defaults for the settings marked "production: ...", but a setting that the
# file sets keeps the file's value there too: in a file for production, delete
# those settings or give them production's values.
#
# Generated from the sections of the service's modules and the meanings in
# docs/CONFIGURATION.md: do not edit it by hand. Regenerate it, from the
# repository's root, with
#   ` + regenerateSample

// yamlValue is v as a YAML value the configuration loader reads back to v:
// durations in Go syntax, lists as flow sequences ([a, b]).
func yamlValue(t *testing.T, v reflect.Value) *yaml.Node {
	t.Helper()
	value := v.Interface()
	if d, ok := value.(time.Duration); ok {
		value = shortDuration(d)
	}
	var n yaml.Node
	if err := n.Encode(value); err != nil {
		t.Fatal(err)
	}
	if n.Kind == yaml.SequenceNode {
		n.Style = yaml.FlowStyle
	}
	return &n
}

// yamlText is a value node as YAML writes it, on one line.
func yamlText(t *testing.T, n *yaml.Node) string {
	t.Helper()
	out, err := yaml.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// shortDuration writes d as time.Duration.String does, without its zero
// minutes and seconds: 2m, not 2m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// wrap breaks text into lines of at most width characters, at spaces (a
// longer word stands alone).
func wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(text) {
		switch {
		case line == "":
			line = word
		case len(line)+1+len(word) <= width:
			line += " " + word
		default:
			lines = append(lines, line)
			line = word
		}
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}

// yamlLeaves lists the dotted keys of n's scalar and sequence values.
func yamlLeaves(n *yaml.Node, prefix string) []string {
	var leaves []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, value := prefix+n.Content[i].Value, n.Content[i+1]
		if value.Kind == yaml.MappingNode {
			leaves = append(leaves, yamlLeaves(value, key+".")...)
			continue
		}
		leaves = append(leaves, key)
	}
	return leaves
}

// firstDifference names the first line where got and want differ.
func firstDifference(got, want []byte) string {
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := range max(len(g), len(w)) {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d is %q, want %q", i+1, gl, wl)
		}
	}
	return "they differ"
}
