package monitoring

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// Paths of the monitoring pack, relative to the repository root.
const (
	DashboardPath      = "config/monitoring/grafana-dashboard.json"
	AlertsPath         = "config/monitoring/alerts.yaml"
	AlertTestsPath     = "config/monitoring/alerts_test.yaml"
	PrometheusRulePath = "config/monitoring/prometheusrule.yaml"
	ChartDashboardPath = "charts/misp-trust-operator/files/grafana-dashboard.json"
	ChartAlertsPath    = "charts/misp-trust-operator/files/alerts.yaml"
)

// Query is one Prometheus query of a dashboard panel.
type Query struct {
	Panel  string // panel title
	RefID  string
	Expr   string // as written, with Grafana variables
	Legend string // legendFormat
}

// Alert is one alerting rule.
type Alert struct {
	Name string
	Expr string
}

type dashboardJSON struct {
	Templating struct {
		List []struct {
			Name string `json:"name"`
			Type string `json:"type"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		Type    string `json:"type"`
		Title   string `json:"title"`
		Targets []struct {
			RefID        string `json:"refId"`
			Expr         string `json:"expr"`
			LegendFormat string `json:"legendFormat"`
		} `json:"targets"`
	} `json:"panels"`
}

// DashboardQueries reads every panel query of the dashboard at path, in panel order.
func DashboardQueries(path string) ([]Query, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var d dashboardJSON
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var out []Query
	for _, p := range d.Panels {
		for _, t := range p.Targets {
			out = append(out, Query{Panel: p.Title, RefID: t.RefID, Expr: t.Expr, Legend: t.LegendFormat})
		}
	}
	return out, nil
}

// RuleFile is the shape of a Prometheus rule file (the fields the checks read).
type RuleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert       string            `json:"alert"`
			Record      string            `json:"record"`
			Expr        string            `json:"expr"`
			For         string            `json:"for"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"rules"`
	} `json:"groups"`
}

// ReadRules reads a Prometheus rule file.
func ReadRules(path string) (*RuleFile, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f RuleFile
	if err := yaml.UnmarshalStrict(raw, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &f, nil
}

// Alerts lists the alerting rules of a rule file.
func (f *RuleFile) Alerts() []Alert {
	var out []Alert
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				out = append(out, Alert{Name: r.Alert, Expr: r.Expr})
			}
		}
	}
	return out
}

// Substitute replaces Grafana's variables in a dashboard expression: vars holds the value
// of each template variable and of the built-ins used ($__rate_interval, $__interval,
// $__range). A variable without a value is an error, so a query cannot reach Prometheus
// with a "$" left in it.
func Substitute(expr string, vars map[string]string) (string, error) {
	names := make([]string, 0, len(vars))
	for k := range vars {
		names = append(names, k)
	}
	// Longest first: $__rate_interval before a hypothetical $__rate.
	sort.Slice(names, func(i, j int) bool { return len(names[i]) > len(names[j]) })
	out := expr
	for _, k := range names {
		out = strings.ReplaceAll(out, "${"+k+"}", vars[k])
		out = strings.ReplaceAll(out, "$"+k, vars[k])
	}
	if m := regexp.MustCompile(`\$\{?\w+`).FindString(out); m != "" {
		return "", fmt.Errorf("no value for the variable %s in %q", m, expr)
	}
	return out, nil
}

// LegendLabels are the label names a legendFormat shows ({{instance}} {{topic}}).
func LegendLabels(legend string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`\{\{\s*(\w+)\s*\}\}`).FindAllStringSubmatch(legend, -1) {
		out = append(out, m[1])
	}
	return out
}

// Root finds the repository root from the working directory (tests run in hack/monitoring).
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "config", "monitoring")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no config/monitoring above the working directory")
		}
		dir = parent
	}
}
