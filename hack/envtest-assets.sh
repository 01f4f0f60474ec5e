#!/usr/bin/env bash
# Builds the control-plane binaries envtest needs (kube-apiserver, etcd) from
# Go modules, because no download site is reachable from our machines.
#
# The binaries are cached per user (~/.cache/misp-trust-operator/k8s/<versions>)
# so a fresh clone on the same machine reuses them, and linked into
# bin/k8s/<versions>. Prints the assets directory on stdout (for
# KUBEBUILDER_ASSETS); progress goes to stderr.
#
# The first kube-apiserver build takes ~12 minutes on 2 cores.
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.5}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KEY="kube-${KUBE_VERSION}-etcd-${ETCD_VERSION}"
CACHE="${MTO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/misp-trust-operator}/k8s/${KEY}"
DEST="${ROOT}/bin/k8s/${KEY}"

log() { echo "envtest-assets: $*" >&2; }

build_kube_apiserver() {
  local work
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  log "building kube-apiserver ${KUBE_VERSION} from k8s.io/kubernetes (first time ~12 min on 2 cores)"
  (
    cd "$work"
    # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces
    # them with ./staging paths; a consumer must replace them with releases.
    local staging_version="v0${KUBE_VERSION#v1}"
    go mod init mto-kube-apiserver-build >/dev/null 2>&1
    go mod download -json "k8s.io/kubernetes@${KUBE_VERSION}" >kube.json
    local gomod
    gomod="$(sed -n 's/.*"GoMod": "\(.*\)",/\1/p' kube.json)"
    local replaces=()
    while read -r mod; do
      replaces+=("-replace=${mod}=${mod}@${staging_version}")
    done < <(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$gomod")
    go mod edit "${replaces[@]}" "-require=k8s.io/kubernetes@${KUBE_VERSION}"
    printf 'package main\n\nimport _ "k8s.io/kubernetes/cmd/kube-apiserver"\n' >tools.go
    GOFLAGS=-mod=mod go mod tidy >&2 2>&1 || true
    GOFLAGS=-mod=mod go get "k8s.io/kubernetes/cmd/kube-apiserver@${KUBE_VERSION}" >&2
    CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags="-s -w" -o "${CACHE}/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
  )
  mv "${CACHE}/kube-apiserver.tmp" "${CACHE}/kube-apiserver"
}

build_etcd() {
  local work
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  log "building etcd ${ETCD_VERSION} from go.etcd.io/etcd/server/v3"
  (
    cd "$work"
    go mod init mto-etcd-build >/dev/null 2>&1
    printf 'package main\n\nimport _ "go.etcd.io/etcd/server/v3/etcdmain"\n' >tools.go
    GOFLAGS=-mod=mod go get "go.etcd.io/etcd/server/v3@${ETCD_VERSION}" >&2
    cat >main.go <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
    rm tools.go
    GOFLAGS=-mod=mod go mod tidy >&2
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "${CACHE}/etcd.tmp" .
  )
  mv "${CACHE}/etcd.tmp" "${CACHE}/etcd"
}

mkdir -p "$CACHE"
if [[ -x "${CACHE}/etcd" ]]; then log "etcd ${ETCD_VERSION}: cached"; else build_etcd; fi
if [[ -x "${CACHE}/kube-apiserver" ]]; then log "kube-apiserver ${KUBE_VERSION}: cached"; else build_kube_apiserver; fi

mkdir -p "$DEST"
for b in kube-apiserver etcd; do
  ln -sf "${CACHE}/${b}" "${DEST}/${b}"
done
# envtest only needs kubectl for its optional helpers; link the system one when present.
if command -v kubectl >/dev/null 2>&1; then ln -sf "$(command -v kubectl)" "${DEST}/kubectl"; fi
echo "$DEST"
