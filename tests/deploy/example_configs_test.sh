#!/usr/bin/env bash
# The example configs of deploy/config/ pass `ferryd --check-config` once their placeholder keys
# (REPLACE-WITH-...-KEY) are replaced by keys, and are refused while a placeholder is left.
# Usage: example_configs_test.sh FERRYD SOURCE_DIR
set -euo pipefail
ferryd=$1
source=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Any 64 lower-case hex digits pass --check-config; this is docs/ferryd.md's example key.
key=3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29

fail() {
  echo "example configs test: $*" >&2
  exit 1
}

for role in station relay hub; do
  example=$source/deploy/config/$role.toml
  [ -f "$example" ] || fail "$example is missing"
  grep -q "^role = \"$role\"$" "$example" || fail "$example does not say role = \"$role\""
  grep -Eq '^data_dir = "/var/lib/ferry/[A-Za-z0-9._-]+"$' "$example" ||
    fail "$example: data_dir is not /var/lib/ferry/<name>"
  grep -q '^\[monitor\]$' "$example" || fail "$example has no [monitor] section"
  grep -q 'REPLACE-WITH-[A-Z-]*-KEY' "$example" || fail "$example has no placeholder key"

  # As shipped: refused (exit 3), naming a key.
  set +e
  "$ferryd" --check-config "$example" >"$tmp/out" 2>"$tmp/err"
  code=$?
  set -e
  [ "$code" -eq 3 ] || { cat "$tmp/out" "$tmp/err" >&2; fail "$role.toml with placeholders: exit $code, not 3"; }
  grep -q 'key' "$tmp/err" || { cat "$tmp/err" >&2; fail "$role.toml: the refusal does not name the key"; }

  # Keys filled in: ok (exit 0).
  sed -E "s/REPLACE-WITH-[A-Z-]+-KEY/$key/g" "$example" >"$tmp/$role.toml"
  ! grep -q '"REPLACE-WITH-' "$tmp/$role.toml" || fail "$role.toml: a placeholder is left"
  if ! "$ferryd" --check-config "$tmp/$role.toml" >"$tmp/out" 2>"$tmp/err"; then
    cat "$tmp/out" "$tmp/err" >&2
    fail "$role.toml with keys filled in does not pass --check-config"
  fi
  grep -q ': ok ' "$tmp/out" || fail "$role.toml: --check-config did not say ok"
  cat "$tmp/out"
done
echo "example configs test: ok"
