package controllers

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/misptrust/misp-trust-operator/internal/promutil"
)

// metrics are the controller's own Prometheus metrics (the MISP client adds
// misptrust_misp_* on the same registry). Labels are bounded by the objects in
// the cluster: instance is a MISPInstance and policy an OrgTrustPolicy, both
// "namespace/name" (the curator's label values), plus the drift kind or write
// operation; never a list name or an organisation. A nil *metrics records nothing.
type metrics struct {
	driftRepaired *prometheus.CounterVec
	writes        *prometheus.CounterVec
	ready         *prometheus.GaugeVec

	mu sync.Mutex
	// policyInstance remembers the instance each policy's series carry, so the
	// series of a policy moved to another instance do not linger.
	policyInstance map[string]string
}

// driftKinds are the values of the drift repair counter's kind label.
var driftKinds = []string{driftEntries, driftMetadata, driftDisabled, driftDeleted}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		driftRepaired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "misptrust_warninglist_drift_repaired_total",
			Help: "Warninglists changed in MISP outside the operator (entries, metadata, disabled, deleted) and repaired, by MISPInstance, OrgTrustPolicy and kind.",
		}, []string{"instance", "policy", "kind"}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "misptrust_warninglist_writes_total",
			Help: "Successful warninglist writes to MISP by the controller, by MISPInstance, OrgTrustPolicy and operation (add, edit, enable, delete).",
		}, []string{"instance", "policy", "operation"}),
		ready: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "misptrust_mispinstance_ready",
			Help: "1 while the MISPInstance's Ready condition is True (MISP reachable, key accepted, every capability present), else 0.",
		}, []string{"instance"}),
		policyInstance: map[string]string{},
	}
	if reg != nil {
		m.driftRepaired = promutil.RegisterOrReuse(reg, m.driftRepaired)
		m.writes = promutil.RegisterOrReuse(reg, m.writes)
		m.ready = promutil.RegisterOrReuse(reg, m.ready)
	}
	return m
}

// initPolicy exports the policy's drift counters at 0 before any drift: an
// alert on increase() misses the first repair of a series that appears at 1.
func (m *metrics) initPolicy(instance, policy string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	prev, known := m.policyInstance[policy]
	m.policyInstance[policy] = instance
	m.mu.Unlock()
	if known && prev == instance {
		return
	}
	if known {
		m.deletePolicy(policy)
	}
	for _, k := range driftKinds {
		m.driftRepaired.WithLabelValues(instance, policy, k)
	}
}

// forgetPolicy deletes the series of a deleted policy.
func (m *metrics) forgetPolicy(policy string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	delete(m.policyInstance, policy)
	m.mu.Unlock()
	m.deletePolicy(policy)
}

func (m *metrics) deletePolicy(policy string) {
	l := prometheus.Labels{"policy": policy}
	m.driftRepaired.DeletePartialMatch(l)
	m.writes.DeletePartialMatch(l)
}

func (m *metrics) wrote(instance, policy, operation string) {
	if m != nil {
		m.writes.WithLabelValues(instance, policy, operation).Inc()
	}
}

func (m *metrics) repaired(instance, policy, kind string) {
	if m != nil {
		m.driftRepaired.WithLabelValues(instance, policy, kind).Inc()
	}
}

func (m *metrics) setReady(instance string, ready bool) {
	if m == nil {
		return
	}
	v := 0.0
	if ready {
		v = 1
	}
	m.ready.WithLabelValues(instance).Set(v)
}

// forgetInstance deletes the series of a deleted MISPInstance.
func (m *metrics) forgetInstance(instance string) {
	if m != nil {
		m.ready.DeleteLabelValues(instance)
	}
}
