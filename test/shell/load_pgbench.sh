#!/usr/bin/env bash
# test/shell/load_pgbench.sh: um under load from a real client.
#
# pgbench, CLIENTS (8) clients for DURATION (5) seconds, mixes four
# transactions: an application role acting as a random user and reading a
# protected table (weight 8), a permission check of a random user (weight 4),
# an administrator's lifecycle write that creates a user, adds them to an
# organization and removes a member again (weight 1), and the application
# role acting as an organization's Root and changing a member's role through
# um_set_org_role, with its permission, Root and escalation guards (weight 1).
# Serialization failures and deadlocks are retried (--max-tries); passes
# when no transaction failed and um_check_integrity() is clean afterwards;
# prints the TPS.
# Runs against the cluster test/run.sh started; `make load` runs it longer
# on a throwaway cluster.  Prints TAP.
set -uo pipefail
DURATION=${DURATION:-5}
CLIENTS=${CLIENTS:-8}
work=$(mktemp -d /tmp/um-load.XXXXXX)
chmod 755 "$work"
trap 'rm -rf "$work"; dropdb --if-exists um_load >/dev/null 2>&1; psql -X -q -d postgres -c "DROP ROLE IF EXISTS regress_um_load_app" >/dev/null 2>&1' EXIT
n=0
ok()     { n=$((n+1)); echo "ok $n - $1"; }
not_ok() { n=$((n+1)); echo "not ok $n - $1"; }
check()  { if eval "$2"; then ok "$1"; else not_ok "$1"; [ -n "${3:-}" ] && sed 's/^/# /' "$3" | tail -20; fi; return 0; }
echo "1..5"

createdb um_load
psql -X -q -v ON_ERROR_STOP=1 -d um_load >"$work/setup.log" 2>&1 <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION um CASCADE;
SELECT count(um_create_user(format('u%s@example.com', g))) FROM generate_series(1, 1000) g;
SELECT count(um_create_organization(format('org-%s', g), format('Org %s', g), g)) FROM generate_series(1, 100) g;
SELECT um_register_permission('invoice:read');
INSERT INTO um.roles (org_id, name) SELECT id, 'Clerk' FROM um.organizations;
INSERT INTO um.role_permissions (org_id, role_id, permission) SELECT org_id, id, 'invoice:read' FROM um.roles WHERE name = 'Clerk';
INSERT INTO um.memberships (org_id, user_id, role_id)
  SELECT DISTINCT ON (o, u) o, u, (SELECT id FROM um.roles WHERE org_id = o AND name = 'Clerk')
    FROM (SELECT 1 + (g * 7) % 100 AS o, 101 + g % 900 AS u FROM generate_series(1, 3000) g) x
  ON CONFLICT DO NOTHING;
-- user 1000 + k is a Member of organization k, whose Root (user k) changes their role under load
SELECT count(um_add_member(g, um_create_user(format('t%s@example.com', g)), 'Member')) FROM generate_series(1, 100) g;
CREATE TABLE invoices (id bigint PRIMARY KEY, org_id bigint NOT NULL, amount numeric NOT NULL);
CREATE INDEX ON invoices (org_id);
INSERT INTO invoices SELECT g, 1 + g % 100, g % 1000 FROM generate_series(1, 100000) g;
ANALYZE;
SELECT um_protect_table('invoices', 'org_id', 'invoice');
DROP ROLE IF EXISTS regress_um_load_app;
CREATE ROLE regress_um_load_app;
GRANT SELECT ON invoices TO regress_um_load_app;
GRANT EXECUTE ON FUNCTION um_act_as(bigint) TO regress_um_load_app;
SQL
check "the load database is set up" '[ $? -eq 0 ] && [ "$(psql -X -A -t -d um_load -c "SELECT count(*) FROM um.memberships m JOIN um.users u ON u.id = m.user_id WHERE u.email = format('"'"'t%s@example.com'"'"', m.org_id) AND m.user_id = 1000 + m.org_id")" = 100 ]' "$work/setup.log"

cat >"$work/read.sql" <<'SQL'
\set u random(1, 1000)
BEGIN;
SET LOCAL ROLE regress_um_load_app;
SELECT um_act_as(:u);
SELECT count(*), sum(amount) FROM invoices;
COMMIT;
SQL
cat >"$work/check.sql" <<'SQL'
\set u random(1, 1000)
\set o random(1, 100)
SELECT um_has_permission(:u, 'invoice:read', :o), um_permitted_orgs(:u, 'invoice:read');
SQL
cat >"$work/write.sql" <<'SQL'
\set o random(1, 100)
\set k random(1, 1000000000)
BEGIN;
SELECT um_create_user('load-' || :client_id || '-' || :k || '@example.com') AS new_user \gset
SELECT um_add_member(:o, :new_user, 'Clerk');
SELECT m.user_id AS leaving FROM um.memberships m JOIN um.roles r ON r.id = m.role_id
 WHERE m.org_id = :o AND r.name = 'Clerk' ORDER BY m.id LIMIT 1 FOR UPDATE OF m SKIP LOCKED \gset
SELECT um_remove_member(:o, :leaving);
COMMIT;
SQL
cat >"$work/acting_write.sql" <<'SQL'
\set o random(1, 100)
\set t 1000 + :o
\set r random(1, 2)
BEGIN;
SET LOCAL ROLE regress_um_load_app;
SELECT um_act_as(:o);
SELECT um_set_org_role(:o, :t, (ARRAY['Member', 'Service Reader'])[:r]);
COMMIT;
SQL
pgbench -n -c "$CLIENTS" -j 2 -T "$DURATION" --max-tries=10 -d um_load \
  -f "$work/read.sql@8" -f "$work/check.sql@4" -f "$work/write.sql@1" -f "$work/acting_write.sql@1" >"$work/pgbench.log" 2>&1
rc=$?
check "pgbench ran $CLIENTS clients for $DURATION s without a failed transaction" \
  '[ $rc -eq 0 ] && grep -q "number of failed transactions: 0" "$work/pgbench.log"' "$work/pgbench.log"
tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$work/pgbench.log" | head -1)
xacts=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$work/pgbench.log")
check "it processed transactions ($xacts, $tps per second)" '[ "${xacts:-0}" -gt 0 ]' "$work/pgbench.log"
sed -n '/^SQL script/,$p' "$work/pgbench.log" | grep -E '^SQL script|^ - (weight|[0-9]+ transactions)|latency average' | sed 's/^/# /'
psql -X -A -t -d um_load -c "SELECT invariant || ': ' || object || ': ' || detail FROM um_check_integrity()" >"$work/integrity.txt" 2>&1
check "the acting Roots' role changes were made and audited ($(psql -X -A -t -d um_load -c "SELECT count(*) FROM um.audit_events WHERE action = 'member.set_role'"))" \
  '[ "$(psql -X -A -t -d um_load -c "SELECT count(*) FROM um.audit_events WHERE action = '"'"'member.set_role'"'"' AND actor_user_id = org_id AND db_role = '"'"'regress_um_load_app'"'"'")" -gt 0 ]'
check "um_check_integrity() is clean after the load" '[ ! -s "$work/integrity.txt" ]' "$work/integrity.txt"
