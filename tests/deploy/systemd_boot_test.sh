#!/usr/bin/env bash
# Boots systemd for real with ferry's .deb installed, as docs/operations.md installs it, and
# checks the unit ferryd@.service does what it says: a fresh Debian 12 root (debootstrap
# minbase + systemd), the package installed with apt (sysusers, tmpfiles), a node made with
# `ferryctl init` as user ferry and its config moved to /etc/ferry, the unit enabled, then the
# root booted in a container (systemd-nspawn, systemd as PID 1). Checked inside:
#   - the unit is active (Type=notify: systemd saw READY=1), runs as ferry, and its status line
#     is ferryd's; / is read-only for it, /var/lib/ferry writable, no capabilities,
#     NoNewPrivileges and a seccomp filter;
#   - a member of group ferry files an op over the IPC socket; a user outside it cannot;
#   - SIGKILL: systemd restarts it (Restart=on-failure) and the op is still there;
#   - it outlives WatchdogSec (30 s) with the same pid: the watchdog is fed;
#   - systemctl stop: STOPPING, exit 0, "stopped cleanly".
# Root only (debootstrap, chroot, nspawn); needs the Debian mirror the machine's apt uses.
# Usage: systemd_boot_test.sh BUILD_DIR
set -euo pipefail
build=${1:?usage: systemd_boot_test.sh BUILD_DIR}

fail() {
  echo "systemd boot test: $*" >&2
  exit 1
}
say() { echo "systemd boot test: $*"; }

[ "$(id -u)" -eq 0 ] || fail "needs root (debootstrap, chroot, systemd-nspawn)"
for tool in debootstrap systemd-nspawn nsenter cpack; do
  command -v "$tool" >/dev/null || fail "$tool not found (Debian: debootstrap, systemd-container)"
done

# The Debian mirror this machine's apt uses (deb822 or one-line sources).
mirror=$(sed -n 's/^URIs: *\([^ ]*debian\)\/*$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null |
  head -1 || true)
if [ -z "$mirror" ]; then
  mirror=$(sed -n 's/^deb  *\(http[^ ]*debian\)\/* .*/\1/p' /etc/apt/sources.list 2>/dev/null |
    head -1 || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}

tmp=$(mktemp -d /var/tmp/ferry-boot.XXXXXX)
root=$tmp/root
nspawn_pid=""
cleanup() {
  set +e  # tear down as much as possible, whatever fails
  if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
    kill -TERM "$nspawn_pid" 2>/dev/null || true  # nspawn powers the container off
    for _ in $(seq 1 60); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$nspawn_pid" 2>/dev/null || true
  fi
  findmnt -R -n -o TARGET "$root" 2>/dev/null | sort -r | while read -r m; do umount -l "$m"; done
  rm -rf "$tmp"
}
trap cleanup EXIT

step() {  # step NAME COMMAND...: runs quietly, shows the log on failure
  local name=$1
  shift
  if ! "$@" >"$tmp/$name.log" 2>&1; then
    tail -40 "$tmp/$name.log" >&2
    fail "$name failed"
  fi
}

say "building the .deb"
step cpack cpack -G DEB --config "$build/CPackConfig.cmake" -B "$tmp/deb"
deb=$(ls "$tmp"/deb/*.deb)

say "debootstrap bookworm from $mirror (minbase + systemd)"
step debootstrap debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus \
  bookworm "$root" "$mirror"

cp "$deb" "$root/root/ferry.deb"
in_root() { chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin \
  DEBIAN_FRONTEND=noninteractive "$@"; }
say "installing the package and making a station (docs/operations.md)"
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount --bind /proc "$root/proc"
step apt-update in_root apt-get update
step apt in_root apt-get install -y --no-install-recommends /root/ferry.deb
umount "$root/proc"
step init in_root runuser -u ferry -- ferryctl init --dir /var/lib/ferry/huaniao --name huaniao
in_root mv /var/lib/ferry/huaniao/ferry.toml /etc/ferry/huaniao.toml
step enable in_root systemctl enable ferryd@huaniao
in_root useradd -m -G ferry clerk
in_root useradd -m outsider

say "booting the root under systemd-nspawn"
systemd-nspawn -D "$root" --boot --register=no --keep-unit --console=read-only \
  >"$tmp/boot.log" 2>&1 &
nspawn_pid=$!
# The container's init is PID 1 of a new PID namespace (NSpid ends in 1). nspawn's first child
# is a helper in our namespace that exits once it has started init: entering its namespaces
# fails ("stat of /proc/PID/ns/user failed"), so wait for init itself.
container_init() {
  local child
  for child in $(pgrep -P "$nspawn_pid" || true); do
    if awk '/^NSpid:/ { init = NF > 2 && $NF == 1 } END { exit !init }' "/proc/$child/status" \
      2>/dev/null; then
      echo "$child"
      return
    fi
  done
}
init_pid=""
for _ in $(seq 1 100); do
  init_pid=$(container_init)
  [ -n "$init_pid" ] && break
  sleep 0.2
done
[ -n "$init_pid" ] || { cat "$tmp/boot.log" >&2; fail "the container did not start"; }
inside() { nsenter -t "$init_pid" -a "$@"; }
prop() { inside systemctl show ferryd@huaniao -p "$1" --value; }

state=""
for _ in $(seq 1 300); do  # 60 s
  state=$(inside systemctl is-active ferryd@huaniao 2>/dev/null || true)
  [ "$state" = active ] || [ "$state" = failed ] && break
  sleep 0.2
done
if [ "$state" != active ]; then
  inside journalctl -u ferryd@huaniao --no-pager >&2 || cat "$tmp/boot.log" >&2
  fail "ferryd@huaniao is '$state', not active"
fi
say "active: $(prop StatusText)"

pid=$(prop MainPID)
[ "$(inside stat -c %U "/proc/$pid")" = ferry ] || fail "ferryd does not run as ferry"
[[ $(prop StatusText) == serving*ferryd.sock ]] || fail "status line: $(prop StatusText)"
mounts=$(inside cat "/proc/$pid/mountinfo")
echo "$mounts" | awk '$5 == "/" {print $6}' | grep -q '^ro' || fail "/ is writable for ferryd"
echo "$mounts" | awk '$5 == "/var/lib/ferry" {print $6}' | grep -q '^rw' ||
  fail "/var/lib/ferry is not writable for ferryd"
status=$(inside cat "/proc/$pid/status")
echo "$status" | grep -q '^NoNewPrivs:[[:space:]]*1' || fail "NoNewPrivs is not set"
echo "$status" | grep -q '^CapEff:[[:space:]]*0000000000000000' || fail "ferryd has capabilities"
echo "$status" | grep -q '^Seccomp:[[:space:]]*2' || fail "no seccomp filter"

ctl() { inside runuser -u "$1" -- ferryctl -c /etc/ferry/huaniao.toml "${@:2}"; }
ctl clerk submit --kind application.file --key application/HN-1 --set status=filed \
  >"$tmp/submit.log" 2>&1 || { cat "$tmp/submit.log" >&2; fail "a member of group ferry cannot submit"; }
if ctl outsider status >"$tmp/outsider.log" 2>&1; then
  fail "a user outside group ferry reached the node"
fi
say "group ferry submits, others are refused: $(head -1 "$tmp/outsider.log")"

inside /bin/sh -c "kill -KILL $pid"  # minbase has no kill(1): the shell's
restarted=""
for _ in $(seq 1 150); do  # RestartSec=5s, so up to 30 s
  now=$(prop MainPID)
  if [ "$now" != 0 ] && [ "$now" != "$pid" ] &&
    [ "$(inside systemctl is-active ferryd@huaniao || true)" = active ]; then
    restarted=$now
    break
  fi
  sleep 0.2
done
[ -n "$restarted" ] || fail "ferryd was not restarted after SIGKILL"
[ "$(prop NRestarts)" = 1 ] || fail "NRestarts is $(prop NRestarts), not 1"
ops=$(ctl clerk status --json | sed -n 's/.*"ops": *\([0-9]*\).*/\1/p' | head -1)
[ "${ops:-0}" -ge 1 ] || fail "the op filed before the SIGKILL is gone (ops: ${ops:-?})"
say "restarted after SIGKILL (pid $pid -> $restarted), the op is still there"

watchdog=$(prop WatchdogUSec)
[ "$watchdog" = 30s ] || fail "WatchdogUSec is $watchdog, not 30s"
sleep 35
[ "$(prop MainPID)" = "$restarted" ] && [ "$(prop NRestarts)" = 1 ] ||
  fail "ferryd did not outlive its 30 s watchdog (pid $(prop MainPID), restarts $(prop NRestarts))"
say "alive after 35 s with WatchdogSec=30: the watchdog is fed"

inside systemctl stop ferryd@huaniao
[ "$(prop Result)" = success ] && [ "$(prop ExecMainStatus)" = 0 ] ||
  fail "stop: result $(prop Result), exit status $(prop ExecMainStatus)"
inside journalctl -u ferryd@huaniao --no-pager | grep -q "stopped cleanly" ||
  fail "no 'stopped cleanly' in the journal"
say "stopped: exit 0, stopped cleanly"
say "passed"
