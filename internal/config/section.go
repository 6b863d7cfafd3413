package config

import (
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Environments SERVICE_ENV may name. A section's defaults and rules may differ
// between them (see [NewSection] and [EnvValidator]).
const (
	Development = "development"
	Production  = "production"
)

// Env is the environment the configuration was loaded for: [Development] or
// [Production]. The app provides it, for the few stages whose behaviour
// differs by environment (the HTTP server refuses to start an
// unauthenticated API in production).
type Env string

// Validator is a section's value that checks itself after loading. Its error
// names the variable at fault, in one line.
type Validator interface {
	Validate() error
}

// EnvValidator is a section's value with rules that depend on the
// environment, such as settings production requires. The loader calls it
// after Validate.
type EnvValidator interface {
	ValidateEnv(env string) error
}

// Section is one module's part of the configuration: a top-level YAML key and
// a struct type whose fields carry `yaml` and `env` tags (see the package
// comment). A module registers its section with [Provide]; the loader serves
// every registered section, so a module added to the app brings its settings
// with it.
type Section struct {
	// Key is the section's top-level YAML key, such as "ratelimit".
	Key string

	typ      reflect.Type
	defaults func(env string) any // a pointer to a new value holding env's defaults
}

// NewSection describes the section key of type T (a struct) with its
// defaults for an environment. After loading, T's Validate and ValidateEnv
// run when T has them ([Validator], [EnvValidator]).
func NewSection[T any](key string, defaults func(env string) T) Section {
	return Section{
		Key: key,
		typ: reflect.TypeFor[T](),
		defaults: func(env string) any {
			v := defaults(env)
			return &v
		},
	}
}

// AnyEnv adapts a defaults function that does not depend on the environment
// to [NewSection] and [Provide].
func AnyEnv[T any](defaults func() T) func(env string) T {
	return func(string) T { return defaults() }
}

// Type is the section's struct type.
func (s Section) Type() reflect.Type { return s.typ }

// Defaults returns a pointer to a new value of the section's type holding the
// defaults of env.
func (s Section) Defaults(env string) any { return s.defaults(env) }

// EnvNames lists the environment variables the section reads, in field
// order.
func (s Section) EnvNames() []string {
	var names []string
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			switch {
			case !f.IsExported():
			case f.Tag.Get("env") != "":
				names = append(names, f.Tag.Get("env"))
			case f.Type.Kind() == reflect.Struct:
				walk(f.Type)
			}
		}
	}
	walk(s.typ)
	return names
}

// Source says where configuration comes from.
type Source struct {
	// File is a YAML file; "" means SERVICE_CONFIG_FILE, and none if unset.
	File string
	// Lookup reads environment variables. Default: os.LookupEnv.
	Lookup LookupFunc
}

// MapLookup is a LookupFunc over vars alone, for tests and tools that must
// not read the process's environment.
func MapLookup(vars map[string]string) LookupFunc {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

// Error is a configuration error: one line naming the variable, YAML key or
// file at fault. The loader returns it, so that a caller can tell a bad
// configuration (exit 1, one line) from other start-up failures even through
// the Fx errors that wrap it.
type Error struct{ err error }

func (e *Error) Error() string { return e.err.Error() }

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.err }

// Errorf returns an [Error] formatted as fmt.Errorf does, for a module that
// reads a setting of its own outside its section (the telemetry module's
// OTEL_* variables) and finds a value it cannot honour: the service then
// reports it as it reports the loader's, in one line.
func Errorf(format string, args ...any) error {
	return &Error{fmt.Errorf(format, args...)}
}

// Loaded is the loaded configuration: the environment and each section's
// value, validated.
type Loaded struct {
	env      string
	sections []Section
	values   map[string]any // section key -> pointer to its value
}

// Env is the environment the configuration was loaded for.
func (l *Loaded) Env() string { return l.env }

// Sections are the sections loaded, sorted by key.
func (l *Loaded) Sections() []Section { return slices.Clone(l.sections) }

// Value returns the value of section key, a pointer to the section's type,
// and whether the section was loaded.
func (l *Loaded) Value(key string) (any, bool) {
	v, ok := l.values[key]
	return v, ok
}

// ValueOf returns section key's value as T.
func ValueOf[T any](l *Loaded, key string) (T, error) {
	var zero T
	v, ok := l.values[key]
	if !ok {
		return zero, fmt.Errorf("config: no section %q is registered", key)
	}
	p, ok := v.(*T)
	if !ok {
		return zero, fmt.Errorf("config: section %q is a %T, not a %T", key, v, &zero)
	}
	return *p, nil
}

// Load reads each section's defaults for the environment, then the YAML file,
// then the environment variables, and validates every section (sorted by
// key; the first error is returned). SERVICE_ENV, or the file's top-level
// "env", picks the environment (default development). A top-level YAML key
// that no section claims is an error naming the key and its line; so are two
// sections with one key, or one variable read by two sections. Every error is
// an *[Error] of one line.
func Load(src Source, sections []Section) (*Loaded, error) {
	l, err := load(src, sections, false)
	if err != nil {
		return nil, &Error{err}
	}
	return l, nil
}

// LoadSection loads one section alone, ignoring the file's other sections: for
// a tool that needs a few settings of a service (its admin address) and not
// the whole app.
func LoadSection[T any](src Source, key string, defaults func(env string) T) (T, error) {
	l, err := load(src, []Section{NewSection(key, defaults)}, true)
	if err != nil {
		var zero T
		return zero, &Error{err}
	}
	return ValueOf[T](l, key)
}

func load(src Source, sections []Section, partial bool) (*Loaded, error) {
	sections = slices.Clone(sections)
	slices.SortFunc(sections, func(a, b Section) int { return strings.Compare(a.Key, b.Key) })
	if err := checkUnique(sections); err != nil {
		return nil, err
	}
	lookup := src.Lookup
	if lookup == nil {
		lookup = os.LookupEnv
	}
	file := src.File
	if file == "" {
		file, _ = lookup("SERVICE_CONFIG_FILE")
	}
	doc, err := readDocument(file)
	if err != nil {
		return nil, err
	}
	env, err := environment(doc, lookup)
	if err != nil {
		return nil, err
	}

	l := &Loaded{env: env, sections: sections, values: make(map[string]any, len(sections))}
	for _, s := range sections {
		l.values[s.Key] = s.Defaults(env)
	}
	if doc != nil {
		if err := l.applyYAML(doc, partial); err != nil {
			return nil, fmt.Errorf("config file %s: %w", file, err)
		}
	}
	for _, s := range sections {
		if err := FromEnv(l.values[s.Key], lookup); err != nil {
			return nil, err
		}
	}
	for _, s := range sections {
		if err := validate(l.values[s.Key], env); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// checkUnique refuses two sections with one key, or one variable read by two
// sections: either would make a setting mean two things.
func checkUnique(sections []Section) error {
	readBy := map[string]string{}
	for i, s := range sections {
		if s.Key == "" || s.Key == "env" {
			return fmt.Errorf("config: section %s: the key %q is reserved", s.typ, s.Key)
		}
		if i > 0 && sections[i-1].Key == s.Key {
			return fmt.Errorf("config: two sections have the key %q (%s and %s)", s.Key, sections[i-1].typ, s.typ)
		}
		for _, name := range s.EnvNames() {
			if other, ok := readBy[name]; ok {
				return fmt.Errorf("config: %s is read by two sections, %q and %q", name, other, s.Key)
			}
			readBy[name] = s.Key
		}
	}
	return nil
}

// readDocument parses file, or returns nil when there is none.
func readDocument(file string) (*yaml.Node, error) {
	if file == "" {
		return nil, nil
	}
	data, err := os.ReadFile(file) //nolint:gosec // G304: the operator names the configuration file
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		// yaml.v3 lists its errors on several lines; keep them on one.
		return nil, fmt.Errorf("config file %s: %s", file, strings.Join(strings.Fields(err.Error()), " "))
	}
	if len(doc.Content) == 0 {
		return nil, nil // an empty file holds no settings
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("config file %s: the document (line %d): want a mapping of settings", file, root.Line)
	}
	return root, nil
}

// environment is SERVICE_ENV, else the file's "env", else development.
func environment(doc *yaml.Node, lookup LookupFunc) (string, error) {
	env := Development
	if doc != nil {
		for i := 0; i+1 < len(doc.Content); i += 2 {
			if doc.Content[i].Value == "env" {
				env = doc.Content[i+1].Value
			}
		}
	}
	if v, ok := lookup("SERVICE_ENV"); ok {
		env = strings.TrimSpace(v)
	}
	if env != Development && env != Production {
		return "", fmt.Errorf("SERVICE_ENV=%q: must be %s or %s", env, Development, Production)
	}
	return env, nil
}

// applyYAML hands each top-level key to its section. With partial, keys of
// sections not loaded are passed over.
func (l *Loaded) applyYAML(doc *yaml.Node, partial bool) error {
	for i := 0; i+1 < len(doc.Content); i += 2 {
		keyNode, valueNode := doc.Content[i], doc.Content[i+1]
		if keyNode.Value == "env" {
			continue
		}
		v, ok := l.values[keyNode.Value]
		switch {
		case ok:
			if err := walkYAML(reflect.ValueOf(v).Elem(), valueNode, keyNode.Value+"."); err != nil {
				return err
			}
		case !partial:
			return fmt.Errorf("%s (line %d): unknown setting (the sections are: env, %s)",
				keyNode.Value, keyNode.Line, strings.Join(l.keys(), ", "))
		}
	}
	return nil
}

func (l *Loaded) keys() []string {
	keys := make([]string, 0, len(l.sections))
	for _, s := range l.sections {
		keys = append(keys, s.Key)
	}
	return keys
}

// validate runs the section's checks; v is a pointer, whose method set holds
// the methods declared on the value type too.
func validate(v any, env string) error {
	if val, ok := v.(Validator); ok {
		if err := val.Validate(); err != nil {
			return err
		}
	}
	if val, ok := v.(EnvValidator); ok {
		return val.ValidateEnv(env)
	}
	return nil
}
