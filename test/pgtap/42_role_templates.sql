-- The role template (issue 16, items 1 and 2) and the role calls of item 3:
-- the application's permissions reach built-in roles of organizations made
-- before and after; the application replaces and extends the built-in
-- roles; Root holds every permission; tenants rename roles when allowed,
-- describe them, make roles include others.  Each refusal: its SQLSTATE
-- and nothing changed.  Commits (refusals by an acting user are audited by
-- the background worker, which sees committed rows only).
--   acme:   ada (Root), carol (Admin), dave (Member)
--   globex: bob (Root), dave (Service Reader)
\ir fixture.psql
\set QUIET 1
SELECT plan(52);
SET client_min_messages = error;
SELECT pg_temp.usr('ada') AS ada, pg_temp.usr('bob') AS bob, pg_temp.usr('carol') AS carol,
       pg_temp.usr('dave') AS dave, pg_temp.org('acme') AS acme, pg_temp.org('globex') AS globex \gset

-- every row of um's data tables but the audit trail, hashed
CREATE FUNCTION pg_temp.snapshot() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  t text;
  r text := '';
  h text;
BEGIN
  FOR t IN SELECT s.relname FROM um.state_tables s
            WHERE (s.dump_filter IS NOT NULL OR s.relname IN ('builtin_roles', 'builtin_role_permissions'))
              AND s.relname <> 'audit_events' ORDER BY s.relname LOOP
    EXECUTE format('SELECT md5(coalesce(string_agg(x::text, '','' ORDER BY x::text), '''')) FROM um.%I x', t) INTO h;
    r := r || h;
  END LOOP;
  RETURN md5(r);
END
$$;
-- q as user u (NULL: nobody acting): 'ok', or its SQLSTATE, " CHANGED" when a refusal changed anything
CREATE FUNCTION pg_temp.try_as(u bigint, q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  before text := pg_temp.snapshot();
  st text;
BEGIN
  BEGIN
    IF u IS NOT NULL THEN
      PERFORM um_act_as(u);
    END IF;
    EXECUTE q;
  EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE;
    RETURN st || CASE WHEN pg_temp.snapshot() <> before THEN ' CHANGED' ELSE '' END;
  END;
  RETURN 'ok';
END
$$;
CREATE FUNCTION pg_temp.can(u bigint, p text, o bigint) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  PERFORM um_act_as(u);
  RETURN um_has_permission(p, o);
END
$$;
CREATE FUNCTION pg_temp.holds(o bigint, key text) RETURNS text[] LANGUAGE sql AS $$
  SELECT array_agg(rp.permission ORDER BY rp.permission) FROM um.role_permissions rp JOIN um.roles r ON r.id = rp.role_id
   WHERE r.org_id = o AND r.builtin = key AND rp.permission LIKE 'invoice:%' $$;

-- 1. The application's permissions reach the roles it names, in every
-- organization, now and later; Root holds every permission.
SELECT um_register_permission('invoice:read', 'Read invoices', roles => '{root,admin,member}') AS ignored \gset
SELECT um_register_permission('invoice:approve', 'Approve invoices', roles => '{admin}') AS ignored \gset
SELECT is(pg_temp.holds(:acme, 'admin'), '{invoice:approve,invoice:read}', 'an existing organization''s Admin gets both');
SELECT is(pg_temp.holds(:globex, 'member'), '{invoice:read}', 'another''s Member gets what the template names');
SELECT is(pg_temp.holds(:globex, 'service_reader'), NULL, 'a role not named gets nothing');
SELECT ok(pg_temp.can(:ada, 'invoice:approve', :acme), 'Root holds a permission registered later without being named');
SELECT ok(pg_temp.can(:dave, 'invoice:read', :acme) AND NOT pg_temp.can(:dave, 'invoice:approve', :acme),
          'the next check answers from the template''s change (Member reads, does not approve)');
SELECT um_create_organization('initech', 'Initech', :bob) AS initech \gset
SELECT is(pg_temp.holds(:initech, 'admin'), '{invoice:approve,invoice:read}', 'an organization made later gets them too');
SELECT is((SELECT array_agg(permission) FROM um.role_permissions WHERE role_id = pg_temp.role('initech', 'root')), '{*}',
          'its Root holds *');
-- Root can hand out the application's permissions (the UM073 of issue 16)
SELECT is(pg_temp.try_as(:ada, format('SELECT um_create_role(%s, %L, %L)', :acme, 'Invoicing', '{invoice:*}')), 'ok',
          'a Root creates a role with invoice:*');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_create_role(%s, %L, %L)', :acme, 'Billing', '{billing:*}')), 'UM073',
          'an Admin still cannot hand out what it lacks (billing:delete)');
SELECT is(pg_temp.try_as(:ada, format('SELECT um_grant_permission(%s, %L)', pg_temp.role('acme', 'root'), 'invoice:read')), 'UM042',
          'nobody edits the root role''s permissions: it holds *');
SELECT is(pg_temp.try_as(NULL, format('SELECT um_revoke_permission(%s, %L)', pg_temp.role('acme', 'root'), '*')), 'UM042',
          'not even a um administrator takes * from it');
-- patterns in the template
SELECT um_grant_template_permission('service_editor', 'invoice:*') AS granted \gset
SELECT ok(:'granted'::boolean AND pg_temp.holds(:acme, 'service_editor') = '{invoice:*}', 'a template takes patterns');
SELECT um_register_permission('invoice:void') AS ignored \gset
SELECT ok(pg_temp.can(pg_temp.usr('dave'), 'invoice:void', :acme) = false
          AND (SELECT um_has_permission(:dave, 'invoice:void', :globex)) = false, 'Service Reader: not named, no pattern');
SELECT is(um_grant_template_permission('service_editor', 'invoice:*'), false, 'granting it again changes nothing');
SELECT is(um_revoke_template_permission('service_editor', 'invoice:*'), true, 'a pattern is taken back');
SELECT is(pg_temp.holds(:globex, 'service_editor'), NULL, 'from every organization');
-- refusals
SELECT is(pg_temp.try_as(:ada, $$ SELECT um_register_permission('invoice:pay', NULL, '{admin}') $$), 'UM070',
          'a Root (anyone acting) cannot change the catalog or the template');
SELECT is(pg_temp.try_as(:ada, $$ SELECT um_grant_template_permission('member', 'invoice:approve') $$), 'UM070',
          'nor grant in the template');
SELECT is(pg_temp.try_as(NULL, $$ SELECT um_register_permission('invoice:pay', NULL, '{admin,nope}') $$), 'UM039',
          'an unknown template role: nothing registered');
SELECT is(pg_temp.try_as(NULL, $$ SELECT um_grant_template_permission('member', 'invoice:nope') $$), 'UM011', 'an unknown permission');
SELECT is(pg_temp.try_as(NULL, $$ SELECT um_grant_template_permission('member', 'Invoice') $$), 'UM010', 'an invalid name');
SELECT is(pg_temp.try_as(NULL, $$ SELECT um_grant_template_permission('member', '*') $$), 'UM042', 'only the root role holds *');
SELECT is(pg_temp.try_as(NULL, $$ SELECT um_grant_template_permission('member', '*:*') $$), 'UM042', 'nor *:*, which stands for every permission too');
SELECT is(pg_temp.try_as(NULL, $$ SELECT um_grant_template_permission('root', 'invoice:read') $$), 'UM042', 'the root role needs nothing more');
SELECT is(pg_temp.try_as(NULL, $$ SELECT um_drop_role_template('root') $$), 'UM042', 'the root role stays');
SELECT is(pg_temp.try_as(NULL, $$ DELETE FROM um.permissions WHERE name = 'invoice:approve' $$), 'UM048',
          'a permission the template holds is not removed from the catalog');

-- 2. The application defines its built-in roles.
SELECT is(um_set_role_template('accountant', 'Accountant', 'Keeps the books', '{invoice:*,billing:read}', renamable => true),
          true, 'a new built-in role');
SELECT is((SELECT count(*) FROM um.roles WHERE builtin = 'accountant'), 3::bigint, 'every organization has it');
SELECT is(pg_temp.holds(:initech, 'accountant'), '{invoice:*}', 'with the template''s permissions');
SELECT um_create_organization('hooli', 'Hooli', :dave) AS hooli \gset
SELECT ok(EXISTS (SELECT 1 FROM um.roles WHERE org_id = :hooli AND builtin = 'accountant' AND name = 'Accountant'),
          'and organizations made later');
SELECT um_set_role_template('root', 'Owner') AS ignored \gset
SELECT um_set_role_template('member', 'Member', permissions => '{org:read,member:read,member:list,invoice:read}') AS ignored \gset
SELECT is((SELECT array_agg(DISTINCT name) FROM um.roles WHERE builtin = 'root'), '{Owner}', 'the root role renamed everywhere');
SELECT is((SELECT array_agg(permission ORDER BY permission) FROM um.role_permissions WHERE role_id = pg_temp.role('acme', 'member')),
          '{invoice:read,member:list,member:read,org:read}', 'a permission set replaced: team:read and team:list gone');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_remove_member(%s, %s)', :acme, :ada)), 'UM073',
          'the last-Root rules hold for the renamed root role');
SELECT um_drop_role_template('service_operator') AS ignored \gset
SELECT ok(NOT EXISTS (SELECT 1 FROM um.roles WHERE builtin = 'service_operator')
          AND (SELECT count(*) FROM um.roles WHERE name = 'Service Operator' AND builtin IS NULL) = 4,
          'a dropped template role stays in every organization as a custom role');
SELECT is(pg_temp.try_as(NULL, $$ SELECT um_set_role_template('clerk', 'Service Operator') $$), 'UM026',
          'a template role cannot take a name organizations use');
SELECT is(pg_temp.try_as(NULL, $$ SELECT um_set_role_template('Clerk', 'Clerk') $$), 'UM009', 'keys are identifiers');
SELECT is(pg_temp.try_as(NULL, $$ SELECT um_grant_template_permission('clerk', 'invoice:read') $$), 'UM039', 'an unknown key');
SELECT is((SELECT key FROM um.role_template_list WHERE root), 'root', 'the template''s list names the root role');

-- 3 (roles). Rename when allowed, describe, include.
SELECT is(pg_temp.try_as(:carol, format('SELECT um_rename_role(%s, %L)', pg_temp.role('acme', 'accountant'), 'Books')), 'ok',
          'an Admin renames a built-in role the template lets organizations rename');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_rename_role(%s, %L)', pg_temp.role('acme', 'admin'), 'Boss')), 'UM042',
          'not one it does not');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_rename_role(%s, %L)', pg_temp.role('acme', 'invoicing'), 'member')), 'UM026',
          'nor to a name taken regardless of case');
SELECT is(pg_temp.try_as(:dave, format('SELECT um_rename_role(%s, %L)', pg_temp.role('acme', 'invoicing'), 'Mine')), 'UM070',
          'a Member renames nothing');
SELECT is(pg_temp.try_as(:bob, format('SELECT um_set_role_description(%s, %L)', pg_temp.role('acme', 'invoicing'), 'x')), 'UM070',
          'nobody of another organization describes its roles');
SELECT um_set_role_template('accountant', 'Accountant', 'Keeps the books, well') AS ignored \gset
SELECT is((SELECT name FROM um.roles WHERE id = pg_temp.role('acme', 'accountant')), 'Books',
          'a template change keeps the name an organization chose');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_include_role(%s, %s)', pg_temp.role('acme', 'member'), pg_temp.role('acme', 'accountant'))),
          'UM073', 'an Admin cannot make Members hold invoice:void through an inclusion (it lacks it)');
SELECT is(pg_temp.try_as(:ada, format('SELECT um_include_role(%s, %s)', pg_temp.role('acme', 'member'), pg_temp.role('acme', 'accountant'))),
          'ok', 'a Root can');
SELECT ok(pg_temp.can(:dave, 'invoice:void', :acme), 'and Members hold it at the next check');
SELECT is(pg_temp.try_as(:ada, format('SELECT um_include_role(%s, %s)', pg_temp.role('acme', 'accountant'), pg_temp.role('acme', 'member'))),
          'UM040', 'no cycles');
SELECT is(pg_temp.try_as(:ada, format('SELECT um_include_role(%s, %s)', pg_temp.role('acme', 'member'), pg_temp.role('globex', 'admin'))),
          'UM032', 'no role of another organization');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_exclude_role(%s, %s)', pg_temp.role('acme', 'member'), pg_temp.role('acme', 'accountant'))),
          'ok', 'an inclusion is taken back');
SELECT ok(NOT pg_temp.can(:dave, 'invoice:void', :acme), 'and the next check says so');
SELECT ok((SELECT count(*) FROM um.audit_events WHERE action IN ('role_template.set', 'role_template.drop', 'role_template.grant_permission',
                                                                  'role_template.revoke_permission', 'role.rename', 'role.include', 'role.exclude'))
          >= 9, 'every change is audited');

SELECT * FROM finish();
