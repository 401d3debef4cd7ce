#!/usr/bin/env bash
# ferry's network lab: a hub, a relay and N islands, each in its own network namespace, joined
# by veth links, with commands to impair, cut and heal a link. See deploy/lab/README.md.
#
#   lab.sh [--prefix P] [--islands N] [--helper PATH] COMMAND [ARGS...]
#
#   up                       build the lab (missing parts only)
#   impair LINK [--delay MS] [--jitter MS] [--loss PCT] [--rate RATE] [--dir both|up|down]
#               [--limit PACKETS]
#                            replace LINK's impairment (delay and jitter through the nfq_delay
#                            helper, loss through nft numgen, rate through tbf)
#   clear LINK               remove LINK's impairment
#   cut LINK | heal LINK     drop everything on LINK both ways (a silent partition) | undo it
#   status                   namespaces, addresses, links, impairments, helper counters
#   addr NODE                NODE's address (hub 10.213.0.1, islandK 10.213.K.2)
#   exec NODE CMD...         run CMD inside NODE's namespace
#   down                     tear everything down (also a half-built lab)
#
# NODE is hub, relay or islandK (or a namespace name, e.g. ferry-island1); LINK is hub-relay or
# relay-islandK (either order). Every command is idempotent. Root only. Only addresses inside the
# lab's own namespaces (10.213.0.0/16) are used; nothing outside them is touched.
#
# Environment: FERRY_LAB_PREFIX (namespace prefix, default "ferry"), FERRY_LAB_ISLANDS (default 2),
# FERRY_LAB_HELPER (the nfq_delay binary) or FERRY_BUILD_DIR (a build tree holding
# deploy/lab/nfq_delay), FERRY_LAB_STATE (default /run/ferry-lab/PREFIX: helper pids, logs and
# counters), FERRY_LAB_SEED (the helpers' random seed; default: fresh, printed in their logs).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
prefix=${FERRY_LAB_PREFIX:-ferry}
islands=${FERRY_LAB_ISLANDS:-2}
helper=${FERRY_LAB_HELPER:-}

die() {
  echo "lab.sh: $*" >&2
  exit 1
}
say() { echo "lab: $*"; }

usage() {  # usage [CODE]: the header above; on stderr unless asked for (CODE 0)
  local code=${1:-2}
  if [ "$code" -eq 0 ]; then
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
  else
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
  fi
  exit "$code"
}

# --- names and addresses -----------------------------------------------------------------

ns_of() { echo "$prefix-$1"; }

# The node a NODE argument names: hub, relay or islandK (a namespace name is accepted too).
node_arg() {
  local n=${1#"$prefix"-}
  [[ $n =~ ^(hub|relay|island[1-9][0-9]*)$ ]] || die "unknown node '$1' (hub, relay, islandK)"
  echo "$n"
}

island_index() { echo "${1#island}"; }

addr_of() {  # the node's address on its link towards the hub
  case $1 in
    hub) echo 10.213.0.1 ;;
    relay) echo 10.213.0.2 ;;
    island*) echo "10.213.$(island_index "$1").2" ;;
  esac
}

# Sets the variables of a link: id, index (the NFQUEUE number is 100 + index), and its two ends:
# the upper end (towards the hub) and the lower end, each a namespace, an interface, an address.
parse_link() {
  local a b
  a=${1%%-*}
  b=${1#*-}
  [ "$a" != "$1" ] || die "unknown link '$1' (hub-relay, relay-islandK)"
  if [ "$b" = relay ] && [ "$a" != hub ]; then local t=$a; a=$b; b=$t; fi  # islandK-relay
  if [ "$a" = relay ] && [ "$b" = hub ]; then a=hub; b=relay; fi
  if [ "$a" = hub ] && [ "$b" = relay ]; then
    link_id=hub-relay link_index=0
  elif [ "$a" = relay ] && [[ $b =~ ^island([1-9][0-9]*)$ ]]; then
    link_id=relay-$b link_index=${BASH_REMATCH[1]}
  else
    die "unknown link '$1' (hub-relay, relay-islandK)"
  fi
  up_ns=$(ns_of "$a") up_if=$b lo_ns=$(ns_of "$b") lo_if=$a
  link_tag=${link_id//-/_}
  queue_num=$((100 + link_index))
  { ns_exists "$up_ns" && ns_exists "$lo_ns"; } || die "link $link_id does not exist (run: lab.sh up)"
}

# --- small helpers -----------------------------------------------------------------------

ns_exists() { [ -e "/run/netns/$1" ]; }
in_ns() {
  local ns=$1
  shift
  ip netns exec "$ns" "$@"
}
lab_namespaces() {  # every namespace of this lab that exists, whatever the island count
  ip netns list 2>/dev/null | awk '{print $1}' |
    grep -E "^$prefix-(hub|relay|island[1-9][0-9]*)\$" || true
}
need_root() { [ "$(id -u)" -eq 0 ] || die "must run as root"; }
need_tool() { command -v "$1" >/dev/null 2>&1 || die "needs $1 (Debian package: $2)"; }

state_dir() { echo "${FERRY_LAB_STATE:-/run/ferry-lab/$prefix}"; }

find_helper() {
  local c
  for c in "$helper" \
    "${FERRY_BUILD_DIR:+$FERRY_BUILD_DIR/deploy/lab/nfq_delay}" \
    "$root/build/deploy/lab/nfq_delay" "$root/build/release/deploy/lab/nfq_delay" \
    "$(command -v nfq_delay 2>/dev/null || true)"; do
    if [ -n "$c" ] && [ -x "$c" ]; then
      echo "$c"
      return 0
    fi
  done
  die "the delay helper nfq_delay was not found: build it (libnetfilter-queue-dev, then cmake)" \
    "and pass --helper PATH, FERRY_LAB_HELPER=PATH or FERRY_BUILD_DIR=BUILD"
}

# --- up ----------------------------------------------------------------------------------

make_ns() {
  local ns=$1
  if ! ns_exists "$ns"; then
    ip netns add "$ns"
    say "namespace $ns"
  fi
  in_ns "$ns" ip link set dev lo up
}

# make_veth NS_A IF_A ADDR_A NS_B IF_B ADDR_B: one veth pair, addresses /24, both ends up.
# gso_max_segs 1 keeps every packet MTU-sized, so that loss, delay and rate act per packet as
# on a real link (a 64 KB GSO packet lost at once would be 44 losses).
make_veth() {
  local na=$1 ia=$2 aa=$3 nb=$4 ib=$5 ab=$6
  local has_a=0 has_b=0
  in_ns "$na" ip link show dev "$ia" >/dev/null 2>&1 && has_a=1
  in_ns "$nb" ip link show dev "$ib" >/dev/null 2>&1 && has_b=1
  if [ $has_a = 1 ] && [ $has_b = 0 ]; then in_ns "$na" ip link del dev "$ia"; has_a=0; fi
  if [ $has_b = 1 ] && [ $has_a = 0 ]; then in_ns "$nb" ip link del dev "$ib"; has_b=0; fi
  if [ $has_a = 0 ]; then
    ip link add dev "$ia" netns "$na" gso_max_segs 1 type veth \
      peer name "$ib" netns "$nb" gso_max_segs 1
    say "link ${na#"$prefix"-}-${nb#"$prefix"-}: $aa ($ia in $na) <-> $ab ($ib in $nb)"
  fi
  in_ns "$na" ip addr replace "$aa/24" dev "$ia"
  in_ns "$nb" ip addr replace "$ab/24" dev "$ib"
  in_ns "$na" ip link set dev "$ia" up
  in_ns "$nb" ip link set dev "$ib" up
}

cmd_up() {
  need_root
  need_tool ip iproute2
  { [[ $islands =~ ^[1-9][0-9]*$ ]] && [ "$islands" -le 250 ]; } || die "--islands: 1 to 250"
  local hub relay k isl
  hub=$(ns_of hub) relay=$(ns_of relay)
  make_ns "$hub"
  make_ns "$relay"
  make_veth "$hub" relay 10.213.0.1 "$relay" hub 10.213.0.2
  in_ns "$relay" sysctl -q -w net.ipv4.ip_forward=1
  in_ns "$hub" ip route replace 10.213.0.0/16 via 10.213.0.2 dev relay
  for ((k = 1; k <= islands; k++)); do
    isl=$(ns_of "island$k")
    make_ns "$isl"
    make_veth "$relay" "island$k" "10.213.$k.1" "$isl" relay "10.213.$k.2"
    in_ns "$isl" ip route replace default via "10.213.$k.1" dev relay
  done
  mkdir -p "$(state_dir)"
  say "up: hub 10.213.0.1, relay 10.213.0.2, island1..island$islands 10.213.K.2"
}

# --- impairments -------------------------------------------------------------------------

helper_base() { echo "$(state_dir)/$link_id.$1"; }  # $1: up or down (the direction delayed)

# Whether the pid file names a helper that still runs: "PID COMM", with COMM checked against
# /proc so that a recycled pid is never signalled.
helper_pid() {  # helper_pid PIDFILE: prints the pid, or fails
  local pid comm
  [ -f "$1" ] && read -r pid comm <"$1" || return 1
  [[ $pid =~ ^[0-9]+$ ]] && [ -n "$comm" ] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ] && alive "$pid" || return 1
  echo "$pid"
}

alive() {  # a process that runs (a zombie does not)
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

# Stops the helper of one direction of the current link, if it runs: SIGTERM (it releases what
# it holds), then SIGKILL after 5 s.
stop_helper() {
  local pidfile pid i
  pidfile="$(helper_base "$1").pid"
  [ -f "$pidfile" ] || return 0
  if pid=$(helper_pid "$pidfile"); then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      alive "$pid" || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile" "$(helper_base "$1").stats"
}

# start_helper DIR NS DELAY JITTER LIMIT: runs nfq_delay in NS on this link's queue and waits
# (up to 5 s) until it has bound the queue.
start_helper() {
  local dir=$1 ns=$2 delay=$3 jitter=$4 limit=$5 base bin pid i
  bin=$(find_helper)
  base=$(helper_base "$dir")
  mkdir -p "$(state_dir)"
  local args=(--queue "$queue_num" --delay "$delay" --jitter "$jitter" --max "$limit"
    --stats "$base.stats")
  if [ -n "${FERRY_LAB_SEED:-}" ]; then args+=(--seed "$FERRY_LAB_SEED"); fi
  rm -f "$base.stats"
  # setsid: the helper outlives this script and any signal sent to its caller's group.
  setsid ip netns exec "$ns" "$bin" "${args[@]}" </dev/null >"$base.log" 2>&1 &
  pid=$!
  echo "$pid $(basename "$bin" | cut -c1-15)" >"$base.pid"
  for ((i = 0; i < 50; i++)); do
    grep -q "^nfq_delay: ready" "$base.log" 2>/dev/null && return 0
    alive "$pid" || break  # (its comm is setsid or ip until the helper is exec'd)
    sleep 0.1
  done
  cat "$base.log" >&2 || true
  die "the delay helper did not start in $ns (log: $base.log)"
}

ipt_rule() {  # ipt_rule -A|-D|-C NS CHAIN IF
  in_ns "$2" iptables -w 5 "$1" "$3" -i "$4" -j NFQUEUE --queue-num "$queue_num" --queue-bypass
}

# Removes one direction's impairment: the NFQUEUE rules, the helper, the loss table, the rate.
clear_end() {  # clear_end DIR RECV_NS RECV_IF SEND_NS SEND_IF
  local chain
  if command -v iptables >/dev/null 2>&1; then
    for chain in INPUT FORWARD; do
      while ipt_rule -C "$2" "$chain" "$3" 2>/dev/null; do ipt_rule -D "$2" "$chain" "$3"; done
    done
  fi
  stop_helper "$1"
  if in_ns "$2" nft list table inet "lab_impair_$link_tag" >/dev/null 2>&1; then
    in_ns "$2" nft delete table inet "lab_impair_$link_tag"
  fi
  in_ns "$4" tc qdisc del dev "$5" root 2>/dev/null || true
}

clear_link() {
  clear_end up "$up_ns" "$up_if" "$lo_ns" "$lo_if"
  clear_end down "$lo_ns" "$lo_if" "$up_ns" "$up_if"
  rm -f "$(state_dir)/$link_id.impair"
}

# Loss in the receiving namespace, before conntrack and before the delay queue: numgen draws
# per packet, in units of 0.01 %.
apply_loss() {  # apply_loss NS IF PCT
  local per10k
  per10k=$(awk -v p="$3" 'BEGIN { printf "%d", p * 100 + 0.5 }')
  in_ns "$1" nft -f - <<EOF
table inet lab_impair_$link_tag {
  chain loss {
    type filter hook prerouting priority -300; policy accept;
    iifname "$2" numgen random mod 10000 < $per10k counter drop
  }
}
EOF
}

# Rate on the sending side's egress: tbf, with a burst of at least 32 KiB or 10 ms of the rate.
apply_rate() {  # apply_rate NS IF RATE
  local burst
  burst=$(tc_rate_bytes "$3" | awk '{ b = $1 / 100; if (b < 32768) b = 32768; printf "%d", b }')
  in_ns "$1" tc qdisc replace dev "$2" root tbf rate "$3" burst "$burst" latency 200ms
}

tc_rate_bytes() {  # bytes per second of a tc rate (bit, kbit, mbit, gbit, bps, kbps, mbps)
  awk -v r="$1" 'BEGIN {
    n = r + 0; u = r; sub(/^[0-9.]+/, "", u)
    m["bit"] = 1/8; m["kbit"] = 1000/8; m["mbit"] = 1e6/8; m["gbit"] = 1e9/8
    m["bps"] = 1; m["kbps"] = 1000; m["mbps"] = 1e6; m["gbps"] = 1e9
    printf "%d\n", n * m[u] }'
}

impair_end() {  # impair_end DIR RECV_NS RECV_IF SEND_NS SEND_IF
  local dir=$1 chain
  if [ -n "$delay" ] || [ -n "$jitter" ]; then
    start_helper "$dir" "$2" "${delay:-0}" "${jitter:-0}" "$limit"
    for chain in INPUT FORWARD; do
      ipt_rule -C "$2" "$chain" "$3" 2>/dev/null || ipt_rule -A "$2" "$chain" "$3"
    done
  fi
  [ -z "$loss" ] || apply_loss "$2" "$3" "$loss"
  [ -z "$rate" ] || apply_rate "$4" "$5" "$rate"
}

cmd_impair() {
  need_root
  [ $# -ge 1 ] || usage
  parse_link "$1"
  shift
  delay="" jitter="" loss="" rate="" dirs=both limit=10000
  while [ $# -gt 0 ]; do
    [ $# -ge 2 ] || die "impair: $1 needs a value"
    case $1 in
      --delay) delay=$2 ;;
      --jitter) jitter=$2 ;;
      --loss) loss=${2%\%} ;;
      --rate) rate=$2 ;;
      --dir) dirs=$2 ;;
      --limit) limit=$2 ;;
      *) die "impair: unknown option $1" ;;
    esac
    shift 2
  done
  [ -z "$delay" ] || [[ $delay =~ ^[0-9]+$ ]] || die "--delay: whole milliseconds"
  [ -z "$jitter" ] || [[ $jitter =~ ^[0-9]+$ ]] || die "--jitter: whole milliseconds"
  [[ $limit =~ ^[1-9][0-9]*$ ]] || die "--limit: a packet count"
  [ -z "$loss" ] || awk -v p="$loss" 'BEGIN { exit !(p ~ /^[0-9]+(\.[0-9]+)?$/ && p <= 100) }' ||
    die "--loss: a percentage from 0 to 100"
  [ -z "$rate" ] || [[ $rate =~ ^[0-9]+(\.[0-9]+)?([kmg]?bit|[kmg]?bps)$ ]] ||
    die "--rate: a tc rate such as 512kbit or 2mbit"
  [[ $dirs =~ ^(both|up|down)$ ]] || die "--dir: both, up or down"
  need_tool nft nftables
  need_tool tc iproute2
  if [ -n "$delay$jitter" ]; then
    need_tool iptables iptables
    find_helper >/dev/null
  fi
  mkdir -p "$(state_dir)"
  clear_link
  [ "$dirs" = down ] || impair_end up "$up_ns" "$up_if" "$lo_ns" "$lo_if"
  [ "$dirs" = up ] || impair_end down "$lo_ns" "$lo_if" "$up_ns" "$up_if"
  local what="${delay:+delay ${delay} ms }${jitter:+jitter ±${jitter} ms }"
  what+="${loss:+loss ${loss}% }${rate:+rate $rate }"
  echo "${what:-nothing }($dirs)" >"$(state_dir)/$link_id.impair"
  say "impair $link_id: ${what:-nothing }($dirs)"
}

cmd_clear() {
  need_root
  [ $# -eq 1 ] || usage
  parse_link "$1"
  mkdir -p "$(state_dir)"
  clear_link
  say "clear $link_id"
}

# --- cut and heal ------------------------------------------------------------------------

cut_end() {  # cut_end NS IF: drop what arrives on IF and what leaves through it
  in_ns "$1" nft -f - <<EOF
table inet lab_cut_$link_tag {}
delete table inet lab_cut_$link_tag
table inet lab_cut_$link_tag {
  chain arrive { type filter hook prerouting priority -400; policy accept; iifname "$2" drop; }
  chain leave { type filter hook postrouting priority 400; policy accept; oifname "$2" drop; }
}
EOF
}

heal_end() {
  if in_ns "$1" nft list table inet "lab_cut_$link_tag" >/dev/null 2>&1; then
    in_ns "$1" nft delete table inet "lab_cut_$link_tag"
  fi
}

cmd_cut() {
  need_root
  need_tool nft nftables
  [ $# -eq 1 ] || usage
  parse_link "$1"
  cut_end "$up_ns" "$up_if"
  cut_end "$lo_ns" "$lo_if"
  say "cut $link_id"
}

cmd_heal() {
  need_root
  need_tool nft nftables
  [ $# -eq 1 ] || usage
  parse_link "$1"
  heal_end "$up_ns"
  heal_end "$lo_ns"
  say "heal $link_id"
}

# --- status, addr, exec ------------------------------------------------------------------

link_status() {
  local state=up what stats f
  in_ns "$up_ns" nft list table inet "lab_cut_$link_tag" >/dev/null 2>&1 && state=CUT
  what=$(cat "$(state_dir)/$link_id.impair" 2>/dev/null || echo "-")
  printf '  %-16s %-4s %s\n' "$link_id" "$state" "$what"
  for f in "$(state_dir)/$link_id".*.stats; do
    [ -f "$f" ] || continue
    stats=$(cat "$f")
    printf '  %-16s      helper %s (pid %s): %s\n' "" "$(basename "$f" .stats | sed 's/.*\.//')" \
      "$(helper_pid "${f%.stats}.pid" || echo 'gone')" "$stats"
  done
  for f in "$up_ns:$up_if" "$lo_ns:$lo_if"; do
    local drops
    drops=$(in_ns "${f%%:*}" nft list table inet "lab_impair_$link_tag" 2>/dev/null |
      grep -o 'packets [0-9]*' | awk '{print $2}' || true)
    [ -z "$drops" ] || printf '  %-16s      lost on arrival at %s: %s packets\n' "" "${f%%:*}" "$drops"
  done
}

cmd_status() {
  local nss ns n l
  nss=$(lab_namespaces)
  if [ -z "$nss" ]; then
    echo "lab $prefix: down"
    return 0
  fi
  echo "lab $prefix (state $(state_dir))"
  echo "nodes:"
  for ns in $nss; do
    n=${ns#"$prefix"-}
    printf '  %-10s %-18s %s\n' "$n" "$ns" \
      "$(in_ns "$ns" ip -4 -o addr show scope global 2>/dev/null | awk '{printf "%s %s  ", $2, $4}')"
  done
  echo "links:"
  for ns in $nss; do
    n=${ns#"$prefix"-}
    case $n in
      hub) l="hub-relay" ;;
      island*) l=relay-$n ;;
      *) continue ;;
    esac
    (parse_link "$l" 2>/dev/null && link_status) || printf '  %-16s missing\n' "$l"
  done
}

cmd_addr() {
  [ $# -eq 1 ] || usage
  addr_of "$(node_arg "$1")"
}

cmd_exec() {
  need_root
  [ $# -ge 2 ] || usage
  local ns
  ns=$(ns_of "$(node_arg "$1")")
  shift
  ns_exists "$ns" || die "namespace $ns does not exist (run: lab.sh up)"
  exec ip netns exec "$ns" "$@"
}

# --- down --------------------------------------------------------------------------------

# Stops every helper this lab started (by its pid file), then every process still inside the
# lab's namespaces (SIGTERM, SIGKILL after 5 s), then deletes the namespaces: their links, nft
# tables and iptables rules go with them.
cmd_down() {
  need_root
  local f pid ns pids i
  for f in "$(state_dir)"/*.pid; do
    [ -f "$f" ] || continue
    if pid=$(helper_pid "$f"); then kill -TERM "$pid" 2>/dev/null || true; fi
  done
  for ns in $(lab_namespaces); do
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    # shellcheck disable=SC2086 # a list of pids
    [ -z "$pids" ] || kill -TERM $pids 2>/dev/null || true
  done
  for ((i = 0; i < 50; i++)); do
    pids=""
    for ns in $(lab_namespaces); do pids+=" $(ip netns pids "$ns" 2>/dev/null || true)"; done
    [ -n "${pids// /}" ] || break
    sleep 0.1
  done
  # shellcheck disable=SC2086 # a list of pids
  [ -z "${pids// /}" ] || kill -KILL $pids 2>/dev/null || true
  for ns in $(lab_namespaces); do
    ip netns del "$ns"
    say "deleted $ns"
  done
  rm -rf "$(state_dir)"
  say "down"
}

# --- main --------------------------------------------------------------------------------

while [ $# -gt 0 ]; do
  case $1 in
    --prefix) prefix=${2:?--prefix needs a value}; shift 2 ;;
    --islands) islands=${2:?--islands needs a value}; shift 2 ;;
    --helper) helper=${2:?--helper needs a value}; shift 2 ;;
    -h | --help) usage 0 ;;
    *) break ;;
  esac
done
[[ $prefix =~ ^[a-z][a-z0-9]{0,19}$ ]] || die "--prefix: a lowercase name of at most 20 letters/digits"
[ $# -ge 1 ] || usage
command=$1
shift
case $command in
  up) [ $# -eq 0 ] || usage; cmd_up ;;
  impair) cmd_impair "$@" ;;
  clear) cmd_clear "$@" ;;
  cut) cmd_cut "$@" ;;
  heal) cmd_heal "$@" ;;
  status) [ $# -eq 0 ] || usage; cmd_status ;;
  addr) cmd_addr "$@" ;;
  exec) cmd_exec "$@" ;;
  down) [ $# -eq 0 ] || usage; cmd_down ;;
  *) usage ;;
esac
