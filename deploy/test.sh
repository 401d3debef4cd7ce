#!/usr/bin/env bash
# ferry's test command: installs what is missing, builds, runs every test, then builds the
# AddressSanitizer + UndefinedBehaviorSanitizer configuration and runs every test again.
# Exits non-zero on any failure. Works as root on a fresh Debian 12 machine.
#
#   ./deploy/test.sh            everything
#   FERRY_SKIP_SANITIZE=1 ...   skip the sanitizer pass (quick local runs only; CI runs both)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
jobs=$(nproc 2>/dev/null || echo 2)

# Debian packages the build and the tests need.
packages=(
  build-essential cmake pkg-config git
  libzmq3-dev cppzmq-dev libsqlite3-dev libsodium-dev libmsgpack-cxx-dev libcli11-dev
  catch2 libexpected-dev libtomlplusplus-dev libspdlog-dev nlohmann-json3-dev
  clang-format sqlite3 python3 python3-zmq python3-msgpack
  iproute2 nftables iptables libnetfilter-queue-dev
  libcpp-httplib-dev prometheus chromium fonts-liberation tmux
  libsystemd-dev systemd dpkg-dev file debootstrap systemd-container libtcmalloc-minimal4
)
# Node.js runs the dashboard's browser test (playwright-core drives Debian's Chromium).
command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)

check_format() {
  echo "== clang-format check"
  local files
  files=$(git ls-files '*.cpp' '*.h' 2>/dev/null || find protocol storage tests bench -name '*.cpp' -o -name '*.h')
  # shellcheck disable=SC2086
  clang-format --dry-run -Werror $files
}

build_and_test() {  # build_and_test DIR [ctest -E REGEX] [cmake args...]
  local dir=$1; shift
  local exclude=()
  if [ "${1:-}" = "-E" ]; then exclude=(-E "$2"); shift 2; fi
  echo "== configure $dir $*"
  cmake -S "$root" -B "$dir" -DFERRY_WERROR=ON "$@" >/dev/null
  echo "== build $dir"
  cmake --build "$dir" -j"$jobs"
  echo "== test $dir"
  ctest --test-dir "$dir" --output-on-failure -j"$jobs" --timeout 600 ${exclude[@]+"${exclude[@]}"}
}

# playwright-core, pinned by tests/browser/package-lock.json (no browser download: it drives
# /usr/bin/chromium).
install_browser_test() {
  local dir=tests/browser
  # npm ci leaves node_modules/.package-lock.json behind: newer than the lock file, nothing to do.
  if [ "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]; then return 0; fi
  echo "== npm ci in $dir"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
}

# shellcheck source=deploy/install.sh
. "$root/deploy/install.sh"
install_missing "${packages[@]}"
install_browser_test
check_format
build_and_test build/release -DCMAKE_BUILD_TYPE=RelWithDebInfo
# The README's first command, on the build just tested: fails the run if the replicas do not
# converge or the hub's decision does not reach the island.
echo "== demo (deploy/demo.sh --once)"
timeout 600 "$root/deploy/demo.sh" --once --build-dir build/release
if [ "$(id -u)" -eq 0 ]; then
  # As root (CI): the same story with every node in its own network namespace and a real cut.
  echo "== demo in network namespaces (deploy/demo.sh --once --netns)"
  timeout 600 "$root/deploy/demo.sh" --once --netns --build-dir build/release
else
  echo "== SKIP demo --netns: needs root"
fi
if [ "${FERRY_SKIP_SANITIZE:-0}" != 1 ]; then
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  # The network lab's test (5,000 ops through an impaired link, minutes of wall time) measures
  # the network, not memory, and the container boot runs the packaged ferryd under systemd's
  # sandbox: both run in the normal pass only.
  build_and_test build/sanitize -E "the lab:|under systemd in a container" -DCMAKE_BUILD_TYPE=Debug -DFERRY_SANITIZE=address,undefined \
    -DFERRY_BUILD_BENCH=OFF
fi
echo "== all tests passed"
