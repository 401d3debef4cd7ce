#!/usr/bin/env bash
# Checks deploy/systemd/ with systemd's own tools (Debian package systemd), without a running
# systemd: `systemd-analyze verify` on the template unit and on an instance, with ExecStart
# pointed at the built ferryd (verify refuses a command that does not exist), failing on any
# warning it prints; then systemd-sysusers and systemd-tmpfiles applied to a scratch root.
# Usage: systemd_unit_test.sh FERRYD SOURCE_DIR
set -euo pipefail
ferryd=$1
source=$2
systemd_dir=$source/deploy/systemd
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() {
  echo "systemd unit test: $*" >&2
  exit 1
}

command -v systemd-analyze >/dev/null || fail "systemd-analyze not found (Debian package systemd)"
[ -x "$ferryd" ] || fail "$ferryd is not an executable"

unit=$systemd_dir/ferryd@.service
grep -q '^ExecStart=/usr/bin/ferryd --config /etc/ferry/%i.toml$' "$unit" ||
  fail "ExecStart is not /usr/bin/ferryd --config /etc/ferry/%i.toml"
for setting in Type=notify WatchdogSec=30 Restart=on-failure User=ferry Group=ferry \
  NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes \
  ReadWritePaths=/var/lib/ferry; do
  grep -qx "$setting" "$unit" || fail "$unit lacks $setting"
done

# verify checks that the command exists: the packaged path is replaced by the built ferryd.
sed "s|^ExecStart=/usr/bin/ferryd |ExecStart=$ferryd |" "$unit" >"$tmp/ferryd@.service"
grep -q "^ExecStart=$ferryd " "$tmp/ferryd@.service" || fail "ExecStart was not rewritten"
# Without systemd as PID 1 verify still works offline; --man=no skips looking up man pages,
# and SYSTEMD_LOG_COLOR=0 keeps the output plain. Any output is a warning: fail on it.
for name in ferryd@.service ferryd@huaniao.service; do
  if ! (cd "$tmp" && SYSTEMD_LOG_COLOR=0 systemd-analyze verify --man=no "$name") \
    >"$tmp/verify.log" 2>&1; then
    cat "$tmp/verify.log" >&2
    fail "systemd-analyze verify $name failed"
  fi
  if [ -s "$tmp/verify.log" ]; then
    cat "$tmp/verify.log" >&2
    fail "systemd-analyze verify $name printed warnings"
  fi
done
# A broken copy must fail, or the checks above prove nothing.
sed "s|^ExecStart=$ferryd |ExecStart=$tmp/missing/ferryd |" "$tmp/ferryd@.service" \
  >"$tmp/broken@.service"
if (cd "$tmp" && systemd-analyze verify --man=no broken@x.service) >/dev/null 2>&1; then
  fail "systemd-analyze verify accepted a unit whose ExecStart does not exist"
fi

# sysusers and tmpfiles, applied to a scratch root: the user and group, then the directories.
root=$tmp/root
mkdir -p "$root/etc"
systemd-sysusers --root="$root" "$systemd_dir/ferry.sysusers.conf" >"$tmp/sysusers.log" 2>&1 ||
  { cat "$tmp/sysusers.log" >&2; fail "systemd-sysusers failed"; }
grep -q '^ferry:x:[0-9]*:[0-9]*:.*:/var/lib/ferry:/usr/sbin/nologin$' "$root/etc/passwd" ||
  fail "sysusers did not create the user ferry"
grep -q '^ferry:x:' "$root/etc/group" || fail "sysusers did not create the group ferry"
if [ "$(id -u)" -eq 0 ]; then  # tmpfiles changes owners: only root may
  systemd-tmpfiles --create --root="$root" "$systemd_dir/ferry.tmpfiles.conf" \
    >"$tmp/tmpfiles.log" 2>&1 || { cat "$tmp/tmpfiles.log" >&2; fail "systemd-tmpfiles failed"; }
  uid=$(awk -F: '$1 == "ferry" { print $3 }' "$root/etc/passwd")
  gid=$(awk -F: '$1 == "ferry" { print $3 }' "$root/etc/group")
  [ "$(stat -c '%a %u %g' "$root/var/lib/ferry")" = "750 $uid $gid" ] ||
    fail "/var/lib/ferry is $(stat -c '%a %u %g' "$root/var/lib/ferry"), not 750 ferry ferry"
  [ "$(stat -c '%a %u %g' "$root/etc/ferry")" = "750 0 $gid" ] ||
    fail "/etc/ferry is $(stat -c '%a %u %g' "$root/etc/ferry"), not 750 root ferry"
else
  echo "not root: systemd-tmpfiles --create skipped (it sets owners)"
fi
echo "systemd unit test: ok"
