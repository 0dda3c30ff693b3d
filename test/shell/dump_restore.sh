#!/usr/bin/env bash
# test/shell/dump_restore.sh: um's user data survives pg_dump / pg_restore.
# Runs against the cluster test/run.sh started (PGHOST/PGPORT/PGUSER set);
# prints TAP.
set -uo pipefail
work=$(mktemp -d /tmp/um-dump.XXXXXX)
trap 'rm -rf "$work"; dropdb --if-exists um_dump_src >/dev/null 2>&1; dropdb --if-exists um_dump_dst >/dev/null 2>&1' EXIT
n=0
ok()     { n=$((n+1)); echo "ok $n - $1"; }
not_ok() { n=$((n+1)); echo "not ok $n - $1"; }
# check DESCRIPTION SHELL-CONDITION [FILE-TO-SHOW-ON-FAILURE]
check()  { if eval "$2"; then ok "$1"; else not_ok "$1"; [ -n "${3:-}" ] && sed 's/^/# /' "$3"; fi; return 0; }
echo "1..8"

createdb um_dump_src
psql -X -q -v ON_ERROR_STOP=1 -d um_dump_src >"$work/setup.log" 2>&1 <<'SQL'
CREATE EXTENSION um CASCADE;
SELECT um_create_user('ada@example.com', 'Ada') AS ada \gset
SELECT um_create_user('bob@example.com', 'Bob', attributes => '{"dept": "ops"}') AS bob \gset
SELECT um_create_user('cy@example.com', 'Cy', allow_login => false) AS cy \gset
SELECT um_create_organization('acme', 'Acme', :ada) AS acme \gset
SELECT um_add_member(:acme, :bob, 'Admin');
SELECT um_add_member(:acme, :cy);
SELECT um_register_permission('invoice:read', 'Read invoices');
SELECT um_register_permission('invoice:approve');
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
INSERT INTO um.identity_providers (org_id, name, protocol, issuer) VALUES (:acme, 'Okta', 'oidc', 'https://acme.okta.example')
  RETURNING id AS idp \gset
INSERT INTO um.user_identities (org_id, provider_id, subject, user_id) VALUES (:acme, :idp, 'sub-123', :bob);
UPDATE um.organizations SET password_login_disabled = true WHERE id = :acme;
SQL
check "the source database is populated" '[ $? -eq 0 ]' "$work/setup.log"

# every row of every um table, as JSON, in a stable order (revision is a
# concurrency counter that restoring bumps, not data)
snapshot() {
  for t in organizations users roles role_inclusions permissions role_permissions scopes memberships \
           teams team_members team_member_roles grants invitations sessions identity_providers \
           user_identities audit_events; do
    echo "== $t"
    where=true; [ "$t" = permissions ] && where="NOT builtin"   # built-in ones come with CREATE EXTENSION
    psql -X -A -t -d "$1" -c "SELECT (to_jsonb(x) - 'revision')::text AS r FROM um.$t x WHERE $where ORDER BY r"
  done
}
snapshot um_dump_src >"$work/src.txt"
empty_tables() { awk '/^== / { if (t != "" && !rows) print t; t = $2; rows = 0; next } { rows++ } END { if (!rows) print t }' "$1"; }
check "the snapshot holds rows of every um table" '[ -z "$(empty_tables "$work/src.txt")" ]' "$work/src.txt"

pg_dump -Fc -d um_dump_src -f "$work/db.dump" 2>"$work/dump.log"
check "pg_dump succeeds" '[ $? -eq 0 ]' "$work/dump.log"
createdb um_dump_dst
pg_restore --exit-on-error -d um_dump_dst "$work/db.dump" 2>"$work/restore.log"
check "pg_restore succeeds without errors" '[ $? -eq 0 ]' "$work/restore.log"

snapshot um_dump_dst >"$work/dst.txt"
check "every row of every um table is restored as it was" 'diff -u "$work/src.txt" "$work/dst.txt" >"$work/diff.txt"' "$work/diff.txt"
check "built-in permissions are not doubled" \
  '[ "$(psql -X -A -t -d um_dump_dst -c "SELECT count(*) FROM um.permissions")" = "$(psql -X -A -t -d um_dump_src -c "SELECT count(*) FROM um.permissions")" ]'
check "id sequences continue after the restored rows" \
  '[ "$(psql -X -A -t -d um_dump_dst -c "SELECT um_create_user('"'"'later@example.com'"'"') > (SELECT max(id) FROM um.users WHERE email <> '"'"'later@example.com'"'"')")" = t ]'
check "the restored rules still hold (the last Root cannot leave)" \
  '! psql -X -q -d um_dump_dst -c "DELETE FROM um.memberships m USING um.roles r WHERE r.id = m.role_id AND r.builtin = '"'"'root'"'"'" 2>/dev/null'
