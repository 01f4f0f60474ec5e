// Package promutil holds the one Prometheus helper every component of the
// operator needs: registering a collector on a registry that may already hold
// it. The controller's two reconcilers, and the curator's per-instance
// pipelines, each build their metrics from the same registry, so a second
// registration must reuse the first collector instead of failing.
package promutil

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// RegisterOrReuse registers c on reg and returns it, or returns the collector
// already registered under the same descriptor. A nil reg registers nothing.
//
// It panics when reg holds a different kind of collector under the same name:
// that is a programming error in this binary (two metrics named alike), found
// at start-up by any test that builds the component, never caused by input.
func RegisterOrReuse[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	panic(fmt.Sprintf("register metrics: %v", err))
}
