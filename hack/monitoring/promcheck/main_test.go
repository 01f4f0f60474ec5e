package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeProm answers like Prometheus for one metric, feed_connected{instance}, whose value
// is 1, and holds one alert rule.
func fakeProm(t *testing.T) *httptest.Server {
	t.Helper()
	reply := func(w http.ResponseWriter, data any) {
		_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": data})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/targets", func(w http.ResponseWriter, r *http.Request) {
		reply(w, map[string]any{"activeTargets": []any{map[string]any{"labels": map[string]string{"job": "curator"}, "scrapeUrl": "http://c/metrics", "health": "up"}}})
	})
	mux.HandleFunc("/api/v1/series", func(w http.ResponseWriter, r *http.Request) {
		var out []map[string]string
		if strings.Contains(r.URL.Query().Get("match[]"), `"feed_connected"`) {
			out = append(out, map[string]string{"__name__": "feed_connected", "instance": "ns/misp", "job": "curator"})
		}
		reply(w, out)
	})
	mux.HandleFunc("/api/v1/query", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query().Get("query")
		var res []any
		if strings.Contains(q, "feed_connected") && !strings.Contains(q, "== 0") && !strings.Contains(q, "instanc\"") {
			res = append(res, map[string]any{"metric": map[string]string{"instance": "ns/misp"}, "value": []any{float64(time.Now().Unix()), "1"}})
		}
		reply(w, map[string]any{"resultType": "vector", "result": res})
	})
	mux.HandleFunc("/api/v1/rules", func(w http.ResponseWriter, r *http.Request) {
		reply(w, map[string]any{"groups": []any{map[string]any{"rules": []any{map[string]any{"name": "FeedDown", "health": "ok", "state": "inactive"}}}}})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// pack writes a dashboard with the given query and a rule file with the given alert
// expression, laid out as in the repository.
func pack(t *testing.T, query, alert string) string {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "config", "monitoring")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	dash, _ := json.Marshal(map[string]any{"panels": []any{map[string]any{"type": "stat", "title": "Feed",
		"targets": []any{map[string]any{"refId": "A", "expr": query, "legendFormat": "{{instance}}"}}}}})
	rules := "groups:\n  - name: g\n    rules:\n      - alert: FeedDown\n        expr: " + alert + "\n"
	if err := os.WriteFile(filepath.Join(dir, "grafana-dashboard.json"), dash, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "alerts.yaml"), []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestPromcheckFailsOnWhatTheBinariesDoNotExpose(t *testing.T) {
	srv := fakeProm(t)
	vars := map[string]string{"instance": "ns/misp"}
	cases := []struct {
		name, query, alert string
		problem            string // "" means no problem
	}{
		{"every query and alert reads what exists", `max by (instance) (feed_connected{instance=~"$instance"})`,
			"max by (instance) (feed_connected) == 0", ""},
		{"a misspelt metric", `feed_conected{instance=~"$instance"}`, "feed_connected == 0", "no series of feed_conected"},
		{"a label the metric does not carry", `sum by (pod) (feed_connected{instance=~"$instance"})`,
			"feed_connected == 0", `feed_connected has no label "pod"`},
		{"a misspelt label in an alert", `feed_connected{instance=~"$instance"}`,
			`max by (instanc) (feed_connected) == 0`, `has no label "instanc"`},
		{"an alert whose left side is empty can never fire", `feed_connected{instance=~"$instance"}`,
			`feed_connected == 0 == 0`, "returns no data: the alert could never fire"},
		{"a variable without a value", `feed_connected{pod=~"$pod"}`, "feed_connected == 0", "no value for the variable $pod"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ch := &checker{prom: srv.URL, vars: vars, lookback: time.Minute, http: srv.Client()}
			report, problems := ch.run(pack(t, c.query, c.alert))
			joined := strings.Join(problems, "\n")
			switch {
			case c.problem == "" && len(problems) > 0:
				t.Fatalf("problems on a correct pack:\n%s", joined)
			case c.problem != "" && !strings.Contains(joined, c.problem):
				t.Fatalf("want a problem containing %q, got:\n%s", c.problem, joined)
			}
			if c.problem == "" && !strings.Contains(report, "| Feed | A | 1 | ns/misp: 1 |") {
				t.Errorf("report does not show what the query returned:\n%s", report)
			}
		})
	}
}
