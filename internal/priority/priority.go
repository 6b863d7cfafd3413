// Package priority holds the request priority classes that cross modules: a
// route's policy names one, the admission stage sheds by it, and outbound calls
// carry it on. It is a leaf package so that no module depends on another to
// speak of priority.
package priority

import "fmt"

// Class is a request's importance. The zero value is Normal.
type Class int8

// The four classes, from the one shed last to the one shed first.
const (
	Low      Class = -1
	Normal   Class = 0
	High     Class = 1
	Critical Class = 2
)

// String returns the class's name as used in headers, baggage and metrics.
func (c Class) String() string {
	switch c {
	case Low:
		return "low"
	case Normal:
		return "normal"
	case High:
		return "high"
	case Critical:
		return "critical"
	default:
		return fmt.Sprintf("Class(%d)", int8(c))
	}
}

// Parse returns the class named s ("critical", "high", "normal" or "low").
func Parse(s string) (Class, error) {
	switch s {
	case "low":
		return Low, nil
	case "normal":
		return Normal, nil
	case "high":
		return High, nil
	case "critical":
		return Critical, nil
	default:
		return Normal, fmt.Errorf("priority: unknown class %q (want critical, high, normal or low)", s)
	}
}
