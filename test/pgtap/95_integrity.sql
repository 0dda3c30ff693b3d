-- um_check_integrity(): clean after normal use; each broken invariant found.
-- The invariants are broken with session_replication_role = replica, which
-- skips the triggers and foreign keys that normally keep them (as a bulk load
-- or a faulty replication could).
BEGIN;
\ir fixture.psql
SELECT plan(24);
SELECT pg_temp.org('acme') AS acme, pg_temp.org('globex') AS globex, pg_temp.usr('ada') AS ada,
       pg_temp.usr('bob') AS bob, pg_temp.usr('carol') AS carol, pg_temp.usr('dave') AS dave \gset
INSERT INTO um.scopes (org_id, kind, name) VALUES (:acme, 'project', 'Apollo') RETURNING id AS apollo \gset
INSERT INTO um.scopes (org_id, parent_id, kind, name) VALUES (:acme, :apollo, 'environment', 'prod') RETURNING id AS prod \gset
INSERT INTO um.roles (org_id, name) VALUES (:acme, 'A'), (:acme, 'B');
INSERT INTO um.role_inclusions (org_id, role_id, included_role_id) VALUES (:acme, pg_temp.role('acme', 'A'), pg_temp.role('acme', 'B'));
INSERT INTO um.teams (org_id, name) VALUES (:acme, 'Platform') RETURNING id AS platform \gset
INSERT INTO um.team_members (org_id, team_id, user_id, is_owner) VALUES (:acme, :platform, :carol, true), (:acme, :platform, :dave, false);
INSERT INTO um.grants (org_id, role_id, user_id, scope_id) VALUES (:acme, pg_temp.role('acme', 'A'), :dave, :apollo);
INSERT INTO um.teams (org_id, name) VALUES (:globex, 'Globex team') RETURNING id AS globex_team \gset

SELECT is((SELECT count(*) FROM um_check_integrity()), 0::bigint, 'after normal use, nothing to report');
SELECT ok(NOT has_function_privilege('public', 'um_check_integrity()', 'EXECUTE'), 'it is for administrators');

SET LOCAL session_replication_role = replica;
DELETE FROM um.memberships WHERE org_id = :acme AND user_id = :ada;
DELETE FROM um.roles WHERE org_id = :globex AND builtin = 'service_editor';
UPDATE um.memberships SET role_id = pg_temp.role('globex', 'member') WHERE org_id = :acme AND user_id = :dave;
UPDATE um.scopes SET parent_id = :prod WHERE id = :apollo;
INSERT INTO um.role_inclusions (org_id, role_id, included_role_id) VALUES (:acme, pg_temp.role('acme', 'B'), pg_temp.role('acme', 'A'));
UPDATE um.team_members SET is_owner = false WHERE team_id = :platform;
INSERT INTO um.team_members (org_id, team_id, user_id) VALUES (:acme, :platform, :bob);
INSERT INTO um.grants (org_id, role_id, user_id) VALUES (:acme, pg_temp.role('acme', 'B'), :bob);
INSERT INTO um.sessions (user_id, token_hash, expires_at) VALUES (:bob, '\x00', now() + interval '1 hour');
-- references to rows that are gone or belong to another organization
INSERT INTO um.roles (org_id, name) VALUES (:acme, 'C') RETURNING id AS role_c \gset
INSERT INTO um.scopes (org_id, kind, name) VALUES (:acme, 'project', 'Gone') RETURNING id AS gone \gset
INSERT INTO um.grants (org_id, role_id, user_id, scope_id) VALUES (:acme, pg_temp.role('acme', 'B'), :carol, :apollo) RETURNING id AS carol_grant \gset
INSERT INTO um.role_permissions (org_id, role_id, permission) VALUES (:acme, :role_c, 'org:read');
INSERT INTO um.role_inclusions (org_id, role_id, included_role_id) VALUES (:acme, :role_c, pg_temp.role('globex', 'member'));
INSERT INTO um.invitations (org_id, email, role_id, team_id, token_hash, expires_at)
  VALUES (:acme, 'x@example.com', pg_temp.role('globex', 'admin'), :globex_team, '\x01', now() + interval '1 day') RETURNING id AS bad_invitation \gset
INSERT INTO um.identity_providers (org_id, name, protocol, issuer) VALUES (:globex, 'Okta', 'oidc', 'https://globex.example') RETURNING id AS globex_idp \gset
INSERT INTO um.user_identities (org_id, provider_id, subject, user_id) VALUES (:acme, :globex_idp, 'sub-1', 999998);
INSERT INTO um.memberships (org_id, user_id, role_id) VALUES (:globex, 999999, pg_temp.role('globex', 'member'));
DELETE FROM um.roles WHERE id = :role_c;
DELETE FROM um.scopes WHERE id = :gone;
UPDATE um.grants SET scope_id = :gone WHERE id = :carol_grant;
INSERT INTO um.password_resets (user_id, token_hash, code_hash, expires_at) VALUES (:bob, '\x02', '\x03', now() + interval '1 hour');
INSERT INTO um.email_changes (user_id, new_email, expires_at) VALUES (:bob, 'bob@elsewhere.example', now() + interval '1 day');
UPDATE um.users SET status = 'suspended', suspended_at = now() WHERE id = :bob;
RESET session_replication_role;

CREATE TEMP TABLE found AS SELECT * FROM um_check_integrity();
SELECT is((SELECT string_agg(object, ', ' ORDER BY object) FROM found WHERE invariant = 'secrets of blocked users are void'),
          format('email change of user %s, password reset of user %s', :bob, :bob),
          'a reset and an email change outstanding for a suspended user (the trigger bypassed)');
SELECT is((SELECT count(*) FROM found WHERE invariant = 'organization has a Root' AND object LIKE '%(acme)'), 1::bigint,
          'an organization whose Root was removed');
SELECT is((SELECT detail FROM found WHERE invariant = 'organization has its built-in roles'), 'missing: service_editor',
          'a deleted built-in role');
SELECT is((SELECT count(*) FROM found WHERE invariant = 'membership role in the same organization'), 1::bigint,
          'a membership with another organization''s role');
SELECT is((SELECT count(*) FROM found WHERE invariant = 'scope tree has no cycle'), 2::bigint, 'a scope cycle (both nodes)');
SELECT is((SELECT count(*) FROM found WHERE invariant = 'role inclusions have no cycle'), 2::bigint, 'a role-inclusion cycle (both roles)');
SELECT is((SELECT detail FROM found WHERE invariant = 'team has an owner'), '3 members, 0 owners', 'a team without its owner');
SELECT is((SELECT detail FROM found WHERE invariant = 'team members belong to the organization'),
          format('user %s is not a member of organization %s', :bob, :acme), 'a team member outside the organization');
SELECT is((SELECT detail FROM found WHERE invariant = 'grant targets in the same organization' AND object <> 'grant ' || :carol_grant),
          format('user %s is not a member', :bob), 'a grant to a non-member');
SELECT ok((SELECT detail FROM found WHERE invariant = 'sessions of blocked users are ended') LIKE '%suspended%',
          'an open session of a suspended user');
SELECT is((SELECT detail FROM found WHERE invariant = 'grant targets in the same organization' AND object = 'grant ' || :carol_grant),
          format('scope node %s is missing or of another organization', :gone), 'a grant on a deleted scope node');
SELECT is((SELECT array_agg(detail ORDER BY detail) FROM found WHERE invariant = 'role permission of an existing role'),
          ARRAY[format('the role is missing from organization %s; 1 permission rows remain', :acme),
                format('the role is missing from organization %s; 24 permission rows remain', :globex)],
          'the permissions of deleted roles, one row per role');
SELECT is((SELECT count(*) FROM found WHERE invariant = 'role inclusion in the same organization'), 1::bigint,
          'an inclusion of a deleted role and of another organization''s role');
SELECT is((SELECT detail FROM found WHERE invariant = 'invitation targets in the same organization'),
          format('role %s is missing or of another organization; team %s is missing or of another organization', pg_temp.role('globex', 'admin'), :globex_team),
          'an invitation with another organization''s role and team');
SELECT is((SELECT detail FROM found WHERE invariant = 'identity link to a provider of the organization and an existing user'),
          format('provider %s is missing or of another organization; user 999998 is missing', :globex_idp),
          'an identity link to another organization''s provider, for a missing user');
SELECT is((SELECT detail FROM found WHERE invariant = 'membership of an existing user'), 'user 999999 is missing', 'a membership of a missing user');
SELECT is((SELECT string_agg(object, ', ') FROM found WHERE invariant = 'organization has a Root who can log in'),
          format('organization %s (globex)', :globex),
          'an organization whose only Root was suspended by a direct write (no Root who can log in)');
SELECT is((SELECT count(*) FROM found), 21::bigint, 'and nothing else');

-- um's own tables as um.state_tables describes them: a superuser who turns
-- off a table's protection or a cache trigger, or adds a table to um
-- without registering it, is told
SET LOCAL session_replication_role = origin;
ALTER TABLE um.memberships NO FORCE ROW LEVEL SECURITY;
ALTER TABLE um.grants DISABLE TRIGGER cache_invalidate;
ALTER TABLE um.roles ENABLE TRIGGER cache_invalidate_truncate;  -- ORIGIN instead of ALWAYS
DROP TRIGGER cache_invalidate ON um.scopes;
CREATE TRIGGER cache_invalidate AFTER INSERT OR UPDATE OR DELETE ON um.scopes
  FOR EACH ROW EXECUTE FUNCTION um_internal.cache_invalidate('user:org_id');   -- the wrong key
ALTER TABLE um.scopes ENABLE ALWAYS TRIGGER cache_invalidate;
CREATE TABLE um.stray (id int);
CREATE TEMP TABLE found2 AS SELECT * FROM um_check_integrity() WHERE object LIKE 'table um.%';
SELECT is((SELECT detail FROM found2 WHERE invariant = 'um table keeps forced row-level security'),
          'row-level security is off or not forced', 'a um table whose row-level security is no longer forced');
SELECT is((SELECT array_agg(object || ': ' || detail ORDER BY object, detail) FROM found2 WHERE invariant = 'permission cache learns of every change'),
          ARRAY['table um.grants: trigger cache_invalidate is missing, not enabled ALWAYS or not a row trigger with the table''s cache_key',
                'table um.roles: trigger cache_invalidate_truncate is missing, not enabled ALWAYS or not a TRUNCATE trigger',
                'table um.scopes: trigger cache_invalidate is missing, not enabled ALWAYS or not a row trigger with the table''s cache_key'],
          'a cache trigger disabled, one enabled in the wrong mode, one with the wrong key');
SELECT is((SELECT object FROM found2 WHERE invariant = 'um table is registered'), 'table um.stray', 'a table in um that is not registered');
SELECT is((SELECT count(*) FROM found2), 5::bigint, 'and nothing else about um''s tables');

SELECT * FROM finish();
ROLLBACK;
