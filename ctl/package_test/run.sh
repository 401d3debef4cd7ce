#!/usr/bin/env bash
# Installs ferry's development files (component ferry_dev) from a build tree into a temporary
# prefix, then configures, builds and runs a tiny consumer that does find_package(ferry) and
# links ferry::client. Usage: run.sh BUILD_DIR CONSUMER_SOURCE_DIR CXX_COMPILER [SANITIZERS]
# SANITIZERS (e.g. address,undefined) is the build's FERRY_SANITIZE: libraries built with
# sanitizers need the consumer linked with their runtimes.
set -euo pipefail
build=$1
source=$2
cxx=$3
sanitize=${4:-}
sanitize_flags=""
[ -n "$sanitize" ] && sanitize_flags="-fsanitize=$sanitize"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

step() {  # step NAME COMMAND...: runs quietly, shows the log on failure
  local name=$1
  shift
  if ! "$@" >"$tmp/$name.log" 2>&1; then
    echo "package test: $name failed:"
    cat "$tmp/$name.log"
    exit 1
  fi
}

step install cmake --install "$build" --component ferry_dev --prefix "$tmp/prefix"
test -f "$tmp/prefix/include/ferry/ctl/client.h"
test -f "$tmp/prefix/include/ferry/protocol/error.h"
step configure cmake -S "$source" -B "$tmp/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
  -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_CXX_FLAGS="$sanitize_flags" \
  -DCMAKE_EXE_LINKER_FLAGS="$sanitize_flags"
step build cmake --build "$tmp/build"
"$tmp/build/consumer"
