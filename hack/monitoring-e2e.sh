#!/usr/bin/env bash
# A real Prometheus (Debian's prometheus package) scrapes the running demo (`bin/demo
# -serve`: kube-apiserver, the MISP double, the controller and the curator) while partner
# events flow and MISP answers some searches with 503; then promcheck evaluates every
# dashboard query and every alert of config/monitoring against it (hack/monitoring/promcheck
# says what must hold) and prints what each panel query returned. The scrape config keeps
# the metrics' instance label (honor_labels, as the chart's ServiceMonitor does).
#
#   bash hack/monitoring-e2e.sh [report.md]        (make monitoring-e2e)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="/usr/local/go/bin:${PATH}"
report="${1:-}"
command -v prometheus >/dev/null || { echo "monitoring-e2e: prometheus not found: apt-get install prometheus" >&2; exit 1; }
make build envtest >/dev/null

work="$(mktemp -d)"
demo_pid="" prom_pid=""
cleanup() {
  [[ -n "$prom_pid" ]] && { kill "$prom_pid" 2>/dev/null || true; wait "$prom_pid" 2>/dev/null || true; }
  [[ -n "$demo_pid" ]] && { kill -INT "$demo_pid" 2>/dev/null || true; wait "$demo_pid" 2>/dev/null || true; }
  rm -rf "$work"
}
trap cleanup EXIT

: >"$work/demo.log"
KUBEBUILDER_ASSETS="$(bash hack/envtest-assets.sh 2>/dev/null)" bin/demo -serve >"$work/demo.log" 2>&1 &
demo_pid=$!
for _ in $(seq 1 240); do
  grep -q "Everything keeps running" "$work/demo.log" && break
  kill -0 "$demo_pid" 2>/dev/null || { cat "$work/demo.log"; echo "monitoring-e2e: the demo exited early" >&2; exit 1; }
  sleep 0.5
done
grep -q "Everything keeps running" "$work/demo.log" || { cat "$work/demo.log"; echo "monitoring-e2e: the demo did not reach serving" >&2; exit 1; }
misp="$(sed -n 's/^  MISP double: *\(http[^ ]*\).*/\1/p' "$work/demo.log")"
controller="$(sed -n 's|^  Metrics: *controller http://\([^/]*\)/metrics.*|\1|p' "$work/demo.log")"
curator="$(sed -n 's|^  Metrics: .* curator http://\([^/]*\)/metrics.*|\1|p' "$work/demo.log")"
[[ -n "$misp" && -n "$controller" && -n "$curator" ]] || { cat "$work/demo.log"; echo "monitoring-e2e: no MISP or metrics address in the demo's output" >&2; exit 1; }

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cp config/monitoring/alerts.yaml "$work/alerts.yaml"
cat >"$work/prometheus.yml" <<YAML
global:
  scrape_interval: 5s
  evaluation_interval: 5s
rule_files: [alerts.yaml]
scrape_configs:
  - job_name: controller
    honor_labels: true
    static_configs: [{targets: ["$controller"]}]
  - job_name: curator
    honor_labels: true
    static_configs: [{targets: ["$curator"]}]
YAML
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$port" --log.level=warn >"$work/prometheus.log" 2>&1 &
prom_pid=$!
for _ in $(seq 1 60); do
  curl -fsS "http://127.0.0.1:$port/-/ready" >/dev/null 2>&1 && break
  kill -0 "$prom_pid" 2>/dev/null || { cat "$work/prometheus.log"; echo "monitoring-e2e: prometheus exited" >&2; exit 1; }
  sleep 0.5
done
echo "monitoring-e2e: $(prometheus --version 2>&1 | head -1) on 127.0.0.1:$port scrapes controller $controller and curator $curator"

# Traffic for ~70 s: pulls from a high-trust (tag + publish), a medium-trust (tag only) and
# an untrusted partner, a push, and from the third round on MISP answering half of
# /events/index with 503 (retried by the client: errors and retries in the MISP panels).
(cd hack/monitoring && go build -o "$work/promcheck" ./promcheck)
sim() { curl -fsS -X POST "$misp/_sim/$1" -d "$2" >/dev/null; }
incomplete='{"name":"workflow:state=\"incomplete\"","local":false}'
for i in $(seq 1 14); do
  [[ $i == 3 ]] && sim fault '{"endpoint":"/events/index","error_rate":0.5,"error_status":503}'
  sim pull "{\"orgc\":{\"uuid\":\"5cf66e53-b5f8-43e7-be9a-49880a3b4631\",\"name\":\"CIRCL\"},\"published\":true,\"attributes\":3,\"tags\":[$incomplete]}"
  sim pull '{"orgc":{"uuid":"7f1b3c2e-9d4a-4e8b-a6c5-0b2d4f6e8a19","name":"PARTNER-MEDIUM"},"published":true,"attributes":2}'
  sim pull '{"orgc":{"uuid":"3d0c6f0a-8f7e-4b1c-9a55-2e6b8d1f4c70","name":"UNKNOWN-FEED"},"published":true,"attributes":1}'
  sim push '{"orgc":{"uuid":"1521ae8b-48de-4766-8b2a-fdecef763fa8","name":"PARTNER-HIGH"},"published":true,"attributes":1}'
  sleep 5
done

"$work/promcheck" -root "$PWD" -prometheus "http://127.0.0.1:$port" \
  -var instance=default/misp-prod -var __rate_interval=1m -var datasource=prometheus ${report:+-out "$report"}
