package monitoring

import (
	"reflect"
	"testing"
)

func TestAnalyzeFindsMetricsLabelsAndConditions(t *testing.T) {
	cases := []struct {
		name       string
		expr       string
		selectors  []Selector
		conditions []string
	}{
		{
			name: "grouping labels count as used labels of the selector below",
			expr: `sum by (instance, policy) (increase(m_total{action="failed"}[15m])) > 3`,
			selectors: []Selector{{Metric: "m_total", Labels: []string{"action", "instance", "policy"},
				Text: `m_total{action="failed"}`}},
			conditions: []string{`sum by (instance, policy) (increase(m_total{action="failed"}[15m]))`},
		},
		{
			name: "histogram_quantile groups by le",
			expr: `histogram_quantile(0.95, sum by (endpoint, le) (rate(h_bucket{instance=~".+"}[1m])))`,
			selectors: []Selector{{Metric: "h_bucket", Labels: []string{"endpoint", "instance", "le"},
				Text: `h_bucket{instance=~".+"}`}},
		},
		{
			name: "both sides of or/and, comparisons inside parentheses",
			expr: `max by (instance) (lag) > 1800 or (sum by (instance) (p{result="error"}) > 0 and sum by (instance) (p{result="ok"}) == 0)`,
			selectors: []Selector{
				{Metric: "lag", Labels: []string{"instance"}, Text: "lag"},
				{Metric: "p", Labels: []string{"instance", "result"}, Text: `p{result="error"}`},
				{Metric: "p", Labels: []string{"instance", "result"}, Text: `p{result="ok"}`},
			},
			conditions: []string{"max by (instance) (lag)", `sum by (instance) (p{result="error"})`, `sum by (instance) (p{result="ok"})`},
		},
		{
			name:      "without() adds no label, a bool comparison is no condition",
			expr:      `sum without (pod) (up) > bool 0`,
			selectors: []Selector{{Metric: "up", Labels: []string{}, Text: "up"}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, err := Analyze(c.expr)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(a.Selectors, c.selectors) {
				t.Errorf("selectors %+v\nwant %+v", a.Selectors, c.selectors)
			}
			if !reflect.DeepEqual(a.Conditions, c.conditions) {
				t.Errorf("conditions %q\nwant %q", a.Conditions, c.conditions)
			}
		})
	}
	if _, err := Analyze(`sum(rate(x[5m])`); err == nil {
		t.Error("an unbalanced expression parsed")
	}
}

func TestSubstituteLeavesNoVariable(t *testing.T) {
	got, err := Substitute(`rate(x{instance=~"$instance"}[$__rate_interval]) and on() y{d="${datasource}"}`,
		map[string]string{"instance": "a/b", "__rate_interval": "1m", "datasource": "p"})
	if err != nil || got != `rate(x{instance=~"a/b"}[1m]) and on() y{d="p"}` {
		t.Fatalf("got %q, %v", got, err)
	}
	if _, err := Substitute(`rate(x[$__range])`, map[string]string{"__rate_interval": "1m"}); err == nil {
		t.Fatal("a variable without a value was left in the query")
	}
}

func TestLegendLabels(t *testing.T) {
	if got := LegendLabels("{{instance}} reconnect {{ reason }}"); !reflect.DeepEqual(got, []string{"instance", "reason"}) {
		t.Fatalf("got %q", got)
	}
}
