package catchup

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/misptrust/misp-trust-operator/internal/promutil"
)

// Metrics are the catch-up metrics, labelled by instance ("namespace/name"). One Metrics
// serves every Runner of a process; a nil *Metrics records nothing.
type Metrics struct {
	passes   *prometheus.CounterVec
	scanned  *prometheus.CounterVec
	enqueued *prometheus.CounterVec
	lag      *prometheus.GaugeVec
	held     *prometheus.GaugeVec
	skipped  *prometheus.CounterVec
}

// Label values of passes_total.
const (
	KindPass       = "pass"
	KindRecuration = "recuration"

	resultOK    = "ok"
	resultError = "error"
)

// NewMetrics creates the metrics and registers them on reg (nil: not registered); a second
// call on the same registry reuses the registered collectors.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		passes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "misptrust_catchup_passes_total",
			Help: "REST catch-up passes, by kind (pass, recuration) and result (ok, error).",
		}, []string{"instance", "kind", "result"}),
		scanned: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "misptrust_catchup_events_scanned_total",
			Help: "Events returned by MISP's event index to catch-up searches.",
		}, []string{"instance"}),
		enqueued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "misptrust_catchup_events_enqueued_total",
			Help: "Events handed to the curation engine by catch-up, by kind (pass, recuration, retry).",
		}, []string{"instance", "kind"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "misptrust_catchup_lag_seconds",
			Help: "Seconds between now and the catch-up watermark after the last pass (how far back the next pass looks, minus the safety margin).",
		}, []string{"instance"}),
		held: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "misptrust_catchup_unsettled_events",
			Help: "Events handed to the engine whose curation has not succeeded yet; they hold the persisted watermark back.",
		}, []string{"instance"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "misptrust_catchup_skipped_rows_total",
			Help: "Rows of MISP's event index catch-up could not read (damaged, or MISP fails to render them) and skipped; the log names each one.",
		}, []string{"instance"}),
	}
	if reg != nil {
		m.passes = promutil.RegisterOrReuse(reg, m.passes)
		m.scanned = promutil.RegisterOrReuse(reg, m.scanned)
		m.enqueued = promutil.RegisterOrReuse(reg, m.enqueued)
		m.lag = promutil.RegisterOrReuse(reg, m.lag)
		m.held = promutil.RegisterOrReuse(reg, m.held)
		m.skipped = promutil.RegisterOrReuse(reg, m.skipped)
	}
	return m
}

func (m *Metrics) init(instance string) {
	if m == nil {
		return
	}
	for _, k := range []string{KindPass, KindRecuration} {
		for _, r := range []string{resultOK, resultError} {
			m.passes.WithLabelValues(instance, k, r)
		}
	}
	m.scanned.WithLabelValues(instance)
	m.skipped.WithLabelValues(instance)
	for _, k := range []string{KindPass, KindRecuration, "retry"} {
		m.enqueued.WithLabelValues(instance, k)
	}
}

func (m *Metrics) pass(instance, kind string, err error) {
	if m == nil {
		return
	}
	r := resultOK
	if err != nil {
		r = resultError
	}
	m.passes.WithLabelValues(instance, kind, r).Inc()
}

func (m *Metrics) scan(instance string, n int) {
	if m == nil {
		return
	}
	m.scanned.WithLabelValues(instance).Add(float64(n))
}

func (m *Metrics) enqueue(instance, kind string) {
	if m == nil {
		return
	}
	m.enqueued.WithLabelValues(instance, kind).Inc()
}

func (m *Metrics) skipRow(instance string) {
	if m == nil {
		return
	}
	m.skipped.WithLabelValues(instance).Inc()
}

func (m *Metrics) setLag(instance string, seconds float64) {
	if m == nil {
		return
	}
	m.lag.WithLabelValues(instance).Set(seconds)
}

func (m *Metrics) setHeld(instance string, n int) {
	if m == nil {
		return
	}
	m.held.WithLabelValues(instance).Set(float64(n))
}

// Forget removes an instance's series (its pipeline stopped for good).
func (m *Metrics) Forget(instance string) {
	if m == nil {
		return
	}
	for _, v := range []*prometheus.CounterVec{m.passes, m.scanned, m.enqueued, m.skipped} {
		v.DeletePartialMatch(prometheus.Labels{"instance": instance})
	}
	m.lag.DeleteLabelValues(instance)
	m.held.DeleteLabelValues(instance)
}
