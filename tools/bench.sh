#!/usr/bin/env bash
# tools/bench.sh (make bench): how fast um answers, measured in one run on
# one data set, against baselines measured in the same run.
#
#   make bench                                  100k users, 10k organizations
#   make bench USERS=1000000 ORGS=100000        larger
#   make bench USERS=1000000 ORGS=100000 MEMBERSHIPS=10    10 memberships a user
#   make bench CACHE_MEMORY=64MB                the measuring backend's um.cache_memory_limit (1GB)
#
# Builds its own data on a throwaway cluster, then times in one backend:
# a plain scan with a built-in function call (the floor), um_has_permission
# warm and cold (explicit user, acting user, scope node), the companions,
# a hand-written SQL join check of the kind SQL-only libraries use, and the
# plain-SQL reference implementation, and the companions with the cache limit
# at half their working set.  Prints a table with checks per second and
# ratios, the cache memory the checks needed, and the backend's cache.  Then the identity calls
# (um_begin and um_act_as against set_config, logins with and without the
# audit writer).  Then lifecycle calls, one per transaction through pgbench,
# against the same change by hand.  Then a reporting query over an
# invoices table (RLS_ROWS rows, 1,000 organizations of Zipf-like sizes) for a
# user in one large and one small organization: a literal tenant filter
# without RLS against um_protect_table, the natural per-row
# um_has_permission policy, the um_permitted_orgs policy, and a per-row
# plain-SQL helper; once with the rows interleaved, once stored by
# organization (CLUSTER).
set -euo pipefail
cd "$(dirname "$0")/.."
USERS=${USERS:-100000}
ORGS=${ORGS:-10000}
MEMBERSHIPS=${MEMBERSHIPS:-3}  # organizations each user joins (besides the Roots)
PAIRS=${PAIRS:-20000}          # distinct (user, organization) pairs checked
RLS_ROWS=${RLS_ROWS:-2000000}  # rows of the invoices table of the RLS benchmark
REPEAT=${REPEAT:-50}           # warm passes over them
# um.cache_memory_limit of the measuring backend: sized above the working set,
# so a warm figure is a warm figure (a production backend sizes its limit the
# same way, from the memory um.cache_activity shows).  Row 9 shows the other
# side: the companion calls with the limit at half the memory they need, the
# cache emptying and refilling (evictions), answered near cold speed.
CACHE_MEMORY=${CACHE_MEMORY:-1GB}
bash tools/setup.sh
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
make -s >/dev/null && make -s install >/dev/null
source tools/cluster.sh
cluster_start "shared_buffers = '1GB'" "work_mem = '64MB'" "maintenance_work_mem = '512MB'" \
              "max_wal_size = '8GB'" "checkpoint_timeout = '30min'" "autovacuum = off" "jit = off"
createdb um_bench
export PGDATABASE=um_bench

echo "loading $USERS users, $ORGS organizations, $MEMBERSHIPS memberships a user ..."
t0=$(date +%s)
psql -X -q -v ON_ERROR_STOP=1 -v users="$USERS" -v orgs="$ORGS" -v per_user="$MEMBERSHIPS" <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION um CASCADE;
SELECT um_register_permission('invoice:' || a) FROM unnest(ARRAY['read', 'create', 'approve']) a;
-- bulk load: the per-row checks of role_permissions are skipped (this data is valid by construction)
ALTER TABLE um.role_permissions DISABLE TRIGGER role_permissions_before_write;
INSERT INTO um.users (email, name) SELECT format('user%s@bench.example', g), format('User %s', g) FROM generate_series(1, :users) g;
INSERT INTO um.organizations (slug, name) SELECT format('org-%s', g), format('Org %s', g) FROM generate_series(1, :orgs) g;
INSERT INTO um.roles (org_id, name, description, builtin)
  SELECT o.id, b.name, b.description, b.key FROM um.organizations o CROSS JOIN um.builtin_roles b;
INSERT INTO um.roles (org_id, name) SELECT id, 'Finance' FROM um.organizations;
INSERT INTO um.role_permissions (org_id, role_id, permission)
  SELECT r.org_id, r.id, t.permission FROM um.roles r JOIN um.builtin_role_permissions t ON t.role_key = r.builtin;
INSERT INTO um.role_permissions (org_id, role_id, permission)
  SELECT r.org_id, r.id, p FROM um.roles r, unnest(ARRAY['invoice:*', 'billing:read']) p WHERE r.name = 'Finance';
INSERT INTO um.role_inclusions (org_id, role_id, included_role_id)
  SELECT f.org_id, f.id, s.id FROM um.roles f JOIN um.roles s ON s.org_id = f.org_id AND s.builtin = 'service_reader' WHERE f.name = 'Finance';
ALTER TABLE um.role_permissions ENABLE TRIGGER role_permissions_before_write;
-- a Root per organization, then every user joins :per_user organizations with a random role
INSERT INTO um.memberships (org_id, user_id, role_id)
  SELECT o.id, 1 + (o.id * 7) % :users, r.id FROM um.organizations o JOIN um.roles r ON r.org_id = o.id AND r.builtin = 'root';
INSERT INTO um.memberships (org_id, user_id, role_id)
  SELECT DISTINCT ON (x.org_id, x.user_id) x.org_id, x.user_id, r.id
    FROM (SELECT 1 + (u * 31 + i * 7919) % :orgs AS org_id, u AS user_id, (u + i) % 5 AS k
            FROM generate_series(1, :users) u, generate_series(1, :per_user) i) x
    JOIN um.roles r ON r.org_id = x.org_id
     AND r.name = (ARRAY['Member', 'Service Reader', 'Service Editor', 'Finance', 'Admin'])[x.k + 1]
  ON CONFLICT (org_id, user_id) DO NOTHING;
-- a small scope tree per organization, a team, and node grants
INSERT INTO um.scopes (org_id, kind, name) SELECT id, 'project', 'Apollo' FROM um.organizations;
INSERT INTO um.scopes (org_id, parent_id, kind, name) SELECT org_id, id, 'environment', 'prod' FROM um.scopes WHERE kind = 'project';
INSERT INTO um.scopes (org_id, parent_id, kind, name, inherit) SELECT org_id, id, 'app', 'payroll', false FROM um.scopes WHERE kind = 'environment';
INSERT INTO um.grants (org_id, role_id, user_id, scope_id)
  SELECT m.org_id, r.id, m.user_id, s.id
    FROM um.memberships m JOIN um.roles r ON r.org_id = m.org_id AND r.name = 'Finance'
    JOIN um.scopes s ON s.org_id = m.org_id AND s.kind = 'project'
   WHERE m.user_id % 4 = 0;
-- as autovacuum would have by the time a deployment is this big: visibility
-- map set (index-only scans of role permissions skip the heap), statistics
VACUUM ANALYZE;
SQL
echo "loaded in $(( $(date +%s) - t0 ))s"

psql -X -q -v ON_ERROR_STOP=1 -v pairs="$PAIRS" -v repeat="$REPEAT" -v cache_memory="$CACHE_MEMORY" <<'SQL'
SET client_min_messages = warning;
SET um.cache_memory_limit = :'cache_memory';
\pset footer off
SELECT (SELECT count(*) FROM um.users) AS users, (SELECT count(*) FROM um.organizations) AS organizations,
       (SELECT count(*) FROM um.memberships) AS memberships, (SELECT count(*) FROM um.roles) AS roles,
       (SELECT count(*) FROM um.role_permissions) AS role_permissions, (SELECT count(*) FROM um.grants) AS grants,
       (SELECT count(*) FROM um.scopes) AS scope_nodes \gx

-- the checks: distinct (user, organization) pairs of active memberships, a permission each
SELECT setseed(0.5);
CREATE TEMP TABLE pairs AS
  SELECT m.user_id AS u, m.org_id AS o,
         (ARRAY['invoice:read', 'service:create', 'billing:read', 'fleet:update', 'member:invite'])[1 + floor(random() * 5)::int] AS p,
         (SELECT s.id FROM um.scopes s WHERE s.org_id = m.org_id AND s.kind = 'app') AS sc
    FROM um.memberships m ORDER BY random() LIMIT :pairs;
CREATE TEMP TABLE rows AS SELECT p.* FROM pairs p, generate_series(1, :repeat);
CREATE TEMP TABLE ref_rows AS SELECT * FROM pairs LIMIT 2000;
ANALYZE pairs; ANALYZE rows; ANALYZE ref_rows;

CREATE TEMP TABLE results (n int, method text, checks bigint, seconds float8);
-- best of three; cold: empty the cache before each run
CREATE FUNCTION pg_temp.measure(n int, method text, q text, checks bigint, cold boolean DEFAULT false) RETURNS void LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz; best float8 := NULL; r int; s float8;
BEGIN
  FOR r IN 1 .. 3 LOOP
    IF cold THEN PERFORM um_cache_reset(); END IF;
    t0 := clock_timestamp();
    EXECUTE q;
    s := extract(epoch FROM clock_timestamp() - t0);
    best := least(coalesce(best, s), s);
  END LOOP;
  INSERT INTO results VALUES (n, method, checks, best);
END $$;
-- the hand-written join check SQL-only libraries write (exact permission names, organization role only)
CREATE FUNCTION pg_temp.sql_join_check(p_user bigint, p_perm text, p_org bigint) RETURNS boolean LANGUAGE sql STABLE AS $$
  SELECT EXISTS (SELECT 1 FROM um.memberships m JOIN um.users u ON u.id = m.user_id
                   JOIN um.role_permissions rp ON rp.role_id = m.role_id
                  WHERE m.user_id = p_user AND m.org_id = p_org AND m.status = 'active'
                    AND u.status = 'active' AND u.allow_login AND rp.permission = p_perm) $$;

SELECT count(*) AS warmup FROM pairs WHERE um_has_permission(u, p, o);
SELECT pg_temp.measure(1, 'scan + built-in call (int8eq), the floor', 'SELECT count(*) FILTER (WHERE int8eq(u, o)) FROM rows', (SELECT count(*) FROM rows));
SELECT pg_temp.measure(2, 'um_has_permission(user, perm, org), warm', 'SELECT count(*) FILTER (WHERE um_has_permission(u, p, o)) FROM rows', (SELECT count(*) FROM rows));
SELECT pg_temp.measure(3, 'um_has_permission(user, perm, org, scope), warm', 'SELECT count(*) FILTER (WHERE um_has_permission(u, p, o, sc)) FROM rows', (SELECT count(*) FROM rows));
BEGIN;
SELECT um_act_as((SELECT u FROM pairs LIMIT 1));
SELECT pg_temp.measure(4, 'um_has_permission(perm, org), acting user, warm', 'SELECT count(*) FILTER (WHERE um_has_permission(p, o)) FROM rows', (SELECT count(*) FROM rows));
COMMIT;
SELECT pg_temp.measure(5, 'um_has_permission(user, perm, org), cold', 'SELECT count(*) FILTER (WHERE um_has_permission(u, p, o)) FROM pairs', (SELECT count(*) FROM pairs), cold => true);
SELECT pg_temp.measure(6, 'um_permitted_orgs(user, perm), warm', 'SELECT sum(cardinality(um_permitted_orgs(u, p))) FROM rows', (SELECT count(*) FROM rows));
SELECT pg_temp.measure(7, 'hand-written SQL join check (no inclusions, wildcards, teams, scopes)', 'SELECT count(*) FILTER (WHERE pg_temp.sql_join_check(u, p, o)) FROM pairs', (SELECT count(*) FROM pairs));
SELECT pg_temp.measure(8, 'plain-SQL reference (um_internal.ref_has_permission)', 'SELECT count(*) FILTER (WHERE um_internal.ref_has_permission(u, p, o)) FROM ref_rows', (SELECT count(*) FROM ref_rows));
-- the companion calls once more, with the limit at half the memory they need: the cache empties and refills
SELECT um_cache_reset() AS x \gset
SELECT sum(cardinality(um_permitted_orgs(u, p))) AS x FROM pairs \gset
SELECT memory_bytes AS working_set, pg_size_pretty(memory_bytes) AS working_set_pretty FROM um_cache_stats() \gset
SELECT greatest(64, :working_set / 2048) || 'kB' AS half_limit \gset
SET um.cache_memory_limit = :'half_limit';
SELECT evictions AS evictions_before FROM um_cache_stats() \gset
-- from an empty cache each run (loads are what trigger the check against the limit)
SELECT pg_temp.measure(9, 'um_permitted_orgs(user, perm), limit at half the working set', 'SELECT sum(cardinality(um_permitted_orgs(u, p))) FROM pairs', (SELECT count(*) FROM pairs), cold => true);
SELECT evictions - :evictions_before AS half_limit_evictions, pg_size_pretty(memory_bytes) AS at_bound FROM um_cache_stats() \gset
-- the same limit, under uniform random access to the pairs (each five times, shuffled): what
-- partial eviction allows is a hit ratio near limit / working set
CREATE TEMP TABLE uniform AS SELECT u, p FROM pairs, generate_series(1, 5) ORDER BY random();
SELECT um_cache_reset() AS x \gset
SELECT sum(cardinality(um_permitted_orgs(u, p))) AS x FROM uniform \gset
SELECT hits AS h0, misses AS m0 FROM um_cache_stats() \gset
SELECT pg_temp.measure(10, 'um_permitted_orgs(user, perm), limit at half the working set, uniform random access', 'SELECT sum(cardinality(um_permitted_orgs(u, p))) FROM uniform', (SELECT count(*) FROM uniform));
SELECT round((hits - :h0)::numeric / nullif(hits - :h0 + misses - :m0, 0), 3) AS uniform_hit_ratio FROM um_cache_stats() \gset
SET um.cache_memory_limit = :'cache_memory';
SELECT um_cache_reset() AS x \gset

SELECT count(*) FROM rows WHERE um_has_permission(u, p, o, sc);   -- fill the cache as a long-lived backend would
\echo
\echo '== checks per second, one backend (best of three runs)'
WITH r AS (SELECT *, checks / seconds AS rate FROM results)
SELECT r.method, r.checks, round(r.seconds::numeric, 3) AS seconds,
       to_char(r.rate, 'FM999,999,999,990') AS "checks/s",
       to_char(r.rate / (SELECT rate FROM r WHERE n = 8), 'FM999,999,990.0') || 'x' AS "vs SQL reference",
       to_char(r.rate / (SELECT rate FROM r WHERE n = 7), 'FM999,999,990.0') || 'x' AS "vs SQL join",
       round((1e9 / r.rate)::numeric) AS "ns/check",
       CASE WHEN n BETWEEN 2 AND 4 THEN round(((1e9 / r.rate) - 1e9 / (SELECT rate FROM r WHERE n = 1))::numeric) END AS "ns above floor"
  FROM r ORDER BY n;
\echo 'rows 2-8: um.cache_memory_limit =' :cache_memory '(CACHE_MEMORY); the companion calls over the checked pairs need' :working_set_pretty 'of cache;'
\echo 'row 9: with the limit at' :half_limit 'from an empty cache, one pass: entries dropped' :half_limit_evictions 'times; it held' :at_bound 'at the end.'
\echo 'row 10: the same limit, every pair five times in random order: hit ratio' :uniform_hit_ratio '(the working set is twice the limit).'
\echo
\echo '== the backend''s cache after these checks'
SELECT pg_size_pretty(memory_bytes) AS memory, pg_size_pretty(memory_limit_bytes) AS "limit (um.cache_memory_limit)",
       evictions, users, members, organizations, scope_memos, permissions, hits, misses, queries FROM um_cache_stats();
SQL

echo
echo "== identity: establishing who is acting, and logging in"
psql -X -q -v ON_ERROR_STOP=1 <<'SQL'
SET client_min_messages = warning;
\pset footer off
SET um.login_max_failures = 1000;       -- measure failures, not the lockout
UPDATE um.users SET email_verified_at = now() WHERE id <= 20;
SELECT count(um_set_password(id, 'bench-password-' || id, false)) AS n FROM um.users WHERE id <= 20 \gset
SELECT um_login('user1@bench.example', 'bench-password-1') AS token \gset
CREATE TEMP TABLE id_results (n int, operation text, calls int, seconds float8);
-- each a loop of static statements (no EXECUTE, whose parsing would dominate)
CREATE FUNCTION pg_temp.t_set_config(n int) RETURNS void LANGUAGE plpgsql AS
  $$ BEGIN FOR i IN 1 .. n LOOP PERFORM set_config('app.user_id', '42', true); END LOOP; END $$;
CREATE FUNCTION pg_temp.t_act_as(n int) RETURNS void LANGUAGE plpgsql AS
  $$ BEGIN FOR i IN 1 .. n LOOP PERFORM um_act_as(42); END LOOP; END $$;
CREATE FUNCTION pg_temp.t_begin(n int, tok text) RETURNS void LANGUAGE plpgsql AS
  $$ BEGIN FOR i IN 1 .. n LOOP PERFORM um_begin(tok); END LOOP; END $$;
CREATE FUNCTION pg_temp.t_login(n int) RETURNS void LANGUAGE plpgsql AS
  $$ BEGIN FOR i IN 1 .. n LOOP PERFORM um_login('user2@bench.example', 'bench-password-2'); END LOOP; END $$;
CREATE FUNCTION pg_temp.t_refused(n int) RETURNS void LANGUAGE plpgsql AS
  $$ BEGIN FOR i IN 1 .. n LOOP
       BEGIN PERFORM um_login('user3@bench.example', 'wrong password'); EXCEPTION WHEN sqlstate 'UM060' THEN NULL; END;
     END LOOP; END $$;
CREATE FUNCTION pg_temp.id_measure(n int, operation text, calls int, f text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz; best float8; s float8;
BEGIN
  FOR r IN 1 .. 3 LOOP
    t0 := clock_timestamp();
    EXECUTE f USING calls;
    s := extract(epoch FROM clock_timestamp() - t0);
    best := least(coalesce(best, s), s);
  END LOOP;
  INSERT INTO id_results VALUES (n, operation, calls, best);
END $$;
BEGIN;
SELECT pg_temp.id_measure(1, 'set_config(''app.user_id'', ...): what SQL-only libraries trust (forgeable)', 20000, 'SELECT pg_temp.t_set_config($1)') AS x \gset
SELECT pg_temp.id_measure(2, 'um_act_as(user): a trusted backend names the user', 20000, 'SELECT pg_temp.t_act_as($1)') AS x \gset
SELECT pg_temp.id_measure(3, 'um_begin(token): a session token, checked against the live state', 20000,
                          format('SELECT pg_temp.t_begin($1, %L)', :'token')) AS x \gset
COMMIT;
SELECT um_login('user4@bench.example', 'bench-password-4') AS token2 \gset
UPDATE um.sessions SET assurance_level = 2 WHERE token_hash = sha256(convert_to(:'token2', 'UTF8'));
CREATE FUNCTION pg_temp.t_totp(n int, s bytea) RETURNS void LANGUAGE plpgsql AS
  $$ BEGIN FOR i IN 1 .. n LOOP PERFORM um_internal.totp_match(s, '000000', NULL); END LOOP; END $$;
BEGIN;
SELECT pg_temp.id_measure(6, 'um_begin(token) of a level-2 session (a second factor proven)', 20000,
                          format('SELECT pg_temp.t_begin($1, %L)', :'token2')) AS x \gset
SELECT pg_temp.id_measure(7, 'a TOTP code checked (three HMAC-SHA1 steps, constant time)', 20000,
                          format('SELECT pg_temp.t_totp($1, %L::bytea)', um_internal.totp_secret())) AS x \gset
COMMIT;
SELECT pg_temp.id_measure(4, 'um_login(email, password): bcrypt cost ' || current_setting('um.password_hash_cost') || ', the audit writer, a session row', 5, 'SELECT pg_temp.t_login($1)') AS x \gset
SELECT pg_temp.id_measure(5, 'refused um_login: the same bcrypt and audit writer (fail closed)', 5, 'SELECT pg_temp.t_refused($1)') AS x \gset
SELECT operation, calls, round((seconds * 1e6 / calls)::numeric, 1) AS "us/call",
       to_char(calls / seconds, 'FM999,999,990') AS "calls/s",
       round(((seconds / calls) / (SELECT seconds / calls FROM id_results WHERE n = 1))::numeric, 1) || 'x' AS "vs set_config"
  FROM id_results ORDER BY n;
SQL

echo
echo "== lifecycle: a Root acting through um's functions, against the same change by hand (um's triggers only)"
# One change per transaction, as an application makes them, through pgbench
# (one client, LC_SECONDS each, prepared statements, each change in a
# transaction block).  um's transaction also names the acting user
# (um_act_as), as a real request does.  synchronous_commit is off on
# both sides, so the ratio is the work of the call, not the WAL flush a
# durable commit adds to both.
LC_SECONDS=${LC_SECONDS:-10}
PGBENCH=$("$PG_CONFIG" --bindir)/pgbench
lc=$(mktemp -d /tmp/um-bench-lifecycle.XXXXXX)
chmod 755 "$lc"
read -r o root member editor reader team < <(psql -X -qAt -F ' ' -v ON_ERROR_STOP=1 <<'SQL'
SET client_min_messages = warning;
SELECT m.org_id AS o, m.user_id AS root FROM um.memberships m JOIN um.roles r ON r.id = m.role_id
 WHERE r.builtin = 'root' AND (SELECT count(*) FROM um.memberships x WHERE x.org_id = m.org_id) >= 3
 ORDER BY m.org_id LIMIT 1 \gset
SELECT m.user_id AS member FROM um.memberships m JOIN um.roles r ON r.id = m.role_id
 WHERE m.org_id = :o AND r.builtin IS DISTINCT FROM 'root' ORDER BY m.user_id LIMIT 1 \gset
BEGIN;
SELECT um_act_as(:root) AS a \gset
SELECT um_create_team(:o, 'Bench team', owner_user_id => :root) AS team \gset
COMMIT;
SELECT :o, :root, :member, (SELECT id FROM um.roles WHERE org_id = :o AND builtin = 'service_editor'),
       (SELECT id FROM um.roles WHERE org_id = :o AND builtin = 'service_reader'), :team;
SQL
)
printf '%s\n' '\set r random(0, 1)' 'BEGIN;' \
  "UPDATE um.memberships SET role_id = CASE WHEN :r = 0 THEN $editor ELSE $reader END WHERE org_id = $o AND user_id = $member;" 'COMMIT;' \
  > "$lc/raw_role.sql"
printf '%s\n' '\set r random(0, 1)' 'BEGIN;' "SELECT um_act_as($root);" \
  "SELECT um_set_org_role($o, $member, CASE WHEN :r = 0 THEN 'Service Editor' ELSE 'Service Reader' END);" 'COMMIT;' \
  > "$lc/um_role.sql"
printf '%s\n' 'BEGIN;' "INSERT INTO um.team_members (org_id, team_id, user_id) VALUES ($o, $team, $member);" 'COMMIT;' \
  'BEGIN;' "DELETE FROM um.team_members WHERE team_id = $team AND user_id = $member;" 'COMMIT;' \
  > "$lc/raw_team.sql"
printf '%s\n' 'BEGIN;' "SELECT um_act_as($root);" "SELECT um_add_team_member($team, $member);" 'COMMIT;' \
  'BEGIN;' "SELECT um_act_as($root);" "SELECT um_remove_team_member($team, $member);" 'COMMIT;' \
  > "$lc/um_team.sql"
lc_run() {   # a script: the average latency of one pass, in ms
  (cd "$lc" && PGOPTIONS='-c synchronous_commit=off' "$PGBENCH" -n -M prepared -c 1 -T "$LC_SECONDS" -f "$lc/$1" "$PGDATABASE") 2>&1 \
    | awk '/latency average/ {print $4}'
}
raw_role=$(lc_run raw_role.sql); um_role=$(lc_run um_role.sql)
raw_team=$(lc_run raw_team.sql); um_team=$(lc_run um_team.sql)
rm -rf "$lc"
psql -X -q -v ON_ERROR_STOP=1 -v raw_role="$raw_role" -v um_role="$um_role" -v raw_team="$raw_team" -v um_team="$um_team" <<'SQL'
\pset footer off
SELECT operation, round(ms * 1000, 1) AS "us/pass", to_char(1000 / ms, 'FM999,990') AS "passes/s",
       CASE WHEN base IS NOT NULL THEN round(ms / base, 2) || 'x' END AS "vs by hand"
  FROM (VALUES (1, 'change a member''s role by hand (UPDATE um.memberships, um''s triggers)', :raw_role::numeric, NULL::numeric),
               (2, 'um_act_as + um_set_org_role: permission, Root guard, escalation guard, audit', :um_role, :raw_role),
               (3, 'add and remove a team member by hand (two transactions)', :raw_team, NULL),
               (4, 'um_act_as + um_add_team_member, then um_act_as + um_remove_team_member (two transactions)', :um_team, :raw_team))
       AS t(n, operation, ms, base)
 ORDER BY n;
SQL

echo
echo "== password reset requests, one per transaction through pgbench: a known address against unknown ones"
# What an attacker timing the HTTP layer sees, if the handler waits for the
# call: a known address writes a request (a new one each time here:
# um.password_reset_interval is 0), an unknown one only its audit event, a
# known one asked again too soon neither.  Twenty verified addresses each.
pr=$(mktemp -d /tmp/um-bench-reset.XXXXXX)
chmod 755 "$pr"
printf '%s\n' '\set u random(1, 20)' "SELECT um_request_password_reset('user' || :u || '@bench.example');" > "$pr/known.sql"
printf '%s\n' '\set u random(1, 20)' "SELECT um_request_password_reset('nobody' || :u || '@bench.example');" > "$pr/unknown.sql"
pr_run() {   # script, interval: the average latency of one call, in ms
  (cd "$pr" && PGOPTIONS="-c um.password_reset_interval=$2" "$PGBENCH" -n -M prepared -c 1 -T "$LC_SECONDS" -f "$pr/$1" "$PGDATABASE") 2>&1 \
    | awk '/latency average/ {print $4}'
}
pr_known=$(pr_run known.sql 0); pr_unknown=$(pr_run unknown.sql 0); pr_soon=$(pr_run known.sql 86400)
rm -rf "$pr"
psql -X -q -v ON_ERROR_STOP=1 -v known="$pr_known" -v unknown="$pr_unknown" -v soon="$pr_soon" <<'SQL'
\pset footer off
SELECT operation, round((ms * 1000)::numeric, 1) AS "us/call", round((ms / :known)::numeric, 2) || 'x' AS "vs known"
  FROM (VALUES (1, 'known address: a new link and code, stored', :known::float8),
               (2, 'unknown address: nothing to mail', :unknown::float8),
               (3, 'known address asked again too soon: nothing to mail', :soon::float8)) AS r(n, operation, ms)
 ORDER BY n;
SQL
psql -X -q -v ON_ERROR_STOP=1 -v o="$o" -v root="$root" <<'SQL'
SET client_min_messages = warning;
\pset footer off
CREATE FUNCTION pg_temp.um_invite100(n int, o bigint) RETURNS void LANGUAGE plpgsql AS
  $$ BEGIN FOR i IN 1 .. n LOOP
       PERFORM count(*) FROM um_invite(o, (SELECT string_agg(format('bench-%s-%s@invite.example', i, g), ', ') FROM generate_series(1, 100) g));
       UPDATE um.invitations SET state = 'revoked', token_hash = NULL WHERE org_id = o AND state = 'pending';
     END LOOP; END $$;
BEGIN;
SELECT um_act_as(:root) AS a \gset
SELECT clock_timestamp() AS t0 \gset
SELECT pg_temp.um_invite100(5, :o) AS x \gset
SELECT 'um_invite of 100 addresses, one transaction (per address)' AS operation,
       round((extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) * 1e6 / 500)::numeric, 1) AS "us/call";
COMMIT;
SQL

echo
# one round of L, P, N and C over the invoices table as it is laid out now
rls_round() {
  local base=$1 suffix=$2
  cat <<SQL
-- L: no RLS applies (the table owner), the tenant filter written by hand
SELECT pg_temp.rls_measure($((base + 1)), 'L$suffix', 'none: WHERE org_id IN (1, 500)', 'SELECT sum(amount) FROM invoices WHERE org_id IN (1, 500)', 7) \\gset
-- P: one call, um_protect_table
SELECT um_protect_table('invoices', 'org_id', 'invoice') \\gset
SET ROLE bench_reader;
BEGIN;
SELECT um_act_as(:reporter) \\gset
SELECT pg_temp.rls_measure($((base + 2)), 'P$suffix', 'um_protect_table(''invoices'', ''org_id'', ''invoice'')', 'SELECT sum(amount) FROM invoices', 7) \\gset
COMMIT;
RESET ROLE;
SELECT um_unprotect_table('invoices') \\gset
ALTER TABLE invoices ENABLE ROW LEVEL SECURITY;
-- N: the natural per-row policy
CREATE POLICY read_n ON invoices FOR SELECT TO bench_reader USING (um_has_permission('invoice:read', org_id));
SET ROLE bench_reader;
BEGIN;
SELECT um_act_as(:reporter) \\gset
SELECT pg_temp.rls_measure($((base + 3)), 'N$suffix', 'USING (um_has_permission(''invoice:read'', org_id))', 'SELECT sum(amount) FROM invoices', 7) \\gset
COMMIT;
RESET ROLE;
DROP POLICY read_n ON invoices;
-- C: the companion policy
CREATE POLICY read_c ON invoices FOR SELECT TO bench_reader USING (org_id = ANY (um_permitted_orgs('invoice:read')));
SET ROLE bench_reader;
BEGIN;
SELECT um_act_as(:reporter) \\gset
SELECT pg_temp.rls_measure($((base + 4)), 'C$suffix', 'USING (org_id = ANY (um_permitted_orgs(''invoice:read'')))', 'SELECT sum(amount) FROM invoices', 7) \\gset
COMMIT;
RESET ROLE;
DROP POLICY read_c ON invoices;
SQL
}

echo "== reporting under RLS: $RLS_ROWS invoices over 1,000 organizations of Zipf-like sizes"
{
cat <<'SQL'
SET client_min_messages = warning;
\pset footer off
-- organization k of the first thousand holds a share of rows proportional to 1/k (log-uniform ranks)
CREATE TABLE invoices (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, org_id bigint NOT NULL, amount numeric(12,2) NOT NULL);
SELECT setseed(0.25) \gset
INSERT INTO invoices (org_id, amount)
  SELECT least(1000, floor(exp(random() * ln(1000)))::bigint), round((random() * 1000)::numeric, 2)
    FROM generate_series(1, :rows);
CREATE INDEX invoices_org_id_idx ON invoices (org_id);
VACUUM ANALYZE invoices;
-- the reader: Finance (invoice:read) in organization 1 (the largest) and 500 (a small one)
SELECT um_create_user('reporter@bench.example') AS reporter \gset
INSERT INTO um.memberships (org_id, user_id, role_id)
  SELECT r.org_id, :reporter, r.id FROM um.roles r WHERE r.name = 'Finance' AND r.org_id IN (1, 500);
CREATE ROLE bench_reader;
GRANT SELECT ON invoices TO bench_reader;
GRANT EXECUTE ON FUNCTION um_act_as(bigint) TO bench_reader;
-- what SQL-only libraries write: a per-row helper (SECURITY DEFINER, so the reader needs no access to um)
CREATE FUNCTION public.sql_can_read(p_org bigint) RETURNS boolean LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = pg_catalog AS $$
  SELECT EXISTS (SELECT 1 FROM um.memberships m JOIN um.users u ON u.id = m.user_id
                   JOIN um.role_permissions rp ON rp.role_id = m.role_id
                  WHERE m.user_id = public.um_current_user_id() AND m.org_id = p_org AND m.status = 'active'
                    AND u.status = 'active' AND rp.permission IN ('invoice:read', 'invoice:*', '*:read', '*')) $$;
GRANT EXECUTE ON FUNCTION public.sql_can_read(bigint) TO bench_reader;
ALTER TABLE invoices ENABLE ROW LEVEL SECURITY;
SELECT count(*) AS rows_of_org_1 FROM invoices WHERE org_id = 1 \gset
SELECT count(*) AS rows_of_org_500 FROM invoices WHERE org_id = 500 \gset
\echo 'the reader sees organization 1 (' :rows_of_org_1 'rows) and organization 500 (' :rows_of_org_500 'rows)'

CREATE TEMP TABLE rls_results (n int, variant text, policy text, median_ms float8, total numeric, plan text);
GRANT ALL ON rls_results TO bench_reader;
CREATE FUNCTION pg_temp.rls_measure(n int, variant text, policy text, q text, runs int) RETURNS void LANGUAGE plpgsql AS $f$
DECLARE t0 timestamptz; times float8[] := '{}'; total numeric; plan text; line text;
BEGIN
  EXECUTE q INTO total;                                -- warm up
  FOR r IN 1 .. runs LOOP
    t0 := clock_timestamp();
    EXECUTE q INTO total;
    times := times || extract(epoch FROM clock_timestamp() - t0) * 1000;
  END LOOP;
  FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP
    IF line ~ 'Scan' THEN plan := coalesce(plan || ' / ', '') || btrim(regexp_replace(line, '^[ ->]*', '')); END IF;
  END LOOP;
  INSERT INTO rls_results VALUES (n, variant, policy,
    (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FROM unnest(times) x), total, plan);
END $f$;
GRANT EXECUTE ON FUNCTION pg_temp.rls_measure(int, text, text, text, int) TO bench_reader;

SQL
rls_round 0 ""
cat <<'SQL'
-- S: a per-row plain-SQL helper, as SQL-only libraries write it (one timed run: it is slow)
CREATE POLICY read_s ON invoices FOR SELECT TO bench_reader USING (public.sql_can_read(org_id));
SET ROLE bench_reader;
BEGIN;
SELECT um_act_as(:reporter) \gset
SELECT pg_temp.rls_measure(5, 'S', 'USING (sql_can_read(org_id)), a per-row SQL helper', 'SELECT sum(amount) FROM invoices', 1) \gset
COMMIT;
RESET ROLE;
DROP POLICY read_s ON invoices;

-- the same rows stored by organization (CLUSTER): an organization's rows are together
CLUSTER invoices USING invoices_org_id_idx;
VACUUM ANALYZE invoices;
SQL
rls_round 10 " (by org)"
cat <<'SQL'
\echo '== median time of the report, and its ratio to L of the same layout (targets: P/L and N/L <= 1.1 on both)'
SELECT variant, policy, round(median_ms::numeric, 1) AS median_ms,
       round((median_ms / (SELECT median_ms FROM rls_results b WHERE b.n = (r.n / 10) * 10 + 1))::numeric, 2) AS "ratio to L",
       total = (SELECT total FROM rls_results b WHERE b.n = 1) AS "same sum", plan
  FROM rls_results r ORDER BY n;
SQL
} | psql -X -q -v ON_ERROR_STOP=1 -v rows="$RLS_ROWS"
