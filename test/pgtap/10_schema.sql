BEGIN;
\ir fixture.psql
SELECT plan(17);

SELECT has_schema('um');
SELECT tables_are('um', ARRAY[
  'organizations', 'users', 'builtin_roles', 'builtin_role_permissions', 'roles',
  'role_inclusions', 'permissions', 'role_permissions', 'scopes', 'memberships', 'teams',
  'team_members', 'team_member_roles', 'grants', 'invitations', 'sessions',
  'identity_providers', 'user_identities', 'audit_events']);
SELECT views_are('um', ARRAY['member_list', 'role_permission_list', 'organization_list']);
SELECT functions_are('public', ARRAY['um_create_user', 'um_create_organization', 'um_add_member',
                                     'um_register_permission', 'um_permission_matches']
                     || ARRAY(SELECT p.proname::text FROM pg_proc p
                               WHERE p.pronamespace = 'public'::regnamespace
                                 AND NOT p.proname LIKE 'um\_%'),
                     'um puts only um_* functions in the extension schema');

-- every table holding user data is dumped by pg_dump, with its id sequence
SELECT set_eq(
  $$ SELECT c.relname::text FROM pg_extension e, unnest(e.extconfig) AS x(oid)
       JOIN pg_class c ON c.oid = x.oid WHERE e.extname = 'um' AND c.relkind = 'r' $$,
  ARRAY['organizations', 'users', 'roles', 'role_inclusions', 'permissions', 'role_permissions',
        'scopes', 'memberships', 'teams', 'team_members', 'team_member_roles', 'grants',
        'invitations', 'sessions', 'identity_providers', 'user_identities', 'audit_events'],
  'pg_extension_config_dump covers every user-data table');
SELECT set_eq(
  $$ SELECT c.relname::text FROM pg_extension e, unnest(e.extconfig) AS x(oid)
       JOIN pg_class c ON c.oid = x.oid WHERE e.extname = 'um' AND c.relkind = 'S' $$,
  $$ SELECT s.relname::text FROM pg_class s JOIN pg_depend d ON d.objid = s.oid
       JOIN pg_class t ON t.oid = d.refobjid
      WHERE s.relkind = 'S' AND t.relnamespace = 'um'::regnamespace $$,
  'pg_extension_config_dump covers every id sequence');
SELECT is((SELECT extcondition[array_position(extconfig, 'um.permissions'::regclass)]
             FROM pg_extension WHERE extname = 'um'),
          'WHERE NOT builtin', 'only application permissions are dumped; built-in ones come with the script');

-- nobody but the owner may touch um's tables or call its API
SELECT is((SELECT count(*) FROM information_schema.role_table_grants
            WHERE table_schema = 'um' AND grantee = 'PUBLIC'), 0::bigint,
          'no table of um is granted to PUBLIC');
SELECT ok(NOT has_schema_privilege('public', 'um', 'USAGE'), 'PUBLIC has no USAGE on schema um');
SELECT ok(NOT has_function_privilege('public', 'um_create_user(text,text,boolean,text,text,text,jsonb)', 'EXECUTE'),
          'PUBLIC cannot execute um_create_user');
SELECT ok(NOT has_function_privilege('public', 'um_create_organization(text,text,bigint)', 'EXECUTE'),
          'PUBLIC cannot execute um_create_organization');
SELECT ok(NOT has_function_privilege('public', 'um_add_member(bigint,bigint,text)', 'EXECUTE'),
          'PUBLIC cannot execute um_add_member');

-- the permission-name functions are pure: immutable, strict, parallel safe
SELECT volatility_is('public', 'um_permission_matches', ARRAY['text', 'text'], 'immutable');
SELECT is_strict('public', 'um_permission_matches', ARRAY['text', 'text']);
SELECT is((SELECT proparallel FROM pg_proc WHERE oid = 'um_permission_matches(text,text)'::regprocedure),
          's', 'um_permission_matches is parallel safe');

-- a caller's search_path cannot substitute objects in um's functions
CREATE SCHEMA regress_evil;
CREATE FUNCTION regress_evil.lower(text) RETURNS text LANGUAGE sql AS $$ SELECT 'same' $$;
SET LOCAL search_path = regress_evil, pg_catalog, public;
SELECT is(lower('ABC'), 'same', 'the shadowing lower() is live for the caller');
SELECT lives_ok($$ SELECT um_create_user('Search.Path@Example.com') $$,
                'um functions ignore a caller''s search_path (a shadowed lower() would make every address a duplicate)');
RESET search_path;
SELECT * FROM finish();
ROLLBACK;
