BEGIN;
\ir fixture.psql
SELECT plan(40);

SELECT has_schema('um');
SELECT tables_are('um', ARRAY[
  'organizations', 'organization_domains', 'users', 'builtin_roles', 'builtin_role_permissions', 'roles',
  'role_inclusions', 'permissions', 'role_permissions', 'scopes', 'memberships', 'teams',
  'team_members', 'team_member_roles', 'grants', 'invitations', 'sessions', 'session_activity',
  'identity_providers', 'user_identities', 'audit_events', 'cache_sentinel', 'verification_tokens', 'password_resets', 'email_changes', 'mfa_factors', 'mfa_recovery_codes', 'login_challenges', 'user_attribute_rules', 'state_tables']);
SELECT set_eq($$ SELECT relname::text FROM um.state_tables $$,
              $$ SELECT relname::text FROM pg_class WHERE relnamespace = 'um'::regnamespace AND relkind = 'r' $$,
              'um.state_tables registers every table of um, and only those');
SELECT views_are('um', ARRAY['member_list', 'role_permission_list', 'organization_list', 'cache_activity', 'error_codes',
                             'role_template_list']);
SELECT functions_are('public', ARRAY['um_create_user', 'um_create_organization', 'um_add_member',
                                     'um_register_permission', 'um_permission_matches', 'um_has_permission',
                                     'um_set_role_template', 'um_grant_template_permission', 'um_revoke_template_permission',
                                     'um_drop_role_template', 'um_rename_role', 'um_set_role_description',
                                     'um_include_role', 'um_exclude_role',
                                     'um_permitted_orgs', 'um_permitted_scopes', 'um_explain_permission',
                                     'um_act_as', 'um_current_user_id', 'um_cache_stats', 'um_cache_reset',
                                     'um_begin', 'um_login', 'um_logout', 'um_logout_all', 'um_change_password',
                                     'um_set_password', 'um_impersonate', 'um_end_impersonation',
                                     'um_impersonated_orgs', 'um_real_user_id', 'um_protect_table', 'um_unprotect_table',
                                     'um_lint', 'um_check_integrity',
                                     'um_sign_up', 'um_resend_verification', 'um_verify_email', 'um_verify_email_and_login', 'um_mark_verified',
                                     'um_request_password_reset', 'um_reset_password', 'um_reset_password_and_login',
                                     'um_disable_login', 'um_enable_login', 'um_suspend_user', 'um_reactivate_user', 'um_end_suspensions',
                                     'um_declare_user_attribute', 'um_drop_user_attribute', 'um_update_profile', 'um_update_user',
                                     'um_request_email_change', 'um_email_change_mail', 'um_confirm_email_change', 'um_cancel_email_change',
                                     'um_my_sessions', 'um_end_session', 'um_end_other_sessions', 'um_refresh_session',
                                     'um_enroll_totp', 'um_confirm_totp', 'um_my_factors', 'um_remove_factor', 'um_regenerate_recovery_codes',
                                     'um_complete_login', 'um_reauthenticate', 'um_register_webauthn', 'um_webauthn_credential', 'um_complete_login_webauthn',
                                     'um_set_org_role', 'um_transfer_org_ownership', 'um_remove_member',
                                     'um_set_org_setting', 'um_add_identity_provider', 'um_add_org_domain', 'um_remove_org_domain', 'um_link_identity',
                                     'um_rename_organization', 'um_set_org_slug', 'um_delete_organization',
                                     'um_create_scope', 'um_rename_scope', 'um_move_scope', 'um_set_scope_inherit', 'um_delete_scope',
                                     'um_create_team', 'um_rename_team', 'um_delete_team', 'um_add_team_member',
                                     'um_remove_team_member', 'um_grant_team_role', 'um_revoke_team_role',
                                     'um_transfer_team_ownership', 'um_create_role', 'um_delete_role',
                                     'um_grant_permission', 'um_revoke_permission', 'um_grant_scope_role',
                                     'um_revoke_scope_role', 'um_invite', 'um_request_invitation',
                                     'um_accept_invitation', 'um_accept_invitation_and_login', 'um_revoke_invitation', 'um_expire_invitations',
                                     'um_delete_user', 'um_delete_my_account', 'um_export_users',
                                     'um_export_users_json', 'um_export_my_data', 'um_my_organizations', 'um_my_permissions', 'um_cache_stats_all',
                                     'um_add_user_reference', 'um_drop_user_reference']
                     || ARRAY(SELECT p.proname::text FROM pg_proc p
                               WHERE p.pronamespace = 'public'::regnamespace
                                 AND NOT p.proname LIKE 'um\_%'),
                     'um puts only um_* functions in the extension schema');

-- every table holding user data is dumped by pg_dump, with its id sequence (but
-- outstanding password resets: no dump may carry a code's hash)
SELECT set_eq(
  $$ SELECT c.relname::text FROM pg_extension e, unnest(e.extconfig) AS x(oid)
       JOIN pg_class c ON c.oid = x.oid WHERE e.extname = 'um' AND c.relkind = 'r' $$,
  ARRAY['organizations', 'organization_domains', 'users', 'roles', 'role_inclusions', 'permissions', 'role_permissions',
        'scopes', 'memberships', 'teams', 'team_members', 'team_member_roles', 'grants',
        'invitations', 'sessions', 'session_activity', 'identity_providers', 'user_identities', 'audit_events', 'verification_tokens',
        'email_changes', 'mfa_factors', 'mfa_recovery_codes', 'builtin_roles', 'builtin_role_permissions', 'user_attribute_rules'],
  'pg_extension_config_dump covers every user-data table (and the role template, once the application changed it)');
SELECT set_eq(
  $$ SELECT c.relname::text || ' ' || coalesce(e.extcondition[x.n], '') FROM pg_extension e, unnest(e.extconfig) WITH ORDINALITY AS x(oid, n)
       JOIN pg_class c ON c.oid = x.oid WHERE e.extname = 'um' AND c.relkind = 'r' $$,
  $$ SELECT relname::text || ' ' || dump_filter FROM um.state_tables WHERE dump_filter IS NOT NULL $$,
  'and exactly the tables um.state_tables dumps, with their filters');
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

-- PUBLIC may read (under RLS) but never write um's tables, nor call its internal functions
SELECT is((SELECT count(*) FROM information_schema.role_table_grants
            WHERE table_schema = 'um' AND grantee = 'PUBLIC' AND privilege_type <> 'SELECT'), 0::bigint,
          'PUBLIC holds no privilege on um''s tables but SELECT');
SELECT is((SELECT array_agg(c.relname::text ORDER BY c.relname) FROM pg_class c
            WHERE c.relnamespace = 'um'::regnamespace AND c.relkind = 'r' AND has_table_privilege('public', c.oid, 'SELECT')
              AND NOT c.relrowsecurity),
          ARRAY['builtin_role_permissions', 'builtin_roles', 'permissions', 'state_tables', 'user_attribute_rules'],
          'the tables PUBLIC reads without row-level security are the catalogs, which hold no tenant data (and the registry of um''s tables)');
CREATE ROLE regress_um_schema_app;
SET ROLE regress_um_schema_app;
SELECT throws_ok($$ SELECT um_create_user('eve@example.com') $$, 'UM070', 'permission denied to create a user',
                 'a role that does not administer um cannot create users with nobody acting');
SELECT throws_ok($$ SELECT um_create_organization('evil', 'Evil', 1) $$, 'UM070', 'permission denied to create an organization',
                 'nor organizations');
SELECT throws_ok($$ SELECT um_add_member(1, 2) $$, 'UM070', 'permission denied to add members to organization 1',
                 'nor add members');
RESET ROLE;
SELECT ok(NOT has_function_privilege('public', 'um_act_as(bigint)', 'EXECUTE'),
          'PUBLIC cannot choose who is acting');
SELECT ok(NOT bool_or(has_function_privilege('public', f, 'EXECUTE')),
          'PUBLIC cannot ask what another user may do')
  FROM unnest(ARRAY['um_has_permission(bigint,text,bigint)', 'um_has_permission(bigint,text,bigint,bigint)',
                    'um_permitted_orgs(bigint,text)', 'um_permitted_scopes(bigint,text,bigint)',
                    'um_explain_permission(bigint,text,bigint,bigint)']) AS f;
SELECT ok(bool_and(has_function_privilege('public', f, 'EXECUTE')),
          'everyone may ask what the acting user may do (policies run as the querying role)')
  FROM unnest(ARRAY['um_has_permission(text,bigint)', 'um_has_permission(text,bigint,bigint)',
                    'um_permitted_orgs(text)', 'um_permitted_scopes(text,bigint)', 'um_current_user_id()']) AS f;
-- every table an answer depends on tells the caches when it changes, even in replica mode
SELECT set_eq($$ SELECT c.relname::text FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
                  WHERE t.tgname = 'cache_invalidate' AND t.tgenabled = 'A' $$,
              ARRAY['users', 'memberships', 'roles', 'role_inclusions', 'role_permissions', 'permissions',
                    'scopes', 'teams', 'team_members', 'team_member_roles', 'grants'],
              'cache invalidation triggers, enabled ALWAYS');
SELECT set_eq($$ SELECT c.relname::text || ' ' || t.tgname || ' ' || t.tgenabled::text || ' ' || encode(t.tgargs, 'escape')
                   FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
                  WHERE c.relnamespace = 'um'::regnamespace AND t.tgname IN ('cache_invalidate', 'cache_invalidate_truncate') $$,
              $$ SELECT s.relname::text || ' ' || x.n || CASE WHEN x.n LIKE '%truncate%' OR s.cache_key IS NULL THEN '' ELSE s.cache_key || '\000' END
                   FROM um.state_tables s, (VALUES ('cache_invalidate A '), ('cache_invalidate_truncate A ')) AS x(n) WHERE s.evaluator_input $$,
              'exactly the tables um.state_tables marks as evaluator inputs have both triggers (rows with the table''s cache key, TRUNCATE), enabled ALWAYS');
-- whose entries a change drops: the user a row names, or its organization
SELECT is((SELECT string_agg(relname || '=' || coalesce(cache_key, 'all'), ' ' ORDER BY relname) FROM um.state_tables WHERE evaluator_input),
          'grants=user:user_id|org:org_id memberships=user:user_id permissions=all role_inclusions=org:org_id role_permissions=org:org_id '
          'roles=org:org_id scopes=org:org_id team_member_roles=user:user_id team_members=user:user_id teams=org:org_id users=user:id',
          'the cache keys of the evaluator''s tables');
SELECT is((SELECT count(*) FROM pg_type t WHERE t.typnamespace = 'um'::regnamespace AND t.typname ~ '^cache_bucket_[0-9]+$' AND t.typtype = 'c'),
          1024::bigint, 'the 1,024 buckets the messages address');
SELECT set_eq($$ SELECT c.relname::text FROM pg_class c WHERE c.relnamespace = 'um'::regnamespace AND c.relkind = 'r'
                    AND c.relrowsecurity AND c.relforcerowsecurity $$,
              $$ SELECT relname::text FROM um.state_tables WHERE access <> 'catalog' $$,
              'forced row-level security on exactly the tenant and secret tables of um.state_tables');

SELECT is((SELECT string_agg(DISTINCT format('%s %s %s', provolatile, proisstrict, proparallel), ',')
             FROM pg_proc WHERE proname = 'um_has_permission'), 's f s',
          'um_has_permission: STABLE, not STRICT (NULL is a deny, never NULL), PARALLEL SAFE (the acting user reaches workers)');
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
-- tenant sharding: every organization-scoped table's keys lead with org_id
CREATE TEMP VIEW org_scoped AS
  SELECT c.oid, c.relname FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'org_id' AND a.attnotnull
   WHERE c.relnamespace = 'um'::regnamespace AND c.relkind = 'r';
SELECT cmp_ok((SELECT count(*) FROM org_scoped), '>=', 12::bigint, 'the organization-scoped tables are found');
SELECT is((SELECT array_agg(t.relname ORDER BY t.relname) FROM org_scoped t
            WHERE NOT EXISTS (SELECT 1 FROM pg_constraint k JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.conkey[1]
                               WHERE k.conrelid = t.oid AND k.contype = 'p' AND a.attname = 'org_id')),
          NULL, 'every organization-scoped table''s primary key leads with org_id');
SELECT is((SELECT array_agg(DISTINCT k.conname::text) FROM org_scoped t
             JOIN pg_constraint k ON k.conrelid = t.oid AND k.contype IN ('f', 'u', 'x')
             JOIN org_scoped r ON r.oid = k.confrelid OR k.contype <> 'f'
            WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = t.oid AND a.attnum = k.conkey[1] AND a.attname = 'org_id')),
          NULL, 'and so does every unique or exclusion constraint, and every foreign key to another organization-scoped table');
-- every public object says what it is (\d+, \df+ and \dp show it): each
-- assertion lists what lacks a COMMENT, so a new object without one fails here
SELECT is(ARRAY(SELECT c.oid::regclass::text FROM pg_class c
                 WHERE c.relnamespace = 'um'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')
                   AND obj_description(c.oid, 'pg_class') IS NULL ORDER BY 1),
          '{}'::text[], 'every table and view in schema um has a comment');
SELECT is(ARRAY(SELECT c.oid::regclass::text || '.' || a.attname FROM pg_class c
                  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                 WHERE c.relnamespace = 'um'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')
                   AND col_description(c.oid, a.attnum) IS NULL ORDER BY 1),
          '{}'::text[], 'every column of every table and view in schema um has a comment');
SELECT is(ARRAY(SELECT p.oid::regprocedure::text FROM pg_proc p
                 WHERE (p.pronamespace = 'um_internal'::regnamespace
                        OR (p.pronamespace = (SELECT extnamespace FROM pg_extension WHERE extname = 'um') AND p.proname LIKE 'um\_%'))
                   AND obj_description(p.oid, 'pg_proc') IS NULL ORDER BY 1),
          '{}'::text[], 'every function and procedure in schema um_internal, and every um_* function, has a comment');
-- the internals live apart from what applications use: schema um holds
-- tables, views and types, no function; the extension's schema holds only um_*
SELECT is((SELECT string_agg(p.oid::regprocedure::text, ', ') FROM pg_proc p WHERE p.pronamespace = 'um'::regnamespace),
          NULL, 'schema um holds no function: every internal one is in um_internal');
SELECT is((SELECT string_agg(p.oid::regprocedure::text, ', ') FROM pg_proc p
            JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
                            AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'um')
           WHERE p.pronamespace <> 'um_internal'::regnamespace AND p.proname NOT LIKE 'um\_%'),
          NULL, 'every function of um outside um_internal is named um_*');
SELECT ok(obj_description('um_internal'::regnamespace, 'pg_namespace') ~ 'internal',
          'schema um_internal says it is internal');
SELECT is(ARRAY(SELECT t.oid::regtype::text FROM pg_type t
                 WHERE t.typnamespace = 'um'::regnamespace AND t.typtype IN ('d', 'e', 'r', 'm')
                   AND obj_description(t.oid, 'pg_type') IS NULL ORDER BY 1),
          '{}'::text[], 'every domain, enum and range type in schema um has a comment');
SELECT is(ARRAY(SELECT p.polname || ' ON ' || p.polrelid::regclass::text FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
                 WHERE c.relnamespace = 'um'::regnamespace AND obj_description(p.oid, 'pg_policy') IS NULL ORDER BY 1),
          '{}'::text[], 'every policy on um''s tables has a comment');
SELECT is((SELECT string_agg(tg.tgname || ' ON ' || tg.tgrelid::regclass, ', ') FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
            WHERE c.relnamespace = 'um'::regnamespace AND NOT tg.tgisinternal AND obj_description(tg.oid, 'pg_trigger') IS NULL),
          NULL, 'every trigger of um''s tables has a comment');
SELECT * FROM finish();
ROLLBACK;
