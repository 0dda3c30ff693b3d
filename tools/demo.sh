#!/usr/bin/env bash
# tools/demo.sh: see um working on a throwaway PostgreSQL cluster.
#
# Installs what is missing (Debian 12, as root), builds and installs um,
# starts a private cluster and plays an application on it: the DBA's
# migration (roles, a protected table, the application's permissions), then,
# as the backend's own role (no superuser, no grant on um's tables), two
# tenants signing up, inviting, writing invoices and each seeing only their
# own, and the refusals with their SQLSTATEs.  In a terminal it then keeps the
# cluster up so you can look around with psql; it is removed when you leave.
# UM_PORT=<port> makes the cluster listen on that port (default: a free one).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
echo "building and installing um ..."
make -s >/dev/null && make -s install >/dev/null

source tools/cluster.sh
cluster_start "um.password_hash_cost = 6"    # quick hashes for the demo (the default is 10); a superuser's setting
createdb um_demo
export PGDATABASE=um_demo

echo "== 1. The DBA's migration (a superuser: a um administrator): roles, the application's table, its permissions"
psql -X -q -v ON_ERROR_STOP=1 <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION um CASCADE;
CREATE ROLE app_owner NOLOGIN;
CREATE ROLE app_backend LOGIN NOSUPERUSER NOBYPASSRLS;
CREATE SCHEMA app AUTHORIZATION app_owner;
GRANT USAGE ON SCHEMA app TO app_backend;
-- the backend offers self-registration: it mails the secrets these return
GRANT EXECUTE ON FUNCTION um_sign_up(text, text, text, text, text), um_resend_verification(text) TO app_backend;
SET ROLE app_owner;
CREATE TABLE app.invoices (
  id bigserial PRIMARY KEY,
  org_id bigint NOT NULL,                 -- the tenant: um's policies check it
  customer text NOT NULL,
  amount numeric(12,2) NOT NULL,
  approved boolean NOT NULL DEFAULT false);
GRANT SELECT, INSERT, UPDATE, DELETE ON app.invoices TO app_backend;
GRANT USAGE ON SEQUENCE app.invoices_id_seq TO app_backend;
RESET ROLE;
-- row-level security: SELECT/INSERT/UPDATE/DELETE need invoice:read/create/update/delete in the row's organization
SELECT um_protect_table('app.invoices', 'org_id', 'invoice') AS a,
-- which built-in roles hold them, in every organization, now and later (Root holds everything)
       um_register_permission('invoice:approve', 'Approve invoices', roles => '{admin}') AS b,
       um_grant_template_permission('admin', 'invoice:*') AS c,
       um_grant_template_permission('member', 'invoice:read') AS d,
       um_grant_template_permission('member', 'invoice:create') AS e \gset
SQL
echo "   app_backend: no superuser, no BYPASSRLS, no grant on um's tables; everything below runs as it."

psql -X -q -v ON_ERROR_STOP=1 -U app_backend <<'SQL'
\pset footer off
SET client_min_messages = warning;
-- What a backend's request handlers do, as functions of this session:
-- sign up and verify (the secret is what the backend would mail) ...
CREATE FUNCTION pg_temp.sign_up(email text, password text, name text) RETURNS text LANGUAGE sql AS
  $$ SELECT um_verify_email_and_login(um_sign_up(email, password, name), password) $$;
-- ... accept an invitation as a new user, then verify the address
CREATE FUNCTION pg_temp.join(token text, email text, password text, name text) RETURNS text LANGUAGE sql AS
  $$ SELECT um_accept_invitation(token, password, name);
     SELECT um_verify_email_and_login(um_resend_verification(email), password) $$;
-- a request that may fail: its SQLSTATE, message and hint (what an API maps to an HTTP status)
CREATE FUNCTION pg_temp.attempt(q text, OUT code text, OUT message text, OUT hint text) LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE q;
  code := '00000'; message := 'ok';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, message = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
END
$$;
RESET client_min_messages;

\echo
\echo '== 2. Ada and Bob sign up; each creates an organization and becomes its Root'
SELECT pg_temp.sign_up('ada@acme.example', 'ada correct horse', 'Ada Lovelace') AS ada \gset
SELECT pg_temp.sign_up('bob@globex.example', 'bob battery staple', 'Bob Page') AS bob \gset
BEGIN; SELECT um_begin(:'ada') \gset
SELECT um_create_organization('acme', 'Acme Inc', um_current_user_id()) AS acme \gset
COMMIT;
BEGIN; SELECT um_begin(:'bob') \gset
SELECT um_create_organization('globex', 'Globex Corp', um_current_user_id()) AS globex \gset
COMMIT;
\echo '   a second sign-up for ada''s address answers exactly as the first (a secret to mail): no enumeration'
SELECT left(um_sign_up('ada@acme.example', 'guess guess guess', 'Eve'), 3) || '...' AS "um_sign_up answers";

\echo
\echo '== 3. Ada invites Carol as Admin and Dave as Member; they accept, verify, and are logged in'
BEGIN; SELECT um_begin(:'ada') \gset
SELECT token AS carol_invite FROM um_invite(:acme, 'carol@acme.example', 'Admin') \gset
SELECT token AS dave_invite FROM um_invite(:acme, 'dave@acme.example', 'Member') \gset
SELECT um_create_scope(:acme, 'project', 'Apollo', ref => 'prj-1') AS apollo \gset
COMMIT;
SELECT pg_temp.join(:'carol_invite', 'carol@acme.example', 'carol plays pong', 'Carol Shaw') AS carol \gset
SELECT pg_temp.join(:'dave_invite', 'dave@acme.example', 'dave writes kernels', 'Dave Cutler') AS dave \gset
BEGIN; SELECT um_begin(:'dave') \gset
\echo '   Dave''s organizations and what he may do in Acme (one call for the whole UI)'
SELECT slug, name, role, status FROM um_my_organizations();
SELECT string_agg(p, ' ' ORDER BY p) AS "um_my_permissions(acme)" FROM um_my_permissions(:acme) AS p;
COMMIT;

\echo
\echo '== 4. Each tenant writes invoices; PostgreSQL itself shows each only its own rows'
BEGIN; SELECT um_begin(:'ada') \gset
INSERT INTO app.invoices (org_id, customer, amount) VALUES (:acme, 'Initech', 1200.00), (:acme, 'Hooli', 80.50);
COMMIT;
BEGIN; SELECT um_begin(:'bob') \gset
INSERT INTO app.invoices (org_id, customer, amount) VALUES (:globex, 'Umbrella', 99999.99);
COMMIT;
BEGIN; SELECT um_begin(:'dave') \gset
INSERT INTO app.invoices (org_id, customer, amount) VALUES (:acme, 'Dave''s lunch', 12.00);
COMMIT;
\echo '-- as Ada (Root of Acme):'
BEGIN; SELECT um_begin(:'ada') \gset
SELECT id, org_id, customer, amount FROM app.invoices ORDER BY id;
COMMIT;
\echo '-- as Bob (Root of Globex): the same query'
BEGIN; SELECT um_begin(:'bob') \gset
SELECT id, org_id, customer, amount FROM app.invoices ORDER BY id;
COMMIT;
\echo '-- with nobody logged in:'
SELECT count(*) AS "invoices visible" FROM app.invoices;

\echo
\echo '== 5. What the database refuses, with the SQLSTATE an API maps to a status'
BEGIN; SELECT um_begin(:'dave') \gset
\echo '-- Dave (Member) approves an invoice: no invoice:update, so no row is his to change'
WITH u AS (UPDATE app.invoices SET approved = true WHERE customer = 'Initech' RETURNING id) SELECT count(*) AS "rows approved" FROM u;
\echo '-- Dave writes an invoice into Globex, where he is nobody'
SELECT * FROM pg_temp.attempt(format('INSERT INTO app.invoices (org_id, customer, amount) VALUES (%s, %L, 1)', :globex, 'mischief'));
\echo '-- Dave deletes Acme'
SELECT * FROM pg_temp.attempt(format('SELECT um_delete_organization(%s, %L)', :acme, 'acme'));
COMMIT;
BEGIN; SELECT um_begin(:'carol') \gset
\echo '-- Carol (Admin) makes herself Root'
SELECT * FROM pg_temp.attempt(format('SELECT um_set_org_role(%s, um_current_user_id(), %L)', :acme, 'Root'));
COMMIT;
BEGIN; SELECT um_begin(:'bob') \gset
\echo '-- Bob (Root of Globex) renames Acme''s project'
SELECT * FROM pg_temp.attempt(format('SELECT um_rename_scope(%s, %L)', :apollo, 'Mine'));
\echo '-- Bob sets a yes-or-no setting of Globex to a word'
SELECT * FROM pg_temp.attempt(format('SELECT um_set_org_setting(%s, %L, %L)', :globex, 'allow_invite_requests', 'yes'));
COMMIT;
\echo '-- nobody logged in: the backend itself creates an organization'
SELECT * FROM pg_temp.attempt(format('SELECT um_create_organization(%L, %L, 1)', 'rogue', 'Rogue'));
\echo '-- the backend writes um''s tables directly'
SELECT * FROM pg_temp.attempt('UPDATE um.memberships SET role_id = role_id');
\echo '-- a wrong password'
SELECT * FROM pg_temp.attempt(format('SELECT um_login(%L, %L)', 'dave@acme.example', 'tr0ub4dor'));

\echo
\echo '== 6. Acme''s audit trail, as Ada reads it (audit:read; Globex''s events are not hers)'
BEGIN; SELECT um_begin(:'ada') \gset
SELECT a.action, a.outcome, u.email AS actor, a.target_type, a.target_id
  FROM um.audit_events a LEFT JOIN um.users u ON u.id = a.actor_user_id
 WHERE a.org_id = :acme ORDER BY a.id;
COMMIT;
SQL

echo
if [ -t 0 ] && [ -t 1 ]; then
  echo "The demo cluster is running.  Look around from another terminal with:"
  echo
  echo "    psql -h $PGHOST -p $PGPORT -U postgres um_demo"
  echo
  echo "  e.g.  \\dt um.*    SELECT * FROM um.member_list;    SELECT * FROM app.invoices;"
  echo
  read -r -p "Press Enter to stop and remove the demo cluster (or type 'psql' to open psql here): " answer || true
  if [ "${answer:-}" = psql ]; then psql -X; fi
else
  echo "(Run 'bash tools/demo.sh' in a terminal to keep the demo cluster open and explore it with psql.)"
fi
