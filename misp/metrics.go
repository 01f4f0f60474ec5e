package misp

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/misptrust/misp-trust-operator/internal/promutil"
)

// Metrics are the client's Prometheus metrics. A nil *Metrics is valid and records nothing.
// Labels are bounded: instance is the MISPInstance ("namespace/name", Options.Instance) the
// client talks to, so one slow MISP can be told from another; endpoint is a route template
// ("/events/publish/{id}", never a path with an id or uuid in it) and code an HTTP status or
// "error" for transport failures.
type Metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	retries  *prometheus.CounterVec
	limit    *prometheus.GaugeVec
}

// NewMetrics creates the metrics and registers them on reg (nil: not registered). Several
// clients (one per MISPInstance) may share one *Metrics; calling NewMetrics twice on the
// same registry returns collectors bound to the already registered ones. A registration
// conflict with a different metric of the same name is a programming error and panics, as
// prometheus.MustRegister does.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "misptrust_misp_requests_total",
			Help: "HTTP requests sent to the MISP REST API (every attempt), by route template and status code (\"error\" for transport failures).",
		}, []string{"instance", "endpoint", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "misptrust_misp_request_duration_seconds",
			Help:    "Duration of one MISP REST API attempt, by route template.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"instance", "endpoint"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "misptrust_misp_retries_total",
			Help: "MISP REST API attempts repeated after a network error, a 5xx or a 429, by route template.",
		}, []string{"instance", "endpoint"}),
		limit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "misptrust_misp_concurrency_limit",
			Help: "Requests the client lets be in flight to MISP at once: the adaptive limit, which follows MISP's capacity (one per MISPInstance and component).",
		}, []string{"instance"}),
	}
	if reg != nil {
		m.requests = promutil.RegisterOrReuse(reg, m.requests)
		m.latency = promutil.RegisterOrReuse(reg, m.latency)
		m.retries = promutil.RegisterOrReuse(reg, m.retries)
		m.limit = promutil.RegisterOrReuse(reg, m.limit)
	}
	return m
}

// observe records one attempt; status 0 means a transport error.
func (m *Metrics) observe(instance, endpoint string, status int, d time.Duration) {
	if m == nil {
		return
	}
	code := "error"
	if status != 0 {
		code = strconv.Itoa(status)
	}
	m.requests.WithLabelValues(instance, endpoint, code).Inc()
	m.latency.WithLabelValues(instance, endpoint).Observe(d.Seconds())
}

func (m *Metrics) retried(instance, endpoint string) {
	if m == nil {
		return
	}
	m.retries.WithLabelValues(instance, endpoint).Inc()
}

// Forget deletes the series of an instance that is gone (its MISPInstance was deleted), so
// they stop being exported.
func (m *Metrics) Forget(instance string) {
	if m == nil {
		return
	}
	l := prometheus.Labels{"instance": instance}
	m.requests.DeletePartialMatch(l)
	m.latency.DeletePartialMatch(l)
	m.retries.DeletePartialMatch(l)
	m.limit.DeletePartialMatch(l)
}

// limitGauge returns the setter of one client's concurrency-limit gauge; nil records nothing.
func (m *Metrics) limitGauge(instance string) func(int) {
	if m == nil {
		return nil
	}
	g := m.limit.WithLabelValues(instance)
	return func(n int) { g.Set(float64(n)) }
}
