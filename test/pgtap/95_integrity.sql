-- um_check_integrity(): clean after normal use; each broken invariant found.
-- The invariants are broken with session_replication_role = replica, which
-- skips the triggers and foreign keys that normally keep them (as a bulk load
-- or a faulty replication could).
BEGIN;
\ir fixture.psql
SELECT plan(12);
SELECT pg_temp.org('acme') AS acme, pg_temp.org('globex') AS globex, pg_temp.usr('ada') AS ada,
       pg_temp.usr('bob') AS bob, pg_temp.usr('carol') AS carol, pg_temp.usr('dave') AS dave \gset
INSERT INTO um.scopes (org_id, kind, name) VALUES (:acme, 'project', 'Apollo') RETURNING id AS apollo \gset
INSERT INTO um.scopes (org_id, parent_id, kind, name) VALUES (:acme, :apollo, 'environment', 'prod') RETURNING id AS prod \gset
INSERT INTO um.roles (org_id, name) VALUES (:acme, 'A'), (:acme, 'B');
INSERT INTO um.role_inclusions (org_id, role_id, included_role_id) VALUES (:acme, pg_temp.role('acme', 'A'), pg_temp.role('acme', 'B'));
INSERT INTO um.teams (org_id, name) VALUES (:acme, 'Platform') RETURNING id AS platform \gset
INSERT INTO um.team_members (org_id, team_id, user_id, is_owner) VALUES (:acme, :platform, :carol, true), (:acme, :platform, :dave, false);
INSERT INTO um.grants (org_id, role_id, user_id, scope_id) VALUES (:acme, pg_temp.role('acme', 'A'), :dave, :apollo);

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
UPDATE um.users SET status = 'suspended', suspended_at = now() WHERE id = :bob;
RESET session_replication_role;

CREATE TEMP TABLE found AS SELECT * FROM um_check_integrity();
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
SELECT is((SELECT detail FROM found WHERE invariant = 'grant targets in the same organization'),
          format('user %s is not a member', :bob), 'a grant to a non-member');
SELECT ok((SELECT detail FROM found WHERE invariant = 'sessions of blocked users are ended') LIKE '%suspended%',
          'an open session of a suspended user');
SELECT is((SELECT count(*) FROM found), 11::bigint, 'and nothing else');

SELECT * FROM finish();
ROLLBACK;
