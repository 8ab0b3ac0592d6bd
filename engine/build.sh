#!/usr/bin/env bash
# Builds the Pulumi engine this project runs into BIN_DIR (make setup: .venv/bin), from Go modules:
#   pulumi                        the CLI (github.com/pulumi/pulumi/pkg/v3/cmd/pulumi), engine/pulumi
#   pulumi-resource-kubernetes    the provider module at its v4.25.0 commit, engine/kubernetes
#   pulumi-resource-random        terraform-provider-random bridged with pulumi-terraform-bridge, engine/random
#   pulumi-resource-pulumi-python and pulumi-language-python-exec, copied from the Pulumi SDK module
# Not built, because the Go module proxy serves no source for them: pulumi-language-python (programs run
# through the Automation API's inline host instead), pulumi-resource-postgresql and pulumi-resource-aws.
#
# The providers are also registered, by hard link, in BIN_DIR/../pulumi-home/plugins at the versions the
# Python SDKs ask for, so the engine loads them as installed plugins, not as ambient ones from PATH.
#
# A `pulumi` already on PATH (a normal install) is used as it is and nothing is built. Go's module and
# build caches stay where Go keeps them (the user cache), so a second run only checks version stamps.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$(mkdir -p "${1:?usage: engine/build.sh BIN_DIR}" && cd "$1" && pwd)
# shellcheck source=engine/versions.env
. "$here/versions.env"
export CGO_ENABLED=0 GOFLAGS=-mod=readonly GOTOOLCHAIN=local

existing=$(PATH=$(printf '%s' "$PATH" | tr ':' '\n' | grep -vxF "$bin" | paste -sd: -) command -v pulumi || true)
if [ -n "$existing" ]; then
  echo "engine: using the Pulumi CLI on PATH ($existing); nothing built. Install its plugins as usual." >&2
  exit 0
fi
command -v go >/dev/null || { echo "engine: Go is needed to build the Pulumi engine (https://go.dev/dl)" >&2; exit 1; }

label=engine
# shellcheck source=engine/build_step.sh
. "$here/build_step.sh"

build_cli() {
  cd "$here/pulumi"
  go build -o "$bin/pulumi" \
    -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_CLI_VERSION" \
    github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
}

build_kubernetes() {
  cd "$here/kubernetes"
  go mod download  # `go list -m` below names a module's folder only once it is in the module cache
  local src
  src=$(go list -m -f '{{.Dir}}' github.com/pulumi/pulumi-kubernetes/provider/v4)/cmd/pulumi-resource-kubernetes
  VERSION=$KUBERNETES_VERSION SRC=$src DST=cmd/pulumi-resource-kubernetes go run ./gen
  go build -o "$bin/pulumi-resource-kubernetes" \
    -ldflags "-s -w -X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=v$KUBERNETES_VERSION" \
    ./cmd/pulumi-resource-kubernetes
}

build_random() {
  cd "$here/random"
  go mod download  # tfgen reads the upstream provider's docs from the module cache
  # tfgen embeds the provider package, which embeds the metadata tfgen writes: start from an empty one.
  [ -s provider/bridge-metadata.json ] || echo '{}' > provider/bridge-metadata.json
  local gen
  gen=$(mktemp -d)
  go build -o "$gen/pulumi-tfgen-random" ./cmd/pulumi-tfgen-random
  "$gen/pulumi-tfgen-random" schema --out "$gen" --skip-examples >"$gen/tfgen.log" 2>&1 \
    || { cat "$gen/tfgen.log" >&2; exit 1; }
  cp "$gen/bridge-metadata.json" provider/bridge-metadata.json
  cp "$gen/bridge-metadata.json" cmd/pulumi-resource-random/bridge-metadata.json
  python3 -c 'import json, sys; s = json.load(open(sys.argv[1])); s["version"] = sys.argv[2]; json.dump(s, open(sys.argv[3], "w"), separators=(",", ":"))' \
    "$gen/schema.json" "$RANDOM_VERSION" cmd/pulumi-resource-random/schema.json
  rm -rf "$gen"
  go build -o "$bin/pulumi-resource-random" \
    -ldflags "-s -w -X tenantonboarding.local/engine/random/provider.Version=$RANDOM_VERSION" \
    ./cmd/pulumi-resource-random
}

copy_sdk_scripts() {
  local sdk
  sdk=$(cd "$here/pulumi" && GOFLAGS=-mod=mod go mod download -json "github.com/pulumi/pulumi/sdk/v3@v$PULUMI_SDK_VERSION" \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
  install -m 0755 "$sdk/python/dist/pulumi-resource-pulumi-python" "$bin/pulumi-resource-pulumi-python"
  install -m 0755 "$sdk/python/cmd/pulumi-language-python-exec" "$bin/pulumi-language-python-exec"
}

build pulumi "$PULUMI_CLI_VERSION" build_cli
build pulumi-resource-kubernetes "$KUBERNETES_VERSION" build_kubernetes
build pulumi-resource-random "$RANDOM_VERSION" build_random
build pulumi-resource-pulumi-python "$PULUMI_SDK_VERSION" copy_sdk_scripts

# register NAME VERSION: the plugin as `pulumi plugin install` would lay it out, without copying 170 MB.
register() {
  local dir
  dir="$bin/../pulumi-home/plugins/resource-$1-v$2"
  mkdir -p "$dir"
  ln -f "$bin/pulumi-resource-$1" "$dir/pulumi-resource-$1"
}
register kubernetes "$KUBERNETES_VERSION"
register random "$RANDOM_VERSION"
