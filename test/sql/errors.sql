-- Every user-facing error, as a psql user sees it: SQLSTATE, message,
-- detail and hint.  Each statement fails and changes nothing.  (try() runs a
-- statement and prints its error; psql's verbose mode would also print the
-- C source line, which changes with every edit.)
SET client_min_messages = warning;   -- CASCADE's notice depends on whether pgcrypto is already there
CREATE EXTENSION um CASCADE;
RESET client_min_messages;
CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE
  st text; msg text; det text; hnt text;
BEGIN
  EXECUTE stmt;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
  RETURN concat_ws(E'\n', st || ': ' || msg, 'DETAIL:  ' || nullif(det, ''), 'HINT:  ' || nullif(hnt, ''));
END
$f$;
CREATE FUNCTION pg_temp.usr(text) RETURNS bigint LANGUAGE sql AS $f$ SELECT id FROM um.users WHERE email = $1 || '@example.com' $f$;
CREATE FUNCTION pg_temp.org(text) RETURNS bigint LANGUAGE sql AS $f$ SELECT id FROM um.organizations WHERE slug = $1 $f$;
CREATE FUNCTION pg_temp.role(text) RETURNS bigint LANGUAGE sql AS $f$ SELECT id FROM um.roles WHERE name = $1 $f$;
CREATE FUNCTION pg_temp.scope(text) RETURNS bigint LANGUAGE sql AS $f$ SELECT id FROM um.scopes WHERE name = $1 $f$;
CREATE FUNCTION pg_temp.team(text) RETURNS bigint LANGUAGE sql AS $f$ SELECT id FROM um.teams WHERE name = $1 $f$;
\pset format unaligned
\pset tuples_only on
SELECT um_create_user('ada@example.com', 'Ada') AS ada \gset
SELECT um_create_user('bob@example.com', 'Bob') AS bob \gset
SELECT um_create_organization('acme', 'Acme', :ada) AS acme \gset
SELECT um_create_organization('globex', 'Globex', :bob) AS globex \gset
SELECT um_add_member(:acme, :bob, 'Admin') AS bob_in_acme \gset
SELECT um_create_user('carol@example.com', 'Carol') AS carol \gset

-- users
SELECT pg_temp.try($$SELECT um_create_user('not-an-address')$$);
SELECT pg_temp.try($$SELECT um_create_user('ADA@Example.com')$$);
SELECT pg_temp.try($$SELECT um_create_user('eve@example.com', ' Eve')$$);
SELECT pg_temp.try($$SELECT um_create_user('eve@example.com', timezone => 'Mars/Olympus')$$);
SELECT pg_temp.try($$SELECT um_create_user('eve@example.com', locale => 'english')$$);
SELECT pg_temp.try($$SELECT um_create_user('eve@example.com', mobile => '555-1234')$$);
SELECT pg_temp.try($$SELECT um_create_user('eve@example.com', attributes => '[1, 2]')$$);
SELECT pg_temp.try($$SELECT um_create_user(NULL)$$);

-- organizations and memberships
SELECT pg_temp.try($$SELECT um_create_organization('Bad Slug', 'Bad', pg_temp.usr('ada'))$$);
SELECT pg_temp.try($$SELECT um_create_organization('acme', 'Acme Again', pg_temp.usr('ada'))$$);
SELECT pg_temp.try($$SELECT um_create_organization('initech', 'Initech', 424242)$$);
SELECT pg_temp.try($$SELECT um_add_member(424242, pg_temp.usr('bob'))$$);
SELECT pg_temp.try($$SELECT um_add_member(pg_temp.org('acme'), pg_temp.usr('bob'), 'Overlord')$$);
SELECT pg_temp.try($$SELECT um_add_member(pg_temp.org('acme'), pg_temp.usr('ada'))$$);
SELECT pg_temp.try($$DELETE FROM um.memberships WHERE org_id = pg_temp.org('acme') AND user_id = pg_temp.usr('ada')$$);
SELECT pg_temp.try($$UPDATE um.organizations SET password_login_disabled = true WHERE id = pg_temp.org('acme')$$);

-- roles
SELECT pg_temp.try($$DELETE FROM um.roles WHERE org_id = pg_temp.org('acme') AND builtin = 'admin'$$);
SELECT pg_temp.try($$UPDATE um.roles SET name = 'Owner' WHERE org_id = pg_temp.org('acme') AND builtin = 'root'$$);
INSERT INTO um.roles (org_id, name) VALUES (:acme, 'Ops') RETURNING id AS ops \gset
INSERT INTO um.roles (org_id, name) VALUES (:acme, 'Dev') RETURNING id AS dev \gset
SELECT pg_temp.try($$INSERT INTO um.role_inclusions (org_id, role_id, included_role_id) VALUES (pg_temp.org('acme'), pg_temp.role('Ops'), pg_temp.role('Dev'))$$);
SELECT pg_temp.try($$INSERT INTO um.role_inclusions (org_id, role_id, included_role_id) VALUES (pg_temp.org('acme'), pg_temp.role('Dev'), pg_temp.role('Ops'))$$);
SELECT pg_temp.try($$INSERT INTO um.role_permissions (org_id, role_id, permission) VALUES (pg_temp.org('acme'), pg_temp.role('Ops'), 'Service:Read')$$);
SELECT pg_temp.try($$INSERT INTO um.role_permissions (org_id, role_id, permission) VALUES (pg_temp.org('acme'), pg_temp.role('Ops'), 'servce:*')$$);
SELECT pg_temp.try($$SELECT um_register_permission('invoice:read*')$$);
SELECT pg_temp.try($$DELETE FROM um.permissions WHERE name = 'service:read'$$);

-- scopes and teams
INSERT INTO um.scopes (org_id, kind, name) VALUES (:acme, 'project', 'Apollo') RETURNING id AS apollo \gset
INSERT INTO um.scopes (org_id, kind, name) VALUES (:globex, 'project', 'Zeus') RETURNING id AS zeus \gset
SELECT pg_temp.try($$INSERT INTO um.scopes (org_id, parent_id, kind, name) VALUES (pg_temp.org('acme'), pg_temp.scope('Zeus'), 'environment', 'prod')$$);
INSERT INTO um.scopes (org_id, parent_id, kind, name) VALUES (:acme, :apollo, 'environment', 'prod') RETURNING id AS prod \gset
SELECT pg_temp.try($$UPDATE um.scopes SET parent_id = pg_temp.scope('prod') WHERE id = pg_temp.scope('Apollo')$$);
SELECT pg_temp.try($$INSERT INTO um.scopes (org_id, kind, name) VALUES (pg_temp.org('acme'), 'Project', 'Bad kind')$$);
INSERT INTO um.teams (org_id, name) VALUES (:acme, 'Core') RETURNING id AS core \gset
SELECT pg_temp.try($$INSERT INTO um.team_members (org_id, team_id, user_id, is_owner) VALUES (pg_temp.org('acme'), pg_temp.team('Core'), pg_temp.usr('carol'), true)$$);
SELECT pg_temp.try($$INSERT INTO um.team_members (org_id, team_id, user_id, is_owner) VALUES (pg_temp.org('acme'), pg_temp.team('Core'), pg_temp.usr('ada'), true)$$);
SELECT pg_temp.try($$INSERT INTO um.team_members (org_id, team_id, user_id, is_owner) VALUES (pg_temp.org('acme'), pg_temp.team('Core'), pg_temp.usr('bob'), true)$$);
SELECT pg_temp.try($$INSERT INTO um.team_members (org_id, team_id, user_id) VALUES (pg_temp.org('acme'), pg_temp.team('Core'), pg_temp.usr('bob'))$$);
SELECT pg_temp.try($$DELETE FROM um.team_members WHERE team_id = pg_temp.team('Core')$$);
SELECT pg_temp.try($$DELETE FROM um.memberships WHERE org_id = pg_temp.org('acme') AND user_id = pg_temp.usr('ada')$$);

-- audit
SELECT pg_temp.try($$UPDATE um.audit_events SET action = 'forged'$$);
SELECT pg_temp.try($$DELETE FROM um.audit_events$$);
SELECT pg_temp.try($$TRUNCATE um.audit_events$$);

-- the permission-name parser
SELECT pg_temp.try($$SELECT um_permission_matches('service:*', 'service')$$);
SELECT pg_temp.try($$SELECT um_permission_matches('service:*', 'service:')$$);
SELECT pg_temp.try($$SELECT um_permission_matches('service:*', ':read')$$);
SELECT pg_temp.try($$SELECT um_permission_matches('service:*', 'service:read:all')$$);
SELECT pg_temp.try($$SELECT um_permission_matches('service:*', 'service:*')$$);
SELECT pg_temp.try($$SELECT um_permission_matches('serv*:read', 'service:read')$$);
SELECT pg_temp.try($$SELECT um_permission_matches('service:*', '1service:read')$$);
SELECT pg_temp.try($$SELECT um_permission_matches('service:*', 'service:re ad')$$);
SELECT pg_temp.try($$SELECT um_permission_matches('service:*', 'service_:read')$$);
SELECT pg_temp.try($$SELECT um_permission_matches('service:*', repeat('a', 64) || ':read')$$);

-- the evaluator
SELECT pg_temp.try($$SELECT um_has_permission(pg_temp.usr('ada'), 'invoice:pay', pg_temp.org('acme'))$$);
SELECT pg_temp.try($$SELECT um_has_permission('Invoice:Read', pg_temp.org('acme'))$$);
SELECT pg_temp.try($$SELECT um_permitted_orgs('invoice:*')$$);
SELECT pg_temp.try($$SELECT um_act_as(NULL)$$);
SELECT pg_temp.try($$SELECT * FROM um_explain_permission(pg_temp.usr('ada'), 'nothing:here', pg_temp.org('acme'))$$);

-- identity: login, sessions, impersonation
SET um.password_hash_cost = 4;
SELECT count(um_set_password(id, 'password-of-' || split_part(email, '@', 1), false)) AS n FROM um.users \gset
SELECT um_create_user('dave@example.com', 'Dave') AS dave \gset
SELECT um_set_password(:dave, 'temporary-password') AS x \gset
SELECT um_add_member(:acme, :dave) AS x \gset
WITH w AS (UPDATE um.users SET email_verified_at = now() WHERE id <> :carol RETURNING 1) SELECT count(*) AS n FROM w \gset
SELECT pg_temp.try($$SELECT um_login('ada@example.com', 'wrong password')$$);
SELECT pg_temp.try($$SELECT um_login('nobody@example.com', 'wrong password')$$);
SELECT pg_temp.try($$SELECT um_login('carol@example.com', 'password-of-carol')$$);
SELECT pg_temp.try($$SELECT um_login('dave@example.com', 'temporary-password')$$);
SELECT pg_temp.try($$SELECT um_change_password('dave@example.com', 'temporary-password', 'short')$$);
SELECT pg_temp.try($$SELECT um_change_password('dave@example.com', 'temporary-password', 'temporary-password')$$);
SELECT pg_temp.try(format($$SELECT um_change_password('dave@example.com', 'temporary-password', %L)$$, repeat('x', 73)));
WITH w AS (UPDATE um.users SET status = 'suspended' WHERE id = :bob RETURNING 1) SELECT count(*) AS n FROM w \gset
SELECT pg_temp.try($$SELECT um_login('bob@example.com', 'password-of-bob')$$);
WITH w AS (UPDATE um.users SET status = 'active', allow_login = false WHERE id = :bob RETURNING 1) SELECT count(*) AS n FROM w \gset
SELECT pg_temp.try($$SELECT um_login('bob@example.com', 'password-of-bob')$$);
WITH w AS (UPDATE um.users SET allow_login = true WHERE id = :bob RETURNING 1) SELECT count(*) AS n FROM w \gset
WITH w AS (INSERT INTO um.identity_providers (org_id, name, protocol, issuer)
                           VALUES (:globex, 'Globex SSO', 'oidc', 'https://sso.globex.example') RETURNING 1) SELECT count(*) AS n FROM w \gset
WITH w AS (UPDATE um.organizations SET password_login_disabled = true WHERE id = :globex RETURNING 1) SELECT count(*) AS n FROM w \gset
SELECT pg_temp.try($$SELECT um_login('bob@example.com', 'password-of-bob')$$);
SELECT pg_temp.try($$SELECT um_begin('not a token')$$);
SELECT pg_temp.try($$SELECT um_begin('um_' || repeat('A', 43))$$);
SELECT um_login('ada@example.com', 'password-of-ada') AS ada_token \gset
SELECT um_logout(:'ada_token') AS x \gset
SELECT pg_temp.try(format('SELECT um_begin(%L)', :'ada_token'));
SELECT pg_temp.try(format('SELECT um_logout_all(%s)', :ada));
SELECT pg_temp.try(format('SELECT um_impersonate(%s)', :ada));
BEGIN;
SELECT um_act_as(:dave) AS x \gset
SELECT pg_temp.try(format('SELECT um_impersonate(%s)', :carol));
SELECT pg_temp.try(format('SELECT um_impersonate(%s)', :bob));
SELECT pg_temp.try(format('SELECT um_logout_all(%s)', :ada));
COMMIT;
BEGIN;
SELECT um_act_as(:ada) AS x \gset
SELECT pg_temp.try(format('SELECT um_impersonate(%s)', :bob));
SELECT pg_temp.try(format('SELECT um_impersonate(%s)', :ada));
SELECT pg_temp.try($$SELECT um_set_password(1, 'x')$$);
COMMIT;
DROP EXTENSION um;
