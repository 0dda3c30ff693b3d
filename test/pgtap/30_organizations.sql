BEGIN;
\ir fixture.psql
SELECT plan(36);

-- a new organization: its creator is Root, it has the six built-in roles
SELECT results_eq($$ SELECT email, role FROM um.member_list WHERE org = 'acme' ORDER BY email $$,
  $$ VALUES ('ada@example.com'::text, 'Root'::text), ('carol@example.com', 'Admin'), ('dave@example.com', 'Member') $$,
  'acme: the creator is Root, the others have the roles they were given');
SELECT results_eq($$ SELECT r.name::text, r.builtin FROM um.roles r WHERE r.org_id = pg_temp.org('globex') ORDER BY r.id $$,
  $$ VALUES ('Root'::text, 'root'::text), ('Admin', 'admin'), ('Service Editor', 'service_editor'),
            ('Service Operator', 'service_operator'), ('Service Reader', 'service_reader'), ('Member', 'member') $$,
  'every organization is seeded with the built-in roles');
SELECT is((SELECT count(DISTINCT org_id) FROM um.roles WHERE builtin = 'root'), 2::bigint,
          'each organization has roles of its own');

-- the organization role matrix (40_catalog.sql), role by role (C R U D L over the resource categories)
CREATE FUNCTION pg_temp.perms(p_role text, p_resource text) RETURNS text LANGUAGE sql AS $$
  SELECT coalesce(string_agg(upper(left(split_part(rp.permission, ':', 2), 1)), ''
           ORDER BY position(upper(left(split_part(rp.permission, ':', 2), 1)) IN 'CRUDL')), '-')
    FROM um.role_permissions rp
   WHERE rp.role_id = pg_temp.role('acme', p_role)
     AND split_part(rp.permission, ':', 1) = p_resource
     AND split_part(rp.permission, ':', 2) IN ('create', 'read', 'update', 'delete', 'list') $$;
SELECT results_eq(
  $$ SELECT r, pg_temp.perms(r, 'service'), pg_temp.perms(r, 'fleet'), pg_temp.perms(r, 'account'),
            pg_temp.perms(r, 'billing'), pg_temp.perms(r, 'plan'), pg_temp.perms(r, 'instance'), pg_temp.perms(r, 'template')
       FROM unnest(ARRAY['admin', 'service_editor', 'service_operator', 'service_reader']) WITH ORDINALITY AS t(r, n)
      ORDER BY n $$,
  $$ VALUES ('admin',            'CRUDL', 'CRUL', 'RL',    'RL',    'RL', 'CRUDL', 'CRUDL'),
            ('service_editor',   'CRUDL', 'RL',   '-',     '-',     'RL', 'CRUDL', 'CRUDL'),
            ('service_operator', 'RL',    'CRUL', '-',     '-',     'RL', 'CRUDL', 'RL'),
            ('service_reader',   'RL',    'RL',   '-',     '-',     'RL', 'CRUDL', 'RL') $$,
  'built-in roles carry exactly the seed''s CRUDL matrix');
SELECT set_eq($$ SELECT permission FROM um.role_permissions WHERE role_id = pg_temp.role('acme', 'root') $$,
  ARRAY['*'], 'Root holds every permission (the seed''s Root row and everything registered later): *, and nothing else');
SELECT set_eq($$ SELECT permission FROM um.role_permissions WHERE role_id = pg_temp.role('acme', 'admin') AND permission LIKE 'member:%' $$,
  ARRAY['member:create', 'member:read', 'member:update', 'member:delete', 'member:list', 'member:invite', 'member:remove'],
  'Admin: invite/uninvite');
SELECT is((SELECT count(*) FROM um.role_permissions WHERE role_id = pg_temp.role('acme', 'service_editor') AND permission LIKE 'member:%'
              AND permission NOT IN ('member:read', 'member:list')), 0::bigint,
          'Service Editor: no access to invitations');
SELECT set_eq($$ SELECT permission FROM um.role_permissions WHERE role_id = pg_temp.role('acme', 'member') $$,
  ARRAY['org:read', 'member:read', 'member:list', 'team:read', 'team:list'], 'Member: sees the organization only');
SELECT is((SELECT count(*) FROM um.role_permissions rp
            WHERE NOT EXISTS (SELECT 1 FROM um.permissions p WHERE um_permission_matches(rp.permission, p.name))),
          0::bigint, 'every seeded permission is in the catalog');

-- built-in permissions are editable per organization
SELECT lives_ok($$ DELETE FROM um.role_permissions WHERE role_id = pg_temp.role('acme', 'service_reader') AND permission = 'instance:delete' $$,
                'a built-in role''s permissions can be edited');
SELECT is((SELECT count(*) FROM um.role_permissions WHERE role_id = pg_temp.role('globex', 'service_reader') AND permission = 'instance:delete'),
          1::bigint, 'the edit stays in that organization');

-- creating an organization: audited, all-or-nothing
SELECT is((SELECT count(*) FROM um.audit_events WHERE action = 'organization.create'), 2::bigint, 'creating an organization is audited');
SELECT pg_temp.counts() AS before \gset
SELECT throws_ok($$ SELECT um_create_organization('acme', 'Another Acme', pg_temp.usr('bob')) $$, 'UM021',
                 'organization slug "acme" is already taken', 'slugs are unique');
SELECT throws_ok($$ SELECT um_create_organization('-acme', 'Acme', pg_temp.usr('bob')) $$, 'UM002', NULL, 'slug starting with a hyphen');
SELECT throws_ok($$ SELECT um_create_organization('ACME2', 'Acme', pg_temp.usr('bob')) $$, 'UM002', NULL, 'slug in capitals');
SELECT throws_ok($$ SELECT um_create_organization(repeat('a', 64), 'Acme', pg_temp.usr('bob')) $$, 'UM002', NULL, 'slug too long');
SELECT throws_ok($$ SELECT um_create_organization('initech', '', pg_temp.usr('bob')) $$, 'UM003', NULL, 'empty name');
SELECT throws_ok($$ SELECT um_create_organization('initech', 'Initech', NULL) $$, 'UM031', NULL, 'no root user');
UPDATE um.users SET allow_login = false WHERE email = 'carol@example.com';
SELECT throws_ok($$ SELECT um_create_organization('initech', 'Initech', pg_temp.usr('carol')) $$, 'UM050', NULL,
                 'a notification-only user cannot be Root');
UPDATE um.users SET allow_login = true, status = 'suspended' WHERE email = 'carol@example.com';
SELECT throws_ok($$ SELECT um_create_organization('initech', 'Initech', pg_temp.usr('carol')) $$, 'UM050', NULL,
                 'a suspended user cannot be Root');
UPDATE um.users SET status = 'active' WHERE email = 'carol@example.com';
SELECT throws_ok($$ SELECT um_add_member(pg_temp.org('globex'), pg_temp.usr('dave')) $$, 'UM022', NULL, 'a user is a member once');
SELECT throws_ok($$ SELECT um_add_member(pg_temp.org('globex'), pg_temp.usr('ada'), 'Nobody') $$, 'UM032', NULL, 'unknown role');
SELECT throws_ok($$ INSERT INTO um.memberships (org_id, user_id, role_id) VALUES (pg_temp.org('globex'), pg_temp.usr('ada'), pg_temp.role('acme', 'admin')) $$,
                 '23503', NULL, 'a membership cannot use another organization''s role');
SELECT is(pg_temp.counts(), :'before', 'rejected calls changed nothing');

-- an organization with members always keeps a Root
SELECT throws_ok($$ DELETE FROM um.memberships WHERE user_id = pg_temp.usr('ada') AND org_id = pg_temp.org('acme') $$, 'UM044',
                 'organization "acme" would be left without a Root', 'the last Root cannot leave while others remain');
SELECT throws_ok($$ UPDATE um.memberships SET role_id = pg_temp.role('acme', 'admin') WHERE user_id = pg_temp.usr('ada') AND org_id = pg_temp.org('acme') $$,
                 'UM044', NULL, 'the last Root cannot be demoted');
SELECT lives_ok($$ UPDATE um.memberships SET role_id = CASE WHEN user_id = pg_temp.usr('ada') THEN pg_temp.role('acme', 'admin')
                                                           ELSE pg_temp.role('acme', 'root') END
                    WHERE org_id = pg_temp.org('acme') AND user_id IN (pg_temp.usr('ada'), pg_temp.usr('carol')) $$,
                'Root passes to another member in one statement');
SELECT is((SELECT string_agg(email, ',') FROM um.member_list WHERE org = 'acme' AND role = 'Root'), 'carol@example.com', 'carol is Root now');
SELECT lives_ok($$ DELETE FROM um.memberships WHERE org_id = pg_temp.org('globex') AND user_id = pg_temp.usr('dave') $$,
                'a non-Root member leaves');
SELECT lives_ok($$ DELETE FROM um.memberships WHERE org_id = pg_temp.org('globex') $$, 'the last member, a Root, may leave an empty organization');
SELECT is((SELECT count(*) FROM um.memberships m JOIN um.roles r ON r.id = m.role_id
            WHERE r.builtin = 'root' AND m.org_id = pg_temp.org('acme')), 1::bigint, 'acme still has its Root');

-- password login cannot be disabled before an identity provider exists
SELECT throws_ok($$ UPDATE um.organizations SET password_login_disabled = true WHERE slug = 'acme' $$, 'UM045', NULL,
                 'no lock-out: password login needs an identity provider before it can be disabled');
INSERT INTO um.identity_providers (org_id, name, protocol, issuer)
VALUES (pg_temp.org('acme'), 'Okta', 'oidc', 'https://acme.okta.example');
SELECT lives_ok($$ UPDATE um.organizations SET password_login_disabled = true WHERE slug = 'acme' $$,
                'with an identity provider, password login can be disabled');
SELECT throws_ok($$ DELETE FROM um.identity_providers WHERE org_id = pg_temp.org('acme') $$, 'UM045', NULL,
                 'the last identity provider stays while password login is disabled');

-- deleting an organization removes everything it owns, and nothing else
SELECT lives_ok($$ DELETE FROM um.organizations WHERE slug = 'acme' $$, 'an organization can be deleted');
SELECT is((SELECT count(*) FROM um.roles WHERE org_id NOT IN (SELECT id FROM um.organizations))
        + (SELECT count(*) FROM um.memberships WHERE org_id NOT IN (SELECT id FROM um.organizations))
        + (SELECT count(*) FROM um.identity_providers WHERE org_id NOT IN (SELECT id FROM um.organizations)), 0::bigint,
          'its roles, memberships and identity providers went with it');
SELECT * FROM finish();
ROLLBACK;
