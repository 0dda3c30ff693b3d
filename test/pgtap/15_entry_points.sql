-- Every public function of um, paired with how it gets its rights and who
-- may call it.  A function added without a line here fails the first test:
-- deciding its mechanism and its privilege rule is part of adding it.
--
-- Mechanisms:
--   lifecycle  C entry point (src/lifecycle.c) with the caller's rights, whose
--              body um_internal.do_<name>(same arguments) runs as um's owner:
--              SECURITY DEFINER, pinned search_path, EXECUTE held by nobody
--              else; um_internal.caller_role() names its caller while it runs
--   invoker    the caller's rights (checks, companions, protect, lint,
--              um_begin, whose lookup alone runs as um's owner in C)
-- No public function of um is SECURITY DEFINER itself.
-- execute: whether PUBLIC may call it (false: the DBA grants it to the
-- backend role, or only um administrators call it).
BEGIN;
\ir fixture.psql
SELECT plan(10);

CREATE TEMP TABLE entry (fn text PRIMARY KEY, mechanism text NOT NULL, execute boolean NOT NULL, rule text NOT NULL);
INSERT INTO entry VALUES
  ('um_begin(text)', 'invoker', true, 'anyone with a session token: looks it up as um''s owner (src/owner.c)'),
  ('um_login(text,text)', 'lifecycle', true, 'anyone with an email and password'),
  ('um_change_password(text,text,text)', 'lifecycle', true, 'anyone with the current password'),
  ('um_set_password(bigint,text,boolean)', 'lifecycle', false, 'um administrators'),
  ('um_logout(text)', 'lifecycle', true, 'anyone with a session token'),
  ('um_impersonate(bigint)', 'lifecycle', true, 'acting user holding user:impersonate'),
  ('um_permission_matches(text,text)', 'invoker', true, 'anyone: pure function'),
  ('um_act_as(bigint)', 'invoker', false, 'backend roles the DBA grants it'),
  ('um_current_user_id()', 'invoker', true, 'anyone'),
  ('um_has_permission(text,bigint)', 'invoker', true, 'anyone: about the acting user'),
  ('um_has_permission(text,bigint,bigint)', 'invoker', true, 'anyone: about the acting user'),
  ('um_has_permission(bigint,text,bigint)', 'invoker', false, 'backend roles the DBA grants it: about any user'),
  ('um_has_permission(bigint,text,bigint,bigint)', 'invoker', false, 'backend roles the DBA grants it: about any user'),
  ('um_permitted_orgs(text)', 'invoker', true, 'anyone: about the acting user'),
  ('um_permitted_orgs(bigint,text)', 'invoker', false, 'backend roles the DBA grants it: about any user'),
  ('um_permitted_scopes(text,bigint)', 'invoker', true, 'anyone: about the acting user'),
  ('um_permitted_scopes(bigint,text,bigint)', 'invoker', false, 'backend roles the DBA grants it: about any user'),
  ('um_cache_stats()', 'invoker', true, 'anyone: this backend''s cache'),
  ('um_cache_reset()', 'invoker', true, 'anyone: this backend''s cache'),
  ('um_cache_stats_all()', 'invoker', false, 'um administrators'),
  ('um_explain_permission(bigint,text,bigint,bigint)', 'invoker', false, 'um administrators'),
  ('um_current_user_id(bigint)', 'invoker', true, 'anyone'),
  ('um_real_user_id()', 'invoker', true, 'anyone'),
  ('um_end_impersonation()', 'invoker', true, 'anyone'),
  ('um_impersonated_orgs()', 'invoker', true, 'anyone'),
  ('um_protect_table(regclass,name,text,name)', 'invoker', true, 'the table''s owner'),
  ('um_unprotect_table(regclass,boolean)', 'invoker', true, 'the table''s owner'),
  ('um_lint()', 'invoker', true, 'anyone: about what they may see'),
  ('um_add_user_reference(regclass,name)', 'invoker', false, 'the table''s owner, granted by the DBA'),
  ('um_drop_user_reference(regclass,name)', 'invoker', false, 'the table''s owner, granted by the DBA'),
  ('um_check_integrity()', 'invoker', false, 'um administrators'),
  ('um_sign_up(text,text,text,text,text)', 'lifecycle', false, 'the backend role the DBA grants it, nobody acting'),
  ('um_resend_verification(text)', 'lifecycle', false, 'the backend role the DBA grants it, nobody acting'),
  ('um_verify_email(text,text)', 'lifecycle', true, 'whoever holds the token'),
  ('um_verify_email_and_login(text,text)', 'lifecycle', true, 'whoever holds the token'),
  ('um_request_password_reset(text)', 'lifecycle', false, 'the backend role the DBA grants it, nobody acting'),
  ('um_reset_password(text,text,text)', 'lifecycle', true, 'whoever holds the secret'),
  ('um_reset_password_and_login(text,text,text)', 'lifecycle', true, 'whoever holds the secret'),
  ('um_mark_verified(bigint)', 'lifecycle', true, 'um administrators, nobody acting'),
  ('um_create_user(text,text,boolean,text,text,text,jsonb)', 'lifecycle', true, 'um administrators'),
  ('um_create_user(bigint,text,text,text,boolean,text,text,text)', 'lifecycle', true, 'user:create'),
  ('um_disable_login(bigint)', 'lifecycle', true, 'user:suspend'),
  ('um_enable_login(bigint)', 'lifecycle', true, 'user:suspend'),
  ('um_suspend_user(bigint,bigint,timestamp with time zone)', 'lifecycle', true, 'user:suspend'),
  ('um_reactivate_user(bigint,bigint)', 'lifecycle', true, 'user:suspend'),
  ('um_create_organization(text,text,bigint)', 'lifecycle', true, 'um administrators, or the acting user for themself'),
  ('um_add_member(bigint,bigint,text)', 'lifecycle', true, 'member:invite'),
  ('um_set_org_role(bigint,bigint,text)', 'lifecycle', true, 'member:update'),
  ('um_transfer_org_ownership(bigint,bigint,text)', 'lifecycle', true, 'a Root'),
  ('um_remove_member(bigint,bigint)', 'lifecycle', true, 'member:remove'),
  ('um_set_org_setting(bigint,text,jsonb)', 'lifecycle', true, 'org:update'),
  ('um_set_org_setting(bigint,text,text)', 'lifecycle', true, 'org:update'),
  ('um_rename_organization(bigint,text)', 'lifecycle', true, 'org:update'),
  ('um_set_org_slug(bigint,text)', 'lifecycle', true, 'a Root with org:update'),
  ('um_delete_organization(bigint,text)', 'lifecycle', true, 'a Root with org:delete'),
  ('um_add_identity_provider(bigint,text,text,text)', 'lifecycle', true, 'org:update'),
  ('um_add_org_domain(bigint,text)', 'lifecycle', true, 'um administrators, nobody acting'),
  ('um_remove_org_domain(bigint,text)', 'lifecycle', true, 'um administrators, nobody acting'),
  ('um_link_identity(bigint,text,text,bigint)', 'lifecycle', true, 'org:update'),
  ('um_create_team(bigint,text,text,bigint)', 'lifecycle', true, 'team:create'),
  ('um_rename_team(bigint,text)', 'lifecycle', true, 'team:update'),
  ('um_create_scope(bigint,text,text,bigint,text,boolean)', 'lifecycle', true, 'scope:create on the parent'),
  ('um_rename_scope(bigint,text)', 'lifecycle', true, 'scope:update on the node'),
  ('um_move_scope(bigint,bigint)', 'lifecycle', true, 'scope:update on the node and the new parent'),
  ('um_set_scope_inherit(bigint,boolean)', 'lifecycle', true, 'scope:update on the node'),
  ('um_delete_scope(bigint)', 'lifecycle', true, 'scope:delete on the node'),
  ('um_delete_team(bigint)', 'lifecycle', true, 'team:delete'),
  ('um_add_team_member(bigint,bigint,text[])', 'lifecycle', true, 'team:update or the team''s owner'),
  ('um_remove_team_member(bigint,bigint)', 'lifecycle', true, 'team:update or the team''s owner'),
  ('um_grant_team_role(bigint,bigint,text)', 'lifecycle', true, 'team:update or the team''s owner'),
  ('um_revoke_team_role(bigint,bigint,text)', 'lifecycle', true, 'team:update or the team''s owner'),
  ('um_transfer_team_ownership(bigint,bigint)', 'lifecycle', true, 'team:update or the team''s owner'),
  ('um_create_role(bigint,text,text[],text)', 'lifecycle', true, 'role:create'),
  ('um_delete_role(bigint)', 'lifecycle', true, 'role:delete'),
  ('um_grant_permission(bigint,text)', 'lifecycle', true, 'role:update'),
  ('um_revoke_permission(bigint,text)', 'lifecycle', true, 'role:update'),
  ('um_grant_scope_role(bigint,text,bigint,bigint)', 'lifecycle', true, 'role:update'),
  ('um_revoke_scope_role(bigint,text,bigint,bigint)', 'lifecycle', true, 'role:update'),
  ('um_register_permission(text,text,text[])', 'lifecycle', true, 'um administrators'),
  ('um_set_role_template(text,text,text,text[],boolean,integer)', 'lifecycle', true, 'um administrators'),
  ('um_grant_template_permission(text,text)', 'lifecycle', true, 'um administrators'),
  ('um_revoke_template_permission(text,text)', 'lifecycle', true, 'um administrators'),
  ('um_drop_role_template(text)', 'lifecycle', true, 'um administrators'),
  ('um_rename_role(bigint,text)', 'lifecycle', true, 'role:update'),
  ('um_set_role_description(bigint,text)', 'lifecycle', true, 'role:update'),
  ('um_include_role(bigint,bigint)', 'lifecycle', true, 'role:update'),
  ('um_exclude_role(bigint,bigint)', 'lifecycle', true, 'role:update'),
  ('um_invite(bigint,text,text,bigint,interval)', 'lifecycle', true, 'member:invite'),
  ('um_request_invitation(text,text)', 'lifecycle', true, 'the acting user, for themself'),
  ('um_accept_invitation(text,text,text)', 'lifecycle', true, 'whoever holds the token'),
  ('um_accept_invitation_and_login(text,text,text)', 'lifecycle', true, 'whoever holds the token, logged out (um.invitations_prove_address on)'),
  ('um_revoke_invitation(bigint)', 'lifecycle', true, 'member:invite'),
  ('um_expire_invitations()', 'lifecycle', true, 'um administrators'),
  ('um_end_suspensions()', 'lifecycle', true, 'um administrators'),
  ('um_declare_user_attribute(text,text,text)', 'lifecycle', true, 'um administrators'),
  ('um_drop_user_attribute(text)', 'lifecycle', true, 'um administrators'),
  ('um_update_profile(text,text,text,text,jsonb)', 'lifecycle', true, 'the acting user, not impersonated'),
  ('um_update_user(bigint,text,text,text,text,jsonb)', 'lifecycle', true, 'user:update'),
  ('um_request_email_change(text,bigint)', 'lifecycle', true, 'the acting user, or user:update'),
  ('um_email_change_mail(bigint)', 'lifecycle', false, 'the backend role the DBA grants it, nobody acting'),
  ('um_confirm_email_change(text)', 'lifecycle', true, 'whoever holds the token'),
  ('um_cancel_email_change(text)', 'lifecycle', true, 'whoever holds the token'),
  ('um_my_sessions()', 'lifecycle', true, 'the acting user, not impersonated'),
  ('um_end_session(bigint)', 'lifecycle', true, 'the session''s user, or user:suspend in an organization of theirs'),
  ('um_end_other_sessions()', 'lifecycle', true, 'the acting user, not impersonated'),
  ('um_refresh_session(text)', 'lifecycle', true, 'whoever holds the token'),
  ('um_enroll_totp(text)', 'lifecycle', true, 'the acting user, not impersonated'),
  ('um_confirm_totp(bigint,text)', 'lifecycle', true, 'the acting user, not impersonated'),
  ('um_my_factors()', 'lifecycle', true, 'the acting user, not impersonated'),
  ('um_remove_factor(bigint,text)', 'lifecycle', true, 'the acting user, not impersonated, with a proof'),
  ('um_regenerate_recovery_codes(text)', 'lifecycle', true, 'the acting user, not impersonated, with a proof'),
  ('um_complete_login(text,text)', 'lifecycle', true, 'whoever holds the challenge and the factor'),
  ('um_reauthenticate(text,text)', 'lifecycle', true, 'the acting user, through a session'),
  ('um_register_webauthn(text,bytea,bytea,bigint)', 'lifecycle', true, 'the acting user, not impersonated, recently authenticated'),
  ('um_webauthn_credential(bytea)', 'lifecycle', false, 'the backend role the DBA grants it'),
  ('um_complete_login_webauthn(text,bytea,bigint)', 'lifecycle', false, 'the backend role the DBA grants it'),
  ('um_delete_user(bigint)', 'lifecycle', true, 'user:delete'),
  ('um_delete_my_account()', 'lifecycle', true, 'the acting user'),
  ('um_logout_all(bigint)', 'lifecycle', true, 'the user themself, user:suspend, or um administrators'),
  ('um_export_users(bigint)', 'lifecycle', true, 'member:read'),
  ('um_export_users_json(bigint)', 'lifecycle', true, 'member:read'),
  ('um_export_my_data()', 'lifecycle', true, 'the acting user'),
  ('um_my_organizations()', 'lifecycle', true, 'the acting user'),
  ('um_my_permissions(bigint,bigint)', 'invoker', true, 'anyone: about the acting user');

CREATE TEMP VIEW public_fn AS
  SELECT p.oid, p.oid::regprocedure::text AS fn, p.prosecdef, p.proconfig, p.prosrc, p.prolang,
         has_function_privilege('public', p.oid, 'EXECUTE') AS public_execute
    FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace AND p.proname LIKE 'um\_%';

SELECT set_eq($$ SELECT fn FROM public_fn $$, $$ SELECT fn FROM entry $$,
              'every public function of um has its line here (mechanism and privilege rule), and every line a function');
SELECT is((SELECT string_agg(e.fn, ', ' ORDER BY e.fn) FROM entry e JOIN public_fn f USING (fn)
            WHERE (e.mechanism = 'lifecycle') <> (f.prosrc = 'um_lifecycle_entry' AND f.prolang = (SELECT oid FROM pg_language WHERE lanname = 'c'))
               OR e.mechanism NOT IN ('lifecycle', 'invoker')),
          NULL, 'each function uses the mechanism its line names');
SELECT is((SELECT string_agg(e.fn || CASE WHEN e.execute THEN ' should' ELSE ' should not' END || ' be PUBLIC''s', ', ' ORDER BY e.fn)
             FROM entry e JOIN public_fn f USING (fn) WHERE e.execute <> f.public_execute),
          NULL, 'PUBLIC may call exactly the functions whose line says so');

-- the body of every lifecycle entry: um_internal.do_<name>(the same arguments...)
CREATE TEMP VIEW body AS
  SELECT f.fn, b.oid AS body_oid, b.prosecdef, b.proconfig, b.proowner
    FROM public_fn f
    LEFT JOIN pg_proc pf ON pf.oid = f.oid
    LEFT JOIN pg_proc b ON b.pronamespace = 'um_internal'::regnamespace AND b.proname = 'do_' || substr(pf.proname, 4)
                       AND b.proargtypes::oid[] = pf.proargtypes::oid[]
   WHERE f.prosrc = 'um_lifecycle_entry';
SELECT is((SELECT string_agg(fn, ', ') FROM body WHERE body_oid IS NULL), NULL,
          'every lifecycle entry has its body um_internal.do_<name>(same arguments)');
-- the caller reaches a body one way only (um_internal.caller_role()), never as an
-- argument a body or a helper could be handed by someone else
SELECT is((SELECT string_agg(p.oid::regprocedure::text, ', ') FROM pg_proc p
            WHERE p.pronamespace = 'um_internal'::regnamespace AND 'p_caller' = ANY (p.proargnames)), NULL,
          'no function of um takes the caller as an argument');
SELECT is((SELECT string_agg(fn, ', ') FROM body
            WHERE NOT prosecdef OR proconfig IS DISTINCT FROM '{"search_path=pg_catalog, pg_temp"}'
               OR proowner <> (SELECT extowner FROM pg_extension WHERE extname = 'um')), NULL,
          'every body runs as the extension''s owner (SECURITY DEFINER, owned by it) with search_path pinned to pg_catalog, pg_temp');
SELECT is((SELECT string_agg(p.oid::regprocedure::text, ', ') FROM pg_proc p
            WHERE p.pronamespace = 'um_internal'::regnamespace AND p.proname LIKE 'do\_%'
              AND (has_function_privilege('public', p.oid, 'EXECUTE')
                   OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee <> p.proowner))), NULL,
          'nobody but the owner may call a body directly');
SELECT is((SELECT string_agg(p.oid::regprocedure::text, ', ') FROM pg_proc p
            WHERE p.pronamespace = 'um_internal'::regnamespace AND p.proname LIKE 'do\_%'
              AND p.oid NOT IN (SELECT body_oid FROM body WHERE body_oid IS NOT NULL)), NULL,
          'and every body has its entry (no body is reachable some other way)');
SELECT is((SELECT string_agg(f.fn, ', ') FROM public_fn f WHERE f.prosecdef), NULL,
          'no public function of um is SECURITY DEFINER: each runs with its caller''s rights');
SELECT is((SELECT string_agg(p.oid::regprocedure::text, ', ') FROM pg_proc p
            WHERE p.pronamespace IN ('um'::regnamespace, 'um_internal'::regnamespace, 'public'::regnamespace) AND p.prosecdef
              AND p.proname NOT LIKE 'do\_%' AND p.oid NOT IN (SELECT oid FROM public_fn)), NULL,
          'no other function of um runs with its owner''s rights');

SELECT * FROM finish();
ROLLBACK;
