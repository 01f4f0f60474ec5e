package monitoring

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
)

func readPack(t *testing.T, rel string) []byte {
	t.Helper()
	root, err := Root()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDashboardMatchesGrafanasSchema decodes the dashboard with the Grafana Foundation SDK,
// whose types are generated from Grafana's dashboard schema (schemaVersion 42, the
// dashboard kind and each panel plugin's and the Prometheus query's schema): the strict
// decoder rejects unknown fields, missing required fields and wrong types, Validate checks
// the schema's constraints. Grafana itself is not installable here; this is as far as a
// library goes.
func TestDashboardMatchesGrafanasSchema(t *testing.T) {
	plugins.RegisterDefaultPlugins()
	raw := readPack(t, DashboardPath)
	var d dashboard.Dashboard
	if err := sdkError(d.UnmarshalJSONStrict(raw)); err != nil {
		t.Fatalf("%s does not decode strictly against the dashboard schema: %v", DashboardPath, err)
	}
	if err := sdkError(d.Validate()); err != nil {
		t.Fatalf("%s breaks a schema constraint: %v", DashboardPath, err)
	}
	if d.Uid == nil || *d.Uid != "misp-trust-operator" || d.SchemaVersion != 42 {
		t.Errorf("uid %v schemaVersion %d: want a stable uid (links and provisioning use it) and schemaVersion 42", d.Uid, d.SchemaVersion)
	}
	// The SDK (v0.0.22) reports every schema error, but its variant decoders return an
	// empty cog.BuildErrors as a non-nil error, so the decoded dashboard lacks its panels,
	// options and queries when they are valid. The checks below read the JSON and decode
	// each query with the Prometheus query type's own strict decoder.
	var top struct {
		Panels []struct {
			Type    string            `json:"type"`
			Title   string            `json:"title"`
			Options json.RawMessage   `json:"options"`
			Targets []json.RawMessage `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &top); err != nil {
		t.Fatal(err)
	}
	runtime := cog.NewRuntime()
	for _, panel := range top.Panels {
		if panel.Type == "row" {
			continue
		}
		if _, ok := runtime.ConfigForPanelcfgVariant(panel.Type); !ok {
			t.Errorf("panel %q: type %q is not a Grafana panel plugin the schema knows (its options were not checked)", panel.Title, panel.Type)
		}
		if len(panel.Options) == 0 {
			t.Errorf("panel %q has no options", panel.Title)
		}
		if len(panel.Targets) == 0 {
			t.Errorf("panel %q has no query", panel.Title)
		}
		for i, rq := range panel.Targets {
			var q prometheus.Dataquery
			if err := sdkError(q.UnmarshalJSONStrict(rq)); err != nil {
				t.Errorf("panel %q query %d is not a valid Prometheus query: %v", panel.Title, i, err)
				continue
			}
			if q.Datasource == nil || q.Datasource.Type == nil || *q.Datasource.Type != "prometheus" ||
				q.Datasource.Uid == nil || *q.Datasource.Uid != "${datasource}" {
				t.Errorf("panel %q query %q does not use the $datasource variable", panel.Title, q.Expr)
			}
		}
	}
}

// TestDashboardShowsWhatTheIssueAsksPerInstance checks the dashboard's content: an
// instance variable filled from the metrics, and a panel for each thing operators watch,
// every query filtered by the selected MISPInstances.
func TestDashboardShowsWhatTheIssueAsksPerInstance(t *testing.T) {
	var d dashboardJSON
	if err := json.Unmarshal(readPack(t, DashboardPath), &d); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
	}
	if vars["datasource"] != "datasource" || vars["instance"] != "query" {
		t.Fatalf("template variables %v: want datasource (datasource) and instance (query)", vars)
	}
	raw := map[string]any{}
	_ = json.Unmarshal(readPack(t, DashboardPath), &raw)
	for _, v := range raw["templating"].(map[string]any)["list"].([]any) {
		v := v.(map[string]any)
		if v["name"] == "instance" && (v["multi"] != true || v["includeAll"] != true ||
			!strings.Contains(v["definition"].(string), "label_values(misptrust_mispinstance_ready, instance)")) {
			t.Errorf("instance variable %v: want multi, All, values from misptrust_mispinstance_ready", v)
		}
	}

	queries, err := DashboardQueries(filepath.Join(mustRoot(t), DashboardPath))
	if err != nil {
		t.Fatal(err)
	}
	// What the issue lists, each with the metric that must back it.
	want := map[string]string{
		"Feed state":                       "misptrust_feed_connected",
		"Feed messages by topic":           "misptrust_feed_messages_total",
		"Curation outcomes by policy":      "misptrust_curator_outcomes_total",
		"MISP calls per event by class":    "misptrust_curator_misp_calls_per_event_count",
		"MISP latency (p95) by endpoint":   "misptrust_misp_request_duration_seconds_bucket",
		"MISP errors by endpoint":          "misptrust_misp_requests_total",
		"Queue depth":                      "misptrust_curator_queue_depth",
		"Catch-up lag":                     "misptrust_catchup_lag_seconds",
		"Warninglist writes":               "misptrust_warninglist_writes_total",
		"Warninglist drift repairs":        "misptrust_warninglist_drift_repaired_total",
		"MISPInstance Ready":               "misptrust_mispinstance_ready",
		"Curation latency (p95) by source": "misptrust_curator_curation_latency_seconds_bucket",
	}
	vals := map[string]string{"datasource": "prometheus", "instance": "ns/misp", "__rate_interval": "1m"}
	found := map[string]bool{}
	for _, q := range queries {
		expr, err := Substitute(q.Expr, vals)
		if err != nil {
			t.Errorf("panel %q %s: %v", q.Panel, q.RefID, err)
			continue
		}
		a, err := Analyze(expr)
		if err != nil {
			t.Errorf("panel %q %s: %v", q.Panel, q.RefID, err)
			continue
		}
		for _, s := range a.Selectors {
			if !strings.Contains(s.Text, `instance=~"ns/misp"`) {
				t.Errorf("panel %q %s reads %s without the $instance filter", q.Panel, q.RefID, s.Text)
			}
			if s.Metric == want[q.Panel] {
				found[q.Panel] = true
			}
		}
		if q.Legend == "" {
			t.Errorf("panel %q %s has no legend", q.Panel, q.RefID)
		}
	}
	for panel, metric := range want {
		if !found[panel] {
			t.Errorf("no panel %q reading %s", panel, metric)
		}
	}
}

func mustRoot(t *testing.T) string {
	t.Helper()
	root, err := Root()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// sdkError unwraps the SDK's "no error": its decoders return an empty cog.BuildErrors
// inside a non-nil error interface when everything is fine.
func sdkError(err error) error {
	var be cog.BuildErrors
	if errors.As(err, &be) && len(be) == 0 {
		return nil
	}
	return err
}
