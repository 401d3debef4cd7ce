#!/usr/bin/env bash
# Builds the Debian package from a build tree (`cpack -G DEB`, cmake/packaging.cmake) in a
# scratch directory, unpacks it into a scratch root with dpkg-deb -x, and checks its control
# fields, its files, and that the packaged client library builds a find_package(ferry) consumer.
# Usage: deb_package_test.sh BUILD_DIR SOURCE_DIR CXX_COMPILER VERSION [SANITIZERS]
set -euo pipefail
build=$1
source=$2
cxx=$3
version=$4
sanitize=${5:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() {
  echo "deb package test: $*" >&2
  exit 1
}

step() {  # step NAME COMMAND...: runs quietly, shows the log on failure
  local name=$1
  shift
  if ! "$@" >"$tmp/$name.log" 2>&1; then
    cat "$tmp/$name.log" >&2
    fail "$name failed"
  fi
}

for tool in cpack dpkg-deb dpkg-shlibdeps; do
  command -v "$tool" >/dev/null || fail "$tool not found (cmake, dpkg, dpkg-dev)"
done

step cpack cpack -G DEB --config "$build/CPackConfig.cmake" -B "$tmp/out"
debs=("$tmp"/out/*.deb)
[ ${#debs[@]} -eq 1 ] && [ -f "${debs[0]}" ] || fail "expected one .deb, got: ${debs[*]}"
deb=${debs[0]}
echo "built $(basename "$deb") ($(stat -c %s "$deb") bytes)"

dpkg-deb -I "$deb" >"$tmp/info"
field() { dpkg-deb -f "$deb" "$1"; }
[ "$(field Package)" = ferry ] || { cat "$tmp/info"; fail "Package is not ferry"; }
[ "$(field Version)" = "$version" ] || { cat "$tmp/info"; fail "Version is not $version"; }
grep -q '^ Package: ferry$' "$tmp/info" || fail "dpkg-deb -I does not show Package: ferry"
grep -q "^ Version: $version$" "$tmp/info" || fail "dpkg-deb -I does not show Version: $version"
[ -n "$(field Maintainer)" ] || fail "no Maintainer"
depends=$(field Depends)
# dpkg-shlibdeps found the libraries ferryd links.
for lib in libzmq5 libsodium23 libsqlite3-0 libsystemd0; do
  [[ "$depends" == *"$lib"* ]] || fail "Depends lacks $lib: $depends"
done
for script in postinst prerm postrm; do
  grep -q " $script " "$tmp/info" || fail "no $script maintainer script"
done

root=$tmp/root
dpkg-deb -x "$deb" "$root"
for f in usr/bin/ferryd usr/bin/ferryctl; do
  [ -x "$root/$f" ] || fail "$f is missing or not executable"
done
for f in usr/lib/systemd/system/ferryd@.service usr/lib/sysusers.d/ferry.conf \
  usr/lib/tmpfiles.d/ferry.conf usr/include/ferry/ctl/client.h \
  usr/include/ferry/protocol/error.h usr/share/doc/ferry/ferryd.md \
  usr/share/doc/ferry/examples/station.toml usr/share/doc/ferry/examples/relay.toml \
  usr/share/doc/ferry/examples/hub.toml; do
  [ -f "$root/$f" ] || fail "$f is missing"
done
client=$(find "$root/usr/lib" -name 'libferry_client.*' | head -n 1)
[ -n "$client" ] || fail "the client library libferry_client is missing"
config=$(find "$root/usr/lib" -path '*/cmake/ferry/ferryConfig.cmake' | head -n 1)
[ -n "$config" ] || fail "the CMake package ferryConfig.cmake is missing"
[ -z "$(find "$root" -path "$root/etc/*" -o -path "$root/var/*")" ] ||
  fail "the package puts files in /etc or /var"
cmp -s "$root/usr/lib/systemd/system/ferryd@.service" "$source/deploy/systemd/ferryd@.service" ||
  fail "the packaged unit differs from deploy/systemd/ferryd@.service"
"$root/usr/bin/ferryd" --help >/dev/null || fail "the packaged ferryd does not run"

# The packaged client library links into station software: the consumer of ctl/package_test.
flags=""
[ -n "$sanitize" ] && flags="-fsanitize=$sanitize"
step configure cmake -S "$source/ctl/package_test" -B "$tmp/consumer" \
  -DCMAKE_PREFIX_PATH="$root/usr" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_CXX_FLAGS="$flags" \
  -DCMAKE_EXE_LINKER_FLAGS="$flags"
step build cmake --build "$tmp/consumer"
step run "$tmp/consumer/consumer"
echo "deb package test: ok"
