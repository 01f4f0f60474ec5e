#!/usr/bin/env bash
# Checks the install story against a real kube-apiserver and etcd:
#   - charts/ (Go test, envtest): `helm lint --strict` with default and full
#     values (charts/misp-trust-operator/ci/full-values.yaml); strict
#     values.schema.json; `helm template` renders checked object by object;
#     every rendered object, and `kubectl kustomize config/default`, applied
#     with `kubectl apply --dry-run=server --validate=strict`; the real Helm
#     installs, upgrades and uninstalls the chart (CRDs kept); the real binary
#     runs both components with the chart's args under the chart's RBAC;
#   - hack/gitops-check: the Argo CD health Lua (gopher-lua) and the Flux
#     healthCheckExprs (cel-go) on the same objects.
# Helm, kube-apiserver and etcd are built from Go modules once and cached per
# user (hack/helm.sh, hack/envtest-assets.sh). `make test` runs the same tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v kubectl >/dev/null || { echo "chart-check: kubectl is needed (it has kustomize built in)" >&2; exit 1; }
assets="$(bash hack/envtest-assets.sh)"
helm="$(bash hack/helm.sh)"
echo "KUBEBUILDER_ASSETS=${assets} HELM=${helm} ($("$helm" version --short 2>/dev/null || echo '?'), kubectl $(kubectl version --client -o json 2>/dev/null | sed -n 's/.*"gitVersion": "\([^"]*\)".*/\1/p' | head -1))"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
rc=0
KUBEBUILDER_ASSETS="$assets" HELM="$helm" go test -count=1 -timeout 15m -v ./charts/... >"$log" 2>&1 || rc=$?
# The verdict of every test and subtest, what the apiserver accepted, and any failure.
grep -E '^\s*--- |^(PASS|FAIL|ok|panic)|accepted by kube-apiserver|_test\.go:[0-9]+:' "$log" || cat "$log"
[[ $rc -eq 0 ]] || exit "$rc"
(cd hack/gitops-check && go test -count=1 ./...)
