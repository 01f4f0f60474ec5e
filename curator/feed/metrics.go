package feed

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/misptrust/misp-trust-operator/internal/promutil"
)

// Metrics are the feed's Prometheus metrics, labelled by MISP instance
// ("namespace/name", Options.Instance). One Metrics serves every Subscriber of a
// process. A nil *Metrics is valid and records nothing.
type Metrics struct {
	messages      *prometheus.CounterVec
	parseErrors   *prometheus.CounterVec
	dropped       *prometheus.CounterVec
	reconnects    *prometheus.CounterVec
	dialFailures  *prometheus.CounterVec
	connects      *prometheus.CounterVec
	connected     *prometheus.GaugeVec
	queueDepth    *prometheus.GaugeVec
	lastMessage   *prometheus.GaugeVec
	lastHeartbeat *prometheus.GaugeVec
}

// Label values of the metrics.
const (
	DropQueueFull = "queue_full" // the consumer did not keep up with the bounded queue
	DropTooLarge  = "too_large"  // frame over Options.MaxMessageSize

	ReconnectRecvError = "recv_error" // the connection failed (peer gone, reset, …)
	ReconnectSilence   = "silence"    // nothing received for Options.SilenceTimeout

	StageConnect   = "connect"   // TCP connect failed
	StageHandshake = "handshake" // ZMTP greeting / security handshake failed
)

// NewMetrics creates the metrics and registers them with reg (if not nil). If
// they are already registered there (a second NewMetrics on the same registry),
// the registered collectors are reused.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	inst := []string{"instance"}
	m := &Metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "misptrust_feed_messages_total",
			Help: "ZeroMQ frames received from MISP, by topic (\"unknown\" when the frame has no known topic).",
		}, []string{"instance", "topic"}),
		parseErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "misptrust_feed_parse_errors_total",
			Help: "Frames rejected by the parser, by error kind.",
		}, []string{"instance", "kind"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "misptrust_feed_dropped_total",
			Help: "Messages dropped before the curation engine: queue_full or too_large.",
		}, []string{"instance", "reason"}),
		reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "misptrust_feed_reconnects_total",
			Help: "Established connections given up and redialled, by reason (recv_error, silence).",
		}, []string{"instance", "reason"}),
		dialFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "misptrust_feed_dial_failures_total",
			Help: "Failed connection attempts, by stage (connect, handshake).",
		}, []string{"instance", "stage"}),
		connects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "misptrust_feed_connects_total",
			Help: "Successful connections (ZMTP handshake completed).",
		}, inst),
		connected: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "misptrust_feed_connected",
			Help: "1 while the ZeroMQ subscription is connected (handshake ok), else 0.",
		}, inst),
		queueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "misptrust_feed_queue_depth",
			Help: "Messages waiting in the bounded queue for the curation engine.",
		}, inst),
		lastMessage: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "misptrust_feed_last_message_timestamp_seconds",
			Help: "Unix time of the last frame received (any topic); time() minus this is the silence.",
		}, inst),
		lastHeartbeat: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "misptrust_feed_last_heartbeat_timestamp_seconds",
			Help: "Unix time of the last misp_json_self heartbeat (sent by MISP only after 10 s idle).",
		}, inst),
	}
	if reg == nil {
		return m
	}
	m.messages = promutil.RegisterOrReuse(reg, m.messages)
	m.parseErrors = promutil.RegisterOrReuse(reg, m.parseErrors)
	m.dropped = promutil.RegisterOrReuse(reg, m.dropped)
	m.reconnects = promutil.RegisterOrReuse(reg, m.reconnects)
	m.dialFailures = promutil.RegisterOrReuse(reg, m.dialFailures)
	m.connects = promutil.RegisterOrReuse(reg, m.connects)
	m.connected = promutil.RegisterOrReuse(reg, m.connected)
	m.queueDepth = promutil.RegisterOrReuse(reg, m.queueDepth)
	m.lastMessage = promutil.RegisterOrReuse(reg, m.lastMessage)
	m.lastHeartbeat = promutil.RegisterOrReuse(reg, m.lastHeartbeat)
	return m
}

// Forget deletes every series of an instance (its MISPInstance was deleted).
func (m *Metrics) Forget(instance string) {
	if m == nil {
		return
	}
	l := prometheus.Labels{"instance": instance}
	m.messages.DeletePartialMatch(l)
	m.parseErrors.DeletePartialMatch(l)
	m.dropped.DeletePartialMatch(l)
	m.reconnects.DeletePartialMatch(l)
	m.dialFailures.DeletePartialMatch(l)
	m.connects.DeletePartialMatch(l)
	m.connected.DeletePartialMatch(l)
	m.queueDepth.DeletePartialMatch(l)
	m.lastMessage.DeletePartialMatch(l)
	m.lastHeartbeat.DeletePartialMatch(l)
}

// initInstance creates the series of an instance at zero, so that dashboards
// and alerts see them before the first event.
func (m *Metrics) initInstance(instance string) {
	if m == nil {
		return
	}
	for _, k := range ErrorKinds() {
		if k != KindTooLarge {
			m.parseErrors.WithLabelValues(instance, string(k))
		}
	}
	m.dropped.WithLabelValues(instance, DropQueueFull)
	m.dropped.WithLabelValues(instance, DropTooLarge)
	m.reconnects.WithLabelValues(instance, ReconnectRecvError)
	m.reconnects.WithLabelValues(instance, ReconnectSilence)
	m.dialFailures.WithLabelValues(instance, StageConnect)
	m.dialFailures.WithLabelValues(instance, StageHandshake)
	m.connects.WithLabelValues(instance)
	m.connected.WithLabelValues(instance).Set(0)
	m.queueDepth.WithLabelValues(instance).Set(0)
}

func (m *Metrics) message(instance string, topic Topic) {
	if m == nil {
		return
	}
	label := string(topic)
	if label == "" {
		label = "unknown" // never an arbitrary wire string: bounded cardinality
	}
	m.messages.WithLabelValues(instance, label).Inc()
}

func (m *Metrics) parseError(instance string, kind ErrorKind) {
	if m != nil {
		m.parseErrors.WithLabelValues(instance, string(kind)).Inc()
	}
}

func (m *Metrics) drop(instance, reason string) {
	if m != nil {
		m.dropped.WithLabelValues(instance, reason).Inc()
	}
}

func (m *Metrics) reconnect(instance, reason string) {
	if m != nil {
		m.reconnects.WithLabelValues(instance, reason).Inc()
	}
}

func (m *Metrics) dialFailure(instance, stage string) {
	if m != nil {
		m.dialFailures.WithLabelValues(instance, stage).Inc()
	}
}

func (m *Metrics) setConnected(instance string, up bool) {
	if m == nil {
		return
	}
	if up {
		m.connects.WithLabelValues(instance).Inc()
		m.connected.WithLabelValues(instance).Set(1)
	} else {
		m.connected.WithLabelValues(instance).Set(0)
	}
}

func (m *Metrics) setQueueDepth(instance string, n int) {
	if m != nil {
		m.queueDepth.WithLabelValues(instance).Set(float64(n))
	}
}

func (m *Metrics) seen(instance string, t time.Time, heartbeat bool) {
	if m == nil {
		return
	}
	sec := float64(t.UnixNano()) / 1e9
	m.lastMessage.WithLabelValues(instance).Set(sec)
	if heartbeat {
		m.lastHeartbeat.WithLabelValues(instance).Set(sec)
	}
}
