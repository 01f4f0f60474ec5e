package controllers

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the controller's own Prometheus metrics (the MISP client adds
// misptrust_misp_* on the same registry). Labels are bounded: drift kind and write
// operation, never a policy or list name.
type metrics struct {
	driftRepaired *prometheus.CounterVec
	writes        *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		driftRepaired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "misptrust_warninglist_drift_repaired_total",
			Help: "Warninglists changed in MISP outside the operator (entries, metadata, disabled, deleted) and repaired, by kind.",
		}, []string{"kind"}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "misptrust_warninglist_writes_total",
			Help: "Successful warninglist writes to MISP by the controller, by operation (add, edit, enable, delete).",
		}, []string{"operation"}),
	}
	if reg != nil {
		m.driftRepaired = registerOrReuse(reg, m.driftRepaired)
		m.writes = registerOrReuse(reg, m.writes)
	}
	for _, k := range []string{driftEntries, driftMetadata, driftDisabled, driftDeleted} {
		m.driftRepaired.WithLabelValues(k)
	}
	return m
}

// registerOrReuse registers c, or returns the collector already registered
// under the same description (two reconcilers on one registry).
func registerOrReuse(reg prometheus.Registerer, c *prometheus.CounterVec) *prometheus.CounterVec {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
			return existing
		}
	}
	panic(fmt.Sprintf("controllers: register metrics: %v", err))
}
