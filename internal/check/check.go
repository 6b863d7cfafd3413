// Package check holds what a module reports about itself on the probes: a
// named component whose state /readyz shows. It is a leaf package, so a
// module reports its state without depending on the health module.
//
// Components reach the health module through the Fx value group [Group];
// [AsComponents] annotates a constructor for it.
package check

import "go.uber.org/fx"

// Group is the Fx value group of components.
const Group = "health_components"

// Statuses a component may report, as in application/health+json.
const (
	Pass = "pass"
	Warn = "warn"
	Fail = "fail"
)

// Component is a part of the service whose state the probes show.
type Component struct {
	// Name keys the component in the probes' "checks" object.
	Name string
	// Critical components make readiness fail when they report Fail; others
	// only show it.
	Critical bool
	// State reports the component's current state. It must not block: it
	// reads what the component already knows.
	State func() State
}

// State is a component's state at one moment.
type State struct {
	// Status is Pass, Warn or Fail.
	Status string `json:"status"`
	// Details are what an operator should see, e.g. the mode a component is
	// in. Never error strings that could carry secrets.
	Details map[string]any `json:"details,omitempty"`
}

// AsComponents annotates a constructor that returns a []Component (and
// optionally an error) so that its components join [Group].
func AsComponents(constructor any) any {
	return fx.Annotate(constructor, fx.ResultTags(`group:"`+Group+`,flatten"`))
}
