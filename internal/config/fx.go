package config

import "go.uber.org/fx"

// SectionsGroup is the Fx value group of the sections the app's loader
// serves; [Provide] adds a section to it.
const SectionsGroup = "config_sections"

// Provide registers the section key of type T with the app's loader and
// provides its loaded value, so that the module's constructors take a T:
//
//	var Module = fx.Module("orders",
//		config.Provide("orders", DefaultConfig), // YAML "orders:", its env tags
//		fx.Provide(New),                         // New(cfg Config, ...)
//	)
//
// The loader (app.New provides it as a *[Loaded]) reads the section's
// defaults for the environment, the YAML file and the environment, and
// validates it before any constructor sees it. fx.Decorate on T adjusts the
// loaded value; fx.Replace supplies one outright.
func Provide[T any](key string, defaults func(env string) T) fx.Option {
	section := NewSection(key, defaults)
	return fx.Options(
		fx.Provide(
			func() SectionOut { return SectionOut{Section: section} },
			func(l *Loaded) (T, error) { return ValueOf[T](l, key) },
		),
	)
}

// SectionOut adds a section to [SectionsGroup]; [Provide] returns it.
type SectionOut struct {
	fx.Out

	Section Section `group:"config_sections"`
}
