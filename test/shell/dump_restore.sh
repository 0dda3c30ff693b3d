#!/usr/bin/env bash
# test/shell/dump_restore.sh: um's user data survives pg_dump / pg_restore:
# every row, 10,000 permission checks, and the protection of an application
# table.
# Runs against the cluster test/run.sh started (PGHOST/PGPORT/PGUSER set);
# prints TAP.
set -uo pipefail
work=$(mktemp -d /tmp/um-dump.XXXXXX)
trap 'rm -rf "$work"; dropdb --if-exists um_dump_src >/dev/null 2>&1; dropdb --if-exists um_dump_dst >/dev/null 2>&1; psql -X -q -d postgres -c "DROP ROLE IF EXISTS regress_um_dump_reader" >/dev/null 2>&1' EXIT
n=0
ok()     { n=$((n+1)); echo "ok $n - $1"; }
not_ok() { n=$((n+1)); echo "not ok $n - $1"; }
# check DESCRIPTION SHELL-CONDITION [FILE-TO-SHOW-ON-FAILURE]
check()  { if eval "$2"; then ok "$1"; else not_ok "$1"; [ -n "${3:-}" ] && sed 's/^/# /' "$3"; fi; return 0; }
echo "1..16"

createdb um_dump_src
psql -X -q -v ON_ERROR_STOP=1 -d um_dump_src >"$work/setup.log" 2>&1 <<'SQL'
CREATE EXTENSION um CASCADE;
SELECT um_create_user('ada@example.com', 'Ada') AS ada \gset
SELECT um_create_user('bob@example.com', 'Bob', attributes => '{"dept": "ops"}') AS bob \gset
SELECT um_create_user('cy@example.com', 'Cy', allow_login => false) AS cy \gset
SELECT um_create_organization('acme', 'Acme', :ada) AS acme \gset
SELECT um_add_member(:acme, :bob, 'Admin');
SELECT um_add_member(:acme, :cy);
SELECT um_register_permission('invoice:read', 'Read invoices', roles => '{admin,member}');
SELECT um_register_permission('invoice:approve');
-- the application's role template: a role of its own, the root role renamed, one of um's dropped
SELECT um_set_role_template('accountant', 'Accountant', 'Keeps the books', '{invoice:*}', renamable => true);
SELECT um_set_role_template('root', 'Owner');
SELECT um_drop_role_template('service_operator');
INSERT INTO um.roles (org_id, name) VALUES (:acme, 'Approver') RETURNING id AS approver \gset
INSERT INTO um.role_permissions (org_id, role_id, permission) VALUES (:acme, :approver, 'invoice:approve'), (:acme, :approver, 'invoice:*');
INSERT INTO um.role_inclusions (org_id, role_id, included_role_id)
  SELECT :acme, :approver, id FROM um.roles WHERE org_id = :acme AND builtin = 'service_reader';
-- a node re-parented under a newer node: a child that sits before its parent on disk
INSERT INTO um.scopes (org_id, kind, name) VALUES (:acme, 'project', 'Old') RETURNING id AS old \gset
INSERT INTO um.scopes (org_id, kind, name) VALUES (:acme, 'project', 'New') RETURNING id AS new \gset
UPDATE um.scopes SET parent_id = :new, kind = 'environment' WHERE id = :old;
INSERT INTO um.teams (org_id, name) VALUES (:acme, 'Core') RETURNING id AS core \gset
INSERT INTO um.team_members (org_id, team_id, user_id, is_owner) VALUES (:acme, :core, :bob, true), (:acme, :core, :cy, false);
INSERT INTO um.team_member_roles (org_id, team_id, user_id, role_id) VALUES (:acme, :core, :cy, :approver);
INSERT INTO um.grants (org_id, role_id, user_id, scope_id) VALUES (:acme, :approver, :bob, :old);
INSERT INTO um.grants (org_id, role_id, team_id, scope_kind) VALUES (:acme, :approver, :core, 'project');
INSERT INTO um.invitations (org_id, email, role_id, token_hash, expires_at)
  VALUES (:acme, 'new@example.com', :approver, '\xdeadbeef', now() + interval '7 days');
INSERT INTO um.sessions (user_id, token_hash, expires_at) VALUES (:bob, '\xcafe', now() + interval '1 hour');
INSERT INTO um.session_activity SELECT id, now() FROM um.sessions;
INSERT INTO um.verification_tokens (user_id, token_hash, expires_at) VALUES (:cy, '\xbeef', now() + interval '1 day');
INSERT INTO um.password_resets (user_id, token_hash, code_hash, expires_at) VALUES (:cy, '\xfeed', '\xcafe', now() + interval '30 minutes');
SELECT um_declare_user_attribute('clearance', 'admin', 'what the reports policy reads');
SELECT um_update_user(:cy, attributes => '{"clearance": "high"}');
SELECT um_request_email_change('cy@new.example', :cy);
INSERT INTO um.mfa_factors (user_id, kind, name, totp_secret, confirmed_at) VALUES (:cy, 'totp', 'Phone', '\x3132333435363738393031323334353637383930', now());
INSERT INTO um.mfa_recovery_codes (user_id, code_hash) VALUES (:cy, '\xabcd');
INSERT INTO um.identity_providers (org_id, name, protocol, issuer) VALUES (:acme, 'Okta', 'oidc', 'https://acme.okta.example')
  RETURNING id AS idp \gset
INSERT INTO um.user_identities (org_id, provider_id, subject, user_id) VALUES (:acme, :idp, 'sub-123', :bob);
UPDATE um.organizations SET password_login_disabled = true WHERE id = :acme;
-- more of everything, at random, for 10,000 checks: 200 users in 30 organizations
SELECT setseed(0.42);
SELECT count(um_create_user(format('u%s@example.com', g))) FROM generate_series(1, 200) g;
SELECT count(um_create_organization(format('org-%s', g), format('Org %s', g), :ada)) FROM generate_series(1, 30) g;
INSERT INTO um.roles (org_id, name) SELECT id, 'Clerk' FROM um.organizations WHERE slug LIKE 'org-%';
INSERT INTO um.role_permissions (org_id, role_id, permission)
  SELECT org_id, id, (ARRAY['invoice:read', 'invoice:*', '*:read', 'service:create'])[1 + (id % 4)::int] FROM um.roles WHERE name = 'Clerk';
INSERT INTO um.memberships (org_id, user_id, role_id)
  SELECT DISTINCT ON (o.id, u.id) o.id, u.id,
         (SELECT r.id FROM um.roles r WHERE r.org_id = o.id AND r.name IN ('Clerk', 'Member', 'Service Reader', 'Admin')
           ORDER BY md5(r.id::text || u.id::text) LIMIT 1)
    FROM um.organizations o, um.users u
   WHERE o.slug LIKE 'org-%' AND u.email LIKE 'u%@example.com' AND random() < 0.2;
INSERT INTO um.scopes (org_id, kind, name) SELECT id, 'project', 'P' FROM um.organizations WHERE slug LIKE 'org-%';
SELECT count(um_add_org_domain(id, slug || '.example')) FROM um.organizations WHERE slug LIKE 'org-%';
INSERT INTO um.grants (org_id, role_id, user_id, scope_id)
  SELECT m.org_id, r.id, m.user_id, s.id FROM um.memberships m
    JOIN um.roles r ON r.org_id = m.org_id AND r.name = 'Clerk' JOIN um.scopes s ON s.org_id = m.org_id
   WHERE m.user_id % 3 = 0 AND r.id <> m.role_id;
UPDATE um.users SET status = 'suspended' WHERE email LIKE 'u1_@example.com';
-- an application table, protected
CREATE TABLE invoices (id bigint PRIMARY KEY, org_id bigint NOT NULL, amount numeric);
CREATE INDEX ON invoices (org_id);
INSERT INTO invoices SELECT g, (SELECT id FROM um.organizations ORDER BY id OFFSET g % 31 LIMIT 1), g FROM generate_series(1, 3000) g;
SELECT um_protect_table('invoices', 'org_id', 'invoice');
SQL
check "the source database is populated" '[ $? -eq 0 ]' "$work/setup.log"

# every row of every um table, as JSON, in a stable order (revision is a
# concurrency counter that restoring bumps, not data)
snapshot() {
  # the tables um.state_tables says pg_dump keeps, with the rows it keeps
  psql -X -A -t -F '|' -d "$1" -c "SELECT relname, coalesce(nullif(dump_filter, ''), 'WHERE true') FROM um.state_tables WHERE dump_filter IS NOT NULL ORDER BY relname" |
  while IFS='|' read -r t where; do
    echo "== $t"
    psql -X -A -t -d "$1" -c "SELECT (to_jsonb(x) - 'revision')::text AS r FROM um.$t x $where ORDER BY r"
  done
}
snapshot um_dump_src >"$work/src.txt"
empty_tables() { awk '/^== / { if (t != "" && !rows) print t; t = $2; rows = 0; next } { rows++ } END { if (!rows) print t }' "$1"; }
check "the snapshot holds rows of every um table" '[ -z "$(empty_tables "$work/src.txt")" ]' "$work/src.txt"

pg_dump -Fc -d um_dump_src -f "$work/db.dump" 2>"$work/dump.log"
check "pg_dump succeeds" '[ $? -eq 0 ]' "$work/dump.log"
check "pg_dump warns about nothing (no circular foreign keys among um's tables)" '! grep -q . "$work/dump.log"' "$work/dump.log"
pg_dump --data-only -d um_dump_src -f /dev/null 2>"$work/dump_data.log"
check "nor does a data-only pg_dump" '! grep -q . "$work/dump_data.log"' "$work/dump_data.log"
createdb um_dump_dst
pg_restore --exit-on-error -d um_dump_dst "$work/db.dump" 2>"$work/restore.log"
check "pg_restore succeeds without errors" '[ $? -eq 0 ]' "$work/restore.log"

snapshot um_dump_dst >"$work/dst.txt"
check "every row of every um table is restored as it was" 'diff -u "$work/src.txt" "$work/dst.txt" >"$work/diff.txt"' "$work/diff.txt"
check "outstanding password resets are left out (a dump must not carry a code's hash)" \
  '[ "$(psql -X -A -t -d um_dump_src -c "SELECT count(*) FROM um.password_resets")" = 1 ] && [ "$(psql -X -A -t -d um_dump_dst -c "SELECT count(*) FROM um.password_resets")" = 0 ]'
check "built-in permissions are not doubled" \
  '[ "$(psql -X -A -t -d um_dump_dst -c "SELECT count(*) FROM um.permissions")" = "$(psql -X -A -t -d um_dump_src -c "SELECT count(*) FROM um.permissions")" ]'
check "the application's role template replaces um's default (Owner, accountant, no service_operator)" \
  '[ "$(psql -X -A -t -d um_dump_dst -c "SELECT string_agg(key || '"'"'='"'"' || name || '"'"'/'"'"' || source, '"'"' '"'"' ORDER BY key) FROM um.builtin_roles WHERE key IN ('"'"'root'"'"', '"'"'accountant'"'"', '"'"'service_operator'"'"') OR source = '"'"'um'"'"'")" = "accountant=Accountant/application root=Owner/application" ]'
check "id sequences continue after the restored rows" \
  '[ "$(psql -X -A -t -d um_dump_dst -c "SELECT um_create_user('"'"'later@example.com'"'"') > (SELECT max(id) FROM um.users WHERE email <> '"'"'later@example.com'"'"')")" = t ]'
# 10,000 checks, the same on both, drawn per row with a fixed seed from the
# ids (which the restore keeps): half (member, one of their organizations, a
# node of it), a quarter (any user, any organization, a node of it), a
# quarter (any user, any organization, any node: mostly cross-organization)
checks() {
  psql -X -A -t -d "$1" <<'SQL'
SELECT setseed(0.7);
CREATE TEMP TABLE draws AS
  SELECT i, random() AS r1, random() AS r2, random() AS r3, random() AS r4 FROM generate_series(1, 10000) i;
WITH ids AS (
  SELECT (SELECT array_agg(id ORDER BY id) FROM um.users WHERE email <> 'later@example.com') AS us,  -- made after the restore
         (SELECT array_agg(id ORDER BY id) FROM um.organizations) AS os,
         (SELECT array_agg(id ORDER BY id) FROM um.scopes) AS ss,
         (SELECT array_agg(user_id ORDER BY org_id, user_id) FROM um.memberships) AS mu,
         (SELECT array_agg(org_id ORDER BY org_id, user_id) FROM um.memberships) AS mo),
picked AS (
  SELECT d.i, d.r3, d.r4,
         CASE WHEN d.i % 2 = 0 THEN ids.mu[1 + floor(d.r1 * cardinality(ids.mu))::int]
              ELSE ids.us[1 + floor(d.r1 * cardinality(ids.us))::int] END AS u,
         CASE WHEN d.i % 2 = 0 THEN ids.mo[1 + floor(d.r1 * cardinality(ids.mo))::int]
              ELSE ids.os[1 + floor(d.r2 * cardinality(ids.os))::int] END AS o,
         ids.ss
    FROM draws d, ids),
x AS (
  SELECT i, u, o,
         (ARRAY['invoice:read', 'invoice:update', 'invoice:approve', 'service:create', 'member:invite', 'org:read'])[1 + floor(r3 * 6)::int] AS p,
         CASE WHEN i % 4 = 3 THEN ss[1 + floor(r4 * cardinality(ss))::int]
              ELSE (SELECT s.id FROM um.scopes s WHERE s.org_id = picked.o ORDER BY s.id
                     OFFSET floor(r4 * (SELECT count(*) FROM um.scopes s2 WHERE s2.org_id = picked.o)) LIMIT 1) END AS s
    FROM picked)
SELECT md5(string_agg(CASE WHEN um_has_permission(u, p, o) THEN '1' ELSE '0' END
                   || CASE WHEN um_has_permission(u, p, o, s) THEN '1' ELSE '0' END, '' ORDER BY i))
       || ' ' || count(*) || ' ' || count(*) FILTER (WHERE um_has_permission(u, p, o))
       || ' ' || count(*) FILTER (WHERE um_has_permission(u, p, o, s))
       || ' ' || count(DISTINCT u) || ' ' || count(DISTINCT o) || ' ' || count(DISTINCT s)
  FROM x;
SQL
}
checks um_dump_src | tail -1 >"$work/checks-src.txt"
checks um_dump_dst | tail -1 >"$work/checks-dst.txt"
read -r _ n_checks n_granted n_scoped n_users n_orgs n_nodes <"$work/checks-src.txt"
check "10,000 checks answer the same after the restore ($n_granted granted, $n_scoped on a node; $n_users users, $n_orgs organizations, $n_nodes nodes)" \
  '[ "$n_checks" = 10000 ] && [ "$n_granted" -gt 500 ] && [ "$n_scoped" -gt 100 ] && [ "$n_users" -gt 150 ] && [ "$n_orgs" -gt 25 ] && [ "$n_nodes" -gt 25 ] && diff -q "$work/checks-src.txt" "$work/checks-dst.txt" >/dev/null' "$work/checks-dst.txt"
protection() {
  psql -X -A -t -d "$1" -c "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = 'invoices'" \
       -c "SELECT polname, polcmd, pg_get_expr(polqual, polrelid), pg_get_expr(polwithcheck, polrelid) FROM pg_policy WHERE polrelid = 'invoices'::regclass ORDER BY 1"
}
protection um_dump_src >"$work/prot-src.txt"; protection um_dump_dst >"$work/prot-dst.txt"
check "the application table is protected the same way (RLS forced, the same four policies)" \
  '[ "$(grep -c "^um_" "$work/prot-src.txt")" = 4 ] && diff -u "$work/prot-src.txt" "$work/prot-dst.txt" >"$work/prot.diff"' "$work/prot.diff"
visible() {
  psql -X -q -A -t -d "$1" <<'SQL'
SELECT id AS reader FROM um.users WHERE email = 'u3@example.com' \gset
SET ROLE regress_um_dump_reader;
BEGIN;
SELECT um_act_as(:reader) \gset
SELECT count(*) FROM invoices;
COMMIT;
SQL
}
psql -X -q -d postgres -c "DROP ROLE IF EXISTS regress_um_dump_reader" -c "CREATE ROLE regress_um_dump_reader" >/dev/null 2>&1
for db in um_dump_src um_dump_dst; do
  psql -X -q -d $db -c "GRANT SELECT ON invoices TO regress_um_dump_reader" -c "GRANT EXECUTE ON FUNCTION um_act_as(bigint) TO regress_um_dump_reader" >/dev/null
done
check "an application role sees the same rows through the policies ($(visible um_dump_src | tail -1) invoices)" \
  '[ "$(visible um_dump_src | tail -1)" = "$(visible um_dump_dst | tail -1)" ] && [ "$(visible um_dump_src | tail -1)" -gt 0 ]'
check "um_check_integrity() finds nothing wrong in the restored database" \
  '[ "$(psql -X -A -t -d um_dump_dst -c "SELECT count(*) FROM um_check_integrity()")" = 0 ]'
check "the restored rules still hold (the last Root cannot leave)" \
  '! psql -X -q -d um_dump_dst -c "DELETE FROM um.memberships m USING um.roles r WHERE r.id = m.role_id AND r.builtin = '"'"'root'"'"'" 2>/dev/null'
