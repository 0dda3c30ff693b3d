BEGIN;
\ir fixture.psql
SELECT plan(72);

-- acme: ada (Root), carol (Admin), dave (Member); globex: bob (Root), dave (Service Reader)
SELECT um_register_permission('invoice:read') \gset
SELECT um_register_permission('invoice:approve') \gset
SELECT um_register_permission('report:read') \gset
CREATE FUNCTION pg_temp.can(who text, perm text, org text, scope bigint DEFAULT NULL) RETURNS boolean LANGUAGE sql AS $$
  SELECT CASE WHEN scope IS NULL THEN um_has_permission(pg_temp.usr(who), perm, pg_temp.org(org))
              ELSE um_has_permission(pg_temp.usr(who), perm, pg_temp.org(org), scope) END $$;
CREATE FUNCTION pg_temp.ref(who text, perm text, org text, scope bigint DEFAULT NULL) RETURNS boolean LANGUAGE sql AS $$
  SELECT um_internal.ref_has_permission(pg_temp.usr(who), perm, pg_temp.org(org), scope) $$;

-- the organization role
SELECT ok(pg_temp.can('ada', 'billing:delete', 'acme'), 'Root may delete billing');
SELECT ok(NOT pg_temp.can('carol', 'billing:delete', 'acme'), 'Admin may not (billing RL)');
SELECT ok(pg_temp.can('carol', 'billing:read', 'acme'), 'Admin may read billing');
SELECT ok(pg_temp.can('ada', 'fleet:delete', 'acme') AND pg_temp.can('ada', 'report:read', 'acme'),
          'Root holds every permission of the catalog, the application''s too');
SELECT ok(pg_temp.can('dave', 'instance:delete', 'globex'), 'Service Reader manages instances (CRUDL)');
SELECT ok(NOT pg_temp.can('dave', 'service:create', 'globex'), 'Service Reader does not create services');
SELECT ok(NOT pg_temp.can('dave', 'instance:delete', 'acme'), 'dave is only a Member in acme: roles do not leak across organizations');
SELECT ok(NOT pg_temp.can('bob', 'org:read', 'acme'), 'a non-member is denied');

-- denials
SELECT ok(NOT um_has_permission(NULL::bigint, 'org:read', pg_temp.org('acme')), 'no user: denied');
SELECT ok(NOT um_has_permission(pg_temp.usr('ada'), 'org:read', NULL), 'no organization: denied');
SELECT ok(NOT um_has_permission(pg_temp.usr('ada'), 'org:read', pg_temp.org('acme'), NULL), 'a NULL scope node: denied');
SELECT ok(NOT um_has_permission(987654, 'org:read', pg_temp.org('acme')), 'an unknown user: denied');
SELECT ok(NOT um_has_permission(pg_temp.usr('ada'), 'org:read', 987654), 'an unknown organization: denied');
SELECT is(um_has_permission(NULL::bigint, NULL, NULL), false, 'all NULL: false, never NULL');
SELECT throws_ok($$ SELECT um_has_permission(pg_temp.usr('ada'), 'invoice:pay', pg_temp.org('acme')) $$, 'UM011',
                 'unknown permission "invoice:pay"', 'an unknown permission is an error');
SELECT throws_ok($$ SELECT um_has_permission(NULL::bigint, 'invoice:pay', NULL) $$, 'UM011', NULL,
                 'even when nobody is acting');
SELECT throws_ok($$ SELECT um_has_permission(pg_temp.usr('ada'), 'Invoice:Read', pg_temp.org('acme')) $$, 'UM010', NULL,
                 'an invalid name is an error');
SELECT throws_ok($$ SELECT um_has_permission(pg_temp.usr('ada'), 'invoice:*', pg_temp.org('acme')) $$, 'UM010', NULL,
                 'a check names one permission, not a pattern');
UPDATE um.users SET status = 'suspended' WHERE email = 'carol@example.com';
SELECT ok(NOT pg_temp.can('carol', 'org:read', 'acme'), 'a suspended user is denied');
UPDATE um.users SET status = 'active' WHERE email = 'carol@example.com';
SELECT ok(pg_temp.can('carol', 'org:read', 'acme'), 'reactivation restores access (next statement, same transaction)');
UPDATE um.users SET allow_login = false WHERE email = 'carol@example.com';
SELECT ok(NOT pg_temp.can('carol', 'org:read', 'acme'), 'a notification-only user holds no permissions');
UPDATE um.users SET allow_login = true WHERE email = 'carol@example.com';
UPDATE um.memberships SET status = 'suspended' WHERE user_id = pg_temp.usr('dave') AND org_id = pg_temp.org('globex');
SELECT ok(NOT pg_temp.can('dave', 'instance:read', 'globex'), 'a suspended membership is denied');
SELECT ok(pg_temp.can('dave', 'org:read', 'acme'), 'in that organization only');
UPDATE um.memberships SET status = 'active' WHERE user_id = pg_temp.usr('dave') AND org_id = pg_temp.org('globex');

-- custom roles, inclusions, wildcards
INSERT INTO um.roles (org_id, name) VALUES (pg_temp.org('acme'), 'Clerk'), (pg_temp.org('acme'), 'Finance'), (pg_temp.org('acme'), 'Auditor');
INSERT INTO um.role_permissions (org_id, role_id, permission) VALUES
  (pg_temp.org('acme'), pg_temp.role('acme', 'clerk'), 'invoice:read'),
  (pg_temp.org('acme'), pg_temp.role('acme', 'finance'), 'invoice:approve'),
  (pg_temp.org('acme'), pg_temp.role('acme', 'auditor'), '*:read');
INSERT INTO um.role_inclusions (org_id, role_id, included_role_id) VALUES
  (pg_temp.org('acme'), pg_temp.role('acme', 'finance'), pg_temp.role('acme', 'clerk')),
  (pg_temp.org('acme'), pg_temp.role('acme', 'clerk'), pg_temp.role('acme', 'member'));
UPDATE um.memberships SET role_id = pg_temp.role('acme', 'finance') WHERE user_id = pg_temp.usr('dave') AND org_id = pg_temp.org('acme');
SELECT ok(pg_temp.can('dave', 'invoice:approve', 'acme'), 'a role grants its own permissions');
SELECT ok(pg_temp.can('dave', 'invoice:read', 'acme'), 'and those of the roles it includes');
SELECT ok(pg_temp.can('dave', 'team:list', 'acme'), 'transitively (Finance > Clerk > Member)');
SELECT ok(NOT pg_temp.can('dave', 'report:read', 'acme'), 'and nothing else');
INSERT INTO um.grants (org_id, role_id, user_id) VALUES (pg_temp.org('acme'), pg_temp.role('acme', 'auditor'), pg_temp.usr('dave'));
SELECT ok(pg_temp.can('dave', 'report:read', 'acme'), 'an organization-wide grant adds a role: *:read covers report:read');
SELECT ok(pg_temp.can('dave', 'billing:read', 'acme'), '*:read covers billing:read');
SELECT ok(NOT pg_temp.can('dave', 'billing:update', 'acme'), '*:read does not cover billing:update');
INSERT INTO um.role_permissions (org_id, role_id, permission) VALUES (pg_temp.org('acme'), pg_temp.role('acme', 'clerk'), 'billing:*');
SELECT ok(pg_temp.can('dave', 'billing:delete', 'acme'), 'billing:* covers billing:delete, through an inclusion');
INSERT INTO um.role_permissions (org_id, role_id, permission) VALUES (pg_temp.org('acme'), pg_temp.role('acme', 'member'), '*');
SELECT ok(pg_temp.can('dave', 'fleet:delete', 'acme'), '* covers everything');
DELETE FROM um.role_permissions WHERE permission = '*';
SELECT ok(NOT pg_temp.can('dave', 'fleet:delete', 'acme'), 'and its removal takes effect at the next statement');

-- scopes: grants flow down the tree, stop at a node that breaks inheritance, union with kind grants
INSERT INTO um.scopes (org_id, kind, name) VALUES (pg_temp.org('acme'), 'project', 'Apollo') RETURNING id AS apollo \gset
INSERT INTO um.scopes (org_id, parent_id, kind, name) VALUES (pg_temp.org('acme'), :apollo, 'environment', 'prod') RETURNING id AS prod \gset
INSERT INTO um.scopes (org_id, parent_id, kind, name, inherit) VALUES (pg_temp.org('acme'), :prod, 'dashboard_group', 'Payroll', false) RETURNING id AS payroll \gset
INSERT INTO um.scopes (org_id, parent_id, kind, name) VALUES (pg_temp.org('acme'), :payroll, 'dashboard_group', 'Salaries') RETURNING id AS salaries \gset
INSERT INTO um.scopes (org_id, kind, name) VALUES (pg_temp.org('acme'), 'project', 'Zephyr') RETURNING id AS zephyr \gset
INSERT INTO um.scopes (org_id, kind, name) VALUES (pg_temp.org('globex'), 'project', 'Zeus') RETURNING id AS zeus \gset
INSERT INTO um.roles (org_id, name) VALUES (pg_temp.org('acme'), 'Deployer') RETURNING id AS deployer \gset
INSERT INTO um.role_permissions (org_id, role_id, permission) VALUES (pg_temp.org('acme'), :deployer, 'service:update');
INSERT INTO um.grants (org_id, role_id, user_id, scope_id) VALUES (pg_temp.org('acme'), :deployer, pg_temp.usr('dave'), :apollo);
SELECT ok(NOT pg_temp.can('dave', 'service:update', 'acme'), 'a grant on a node does not apply organization-wide');
SELECT ok(pg_temp.can('dave', 'service:update', 'acme', :apollo), 'it applies on the node');
SELECT ok(pg_temp.can('dave', 'service:update', 'acme', :prod), 'and below it');
SELECT ok(NOT pg_temp.can('dave', 'service:update', 'acme', :payroll), 'but not at a node that breaks inheritance');
SELECT ok(NOT pg_temp.can('dave', 'service:update', 'acme', :salaries), 'nor below it');
SELECT ok(NOT pg_temp.can('dave', 'service:update', 'acme', :zephyr), 'nor on a sibling');
SELECT ok(pg_temp.can('dave', 'invoice:read', 'acme', :payroll), 'the organization role applies on every node, also behind a break');
SELECT ok(NOT pg_temp.can('dave', 'invoice:read', 'acme', :zeus), 'a node of another organization is denied');
INSERT INTO um.grants (org_id, role_id, user_id, scope_id) VALUES (pg_temp.org('acme'), :deployer, pg_temp.usr('carol'), :payroll);
SELECT ok(pg_temp.can('carol', 'service:update', 'acme', :salaries), 'a grant on the breaking node itself applies there and below');
INSERT INTO um.grants (org_id, role_id, user_id, scope_kind) VALUES (pg_temp.org('acme'), :deployer, pg_temp.usr('dave'), 'dashboard_group');
SELECT ok(pg_temp.can('dave', 'service:update', 'acme', :payroll), 'a grant on every node of a kind applies to each of them, breaking or not');
SELECT ok(pg_temp.can('dave', 'service:update', 'acme', :salaries), 'and to their descendants');
SELECT ok(NOT pg_temp.can('dave', 'service:update', 'acme', :zephyr), 'not to other kinds');

-- teams: team grants reach every member; team roles apply only in the team's space
INSERT INTO um.teams (org_id, name) VALUES (pg_temp.org('acme'), 'Platform') RETURNING id AS platform, scope_id AS space \gset
INSERT INTO um.scopes (org_id, parent_id, kind, name) VALUES (pg_temp.org('acme'), :space, 'app', 'Console') RETURNING id AS console \gset
INSERT INTO um.team_members (org_id, team_id, user_id, is_owner) VALUES (pg_temp.org('acme'), :platform, pg_temp.usr('carol'), true),
                                                                        (pg_temp.org('acme'), :platform, pg_temp.usr('dave'), false);
INSERT INTO um.team_member_roles (org_id, team_id, user_id, role_id) VALUES (pg_temp.org('acme'), :platform, pg_temp.usr('dave'), pg_temp.role('acme', 'service_editor'));
SELECT ok(pg_temp.can('dave', 'template:delete', 'acme', :space), 'a team role applies in the team''s space');
SELECT ok(pg_temp.can('dave', 'template:delete', 'acme', :console), 'and below it');
SELECT ok(NOT pg_temp.can('dave', 'template:delete', 'acme'), 'not organization-wide');
SELECT ok(NOT pg_temp.can('dave', 'template:delete', 'acme', :apollo), 'not elsewhere');
INSERT INTO um.grants (org_id, role_id, team_id, scope_id) VALUES (pg_temp.org('acme'), pg_temp.role('acme', 'auditor'), :platform, :zephyr);
SELECT ok(pg_temp.can('carol', 'report:read', 'acme', :zephyr), 'a grant to a team reaches its members');
DELETE FROM um.team_members WHERE team_id = :platform AND user_id = pg_temp.usr('dave');
SELECT ok(NOT pg_temp.can('dave', 'template:delete', 'acme', :console), 'leaving the team ends its team roles');
DELETE FROM um.grants WHERE team_id = :platform;
SELECT ok(NOT pg_temp.can('carol', 'report:read', 'acme', :zephyr), 'a revoked team grant ends at the next statement');

-- rollback: a change rolled back is never honoured
SAVEPOINT before_revoke;
DELETE FROM um.memberships WHERE user_id = pg_temp.usr('dave') AND org_id = pg_temp.org('globex');
SELECT ok(NOT pg_temp.can('dave', 'org:read', 'globex'), 'removed inside a subtransaction: denied there');
ROLLBACK TO SAVEPOINT before_revoke;
SELECT ok(pg_temp.can('dave', 'org:read', 'globex'), 'after ROLLBACK TO SAVEPOINT the membership counts again');

-- the companions
SELECT is(um_permitted_orgs(pg_temp.usr('dave'), 'org:read'), ARRAY[pg_temp.org('acme'), pg_temp.org('globex')] ,
          'um_permitted_orgs: every organization where the permission is held');
SELECT is(um_permitted_orgs(pg_temp.usr('dave'), 'instance:delete'), ARRAY[pg_temp.org('globex')], 'only those');
SELECT is(um_permitted_orgs(987654, 'org:read'), '{}'::bigint[], 'nothing for an unknown user');
SELECT is(um_permitted_scopes(pg_temp.usr('dave'), 'service:update', pg_temp.org('acme')),
          ARRAY[:apollo, :prod, :payroll, :salaries]::bigint[], 'um_permitted_scopes: the nodes where the permission is held');
SELECT is(cardinality(um_permitted_scopes(pg_temp.usr('dave'), 'invoice:read', pg_temp.org('acme'))),
          (SELECT count(*)::int FROM um.scopes WHERE org_id = pg_temp.org('acme')), 'all of them when it is held organization-wide');

-- the acting user
SELECT ok(NOT um_has_permission('org:read', pg_temp.org('acme')), 'nobody acting: denied');
SELECT um_act_as(pg_temp.usr('dave'));
SELECT is(um_current_user_id(), pg_temp.usr('dave'), 'um_act_as sets the acting user');
SELECT ok(um_has_permission('invoice:approve', pg_temp.org('acme')), 'checks answer for the acting user');
SELECT ok(um_has_permission('service:update', pg_temp.org('acme'), :prod), 'also on scope nodes');
SELECT is(um_permitted_orgs('instance:delete'), ARRAY[pg_temp.org('globex')], 'and the companions');

-- explain agrees with the check, and says why
SELECT is((SELECT outcome FROM um_explain_permission(pg_temp.usr('dave'), 'service:update', pg_temp.org('acme'), :prod) WHERE step = 'verdict'),
          'granted', 'explain: granted');
SELECT ok((SELECT bool_or(detail LIKE '%grant % on project "Apollo" to the user: role "Deployer" grants "service:update"%')
             FROM um_explain_permission(pg_temp.usr('dave'), 'service:update', pg_temp.org('acme'), :prod)),
          'explain names the grant, the node and the role');
SELECT is((SELECT detail FROM um_explain_permission(pg_temp.usr('bob'), 'org:read', pg_temp.org('acme')) WHERE step = 'verdict'),
          format('user %s is not a member of organization %s', pg_temp.usr('bob'), pg_temp.org('acme')), 'explain: why denied');
-- the cache is bounded: past um.cache_memory_limit it drops its least
-- recently used entries, never itself whole, with the same answers
CREATE TEMP TABLE bulk AS
  WITH nu AS (INSERT INTO um.users (email) SELECT format('bulk%s@example.com', g) FROM generate_series(1, 300) g RETURNING id)
  SELECT id FROM nu;
INSERT INTO um.memberships (org_id, user_id, role_id)
  SELECT o.id, b.id, r.id FROM bulk b, um.organizations o JOIN um.roles r ON r.org_id = o.id AND r.builtin = 'member';
SET LOCAL um.cache_memory_limit = '64kB';
SELECT um_cache_reset();
CREATE TEMP TABLE warm AS SELECT um_has_permission(pg_temp.usr('ada'), 'org:read', pg_temp.org('acme'));
CREATE TEMP TABLE before_many AS SELECT * FROM um_cache_stats();
CREATE TEMP TABLE fill AS SELECT um_has_permission(m.user_id, 'org:read', m.org_id) AS ok FROM um.memberships m;
CREATE TEMP TABLE many AS
  SELECT u.id AS u, o.id AS o, p.name AS p FROM um.users u, um.organizations o, um.permissions p
   WHERE u.id NOT IN (SELECT id FROM bulk);
SELECT is((SELECT count(*) FROM many WHERE um_has_permission(u, p, o) IS DISTINCT FROM um_internal.ref_has_permission(u, p, o)), 0::bigint,
          'with a tiny memory limit the answers still equal the SQL reference');
SELECT cmp_ok((SELECT evictions FROM um_cache_stats()), '>', 0::bigint, 'entries were dropped at the memory limit');
SELECT is((SELECT s.resets - b.resets FROM um_cache_stats() s, before_many b), 0::bigint, 'and the cache was never emptied whole for it');
SELECT cmp_ok((SELECT users + members FROM um_cache_stats()), '>', 0::bigint, 'it still holds entries');
SELECT cmp_ok((SELECT memory_bytes FROM um_cache_stats()), '<=', 1024 * 1024::bigint, 'and stayed small');
SELECT * FROM finish();
ROLLBACK;
