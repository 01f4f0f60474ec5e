// Package monitoring checks the operator's monitoring pack (config/monitoring: the Grafana
// dashboard, the Prometheus alerting rules and their promtool tests, and the Helm chart's
// copies) and reads it for promcheck, which evaluates every dashboard and alert expression
// against a real Prometheus scraping a running demo (hack/monitoring-e2e.sh).
//
// It is its own Go module, like hack/gitops-check: the Grafana schema (grafana-foundation-sdk)
// and the PromQL parser (prometheus/prometheus) stay out of the operator's module.
//
//	cd hack/monitoring && go test ./...   # needs promtool (Debian package prometheus)
package monitoring
