package monitoring

import (
	"fmt"
	"sort"

	"github.com/prometheus/prometheus/promql/parser"
)

// Selector is one metric a query reads and the label names it relies on: those of its
// matchers, and those its enclosing aggregations group by (a grouping label the metric
// does not carry silently merges every series into one).
type Selector struct {
	Metric string
	Labels []string // sorted, without __name__
	Text   string   // the selector as written
}

// Analysis is what a query reads and which parts of it must return data.
type Analysis struct {
	Selectors []Selector
	// Conditions are the vector sides of comparisons with a number (x > 1800,
	// y == 0): an alert fires when they pass, so a healthy system makes the whole
	// expression empty, but each side must return data or the alert can never fire.
	Conditions []string
}

var promql = parser.NewParser(parser.Options{})

// Analyze parses a PromQL expression (Grafana variables already substituted).
func Analyze(expr string) (Analysis, error) {
	root, err := promql.ParseExpr(expr)
	if err != nil {
		return Analysis{}, fmt.Errorf("parse %q: %w", expr, err)
	}
	var a Analysis
	var walk func(n parser.Node, grouping []string)
	walk = func(n parser.Node, grouping []string) {
		switch n := n.(type) {
		case *parser.VectorSelector:
			set := map[string]bool{}
			for _, l := range grouping {
				set[l] = true
			}
			for _, m := range n.LabelMatchers {
				if m.Name != "__name__" {
					set[m.Name] = true
				}
			}
			labels := make([]string, 0, len(set))
			for l := range set {
				labels = append(labels, l)
			}
			sort.Strings(labels)
			a.Selectors = append(a.Selectors, Selector{Metric: n.Name, Labels: labels, Text: n.String()})
			return
		case *parser.AggregateExpr:
			if !n.Without {
				grouping = append(append([]string(nil), grouping...), n.Grouping...)
			}
		case *parser.BinaryExpr:
			if n.VectorMatching != nil && n.VectorMatching.On {
				grouping = append(append([]string(nil), grouping...), n.VectorMatching.MatchingLabels...)
			}
			if n.Op.IsComparisonOperator() && !n.ReturnBool {
				switch {
				case isNumber(n.RHS) && !isNumber(n.LHS):
					a.Conditions = append(a.Conditions, unparen(n.LHS).String())
				case isNumber(n.LHS) && !isNumber(n.RHS):
					a.Conditions = append(a.Conditions, unparen(n.RHS).String())
				}
			}
		}
		for _, c := range parser.Children(n) {
			walk(c, grouping)
		}
	}
	walk(root, nil)
	return a, nil
}

func isNumber(e parser.Expr) bool {
	_, ok := unparen(e).(*parser.NumberLiteral)
	return ok
}

func unparen(e parser.Expr) parser.Expr {
	for {
		p, ok := e.(*parser.ParenExpr)
		if !ok {
			return e
		}
		e = p.Expr
	}
}
