// Package config fills configuration structs from an optional YAML file and
// then from environment variables. A struct field takes part through its tags:
//
//	Addr string `yaml:"addr" env:"SERVICE_HTTP_ADDR"`
//
// Nested structs are walked. Supported field types: string, bool, the integer
// kinds, float64, time.Duration (Go syntax: 30s, 1m) and []string (a comma
// list in the environment, a sequence in YAML). Every error names the variable
// or file line and says what is wrong, in one line.
package config

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// LookupFunc returns an environment variable's value and whether it is set,
// like os.LookupEnv.
type LookupFunc func(name string) (string, bool)

// FromYAML applies a YAML document to dst, a pointer to a struct already
// holding the defaults. Keys follow the fields' `yaml` tags; a key the struct
// does not know is an error, and so is a value that does not parse, named by
// its dotted path and line.
func FromYAML(dst any, data []byte) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		// yaml.v3 lists its errors on several lines; keep them on one.
		return errors.New(strings.Join(strings.Fields(err.Error()), " "))
	}
	if len(doc.Content) == 0 {
		return nil // an empty file holds no settings
	}
	v := reflect.ValueOf(dst)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("config: FromYAML needs a pointer to a struct, got %T", dst)
	}
	return walkYAML(v.Elem(), doc.Content[0], "")
}

func walkYAML(v reflect.Value, node *yaml.Node, path string) error {
	if node.Kind != yaml.MappingNode {
		return fmt.Errorf("%s (line %d): want a mapping of settings", orRoot(path), node.Line)
	}
	fields := map[string]reflect.Value{}
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if key, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); f.IsExported() && key != "" && key != "-" {
			fields[key] = v.Field(i)
		}
	}
	for i := 0; i+1 < len(node.Content); i += 2 {
		keyNode, valueNode := node.Content[i], node.Content[i+1]
		key := path + keyNode.Value
		field, ok := fields[keyNode.Value]
		if !ok {
			return fmt.Errorf("%s (line %d): unknown setting", key, keyNode.Line)
		}
		if field.Kind() == reflect.Struct {
			if err := walkYAML(field, valueNode, key+"."); err != nil {
				return err
			}
			continue
		}
		if err := setFromNode(field, valueNode); err != nil {
			return fmt.Errorf("%s=%q (line %d): %w", key, valueNode.Value, valueNode.Line, err)
		}
	}
	return nil
}

// setFromNode sets a field from a scalar, or a list field from a sequence.
func setFromNode(field reflect.Value, node *yaml.Node) error {
	switch {
	case node.Kind == yaml.SequenceNode && field.Kind() == reflect.Slice:
		items := make([]string, 0, len(node.Content))
		for _, item := range node.Content {
			items = append(items, item.Value)
		}
		return set(field, strings.Join(items, ","))
	case node.Kind == yaml.ScalarNode:
		return set(field, node.Value)
	default:
		return errors.New("want a single value")
	}
}

func orRoot(path string) string {
	if path == "" {
		return "the document"
	}
	return strings.TrimSuffix(path, ".")
}

// FromEnv overrides the fields of dst (a pointer to a struct) that have an
// `env` tag with the variables that lookup finds set.
func FromEnv(dst any, lookup LookupFunc) error {
	v := reflect.ValueOf(dst)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("config: FromEnv needs a pointer to a struct, got %T", dst)
	}
	return walkEnv(v.Elem(), lookup)
}

func walkEnv(v reflect.Value, lookup LookupFunc) error {
	t := v.Type()
	for i := range t.NumField() {
		field, value := t.Field(i), v.Field(i)
		if !field.IsExported() {
			continue
		}
		name := field.Tag.Get("env")
		if name == "" {
			if value.Kind() == reflect.Struct {
				if err := walkEnv(value, lookup); err != nil {
					return err
				}
			}
			continue
		}
		raw, ok := lookup(name)
		if !ok {
			continue
		}
		if err := set(value, strings.TrimSpace(raw)); err != nil {
			return fmt.Errorf("%s=%q: %w", name, raw, err)
		}
	}
	return nil
}

var durationType = reflect.TypeFor[time.Duration]()

// set parses raw into v according to v's type.
func set(v reflect.Value, raw string) error {
	if v.Type() == durationType {
		d, err := time.ParseDuration(raw)
		if err != nil {
			return errors.New("not a duration (use Go syntax, such as 500ms, 30s or 1m)")
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(raw)
	case reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return errors.New("not a boolean (use true or false)")
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(raw, 10, v.Type().Bits())
		if err != nil {
			return errors.New("not a whole number")
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(raw, 10, v.Type().Bits())
		if err != nil {
			return errors.New("not a non-negative whole number")
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(raw, v.Type().Bits())
		if err != nil {
			return errors.New("not a number")
		}
		v.SetFloat(f)
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("unsupported list type %s", v.Type())
		}
		var items []string
		for item := range strings.SplitSeq(raw, ",") {
			if item = strings.TrimSpace(item); item != "" {
				items = append(items, item)
			}
		}
		v.Set(reflect.ValueOf(items).Convert(v.Type()))
	default:
		return fmt.Errorf("unsupported field type %s", v.Type())
	}
	return nil
}
