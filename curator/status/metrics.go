package status

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/misptrust/misp-trust-operator/internal/promutil"
)

// Metrics count the writer's status applies. A nil *Metrics records nothing.
type Metrics struct {
	applies *prometheus.CounterVec
}

// Label values.
const (
	KindPolicy   = "OrgTrustPolicy"
	KindInstance = "MISPInstance"

	resultApplied  = "applied"
	resultError    = "error"
	resultNotFound = "not_found"
)

// NewMetrics creates the metrics and registers them on reg (nil: not registered); a second
// call on the same registry reuses the registered collectors.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		applies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "misptrust_curator_status_applies_total",
			Help: "Server-side applies of the curator's status fields, by kind and result (applied, error, not_found). Unchanged statuses are not applied.",
		}, []string{"kind", "result"}),
	}
	m.applies = promutil.RegisterOrReuse(reg, m.applies)
	for _, k := range []string{KindPolicy, KindInstance} {
		for _, r := range []string{resultApplied, resultError, resultNotFound} {
			m.applies.WithLabelValues(k, r)
		}
	}
	return m
}

func (m *Metrics) apply(kind, result string) {
	if m == nil {
		return
	}
	m.applies.WithLabelValues(kind, result).Inc()
}
