#!/usr/bin/env bash
# ferryctl as an admin runs it: help, usage errors, init, id, and status, get and rebuild without
# a daemon.
# Usage: ferryctl_test.sh PATH_TO_FERRYCTL
set -euo pipefail
ferryctl=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
checks=0

fail() {
  echo "FAIL: $*"
  echo "--- stdout"; cat "$tmp/out"
  echo "--- stderr"; cat "$tmp/err"
  exit 1
}

# expect CODE COMMAND...: runs the command with stdout and stderr in $tmp/out and $tmp/err.
expect() {
  local want=$1 got=0
  shift
  "$@" >"$tmp/out" 2>"$tmp/err" || got=$?
  [ "$got" -eq "$want" ] || fail "$* exited $got, not $want"
  checks=$((checks + 1))
}

expect 0 "$ferryctl" --help
grep -q '^Usage: ferryctl' "$tmp/out" || fail "--help prints no usage"
expect 2 "$ferryctl" --no-such-option
expect 2 "$ferryctl"
expect 2 "$ferryctl" init --dir "$tmp/node"  # --name missing

node=$tmp/islands/huaniao
expect 0 "$ferryctl" init --dir "$node" --name huaniao --role relay
key=$(sed -n 's/^public key  *//p' "$tmp/out")
[[ $key =~ ^[0-9a-f]{64}$ ]] || fail "init printed no public key"
[ "$(stat -c %a "$node/node.key")" = 600 ] || fail "node.key is not mode 0600"
[ "$(stat -c %a "$node")" = 750 ] || fail "the data directory is not mode 0750"
grep -q "^data_dir = \"$node\"$" "$node/ferry.toml" || fail "ferry.toml lacks the absolute data_dir"
grep -q '^role = "relay"$' "$node/ferry.toml" || fail "ferry.toml lacks the role"

# id reads the config through config::load_config and the key through NodeKey::load.
expect 0 "$ferryctl" -c "$node/ferry.toml" id --json
grep -q "\"public_key\": \"$key\"" "$tmp/out" || fail "id --json shows another key"
grep -q '"name": "huaniao"' "$tmp/out" || fail "id --json shows another name"
expect 0 env FERRY_CONFIG="$node/ferry.toml" "$ferryctl" id
[ "$(cat "$tmp/out")" = "huaniao $key" ] || fail "id with FERRY_CONFIG"

expect 1 "$ferryctl" init --dir "$node" --name huaniao  # never overwrites
grep -q 'never overwrites' "$tmp/err" || fail "init over a node does not say why it refuses"
expect 1 "$ferryctl" init --dir "$tmp/bad" --name 'no spaces'
[ ! -e "$tmp/bad" ] || fail "a refused init left files behind"

# init with peers: a hub is its own authority; a station names its upstream and the hub's key.
hub=$tmp/hub
expect 0 "$ferryctl" init --dir "$hub" --name dongji --role hub --listen tcp://0.0.0.0:7470
hub_key=$(sed -n 's/^public key  *//p' "$tmp/out")
grep -q "^authority   $hub_key (this node)$" "$tmp/out" || fail "a hub is not its own authority"
grep -q "^key = \"$hub_key\"$" "$hub/ferry.toml" || fail "the hub's ferry.toml lacks its own key"
grep -q '^endpoint = "tcp://0.0.0.0:7470"$' "$hub/ferry.toml" || fail "ferry.toml lacks [listen]"
station=$tmp/station
expect 0 "$ferryctl" init --dir "$station" --name beiji --upstream tcp://127.0.0.1:7470 \
  --upstream-key "$hub_key" --authority "$hub_key"
grep -q '^\[\[upstream\]\]$' "$station/ferry.toml" || fail "ferry.toml lacks [[upstream]]"
[ "$(grep -c "^key = \"$hub_key\"$" "$station/ferry.toml")" = 2 ] ||
  fail "the station's ferry.toml lacks the upstream's or the authority's key"
expect 0 "$ferryctl" -c "$station/ferry.toml" id  # the written file loads
expect 2 "$ferryctl" init --dir "$tmp/pairs" --name p --upstream tcp://127.0.0.1:7470 \
  --authority "$hub_key"
grep -q 'come in pairs' "$tmp/err" || fail "an unpaired --upstream does not say why it is refused"
expect 2 "$ferryctl" init --dir "$tmp/pairs" --name p --listen udp://0.0.0.0:7470 \
  --authority "$hub_key"
expect 2 "$ferryctl" init --dir "$tmp/pairs" --name p --authority "${hub_key^^}"
expect 2 "$ferryctl" init --dir "$tmp/pairs" --name p --listen tcp://0.0.0.0:7470
grep -q -- '--authority' "$tmp/err" || fail "--listen without --authority does not say why"
[ ! -e "$tmp/pairs" ] || fail "a refused init with peer flags left files behind"

expect 1 "$ferryctl" -c "$node/ferry.toml" status --timeout 100
grep -q "^ferryctl: ferryd is not running at ipc://$node/ferryd.sock (" "$tmp/err" ||
  fail "status without ferryd does not say it is not running"
expect 1 "$ferryctl" -c "$node/ferry.toml" submit --kind case.submit --key HN-1 --set a=1 --timeout 100
grep -q "not running" "$tmp/err" || fail "submit without ferryd does not say it is not running"
expect 1 "$ferryctl" -c "$node/ferry.toml" get HN-1 --timeout 100
grep -q "not running" "$tmp/err" || fail "get without ferryd does not say it is not running"
expect 2 "$ferryctl" -c "$node/ferry.toml" conflicts --limit 0
expect 1 "$ferryctl" -c "$node/ferry.toml" rebuild  # a node that never ran has no store
grep -q "nothing to rebuild" "$tmp/err" || fail "rebuild without a store does not say so"
[ ! -e "$node/ferry.db" ] || fail "rebuild created a store"
# Replication commands: bad input is refused before the daemon is asked; without it, exit 1.
expect 2 "$ferryctl" -c "$node/ferry.toml" trust add 'no spaces' "$key"
expect 2 "$ferryctl" -c "$node/ferry.toml" trust add huaniao "${key^^}"
expect 2 "$ferryctl" -c "$node/ferry.toml" trust add huaniao "$key" --read 'a*b'
grep -q "may only end a pattern" "$tmp/err" || fail "a bad --read pattern does not say why"
expect 2 "$ferryctl" -c "$node/ferry.toml" trust revoke 'x/y'
expect 2 "$ferryctl" -c "$node/ferry.toml" trust
expect 1 "$ferryctl" -c "$node/ferry.toml" peers --timeout 100
grep -q "not running" "$tmp/err" || fail "peers without ferryd does not say it is not running"
expect 1 "$ferryctl" -c "$node/ferry.toml" trust add huaniao "$key" --timeout 100
grep -q "not running" "$tmp/err" || fail "trust add without ferryd does not say it is not running"
expect 1 "$ferryctl" -c "$tmp/missing.toml" status
grep -q "missing.toml" "$tmp/err" || fail "a missing config is not named"

echo "ferryctl command line: $checks checks passed"
