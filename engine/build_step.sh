# Sourced by engine/build.sh and engine/build_kube.sh: one way to build a pinned binary once.
# Needs $bin (the target folder) and $label (the prefix of progress lines).

# build NAME VERSION COMMAND...: runs COMMAND unless BIN/NAME was already built at VERSION.
build() {
  local name=$1 version=$2; shift 2
  local stamp="$bin/.$name.version"
  if [ -x "$bin/$name" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$version" ]; then return; fi
  echo "$label: building $name $version" >&2
  local start=$SECONDS
  "$@"
  echo "$version" > "$stamp"
  echo "$label: $name $version built in $((SECONDS - start)) s" >&2
}
