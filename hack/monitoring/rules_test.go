package monitoring

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// promtool is Debian's (package prometheus), or $PROMTOOL.
func promtool(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PROMTOOL"); p != "" {
		return p
	}
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: install Debian's prometheus package (apt-get install prometheus; .ci/run does) or set PROMTOOL")
	}
	return p
}

func runPromtool(t *testing.T, dir string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, promtool(t), args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// TestRulesPassPromtool: the rule file is valid for Prometheus (promtool check rules) and
// every alert behaves as its unit tests say on synthetic series (promtool test rules).
func TestRulesPassPromtool(t *testing.T) {
	dir := filepath.Join(mustRoot(t), "config", "monitoring")
	out := runPromtool(t, dir, "check", "rules", "alerts.yaml")
	t.Logf("%s", strings.TrimSpace(out))
	out = runPromtool(t, dir, "test", "rules", "alerts_test.yaml")
	t.Logf("%s", strings.TrimSpace(out))
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool test rules did not report SUCCESS:\n%s", out)
	}
}

// The check above can fail: a rule test that expects the wrong alert is refused.
func TestPromtoolRefusesAWrongExpectation(t *testing.T) {
	root := mustRoot(t)
	dir := t.TempDir()
	rules, err := os.ReadFile(filepath.Join(root, AlertsPath))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "alerts.yaml"), rules, 0o644); err != nil {
		t.Fatal(err)
	}
	wrong := `rule_files: [alerts.yaml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: misptrust_feed_connected{instance="sec/misp"}
        values: 1x20
    alert_rule_test:
      - eval_time: 15m
        alertname: MISPTrustFeedDisconnected
        exp_alerts:
          - exp_labels: {severity: warning, instance: sec/misp}
`
	if err := os.WriteFile(filepath.Join(dir, "wrong_test.yaml"), []byte(wrong), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtool(t), "test", "rules", "wrong_test.yaml")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("promtool accepted an alert that cannot fire on a connected feed:\n%s", out)
	}
}

type ruleTests struct {
	Tests []struct {
		Name           string `json:"name"`
		AlertRuleTests []struct {
			Alertname string `json:"alertname"`
			ExpAlerts []any  `json:"exp_alerts"`
		} `json:"alert_rule_test"`
	} `json:"tests"`
}

// TestEveryAlertIsTestedAndHasARunbook: each alert has a promtool case where it fires and
// one where it stays quiet, the annotations a person needs, and a row in the README's
// troubleshooting table.
func TestEveryAlertIsTestedAndHasARunbook(t *testing.T) {
	root := mustRoot(t)
	rf, err := ReadRules(filepath.Join(root, AlertsPath))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(root, AlertTestsPath))
	if err != nil {
		t.Fatal(err)
	}
	var rt ruleTests
	if err := yaml.Unmarshal(raw, &rt); err != nil {
		t.Fatal(err)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range rt.Tests {
		for _, a := range tc.AlertRuleTests {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	troubleshooting := string(readme)
	if i := strings.Index(troubleshooting, "## Troubleshooting"); i >= 0 {
		troubleshooting = troubleshooting[i:]
	}
	alerts := 0
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts++
			if !fires[r.Alert] || !quiet[r.Alert] {
				t.Errorf("%s: promtool cases firing %v, quiet %v; want both", r.Alert, fires[r.Alert], quiet[r.Alert])
			}
			for _, k := range []string{"summary", "description", "runbook_url"} {
				if r.Annotations[k] == "" {
					t.Errorf("%s has no %s annotation", r.Alert, k)
				}
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" && s != "info" {
				t.Errorf("%s severity %q, want critical, warning or info", r.Alert, s)
			}
			row := false
			for _, line := range strings.Split(troubleshooting, "\n") {
				if strings.HasPrefix(line, "|") && strings.Contains(line, "`"+r.Alert+"`") {
					row = true
				}
			}
			if !row {
				t.Errorf("%s has no row in the README's troubleshooting table", r.Alert)
			}
		}
	}
	if alerts < 5 {
		t.Fatalf("%d alerts in %s, want the 5 of issue 13", alerts, AlertsPath)
	}
}

// TestGeneratedCopiesAreCurrent: prometheusrule.yaml and the chart's files are what
// hack/monitoring-sync.sh makes from the sources (`make manifests`).
func TestGeneratedCopiesAreCurrent(t *testing.T) {
	root := mustRoot(t)
	for src, copy := range map[string]string{AlertsPath: ChartAlertsPath, DashboardPath: ChartDashboardPath} {
		a, err := os.ReadFile(filepath.Join(root, src))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(root, copy))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs from %s: run `make manifests`", copy, src)
		}
	}
	var src, pr map[string]any
	for path, into := range map[string]*map[string]any{AlertsPath: &src, PrometheusRulePath: &pr} {
		raw, err := os.ReadFile(filepath.Join(root, path))
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(raw, into); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	spec, _ := pr["spec"].(map[string]any)
	if pr["kind"] != "PrometheusRule" || !reflect.DeepEqual(spec["groups"], src["groups"]) {
		t.Errorf("%s is not the PrometheusRule of %s: run `make manifests`", PrometheusRulePath, AlertsPath)
	}
}
