#!/usr/bin/env bash
# Writes config/gitops/argocd/argocd-cm-patch.yaml from health.lua (run by
# `make manifests`; hack/gitops-check fails when the copy differs).
set -euo pipefail
DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/config/gitops/argocd"
{
  cat <<'HEAD'
# Patch for Argo CD's argocd-cm ConfigMap: health of misptrust.io objects from
# their Ready condition and observedGeneration. Generated from health.lua by
# hack/argocd-cm-patch.sh (`make manifests`): edit health.lua, not this file.
#
#   kubectl -n argocd patch configmap argocd-cm --patch-file argocd-cm-patch.yaml
# or list it under `patches:` of the kustomization that installs Argo CD.
apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
  namespace: argocd
  labels:
    app.kubernetes.io/name: argocd-cm
    app.kubernetes.io/part-of: argocd
data:
HEAD
  for kind in MISPInstance OrgTrustPolicy; do
    echo "  resource.customizations.health.misptrust.io_${kind}: |"
    # Indent non-empty lines; empty lines stay empty (YAML block scalar).
    sed -e 's/^\(.\)/    \1/' "${DIR}/health.lua"
  done
} >"${DIR}/argocd-cm-patch.yaml.tmp"
mv "${DIR}/argocd-cm-patch.yaml.tmp" "${DIR}/argocd-cm-patch.yaml"
