#!/usr/bin/env bash
# Installs Helm from the Go module proxy (no download site is reachable from
# our machines), cached per user in ~/.cache/misp-trust-operator/bin and
# linked into bin/. Prints the helm binary's path on stdout; progress goes to
# stderr.
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.19.5}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${MTO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/misp-trust-operator}/bin"
BIN="${CACHE}/helm-${HELM_VERSION}"

if [[ ! -x "$BIN" ]]; then
  echo "helm: building ${HELM_VERSION} from helm.sh/helm/v3 (first time ~3 min on 2 cores)" >&2
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$CACHE"
  # go install with @version builds in module mode outside our go.mod, so
  # Helm's own dependency versions are used, not ours.
  CGO_ENABLED=0 GOBIN="$work" go install -trimpath \
    -ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}" \
    "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}" >&2
  mv "$work/helm" "$BIN"
fi
mkdir -p "${ROOT}/bin"
ln -sf "$BIN" "${ROOT}/bin/helm"
echo "$BIN"
