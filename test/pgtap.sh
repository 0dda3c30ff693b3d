#!/usr/bin/env bash
# test/pgtap.sh [test/pgtap/NN_x.sql ...]: run pgTAP files through pg_prove
# against the server libpq's environment names (PGHOST, PGPORT, PGUSER: a
# superuser), each in a database of its own that it creates and drops.  The
# server needs um and pgTAP installed.  Prints one line per file and a last
# line "N passed, N failed"; exits non-zero when anything failed.
# UM_TEST_SEED=0.123 replays the random differential test with that seed.
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp /tmp/um-pgtap.XXXXXX)
trap 'rm -f "$log"' EXIT
files=("$@")
[ ${#files[@]} -gt 0 ] || files=(test/pgtap/*.sql)
p=0; f=0
for t in "${files[@]}"; do
  db=um_tap_$(basename "$t" .sql)
  dropdb --if-exists "$db" >/dev/null 2>&1
  # test roles (regress_um_*, as pg_regress names them) left by an interrupted run
  psql -X -q -A -t -d postgres -c "SELECT format('DROP ROLE %I;', rolname) FROM pg_roles WHERE rolname LIKE 'regress\_um\_%'" \
    | psql -X -q -d postgres >/dev/null 2>&1
  createdb "$db"
  psql -X -q -d "$db" -c "CREATE EXTENSION pgtap" >/dev/null
  PGOPTIONS="${UM_TEST_SEED:+-c regress.seed=$UM_TEST_SEED}" \
    pg_prove --verbose --ext .sql -d "$db" "$t" >"$log" 2>&1
  read -r tp tf < <(bash test/count_tap.sh "$log")
  [ "$tf" -gt 0 ] && grep -v '^ok ' "$log"
  printf '%-40s %d passed, %d failed\n' "$t" "$tp" "$tf"
  grep -h '^ok .*seed [0-9.]*:' "$log" | head -1 | sed 's/^/    /'   # the seed a randomized test used
  p=$((p + tp)); f=$((f + tf))
  dropdb "$db"
done
echo "$p passed, $f failed"
[ "$f" -eq 0 ]
