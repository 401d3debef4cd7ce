#!/usr/bin/env bash
# ferry's main job on one command: installs what is missing, builds (Release), then runs a city
# hub, a township relay and three island stations on this machine (deploy/demo/demo.py): files
# transactions, cuts an island off and heals it, waits for the replicas to converge, and brings
# the hub's decision back to the island. Prints the monitor URL and a summary, then keeps the
# nodes running until Ctrl-C. Works as root on a fresh Debian 12 machine.
#
#   ./deploy/demo.sh                  everything; the nodes keep running until Ctrl-C
#   ./deploy/demo.sh --once           exit after the summary: 0 when everything converged and
#                                     the decision reached the island, 1 otherwise
#   ./deploy/demo.sh --build-dir DIR  use ferryd and ferryctl already built in DIR (no install,
#                                     no build): how deploy/test.sh runs it
#   ./deploy/demo.sh --keep           keep the temporary directory (logs, data) afterwards
#   ./deploy/demo.sh --netns          as root: every node in its own network namespace (the
#                                     network lab, deploy/lab/), the island's link a slow, lossy
#                                     veth that is cut for real (every packet dropped)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
jobs=$(nproc 2>/dev/null || echo 2)

build_dir=""
netns=0
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build_dir=${2:?--build-dir needs a directory}; shift 2 ;;
    --once|--keep) args+=("$1"); shift ;;
    --netns) netns=1; args+=("$1"); shift ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

# Debian packages the daemon, ferryctl and the demo's station software need.
packages=(
  build-essential cmake pkg-config
  libzmq3-dev cppzmq-dev libsqlite3-dev libsodium-dev libmsgpack-cxx-dev libcli11-dev
  libexpected-dev libtomlplusplus-dev libspdlog-dev nlohmann-json3-dev libcpp-httplib-dev
  libsystemd-dev python3 python3-zmq python3-msgpack libtcmalloc-minimal4
)
targets=(ferryd ferryctl)
if [ "$netns" -eq 1 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "demo.sh: --netns needs root (network namespaces, nft, tc); run it without --netns" >&2
    exit 2
  fi
  # The network lab: namespaces and veths, nft and iptables rules, tbf, the delay helper.
  packages+=(iproute2 nftables iptables libnetfilter-queue-dev)
  targets+=(nfq_delay)
fi

if [ -z "$build_dir" ]; then
  # shellcheck source=deploy/install.sh
  . "$root/deploy/install.sh"
  install_missing "${packages[@]}"
  build_dir=$root/build/demo
  echo "== build (Release) in $build_dir"
  # Warnings are errors in ./deploy/test.sh's builds, which gate every change; here a warning
  # that a newer or differently tuned compiler finds must not stop a newcomer's first run.
  cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DFERRY_BUILD_TESTS=OFF \
    -DFERRY_BUILD_BENCH=OFF -DFERRY_WERROR=OFF >/dev/null
  cmake --build "$build_dir" -j"$jobs" --target "${targets[@]}"
fi

# The Debian python3 has python3-zmq and python3-msgpack.
exec /usr/bin/python3 "$root/deploy/demo/demo.py" --build-dir "$build_dir" ${args[@]+"${args[@]}"}
