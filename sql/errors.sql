-- Every user-facing error of the foundation, as a psql user sees it:
-- SQLSTATE, message, detail and hint.  Each statement fails and changes nothing.
\set VERBOSITY verbose
\set SHOW_CONTEXT never
CREATE EXTENSION um;
SELECT um_create_user('ada@example.com', 'Ada') AS ada \gset
SELECT um_create_user('bob@example.com', 'Bob') AS bob \gset
SELECT um_create_organization('acme', 'Acme', :ada) AS acme \gset
SELECT um_create_organization('globex', 'Globex', :bob) AS globex \gset
SELECT um_add_member(:acme, :bob, 'Admin') AS bob_in_acme \gset
SELECT um_create_user('carol@example.com', 'Carol') AS carol \gset

-- users
SELECT um_create_user('not-an-address');
SELECT um_create_user('ADA@Example.com');
SELECT um_create_user('eve@example.com', ' Eve');
SELECT um_create_user('eve@example.com', timezone => 'Mars/Olympus');
SELECT um_create_user('eve@example.com', locale => 'english');
SELECT um_create_user('eve@example.com', mobile => '555-1234');
SELECT um_create_user('eve@example.com', attributes => '[1, 2]');
SELECT um_create_user(NULL);

-- organizations and memberships
SELECT um_create_organization('Bad Slug', 'Bad', :ada);
SELECT um_create_organization('acme', 'Acme Again', :ada);
SELECT um_create_organization('initech', 'Initech', 424242);
SELECT um_add_member(424242, :bob);
SELECT um_add_member(:acme, :bob, 'Overlord');
SELECT um_add_member(:acme, :ada);
DELETE FROM um.memberships WHERE org_id = :acme AND user_id = :ada;
UPDATE um.organizations SET password_login_disabled = true WHERE id = :acme;

-- roles
DELETE FROM um.roles WHERE org_id = :acme AND builtin = 'admin';
UPDATE um.roles SET name = 'Owner' WHERE org_id = :acme AND builtin = 'root';
INSERT INTO um.roles (org_id, name) VALUES (:acme, 'Ops') RETURNING id AS ops \gset
INSERT INTO um.roles (org_id, name) VALUES (:acme, 'Dev') RETURNING id AS dev \gset
INSERT INTO um.role_inclusions (org_id, role_id, included_role_id) VALUES (:acme, :ops, :dev);
INSERT INTO um.role_inclusions (org_id, role_id, included_role_id) VALUES (:acme, :dev, :ops);
INSERT INTO um.role_permissions (org_id, role_id, permission) VALUES (:acme, :ops, 'Service:Read');
INSERT INTO um.role_permissions (org_id, role_id, permission) VALUES (:acme, :ops, 'servce:*');
SELECT um_register_permission('invoice:read*');
DELETE FROM um.permissions WHERE name = 'service:read';

-- scopes and teams
INSERT INTO um.scopes (org_id, kind, name) VALUES (:acme, 'project', 'Apollo') RETURNING id AS apollo \gset
INSERT INTO um.scopes (org_id, kind, name) VALUES (:globex, 'project', 'Zeus') RETURNING id AS zeus \gset
INSERT INTO um.scopes (org_id, parent_id, kind, name) VALUES (:acme, :zeus, 'environment', 'prod');
INSERT INTO um.scopes (org_id, parent_id, kind, name) VALUES (:acme, :apollo, 'environment', 'prod') RETURNING id AS prod \gset
UPDATE um.scopes SET parent_id = :prod WHERE id = :apollo;
INSERT INTO um.scopes (org_id, kind, name) VALUES (:acme, 'Project', 'Bad kind');
INSERT INTO um.teams (org_id, name) VALUES (:acme, 'Core') RETURNING id AS core \gset
INSERT INTO um.team_members (org_id, team_id, user_id, is_owner) VALUES (:acme, :core, :carol, true);
INSERT INTO um.team_members (org_id, team_id, user_id, is_owner) VALUES (:acme, :core, :ada, true);
INSERT INTO um.team_members (org_id, team_id, user_id, is_owner) VALUES (:acme, :core, :bob, true);
INSERT INTO um.team_members (org_id, team_id, user_id) VALUES (:acme, :core, :bob);
DELETE FROM um.team_members WHERE team_id = :core;
DELETE FROM um.memberships WHERE org_id = :acme AND user_id = :ada;

-- audit
UPDATE um.audit_events SET action = 'forged';
DELETE FROM um.audit_events;
TRUNCATE um.audit_events;

-- the permission-name parser
SELECT um_permission_matches('service:*', 'service');
SELECT um_permission_matches('service:*', 'service:');
SELECT um_permission_matches('service:*', ':read');
SELECT um_permission_matches('service:*', 'service:read:all');
SELECT um_permission_matches('service:*', 'service:*');
SELECT um_permission_matches('serv*:read', 'service:read');
SELECT um_permission_matches('service:*', '1service:read');
SELECT um_permission_matches('service:*', 'service:re ad');
SELECT um_permission_matches('service:*', 'service_:read');
SELECT um_permission_matches('service:*', repeat('a', 64) || ':read');
DROP EXTENSION um;
