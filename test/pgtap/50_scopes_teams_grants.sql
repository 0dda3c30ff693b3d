BEGIN;
\ir fixture.psql
SELECT plan(38);

-- a scope tree: acme/Apollo/{prod, staging}/dashboards
INSERT INTO um.scopes (org_id, kind, name, ref) VALUES (pg_temp.org('acme'), 'project', 'Apollo', 'p-1') RETURNING id AS apollo \gset
INSERT INTO um.scopes (org_id, parent_id, kind, name) VALUES (pg_temp.org('acme'), :apollo, 'environment', 'prod') RETURNING id AS prod \gset
INSERT INTO um.scopes (org_id, parent_id, kind, name) VALUES (pg_temp.org('acme'), :apollo, 'environment', 'staging') RETURNING id AS staging \gset
INSERT INTO um.scopes (org_id, parent_id, kind, name, inherit) VALUES (pg_temp.org('acme'), :prod, 'dashboard_group', 'Finance', false) RETURNING id AS finance \gset
INSERT INTO um.scopes (org_id, kind, name) VALUES (pg_temp.org('globex'), 'project', 'Zeus') RETURNING id AS zeus \gset

SELECT pg_temp.counts() AS before \gset
SELECT throws_ok(format($$ INSERT INTO um.scopes (org_id, parent_id, kind, name) VALUES (pg_temp.org('acme'), %s, 'environment', 'x') $$, :zeus),
                 'UM046', format('scope node %s belongs to another organization', :zeus), 'a parent in another organization is refused');
SELECT throws_ok(format($$ UPDATE um.scopes SET parent_id = %s WHERE id = %s $$, :zeus, :staging), 'UM046', NULL,
                 'a node cannot be moved under another organization''s node');
SELECT throws_ok(format($$ UPDATE um.scopes SET org_id = pg_temp.org('globex') WHERE id = %s $$, :apollo), 'UM046', NULL,
                 'a node cannot move to another organization');
SELECT throws_ok($$ INSERT INTO um.scopes (org_id, parent_id, kind, name) VALUES (pg_temp.org('acme'), 999999, 'environment', 'x') $$,
                 'UM036', NULL, 'a parent that does not exist is refused (UM036: the node does not exist there)');
SELECT throws_ok(format($$ UPDATE um.scopes SET parent_id = %s WHERE id = %s $$, :finance, :apollo), 'UM041', NULL,
                 'a node cannot move under its own descendant');
SELECT throws_ok(format($$ UPDATE um.scopes SET parent_id = %s WHERE id = %s $$, :prod, :prod), 'UM041', NULL,
                 'a node cannot be its own parent');
SELECT throws_ok(format($$ INSERT INTO um.scopes (org_id, parent_id, kind, name) VALUES (pg_temp.org('acme'), %s, 'environment', 'PROD') $$, :apollo),
                 '23505', NULL, 'sibling names are unique per kind regardless of case');
SELECT throws_ok($$ INSERT INTO um.scopes (org_id, kind, name, ref) VALUES (pg_temp.org('acme'), 'project', 'Apollo 2', 'p-1') $$,
                 '23505', NULL, 'an application reference names one node per kind');
SELECT throws_ok($$ INSERT INTO um.scopes (org_id, kind, name) VALUES (pg_temp.org('acme'), 'dashboard group', 'x') $$,
                 'UM008', NULL, 'kinds are identifiers');
SELECT throws_ok($$ INSERT INTO um.scopes (id, org_id, parent_id, kind, name) OVERRIDING SYSTEM VALUE
                    VALUES (9001, pg_temp.org('acme'), 9002, 'x', 'a'), (9002, pg_temp.org('acme'), 9001, 'x', 'b') $$,
                 'UM041', NULL, 'nodes inserted together with explicit ids cannot form a cycle');
SELECT is(pg_temp.counts(), :'before', 'rejected scope changes changed nothing');
SELECT lives_ok(format($$ UPDATE um.scopes SET parent_id = %s WHERE id = %s $$, :staging, :finance), 'a node can move within its tree');

-- teams: a team space of their own; owners who are members
INSERT INTO um.teams (org_id, name) VALUES (pg_temp.org('acme'), 'Platform') RETURNING id AS platform, scope_id AS platform_space \gset
SELECT row_eq(format('SELECT org_id, kind, name, parent_id FROM um.scopes WHERE id = %s', :platform_space),
              ROW(pg_temp.org('acme'), 'team'::text, 'Platform'::text, NULL::bigint), 'a new team gets a team space');
SELECT lives_ok(format($$ INSERT INTO um.team_members (org_id, team_id, user_id, is_owner) VALUES (pg_temp.org('acme'), %s, pg_temp.usr('carol'), true),
                                                                                              (pg_temp.org('acme'), %s, pg_temp.usr('dave'), false) $$, :platform, :platform),
                'carol owns the team, dave is in it');
SELECT pg_temp.counts() AS before \gset
SELECT throws_ok(format($$ INSERT INTO um.team_members (org_id, team_id, user_id, is_owner) VALUES (pg_temp.org('acme'), %s, pg_temp.usr('bob'), false) $$, :platform),
                 '23503', NULL, 'a team member must be a member of the organization');
SELECT throws_ok(format($$ INSERT INTO um.team_members (org_id, team_id, user_id, is_owner) VALUES (pg_temp.org('globex'), %s, pg_temp.usr('bob'), true) $$, :platform),
                 '23503', NULL, 'a team owner who is not a member of the team''s organization is refused');
SELECT throws_ok(format($$ UPDATE um.team_members SET is_owner = true WHERE team_id = %s AND user_id = pg_temp.usr('dave') $$, :platform),
                 '23P01', NULL, 'a team has one owner');
SELECT throws_ok(format($$ DELETE FROM um.team_members WHERE team_id = %s AND user_id = pg_temp.usr('carol') $$, :platform),
                 'UM043', 'the owner of team "Platform" cannot be removed', 'the team owner cannot be removed');
SELECT throws_ok(format($$ UPDATE um.team_members SET is_owner = false WHERE team_id = %s $$, :platform),
                 'UM043', NULL, 'nor stripped of ownership without a successor');
SELECT throws_ok($$ DELETE FROM um.memberships WHERE org_id = pg_temp.org('acme') AND user_id = pg_temp.usr('carol') $$,
                 'UM043', NULL, 'nor removed from the organization');
SELECT throws_ok($$ INSERT INTO um.teams (org_id, name) VALUES (pg_temp.org('acme'), 'PLATFORM') $$, '23505', NULL,
                 'team names are unique per organization regardless of case');
SELECT throws_ok(format($$ INSERT INTO um.teams (org_id, name, scope_id) VALUES (pg_temp.org('acme'), 'Zeus team', %s) $$, :zeus), '23503', NULL,
                 'a team''s scope is in its own organization');
SELECT throws_ok(format($$ INSERT INTO um.team_member_roles (org_id, team_id, user_id, role_id) VALUES (pg_temp.org('acme'), %s, pg_temp.usr('dave'), pg_temp.role('globex', 'admin')) $$, :platform),
                 '23503', NULL, 'team roles come from the team''s organization');
SELECT is(pg_temp.counts(), :'before', 'rejected team changes changed nothing');
SELECT lives_ok(format($$ UPDATE um.team_members SET is_owner = (user_id = pg_temp.usr('dave')) WHERE team_id = %s $$, :platform),
                'ownership passes to another member in one statement');
SELECT lives_ok(format($$ DELETE FROM um.team_members WHERE team_id = %s AND user_id = pg_temp.usr('carol') $$, :platform),
                'the former owner can leave');
INSERT INTO um.team_member_roles (org_id, team_id, user_id, role_id) VALUES (pg_temp.org('acme'), :platform, pg_temp.usr('dave'), pg_temp.role('acme', 'service_editor'));

-- grants: to a member or a team, on a node, a kind, or the whole organization
SELECT pg_temp.counts() AS before \gset
SELECT throws_ok($$ INSERT INTO um.grants (org_id, role_id, scope_kind) VALUES (pg_temp.org('acme'), pg_temp.role('acme', 'member'), 'project') $$,
                 '23514', NULL, 'a grant has a grantee');
SELECT throws_ok(format($$ INSERT INTO um.grants (org_id, role_id, user_id, team_id) VALUES (pg_temp.org('acme'), pg_temp.role('acme', 'member'), pg_temp.usr('dave'), %s) $$, :platform),
                 '23514', NULL, 'a grant has exactly one grantee');
SELECT throws_ok(format($$ INSERT INTO um.grants (org_id, role_id, user_id, scope_id, scope_kind) VALUES (pg_temp.org('acme'), pg_temp.role('acme', 'member'), pg_temp.usr('dave'), %s, 'project') $$, :apollo),
                 '23514', NULL, 'a grant targets one node or one kind, not both');
SELECT throws_ok($$ INSERT INTO um.grants (org_id, role_id, user_id) VALUES (pg_temp.org('acme'), pg_temp.role('acme', 'member'), pg_temp.usr('bob')) $$,
                 '23503', NULL, 'only members receive grants');
SELECT throws_ok(format($$ INSERT INTO um.grants (org_id, role_id, user_id, scope_id) VALUES (pg_temp.org('acme'), pg_temp.role('acme', 'member'), pg_temp.usr('dave'), %s) $$, :zeus),
                 '23503', NULL, 'a grant''s node is in the grant''s organization');
SELECT throws_ok(format($$ INSERT INTO um.grants (org_id, role_id, user_id, scope_id) VALUES (pg_temp.org('globex'), pg_temp.role('acme', 'member'), pg_temp.usr('dave'), %s) $$, :zeus),
                 '23503', NULL, 'a grant''s role is in the grant''s organization');
SELECT is(pg_temp.counts(), :'before', 'rejected grants changed nothing');
SELECT lives_ok(format($$ INSERT INTO um.grants (org_id, role_id, user_id, scope_id) VALUES (pg_temp.org('acme'), pg_temp.role('acme', 'service_operator'), pg_temp.usr('dave'), %s);
                          INSERT INTO um.grants (org_id, role_id, team_id, scope_kind) VALUES (pg_temp.org('acme'), pg_temp.role('acme', 'service_reader'), %s, 'project');
                          INSERT INTO um.grants (org_id, role_id, user_id) VALUES (pg_temp.org('acme'), pg_temp.role('acme', 'service_editor'), pg_temp.usr('carol')) $$, :prod, :platform),
                'a node grant, a kind grant to a team, an organization-wide grant');
SELECT throws_ok(format($$ INSERT INTO um.grants (org_id, role_id, user_id, scope_id) VALUES (pg_temp.org('acme'), pg_temp.role('acme', 'service_operator'), pg_temp.usr('dave'), %s) $$, :prod),
                 '23505', NULL, 'the same grant twice is refused');

-- deleting a team takes its members, their team roles, its grants and its team space
DELETE FROM um.teams WHERE id = :platform;
SELECT is((SELECT count(*) FROM um.team_members WHERE team_id = :platform)
        + (SELECT count(*) FROM um.team_member_roles WHERE team_id = :platform)
        + (SELECT count(*) FROM um.grants WHERE team_id = :platform)
        + (SELECT count(*) FROM um.scopes WHERE id = :platform_space), 0::bigint,
          'a deleted team leaves nothing behind');
-- deleting a node takes its subtree and the grants on it
DELETE FROM um.scopes WHERE id = :apollo;
SELECT is((SELECT count(*) FROM um.scopes WHERE org_id = pg_temp.org('acme')), 0::bigint, 'a deleted node takes its subtree');
SELECT is((SELECT count(*) FROM um.grants WHERE scope_id IS NOT NULL AND org_id = pg_temp.org('acme')), 0::bigint, 'and the grants on it');
SELECT * FROM finish();
ROLLBACK;
