#!/usr/bin/env bash
# tools/demo.sh: see um working on a throwaway PostgreSQL cluster.
#
# Installs what is missing (Debian 12, as root), builds and installs um,
# starts a private cluster, creates two organizations with users, roles, a
# team and a scope tree, and shows them.  In a terminal it then keeps the
# cluster up so you can look around with psql; it is removed when you leave.
# UM_PORT=<port> makes the cluster listen on that port (default: a free one).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
echo "building and installing um ..."
make -s >/dev/null && make -s install >/dev/null

source tools/cluster.sh
cluster_start
createdb um_demo
export PGDATABASE=um_demo

psql -X -q -v ON_ERROR_STOP=1 <<'SQL'
\pset footer off
SET client_min_messages = warning;
CREATE EXTENSION um CASCADE;

-- people
SELECT um_create_user('ada@acme.example',    'Ada Lovelace', timezone => 'Europe/London') AS ada \gset
SELECT um_create_user('carol@acme.example',  'Carol Shaw',   timezone => 'America/Los_Angeles') AS carol \gset
SELECT um_create_user('dave@acme.example',   'Dave Cutler',  locale => 'en-US') AS dave \gset
SELECT um_create_user('erin@acme.example',   'Erin Catto') AS erin \gset
SELECT um_create_user('alerts@acme.example', 'Pager Robot',  allow_login => false) AS robot \gset
SELECT um_create_user('bob@globex.example',  'Bob Page',     mobile => '+14155550123') AS bob \gset

-- two tenants; their creators become Root
SELECT um_create_organization('acme',   'Acme Inc',    :ada) AS acme \gset
SELECT um_create_organization('globex', 'Globex Corp', :bob) AS globex \gset
SELECT um_add_member(:acme, :carol, 'Admin') \gset
SELECT um_add_member(:acme, :dave, 'Service Editor') \gset
SELECT um_add_member(:acme, :erin) \gset
SELECT um_add_member(:acme, :robot) \gset
SELECT um_add_member(:globex, :dave, 'Service Reader') \gset

-- an application permission, a custom role that includes a built-in one
SELECT um_register_permission('invoice:read', 'Read invoices') \gset
SELECT um_register_permission('invoice:approve', 'Approve invoices') \gset
INSERT INTO um.roles (org_id, name, description) VALUES (:acme, 'Finance', 'Reads and approves invoices')
  RETURNING id AS finance \gset
INSERT INTO um.role_permissions (org_id, role_id, permission) VALUES (:acme, :finance, 'invoice:*');
INSERT INTO um.role_inclusions (org_id, role_id, included_role_id)
  SELECT :acme, :finance, id FROM um.roles WHERE org_id = :acme AND builtin = 'service_reader';

-- a scope tree and a team with its own space
INSERT INTO um.scopes (org_id, kind, name) VALUES (:acme, 'project', 'Apollo') RETURNING id AS apollo \gset
INSERT INTO um.scopes (org_id, parent_id, kind, name) VALUES (:acme, :apollo, 'environment', 'production'), (:acme, :apollo, 'environment', 'staging');
INSERT INTO um.teams (org_id, name) VALUES (:acme, 'Platform') RETURNING id AS platform \gset
INSERT INTO um.team_members (org_id, team_id, user_id, is_owner) VALUES (:acme, :platform, :carol, true), (:acme, :platform, :dave, false);
INSERT INTO um.grants (org_id, role_id, user_id, scope_id) VALUES (:acme, :finance, :dave, :apollo);
RESET client_min_messages;

\echo
\echo '== Organizations (um.organization_list)'
SELECT slug, name, members, roots, teams, custom_roles FROM um.organization_list ORDER BY id;
\echo '== Who belongs where (um.member_list): dave is in both, the robot is notification-only'
SELECT org, email, name, role, allow_login FROM um.member_list ORDER BY org, email;
\echo '== The built-in roles of every organization: the seed''s CRUDL matrix'
SELECT r.name AS role,
       string_agg(format('%s:%s', res, letters), '  ' ORDER BY res) AS "resource:CRUDL"
  FROM um.roles r
  CROSS JOIN LATERAL (
    SELECT split_part(rp.permission, ':', 1) AS res,
           string_agg(upper(left(split_part(rp.permission, ':', 2), 1)), ''
                      ORDER BY strpos('CRUDL', upper(left(split_part(rp.permission, ':', 2), 1)))) AS letters
      FROM um.role_permissions rp
     WHERE rp.role_id = r.id AND split_part(rp.permission, ':', 2) IN ('create', 'read', 'update', 'delete', 'list')
       AND split_part(rp.permission, ':', 1) IN ('service', 'fleet', 'account', 'billing', 'plan', 'instance', 'template')
     GROUP BY 1) m
 WHERE r.org_id = :acme AND r.builtin IS NOT NULL
 GROUP BY r.id, r.name ORDER BY r.id;
\echo '== Acme''s custom role (um.role_permission_list)'
SELECT role, includes, permissions FROM um.role_permission_list WHERE org = 'acme' AND NOT builtin;
\echo '== Acme''s scope tree, teams and grants'
WITH RECURSIVE tree AS (
  SELECT s.id, s.name, s.kind, 0 AS depth, s.name::text AS path FROM um.scopes s WHERE s.org_id = :acme AND s.parent_id IS NULL
  UNION ALL
  SELECT c.id, c.name, c.kind, t.depth + 1, t.path || '/' || c.name FROM um.scopes c JOIN tree t ON c.parent_id = t.id)
SELECT repeat('    ', depth) || name AS node, kind,
       (SELECT string_agg(coalesce(u.email, 'team ' || tm.name) || ' as ' || r.name, ', ')
          FROM um.grants g JOIN um.roles r ON r.id = g.role_id
          LEFT JOIN um.users u ON u.id = g.user_id LEFT JOIN um.teams tm ON tm.id = g.team_id
         WHERE g.scope_id = tree.id) AS grants
  FROM tree ORDER BY path;
SELECT t.name AS team, u.email AS member, CASE WHEN tm.is_owner THEN 'owner' ELSE '' END AS " "
  FROM um.teams t JOIN um.team_members tm ON tm.team_id = t.id JOIN um.users u ON u.id = tm.user_id
 ORDER BY t.name, NOT tm.is_owner, u.email;

\echo '== Who may do what in Acme (um_has_permission, the C evaluator)'
SELECT u.email,
       um_has_permission(u.id, 'billing:update', :acme)  AS "billing:update",
       um_has_permission(u.id, 'service:create', :acme)  AS "service:create",
       um_has_permission(u.id, 'member:invite', :acme)   AS "member:invite",
       um_has_permission(u.id, 'invoice:approve', :acme) AS "invoice:approve",
       um_has_permission(u.id, 'invoice:approve', :acme, :apollo) AS "invoice:approve on Apollo"
  FROM um.users u ORDER BY u.id;
\echo '== Why may dave approve invoices on project Apollo? (um_explain_permission)'
SELECT * FROM um_explain_permission(:dave, 'invoice:approve', :acme, :apollo);
\echo '== Dave logs in; his session token makes him the acting user for one transaction'
SET um.password_hash_cost = 6;        -- quick hashes for the demo (the default is 10)
SELECT um_set_password(:dave, 'correct horse battery', must_change => false) \gset
UPDATE um.users SET email_verified_at = now() WHERE id = :dave;
SELECT um_login('dave@acme.example', 'correct horse battery') AS token \gset
SELECT left(:'token', 12) || '...' AS "token from um_login (only its SHA-256 is stored)";
BEGIN;
SELECT um_begin(:'token') \gset
SELECT um_current_user_id() AS acting, um_permitted_orgs('instance:read') AS "orgs where dave reads instances";
COMMIT;
SELECT um_current_user_id() AS "acting after COMMIT";
\echo '== Carol (Admin of Acme) impersonates erin (a Member): checks answer as erin'
BEGIN;
SELECT um_act_as(:carol) \gset
SELECT um_impersonate(:erin) AS "impersonation applies to";
SELECT um_current_user_id() AS acting, um_real_user_id() AS "really", um_has_permission('member:invite', :acme) AS "may invite?",
       um_has_permission('org:read', :acme) AS "may read the organization?";
COMMIT;
SELECT um_logout(:'token') AS "logged out";

\echo '== Lifecycle: carol (Admin) invites a batch; one invitee accepts with the emailed token'
BEGIN;
SELECT um_act_as(:carol) \gset
CREATE TEMP TABLE invited AS
  SELECT * FROM um_invite(:acme, E'ivy@acme.example; jack@acme.example\n ivy@ACME.example, dave@acme.example', 'Service Reader');
SELECT email, status, invitation_id, left(token, 12) || '...' AS token FROM invited;
COMMIT;
SELECT um_accept_invitation((SELECT token FROM invited WHERE email = 'ivy@acme.example'), 'ivy''s own password', 'Ivy') AS ivy \gset
SELECT email, role, membership, email_verified FROM um.member_list WHERE user_id = :ivy;
\echo '-- carol saw the token, so it proves nothing about the mailbox: the backend mails a verification, which ivy redeems'
SELECT um_verify_email(um_resend_verification('ivy@acme.example'), 'ivy''s own password') AS ignored \gset
SELECT email, role, membership, email_verified FROM um.member_list WHERE user_id = :ivy;
\echo '-- and exports the members (CSV, as COPY writes it)'
BEGIN;
SELECT um_act_as(:ada) \gset
COPY (SELECT user_id, email, org_role, teams FROM um_export_users(:acme)) TO STDOUT (FORMAT csv, HEADER);
COMMIT;

\echo '== The database itself keeps the rules.  Seven mistakes, seven clear refusals:'
\set ON_ERROR_STOP 0
\set VERBOSITY default
\set SHOW_CONTEXT never
\echo '-- remove Acme''s only Root'
DELETE FROM um.memberships WHERE org_id = :acme AND user_id = :ada;
\echo '-- register the same person twice, in capitals'
SELECT um_create_user('ADA@ACME.EXAMPLE');
\echo '-- make the Finance role include itself through Service Reader'
INSERT INTO um.role_inclusions (org_id, role_id, included_role_id)
  SELECT :acme, id, :finance FROM um.roles WHERE org_id = :acme AND builtin = 'service_reader';
\echo '-- carol impersonates dave, who holds invoice:* on Apollo, which she lacks (impersonation never escalates)'
BEGIN;
SELECT um_act_as(:carol) \gset
SELECT um_impersonate(:dave);
ROLLBACK;
\echo '-- carol (Admin) makes herself Root (nobody hands out permissions they lack)'
BEGIN;
SELECT um_act_as(:carol) \gset
SELECT um_set_org_role(:acme, :carol, 'Root');
ROLLBACK;
\echo '-- the administrator deletes ada, the only Root of an organization with members (GDPR erasure waits for a new Root)'
SELECT um_delete_user(:ada);
\echo '-- log in with a wrong password (the refusal is audited, and counted towards a lockout)'
SELECT um_login('dave@acme.example', 'tr0ub4dor');
\set ON_ERROR_STOP 1

\echo
\echo '== The audit trail (um.audit_events)'
SELECT id, action, outcome, org_id, target_type, target_id, actor_user_id AS actor, impersonator_user_id AS impersonator, details
  FROM um.audit_events ORDER BY id;
SQL

echo
if [ -t 0 ] && [ -t 1 ]; then
  echo "The demo cluster is running.  Look around from another terminal with:"
  echo
  echo "    psql -h $PGHOST -p $PGPORT -U postgres um_demo"
  echo
  echo "  e.g.  \\dt um.*    \\d+ um.memberships    SELECT * FROM um.member_list;"
  echo
  read -r -p "Press Enter to stop and remove the demo cluster (or type 'psql' to open psql here): " answer || true
  if [ "${answer:-}" = psql ]; then psql -X; fi
else
  echo "(Run 'bash tools/demo.sh' in a terminal to keep the demo cluster open and explore it with psql.)"
fi
