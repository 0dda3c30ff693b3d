#!/usr/bin/env bash
# tools/bench_writes.sh (make bench-writes): reads under writes in other
# tenants, as a deployment runs them.
#
#   make bench-writes                          2,000 readers' users, 1,000 organizations
#   make bench-writes RLS_ROWS=2000000 DURATION=30 CLIENTS=8   (default 200000, 20, 8)
#
# READERS clients (pgbench) each run, per transaction,
#   BEGIN; SELECT um_act_as(<one of 2,000 users>); SELECT sum(amount) FROM invoices; COMMIT
# against an invoices table of RLS_ROWS rows over 1,000 organizations,
# protected by um_protect_table, while one more client calls
# um_set_org_role in 100 *other* organizations (their own users) at 0, 1,
# 10 and 100 calls per second.  The anchor, measured in the same run: the
# same readers under a cache-less SQL policy
#   org_id = ANY (my_orgs()), my_orgs() reading um.memberships per statement
# Prints reader TPS, p50/p99 latency, the ratio to um without writes and to
# the anchor at the same write rate, and the readers' cache counters
# (um.cache_activity: um is preloaded).
set -euo pipefail
cd "$(dirname "$0")/.."
RLS_ROWS=${RLS_ROWS:-200000}
SECONDS_EACH=${DURATION:-20}   # (not SECONDS: bash counts its own)
CLIENTS=${CLIENTS:-8}
RATES=${RATES:-"0 1 10 100"}
bash tools/setup.sh
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
make -s >/dev/null && make -s install >/dev/null
source tools/cluster.sh
work=$(mktemp -d /tmp/um-bench-writes.XXXXXX)
chmod 777 "$work"
UM_CLEANUP_DIRS="$work"
cluster_start "shared_preload_libraries = 'um'" "max_connections = 50" "shared_buffers = 512MB" "max_wal_size = 4GB"
PGBENCH=$("$PG_CONFIG" --bindir)/pgbench

echo "== building: 2,000 readers' users in 1,000 organizations, 100 other organizations, $RLS_ROWS invoices"
psql -X -q -v ON_ERROR_STOP=1 -v rows="$RLS_ROWS" <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION um CASCADE;
SELECT setseed(0.5) \gset
-- 1,000 reader organizations (1..1000) and 100 others (1001..1100), each with a Root
INSERT INTO um.users (email) SELECT format('root%s@bench.example', g) FROM generate_series(1, 1100) g;
SELECT count(um_create_organization(format('org-%s', g), format('Org %s', g), g)) FROM generate_series(1, 1100) g \gset
-- 2,000 readers (ids 1101..3100), each in one or two reader organizations with a role holding invoice:read
SELECT um_register_permission('invoice:read') \gset
INSERT INTO um.roles (org_id, name) SELECT id, 'Finance' FROM um.organizations;
INSERT INTO um.role_permissions (org_id, role_id, permission) SELECT org_id, id, 'invoice:read' FROM um.roles WHERE name = 'Finance';
INSERT INTO um.users (email) SELECT format('reader%s@bench.example', g) FROM generate_series(1, 2000) g;
INSERT INTO um.memberships (org_id, user_id, role_id)
  SELECT DISTINCT ON (o, u.id) o, u.id, r.id
    FROM um.users u
    CROSS JOIN LATERAL (VALUES (1 + (u.id * 7) % 1000), (CASE WHEN u.id % 2 = 0 THEN 1 + (u.id * 13) % 1000 END)) v(o)
    JOIN um.roles r ON r.org_id = v.o AND r.name = 'Finance'
   WHERE u.email LIKE 'reader%' AND v.o IS NOT NULL;
-- 2,000 users of the other organizations (ids 3101..5100), whose roles the writer changes
INSERT INTO um.users (email) SELECT format('other%s@bench.example', g) FROM generate_series(1, 2000) g;
INSERT INTO um.memberships (org_id, user_id, role_id)
  SELECT 1001 + (u.id % 100), u.id, r.id FROM um.users u
    JOIN um.roles r ON r.org_id = 1001 + (u.id % 100) AND r.builtin = 'member'
   WHERE u.email LIKE 'other%';
CREATE TABLE invoices (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, org_id bigint NOT NULL, amount numeric(12,2) NOT NULL);
INSERT INTO invoices (org_id, amount)
  SELECT 1 + floor(random() * 1000)::bigint, round((random() * 1000)::numeric, 2) FROM generate_series(1, :rows);
CREATE INDEX invoices_org_id_idx ON invoices (org_id);
VACUUM ANALYZE;
CREATE ROLE bench_reader LOGIN;
GRANT SELECT ON invoices TO bench_reader;
GRANT EXECUTE ON FUNCTION um_act_as(bigint) TO bench_reader;
-- the anchor's helper: what a hand-written policy without a cache reads, per statement
CREATE FUNCTION public.my_orgs() RETURNS bigint[] LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS
  $$ SELECT ARRAY(SELECT m.org_id FROM um.memberships m WHERE m.user_id = public.um_current_user_id() AND m.status = 'active') $$;
GRANT EXECUTE ON FUNCTION public.my_orgs() TO bench_reader;
SQL

cat >"$work/reader.sql" <<'EOF'
\set u random(1101, 3100)
BEGIN;
SELECT um_act_as(:u);
SELECT sum(amount) FROM invoices;
COMMIT;
EOF
cat >"$work/writer.sql" <<'EOF'
\set u random(3101, 5100)
SELECT um_set_org_role(1001 + (:u % 100), :u, CASE WHEN random() < 0.5 THEN 'Finance' ELSE 'Member' END);
EOF

policy() {
  psql -X -q -v ON_ERROR_STOP=1 <<SQL
SET client_min_messages = warning;
DROP POLICY IF EXISTS anchor ON invoices;
ALTER TABLE invoices DISABLE ROW LEVEL SECURITY;
SELECT count(*) AS unprotected FROM (SELECT um_unprotect_table('invoices') WHERE EXISTS (SELECT 1 FROM pg_policies WHERE tablename = 'invoices')) x \\gset
$1
SQL
}

# run LABEL RATE: readers for SECONDS_EACH seconds, with a writer at RATE calls/s
printf '%-44s %6s %10s %9s %9s %10s %11s %9s %9s\n' "readers' policy" "writes" "TPS" "p50 ms" "p99 ms" "hit ratio" "invalid." "resets" "misses"
run() {
  local tag=$1 label=$2 rate=$3 wpid=""
  psql -X -q -c "SELECT um_cache_reset()" >/dev/null
  rm -f "$work"/pgbench_log.*
  if [ "$rate" -gt 0 ]; then
    "$PGBENCH" -n -c 1 -T "$((SECONDS_EACH + 2))" -R "$rate" -f "$work/writer.sql" >"$work/writer.out" 2>&1 &
    wpid=$!
  fi
  # the readers' cache counters, sampled just before they disconnect (a
  # backend's figures leave um.cache_activity with it)
  (sleep "$((SECONDS_EACH - 1))"; psql -X -A -t -F' ' -c "SELECT coalesce(round(sum(hits)::numeric / nullif(sum(hits) + sum(misses), 0), 4), 0),
          sum(invalidations), sum(resets), sum(misses) FROM um.cache_activity WHERE role = 'bench_reader' AND NOT is_mine" >"$work/stats") &
  local spid=$!
  (cd "$work" && "$PGBENCH" -n -U bench_reader -c "$CLIENTS" -j 2 -T "$SECONDS_EACH" -l --log-prefix="$work/pgbench_log" \
     -f "$work/reader.sql" >"$work/reader.out" 2>&1) || { cat "$work/reader.out"; exit 1; }
  [ -n "$wpid" ] && wait "$wpid"
  local tps p50 p99
  tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$work/reader.out" | head -1)
  read -r p50 p99 < <(cat "$work"/pgbench_log.* | awk '{print $3}' | sort -n | awk '{a[NR]=$1} END {printf "%.2f %.2f\n", a[int(NR*0.5)]/1000, a[int(NR*0.99)]/1000}')
  wait "$spid"
  local stats
  stats=$(cat "$work/stats")
  printf '%-44s %6s %10.0f %9s %9s %10s %11s %9s %9s\n' "$label" "$rate/s" "$tps" "$p50" "$p99" $stats
  echo "$tag $rate $tps" >>"$work/results"
}

policy "SELECT um_protect_table('invoices', 'org_id', 'invoice') \\gset"
for r in $RATES; do run um "um_protect_table" "$r"; done
policy "ALTER TABLE invoices ENABLE ROW LEVEL SECURITY;
CREATE POLICY anchor ON invoices FOR SELECT TO bench_reader
  USING (org_id = ANY (public.my_orgs()));"
for r in $RATES; do run anchor "cache-less SQL policy (anchor)" "$r"; done

echo
echo "ratios (reader TPS):"
awk '
  $1 == "um" { um[$2] = $3 }
  $1 == "anchor" { an[$2] = $3 }
  END {
    for (r in um) printf "  writes %4s/s: um %.0f TPS = %.2fx um without writes, %.2fx the cache-less SQL policy\n", r, um[r], um[r] / um[0], um[r] / an[r]
  }' "$work/results" | sort -t: -k1,1 -n -k2
