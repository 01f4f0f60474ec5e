package controllers

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/misptrust/misp-trust-operator/internal/promutil"
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
		m.driftRepaired = promutil.RegisterOrReuse(reg, m.driftRepaired)
		m.writes = promutil.RegisterOrReuse(reg, m.writes)
	}
	for _, k := range []string{driftEntries, driftMetadata, driftDisabled, driftDeleted} {
		m.driftRepaired.WithLabelValues(k)
	}
	return m
}
