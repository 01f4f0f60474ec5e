package charts_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// monitoringSource reads the monitoring pack's sources: the rule groups of alerts.yaml
// and the dashboard JSON.
func monitoringSource(t *testing.T) (groups any, dashboard []byte) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "config", "monitoring", "alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rules map[string]any
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatal(err)
	}
	dashboard, err = os.ReadFile(filepath.Join("..", "config", "monitoring", "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	return rules["groups"], dashboard
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(x, y)
}

// The chart's PrometheusRule and dashboard ConfigMap are off by default and, when on,
// carry exactly config/monitoring's rules and dashboard; the ServiceMonitor keeps the
// metrics' instance label (the MISPInstance) that both rely on.
func TestChartMonitoringPack(t *testing.T) {
	def := render(t)
	if n := def.kinds()["PrometheusRule"] + def.kinds()["ConfigMap"]; n != 0 {
		t.Fatalf("default values render %d PrometheusRule/ConfigMap objects, want none (optional)", n)
	}
	groups, dashboard := monitoringSource(t)
	full := render(t, fullTemplateArgs...)

	pr := full.mustFind(t, "PrometheusRule", "mto")
	if got := field(t, pr, "spec", "groups"); !reflect.DeepEqual(got, groups) {
		t.Errorf("the chart's rule groups differ from config/monitoring/alerts.yaml: run `make manifests`")
	}
	if got := pr.GetLabels()["release"]; got != "kube-prometheus-stack" {
		t.Errorf("PrometheusRule labels %v: want the values' labels", pr.GetLabels())
	}

	cm := full.mustFind(t, "ConfigMap", "mto-dashboard")
	data := field(t, cm, "data", "misp-trust-operator.json").(string)
	if !jsonEqual(t, []byte(data), dashboard) {
		t.Errorf("the chart's dashboard differs from config/monitoring/grafana-dashboard.json: run `make manifests`")
	}
	if cm.GetLabels()["grafana_dashboard"] != "1" || cm.GetAnnotations()["grafana_folder"] != "MISP" {
		t.Errorf("dashboard ConfigMap labels %v annotations %v: want the sidecar label and the values' folder", cm.GetLabels(), cm.GetAnnotations())
	}
	moved := render(t, "--set", "metrics.grafanaDashboard.enabled=true", "--set", "metrics.grafanaDashboard.namespace=monitoring",
		"--set", "metrics.prometheusRule.enabled=true", "--set", "metrics.prometheusRule.namespace=monitoring")
	for _, kind := range []string{"PrometheusRule", "ConfigMap"} {
		for _, u := range moved {
			if u.GetKind() == kind && u.GetNamespace() != "monitoring" {
				t.Errorf("%s %s in %q, want the namespace from values", kind, u.GetName(), u.GetNamespace())
			}
		}
	}

	sm := full.mustFind(t, "ServiceMonitor", "mto")
	eps := field(t, sm, "spec", "endpoints").([]any)
	if len(eps) != 1 || eps[0].(map[string]any)["honorLabels"] != true {
		t.Errorf("ServiceMonitor endpoints %v: want honorLabels true (else Prometheus renames instance to exported_instance)", eps)
	}
}

// `kubectl apply -k config/monitoring` (README) installs the same rules and dashboard,
// accepted by a real kube-apiserver with the PrometheusRule CRD.
func TestKustomizeMonitoring(t *testing.T) {
	manifest, objs := kustomize(t, filepath.Join("..", "config", "monitoring"))
	if want := map[string]int{"PrometheusRule": 1, "ConfigMap": 1}; !reflect.DeepEqual(objs.kinds(), want) {
		t.Fatalf("kinds = %v, want %v", objs.kinds(), want)
	}
	groups, dashboard := monitoringSource(t)
	pr := objs.mustFind(t, "PrometheusRule", "misp-trust-operator")
	if got := field(t, pr, "spec", "groups"); !reflect.DeepEqual(got, groups) {
		t.Errorf("config/monitoring/prometheusrule.yaml differs from alerts.yaml: run `make manifests`")
	}
	cm := objs.mustFind(t, "ConfigMap", "misp-trust-operator-dashboard")
	if !jsonEqual(t, []byte(field(t, cm, "data", "misp-trust-operator.json").(string)), dashboard) || cm.GetLabels()["grafana_dashboard"] != "1" {
		t.Errorf("dashboard ConfigMap: want grafana-dashboard.json with the sidecar label, labels %v", cm.GetLabels())
	}
	for _, u := range objs {
		if u.GetNamespace() != namespace {
			t.Errorf("%s/%s in namespace %q, want %s", u.GetKind(), u.GetName(), u.GetNamespace(), namespace)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := shared.kubectl(ctx, []byte(manifest), "apply", "--dry-run=server", "--validate=strict", "-f", "-")
	if err != nil {
		t.Fatal(err)
	}
	if n := countDryRun(res); n != len(objs) {
		t.Fatalf("server accepted %d objects, rendered %d:\n%s", n, len(objs), res)
	}
	t.Logf("config/monitoring: %d objects accepted by kube-apiserver (dry run)", len(objs))
}
