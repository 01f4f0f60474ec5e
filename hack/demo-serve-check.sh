#!/usr/bin/env bash
# CI check of the README's `make demo-serve`: it must keep everything running and
# print a KUBECONFIG and a MISP double URL that work, then stop every process on
# Ctrl-C (SIGINT).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
make build envtest >/dev/null
log="$(mktemp)"
KUBEBUILDER_ASSETS="$(bash hack/envtest-assets.sh 2>/dev/null)" bin/demo -serve >"$log" 2>&1 &
pid=$!
trap 'kill -INT $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 240); do
  grep -q "Everything keeps running" "$log" && break
  kill -0 $pid 2>/dev/null || { cat "$log"; echo "demo-serve exited early"; exit 1; }
  sleep 0.5
done
grep -q "Everything keeps running" "$log" || { cat "$log"; echo "demo-serve did not reach serving"; exit 1; }
kubeconfig="$(sed -n 's/^  export KUBECONFIG=//p' "$log")"
misp="$(sed -n 's/^  MISP double: *\(http[^ ]*\).*/\1/p' "$log")"
KUBECONFIG="$kubeconfig" kubectl get mispi,otp
curl -fsS -X POST "$misp/_sim/pull" -d '{"orgc":{"uuid":"5cf66e53-b5f8-43e7-be9a-49880a3b4631","name":"CIRCL"},"published":true,"attributes":3}' >/dev/null
# The curator is still running: the new pull gets curated.
for _ in $(seq 1 60); do
  # The scenario left 3 events graded "a"; the hand-made pull is the 4th.
  if [ "$(curl -fsS "$misp/_sim/events" | grep -o 'source-reliability=\\"a\\"' | wc -l)" -ge 4 ]; then
    echo "demo-serve: a pull made by hand was curated"
    kill -INT $pid
    wait $pid
    if pgrep -f "bin/(mispsim|misp-trust-operator)" >/dev/null; then echo "processes left behind:"; pgrep -fa "bin/(mispsim|misp-trust-operator)"; exit 1; fi
    trap - EXIT
    rm -f "$log"
    exit 0
  fi
  sleep 0.5
done
echo "the pull made by hand was not curated"; exit 1
