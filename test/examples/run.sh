#!/usr/bin/env bash
# test/examples/run.sh: the example backends (examples/python, examples/node),
# tested end to end over HTTP.  Prints TAP; exits non-zero when a check fails.
#
# Starts its own throwaway PostgreSQL 15 cluster (tools/cluster.sh: a unix
# socket, a free port, um preloaded), creates a database with um, applies
# the application's migration (examples/schema.sql) as a superuser, starts
# pgbouncer on 127.0.0.1 (pool_mode = transaction, default_pool_size = 2),
# runs `npm ci` in examples/node, starts both services on 127.0.0.1 behind
# that pgbouncer, and drives the whole scenario (test/examples/scenario.py)
# against each: two tenants signing up, verifying, logging in, writing
# invoices and seeing only their own; invitations, role changes, suspension,
# impersonation, export, account deletion, refusals with their SQLSTATE and
# HTTP status; then 300 concurrent requests of both tenants over the two
# server connections.  Last, no log (services, pgbouncer, PostgreSQL) holds a
# password or a token the scenario used.
#
# It builds and installs nothing: um must be installed (test/run.sh does it;
# by hand: make && make install).  Needs /usr/bin/python3 with
# python3-psycopg and python3-psycopg-pool, node and npm, pgbouncer
# (tools/setup.sh installs them).  Stops exactly what it started (by pid,
# and the cluster's data directory), also when it fails or is interrupted.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
ROOT=$(pwd)
PY=/usr/bin/python3

n=0
bad=0
ok()     { n=$((n+1)); echo "ok $n - $1"; }
not_ok() { n=$((n+1)); bad=$((bad+1)); echo "not ok $n - $1"; }
check()  { if [ "$2" = 0 ]; then ok "$1"; else not_ok "$1"; fi; }
finish() { echo "1..$n"; [ "$bad" -eq 0 ]; exit $?; }
indent() { sed 's/^/#   /'; }

# ---- prerequisites ------------------------------------------------------------
missing=""
"$PY" -c 'import psycopg, psycopg_pool' 2>/dev/null || missing+=" python3-psycopg/python3-psycopg-pool (for $PY)"
command -v node >/dev/null 2>&1 || missing+=" node"
command -v npm >/dev/null 2>&1 || missing+=" npm"
PGBOUNCER=$(command -v pgbouncer || { [ -x /usr/sbin/pgbouncer ] && echo /usr/sbin/pgbouncer; })
[ -n "$PGBOUNCER" ] || missing+=" pgbouncer"
if [ -n "$missing" ]; then
  not_ok "prerequisites are installed (missing:$missing; bash tools/setup.sh installs them)"
  finish
fi
ok "prerequisites: $PY with psycopg $("$PY" -c 'import psycopg; print(psycopg.__version__)'), node $(node --version), $("$PGBOUNCER" --version | head -1)"

# ---- the cluster, the database, the migration ----------------------------------
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
source tools/cluster.sh
export PATH=$PG_BINDIR:$PATH
unset UM_PORT UM_CLUSTER_TCP        # a free port of our own, a unix socket only
W=$(mktemp -d /tmp/um-examples.XXXXXX)
chmod 755 "$W"
UM_CLEANUP_DIRS=$W
# um preloaded, as in production (um_lint() then has nothing to say); quick
# password hashes for the test (the default cost is 10)
if ! cluster_start "shared_preload_libraries = 'um'" "um.password_hash_cost = 4" >"$W/cluster.log" 2>&1; then
  not_ok "a throwaway cluster starts"; indent <"$W/cluster.log"
  rm -rf "$W"; finish
fi
PIDS=()
PGB_PIDFILE=""
cleanup() {
  local rc=$?
  trap '' INT TERM
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  if [ -n "$PGB_PIDFILE" ] && [ -s "$PGB_PIDFILE" ]; then
    kill "$(cat "$PGB_PIDFILE")" 2>/dev/null
    for _ in $(seq 1 50); do [ -e "$PGB_PIDFILE" ] || break; sleep 0.1; done
  fi
  (exit "$rc"); _cluster_trap        # stops the cluster, removes $W, exits with rc
}
trap cleanup EXIT
ok "a throwaway cluster runs (port $PGPORT, unix socket only, um preloaded)"
DB=um_examples
SUPER="host=$PGHOST port=$PGPORT user=postgres dbname=$DB"

createdb "$DB" && psql -X -q -d "$DB" -c 'SET client_min_messages = warning' -c 'CREATE EXTENSION um CASCADE' >"$W/ext.log" 2>&1
check "CREATE EXTENSION um CASCADE" $?
psql -X -q -v ON_ERROR_STOP=1 -d "$DB" -f examples/schema.sql >"$W/migration.log" 2>&1
rc=$?; check "the migration (examples/schema.sql) applies as a superuser" $rc
[ "$rc" = 0 ] || indent <"$W/migration.log"
lint=$(psql -X -At -d "$DB" -c "SELECT severity || ': ' || object || ': ' || finding FROM um_lint()" 2>&1)
check "um_lint() finds nothing after it" "$([ -z "$lint" ] && echo 0 || echo 1)"
[ -z "$lint" ] || indent <<<"$lint"
attrs=$(psql -X -At -d "$DB" -c "SELECT rolcanlogin, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = 'app_backend'")
check "app_backend logs in and is neither superuser nor BYPASSRLS" "$([ "$attrs" = "t|f|f" ] && echo 0 || echo 1)"
writes=$(grep -nEi '(insert[[:space:]]+into|update|delete[[:space:]]+from|truncate)[[:space:]]+um\.' \
           examples/schema.sql examples/python/*.py examples/node/*.js 2>/dev/null)
check "no example writes um's tables (lifecycle functions only)" "$([ -z "$writes" ] && echo 0 || echo 1)"
[ -z "$writes" ] || indent <<<"$writes"

# ---- pgbouncer: transaction pooling, two server connections ---------------------
PGB_DIR=$W/pgbouncer
mkdir -p "$PGB_DIR"
PGB_PORT=$(free_port)
cat >"$PGB_DIR/pgbouncer.ini" <<EOF
[databases]
$DB = host=$PGHOST port=$PGPORT dbname=$DB
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_PORT
unix_socket_dir =
auth_type = trust
auth_file = $PGB_DIR/users.txt
pool_mode = transaction
default_pool_size = 2
max_client_conn = 100
logfile = $PGB_DIR/pgbouncer.log
pidfile = $PGB_DIR/pgbouncer.pid
EOF
echo '"app_backend" ""' >"$PGB_DIR/users.txt"
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$PGB_DIR"
PGB_PIDFILE=$PGB_DIR/pgbouncer.pid
# -d: pgbouncer daemonizes (pgbouncer refuses to run as root: as_postgres)
as_postgres "$PGBOUNCER" -d "$PGB_DIR/pgbouncer.ini" >"$W/pgbouncer.out" 2>&1
ready=1
for _ in $(seq 1 100); do
  if psql -X -Atq -h 127.0.0.1 -p "$PGB_PORT" -U app_backend -d "$DB" -c 'SELECT 1' >/dev/null 2>&1; then ready=0; break; fi
  sleep 0.1
done
check "pgbouncer accepts app_backend on 127.0.0.1:$PGB_PORT (pool_mode = transaction, default_pool_size = 2)" $ready
[ "$ready" = 0 ] || { indent <"$W/pgbouncer.out"; indent <"$PGB_DIR/pgbouncer.log" 2>/dev/null; finish; }

# ---- the services ------------------------------------------------------------------
(cd examples/node && npm ci --no-audit --no-fund --loglevel=error) >"$W/npm.log" 2>&1
npm_rc=$?; check "npm ci in examples/node (pg from package-lock.json)" $npm_rc
[ "$npm_rc" = 0 ] || indent <"$W/npm.log"

# wait_http URL: 0 once it answers /healthz with 200
wait_http() {
  "$PY" - "$1" <<'PYEOF'
import sys, time, urllib.request
for _ in range(150):
    try:
        with urllib.request.urlopen(sys.argv[1] + "/healthz", timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
    except Exception:
        pass
    time.sleep(0.1)
sys.exit(1)
PYEOF
}

PY_PORT=$(free_port)
DATABASE_URL="host=127.0.0.1 port=$PGB_PORT dbname=$DB user=app_backend" MAIL_OUTBOX=$W/python-outbox.jsonl \
  HOST=127.0.0.1 PORT=$PY_PORT POOL_SIZE=10 "$PY" examples/python/app.py >"$W/python.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$PY_PORT"; py_up=$?
check "the Python service (psycopg $("$PY" -c 'import psycopg_pool; print("pool", psycopg_pool.__version__)')) answers on 127.0.0.1:$PY_PORT" $py_up
[ "$py_up" = 0 ] || indent <"$W/python.log"

node_up=1
if [ "$npm_rc" = 0 ]; then
  NODE_PORT=$(free_port)
  while [ "$NODE_PORT" = "$PY_PORT" ]; do NODE_PORT=$(free_port); done
  (cd examples/node && DATABASE_URL="postgresql://app_backend@127.0.0.1:$PGB_PORT/$DB" MAIL_OUTBOX=$W/node-outbox.jsonl \
     HOST=127.0.0.1 PORT=$NODE_PORT POOL_SIZE=10 exec node server.js) >"$W/node.log" 2>&1 &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$NODE_PORT"; node_up=$?
fi
check "the Node service (pg $(sed -n 's/.*"version": "\(.*\)".*/\1/p' examples/node/node_modules/pg/package.json 2>/dev/null | head -1)) answers on 127.0.0.1:${NODE_PORT:-none}" $node_up
[ "$node_up" = 0 ] || indent <"$W/node.log" 2>/dev/null

# ---- the scenario, against each service ------------------------------------------------
# scenario LABEL PORT: run the driver, numbering its "ok - " / "not ok - " lines
scenario() {
  local line rc
  : >"$W/$1-outbox.jsonl"
  while IFS= read -r line; do
    case "$line" in
      "ok - "*) ok "${line#ok - }" ;;
      "not ok - "*) not_ok "${line#not ok - }" ;;
      *) echo "$line" ;;
    esac
  done < <("$PY" test/examples/scenario.py --base "http://127.0.0.1:$2" --label "$1" \
             --outbox "$W/$1-outbox.jsonl" --secrets "$W/secrets" --psql-conninfo "$SUPER" 2>&1)
  wait $! 2>/dev/null; rc=$?
  check "[$1] the driver exits 0" $rc
}
touch "$W/secrets"
if [ "$py_up" = 0 ]; then scenario python "$PY_PORT"; else not_ok "[python] the scenario runs (the service is down)"; fi
if [ "$node_up" = 0 ]; then scenario node "$NODE_PORT"; else not_ok "[node] the scenario runs (the service is down)"; fi

# ---- afterwards ---------------------------------------------------------------------------
alive=0
for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null || alive=1; done
check "both services are still running" $alive
nsecrets=$(grep -c . "$W/secrets")
leaks=$(grep -lFf "$W/secrets" "$W/python.log" "$W/node.log" "$PGB_DIR/pgbouncer.log" "$UM_CLUSTER_LOG" 2>/dev/null)
check "no log (services, pgbouncer, PostgreSQL) holds any of the $nsecrets passwords and tokens used" \
  "$([ "$nsecrets" -gt 20 ] && [ -z "$leaks" ] && echo 0 || echo 1)"
[ -z "$leaks" ] || indent <<<"$leaks"
errors=$(grep -hE ' (unexpected|database error) ' "$W/python.log" "$W/node.log" 2>/dev/null)
check "the services logged no unexpected error" "$([ -z "$errors" ] && echo 0 || echo 1)"
[ -z "$errors" ] || indent <<<"$errors"
finish
