package feed

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetricsFollowPrometheusConventions(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	m.initInstance("misp/prod")
	m.message("misp/prod", TopicEvent)
	m.seen("misp/prod", time.Unix(1795727848, 0), true)
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	if got := testutil.ToFloat64(m.lastHeartbeat.WithLabelValues("misp/prod")); got != 1795727848 {
		t.Errorf("last heartbeat timestamp %v", got)
	}
	// Series exist at zero before anything happens (dashboards, alerts).
	if got := testutil.CollectAndCount(m.parseErrors); got != len(ErrorKinds())-1 {
		t.Errorf("%d parse-error series, want one per kind but too_large (a drop reason)", got)
	}
}

func TestNewMetricsTwiceOnOneRegistryShares(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, b := NewMetrics(reg), NewMetrics(reg)
	a.drop("misp/a", DropQueueFull)
	b.drop("misp/a", DropQueueFull)
	if got := testutil.ToFloat64(a.dropped.WithLabelValues("misp/a", DropQueueFull)); got != 2 {
		t.Fatalf("dropped = %v, want 2: the second NewMetrics must reuse the registered collectors", got)
	}
}

func TestMetricsForgetAnInstance(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	m.initInstance("misp/a")
	m.initInstance("misp/b")
	m.Forget("misp/a")
	out, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for _, mf := range out {
		for _, metric := range mf.GetMetric() {
			for _, l := range metric.GetLabel() {
				if l.GetName() == "instance" && l.GetValue() == "misp/a" {
					t.Errorf("%s still has a series for misp/a", mf.GetName())
				}
				if l.GetValue() == "misp/b" {
					n++
				}
			}
		}
	}
	if n == 0 {
		t.Error("Forget removed the other instance too")
	}
}

func TestNilMetricsRecordNothing(t *testing.T) {
	var m *Metrics
	m.initInstance("x")
	m.message("x", TopicEvent)
	m.parseError("x", KindBadUUID)
	m.drop("x", DropTooLarge)
	m.reconnect("x", ReconnectSilence)
	m.dialFailure("x", StageConnect)
	m.setConnected("x", true)
	m.setQueueDepth("x", 3)
	m.seen("x", time.Now(), true)
	m.Forget("x")
}

func TestUnknownTopicsShareOneLabel(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	m.message("misp/a", "")
	if got := testutil.ToFloat64(m.messages.WithLabelValues("misp/a", "unknown")); got != 1 {
		t.Fatalf("messages_total{topic=unknown} = %v, want 1", got)
	}
}
