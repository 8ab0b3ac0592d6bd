#!/usr/bin/env bash
# OPT-IN, never part of `make setup` or `make test`: the Pulumi Kubernetes Operator's Go module is not served
# by every Go proxy (some answer 403), so nothing that must run on a fresh clone may depend on it.
#
# `make operator-crds` runs `engine/fetch_operator_crds.sh .venv/operator-crds`: it copies the CRDs of the
# operator release pinned in engine/operator/version.env into DEST and prints DEST, for
# `tenantctl render-operator --crds DEST`, which checks the rendered Stack objects against them. The offline
# checker's tests use a CRD stand-in of their own; tests/services/test_kube_apiserver.py installs the CRDs in
# .venv/operator-crds into the local API server when they are there (else the stand-in) and dry-runs
# render-operator's output against them. Without a proxy that serves
# the module, take the CRDs of the release the cluster runs from the cluster instead:
#   mkdir -p DIR && kubectl get crd stacks.pulumi.com -o yaml > DIR/stacks.yaml
#
# The CRDs come from the operator's Go module, which `go mod download` keeps in Go's user module cache
# (GOMODCACHE) and checks against the checksum database. DEST/.version names the module version it holds
# (render-operator reports it): when it matches the pin, the script returns at once without calling Go.
# DEST is replaced as a whole, so keep CRDs taken with kubectl in a folder of their own.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dest=${1:?usage: engine/fetch_operator_crds.sh DEST}
# shellcheck source=engine/operator/version.env
. "$here/operator/version.env"
want="$PKO_MODULE@$PKO_VERSION"

if [ "$(cat "$dest/.version" 2>/dev/null)" = "$want" ]; then
  printf '%s\n' "$dest"
  exit 0
fi
command -v go >/dev/null || { echo "operator-crds: Go is needed to fetch $want (https://go.dev/dl)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# An empty folder: no go.mod or go.work of this repository takes part in the download.
info=$(cd "$work" && GOTOOLCHAIN=local GOWORK=off GOFLAGS=-mod=mod go mod download -json "$want" || true)
module_dir=$(printf '%s' "$info" | python3 -c '
import json, sys
try:
    info = json.load(sys.stdin)
except ValueError:
    sys.exit("no answer from go mod download")
if info.get("Error") or not info.get("Dir"):
    sys.exit(info.get("Error") or "no module folder reported")
print(info["Dir"])
') || { echo "operator-crds: could not download $want (see above); check GOPROXY and the pin in engine/operator/version.env, or take the CRDs from the cluster: kubectl get crd stacks.pulumi.com -o yaml > DIR/stacks.yaml" >&2; exit 1; }

mkdir -p "$work/crds"
for crd in $PKO_CRDS; do
  [ -f "$module_dir/$PKO_CRD_DIR/$crd" ] || { echo "operator-crds: $want has no $PKO_CRD_DIR/$crd" >&2; exit 1; }
  # The module cache is read-only; the copies need not be.
  install -m 0644 "$module_dir/$PKO_CRD_DIR/$crd" "$work/crds/$crd"
done
printf '%s\n' "$want" > "$work/crds/.version"

# Swap the whole folder, so an interrupted run never leaves CRDs of two versions behind a stamp.
mkdir -p "$(dirname "$dest")"
rm -rf "$dest.old"
[ -e "$dest" ] && mv "$dest" "$dest.old"
mv "$work/crds" "$dest"
rm -rf "$dest.old"
echo "operator-crds: $want CRDs in $dest" >&2
printf '%s\n' "$dest"
