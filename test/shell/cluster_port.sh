#!/usr/bin/env bash
# test/shell/cluster_port.sh: the throwaway cluster of the demo and of
# test/run.sh listens on UM_PORT when it is given, refuses a port in use or a
# value that is no port (starting nothing), and stops exactly what it started.
# Prints TAP.
set -uo pipefail
cd "$(dirname "$0")/../.."
n=0
ok()     { n=$((n+1)); echo "ok $n - $1"; }
not_ok() { n=$((n+1)); echo "not ok $n - $1"; }
echo "1..4"
out=$(mktemp -d /tmp/um-port.XXXXXX)
trap 'rm -rf "$out"' EXIT

# a port nobody listens on
for _ in $(seq 1 50); do
  p=$(( 30000 + RANDOM % 20000 ))
  (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || break
done

( source tools/cluster.sh
  UM_PORT=$p UM_CLUSTER_TCP=1 cluster_start >/dev/null 2>&1 || exit 1
  psql -X -A -t -d postgres -c "SHOW port" >"$out/port"
  echo "$UM_CLUSTER_DIR" >"$out/dir"
  # while it runs, a second cluster on the same port is refused
  ( UM_CLUSTER_DIR=""; UM_PORT=$p cluster_start >/dev/null 2>"$out/busy"; echo $? >"$out/busy_rc"; UM_CLUSTER_DIR="" )
)
if [ "$(cat "$out/port" 2>/dev/null)" = "$p" ]; then ok "UM_PORT=$p: the cluster listens on that port"; else not_ok "UM_PORT=$p: the cluster listens on that port (got $(cat "$out/port" 2>/dev/null))"; fi
if [ "$(cat "$out/busy_rc" 2>/dev/null)" != 0 ] && grep -q "is in use" "$out/busy" 2>/dev/null; then
  ok "a port in use is refused with a message that names it"
else
  not_ok "a port in use is refused with a message that names it"; sed 's/^/# /' "$out/busy" 2>/dev/null
fi
d=$(cat "$out/dir" 2>/dev/null)
if [ -n "$d" ] && [ ! -e "$d" ] && ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
  ok "on exit the cluster is stopped and its directory removed"
else
  not_ok "on exit the cluster is stopped and its directory removed ($d)"
fi
msg=$( source tools/cluster.sh; UM_PORT=http cluster_start 2>&1 >/dev/null; echo "rc=$?" )
if grep -q "must be a port number" <<<"$msg" && grep -q "rc=1" <<<"$msg"; then
  ok "UM_PORT that is no port number is refused"
else
  not_ok "UM_PORT that is no port number is refused"; echo "$msg" | sed 's/^/# /'
fi
