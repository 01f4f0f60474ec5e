package engine

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/misptrust/misp-trust-operator/internal/promutil"
)

// Metrics are the engine's Prometheus metrics, labelled by instance ("namespace/name").
// One Metrics serves the engines of every instance of a process; a nil *Metrics records
// nothing. Label values are bounded: policies are OrgTrustPolicy keys, actions, classes,
// sources and reasons are the constants of this package.
type Metrics struct {
	outcomes  *prometheus.CounterVec
	calls     *prometheus.HistogramVec
	latency   *prometheus.HistogramVec
	depth     *prometheus.GaugeVec
	inFlight  *prometheus.GaugeVec
	coalesced *prometheus.CounterVec
	messages  *prometheus.CounterVec
	dropped   *prometheus.CounterVec
	retries   *prometheus.CounterVec
	// unconfirmed is the exact series alerts are built on (issue 13): publishes MISP
	// answered "Job queued" (or did not answer) and not confirmed yet.
	unconfirmed *prometheus.GaugeVec
	resent      *prometheus.CounterVec
}

// Outcome actions (label "action" of misptrust_curator_outcomes_total). One curation can
// count several: tagged and published, for instance.
const (
	ActionTagged            = "tagged"
	ActionPublished         = "published" // confirmed: synchronous, or a queued one confirmed
	ActionPublishQueued     = "publish_queued"
	ActionRemovedIncomplete = "removed_incomplete"
	ActionAlreadyCurated    = "already_curated"
	ActionUntrusted         = "untrusted"
	ActionDryRun            = "dry_run"
	ActionSkipped           = "skipped"
	ActionFailed            = "failed"
)

// Message classes (label "class" of misptrust_curator_messages_total).
const (
	msgPulled     = "pulled"        // *_from_connected_server with a UUID
	msgPulledByID = "pulled_by_id"  // *_from_connected_server with the partner's numeric id
	msgSyncedRow  = "synced_row"    // add|edit row with locked:true
	msgLocalRow   = "local_row"     // add|edit row with locked:false
	msgDelete     = "delete"        // event deleted
	msgPublish    = "publish_hint"  // misp_json
	msgTag        = "tag_hint"      // misp_json_tag attached to / detached from event
	msgOther      = "ignored"       // anything else
	msgInvalid    = "invalid"       // an event message without a usable UUID
	dropQueueFull = "queue_full"    // MaxPending reached
	dropShutdown  = "shutdown"      // the engine stopped before curating it
	dropDeleted   = "event_deleted" // a delete message arrived before the curation ran
)

// NewMetrics creates the metrics and registers them with reg (nil: not registered).
// Calling it twice with the same registry reuses the registered collectors.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "misptrust_curator_outcomes_total",
			Help: "Curations by winning policy (\"\" when untrusted) and action (tagged, published, publish_queued, removed_incomplete, already_curated, untrusted, dry_run, skipped, failed); published counts confirmed publishes only.",
		}, []string{"instance", "policy", "action"}),
		calls: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "misptrust_curator_misp_calls_per_event",
			Help:    "MISP calls spent on one curated event, by class (untrusted_pulled, untrusted_pushed, untrusted, tag_only, tag_publish).",
			Buckets: []float64{0, 1, 2, 3, 4, 5, 6, 8, 12},
		}, []string{"instance", "class"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "misptrust_curator_curation_latency_seconds",
			Help:    "Time from the first message (or Enqueue) of a curation to its end, by source (pull, push, catchup, recuration); pushes include the debounce.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"instance", "source"}),
		depth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "misptrust_curator_queue_depth",
			Help: "Events waiting (debounce, backoff, queue) or being curated.",
		}, []string{"instance"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "misptrust_curator_in_flight",
			Help: "Events being curated right now.",
		}, []string{"instance"}),
		coalesced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "misptrust_curator_coalesced_total",
			Help: "Messages and requests merged into a curation already waiting or running for the same event.",
		}, []string{"instance"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "misptrust_curator_messages_total",
			Help: "Feed messages seen by the engine, by class (pulled, pulled_by_id, synced_row, local_row, delete, publish_hint, tag_hint, ignored, invalid).",
		}, []string{"instance", "class"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "misptrust_curator_dropped_total",
			Help: "Events not curated by the engine (left to catch-up), by reason (queue_full, shutdown, event_deleted).",
		}, []string{"instance", "reason"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "misptrust_curator_retries_total",
			Help: "Curations scheduled again after a transient MISP failure.",
		}, []string{"instance"}),
		unconfirmed: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "misptrust_curator_unconfirmed_publishes",
			Help: "Publishes MISP answered \"Job queued\" (or did not answer) that no read or misp_json has confirmed yet; growing while MISP's background workers are down.",
		}, []string{"instance"}),
		resent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "misptrust_curator_publishes_resent_total",
			Help: "Publishes sent again because the queued one evidently failed (a later publish was confirmed, this event stayed unpublished).",
		}, []string{"instance"}),
	}
	if reg == nil {
		return m
	}
	m.outcomes = promutil.RegisterOrReuse(reg, m.outcomes)
	m.calls = promutil.RegisterOrReuse(reg, m.calls)
	m.latency = promutil.RegisterOrReuse(reg, m.latency)
	m.depth = promutil.RegisterOrReuse(reg, m.depth)
	m.inFlight = promutil.RegisterOrReuse(reg, m.inFlight)
	m.coalesced = promutil.RegisterOrReuse(reg, m.coalesced)
	m.messages = promutil.RegisterOrReuse(reg, m.messages)
	m.dropped = promutil.RegisterOrReuse(reg, m.dropped)
	m.retries = promutil.RegisterOrReuse(reg, m.retries)
	m.unconfirmed = promutil.RegisterOrReuse(reg, m.unconfirmed)
	m.resent = promutil.RegisterOrReuse(reg, m.resent)
	return m
}

// Forget deletes every series of an instance (its MISPInstance was deleted).
func (m *Metrics) Forget(instance string) {
	if m == nil {
		return
	}
	l := prometheus.Labels{"instance": instance}
	m.outcomes.DeletePartialMatch(l)
	m.calls.DeletePartialMatch(l)
	m.latency.DeletePartialMatch(l)
	m.depth.DeletePartialMatch(l)
	m.inFlight.DeletePartialMatch(l)
	m.coalesced.DeletePartialMatch(l)
	m.messages.DeletePartialMatch(l)
	m.dropped.DeletePartialMatch(l)
	m.retries.DeletePartialMatch(l)
	m.unconfirmed.DeletePartialMatch(l)
	m.resent.DeletePartialMatch(l)
}

// instMetrics binds Metrics to one instance; every method is nil-safe.
type instMetrics struct {
	m    *Metrics
	inst string
}

func (im instMetrics) init() {
	if im.m == nil {
		return
	}
	im.m.depth.WithLabelValues(im.inst).Set(0)
	im.m.inFlight.WithLabelValues(im.inst).Set(0)
	im.m.coalesced.WithLabelValues(im.inst)
	im.m.retries.WithLabelValues(im.inst)
	im.m.unconfirmed.WithLabelValues(im.inst).Set(0)
	im.m.resent.WithLabelValues(im.inst)
	for _, r := range []string{dropQueueFull, dropShutdown, dropDeleted} {
		im.m.dropped.WithLabelValues(im.inst, r)
	}
}

func (im instMetrics) outcome(o Outcome) {
	if im.m == nil {
		return
	}
	inc := func(action string) { im.m.outcomes.WithLabelValues(im.inst, o.Policy, action).Inc() }
	if o.Policy != "" {
		// A policy's failure counter exists at 0 from its first curation: an alert on
		// increase() misses the first increment of a series that appears at 1.
		im.m.outcomes.WithLabelValues(im.inst, o.Policy, ActionFailed)
	}
	switch {
	case o.Err != nil:
		inc(ActionFailed)
	case o.Skipped != "":
		inc(ActionSkipped)
	case o.Policy == "":
		inc(ActionUntrusted)
	case o.DryRun:
		inc(ActionDryRun)
	case o.AlreadyCurated:
		inc(ActionAlreadyCurated)
	}
	if o.Tagged {
		inc(ActionTagged)
	}
	if o.Published {
		inc(ActionPublished)
	}
	if o.PublishQueued {
		inc(ActionPublishQueued)
	}
	if o.RemovedIncomplete {
		inc(ActionRemovedIncomplete)
	}
	if o.Class != "" && o.Source != SourceConfirm {
		// A publish check is not a curation of its own: its read shows in the MISP
		// request metrics, not in the per-event budget.
		im.m.calls.WithLabelValues(im.inst, string(o.Class)).Observe(float64(o.Calls))
	}
	if !o.Received.IsZero() {
		im.m.latency.WithLabelValues(im.inst, string(o.Source)).Observe(o.At.Sub(o.Received).Seconds())
	}
}

func (im instMetrics) queue(depth, inFlight int) {
	if im.m == nil {
		return
	}
	im.m.depth.WithLabelValues(im.inst).Set(float64(depth))
	im.m.inFlight.WithLabelValues(im.inst).Set(float64(inFlight))
}

func (im instMetrics) message(class string) {
	if im.m != nil {
		im.m.messages.WithLabelValues(im.inst, class).Inc()
	}
}

func (im instMetrics) coalesce() {
	if im.m != nil {
		im.m.coalesced.WithLabelValues(im.inst).Inc()
	}
}

func (im instMetrics) drop(reason string, n int) {
	if im.m != nil && n > 0 {
		im.m.dropped.WithLabelValues(im.inst, reason).Add(float64(n))
	}
}

func (im instMetrics) unconfirmed(n int) {
	if im.m != nil {
		im.m.unconfirmed.WithLabelValues(im.inst).Set(float64(n))
	}
}

func (im instMetrics) resent() {
	if im.m != nil {
		im.m.resent.WithLabelValues(im.inst).Inc()
	}
}

func (im instMetrics) retry() {
	if im.m != nil {
		im.m.retries.WithLabelValues(im.inst).Inc()
	}
}
