package engine

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetricsOfACuration(t *testing.T) {
	reg := prometheus.NewRegistry()
	ev := newEnv(t, envConfig{opts: func(o *Options) { o.Metrics = NewMetrics(reg) }})
	ev.srv.SimulatePull(partnerEvent(orgHigh, true, tlpGreen, incompleteTag))
	ev.srv.SimulatePull(partnerEvent(orgUntrusted, true, tlpGreen))
	ev.deliver(nil)
	ev.outcome()
	ev.outcome()
	ev.idle()

	// Exported at 0 before any failure (read before the checks below create series).
	if v, ok := gathered(t, reg, "misptrust_curator_outcomes_total", "sec/high", ActionFailed); !ok || v != 0 {
		t.Errorf("failed outcomes of sec/high = %v (exported: %v), want 0", v, ok)
	}
	if _, ok := gathered(t, reg, "misptrust_curator_outcomes_total", "", ActionFailed); ok {
		t.Error("a failed series for the untrusted (\"\") policy")
	}
	m := NewMetrics(reg) // the same collectors, already registered
	cases := []struct {
		name string
		c    prometheus.Collector
		want float64
	}{
		{"tagged", m.outcomes.WithLabelValues("sec/misp", "sec/high", ActionTagged), 1},
		{"published", m.outcomes.WithLabelValues("sec/misp", "sec/high", ActionPublished), 1},
		{"removed incomplete", m.outcomes.WithLabelValues("sec/misp", "sec/high", ActionRemovedIncomplete), 1},
		{"untrusted", m.outcomes.WithLabelValues("sec/misp", "", ActionUntrusted), 1},
		{"pulled messages", m.messages.WithLabelValues("sec/misp", msgPulled), 2},
		{"synced rows", m.messages.WithLabelValues("sec/misp", msgSyncedRow), 2},
		{"publish hints", m.messages.WithLabelValues("sec/misp", msgPublish), 2},
		{"queue empty", m.depth.WithLabelValues("sec/misp"), 0},
		{"nothing in flight", m.inFlight.WithLabelValues("sec/misp"), 0},
		{"coalesced: each pull merged into its row's debounce", m.coalesced.WithLabelValues("sec/misp"), 2},
		{"no drop", m.dropped.WithLabelValues("sec/misp", dropQueueFull), 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := testutil.ToFloat64(tc.c); got != tc.want {
				t.Fatalf("= %v, want %v", got, tc.want)
			}
		})
	}
	// Calls per event by class: one tag+publish event with 3 calls, one untrusted with 0.
	want := `
# HELP misptrust_curator_misp_calls_per_event MISP calls spent on one curated event, by class (untrusted_pulled, untrusted_pushed, untrusted, tag_only, tag_publish).
# TYPE misptrust_curator_misp_calls_per_event histogram
misptrust_curator_misp_calls_per_event_bucket{class="tag_publish",instance="sec/misp",le="0"} 0
misptrust_curator_misp_calls_per_event_bucket{class="tag_publish",instance="sec/misp",le="1"} 0
misptrust_curator_misp_calls_per_event_bucket{class="tag_publish",instance="sec/misp",le="2"} 0
misptrust_curator_misp_calls_per_event_bucket{class="tag_publish",instance="sec/misp",le="3"} 1
misptrust_curator_misp_calls_per_event_bucket{class="tag_publish",instance="sec/misp",le="4"} 1
misptrust_curator_misp_calls_per_event_bucket{class="tag_publish",instance="sec/misp",le="5"} 1
misptrust_curator_misp_calls_per_event_bucket{class="tag_publish",instance="sec/misp",le="6"} 1
misptrust_curator_misp_calls_per_event_bucket{class="tag_publish",instance="sec/misp",le="8"} 1
misptrust_curator_misp_calls_per_event_bucket{class="tag_publish",instance="sec/misp",le="12"} 1
misptrust_curator_misp_calls_per_event_bucket{class="tag_publish",instance="sec/misp",le="+Inf"} 1
misptrust_curator_misp_calls_per_event_sum{class="tag_publish",instance="sec/misp"} 3
misptrust_curator_misp_calls_per_event_count{class="tag_publish",instance="sec/misp"} 1
misptrust_curator_misp_calls_per_event_bucket{class="untrusted_pulled",instance="sec/misp",le="0"} 1
misptrust_curator_misp_calls_per_event_bucket{class="untrusted_pulled",instance="sec/misp",le="1"} 1
misptrust_curator_misp_calls_per_event_bucket{class="untrusted_pulled",instance="sec/misp",le="2"} 1
misptrust_curator_misp_calls_per_event_bucket{class="untrusted_pulled",instance="sec/misp",le="3"} 1
misptrust_curator_misp_calls_per_event_bucket{class="untrusted_pulled",instance="sec/misp",le="4"} 1
misptrust_curator_misp_calls_per_event_bucket{class="untrusted_pulled",instance="sec/misp",le="5"} 1
misptrust_curator_misp_calls_per_event_bucket{class="untrusted_pulled",instance="sec/misp",le="6"} 1
misptrust_curator_misp_calls_per_event_bucket{class="untrusted_pulled",instance="sec/misp",le="8"} 1
misptrust_curator_misp_calls_per_event_bucket{class="untrusted_pulled",instance="sec/misp",le="12"} 1
misptrust_curator_misp_calls_per_event_bucket{class="untrusted_pulled",instance="sec/misp",le="+Inf"} 1
misptrust_curator_misp_calls_per_event_sum{class="untrusted_pulled",instance="sec/misp"} 0
misptrust_curator_misp_calls_per_event_count{class="untrusted_pulled",instance="sec/misp"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "misptrust_curator_misp_calls_per_event"); err != nil {
		t.Fatal(err)
	}

	m.Forget("sec/misp")
	if n := testutil.CollectAndCount(m.outcomes); n != 0 {
		t.Fatalf("Forget left %d outcome series", n)
	}
}

func TestNilMetricsRecordNothing(t *testing.T) {
	var m *Metrics
	m.Forget("x")
	im := instMetrics{m: m, inst: "x"}
	im.init()
	im.outcome(Outcome{Class: ClassTagOnly})
	im.queue(1, 1)
	im.message(msgPulled)
	im.coalesce()
	im.drop(dropQueueFull, 1)
	im.retry()
}

// gathered is the value of the series of name with the policy and action labels.
func gathered(t *testing.T, reg *prometheus.Registry, name, policy, action string) (float64, bool) {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			if l["policy"] == policy && l["action"] == action {
				return m.GetCounter().GetValue(), true
			}
		}
	}
	return 0, false
}
