// Command promcheck evaluates every query of the Grafana dashboard and every alerting rule
// of config/monitoring against a real Prometheus that scrapes the operator, and fails
// unless each one reads metrics and labels the binaries expose:
//
//   - every metric a query or rule reads has series, and carries every label the query
//     filters or groups by (a misspelt metric or label returns nothing, silently);
//   - every dashboard query returns data, and its legend's labels are on the result;
//   - every alert is loaded and evaluated by Prometheus without error, and each side of
//     its comparisons (x > 1800) returns data: a healthy system keeps the alert quiet,
//     but an alert whose left side is empty could never fire.
//
// It prints what each panel query returned as a Markdown table (also written to -out).
// hack/monitoring-e2e.sh runs it against Prometheus scraping `bin/demo -serve`.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/misptrust/misp-trust-operator/hack/monitoring"
)

type varsFlag map[string]string

func (v varsFlag) String() string { return fmt.Sprint(map[string]string(v)) }
func (v varsFlag) Set(s string) error {
	k, val, ok := strings.Cut(s, "=")
	if !ok {
		return fmt.Errorf("want name=value, got %q", s)
	}
	v[k] = val
	return nil
}

func main() {
	vars := varsFlag{}
	promURL := flag.String("prometheus", "http://127.0.0.1:9090", "Prometheus base URL")
	root := flag.String("root", "", "repository root (default: found from the working directory)")
	out := flag.String("out", "", "also write the report (Markdown) to this file")
	lookback := flag.Duration("lookback", 10*time.Minute, "how far back series are looked up")
	flag.Var(vars, "var", "Grafana variable value, name=value (repeatable): instance, __rate_interval, datasource")
	flag.Parse()
	if *root == "" {
		r, err := monitoring.Root()
		if err != nil {
			fail(err)
		}
		*root = r
	}
	c := &checker{prom: strings.TrimRight(*promURL, "/"), vars: vars, lookback: *lookback, http: &http.Client{Timeout: 30 * time.Second}}
	report, problems := c.run(*root)
	fmt.Print(report)
	if *out != "" {
		if err := os.WriteFile(*out, []byte(report), 0o644); err != nil {
			fail(err)
		}
	}
	if len(problems) > 0 {
		fmt.Fprintf(os.Stderr, "\npromcheck: %d problem(s):\n", len(problems))
		for _, p := range problems {
			fmt.Fprintln(os.Stderr, "  - "+p)
		}
		os.Exit(1)
	}
	fmt.Println("\npromcheck: every dashboard query and alert reads metrics and labels the operator exposes; every dashboard query returned data.")
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "promcheck:", err)
	os.Exit(2)
}

type checker struct {
	prom     string
	vars     map[string]string
	lookback time.Duration
	http     *http.Client
	problems []string
	labels   map[string]map[string]bool // metric → label names seen
}

func (c *checker) problem(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

// sample is one series of an instant query result.
type sample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (s sample) value() string {
	if v, ok := s.Value[1].(string); ok {
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			return strconv.FormatFloat(f, 'g', 4, 64)
		}
		return v
	}
	return "?"
}

func (c *checker) get(ctx context.Context, path string, q url.Values, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.prom+path+"?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return err
	}
	var env struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("GET %s: HTTP %d: %.200s", path, resp.StatusCode, body)
	}
	if env.Status != "success" {
		return fmt.Errorf("GET %s: %s", path, env.Error)
	}
	return json.Unmarshal(env.Data, into)
}

func (c *checker) query(ctx context.Context, expr string) ([]sample, error) {
	var data struct {
		ResultType string   `json:"resultType"`
		Result     []sample `json:"result"`
	}
	if err := c.get(ctx, "/api/v1/query", url.Values{"query": {expr}}, &data); err != nil {
		return nil, err
	}
	if data.ResultType != "vector" {
		return nil, fmt.Errorf("result type %s, want vector", data.ResultType)
	}
	return data.Result, nil
}

// labelsOf returns the label names the metric's series carry (nil: no series).
func (c *checker) labelsOf(ctx context.Context, metric string) (map[string]bool, error) {
	if l, ok := c.labels[metric]; ok {
		return l, nil
	}
	now := time.Now()
	var series []map[string]string
	q := url.Values{"match[]": {fmt.Sprintf("{__name__=%q}", metric)},
		"start": {strconv.FormatInt(now.Add(-c.lookback).Unix(), 10)}, "end": {strconv.FormatInt(now.Unix(), 10)}}
	if err := c.get(ctx, "/api/v1/series", q, &series); err != nil {
		return nil, err
	}
	var set map[string]bool
	for _, s := range series {
		if set == nil {
			set = map[string]bool{}
		}
		for k := range s {
			set[k] = true
		}
	}
	c.labels[metric] = set
	return set, nil
}

// checkSelectors reports metrics without series and labels no series carries.
func (c *checker) checkSelectors(ctx context.Context, what string, a monitoring.Analysis) {
	for _, s := range a.Selectors {
		set, err := c.labelsOf(ctx, s.Metric)
		switch {
		case err != nil:
			c.problem("%s: look up %s: %v", what, s.Metric, err)
			continue
		case set == nil:
			c.problem("%s: no series of %s: the binaries do not expose it (or nothing scraped it)", what, s.Metric)
			continue
		}
		for _, l := range s.Labels {
			if !set[l] {
				c.problem("%s: %s has no label %q (labels: %s)", what, s.Metric, l, keys(set))
			}
		}
	}
}

func keys(m map[string]bool) string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

func (c *checker) run(root string) (string, []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c.labels = map[string]map[string]bool{}
	var b strings.Builder

	c.targets(ctx, &b)

	queries, err := monitoring.DashboardQueries(filepath.Join(root, monitoring.DashboardPath))
	if err != nil {
		c.problem("read the dashboard: %v", err)
		return b.String(), c.problems
	}
	fmt.Fprintf(&b, "\n### Dashboard queries (%s)\n\nVariables: %s\n\n", monitoring.DashboardPath, c.describeVars())
	b.WriteString("| panel | ref | series | what it returned |\n|---|---|---|---|\n")
	for _, q := range queries {
		what := fmt.Sprintf("panel %q %s", q.Panel, q.RefID)
		expr, err := monitoring.Substitute(q.Expr, c.vars)
		if err != nil {
			c.problem("%s: %v", what, err)
			continue
		}
		a, err := monitoring.Analyze(expr)
		if err != nil {
			c.problem("%s: %v", what, err)
			continue
		}
		c.checkSelectors(ctx, what, a)
		res, err := c.query(ctx, expr)
		if err != nil {
			c.problem("%s: %v", what, err)
			fmt.Fprintf(&b, "| %s | %s | error | %s |\n", q.Panel, q.RefID, cell(err.Error()))
			continue
		}
		if len(res) == 0 {
			c.problem("%s returned no data: %s", what, expr)
		}
		// Prometheus drops empty labels (the untrusted policy ""): a legend label must be on
		// some series of the result, not on all.
		for _, l := range monitoring.LegendLabels(q.Legend) {
			seen := false
			for _, s := range res {
				_, ok := s.Metric[l]
				seen = seen || ok
			}
			if len(res) > 0 && !seen {
				c.problem("%s: legend label %q is on no series of the result", what, l)
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %s |\n", q.Panel, q.RefID, len(res), cell(summarize(res, q.Legend)))
	}

	c.rules(ctx, root, &b)
	return b.String(), c.problems
}

func (c *checker) describeVars() string {
	ks := make([]string, 0, len(c.vars))
	for k := range c.vars {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	parts := make([]string, 0, len(ks))
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("`$%s` = `%s`", k, c.vars[k]))
	}
	return strings.Join(parts, ", ")
}

// targets reports the scrape targets; each must be up.
func (c *checker) targets(ctx context.Context, b *strings.Builder) {
	var data struct {
		ActiveTargets []struct {
			Labels    map[string]string `json:"labels"`
			ScrapeURL string            `json:"scrapeUrl"`
			Health    string            `json:"health"`
			LastError string            `json:"lastError"`
		} `json:"activeTargets"`
	}
	if err := c.get(ctx, "/api/v1/targets", url.Values{"state": {"active"}}, &data); err != nil {
		c.problem("list targets: %v", err)
		return
	}
	b.WriteString("### Scrape targets\n\n| job | URL | health |\n|---|---|---|\n")
	if len(data.ActiveTargets) == 0 {
		c.problem("Prometheus scrapes nothing")
	}
	for _, t := range data.ActiveTargets {
		fmt.Fprintf(b, "| %s | %s | %s |\n", t.Labels["job"], t.ScrapeURL, t.Health)
		if t.Health != "up" {
			c.problem("target %s is %s: %s", t.ScrapeURL, t.Health, t.LastError)
		}
	}
}

// rules checks every alert of alerts.yaml as Prometheus loaded and evaluated it.
func (c *checker) rules(ctx context.Context, root string, b *strings.Builder) {
	rf, err := monitoring.ReadRules(filepath.Join(root, monitoring.AlertsPath))
	if err != nil {
		c.problem("read the rules: %v", err)
		return
	}
	var data struct {
		Groups []struct {
			Rules []struct {
				Name      string `json:"name"`
				Health    string `json:"health"`
				LastError string `json:"lastError"`
				State     string `json:"state"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := c.get(ctx, "/api/v1/rules", url.Values{"type": {"alert"}}, &data); err != nil {
		c.problem("list rules: %v", err)
		return
	}
	loaded := map[string]string{}
	for _, g := range data.Groups {
		for _, r := range g.Rules {
			loaded[r.Name] = r.State
			if r.Health != "ok" {
				c.problem("alert %s: Prometheus evaluates it with health %q: %s", r.Name, r.Health, r.LastError)
			}
		}
	}
	fmt.Fprintf(b, "\n### Alerts (%s, evaluated by Prometheus)\n\n", monitoring.AlertsPath)
	b.WriteString("| alert | state | expression now | each side of its comparisons |\n|---|---|---|---|\n")
	for _, al := range rf.Alerts() {
		what := "alert " + al.Name
		state, ok := loaded[al.Name]
		if !ok {
			c.problem("%s is not loaded by Prometheus", what)
			state = "not loaded"
		}
		a, err := monitoring.Analyze(al.Expr)
		if err != nil {
			c.problem("%s: %v", what, err)
			continue
		}
		c.checkSelectors(ctx, what, a)
		res, err := c.query(ctx, al.Expr)
		if err != nil {
			c.problem("%s: %v", what, err)
			continue
		}
		var sides []string
		for _, cond := range a.Conditions {
			r, err := c.query(ctx, cond)
			switch {
			case err != nil:
				c.problem("%s: %s: %v", what, cond, err)
			case len(r) == 0:
				c.problem("%s: %s returns no data: the alert could never fire", what, cond)
			}
			sides = append(sides, fmt.Sprintf("`%s` → %s", cond, summarize(r, "")))
		}
		fmt.Fprintf(b, "| %s | %s | %d series | %s |\n", al.Name, state, len(res), cell(strings.Join(sides, "; ")))
	}
	if len(rf.Alerts()) == 0 {
		c.problem("no alert in %s", monitoring.AlertsPath)
	}
}

// summarize renders up to 12 series as "legend: value".
func summarize(res []sample, legend string) string {
	if len(res) == 0 {
		return "no data"
	}
	sort.Slice(res, func(i, j int) bool { return fmt.Sprint(res[i].Metric) < fmt.Sprint(res[j].Metric) })
	var parts []string
	for i, s := range res {
		if i == 12 {
			parts = append(parts, fmt.Sprintf("… %d more", len(res)-12))
			break
		}
		parts = append(parts, fmt.Sprintf("%s: %s", name(s.Metric, legend), s.value()))
	}
	return strings.Join(parts, "; ")
}

func name(m map[string]string, legend string) string {
	if legend != "" {
		out := legend
		for k, v := range m {
			out = strings.ReplaceAll(out, "{{"+k+"}}", v)
		}
		// A label Prometheus dropped (an empty value) shows as nothing, as in Grafana.
		out = regexp.MustCompile(`\{\{\s*\w+\s*\}\}`).ReplaceAllString(out, "")
		if strings.TrimSpace(out) == "" {
			return `""`
		}
		return strings.TrimSpace(out)
	}
	ks := make([]string, 0, len(m))
	for k := range m {
		if k != "job" && k != "pod" {
			ks = append(ks, k)
		}
	}
	sort.Strings(ks)
	var parts []string
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%s=%q", k, m[k]))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
