// Package upstream only hosts the Gateway API conformance suite: every option (gateway
// class, profiles, supported features, report path, implementation details) comes from
// the suite's own command-line flags, which `python3 dev.py conformance` passes.
package upstream

import (
	"testing"

	"sigs.k8s.io/gateway-api/conformance"
)

func TestConformance(t *testing.T) {
	conformance.RunConformance(t)
}
