#!/usr/bin/env bash
# Builds the local Kubernetes control plane that services/kube_apiserver.py runs into BIN_DIR (make setup:
# .venv/bin), from Go modules, pinned in engine/versions.env:
#   kube-apiserver, kube-controller-manager  k8s.io/kubernetes/cmd/..., engine/kube (a wrapper module: the
#                                            staging modules replaced by their published v0.x releases)
#   etcd                                     go.etcd.io/etcd/server/v3/etcdmain, engine/etcd
# No kubelet, scheduler or proxy: what the tests prove (objects, admission, authorization, quota) needs none.
# Each binary is skipped when BIN_DIR holds it at the pinned version (a .NAME.version stamp, as for the engine);
# Go's module and build caches stay in the user cache.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$(mkdir -p "${1:?usage: engine/build_kube.sh BIN_DIR}" && cd "$1" && pwd)
# shellcheck source=engine/versions.env
. "$here/versions.env"
export CGO_ENABLED=0 GOFLAGS=-mod=readonly GOTOOLCHAIN=local
command -v go >/dev/null || { echo "kube: Go is needed to build the local API server (https://go.dev/dl)" >&2; exit 1; }

label=kube
# shellcheck source=engine/build_step.sh
. "$here/build_step.sh"

# Without these the server reports v0.0.0-master, which kubectl and the Python client cannot parse.
kube_ldflags() {
  local v=v$KUBE_VERSION pkg=k8s.io/component-base/version
  local major=${KUBE_VERSION%%.*} rest=${KUBE_VERSION#*.}
  printf '%s' "-s -w -X $pkg.gitVersion=$v -X $pkg.gitMajor=$major -X $pkg.gitMinor=${rest%%.*}" \
    " -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
}

build_kube() {
  cd "$here/kube"
  go build -o "$bin/$1" -ldflags "$(kube_ldflags)" "k8s.io/kubernetes/cmd/$1"
}

build_etcd() {
  cd "$here/etcd"
  go build -o "$bin/etcd" -ldflags "-s -w" .
}

build etcd "$ETCD_VERSION" build_etcd
build kube-apiserver "$KUBE_VERSION" build_kube kube-apiserver
build kube-controller-manager "$KUBE_VERSION" build_kube kube-controller-manager
