# tools/cluster.sh: a throwaway PostgreSQL cluster for um's demo and tests.
#
# Source this file, then call cluster_start.  It runs initdb as the "postgres"
# OS user (initdb and postgres refuse root) in a fresh temporary directory,
# starts the server on a unix socket in that directory (no TCP unless
# UM_CLUSTER_TCP=1, then 127.0.0.1 only) on a free port (or on UM_PORT when
# that is set: it must be free), and exports
# PGHOST/PGPORT/PGUSER/PGDATABASE so psql, pg_regress and pg_prove reach it.
# An EXIT/INT/TERM trap stops exactly that server and removes its directory,
# also when the caller fails or is interrupted.  No other cluster is touched.

PG_CONFIG=${PG_CONFIG:-pg_config}
if ! command -v "$PG_CONFIG" >/dev/null 2>&1; then
  PG_CONFIG=/usr/lib/postgresql/${PG_MAJOR:-15}/bin/pg_config
fi
PG_BINDIR=$("$PG_CONFIG" --bindir)
UM_CLUSTER_DIR=""

# as_postgres CMD...: run CMD as the postgres OS user when we are root.
as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# free_port: print a TCP port nobody listens on (also names the unix socket).
free_port() {
  local p
  for _ in $(seq 1 50); do
    p=$(( 20000 + RANDOM % 20000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"; return 0
    fi
  done
  echo "cluster: no free port found" >&2; return 1
}

cluster_stop() {
  local d=$UM_CLUSTER_DIR
  [ -n "$d" ] || return 0
  UM_CLUSTER_DIR=""
  if [ -f "$d/data/postmaster.pid" ]; then
    as_postgres "$PG_BINDIR/pg_ctl" -D "$d/data" -m fast -w -t 60 stop >/dev/null 2>&1 \
      || as_postgres "$PG_BINDIR/pg_ctl" -D "$d/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  if [ -n "${UM_KEEP_CLUSTER_LOG:-}" ] && [ -f "$d/server.log" ]; then
    cp "$d/server.log" "$UM_KEEP_CLUSTER_LOG" 2>/dev/null || true
  fi
  rm -rf "$d"
}

# UM_CLEANUP_DIRS: more temporary directories of the caller to remove on exit
_cluster_trap() {
  local rc=$?
  trap '' INT TERM        # a second signal must not cut the cleanup short
  cluster_stop
  [ -n "${UM_CLEANUP_DIRS:-}" ] && rm -rf ${UM_CLEANUP_DIRS}
  exit "$rc"
}

# cluster_start [postgresql.conf lines...]
cluster_start() {
  local port d
  if [ -n "${UM_PORT:-}" ]; then
    port=$UM_PORT
    if ! [[ "$port" =~ ^[0-9]+$ ]] || [ "$port" -lt 1024 ] || [ "$port" -gt 65535 ]; then
      echo "cluster: UM_PORT must be a port number from 1024 to 65535, not \"$port\"" >&2; return 1
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "cluster: port $port (UM_PORT) is in use; name a free one or unset UM_PORT" >&2; return 1
    fi
  else
    port=$(free_port) || return 1
  fi
  d=$(mktemp -d /tmp/um-cluster.XXXXXX)
  chmod 755 "$d"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$d"
  UM_CLUSTER_DIR=$d
  trap _cluster_trap EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM

  if ! as_postgres "$PG_BINDIR/initdb" -D "$d/data" -U postgres --auth=trust \
        -E UTF8 --locale=C.UTF-8 >"$d/initdb.log" 2>&1; then
    cat "$d/initdb.log" >&2; return 1
  fi
  {
    echo "port = $port"
    echo "unix_socket_directories = '$d'"
    if [ -n "${UM_CLUSTER_TCP:-}" ]; then echo "listen_addresses = '127.0.0.1'"; else echo "listen_addresses = ''"; fi
    echo "fsync = off"
    echo "max_prepared_transactions = 10"
    echo "log_min_messages = warning"
    for line in "$@"; do echo "$line"; done
  } | as_postgres tee -a "$d/data/postgresql.conf" >/dev/null
  # setsid: the server gets a session of its own, so a signal to our process
  # group (Ctrl-C, a CI timeout) reaches us, and we stop the server cleanly
  if ! as_postgres setsid "$PG_BINDIR/pg_ctl" -D "$d/data" -l "$d/server.log" -w -t 60 start >/dev/null; then
    cat "$d/server.log" >&2; return 1
  fi
  export PGHOST=$d PGPORT=$port PGUSER=postgres PGDATABASE=postgres
  export UM_CLUSTER_LOG=$d/server.log
}
