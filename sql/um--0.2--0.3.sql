-- um 0.2 -> 0.3
--
-- Written by hand.  Every change made in sql/install/ for 0.3 is also made
-- here, so that ALTER EXTENSION um UPDATE from 0.2 gives exactly what a fresh
-- CREATE EXTENSION um gives (test/shell/upgrade.sh walks 0.1 -> 0.2 -> 0.3
-- and compares the result with a fresh install).

\echo Use "ALTER EXTENSION um UPDATE TO '0.3'" to load this file. \quit

-- Internal functions move out of schema um into a schema of their own, so
-- that \df um.* and \dx+ um tell them apart from the API (tables and views
-- stay in um, the um_* functions in the extension's schema).  First of all:
-- every later statement of this script names them there.  A function keeps
-- its OID, so triggers, policies and views that use one follow it; bodies
-- that name another are re-created below.
CREATE SCHEMA um_internal;
COMMENT ON SCHEMA um_internal IS 'um''s internal functions (lifecycle bodies, helpers, trigger functions): not an interface, called only by um itself; applications use the um_* functions';
REVOKE ALL ON SCHEMA um_internal FROM PUBLIC;
GRANT USAGE ON SCHEMA um_internal TO PUBLIC;
ALTER FUNCTION um.actor_org(bigint) SET SCHEMA um_internal;
ALTER FUNCTION um.administers_um() SET SCHEMA um_internal;
ALTER FUNCTION um.assert_no_app_cascades() SET SCHEMA um_internal;
ALTER FUNCTION um.assert_permission_name(text,boolean) SET SCHEMA um_internal;
ALTER FUNCTION um.audit(text,bigint,text,bigint,jsonb,text) SET SCHEMA um_internal;
ALTER FUNCTION um.audit_autonomous(text,text,bigint,text,bigint,jsonb) SET SCHEMA um_internal;
ALTER FUNCTION um.audit_events_append_only() SET SCHEMA um_internal;
ALTER FUNCTION um.audit_events_stamp() SET SCHEMA um_internal;
ALTER FUNCTION um.authenticate(text,text,boolean) SET SCHEMA um_internal;
ALTER FUNCTION um.authorize(oid,text,text,text,bigint,text,bigint) SET SCHEMA um_internal;
ALTER FUNCTION um.authorize_role_edit(oid,text,bigint,text) SET SCHEMA um_internal;
ALTER FUNCTION um.authorize_team(oid,text,text,bigint,bigint) SET SCHEMA um_internal;
ALTER FUNCTION um.authorize_user(oid,text,text,text,bigint) SET SCHEMA um_internal;
ALTER FUNCTION um.cache_invalidate() SET SCHEMA um_internal;
ALTER FUNCTION um.caller_role() SET SCHEMA um_internal;
ALTER FUNCTION um.check_column(regclass,name,text) SET SCHEMA um_internal;
ALTER FUNCTION um.crudl_actions(text) SET SCHEMA um_internal;
ALTER FUNCTION um.deletion_blocker(bigint) SET SCHEMA um_internal;
ALTER FUNCTION um.deny(text,bigint,text,bigint,text,text,text,text) SET SCHEMA um_internal;
ALTER FUNCTION um.display_name_is_valid(text,integer) SET SCHEMA um_internal;
ALTER FUNCTION um.do_accept_invitation(text,text,text,oid) SET SCHEMA um_internal;
ALTER FUNCTION um.do_add_identity_provider(bigint,text,text,text,oid) SET SCHEMA um_internal;
ALTER FUNCTION um.do_add_member(bigint,bigint,text,oid) SET SCHEMA um_internal;
ALTER FUNCTION um.do_add_team_member(bigint,bigint,text[],oid) SET SCHEMA um_internal;
ALTER FUNCTION um.do_create_organization(text,text,bigint,oid) SET SCHEMA um_internal;
ALTER FUNCTION um.do_create_role(bigint,text,text[],text,oid) SET SCHEMA um_internal;
ALTER FUNCTION um.do_create_team(bigint,text,text,bigint,oid) SET SCHEMA um_internal;
ALTER FUNCTION um.do_create_user(bigint,text,text,text,boolean,text,text,text,oid) SET SCHEMA um_internal;
ALTER FUNCTION um.do_create_user(text,text,boolean,text,text,text,jsonb,oid) SET SCHEMA um_internal;
ALTER FUNCTION um.do_delete_my_account(oid) SET SCHEMA um_internal;
ALTER FUNCTION um.do_delete_role(bigint,oid) SET SCHEMA um_internal;
ALTER FUNCTION um.do_delete_team(bigint,oid) SET SCHEMA um_internal;
ALTER FUNCTION um.do_delete_user(bigint,oid) SET SCHEMA um_internal;
ALTER FUNCTION um.do_disable_login(bigint,oid) SET SCHEMA um_internal;
ALTER FUNCTION um.do_enable_login(bigint,oid) SET SCHEMA um_internal;
ALTER FUNCTION um.do_expire_invitations(oid) SET SCHEMA um_internal;
ALTER FUNCTION um.do_export_my_data(oid) SET SCHEMA um_internal;
ALTER FUNCTION um.do_export_users(bigint,oid) SET SCHEMA um_internal;
ALTER FUNCTION um.do_export_users_json(bigint,oid) SET SCHEMA um_internal;
ALTER FUNCTION um.do_grant_permission(bigint,text,oid) SET SCHEMA um_internal;
ALTER FUNCTION um.do_grant_scope_role(bigint,text,bigint,bigint,oid) SET SCHEMA um_internal;
ALTER FUNCTION um.do_grant_team_role(bigint,bigint,text,oid) SET SCHEMA um_internal;
ALTER FUNCTION um.do_invite(bigint,text,text,bigint,interval,oid) SET SCHEMA um_internal;
ALTER FUNCTION um.do_link_identity(bigint,text,text,bigint,oid) SET SCHEMA um_internal;
ALTER FUNCTION um.do_logout_all(bigint,oid) SET SCHEMA um_internal;
ALTER FUNCTION um.do_mark_verified(bigint,oid) SET SCHEMA um_internal;
ALTER FUNCTION um.do_reactivate_user(bigint,bigint,oid) SET SCHEMA um_internal;
ALTER FUNCTION um.do_register_permission(text,text,oid) SET SCHEMA um_internal;
ALTER FUNCTION um.do_remove_member(bigint,bigint,oid) SET SCHEMA um_internal;
ALTER FUNCTION um.do_remove_team_member(bigint,bigint,oid) SET SCHEMA um_internal;
ALTER FUNCTION um.do_rename_team(bigint,text,oid) SET SCHEMA um_internal;
ALTER FUNCTION um.do_request_invitation(text,text,oid) SET SCHEMA um_internal;
ALTER FUNCTION um.do_resend_verification(text,oid) SET SCHEMA um_internal;
ALTER FUNCTION um.do_revoke_invitation(bigint,oid) SET SCHEMA um_internal;
ALTER FUNCTION um.do_revoke_permission(bigint,text,oid) SET SCHEMA um_internal;
ALTER FUNCTION um.do_revoke_scope_role(bigint,text,bigint,bigint,oid) SET SCHEMA um_internal;
ALTER FUNCTION um.do_revoke_team_role(bigint,bigint,text,oid) SET SCHEMA um_internal;
ALTER FUNCTION um.do_set_org_role(bigint,bigint,text,oid) SET SCHEMA um_internal;
ALTER FUNCTION um.do_set_org_setting(bigint,text,jsonb,oid) SET SCHEMA um_internal;
ALTER FUNCTION um.do_sign_up(text,text,text,text,text,oid) SET SCHEMA um_internal;
ALTER FUNCTION um.do_suspend_user(bigint,bigint,oid) SET SCHEMA um_internal;
ALTER FUNCTION um.do_transfer_org_ownership(bigint,bigint,text,oid) SET SCHEMA um_internal;
ALTER FUNCTION um.do_transfer_team_ownership(bigint,bigint,oid) SET SCHEMA um_internal;
ALTER FUNCTION um.do_verify_email(text,text,oid) SET SCHEMA um_internal;
ALTER FUNCTION um.drop_um_policies(regclass) SET SCHEMA um_internal;
ALTER FUNCTION um.email_is_valid(text) SET SCHEMA um_internal;
ALTER FUNCTION um.erase_user(bigint,text) SET SCHEMA um_internal;
ALTER FUNCTION um.generate_token() SET SCHEMA um_internal;
ALTER FUNCTION um.guard_escalation(bigint,bigint,bigint,text[],text,text,text,bigint) SET SCHEMA um_internal;
ALTER FUNCTION um.guard_last_active_root(bigint,bigint,text,text) SET SCHEMA um_internal;
ALTER FUNCTION um.guard_root_target(bigint,bigint,bigint,text,text) SET SCHEMA um_internal;
ALTER FUNCTION um.guard_team_grants(bigint,bigint,text,bigint) SET SCHEMA um_internal;
ALTER FUNCTION um.has_permission_support(internal) SET SCHEMA um_internal;
ALTER FUNCTION um.has_usable_root(bigint) SET SCHEMA um_internal;
ALTER FUNCTION um.hash_cost(text) SET SCHEMA um_internal;
ALTER FUNCTION um.hash_password(text) SET SCHEMA um_internal;
ALTER FUNCTION um.identifier_is_valid(text) SET SCHEMA um_internal;
ALTER FUNCTION um.identity_providers_before_delete() SET SCHEMA um_internal;
ALTER FUNCTION um.impersonation_escalates(bigint,bigint,bigint) SET SCHEMA um_internal;
ALTER FUNCTION um.insert_user(text,text,boolean,text,text,text,jsonb) SET SCHEMA um_internal;
ALTER FUNCTION um.invitations_before_write() SET SCHEMA um_internal;
ALTER FUNCTION um.is_root(bigint,bigint) SET SCHEMA um_internal;
ALTER FUNCTION um.locale_is_valid(text) SET SCHEMA um_internal;
ALTER FUNCTION um.lock_organization(bigint) SET SCHEMA um_internal;
ALTER FUNCTION um.login_settings() SET SCHEMA um_internal;
ALTER FUNCTION um.memberships_before_update() SET SCHEMA um_internal;
ALTER FUNCTION um.memberships_keep_root() SET SCHEMA um_internal;
ALTER FUNCTION um.mobile_is_valid(text) SET SCHEMA um_internal;
ALTER FUNCTION um.new_session(um.users,text) SET SCHEMA um_internal;
ALTER FUNCTION um.new_verification(bigint,boolean) SET SCHEMA um_internal;
ALTER FUNCTION um.organizations_before_write() SET SCHEMA um_internal;
ALTER FUNCTION um.parse_email_batch(text) SET SCHEMA um_internal;
ALTER FUNCTION um.password_matches(text,text) SET SCHEMA um_internal;
ALTER FUNCTION um.pattern_grants(text) SET SCHEMA um_internal;
ALTER FUNCTION um.permission_name_is_valid(text,boolean) SET SCHEMA um_internal;
ALTER FUNCTION um.permissions_before_write() SET SCHEMA um_internal;
ALTER FUNCTION um.pgcrypto_schema() SET SCHEMA um_internal;
ALTER FUNCTION um.policy_check(text,name,name) SET SCHEMA um_internal;
ALTER FUNCTION um.protection_note(regclass,text,text) SET SCHEMA um_internal;
ALTER FUNCTION um.protection_state(regclass[]) SET SCHEMA um_internal;
ALTER FUNCTION um.protection_tree(regclass) SET SCHEMA um_internal;
ALTER FUNCTION um.raise(text,text,text,text) SET SCHEMA um_internal;
ALTER FUNCTION um.record_login(bigint,text,text,text) SET SCHEMA um_internal;
ALTER FUNCTION um.ref_applicable_roles(bigint,bigint,bigint) SET SCHEMA um_internal;
ALTER FUNCTION um.ref_check_permission_name(text) SET SCHEMA um_internal;
ALTER FUNCTION um.ref_denial(bigint,bigint,bigint,boolean) SET SCHEMA um_internal;
ALTER FUNCTION um.ref_has_permission(bigint,text,bigint,bigint,boolean) SET SCHEMA um_internal;
ALTER FUNCTION um.ref_pattern_covers(text,text) SET SCHEMA um_internal;
ALTER FUNCTION um.require_member(bigint,bigint) SET SCHEMA um_internal;
ALTER FUNCTION um.require_organization(bigint) SET SCHEMA um_internal;
ALTER FUNCTION um.require_role(bigint,text) SET SCHEMA um_internal;
ALTER FUNCTION um.require_role_id(bigint) SET SCHEMA um_internal;
ALTER FUNCTION um.require_scope(bigint) SET SCHEMA um_internal;
ALTER FUNCTION um.require_team(bigint) SET SCHEMA um_internal;
ALTER FUNCTION um.require_user(bigint) SET SCHEMA um_internal;
ALTER FUNCTION um.role_administers_um(oid) SET SCHEMA um_internal;
ALTER FUNCTION um.role_grants(bigint) SET SCHEMA um_internal;
ALTER FUNCTION um.role_inclusions_check_cycle() SET SCHEMA um_internal;
ALTER FUNCTION um.role_permissions_before_write() SET SCHEMA um_internal;
ALTER FUNCTION um.roles_before_write() SET SCHEMA um_internal;
ALTER FUNCTION um.scopes_before_write() SET SCHEMA um_internal;
ALTER FUNCTION um.scopes_check_cycle() SET SCHEMA um_internal;
ALTER FUNCTION um.seed_builtin_roles(bigint) SET SCHEMA um_internal;
ALTER FUNCTION um.slug_is_valid(text) SET SCHEMA um_internal;
ALTER FUNCTION um.start_impersonation(bigint,bigint[]) SET SCHEMA um_internal;
ALTER FUNCTION um.team_members_before_update() SET SCHEMA um_internal;
ALTER FUNCTION um.team_members_keep_owner() SET SCHEMA um_internal;
ALTER FUNCTION um.teams_after_delete() SET SCHEMA um_internal;
ALTER FUNCTION um.teams_before_write() SET SCHEMA um_internal;
ALTER FUNCTION um.temporary_password() SET SCHEMA um_internal;
ALTER FUNCTION um.timezone_is_valid(text) SET SCHEMA um_internal;
ALTER FUNCTION um.token_hash(text) SET SCHEMA um_internal;
ALTER FUNCTION um.user_reference_check() SET SCHEMA um_internal;
ALTER FUNCTION um.user_reference_probe(bigint) SET SCHEMA um_internal;
ALTER FUNCTION um.users_before_write() SET SCHEMA um_internal;
ALTER FUNCTION um.users_end_sessions() SET SCHEMA um_internal;

-- Functions 0.3 does not otherwise change name the moved ones by their new
-- schema (the bodies are those of 0.2 with um_internal for um).
CREATE OR REPLACE FUNCTION @extschema@.um_explain_permission(user_id bigint, permission text, org_id bigint,
                                                  scope_id bigint DEFAULT NULL)
RETURNS TABLE (step text, outcome text, detail text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_denial text;
  v_granted boolean := false;
  r record;
BEGIN
  PERFORM um_internal.ref_check_permission_name(permission);
  step := 'permission'; outcome := 'known'; detail := format('"%s" is in the catalog', permission);
  RETURN NEXT;

  v_denial := um_internal.ref_denial(user_id, org_id, scope_id, scope_id IS NOT NULL);
  IF v_denial IS NOT NULL THEN
    step := 'verdict'; outcome := 'denied'; detail := v_denial;
    RETURN NEXT;
    RETURN;
  END IF;
  SELECT format('%s (user %s): active, may log in', u.email, u.id) INTO detail FROM um.users u WHERE u.id = um_explain_permission.user_id;
  step := 'user'; outcome := 'ok'; RETURN NEXT;
  SELECT format('member of "%s" as "%s" (membership %s, since %s)', o.slug, r2.name, m.id, m.created_at::date)
    INTO detail
    FROM um.memberships m JOIN um.organizations o ON o.id = m.org_id JOIN um.roles r2 ON r2.id = m.role_id
   WHERE m.org_id = um_explain_permission.org_id AND m.user_id = um_explain_permission.user_id;
  step := 'membership'; outcome := 'ok'; RETURN NEXT;

  IF scope_id IS NOT NULL THEN
    WITH RECURSIVE chain(id, parent_id, kind, name, inherit, depth) AS (
        SELECT s.id, s.parent_id, s.kind, s.name, s.inherit, 0 FROM um.scopes s WHERE s.id = um_explain_permission.scope_id
      UNION ALL
        SELECT p.id, p.parent_id, p.kind, p.name, p.inherit, c.depth + 1
          FROM um.scopes p JOIN chain c ON p.id = c.parent_id WHERE c.inherit)
    SELECT string_agg(format('%s "%s"%s', c.kind, c.name,
                             CASE WHEN NOT c.inherit THEN ' (breaks inheritance: nothing above applies)' ELSE '' END),
                      ' <- ' ORDER BY c.depth)
      INTO detail FROM chain c;
    step := 'scope path'; outcome := 'ok'; RETURN NEXT;
  END IF;

  FOR r IN
    WITH RECURSIVE paths(source, role_id, path) AS (
        SELECT a.source, a.role_id, ARRAY[a.role_id]
          FROM um_internal.ref_applicable_roles(um_explain_permission.user_id, um_explain_permission.org_id,
                                       um_explain_permission.scope_id) a
      UNION ALL
        SELECT p.source, ri.included_role_id, p.path || ri.included_role_id
          FROM paths p JOIN um.role_inclusions ri ON ri.role_id = p.role_id
         WHERE NOT ri.included_role_id = ANY (p.path))
    SELECT p.source,
           (SELECT string_agg(format('"%s"', ro.name), ' includes ' ORDER BY x.n)
              FROM unnest(p.path) WITH ORDINALITY AS x(id, n) JOIN um.roles ro ON ro.id = x.id) AS roles,
           rp.permission AS pattern
      FROM paths p JOIN um.role_permissions rp ON rp.role_id = p.role_id
     WHERE um_internal.ref_pattern_covers(rp.permission, um_explain_permission.permission)
     ORDER BY 1, 2, 3
  LOOP
    v_granted := true;
    step := 'grant'; outcome := 'grants';
    detail := format('%s: role %s grants "%s"', r.source, r.roles, r.pattern);
    RETURN NEXT;
  END LOOP;

  step := 'verdict';
  IF v_granted THEN
    outcome := 'granted'; detail := 'at least one grant above covers the permission';
  ELSE
    outcome := 'denied';
    detail := 'no role that applies here grants it'
              || CASE WHEN scope_id IS NULL THEN ' organization-wide (roles given on scope nodes count only in a check on a node)' ELSE '' END;
  END IF;
  RETURN NEXT;
END
$$;

CREATE OR REPLACE FUNCTION um_internal.audit_events_stamp()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := @extschema@.um_current_user_id();
BEGIN
  -- inside a lifecycle function the database role is its caller's, not um's owner's
  NEW.db_role := coalesce((SELECT r.rolname FROM pg_catalog.pg_roles r WHERE r.oid = um_internal.caller_role()), NEW.db_role);
  IF v_actor IS NOT NULL THEN
    NEW.actor_user_id := v_actor;
    NEW.impersonator_user_id := nullif(@extschema@.um_real_user_id(), v_actor);
  END IF;
  RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION um_internal.deletion_blocker(p_user_id bigint, OUT kind text, OUT what text, OUT detail text)
RETURNS record
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  SELECT 'organization', o.slug, format('The user is the only Root of organization "%s" who can log in, and it has other members.', o.slug)
    INTO kind, what, detail
    FROM um.memberships m JOIN um.roles r ON r.id = m.role_id JOIN um.organizations o ON o.id = m.org_id
   WHERE m.user_id = p_user_id AND r.builtin = 'root'
     AND NOT EXISTS (SELECT 1 FROM um.memberships m2 JOIN um.roles r2 ON r2.id = m2.role_id
                       JOIN um.users u2 ON u2.id = m2.user_id
                      WHERE m2.org_id = m.org_id AND r2.builtin = 'root' AND m2.user_id <> p_user_id
                        AND m2.status = 'active' AND u2.status = 'active' AND u2.allow_login)
     AND EXISTS (SELECT 1 FROM um.memberships m3 WHERE m3.org_id = m.org_id AND m3.user_id <> p_user_id)
   ORDER BY o.id LIMIT 1;
  IF FOUND THEN
    RETURN;
  END IF;
  SELECT 'team', t.name, format('The user owns team "%s" (organization %s), which has other members.', t.name, t.org_id)
    INTO kind, what, detail
    FROM um.team_members tm JOIN um.teams t ON t.id = tm.team_id
   WHERE tm.user_id = p_user_id AND tm.is_owner
     AND EXISTS (SELECT 1 FROM um.team_members o WHERE o.team_id = tm.team_id AND o.user_id <> p_user_id)
   ORDER BY t.id LIMIT 1;
  IF FOUND THEN
    RETURN;
  END IF;
  -- application rows that still hold the user: registered columns
  -- (um_add_user_reference) and foreign keys into um.users, each table read
  -- as its own owner (src/reference.c), never with um's rights
  SELECT CASE WHEN r.unsafe THEN 'foreign key' ELSE 'table' END, r.tbl::text,
         CASE WHEN r.unsafe
              THEN format('Table %s has a foreign key into um.users on column %s, which is not bigint: PostgreSQL would run its cast while deleting.', r.tbl, r.col)
              ELSE format('Rows of table %s still reference the user (column %s).', r.tbl, r.col) END
    INTO kind, what, detail
    FROM um_internal.user_reference_probe(p_user_id) r
   WHERE r.tbl IS NOT NULL;
END
$$;

CREATE OR REPLACE FUNCTION um_internal.erase_user(p_user_id bigint, p_action text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_block record;
  v_email text;
  v_orgs bigint[];
BEGIN
  PERFORM um_internal.assert_no_app_cascades();
  SELECT u.email INTO v_email FROM um.users u WHERE u.id = p_user_id FOR UPDATE;
  v_block := um_internal.deletion_blocker(p_user_id);
  IF v_block.kind IS NOT NULL THEN
    RAISE EXCEPTION 'user % cannot be deleted yet', p_user_id
      USING ERRCODE = 'UM052', DETAIL = v_block.detail,
            HINT = CASE v_block.kind
                     WHEN 'organization' THEN 'Make another member Root (um_transfer_org_ownership) first.'
                     WHEN 'team' THEN 'Transfer ownership of the team (um_transfer_team_ownership) first.'
                     WHEN 'foreign key' THEN format('Drop that foreign key of %s and register the column with um_add_user_reference() (um_lint() gives the statements).', v_block.what)
                     ELSE format('Delete or reassign the user''s rows in %s first.', v_block.what) END;
  END IF;
  SELECT array_agg(m.org_id ORDER BY m.org_id) INTO v_orgs FROM um.memberships m WHERE m.user_id = p_user_id;
  -- teams they own alone go with them; then every row about them
  DELETE FROM um.teams t
   WHERE EXISTS (SELECT 1 FROM um.team_members tm WHERE tm.team_id = t.id AND tm.user_id = p_user_id AND tm.is_owner);
  DELETE FROM um.invitations i WHERE lower(i.email) = lower(v_email);
  DELETE FROM um.users u WHERE u.id = p_user_id;   -- memberships, team seats, grants, sessions, links, tokens
  PERFORM um_internal.audit(p_action, NULL, 'user', p_user_id, jsonb_build_object('orgs', to_jsonb(coalesce(v_orgs, '{}'))));
END
$$;

CREATE OR REPLACE FUNCTION um_internal.guard_last_active_root(p_user_id bigint, p_org_id bigint, p_action text, p_what text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_org bigint;
BEGIN
  -- serialize with every other change to these organizations' Roots
  -- (two Roots disabling each other at once)
  PERFORM um_internal.lock_organization(m.org_id)
     FROM um.memberships m JOIN um.roles r ON r.id = m.role_id
    WHERE m.user_id = p_user_id AND r.builtin = 'root' AND (p_org_id IS NULL OR m.org_id = p_org_id)
    ORDER BY m.org_id;
  SELECT m.org_id INTO v_org
    FROM um.memberships m JOIN um.roles r ON r.id = m.role_id
   WHERE m.user_id = p_user_id AND r.builtin = 'root' AND (p_org_id IS NULL OR m.org_id = p_org_id)
     AND NOT EXISTS (SELECT 1 FROM um.memberships m2 JOIN um.roles r2 ON r2.id = m2.role_id
                       JOIN um.users u2 ON u2.id = m2.user_id
                      WHERE m2.org_id = m.org_id AND r2.builtin = 'root' AND m2.user_id <> p_user_id
                        AND m2.status = 'active' AND u2.status = 'active' AND u2.allow_login)
   ORDER BY m.org_id LIMIT 1;
  IF FOUND THEN
    PERFORM um_internal.deny(p_action, v_org, 'user', p_user_id, 'UM044',
      format('cannot %s the last active Root of organization %s', p_what, v_org),
      'An organization always keeps a Root who can log in.',
      'Make another member Root first (um_set_org_role or um_transfer_org_ownership).');
  END IF;
END
$$;

CREATE OR REPLACE FUNCTION um_internal.guard_root_target(p_actor bigint, p_org_id bigint, p_user_id bigint,
                                     p_action text, p_what text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF p_actor IS NOT NULL
     AND (p_actor <> p_user_id OR p_actor IS DISTINCT FROM @extschema@.um_real_user_id())
     AND um_internal.is_root(p_org_id, p_user_id) AND NOT um_internal.is_root(p_org_id, p_actor) THEN
    PERFORM um_internal.deny(p_action, p_org_id, 'user', p_user_id, 'UM073',
      format('only a Root may %s a Root', p_what),
      format('User %s is a Root of organization %s.', p_user_id, p_org_id),
      'Ask a Root of the organization.');
  END IF;
END
$$;

CREATE OR REPLACE FUNCTION um_internal.guard_team_grants(p_actor bigint, p_team_id bigint, p_action text, p_target_id bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  g record;
BEGIN
  IF p_actor IS NULL THEN
    RETURN;
  END IF;
  FOR g IN SELECT gr.org_id, gr.role_id, gr.scope_id, r.name
             FROM um.grants gr JOIN um.roles r ON r.id = gr.role_id
            WHERE gr.team_id = p_team_id ORDER BY gr.id LOOP
    PERFORM um_internal.guard_escalation(p_actor, g.org_id, g.scope_id, ARRAY(SELECT um_internal.role_grants(g.role_id)),
                                p_action, format('add a member to a team that holds role "%s"', g.name), 'user', p_target_id);
  END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION um_internal.hash_password(p_password text)
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_cost integer := (um_internal.login_settings()).password_hash_cost;   -- first: keeps the statement out of the log
  v text;
BEGIN
  IF p_password IS NULL OR char_length(p_password) < 8 OR octet_length(p_password) > 72 THEN
    RAISE EXCEPTION 'the new password is not acceptable'
      USING ERRCODE = 'UM068',
            DETAIL = CASE WHEN p_password IS NULL THEN 'No password was given.'
                          WHEN char_length(p_password) < 8 THEN 'It has fewer than 8 characters.'
                          ELSE 'It is longer than 72 bytes, the most bcrypt reads.' END,
            HINT = 'Choose a password of 8 characters to 72 bytes.';
  END IF;
  EXECUTE format('SELECT %1$I.crypt($1, %1$I.gen_salt(''bf'', $2))', um_internal.pgcrypto_schema())
     INTO v USING p_password, v_cost;
  RETURN v;
END
$$;

CREATE OR REPLACE FUNCTION um_internal.memberships_keep_root()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_org bigint;
  v_slug text;
BEGIN
  FOR v_org IN SELECT DISTINCT c.org_id FROM changed_rows c ORDER BY 1 LOOP
    CONTINUE WHEN NOT um_internal.lock_organization(v_org);   -- organization being deleted
    CONTINUE WHEN NOT EXISTS (SELECT 1 FROM um.memberships m WHERE m.org_id = v_org);
    IF NOT EXISTS (SELECT 1 FROM um.memberships m JOIN um.roles r ON r.id = m.role_id
                    WHERE m.org_id = v_org AND r.builtin = 'root') THEN
      SELECT slug INTO v_slug FROM um.organizations WHERE id = v_org;
      RAISE EXCEPTION 'organization "%" would be left without a Root', v_slug
        USING ERRCODE = 'UM044',
              DETAIL = 'An organization with members always has at least one member with the built-in Root role.',
              HINT = 'Make another member Root first, or transfer ownership of the organization.';
    END IF;
    IF TG_OP <> 'INSERT'
       AND EXISTS (SELECT 1 FROM changed_rows c JOIN um.roles r ON r.id = c.role_id
                     LEFT JOIN um.users u ON u.id = c.user_id
                    WHERE c.org_id = v_org AND r.builtin = 'root' AND c.status = 'active'
                      AND (u.id IS NULL OR (u.status = 'active' AND u.allow_login)))
       AND NOT um_internal.has_usable_root(v_org) THEN
      SELECT slug INTO v_slug FROM um.organizations WHERE id = v_org;
      RAISE EXCEPTION 'organization "%" would be left without a Root who can log in', v_slug
        USING ERRCODE = 'UM044',
              DETAIL = 'Its other Roots are suspended or may not log in.',
              HINT = 'Make an active member who can log in Root first, or enable the login of another Root.';
    END IF;
  END LOOP;
  RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION um_internal.new_session(p_user um.users, p_action text)
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_token text := um_internal.generate_token();
  v_session bigint;
BEGIN
  -- housekeeping, unless an application table references sessions (um
  -- never changes application rows: see um_internal.assert_no_app_cascades)
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c JOIN pg_catalog.pg_class r ON r.oid = c.conrelid
                  WHERE c.contype = 'f' AND c.confrelid = 'um.sessions'::regclass
                    AND r.relnamespace <> 'um'::regnamespace) THEN
    DELETE FROM um.sessions s WHERE s.user_id = p_user.id AND s.expires_at < now();
  END IF;
  -- stamped with the password the caller checked (p_user as it read it): a
  -- change committed meanwhile ends the session in um_begin
  INSERT INTO um.sessions (user_id, token_hash, expires_at, password_changed_at)
  VALUES (p_user.id, um_internal.token_hash(v_token), now() + make_interval(secs => (um_internal.login_settings()).session_lifetime_seconds),
          p_user.password_changed_at)
  RETURNING id INTO v_session;
  PERFORM um_internal.audit(p_action, NULL, 'user', p_user.id, jsonb_build_object('session_id', v_session));
  RETURN v_token;
END
$$;

CREATE OR REPLACE FUNCTION um_internal.organizations_before_write()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.slug = OLD.slug AND NEW.name = OLD.name
     AND NEW.password_login_disabled = OLD.password_login_disabled THEN
    RETURN NEW;                           -- e.g. um_internal.lock_organization
  END IF;
  IF NOT um_internal.slug_is_valid(NEW.slug) THEN
    RAISE EXCEPTION 'invalid organization slug "%"', NEW.slug
      USING ERRCODE = 'UM002',
            DETAIL = 'A slug has 1 to 63 lowercase ASCII letters, digits and hyphens, and starts and ends with a letter or digit.',
            HINT = 'Use something like "acme" or "acme-eu".';
  END IF;
  IF NOT um_internal.display_name_is_valid(NEW.name) THEN
    RAISE EXCEPTION 'invalid organization name "%"', NEW.name
      USING ERRCODE = 'UM003',
            DETAIL = 'A name has 1 to 200 characters, no leading or trailing blanks and no control characters.',
            HINT = 'Trim the name.';
  END IF;
  -- Checked when the setting is switched on.  (A new row cannot have an
  -- identity provider yet; rows that arrive with it on come from pg_restore,
  -- whose providers follow.)
  IF TG_OP = 'UPDATE' AND NEW.password_login_disabled AND NOT OLD.password_login_disabled
     AND NOT EXISTS (SELECT 1 FROM um.identity_providers p WHERE p.org_id = NEW.id) THEN
    RAISE EXCEPTION 'organization "%" has no identity provider', NEW.slug
      USING ERRCODE = 'UM045',
            DETAIL = 'Disabling password login without an identity provider would lock every member out.',
            HINT = 'Link and test an identity provider for the organization first, then disable password login.';
  END IF;
  RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION um_internal.password_matches(p_password text, p_hash text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_schema text := um_internal.pgcrypto_schema();
  v text;
BEGIN
  IF p_hash IS NULL OR p_password IS NULL OR octet_length(p_password) > 72 THEN
    EXECUTE format('SELECT %1$I.crypt($1, %1$I.gen_salt(''bf'', $2))', v_schema)
       INTO v USING coalesce(p_password, ''), (um_internal.login_settings()).password_hash_cost;
    RETURN false;
  END IF;
  EXECUTE format('SELECT %I.crypt($1, $2)', v_schema) INTO v USING p_password, p_hash;
  -- a hash made at a lower cost than today's is quicker to check than an
  -- unknown address (hashed at today's cost): spend today's cost as well,
  -- so that the time of a refusal does not tell which addresses exist
  IF um_internal.hash_cost(p_hash) < (um_internal.login_settings()).password_hash_cost THEN
    PERFORM um_internal.password_matches(p_password, NULL);
  END IF;
  RETURN v = p_hash;
END
$$;

CREATE OR REPLACE FUNCTION um_internal.ref_check_permission_name(p_permission text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM um_internal.assert_permission_name(p_permission, false);
  IF NOT EXISTS (SELECT 1 FROM um.permissions p WHERE p.name = p_permission) THEN
    RAISE EXCEPTION 'unknown permission "%"', p_permission
      USING ERRCODE = 'UM011',
            DETAIL = 'It is not in the permission catalog um.permissions.',
            HINT = 'Check the spelling, or register it first with um_register_permission().';
  END IF;
END
$$;

CREATE OR REPLACE FUNCTION um_internal.ref_has_permission(p_user_id bigint, p_permission text, p_org_id bigint,
                                      p_scope_id bigint DEFAULT NULL, p_has_scope boolean DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF p_permission IS NULL THEN
    RETURN false;
  END IF;
  PERFORM um_internal.ref_check_permission_name(p_permission);
  IF um_internal.ref_denial(p_user_id, p_org_id, p_scope_id, coalesce(p_has_scope, p_scope_id IS NOT NULL)) IS NOT NULL THEN
    RETURN false;
  END IF;
  RETURN EXISTS (
    WITH RECURSIVE closure(role_id) AS (
        SELECT a.role_id FROM um_internal.ref_applicable_roles(p_user_id, p_org_id, p_scope_id) a
      UNION
        SELECT ri.included_role_id FROM um.role_inclusions ri JOIN closure c ON ri.role_id = c.role_id)
    SELECT 1 FROM closure c JOIN um.role_permissions rp ON rp.role_id = c.role_id
     WHERE um_internal.ref_pattern_covers(rp.permission, p_permission));
END
$$;

CREATE OR REPLACE FUNCTION um_internal.role_inclusions_check_cycle()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_role text;
  v_included text;
BEGIN
  PERFORM um_internal.lock_organization(NEW.org_id);
  IF EXISTS (
      WITH RECURSIVE reach(role_id) AS (
        SELECT NEW.included_role_id
        UNION
        SELECT ri.included_role_id
          FROM um.role_inclusions ri JOIN reach ON ri.role_id = reach.role_id)
      SELECT 1 FROM reach WHERE reach.role_id = NEW.role_id) THEN
    SELECT name INTO v_role FROM um.roles WHERE id = NEW.role_id;
    SELECT name INTO v_included FROM um.roles WHERE id = NEW.included_role_id;
    RAISE EXCEPTION 'role "%" cannot include role "%": that would make a cycle', v_role, v_included
      USING ERRCODE = 'UM040',
            DETAIL = format('Role "%s" already includes role "%s", directly or through other roles.', v_included, v_role),
            HINT = 'Include the roles in one direction only; a composite role includes smaller ones.';
  END IF;
  RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION um_internal.teams_before_write()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.org_id <> OLD.org_id THEN
    RAISE EXCEPTION 'a team cannot move to another organization'
      USING ERRCODE = 'UM046',
            HINT = 'Create a team in the other organization instead.';
  END IF;
  IF NOT um_internal.display_name_is_valid(NEW.name, 100) THEN
    RAISE EXCEPTION 'invalid team name "%"', NEW.name
      USING ERRCODE = 'UM003',
            DETAIL = 'A name has 1 to 100 characters, no leading or trailing blanks and no control characters.',
            HINT = 'Trim the name.';
  END IF;
  IF TG_OP = 'INSERT' AND NEW.scope_id IS NULL THEN
    -- the team space: a top-level scope node of kind "team"
    INSERT INTO um.scopes (org_id, kind, name) VALUES (NEW.org_id, 'team', NEW.name)
      RETURNING id INTO NEW.scope_id;
  END IF;
  RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION @extschema@.um_protect_table(tbl regclass, org_column name, resource text,
                                             scope_column name DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_kind "char";
  v_rel regclass;
  v_action text;
  v_parts regclass[];
  v_before text;
BEGIN
  IF tbl IS NULL OR org_column IS NULL OR resource IS NULL THEN
    RAISE EXCEPTION 'um_protect_table needs a table, its organization column and a resource'
      USING ERRCODE = 'UM080', HINT = 'For example: SELECT um_protect_table(''invoices'', ''org_id'', ''invoice'');';
  END IF;
  SELECT c.relkind INTO v_kind FROM pg_catalog.pg_class c WHERE c.oid = tbl;
  IF v_kind NOT IN ('r', 'p') THEN
    RAISE EXCEPTION '% is not a table', tbl
      USING ERRCODE = 'UM080', HINT = 'Protect the tables a view reads; make the view security_invoker.';
  END IF;
  IF (SELECT c.relpersistence FROM pg_catalog.pg_class c WHERE c.oid = tbl) = 't' THEN
    RAISE EXCEPTION 'cannot protect temporary table %', tbl
      USING ERRCODE = 'UM080', HINT = 'Protect permanent tables: a temporary one is its session''s alone.';
  END IF;
  IF NOT pg_has_role(current_user, (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = tbl), 'USAGE') THEN
    RAISE EXCEPTION 'must be the owner of table % to protect it', tbl
      USING ERRCODE = 'insufficient_privilege', HINT = 'Run it as the table''s owner (or a member of the owning role).';
  END IF;
  PERFORM um_internal.check_column(tbl, org_column, 'organization');
  IF scope_column IS NOT NULL THEN
    PERFORM um_internal.check_column(tbl, scope_column, 'scope node');
  END IF;
  -- the four permissions must be valid names (unknown ones are registered below)
  FOREACH v_action IN ARRAY ARRAY['read', 'create', 'update', 'delete'] LOOP
    PERFORM um_internal.assert_permission_name(resource || ':' || v_action, false);
  END LOOP;

  -- PostgreSQL checks that the caller owns each relation (this function
  -- runs with the caller's rights)
  SELECT array_agg(t) INTO v_parts FROM um_internal.protection_tree(tbl) t;
  v_before := um_internal.protection_state(v_parts);
  FOREACH v_rel IN ARRAY v_parts LOOP
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY', v_rel);
    PERFORM um_internal.drop_um_policies(v_rel);
    EXECUTE format('CREATE POLICY um_read ON %s FOR SELECT USING (%s)', v_rel, um_internal.policy_check(resource || ':read', org_column, scope_column));
    EXECUTE format('CREATE POLICY um_create ON %s FOR INSERT WITH CHECK (%s)', v_rel, um_internal.policy_check(resource || ':create', org_column, scope_column));
    EXECUTE format('CREATE POLICY um_update ON %1$s FOR UPDATE USING (%2$s) WITH CHECK (%2$s)', v_rel, um_internal.policy_check(resource || ':update', org_column, scope_column));
    EXECUTE format('CREATE POLICY um_delete ON %s FOR DELETE USING (%s)', v_rel, um_internal.policy_check(resource || ':delete', org_column, scope_column));
  END LOOP;
  -- the catalog check (and registration) always; the audit event only for a change
  IF um_internal.protection_state(v_parts) IS DISTINCT FROM v_before
     OR EXISTS (SELECT 1 FROM unnest(ARRAY['read', 'create', 'update', 'delete']) a
                 WHERE NOT EXISTS (SELECT 1 FROM um.permissions p WHERE p.name = um_protect_table.resource || ':' || a)) THEN
    PERFORM um_internal.protection_note(tbl, 'table.protect', resource);
  END IF;
END
$$;

CREATE OR REPLACE FUNCTION @extschema@.um_unprotect_table(tbl regclass, disable_rls boolean DEFAULT false)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_rel regclass;
  v_found boolean := false;
BEGIN
  IF tbl IS NULL THEN
    RETURN false;
  END IF;
  IF NOT pg_has_role(current_user, (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = tbl), 'USAGE') THEN
    RAISE EXCEPTION 'must be the owner of table % to unprotect it', tbl
      USING ERRCODE = 'insufficient_privilege', HINT = 'Run it as the table''s owner (or a member of the owning role).';
  END IF;
  FOR v_rel IN SELECT t FROM um_internal.protection_tree(tbl) t
                WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_policy p
                               WHERE p.polrelid = t AND p.polname IN ('um_read', 'um_create', 'um_update', 'um_delete')) LOOP
    v_found := true;
    PERFORM um_internal.drop_um_policies(v_rel);
    -- Row-level security stays on (with no policy it denies everything)
    -- unless asked otherwise, and then only where no other policy remains.
    IF disable_rls AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_policy p WHERE p.polrelid = v_rel) THEN
      EXECUTE format('ALTER TABLE %s DISABLE ROW LEVEL SECURITY, NO FORCE ROW LEVEL SECURITY', v_rel);
    END IF;
  END LOOP;
  IF v_found THEN
    PERFORM um_internal.protection_note(tbl, 'table.unprotect', NULL);
  END IF;
  RETURN v_found;
END
$$;

-- Trigger functions that 0.3 re-creates further down, as they were in 0.2
-- but with the new names: statements below write to their tables first.
CREATE OR REPLACE FUNCTION um_internal.invitations_before_write()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF NOT um_internal.email_is_valid(NEW.email) THEN
    RAISE EXCEPTION 'invalid email address "%"', NEW.email
      USING ERRCODE = 'UM001',
            DETAIL = 'An address is local-part@domain, in ASCII, at most 254 bytes, with a domain of at least two labels.',
            HINT = 'Check the address for typos; write internationalized domains in their xn-- (punycode) form.';
  END IF;
  RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION um_internal.permissions_before_write()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_roles bigint;
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM um_internal.assert_permission_name(NEW.name, false);
    RETURN NEW;
  END IF;
  IF OLD.builtin THEN
    RAISE EXCEPTION 'built-in permission "%" cannot be %', OLD.name,
                    CASE TG_OP WHEN 'DELETE' THEN 'removed' ELSE 'changed' END
      USING ERRCODE = 'UM048',
            HINT = 'um itself checks built-in permissions; remove them from roles instead.';
  END IF;
  IF TG_OP = 'UPDATE' THEN
    IF NEW.name <> OLD.name THEN
      RAISE EXCEPTION 'permission "%" cannot be renamed', OLD.name
        USING ERRCODE = 'UM048',
              HINT = 'Register the new name, move the grants, then remove the old one.';
    END IF;
    RETURN NEW;
  END IF;
  SELECT count(*) INTO v_roles FROM um.role_permissions rp WHERE rp.permission = OLD.name;
  IF v_roles > 0 THEN
    RAISE EXCEPTION 'permission "%" is still granted by % role(s)', OLD.name, v_roles
      USING ERRCODE = 'UM048',
            HINT = 'Remove it from those roles first (see um.role_permissions).';
  END IF;
  RETURN OLD;
END
$$;

CREATE OR REPLACE FUNCTION um_internal.role_permissions_before_write()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM um_internal.assert_permission_name(NEW.permission, true);
  IF NOT EXISTS (SELECT 1 FROM um.permissions p
                  WHERE @extschema@.um_permission_matches(NEW.permission, p.name)) THEN
    RAISE EXCEPTION 'unknown permission "%"', NEW.permission
      USING ERRCODE = 'UM011',
            DETAIL = 'No permission in the catalog (um.permissions) matches it.',
            HINT = 'Check the spelling, or register the permission first with um_register_permission().';
  END IF;
  RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION um_internal.roles_before_write()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    IF OLD.builtin IS NOT NULL
       AND EXISTS (SELECT 1 FROM um.organizations o WHERE o.id = OLD.org_id) THEN
      RAISE EXCEPTION 'built-in role "%" cannot be deleted', OLD.name
        USING ERRCODE = 'UM042',
              DETAIL = 'Every organization keeps its built-in roles; their permissions can be edited.',
              HINT = 'Edit the role''s permissions instead, or create a custom role.';
    END IF;
    RETURN OLD;
  END IF;
  IF TG_OP = 'UPDATE' THEN
    IF NEW.org_id <> OLD.org_id THEN
      RAISE EXCEPTION 'a role cannot move to another organization'
        USING ERRCODE = 'UM046',
              HINT = 'Create a role of the same name in the other organization.';
    END IF;
    IF OLD.builtin IS NOT NULL AND (NEW.name <> OLD.name OR NEW.builtin IS DISTINCT FROM OLD.builtin) THEN
      RAISE EXCEPTION 'built-in role "%" cannot be renamed', OLD.name
        USING ERRCODE = 'UM042',
              DETAIL = 'Built-in roles keep their names in every organization so that everyone means the same role by them.',
              HINT = 'Create a custom role with the name you want, including the built-in role if it should grant the same.';
    END IF;
    IF OLD.builtin IS NULL AND NEW.builtin IS NOT NULL THEN
      RAISE EXCEPTION 'custom role "%" cannot become a built-in role', OLD.name
        USING ERRCODE = 'UM042',
              HINT = 'Built-in roles are created with the organization.';
    END IF;
  END IF;
  IF NOT um_internal.display_name_is_valid(NEW.name, 100) THEN
    RAISE EXCEPTION 'invalid role name "%"', NEW.name
      USING ERRCODE = 'UM003',
            DETAIL = 'A name has 1 to 100 characters, no leading or trailing blanks and no control characters.',
            HINT = 'Trim the name.';
  END IF;
  RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION um_internal.scopes_before_write()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_parent_org bigint;
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.org_id <> OLD.org_id THEN
    RAISE EXCEPTION 'a scope node cannot move to another organization'
      USING ERRCODE = 'UM046',
            HINT = 'Create the node in the other organization instead.';
  END IF;
  IF NOT um_internal.identifier_is_valid(NEW.kind) THEN
    RAISE EXCEPTION 'invalid scope kind "%"', NEW.kind
      USING ERRCODE = 'UM008',
            HINT = 'A kind is a lowercase identifier such as project, environment or dashboard_group.';
  END IF;
  IF NOT um_internal.display_name_is_valid(NEW.name) THEN
    RAISE EXCEPTION 'invalid scope name "%"', NEW.name
      USING ERRCODE = 'UM003',
            DETAIL = 'A name has 1 to 200 characters, no leading or trailing blanks and no control characters.',
            HINT = 'Trim the name.';
  END IF;
  IF NEW.parent_id = NEW.id THEN
    RAISE EXCEPTION 'scope node % cannot be its own parent', NEW.id
      USING ERRCODE = 'UM041',
            HINT = 'Pick another node as the parent, or NULL for a top-level node.';
  END IF;
  -- A parent that does not exist (yet) is left to the foreign key, which is
  -- checked at the end of the statement: a bulk load (pg_restore's COPY) may
  -- bring a child before its parent.
  IF NEW.parent_id IS NOT NULL
     AND (TG_OP = 'INSERT' OR NEW.parent_id IS DISTINCT FROM OLD.parent_id) THEN
    SELECT s.org_id INTO v_parent_org FROM um.scopes s WHERE s.id = NEW.parent_id;
    IF FOUND AND v_parent_org <> NEW.org_id THEN
      RAISE EXCEPTION 'scope node % belongs to another organization', NEW.parent_id
        USING ERRCODE = 'UM046',
              DETAIL = 'A node''s parent must be in the same organization as the node.',
              HINT = 'Pick a parent from the same organization (um.scopes.org_id).';
    END IF;
  END IF;
  RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION um_internal.scopes_check_cycle()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF NEW.parent_id IS NULL THEN
    RETURN NULL;
  END IF;
  IF TG_OP = 'UPDATE' THEN
    PERFORM um_internal.lock_organization(NEW.org_id);
  END IF;
  IF EXISTS (
      WITH RECURSIVE up(id) AS (
        SELECT NEW.parent_id
        UNION
        SELECT s.parent_id FROM um.scopes s JOIN up ON s.id = up.id
         WHERE s.parent_id IS NOT NULL)
      SELECT 1 FROM up WHERE up.id = NEW.id) THEN
    RAISE EXCEPTION 'scope node % cannot be placed under node %: that would make a cycle', NEW.id, NEW.parent_id
      USING ERRCODE = 'UM041',
            DETAIL = format('Node %s is node %s itself or one of its descendants.', NEW.parent_id, NEW.id),
            HINT = 'Move the node under a node outside its own subtree.';
  END IF;
  RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION um_internal.users_before_write()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF NOT um_internal.email_is_valid(NEW.email) THEN
    RAISE EXCEPTION 'invalid email address "%"', NEW.email
      USING ERRCODE = 'UM001',
            DETAIL = 'An address is local-part@domain, in ASCII, at most 254 bytes, with a domain of at least two labels.',
            HINT = 'Check the address for typos; write internationalized domains in their xn-- (punycode) form.';
  END IF;
  IF NEW.name IS NOT NULL AND NOT um_internal.display_name_is_valid(NEW.name) THEN
    RAISE EXCEPTION 'invalid user name "%"', NEW.name
      USING ERRCODE = 'UM003',
            DETAIL = 'A name has 1 to 200 characters, no leading or trailing blanks and no control characters.',
            HINT = 'Trim the name, or pass NULL for a user without a name.';
  END IF;
  IF (TG_OP = 'INSERT' OR NEW.timezone IS DISTINCT FROM OLD.timezone)
     AND NOT um_internal.timezone_is_valid(NEW.timezone) THEN
    RAISE EXCEPTION 'unknown time zone "%"', NEW.timezone
      USING ERRCODE = 'UM004',
            HINT = 'Use an IANA time zone name such as UTC, Europe/Paris or America/New_York (see pg_timezone_names).';
  END IF;
  IF NOT um_internal.locale_is_valid(NEW.locale) THEN
    RAISE EXCEPTION 'invalid locale "%"', NEW.locale
      USING ERRCODE = 'UM005',
            HINT = 'Use a BCP 47 language tag such as en, en-GB, pt-BR or zh-Hant-TW.';
  END IF;
  IF NEW.mobile IS NOT NULL AND NOT um_internal.mobile_is_valid(NEW.mobile) THEN
    RAISE EXCEPTION 'invalid mobile number "%"', NEW.mobile
      USING ERRCODE = 'UM006',
            HINT = 'Use the E.164 form: "+", country code and number, digits only, e.g. +14155550123.';
  END IF;
  IF jsonb_typeof(NEW.attributes) IS DISTINCT FROM 'object' THEN
    RAISE EXCEPTION 'user attributes must be a JSON object'
      USING ERRCODE = 'UM007',
            DETAIL = format('The value given is a JSON %s.', coalesce(jsonb_typeof(NEW.attributes), 'null')),
            HINT = 'Pass key/value pairs, e.g. ''{"department": "finance"}''.';
  END IF;

  IF TG_OP = 'UPDATE' THEN
    NEW.updated_at := now();
    IF lower(NEW.email) <> lower(OLD.email) THEN
      NEW.email_verified_at := NULL;      -- a new address must be verified again
    END IF;
  END IF;
  -- a change of status records (or clears) when the user was suspended
  IF TG_OP = 'INSERT' OR NEW.status <> OLD.status THEN
    NEW.suspended_at := CASE WHEN NEW.status = 'suspended' THEN coalesce(NEW.suspended_at, now()) END;
  END IF;
  RETURN NEW;
END
$$;

-- The comment of um_accept_invitation said an existing user could accept
-- logged out; 0.2 refuses that (UM056).
COMMENT ON FUNCTION @extschema@.um_accept_invitation(text, text, text) IS
  'join with an invitation token: logged out, a new address gets an account with the password given (unverified until its mailbox is proven); an existing account accepts only logged in as itself; returns the user id';

-- The registry of um's tables: what each holds for the rest of um.  The
-- cache's invalidation triggers (70_evaluator.sql), the row-level security
-- of um's own tables (94_own_rls.sql), pg_dump's configuration
-- (99_dump.sql), um_check_integrity() and the tests read it; a table added
-- to um gets its row here and nothing else to remember.
CREATE TABLE um.state_tables (
  relname name PRIMARY KEY,
  access text NOT NULL CONSTRAINT state_tables_access_check CHECK (access IN ('tenant', 'secret', 'catalog')),
  read_rule text,
  readable_columns name[],
  evaluator_input boolean NOT NULL DEFAULT false,
  invalidating_columns name[],
  cache_key text CONSTRAINT state_tables_cache_key_check
    CHECK (cache_key ~ '^(user|org):[a-z_]+(\|(user|org):[a-z_]+)*$'),
  dump_filter text,
  CONSTRAINT state_tables_rule_check CHECK ((access = 'tenant') = (read_rule IS NOT NULL)),
  CONSTRAINT state_tables_invalidating_check CHECK (invalidating_columns IS NULL OR evaluator_input),
  CONSTRAINT state_tables_cache_key_input_check CHECK (cache_key IS NULL OR evaluator_input)
);
COMMENT ON TABLE um.state_tables IS 'the registry of um''s tables, which invalidation triggers, um''s own row-level security, pg_dump''s configuration and the integrity checks are made from (installed by um, not user data)';
COMMENT ON COLUMN um.state_tables.relname IS 'a table in schema um';
COMMENT ON COLUMN um.state_tables.access IS 'tenant: application roles read the rows read_rule allows; secret: um administrators only; catalog: everybody reads it, nobody but um writes it';
COMMENT ON COLUMN um.state_tables.read_rule IS 'for tenant tables, the policy expression of the rows an application role may read; %1$I stands for the extension''s schema';
COMMENT ON COLUMN um.state_tables.readable_columns IS 'the columns application roles may read, when not all (the rest hold secrets)';
COMMENT ON COLUMN um.state_tables.evaluator_input IS 'um_has_permission''s answers depend on its rows: a change drops the cache entries it touches in every backend';
COMMENT ON COLUMN um.state_tables.invalidating_columns IS 'the columns whose update invalidates, when not all';
COMMENT ON COLUMN um.state_tables.cache_key IS 'whose cache entries a changed row touches: user:<column> (that user''s) or org:<column> (that organization''s), alternatives after | (the first non-NULL column decides); NULL: every entry';
COMMENT ON COLUMN um.state_tables.dump_filter IS 'pg_dump keeps the rows this condition selects ('''' for all), with the table''s id sequence; NULL: made by um''s script, not dumped';

INSERT INTO um.state_tables (relname, access, read_rule, readable_columns, evaluator_input, invalidating_columns, cache_key, dump_filter) VALUES
  ('organizations',     'tenant', '%1$I.um_has_permission(''org:read'', id)', NULL, false, NULL, NULL, ''),
  ('users',             'tenant', 'id = %1$I.um_current_user_id() OR EXISTS (SELECT 1 FROM um.memberships m WHERE m.user_id = users.id AND %1$I.um_has_permission(''member:read'', m.org_id))',
                        '{id,email,name,timezone,locale,mobile,allow_login,status,suspended_at,email_verified_at,attributes,created_at,updated_at}',
                        true, '{id,status,allow_login}', 'user:id', ''),
  ('builtin_roles',     'catalog', NULL, NULL, false, NULL, NULL, NULL),
  ('roles',             'tenant', '%1$I.um_has_permission(''role:read'', org_id)', NULL, true, NULL, 'org:org_id', ''),
  ('role_inclusions',   'tenant', '%1$I.um_has_permission(''role:read'', org_id)', NULL, true, NULL, 'org:org_id', ''),
  ('permissions',       'catalog', NULL, NULL, true, NULL, NULL, 'WHERE NOT builtin'),
  ('role_permissions',  'tenant', '%1$I.um_has_permission(''role:read'', org_id)', NULL, true, NULL, 'org:org_id', ''),
  ('scopes',            'tenant', '%1$I.um_has_permission(''scope:read'', org_id)', NULL, true, NULL, 'org:org_id', ''),
  ('memberships',       'tenant', '%1$I.um_has_permission(''member:read'', org_id) OR user_id = %1$I.um_current_user_id(org_id)', NULL, true, NULL, 'user:user_id', ''),
  ('teams',             'tenant', '%1$I.um_has_permission(''team:read'', org_id)', NULL, true, NULL, 'org:org_id', ''),
  ('team_members',      'tenant', '%1$I.um_has_permission(''team:read'', org_id)', NULL, true, NULL, 'user:user_id', ''),
  ('team_member_roles', 'tenant', '%1$I.um_has_permission(''team:read'', org_id)', NULL, true, NULL, 'user:user_id', ''),
  ('grants',            'tenant', '%1$I.um_has_permission(''role:read'', org_id)', NULL, true, NULL, 'user:user_id|org:org_id', ''),
  ('invitations',       'tenant', '%1$I.um_has_permission(''member:invite'', org_id)', NULL, false, NULL, NULL, ''),
  ('sessions',          'secret', NULL, NULL, false, NULL, NULL, ''),
  ('identity_providers', 'secret', NULL, NULL, false, NULL, NULL, ''),
  ('user_identities',   'secret', NULL, NULL, false, NULL, NULL, ''),
  -- events about oneself: those of an organization only where the identity
  -- reaches it (an impersonator sees the target's events in the impersonated
  -- organizations only), those of none only as oneself
  ('audit_events',      'tenant', '%1$I.um_has_permission(''audit:read'', org_id) OR (target_type = ''user'' AND (target_id = %1$I.um_current_user_id(org_id) OR (org_id IS NULL AND target_id = %1$I.um_current_user_id() AND target_id = %1$I.um_real_user_id())))',
                        NULL, false, NULL, NULL, ''),
  ('builtin_role_permissions', 'catalog', NULL, NULL, false, NULL, NULL, NULL),
  ('cache_sentinel',    'secret', NULL, NULL, false, NULL, NULL, NULL),
  ('verification_tokens', 'secret', NULL, NULL, false, NULL, NULL, ''),
  ('state_tables',      'catalog', NULL, NULL, false, NULL, NULL, NULL);
GRANT SELECT ON um.state_tables TO PUBLIC;

-- um_check_integrity() also checks um's own tables against the registry
CREATE OR REPLACE FUNCTION @extschema@.um_check_integrity()
RETURNS TABLE (invariant text, object text, detail text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  -- an organization with members keeps a Root
  SELECT 'organization has a Root', format('organization %s (%s)', o.id, o.slug),
         format('%s members, none of them Root', (SELECT count(*) FROM um.memberships m WHERE m.org_id = o.id))
    FROM um.organizations o
   WHERE EXISTS (SELECT 1 FROM um.memberships m WHERE m.org_id = o.id)
     AND NOT EXISTS (SELECT 1 FROM um.memberships m JOIN um.roles r ON r.id = m.role_id
                      WHERE m.org_id = o.id AND r.builtin = 'root')
  UNION ALL
  -- ... and a Root who can log in
  SELECT 'organization has a Root who can log in', format('organization %s (%s)', o.id, o.slug),
         'every Root is suspended (in the organization or everywhere) or may not log in'
    FROM um.organizations o
   WHERE EXISTS (SELECT 1 FROM um.memberships m JOIN um.roles r ON r.id = m.role_id
                  WHERE m.org_id = o.id AND r.builtin = 'root')
     AND NOT um_internal.has_usable_root(o.id)
  UNION ALL
  -- every organization has each built-in role
  SELECT 'organization has its built-in roles', format('organization %s (%s)', o.id, o.slug),
         'missing: ' || string_agg(b.key, ', ' ORDER BY b.position)
    FROM um.organizations o CROSS JOIN um.builtin_roles b
   WHERE NOT EXISTS (SELECT 1 FROM um.roles r WHERE r.org_id = o.id AND r.builtin = b.key)
   GROUP BY o.id, o.slug
  UNION ALL
  -- assignments point at roles, scopes, teams and members of their own organization
  SELECT 'membership role in the same organization', format('membership %s', m.id),
         format('role %s belongs to %s, the membership to organization %s', m.role_id,
                coalesce((SELECT 'organization ' || r.org_id FROM um.roles r WHERE r.id = m.role_id), 'no organization (missing)'), m.org_id)
    FROM um.memberships m
   WHERE NOT EXISTS (SELECT 1 FROM um.roles r WHERE r.id = m.role_id AND r.org_id = m.org_id)
  UNION ALL
  SELECT 'grant targets in the same organization', format('grant %s', g.id),
         concat_ws('; ',
           CASE WHEN NOT EXISTS (SELECT 1 FROM um.roles r WHERE r.id = g.role_id AND r.org_id = g.org_id)
                THEN format('role %s is missing or of another organization', g.role_id) END,
           CASE WHEN g.scope_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM um.scopes s WHERE s.id = g.scope_id AND s.org_id = g.org_id)
                THEN format('scope node %s is missing or of another organization', g.scope_id) END,
           CASE WHEN g.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM um.memberships m WHERE m.user_id = g.user_id AND m.org_id = g.org_id)
                THEN format('user %s is not a member', g.user_id) END,
           CASE WHEN g.team_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM um.teams t WHERE t.id = g.team_id AND t.org_id = g.org_id)
                THEN format('team %s is missing or of another organization', g.team_id) END)
    FROM um.grants g
   WHERE NOT EXISTS (SELECT 1 FROM um.roles r WHERE r.id = g.role_id AND r.org_id = g.org_id)
      OR (g.scope_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM um.scopes s WHERE s.id = g.scope_id AND s.org_id = g.org_id))
      OR (g.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM um.memberships m WHERE m.user_id = g.user_id AND m.org_id = g.org_id))
      OR (g.team_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM um.teams t WHERE t.id = g.team_id AND t.org_id = g.org_id))
  UNION ALL
  SELECT 'role permission of an existing role', format('role %s', rp.role_id),
         format('the role is missing from organization %s; %s permission rows remain', rp.org_id, count(*))
    FROM um.role_permissions rp
   WHERE NOT EXISTS (SELECT 1 FROM um.roles r WHERE r.id = rp.role_id AND r.org_id = rp.org_id)
   GROUP BY rp.org_id, rp.role_id
  UNION ALL
  SELECT 'role inclusion in the same organization', format('role %s', ri.role_id),
         format('includes role %s; one of them is missing or of another organization than %s', ri.included_role_id, ri.org_id)
    FROM um.role_inclusions ri
   WHERE NOT EXISTS (SELECT 1 FROM um.roles r WHERE r.id = ri.role_id AND r.org_id = ri.org_id)
      OR NOT EXISTS (SELECT 1 FROM um.roles r WHERE r.id = ri.included_role_id AND r.org_id = ri.org_id)
  UNION ALL
  SELECT 'membership of an existing user', format('membership %s', m.id),
         format('user %s is missing', m.user_id)
    FROM um.memberships m
   WHERE NOT EXISTS (SELECT 1 FROM um.users u WHERE u.id = m.user_id)
  UNION ALL
  SELECT 'invitation targets in the same organization', format('invitation %s', i.id),
         concat_ws('; ',
           CASE WHEN NOT EXISTS (SELECT 1 FROM um.roles r WHERE r.id = i.role_id AND r.org_id = i.org_id)
                THEN format('role %s is missing or of another organization', i.role_id) END,
           CASE WHEN i.team_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM um.teams t WHERE t.id = i.team_id AND t.org_id = i.org_id)
                THEN format('team %s is missing or of another organization', i.team_id) END)
    FROM um.invitations i
   WHERE NOT EXISTS (SELECT 1 FROM um.roles r WHERE r.id = i.role_id AND r.org_id = i.org_id)
      OR (i.team_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM um.teams t WHERE t.id = i.team_id AND t.org_id = i.org_id))
  UNION ALL
  SELECT 'identity link to a provider of the organization and an existing user',
         format('provider %s, subject %s', ui.provider_id, ui.subject),
         concat_ws('; ',
           CASE WHEN NOT EXISTS (SELECT 1 FROM um.identity_providers p WHERE p.id = ui.provider_id AND p.org_id = ui.org_id)
                THEN format('provider %s is missing or of another organization', ui.provider_id) END,
           CASE WHEN NOT EXISTS (SELECT 1 FROM um.users u WHERE u.id = ui.user_id)
                THEN format('user %s is missing', ui.user_id) END)
    FROM um.user_identities ui
   WHERE NOT EXISTS (SELECT 1 FROM um.identity_providers p WHERE p.id = ui.provider_id AND p.org_id = ui.org_id)
      OR NOT EXISTS (SELECT 1 FROM um.users u WHERE u.id = ui.user_id)
  UNION ALL
  SELECT 'team role in the same organization', format('team %s, user %s', tr.team_id, tr.user_id),
         format('role %s is missing or of another organization', tr.role_id)
    FROM um.team_member_roles tr
   WHERE NOT EXISTS (SELECT 1 FROM um.roles r WHERE r.id = tr.role_id AND r.org_id = tr.org_id)
  UNION ALL
  -- teams: members are members of the organization; a team with members has one owner
  SELECT 'team members belong to the organization', format('team %s', tm.team_id),
         format('user %s is not a member of organization %s', tm.user_id, tm.org_id)
    FROM um.team_members tm
   WHERE NOT EXISTS (SELECT 1 FROM um.memberships m WHERE m.org_id = tm.org_id AND m.user_id = tm.user_id)
  UNION ALL
  SELECT 'team has an owner', format('team %s (%s)', t.id, t.name),
         format('%s members, %s owners', count(tm.user_id), count(tm.user_id) FILTER (WHERE tm.is_owner))
    FROM um.teams t JOIN um.team_members tm ON tm.team_id = t.id
   GROUP BY t.id, t.name
  HAVING count(tm.user_id) FILTER (WHERE tm.is_owner) <> 1
  UNION ALL
  -- scope trees and role inclusions have no cycles, and stay in their organization
  SELECT 'scope tree has no cycle', format('scope node %s', c.id), 'it is its own ancestor'
    FROM (WITH RECURSIVE walk(start, node, depth) AS (
            SELECT s.id, s.parent_id, 1 FROM um.scopes s WHERE s.parent_id IS NOT NULL
            UNION ALL
            SELECT w.start, s.parent_id, w.depth + 1 FROM walk w JOIN um.scopes s ON s.id = w.node
             WHERE s.parent_id IS NOT NULL AND w.node <> w.start AND w.depth < 10000)
          SELECT DISTINCT start AS id FROM walk WHERE node = start) c
  UNION ALL
  SELECT 'scope parent in the same organization', format('scope node %s', s.id),
         format('parent %s is missing or of another organization', s.parent_id)
    FROM um.scopes s
   WHERE s.parent_id IS NOT NULL
     AND NOT EXISTS (SELECT 1 FROM um.scopes p WHERE p.id = s.parent_id AND p.org_id = s.org_id)
  UNION ALL
  SELECT 'role inclusions have no cycle', format('role %s', c.id), 'it includes itself'
    FROM (WITH RECURSIVE walk(start, node, depth) AS (
            SELECT ri.role_id, ri.included_role_id, 1 FROM um.role_inclusions ri
            UNION ALL
            SELECT w.start, ri.included_role_id, w.depth + 1 FROM walk w JOIN um.role_inclusions ri ON ri.role_id = w.node
             WHERE w.node <> w.start AND w.depth < 10000)
          SELECT DISTINCT start AS id FROM walk WHERE node = start) c
  UNION ALL
  -- users: a suspension has its time
  SELECT 'suspension is recorded', format('user %s', u.id), 'status and suspended_at disagree'
    FROM um.users u
   WHERE (u.status = 'suspended') <> (u.suspended_at IS NOT NULL)
  UNION ALL
  -- sessions belong to users who may log in (um_begin refuses the others; they should be ended)
  SELECT 'sessions of blocked users are ended', format('session %s', s.id),
         format('user %s is %s, and the session is still open', s.user_id,
                CASE WHEN u.id IS NULL THEN 'missing' WHEN u.status <> 'active' THEN 'suspended' ELSE 'not allowed to log in' END)
    FROM um.sessions s LEFT JOIN um.users u ON u.id = s.user_id
   WHERE s.revoked_at IS NULL AND s.expires_at > now()
     AND (u.id IS NULL OR u.status <> 'active' OR NOT u.allow_login)
  UNION ALL
  -- um's tables have what um.state_tables says: every one registered, row
  -- level security forced on those holding tenant data or secrets, the
  -- permission cache told of every change to what its answers depend on
  SELECT 'um table is registered', format('table um.%s', c.relname), 'not in um.state_tables: nothing protects or dumps it'
    FROM pg_catalog.pg_class c
   WHERE c.relnamespace = 'um'::regnamespace AND c.relkind IN ('r', 'p')
     AND NOT EXISTS (SELECT 1 FROM um.state_tables s WHERE s.relname = c.relname)
  UNION ALL
  SELECT 'um table keeps forced row-level security', format('table um.%s', s.relname),
         CASE WHEN c.oid IS NULL THEN 'the table is missing' ELSE 'row-level security is off or not forced' END
    FROM um.state_tables s
    LEFT JOIN pg_catalog.pg_class c ON c.relname = s.relname AND c.relnamespace = 'um'::regnamespace
   WHERE s.access <> 'catalog' AND NOT coalesce(c.relrowsecurity AND c.relforcerowsecurity, false)
  UNION ALL
  SELECT 'permission cache learns of every change', format('table um.%s', s.relname),
         format('trigger %s is missing or not enabled %s', x.tgname, x.how)
    FROM um.state_tables s
   CROSS JOIN (VALUES ('cache_invalidate', 'A', 'ALWAYS'), ('cache_invalidate_replica', 'R', 'REPLICA')) AS x(tgname, mode, how)
   WHERE s.evaluator_input
     AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
                      WHERE c.relnamespace = 'um'::regnamespace AND c.relname = s.relname
                        AND t.tgname = x.tgname AND t.tgenabled = x.mode)
  ORDER BY 1, 2
$$;
COMMENT ON FUNCTION @extschema@.um_check_integrity() IS
  'every invariant um keeps (Roots, built-in roles, same-organization references, existing users, team owners, no cycles, suspensions, sessions, the protection and cache triggers of um''s own tables), checked on the tables as they are; one row per violation';
-- Every table, column, view and function of um has a comment (issue 14);
-- the policies and the cache triggers too.  The same statements as in sql/install/.

COMMENT ON COLUMN um.organizations.id IS 'the organization''s id; every organization-scoped row carries it as org_id';
COMMENT ON COLUMN um.organizations.name IS 'display name';
COMMENT ON COLUMN um.organizations.revision IS
  'bumped by every check of an organization-wide invariant (Root kept, no cycles), so concurrent changes to one organization serialize on this row; internal';
COMMENT ON COLUMN um.organizations.created_at IS 'when the organization was created';
COMMENT ON COLUMN um.users.id IS 'the user''s id: what um_act_as takes and um_current_user_id returns';
COMMENT ON COLUMN um.users.name IS 'display name, optional';
COMMENT ON COLUMN um.users.timezone IS 'IANA time zone name, e.g. Europe/Paris';
COMMENT ON COLUMN um.users.locale IS 'language tag, e.g. en or pt-BR';
COMMENT ON COLUMN um.users.mobile IS 'mobile number in E.164 form (+ and digits), optional';
COMMENT ON COLUMN um.users.suspended_at IS 'when the user was suspended; set exactly while status is suspended';
COMMENT ON COLUMN um.users.email_verified_at IS
  'when the user proved control of the address (um_verify_email, um_mark_verified); cleared when the address changes';
COMMENT ON COLUMN um.users.must_change_password IS 'the password is temporary: login is refused until um_change_password sets a new one';
COMMENT ON COLUMN um.users.password_changed_at IS 'when the password was last set; not readable by application roles';
COMMENT ON COLUMN um.users.failed_login_count IS
  'wrong passwords since the last successful login; um.login_max_failures of them lock the account; not readable by application roles';
COMMENT ON COLUMN um.users.locked_until IS 'logins are refused until then after too many wrong passwords (um.login_lockout); not readable by application roles';
COMMENT ON COLUMN um.users.created_at IS 'when the user was created';
COMMENT ON COLUMN um.users.updated_at IS 'when the row last changed (set by its trigger)';
COMMENT ON COLUMN um.builtin_roles.key IS
  'stable identifier of the built-in role (root, admin, service_editor, service_operator, service_reader, member); um.roles.builtin refers to it';
COMMENT ON COLUMN um.builtin_roles.name IS 'the name the role gets in every organization';
COMMENT ON COLUMN um.builtin_roles.description IS 'what the role is for';
COMMENT ON COLUMN um.builtin_roles.position IS 'display order, Root first';
COMMENT ON COLUMN um.roles.id IS 'the role''s id, unique across organizations';
COMMENT ON COLUMN um.roles.org_id IS 'the organization the role belongs to';
COMMENT ON COLUMN um.roles.name IS 'name, unique in the organization regardless of letter case';
COMMENT ON COLUMN um.roles.description IS 'free text, optional';
COMMENT ON COLUMN um.roles.builtin IS 'key of the built-in role this is (um.builtin_roles); NULL for a custom role';
COMMENT ON COLUMN um.roles.created_at IS 'when the role was created';
COMMENT ON COLUMN um.role_inclusions.org_id IS 'the organization of both roles';
COMMENT ON COLUMN um.role_inclusions.role_id IS 'the including role';
COMMENT ON COLUMN um.role_inclusions.included_role_id IS 'the role whose permissions role_id also grants';
COMMENT ON COLUMN um.permissions.name IS 'resource:action, lowercase identifiers, e.g. billing:read';
COMMENT ON COLUMN um.permissions.resource IS 'the part before the colon (generated)';
COMMENT ON COLUMN um.permissions.action IS 'the part after the colon (generated)';
COMMENT ON COLUMN um.permissions.description IS 'what the permission allows, optional';
COMMENT ON COLUMN um.permissions.builtin IS
  'installed by um (not dumped, cannot be changed or deleted); false for the application''s own, registered with um_register_permission';
COMMENT ON COLUMN um.permissions.created_at IS 'when the permission was registered';
COMMENT ON COLUMN um.role_permissions.org_id IS 'the organization of the role';
COMMENT ON COLUMN um.role_permissions.role_id IS 'the role that grants it';
COMMENT ON COLUMN um.role_permissions.permission IS 'a catalog permission, or a pattern with * for a whole part (service:*, *:read, *)';
COMMENT ON COLUMN um.scopes.id IS 'the node''s id, unique across organizations';
COMMENT ON COLUMN um.scopes.org_id IS 'the organization the node belongs to';
COMMENT ON COLUMN um.scopes.parent_id IS 'the parent node; NULL for a top-level node';
COMMENT ON COLUMN um.scopes.kind IS 'the application''s type of resource (project, environment, team, ...), a lowercase identifier';
COMMENT ON COLUMN um.scopes.name IS 'display name, unique among siblings of the same kind regardless of letter case';
COMMENT ON COLUMN um.scopes.created_at IS 'when the node was created';
COMMENT ON COLUMN um.memberships.id IS 'the membership''s id';
COMMENT ON COLUMN um.memberships.org_id IS 'the organization';
COMMENT ON COLUMN um.memberships.user_id IS 'the member';
COMMENT ON COLUMN um.memberships.role_id IS 'the member''s one organization role; changed in place by um_set_org_role';
COMMENT ON COLUMN um.memberships.status IS
  'active or suspended (in this organization only: um_suspend_user with an organization); a suspended member holds no permissions there';
COMMENT ON COLUMN um.memberships.invited_by IS 'the user who invited or added the member, if known';
COMMENT ON COLUMN um.memberships.created_at IS 'when the user joined';
COMMENT ON COLUMN um.teams.id IS 'the team''s id, unique across organizations';
COMMENT ON COLUMN um.teams.org_id IS 'the organization the team belongs to';
COMMENT ON COLUMN um.teams.name IS 'name, unique in the organization regardless of letter case';
COMMENT ON COLUMN um.teams.description IS 'free text, optional';
COMMENT ON COLUMN um.teams.created_at IS 'when the team was created';
COMMENT ON COLUMN um.team_members.org_id IS 'the organization of the team';
COMMENT ON COLUMN um.team_members.team_id IS 'the team';
COMMENT ON COLUMN um.team_members.user_id IS 'the member (a member of the organization)';
COMMENT ON COLUMN um.team_members.is_owner IS 'the team''s owner: exactly one per team, who cannot be removed (um_transfer_team_ownership moves it)';
COMMENT ON COLUMN um.team_members.added_at IS 'when the user joined the team';
COMMENT ON COLUMN um.team_member_roles.org_id IS 'the organization of the team';
COMMENT ON COLUMN um.team_member_roles.team_id IS 'the team';
COMMENT ON COLUMN um.team_member_roles.user_id IS 'the team member';
COMMENT ON COLUMN um.team_member_roles.role_id IS 'the role held within the team';
COMMENT ON COLUMN um.grants.id IS 'the grant''s id';
COMMENT ON COLUMN um.grants.org_id IS 'the organization';
COMMENT ON COLUMN um.grants.role_id IS 'the role given';
COMMENT ON COLUMN um.grants.user_id IS 'the member it is given to; NULL when given to a team';
COMMENT ON COLUMN um.grants.team_id IS 'the team it is given to (all its members); NULL when given to a member';
COMMENT ON COLUMN um.grants.scope_id IS 'the node it applies to, with its descendants unless one breaks inheritance; NULL: not one node';
COMMENT ON COLUMN um.grants.scope_kind IS 'every node of this kind; NULL: not a kind';
COMMENT ON COLUMN um.grants.granted_by IS 'the user who made the grant, if known';
COMMENT ON COLUMN um.grants.created_at IS 'when the grant was made';
COMMENT ON COLUMN um.invitations.id IS 'the invitation''s id';
COMMENT ON COLUMN um.invitations.org_id IS 'the organization invited to';
COMMENT ON COLUMN um.invitations.email IS 'the address invited; at most one open (requested or pending) invitation per address and organization';
COMMENT ON COLUMN um.invitations.role_id IS 'the organization role the invitee gets on accepting';
COMMENT ON COLUMN um.invitations.team_id IS 'a team the invitee joins on accepting, optional';
COMMENT ON COLUMN um.invitations.state IS
  'requested (asked for from the login page, awaiting an invitation), pending (sent, awaiting acceptance), accepted, revoked or expired';
COMMENT ON COLUMN um.invitations.token_hash IS 'SHA-256 of the token mailed to the invitee; set while pending, cleared once decided';
COMMENT ON COLUMN um.invitations.invited_by IS 'the user who sent the invitation, if known';
COMMENT ON COLUMN um.invitations.accepted_by IS 'the user who accepted it';
COMMENT ON COLUMN um.invitations.created_at IS 'when it was sent (or last renewed) or requested';
COMMENT ON COLUMN um.invitations.expires_at IS 'a pending invitation can be accepted until then';
COMMENT ON COLUMN um.invitations.decided_at IS 'when it was accepted, revoked or expired';
COMMENT ON COLUMN um.sessions.id IS 'the session''s id';
COMMENT ON COLUMN um.sessions.user_id IS 'whose session it is';
COMMENT ON COLUMN um.sessions.token_hash IS 'SHA-256 of the session token um_login returned; um_begin looks it up';
COMMENT ON COLUMN um.sessions.created_at IS 'when the user logged in';
COMMENT ON COLUMN um.sessions.expires_at IS 'the session ends then (um.session_lifetime after login)';
COMMENT ON COLUMN um.sessions.method IS 'how the user signed in: password (um_login) or sso (an identity provider; no um function starts such a session yet)';
COMMENT ON COLUMN um.sessions.revoked_at IS 'when the session was ended early; NULL while it lasts';
COMMENT ON COLUMN um.identity_providers.id IS 'the provider''s id, unique across organizations';
COMMENT ON COLUMN um.identity_providers.org_id IS 'the organization whose members sign in through it';
COMMENT ON COLUMN um.identity_providers.name IS 'display name, unique in the organization regardless of letter case';
COMMENT ON COLUMN um.identity_providers.protocol IS 'oidc or saml';
COMMENT ON COLUMN um.identity_providers.issuer IS 'the provider''s issuer (OIDC) or entity id (SAML), an https URL';
COMMENT ON COLUMN um.identity_providers.created_at IS 'when the provider was added';
COMMENT ON COLUMN um.user_identities.org_id IS 'the organization of the provider';
COMMENT ON COLUMN um.user_identities.provider_id IS 'the identity provider';
COMMENT ON COLUMN um.user_identities.subject IS 'the provider''s identifier of the person (OIDC sub, SAML NameID)';
COMMENT ON COLUMN um.user_identities.user_id IS 'the um user that subject is';
COMMENT ON COLUMN um.user_identities.created_at IS 'when the link was made';
COMMENT ON COLUMN um.audit_events.id IS 'the event''s id, increasing in the order events were written';
COMMENT ON COLUMN um.audit_events.at IS 'when it happened (clock time, not transaction start)';
COMMENT ON COLUMN um.audit_events.actor_user_id IS 'the acting user (the impersonated user while impersonating); NULL with nobody acting';
COMMENT ON COLUMN um.audit_events.impersonator_user_id IS 'the real user when actor_user_id was being impersonated; else NULL';
COMMENT ON COLUMN um.audit_events.db_role IS 'the database role that made the call (a lifecycle function''s caller, not um''s owner)';
COMMENT ON COLUMN um.audit_events.action IS 'what was done or attempted, dotted lowercase words, e.g. member.add, user.login';
COMMENT ON COLUMN um.audit_events.outcome IS
  'ok (done) or denied (refused: a missing permission, a guard, a failed login); failed is allowed but um writes none';
COMMENT ON COLUMN um.audit_events.org_id IS 'the organization concerned; NULL for account-wide events';
COMMENT ON COLUMN um.audit_events.target_type IS
  'the kind of thing acted on: user, organization, organization_domain, role, team, scope, invitation, permission, identity_provider, table';
COMMENT ON COLUMN um.audit_events.target_id IS 'the id of the thing acted on, in the table target_type names';
COMMENT ON COLUMN um.audit_events.details IS 'further facts of the event as a JSON object: ids and names of um objects, never personal data';
COMMENT ON COLUMN um.verification_tokens.token_hash IS 'SHA-256 of the token mailed to the user; the token itself is never stored';
COMMENT ON COLUMN um.verification_tokens.user_id IS 'whose address the token proves';
COMMENT ON COLUMN um.verification_tokens.created_at IS 'when it was issued';
COMMENT ON COLUMN um.verification_tokens.expires_at IS 'it can be redeemed until then (48 hours after issue)';
COMMENT ON COLUMN um.builtin_role_permissions.role_key IS 'the built-in role (um.builtin_roles.key)';
COMMENT ON COLUMN um.builtin_role_permissions.permission IS 'a built-in permission it starts with';
COMMENT ON COLUMN um.member_list.org IS 'the organization''s slug';
COMMENT ON COLUMN um.member_list.user_id IS 'the member''s user id';
COMMENT ON COLUMN um.member_list.email IS 'the member''s address';
COMMENT ON COLUMN um.member_list.name IS 'the member''s display name';
COMMENT ON COLUMN um.member_list.role IS 'name of the member''s organization role';
COMMENT ON COLUMN um.member_list.membership IS 'status of the membership in this organization: active or suspended';
COMMENT ON COLUMN um.member_list.user_status IS 'status of the user account: active or suspended';
COMMENT ON COLUMN um.member_list.allow_login IS 'false for a notification-only user';
COMMENT ON COLUMN um.member_list.email_verified IS 'the user has proved control of the address';
COMMENT ON COLUMN um.member_list.member_since IS 'when the user joined the organization';
COMMENT ON COLUMN um.role_permission_list.org IS 'the organization''s slug';
COMMENT ON COLUMN um.role_permission_list.role IS 'the role''s name';
COMMENT ON COLUMN um.role_permission_list.builtin IS 'a built-in role';
COMMENT ON COLUMN um.role_permission_list.includes IS 'names of the roles it includes directly, comma-separated';
COMMENT ON COLUMN um.role_permission_list.permissions IS 'the permissions and patterns it grants directly, space-separated';
COMMENT ON COLUMN um.organization_list.id IS 'the organization''s id';
COMMENT ON COLUMN um.organization_list.slug IS 'unique short name';
COMMENT ON COLUMN um.organization_list.name IS 'display name';
COMMENT ON COLUMN um.organization_list.members IS 'number of memberships, suspended ones included';
COMMENT ON COLUMN um.organization_list.roots IS 'addresses of the members holding the Root role, comma-separated';
COMMENT ON COLUMN um.organization_list.teams IS 'number of teams';
COMMENT ON COLUMN um.organization_list.custom_roles IS 'number of roles that are not built-in';
COMMENT ON COLUMN um.organization_list.password_login_disabled IS 'members must sign in through an identity provider';
COMMENT ON COLUMN um.organization_list.created_at IS 'when the organization was created';
COMMENT ON COLUMN um.cache_activity.pid IS 'the backend''s process id';
COMMENT ON COLUMN um.cache_activity.database IS 'the backend''s database';
COMMENT ON COLUMN um.cache_activity.role IS 'the database role the backend logged in as';
COMMENT ON COLUMN um.cache_activity.application_name IS 'the backend''s application_name';
COMMENT ON COLUMN um.cache_activity.is_mine IS 'the backend running this query (its figures are live)';
COMMENT ON COLUMN um.cache_activity.published_at IS 'when the backend last published its figures (the end of a transaction that changed them)';
COMMENT ON COLUMN um.cache_activity.hits IS 'permission checks answered from the cache';
COMMENT ON COLUMN um.cache_activity.misses IS 'permission checks that had to load from the tables first';
COMMENT ON COLUMN um.cache_activity.hit_ratio IS 'hits / (hits + misses), rounded to 4 places; NULL before the first check';
COMMENT ON COLUMN um.cache_activity.queries IS 'queries the cache''s loader ran against um''s tables';
COMMENT ON COLUMN um.cache_activity.invalidations IS 'invalidations received: a committed change to a table the answers depend on';
COMMENT ON COLUMN um.cache_activity.resets IS 'times the cache was emptied and started afresh (after an invalidation, an eviction or um_cache_reset)';
COMMENT ON COLUMN um.cache_activity.evictions IS 'times the cache was emptied for growing past um.cache_memory_limit';
COMMENT ON COLUMN um.cache_activity.entries IS 'users, memberships, organizations and scope answers held now';
COMMENT ON COLUMN um.cache_activity.memory_bytes IS 'memory the cache uses now';
COMMENT ON COLUMN um.cache_activity.memory_limit_bytes IS 'the most it may use (um.cache_memory_limit)';

COMMENT ON FUNCTION um_internal.actor_org(bigint) IS
  'internal: the organization, if the acting user may be told about it and it may carry their refusals (a member there, the identity reaching it); else NULL';
COMMENT ON FUNCTION um_internal.administers_um() IS
  'does the current role administer um (with the privileges of the extension''s owner)? Called by the um_administrators policies; EXECUTE granted to PUBLIC';
COMMENT ON FUNCTION um_internal.assert_no_app_cascades() IS
  'internal: refuses (before a lifecycle function may delete) while an application table has a cascading foreign key into um''s tables, whose triggers would run as um''s owner';
COMMENT ON FUNCTION um_internal.audit(text, bigint, text, bigint, jsonb, text) IS
  'internal: appends one event to um.audit_events in the current transaction (actor columns are stamped by its trigger)';
COMMENT ON FUNCTION um_internal.audit_events_append_only() IS 'trigger on um.audit_events: refuses UPDATE, DELETE and TRUNCATE (UM047); a superuser disables it for one transaction to prune old events';
COMMENT ON FUNCTION um_internal.audit_events_stamp() IS 'trigger on um.audit_events: fills in the acting user, the impersonator and the calling database role, whatever the insert said, when someone is acting';
COMMENT ON FUNCTION um_internal.authenticate(text, text, boolean) IS 'internal: the checks of um_login and um_change_password (bcrypt, lockout, state), in an order that tells a stranger nothing; returns the user or raises (UM060 for an unknown email, a wrong password or a locked account)';
COMMENT ON FUNCTION um_internal.authorize(oid, text, text, text, bigint, text, bigint) IS
  'internal: may this lifecycle call go ahead? The acting user needs the permission in the organization, or with nobody acting the calling role must administer um; returns the acting user (NULL for an administrator), else refuses (UM070, audited)';
COMMENT ON FUNCTION um_internal.authorize_role_edit(oid, text, bigint, text) IS
  'internal: authorization for granting or revoking a role''s permission: role:update, only a Root edits the Root role, a valid name or pattern; returns the role';
COMMENT ON FUNCTION um_internal.authorize_team(oid, text, text, bigint, bigint) IS
  'internal: authorization for managing a team''s members: the team''s owner may, else team:manage in the organization (um_internal.authorize)';
COMMENT ON FUNCTION um_internal.authorize_user(oid, text, text, text, bigint) IS
  'internal: authorization for changes to a user account: the permission in every organization of the user, and only a Root acts on a Root; a user in no organization is only a um administrator''s';
COMMENT ON FUNCTION um_internal.check_column(regclass, name, text) IS 'part of um_protect_table: raises UM080 unless the column exists and is a bigint';
COMMENT ON FUNCTION um_internal.crudl_actions(text) IS
  'internal: the actions CRUDL letters stand for (C create, R read, U update, D delete, L list), as in the built-in role matrix';
COMMENT ON FUNCTION um_internal.deletion_blocker(bigint) IS
  'internal: what stops the user''s deletion (the only Root who can log in of an organization with other members, the owner of a team with other members) as (kind, what, detail); NULLs when nothing does';
COMMENT ON FUNCTION um_internal.deny(text, bigint, text, bigint, text, text, text, text) IS 'internal: audits a refused call (committed even though the call fails; the server log when nobody is acting) and raises the error';
COMMENT ON FUNCTION um_internal.do_accept_invitation(text, text, text, oid) IS
  'body of um_accept_invitation: runs as um''s owner with the calling role passed as p_caller; called only through um_accept_invitation (EXECUTE held by nobody)';
COMMENT ON FUNCTION um_internal.do_add_identity_provider(bigint, text, text, text, oid) IS
  'body of um_add_identity_provider: runs as um''s owner with the calling role passed as p_caller; called only through um_add_identity_provider (EXECUTE held by nobody)';
COMMENT ON FUNCTION um_internal.do_add_member(bigint, bigint, text, oid) IS
  'body of um_add_member: runs as um''s owner with the calling role passed as p_caller; called only through um_add_member (EXECUTE held by nobody)';
COMMENT ON FUNCTION um_internal.do_add_team_member(bigint, bigint, text[], oid) IS
  'body of um_add_team_member: runs as um''s owner with the calling role passed as p_caller; called only through um_add_team_member (EXECUTE held by nobody)';
COMMENT ON FUNCTION um_internal.do_create_organization(text, text, bigint, oid) IS
  'body of um_create_organization: runs as um''s owner with the calling role passed as p_caller; called only through um_create_organization (EXECUTE held by nobody)';
COMMENT ON FUNCTION um_internal.do_create_role(bigint, text, text[], text, oid) IS
  'body of um_create_role: runs as um''s owner with the calling role passed as p_caller; called only through um_create_role (EXECUTE held by nobody)';
COMMENT ON FUNCTION um_internal.do_create_team(bigint, text, text, bigint, oid) IS
  'body of um_create_team: runs as um''s owner with the calling role passed as p_caller; called only through um_create_team (EXECUTE held by nobody)';
COMMENT ON FUNCTION um_internal.do_create_user(bigint, text, text, text, boolean, text, text, text, oid) IS
  'body of um_create_user for a user in an organization: runs as um''s owner with the calling role passed as p_caller; called only through um_create_user (EXECUTE held by nobody)';
COMMENT ON FUNCTION um_internal.do_create_user(text, text, boolean, text, text, text, jsonb, oid) IS
  'body of um_create_user for a user in no organization: runs as um''s owner with the calling role passed as p_caller; called only through um_create_user (EXECUTE held by nobody)';
COMMENT ON FUNCTION um_internal.do_delete_my_account(oid) IS
  'body of um_delete_my_account: runs as um''s owner with the calling role passed as p_caller; called only through um_delete_my_account (EXECUTE held by nobody)';
COMMENT ON FUNCTION um_internal.do_delete_role(bigint, oid) IS
  'body of um_delete_role: runs as um''s owner with the calling role passed as p_caller; called only through um_delete_role (EXECUTE held by nobody)';
COMMENT ON FUNCTION um_internal.do_delete_team(bigint, oid) IS
  'body of um_delete_team: runs as um''s owner with the calling role passed as p_caller; called only through um_delete_team (EXECUTE held by nobody)';
COMMENT ON FUNCTION um_internal.do_delete_user(bigint, oid) IS
  'body of um_delete_user: runs as um''s owner with the calling role passed as p_caller; called only through um_delete_user (EXECUTE held by nobody)';
COMMENT ON FUNCTION um_internal.do_disable_login(bigint, oid) IS
  'body of um_disable_login: runs as um''s owner with the calling role passed as p_caller; called only through um_disable_login (EXECUTE held by nobody)';
COMMENT ON FUNCTION um_internal.do_enable_login(bigint, oid) IS
  'body of um_enable_login: runs as um''s owner with the calling role passed as p_caller; called only through um_enable_login (EXECUTE held by nobody)';
COMMENT ON FUNCTION um_internal.do_expire_invitations(oid) IS
  'body of um_expire_invitations: runs as um''s owner with the calling role passed as p_caller; called only through um_expire_invitations (EXECUTE held by nobody)';
COMMENT ON FUNCTION um_internal.do_export_my_data(oid) IS
  'body of um_export_my_data: runs as um''s owner with the calling role passed as p_caller; called only through um_export_my_data (EXECUTE held by nobody)';
COMMENT ON FUNCTION um_internal.do_export_users(bigint, oid) IS
  'body of um_export_users: runs as um''s owner with the calling role passed as p_caller; called only through um_export_users (EXECUTE held by nobody)';
COMMENT ON FUNCTION um_internal.do_export_users_json(bigint, oid) IS
  'body of um_export_users_json: runs as um''s owner with the calling role passed as p_caller; called only through um_export_users_json (EXECUTE held by nobody)';
COMMENT ON FUNCTION um_internal.do_grant_permission(bigint, text, oid) IS
  'body of um_grant_permission: runs as um''s owner with the calling role passed as p_caller; called only through um_grant_permission (EXECUTE held by nobody)';
COMMENT ON FUNCTION um_internal.do_grant_scope_role(bigint, text, bigint, bigint, oid) IS
  'body of um_grant_scope_role: runs as um''s owner with the calling role passed as p_caller; called only through um_grant_scope_role (EXECUTE held by nobody)';
COMMENT ON FUNCTION um_internal.do_grant_team_role(bigint, bigint, text, oid) IS
  'body of um_grant_team_role: runs as um''s owner with the calling role passed as p_caller; called only through um_grant_team_role (EXECUTE held by nobody)';
COMMENT ON FUNCTION um_internal.do_invite(bigint, text, text, bigint, interval, oid) IS
  'body of um_invite: runs as um''s owner with the calling role passed as p_caller; called only through um_invite (EXECUTE held by nobody)';
COMMENT ON FUNCTION um_internal.do_link_identity(bigint, text, text, bigint, oid) IS
  'body of um_link_identity: runs as um''s owner with the calling role passed as p_caller; called only through um_link_identity (EXECUTE held by nobody)';
COMMENT ON FUNCTION um_internal.do_logout_all(bigint, oid) IS
  'body of um_logout_all: runs as um''s owner with the calling role passed as p_caller; called only through um_logout_all (EXECUTE held by nobody)';
COMMENT ON FUNCTION um_internal.do_mark_verified(bigint, oid) IS
  'body of um_mark_verified: runs as um''s owner with the calling role passed as p_caller; called only through um_mark_verified (EXECUTE held by nobody)';
COMMENT ON FUNCTION um_internal.do_reactivate_user(bigint, bigint, oid) IS
  'body of um_reactivate_user: runs as um''s owner with the calling role passed as p_caller; called only through um_reactivate_user (EXECUTE held by nobody)';
COMMENT ON FUNCTION um_internal.do_register_permission(text, text, oid) IS
  'body of um_register_permission: runs as um''s owner with the calling role passed as p_caller; called only through um_register_permission (EXECUTE held by nobody)';
COMMENT ON FUNCTION um_internal.do_remove_member(bigint, bigint, oid) IS
  'body of um_remove_member: runs as um''s owner with the calling role passed as p_caller; called only through um_remove_member (EXECUTE held by nobody)';
COMMENT ON FUNCTION um_internal.do_remove_team_member(bigint, bigint, oid) IS
  'body of um_remove_team_member: runs as um''s owner with the calling role passed as p_caller; called only through um_remove_team_member (EXECUTE held by nobody)';
COMMENT ON FUNCTION um_internal.do_rename_team(bigint, text, oid) IS
  'body of um_rename_team: runs as um''s owner with the calling role passed as p_caller; called only through um_rename_team (EXECUTE held by nobody)';
COMMENT ON FUNCTION um_internal.do_request_invitation(text, text, oid) IS
  'body of um_request_invitation: runs as um''s owner with the calling role passed as p_caller; called only through um_request_invitation (EXECUTE held by nobody)';
COMMENT ON FUNCTION um_internal.do_resend_verification(text, oid) IS
  'body of um_resend_verification: runs as um''s owner with the calling role passed as p_caller; called only through um_resend_verification (EXECUTE held by nobody)';
COMMENT ON FUNCTION um_internal.do_revoke_invitation(bigint, oid) IS
  'body of um_revoke_invitation: runs as um''s owner with the calling role passed as p_caller; called only through um_revoke_invitation (EXECUTE held by nobody)';
COMMENT ON FUNCTION um_internal.do_revoke_permission(bigint, text, oid) IS
  'body of um_revoke_permission: runs as um''s owner with the calling role passed as p_caller; called only through um_revoke_permission (EXECUTE held by nobody)';
COMMENT ON FUNCTION um_internal.do_revoke_scope_role(bigint, text, bigint, bigint, oid) IS
  'body of um_revoke_scope_role: runs as um''s owner with the calling role passed as p_caller; called only through um_revoke_scope_role (EXECUTE held by nobody)';
COMMENT ON FUNCTION um_internal.do_revoke_team_role(bigint, bigint, text, oid) IS
  'body of um_revoke_team_role: runs as um''s owner with the calling role passed as p_caller; called only through um_revoke_team_role (EXECUTE held by nobody)';
COMMENT ON FUNCTION um_internal.do_set_org_role(bigint, bigint, text, oid) IS
  'body of um_set_org_role: runs as um''s owner with the calling role passed as p_caller; called only through um_set_org_role (EXECUTE held by nobody)';
COMMENT ON FUNCTION um_internal.do_set_org_setting(bigint, text, jsonb, oid) IS
  'body of um_set_org_setting: runs as um''s owner with the calling role passed as p_caller; called only through um_set_org_setting (EXECUTE held by nobody)';
COMMENT ON FUNCTION um_internal.do_sign_up(text, text, text, text, text, oid) IS
  'body of um_sign_up: runs as um''s owner with the calling role passed as p_caller; called only through um_sign_up (EXECUTE held by nobody)';
COMMENT ON FUNCTION um_internal.do_suspend_user(bigint, bigint, oid) IS
  'body of um_suspend_user: runs as um''s owner with the calling role passed as p_caller; called only through um_suspend_user (EXECUTE held by nobody)';
COMMENT ON FUNCTION um_internal.do_transfer_org_ownership(bigint, bigint, text, oid) IS
  'body of um_transfer_org_ownership: runs as um''s owner with the calling role passed as p_caller; called only through um_transfer_org_ownership (EXECUTE held by nobody)';
COMMENT ON FUNCTION um_internal.do_transfer_team_ownership(bigint, bigint, oid) IS
  'body of um_transfer_team_ownership: runs as um''s owner with the calling role passed as p_caller; called only through um_transfer_team_ownership (EXECUTE held by nobody)';
COMMENT ON FUNCTION um_internal.do_verify_email(text, text, oid) IS
  'body of um_verify_email: runs as um''s owner with the calling role passed as p_caller; called only through um_verify_email (EXECUTE held by nobody)';
COMMENT ON FUNCTION um_internal.drop_um_policies(regclass) IS 'part of um_protect_table and um_unprotect_table: drops the um_* policies of a relation';
COMMENT ON FUNCTION um_internal.erase_user(bigint, text) IS
  'internal: deletes a user with everything that is theirs (memberships, team seats, grants, sessions, links, tokens, invitations to the address) and audits it; refuses (UM052) while um_internal.deletion_blocker names something';
COMMENT ON FUNCTION um_internal.guard_escalation(bigint, bigint, bigint, text[], text, text, text, bigint) IS
  'internal: nobody hands out a permission they do not hold (on the scope node, when the grant is for one); refuses, audited, naming what is missing';
COMMENT ON FUNCTION um_internal.guard_last_active_root(bigint, bigint, text, text) IS
  'internal: refuses to suspend, or take login from, the last active Root who can log in of an organization (UM044)';
COMMENT ON FUNCTION um_internal.guard_root_target(bigint, bigint, bigint, text, text) IS
  'internal: only a Root acts on a Root (an Admin never removes, demotes or suspends one); refuses, audited, otherwise';
COMMENT ON FUNCTION um_internal.guard_team_grants(bigint, bigint, text, bigint) IS
  'internal: nobody adds a member to a team whose grants hold permissions they lack there (joining gives the team''s roles)';
COMMENT ON FUNCTION um_internal.has_permission_support(internal) IS
  'planner support function of um_has_permission: turns a check on an indexed organization (or scope) column into an index condition over um_permitted_orgs (or um_permitted_scopes)';
COMMENT ON FUNCTION um_internal.has_usable_root(bigint) IS 'internal: does the organization have a Root who can act (active membership, active user allowed to log in)?';
COMMENT ON FUNCTION um_internal.hash_cost(text) IS 'internal: the bcrypt cost a hash was made with; 0 when it is not a bcrypt hash';
COMMENT ON FUNCTION um_internal.hash_password(text) IS 'internal: a bcrypt hash of an acceptable password (8 characters to 72 bytes, else UM068) at cost um.password_hash_cost';
COMMENT ON FUNCTION um_internal.identity_providers_before_delete() IS 'trigger on um.identity_providers: refuses to remove the last provider of an organization whose password login is disabled (UM045)';
COMMENT ON FUNCTION um_internal.impersonation_escalates(bigint, bigint, bigint) IS 'internal: does the target hold anything in the organization that the impersonator lacks? Then impersonating would be an escalation';
COMMENT ON FUNCTION um_internal.insert_user(text, text, boolean, text, text, text, jsonb) IS
  'internal: inserts a user and returns the id, or says why not (UM001 no address, UM020 address registered)';
COMMENT ON FUNCTION um.invalid_argument(text, text) IS 'internal: raises UM009 (invalid argument) with this message and hint';
COMMENT ON FUNCTION um_internal.invitations_before_write() IS 'trigger on um.invitations: validates the address with an explanation (UM001)';
COMMENT ON FUNCTION um_internal.is_root(bigint, bigint) IS 'internal: does the user hold the Root role of the organization (in any state)?';
COMMENT ON FUNCTION um_internal.lock_organization(bigint) IS 'internal: serializes changes to one organization''s invariants by updating its row (a concurrent REPEATABLE READ transaction fails instead of deciding on a stale snapshot); false when the organization is gone';
COMMENT ON FUNCTION um_internal.memberships_before_update() IS 'trigger on um.memberships: a membership never moves to another organization or user (UM046)';
COMMENT ON FUNCTION um_internal.memberships_keep_root() IS 'statement trigger on um.memberships: an organization with members keeps a Root, and a Root who can log in (UM044)';
COMMENT ON FUNCTION um_internal.new_session(um.users, text) IS 'internal: starts a session (um.session_lifetime) for a user who just proved who they are, audits it, and returns its token';
COMMENT ON FUNCTION um_internal.new_verification(bigint, boolean) IS
  'internal: issues a verification token for the user (replacing any earlier one) and returns it; only with nobody acting (UM058), so no tenant user sees it';
COMMENT ON FUNCTION um_internal.organizations_before_write() IS 'trigger on um.organizations: validates slug and name; refuses password_login_disabled without an identity provider (UM045)';
COMMENT ON FUNCTION um_internal.parse_email_batch(text) IS
  'internal: the addresses of a batch, split on commas, semicolons and line breaks, trimmed, without empty entries or duplicates (any letter case)';
COMMENT ON FUNCTION um_internal.password_matches(text, text) IS 'internal: does the password match the bcrypt hash? Without a hash it still spends a hash''s time, so timing does not tell which emails exist';
COMMENT ON FUNCTION um_internal.pattern_grants(text) IS 'internal: the catalog permissions a permission name or pattern stands for';
COMMENT ON FUNCTION um_internal.permissions_before_write() IS 'trigger on um.permissions: validates new names; built-in permissions are never changed or deleted, none is renamed, nor deleted while a role grants it (UM048)';
COMMENT ON FUNCTION um_internal.pgcrypto_schema() IS 'internal: the schema pgcrypto is installed in (um hashes passwords with it), or UM069';
COMMENT ON FUNCTION um_internal.policy_check(text, name, name) IS
  'part of um_protect_table: the expression of one um policy (org_id = ANY (um_permitted_orgs(...)), or per row with a scope column)';
COMMENT ON FUNCTION um_internal.protection_note(regclass, text, text) IS
  'part of um_protect_table and um_unprotect_table (src/protect.c): once the caller is found to own the table, audits the change and, for a um administrator, registers the resource''s permissions';
COMMENT ON FUNCTION um_internal.protection_state(regclass[]) IS
  'part of um_protect_table: um''s policies and the RLS switches of these relations as text, to audit only what changed';
COMMENT ON FUNCTION um_internal.protection_tree(regclass) IS
  'part of um_protect_table: the table and every table that inherits from it (partitions, sub-partitions, INHERITS children)';
COMMENT ON FUNCTION um_internal.raise(text, text, text, text) IS 'internal: raises an error with this SQLSTATE, message and optional detail and hint';
COMMENT ON FUNCTION um_internal.ref_applicable_roles(bigint, bigint, bigint) IS
  'reference evaluator: the roles that apply directly to the user in the organization (and scope node), before inclusions, with where each comes from';
COMMENT ON FUNCTION um_internal.ref_check_permission_name(text) IS 'reference evaluator: raises unless the name is a valid catalog permission (UM010, UM011)';
COMMENT ON FUNCTION um_internal.ref_denial(bigint, bigint, bigint, boolean) IS
  'reference evaluator: why the user cannot act in the organization (or on the node) at all, or NULL when they can';
COMMENT ON FUNCTION um_internal.ref_pattern_covers(text, text) IS
  'reference evaluator: does a permission pattern ("*" for a whole part) cover the permission? Written independently of the C, for the differential tests';
COMMENT ON FUNCTION um_internal.require_member(bigint, bigint) IS
  'internal: the user''s membership in the organization, or the error that says it does not exist (UM035)';
COMMENT ON FUNCTION um_internal.require_organization(bigint) IS 'internal: the organization, or the error that names it (UM030)';
COMMENT ON FUNCTION um_internal.require_role(bigint, text) IS
  'internal: an organization''s role by name (any letter case) or built-in key, or the error that names it (UM032)';
COMMENT ON FUNCTION um_internal.require_role_id(bigint) IS 'internal: the role by id, or the error that names it (UM032)';
COMMENT ON FUNCTION um_internal.require_scope(bigint) IS 'internal: the scope node, or the error that names it (UM036)';
COMMENT ON FUNCTION um_internal.require_team(bigint) IS 'internal: the team, or the error that names it (UM033)';
COMMENT ON FUNCTION um_internal.require_user(bigint) IS 'internal: the user, or the error that names them (UM031)';
COMMENT ON FUNCTION um_internal.role_grants(bigint) IS 'internal: the catalog permissions a role grants, with those of the roles it includes';
COMMENT ON FUNCTION um_internal.role_inclusions_check_cycle() IS 'statement trigger on um.role_inclusions: refuses an inclusion that would make a cycle of roles (UM040)';
COMMENT ON FUNCTION um_internal.role_permissions_before_write() IS 'trigger on um.role_permissions: the permission must be a valid name or pattern and name or match catalog permissions (UM010, UM011)';
COMMENT ON FUNCTION um_internal.roles_before_write() IS 'trigger on um.roles: built-in roles are not deleted, renamed or made from custom ones (UM042); no role moves to another organization; validates the name';
COMMENT ON FUNCTION um_internal.scopes_before_write() IS 'trigger on um.scopes: validates kind and name; a node stays in its organization, is not its own parent, and its parent is in the same organization';
COMMENT ON FUNCTION um_internal.scopes_check_cycle() IS 'trigger on um.scopes: the parent exists in the same organization (UM036, locked as a foreign key would); refuses re-parenting that would make a cycle in the scope tree, and a branch deeper than the 64 levels the evaluator follows (UM041)';
COMMENT ON FUNCTION um_internal.seed_builtin_roles(bigint) IS
  'internal: gives an organization its built-in roles with the template''s permissions (um.builtin_roles, um.builtin_role_permissions); returns its Root role''s id';
COMMENT ON FUNCTION um_internal.team_members_before_update() IS 'trigger on um.team_members: a team membership never moves to another team or user (UM046)';
COMMENT ON FUNCTION um_internal.team_members_keep_owner() IS 'statement trigger on um.team_members: a team''s owner cannot be removed or lose ownership without a successor (UM043); not when the team or organization goes';
COMMENT ON FUNCTION um_internal.teams_after_delete() IS 'statement trigger on um.teams: a deleted team takes its team space (and the grants on it) along, unless another team uses that node';
COMMENT ON FUNCTION um_internal.teams_before_write() IS 'trigger on um.teams: validates the name, keeps the team in its organization, and creates its team space (a scope node of kind "team") when none is given';
COMMENT ON FUNCTION um_internal.temporary_password() IS 'internal: a random temporary password (120 bits), which the user must change';
COMMENT ON FUNCTION um_internal.users_before_write() IS 'trigger on um.users: validates email, name, time zone, locale, mobile and attributes with explanations; keeps updated_at, suspended_at, and unverifies a changed address';
COMMENT ON FUNCTION um_internal.users_end_sessions() IS 'trigger on um.users: a password change, a suspension or the loss of login revokes the user''s open sessions';

COMMENT ON TRIGGER cache_invalidate ON um.users IS
  'every backend empties its permission cache once a change of id, status or allow_login is visible to it (statement trigger, enabled always)';
COMMENT ON TRIGGER cache_invalidate ON um.memberships IS
  'every backend empties its permission cache once this statement''s change is visible to it (statement trigger, enabled always)';
COMMENT ON TRIGGER cache_invalidate ON um.roles IS
  'every backend empties its permission cache once this statement''s change is visible to it (statement trigger, enabled always)';
COMMENT ON TRIGGER cache_invalidate ON um.role_inclusions IS
  'every backend empties its permission cache once this statement''s change is visible to it (statement trigger, enabled always)';
COMMENT ON TRIGGER cache_invalidate ON um.role_permissions IS
  'every backend empties its permission cache once this statement''s change is visible to it (statement trigger, enabled always)';
COMMENT ON TRIGGER cache_invalidate ON um.permissions IS
  'every backend empties its permission cache once this statement''s change is visible to it (statement trigger, enabled always)';
COMMENT ON TRIGGER cache_invalidate ON um.scopes IS
  'every backend empties its permission cache once this statement''s change is visible to it (statement trigger, enabled always)';
COMMENT ON TRIGGER cache_invalidate ON um.teams IS
  'every backend empties its permission cache once this statement''s change is visible to it (statement trigger, enabled always)';
COMMENT ON TRIGGER cache_invalidate ON um.team_members IS
  'every backend empties its permission cache once this statement''s change is visible to it (statement trigger, enabled always)';
COMMENT ON TRIGGER cache_invalidate ON um.team_member_roles IS
  'every backend empties its permission cache once this statement''s change is visible to it (statement trigger, enabled always)';
COMMENT ON TRIGGER cache_invalidate ON um.grants IS
  'every backend empties its permission cache once this statement''s change is visible to it (statement trigger, enabled always)';
COMMENT ON TRIGGER cache_invalidate_replica ON um.users IS
  'the same for changes a logical replication subscription applies (row trigger, enabled in replica mode only)';
COMMENT ON TRIGGER cache_invalidate_replica ON um.memberships IS
  'the same for changes a logical replication subscription applies (row trigger, enabled in replica mode only)';
COMMENT ON TRIGGER cache_invalidate_replica ON um.roles IS
  'the same for changes a logical replication subscription applies (row trigger, enabled in replica mode only)';
COMMENT ON TRIGGER cache_invalidate_replica ON um.role_inclusions IS
  'the same for changes a logical replication subscription applies (row trigger, enabled in replica mode only)';
COMMENT ON TRIGGER cache_invalidate_replica ON um.role_permissions IS
  'the same for changes a logical replication subscription applies (row trigger, enabled in replica mode only)';
COMMENT ON TRIGGER cache_invalidate_replica ON um.permissions IS
  'the same for changes a logical replication subscription applies (row trigger, enabled in replica mode only)';
COMMENT ON TRIGGER cache_invalidate_replica ON um.scopes IS
  'the same for changes a logical replication subscription applies (row trigger, enabled in replica mode only)';
COMMENT ON TRIGGER cache_invalidate_replica ON um.teams IS
  'the same for changes a logical replication subscription applies (row trigger, enabled in replica mode only)';
COMMENT ON TRIGGER cache_invalidate_replica ON um.team_members IS
  'the same for changes a logical replication subscription applies (row trigger, enabled in replica mode only)';
COMMENT ON TRIGGER cache_invalidate_replica ON um.team_member_roles IS
  'the same for changes a logical replication subscription applies (row trigger, enabled in replica mode only)';
COMMENT ON TRIGGER cache_invalidate_replica ON um.grants IS
  'the same for changes a logical replication subscription applies (row trigger, enabled in replica mode only)';

COMMENT ON POLICY um_read ON um.organizations IS 'application roles read the organizations where the acting user holds org:read';
COMMENT ON POLICY um_read ON um.users IS
  'application roles read the acting user''s own row and the members of organizations where the acting user holds member:read (never the password hash or login counters)';
COMMENT ON POLICY um_read ON um.memberships IS
  'application roles read the memberships of organizations where the acting user holds member:read, and the acting user''s own';
COMMENT ON POLICY um_read ON um.roles IS 'application roles read the roles of organizations where the acting user holds role:read';
COMMENT ON POLICY um_read ON um.role_inclusions IS 'application roles read the role inclusions of organizations where the acting user holds role:read';
COMMENT ON POLICY um_read ON um.role_permissions IS 'application roles read the role permissions of organizations where the acting user holds role:read';
COMMENT ON POLICY um_read ON um.grants IS 'application roles read the grants of organizations where the acting user holds role:read';
COMMENT ON POLICY um_read ON um.scopes IS 'application roles read the scope nodes of organizations where the acting user holds scope:read';
COMMENT ON POLICY um_read ON um.teams IS 'application roles read the teams of organizations where the acting user holds team:read';
COMMENT ON POLICY um_read ON um.team_members IS 'application roles read the team members of organizations where the acting user holds team:read';
COMMENT ON POLICY um_read ON um.team_member_roles IS 'application roles read the team roles of organizations where the acting user holds team:read';
COMMENT ON POLICY um_read ON um.invitations IS 'application roles read the invitations of organizations where the acting user holds member:invite';
COMMENT ON POLICY um_read ON um.audit_events IS
  'application roles read the events of organizations where the acting user holds audit:read, and the events about the acting user (in an organization only where their identity reaches it)';
COMMENT ON POLICY um_administrators ON um.organizations IS 'um administrators (roles with the privileges of the extension''s owner) read and write every row';
COMMENT ON POLICY um_administrators ON um.users IS 'um administrators (roles with the privileges of the extension''s owner) read and write every row';
COMMENT ON POLICY um_administrators ON um.memberships IS 'um administrators (roles with the privileges of the extension''s owner) read and write every row';
COMMENT ON POLICY um_administrators ON um.roles IS 'um administrators (roles with the privileges of the extension''s owner) read and write every row';
COMMENT ON POLICY um_administrators ON um.role_inclusions IS 'um administrators (roles with the privileges of the extension''s owner) read and write every row';
COMMENT ON POLICY um_administrators ON um.role_permissions IS
  'um administrators (roles with the privileges of the extension''s owner) read and write every row';
COMMENT ON POLICY um_administrators ON um.grants IS 'um administrators (roles with the privileges of the extension''s owner) read and write every row';
COMMENT ON POLICY um_administrators ON um.scopes IS 'um administrators (roles with the privileges of the extension''s owner) read and write every row';
COMMENT ON POLICY um_administrators ON um.teams IS 'um administrators (roles with the privileges of the extension''s owner) read and write every row';
COMMENT ON POLICY um_administrators ON um.team_members IS 'um administrators (roles with the privileges of the extension''s owner) read and write every row';
COMMENT ON POLICY um_administrators ON um.team_member_roles IS
  'um administrators (roles with the privileges of the extension''s owner) read and write every row';
COMMENT ON POLICY um_administrators ON um.invitations IS 'um administrators (roles with the privileges of the extension''s owner) read and write every row';
COMMENT ON POLICY um_administrators ON um.audit_events IS 'um administrators (roles with the privileges of the extension''s owner) read and write every row';
COMMENT ON POLICY um_administrators ON um.sessions IS 'um administrators (roles with the privileges of the extension''s owner) read and write every row';
COMMENT ON POLICY um_administrators ON um.identity_providers IS
  'um administrators (roles with the privileges of the extension''s owner) read and write every row';
COMMENT ON POLICY um_administrators ON um.user_identities IS 'um administrators (roles with the privileges of the extension''s owner) read and write every row';
COMMENT ON POLICY um_administrators ON um.cache_sentinel IS 'um administrators (roles with the privileges of the extension''s owner) read and write every row';
COMMENT ON POLICY um_administrators ON um.verification_tokens IS
  'um administrators (roles with the privileges of the extension''s owner) read and write every row';
-- Functions changed by several of the steps below appear once, with their
-- 0.3 body, under the first step that changed them.

-- One raise helper: um_internal.raise(sqlstate, message, detail, hint).  The callers
-- of um.invalid_argument(message, hint) raise UM009 through it, the same
-- error with no detail.
CREATE OR REPLACE FUNCTION um_internal.do_transfer_org_ownership(p_org_id bigint, p_new_root_user_id bigint, p_demote_to text,
                                             p_caller oid)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um_internal.authorize(p_caller, 'organization.transfer', format('transfer organization %s', p_org_id),
                                 'org:update', p_org_id, 'user', p_new_root_user_id);
  v_root bigint;
  v_demote um.roles;
  v_user um.users;
BEGIN
  IF v_actor IS NOT NULL AND NOT um_internal.is_root(p_org_id, v_actor) THEN
    PERFORM um_internal.deny('organization.transfer', p_org_id, 'user', p_new_root_user_id, 'UM073',
      'only a Root may transfer ownership of an organization', NULL, 'Ask a Root of the organization.');
  END IF;
  PERFORM um_internal.require_member(p_org_id, p_new_root_user_id);
  v_user := um_internal.require_user(p_new_root_user_id);
  PERFORM um_internal.require_root_candidate(v_user, p_org_id);
  v_demote := um_internal.require_role(p_org_id, coalesce(p_demote_to, 'admin'));
  IF v_demote.builtin = 'root' THEN
    PERFORM um_internal.raise('UM009', 'demote_to must not be the Root role', NULL, 'Pass Admin or another role, or use um_set_org_role to add a Root.');
  END IF;
  SELECT r.id INTO v_root FROM um.roles r WHERE r.org_id = p_org_id AND r.builtin = 'root';
  -- one statement, so the organization is never without a Root
  UPDATE um.memberships m
     SET role_id = CASE WHEN m.user_id = p_new_root_user_id THEN v_root ELSE v_demote.id END
   WHERE m.org_id = p_org_id
     AND (m.user_id = p_new_root_user_id
          OR (m.role_id = v_root AND (v_actor IS NULL OR m.user_id = v_actor)));
  PERFORM um_internal.audit('organization.transfer', p_org_id, 'user', p_new_root_user_id,
                   jsonb_build_object('demoted_to_role_id', v_demote.id));
END
$$;

CREATE OR REPLACE FUNCTION um_internal.do_set_org_setting(p_org_id bigint, p_setting text, p_value jsonb, p_caller oid)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um_internal.authorize(p_caller, 'organization.set_setting',
                                 format('change settings of organization %s', p_org_id),
                                 'org:update', p_org_id, 'organization', p_org_id);
BEGIN
  IF p_setting IS NULL OR p_setting !~ '^[a-z][a-z0-9_]{0,62}$' THEN
    PERFORM um_internal.raise('UM009', format('invalid setting name "%s"', p_setting), NULL,
      'A setting name is lowercase letters, digits and underscores, e.g. allow_invite_requests.');
  END IF;
  CASE p_setting
    WHEN 'name' THEN
      IF jsonb_typeof(p_value) IS DISTINCT FROM 'string' THEN
        PERFORM um_internal.raise('UM009', 'setting "name" takes a JSON string', NULL, 'Pass e.g. ''"Acme Inc."''::jsonb.');
      END IF;
      UPDATE um.organizations o SET name = p_value #>> '{}' WHERE o.id = p_org_id;
    WHEN 'allow_invite_requests', 'password_login_disabled' THEN
      IF jsonb_typeof(p_value) IS DISTINCT FROM 'boolean' THEN
        PERFORM um_internal.raise('UM009', format('setting "%s" takes true or false', p_setting), NULL, 'Pass ''true''::jsonb or ''false''::jsonb.');
      END IF;
      IF p_setting = 'allow_invite_requests' THEN
        UPDATE um.organizations o SET allow_invite_requests = p_value::boolean WHERE o.id = p_org_id;
      ELSE
        IF p_value::boolean AND NOT EXISTS (
             SELECT 1 FROM um.user_identities i
               JOIN um.memberships m ON m.user_id = i.user_id AND m.org_id = i.org_id
               JOIN um.roles r ON r.id = m.role_id
              WHERE i.org_id = p_org_id AND r.builtin = 'root' AND m.status = 'active')
           AND EXISTS (SELECT 1 FROM um.identity_providers p WHERE p.org_id = p_org_id) THEN
          RAISE EXCEPTION 'no Root of organization % has an identity-provider link', p_org_id
            USING ERRCODE = 'UM045',
                  DETAIL = 'Disabling password login now would lock the organization''s Roots out.',
                  HINT = 'Link a Root''s single sign-on identity first (um_link_identity).';
        END IF;
        UPDATE um.organizations o SET password_login_disabled = p_value::boolean WHERE o.id = p_org_id;  -- needs a provider (UM045)
      END IF;
    ELSE
      UPDATE um.organizations o
         SET settings = CASE WHEN p_value IS NULL OR p_value = 'null' THEN o.settings - p_setting
                             ELSE o.settings || jsonb_build_object(p_setting, p_value) END
       WHERE o.id = p_org_id;
  END CASE;
  PERFORM um_internal.audit('organization.set_setting', p_org_id, 'organization', p_org_id,
                   jsonb_build_object('setting', p_setting));
END
$$;

CREATE OR REPLACE FUNCTION um_internal.do_add_identity_provider(p_org_id bigint, p_name text, p_protocol text, p_issuer text,
                                            p_caller oid)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id bigint;
BEGIN
  PERFORM um_internal.authorize(p_caller, 'identity_provider.add', format('add identity providers to organization %s', p_org_id),
                       'org:update', p_org_id, 'organization', p_org_id);
  IF p_protocol IS NULL OR p_protocol NOT IN ('oidc', 'saml') THEN
    PERFORM um_internal.raise('UM009', format('unknown protocol "%s"', p_protocol), NULL, 'Pass ''oidc'' or ''saml''.');
  END IF;
  IF p_issuer IS NULL OR p_issuer !~ '^https://[^[:space:]]+$' THEN
    PERFORM um_internal.raise('UM009', format('invalid issuer "%s"', p_issuer), NULL, 'Pass the provider''s https:// issuer URL.');
  END IF;
  IF NOT um_internal.display_name_is_valid(p_name, 100) THEN
    RAISE EXCEPTION 'invalid identity provider name "%"', p_name
      USING ERRCODE = 'UM003', HINT = 'Use 1 to 100 characters without surrounding blanks.';
  END IF;
  INSERT INTO um.identity_providers (org_id, name, protocol, issuer)
  VALUES (p_org_id, p_name, p_protocol, p_issuer)
  ON CONFLICT (org_id, lower(name)) DO NOTHING
  RETURNING id INTO v_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'organization % already has an identity provider named "%"', p_org_id, p_name
      USING ERRCODE = 'UM027', HINT = 'Choose another name, or use the existing provider.';
  END IF;
  PERFORM um_internal.audit('identity_provider.add', p_org_id, 'identity_provider', v_id, '{}');
  RETURN v_id;
END
$$;

CREATE OR REPLACE FUNCTION um_internal.do_link_identity(p_org_id bigint, p_provider text, p_subject text, p_user_id bigint,
                                    p_caller oid)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um_internal.authorize(p_caller, 'user.link_identity', format('link identities in organization %s', p_org_id),
                                 'user:update', p_org_id, 'user', p_user_id);
  v_provider bigint;
  v_user bigint := coalesce(p_user_id, v_actor);
BEGIN
  -- a sign-in method outlives the impersonation: never while impersonating
  IF v_actor IS DISTINCT FROM @extschema@.um_real_user_id() THEN
    PERFORM um_internal.deny('user.link_identity', um_internal.actor_org(p_org_id), 'user', v_user, 'UM070',
      'permission denied to link identities while impersonating',
      'A linked identity signs in as the account for good.', 'Call um_end_impersonation() first.');
  END IF;
  IF v_user IS NULL THEN
    PERFORM um_internal.raise('UM009', 'a user is required', NULL, 'Pass user_id.');
  END IF;
  PERFORM um_internal.require_member(p_org_id, v_user);
  PERFORM um_internal.guard_root_target(v_actor, p_org_id, v_user, 'user.link_identity', 'link an identity to');
  -- a sign-in method on an account whose mailbox nobody proved would be
  -- waiting for its owner, who may not be who created it
  IF v_actor IS NOT NULL AND v_actor <> v_user
     AND (SELECT u.email_verified_at IS NULL FROM um.users u WHERE u.id = v_user) THEN
    PERFORM um_internal.deny('user.link_identity', p_org_id, 'user', v_user, 'UM070',
      'permission denied to link an identity to an unverified account',
      'The address of the account was never proven; whoever claims it later must not find a sign-in method of someone else''s.',
      'Have the backend send a verification (um_resend_verification) first.');
  END IF;
  IF v_actor IS NOT NULL AND v_actor <> v_user THEN
    -- a sign-in method is the whole account's, in every organization of the user
    PERFORM um_internal.authorize_user(p_caller, 'user.link_identity', format('link an identity to user %s', v_user),
                              'user:update', v_user);
  END IF;
  SELECT p.id INTO v_provider FROM um.identity_providers p
   WHERE p.org_id = p_org_id AND lower(p.name) = lower(p_provider);
  IF NOT FOUND THEN
    RAISE EXCEPTION 'organization % has no identity provider named "%"', p_org_id, p_provider
      USING ERRCODE = 'UM037', HINT = 'Add it with um_add_identity_provider(), or see um.identity_providers.';
  END IF;
  IF p_subject IS NULL OR length(p_subject) NOT BETWEEN 1 AND 255 THEN
    PERFORM um_internal.raise('UM009', 'invalid subject', NULL, 'Pass the provider''s subject identifier (1 to 255 characters).');
  END IF;
  INSERT INTO um.user_identities (org_id, provider_id, subject, user_id)
  VALUES (p_org_id, v_provider, p_subject, v_user)
  ON CONFLICT (provider_id, subject) DO NOTHING;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'that subject of provider "%" is already linked to a user', p_provider
      USING ERRCODE = 'UM027', HINT = 'A provider''s subject identifies one user; unlink it first.';
  END IF;
  PERFORM um_internal.audit('user.link_identity', p_org_id, 'user', v_user, jsonb_build_object('provider_id', v_provider));
END
$$;

CREATE OR REPLACE FUNCTION um_internal.do_create_team(p_org_id bigint, p_name text, p_description text, p_owner_user_id bigint,
                                  p_caller oid)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um_internal.authorize(p_caller, 'team.create', format('create teams in organization %s', p_org_id),
                                 'team:create', p_org_id, 'team', NULL);
  v_owner bigint := coalesce(p_owner_user_id, v_actor);
  v_member um.memberships;
  v_id bigint;
BEGIN
  IF v_owner IS NULL THEN
    PERFORM um_internal.raise('UM009', 'a team needs an owner', NULL, 'Pass owner_user_id, a member of the organization.');
  END IF;
  v_member := um_internal.require_member(p_org_id, v_owner);
  IF v_member.status <> 'active' THEN
    RAISE EXCEPTION 'user % cannot own a team', v_owner
      USING ERRCODE = 'UM050', DETAIL = 'The membership is suspended.', HINT = 'Choose an active member.';
  END IF;
  v_id := um_internal.write_team(p_org_id, NULL, p_name, p_description);
  INSERT INTO um.team_members (org_id, team_id, user_id, is_owner) VALUES (p_org_id, v_id, v_owner, true);
  PERFORM um_internal.audit('team.create', p_org_id, 'team', v_id, jsonb_build_object('owner_user_id', v_owner));
  RETURN v_id;
END
$$;

CREATE OR REPLACE FUNCTION um_internal.authorize_role_edit(p_caller oid, p_action text, p_role_id bigint, p_permission text)
RETURNS um.roles
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_role um.roles;
  v_actor bigint;
BEGIN
  SELECT * INTO v_role FROM um.roles r WHERE r.id = p_role_id;
  v_actor := um_internal.authorize(p_caller, p_action, format('edit role %s', p_role_id), 'role:update',
                          v_role.org_id, 'role', p_role_id);
  v_role := um_internal.require_role_id(p_role_id);
  IF v_actor IS NOT NULL AND v_role.builtin = 'root' AND NOT um_internal.is_root(v_role.org_id, v_actor) THEN
    PERFORM um_internal.deny(p_action, v_role.org_id, 'role', p_role_id, 'UM073',
      'only a Root may edit the Root role', NULL, 'Ask a Root of the organization.');
  END IF;
  IF p_permission IS NULL THEN
    PERFORM um_internal.raise('UM009', 'a permission is required', NULL, 'Pass "resource:action", or a pattern with *.');
  END IF;
  PERFORM um_internal.assert_permission_name(p_permission, true);
  RETURN v_role;
END
$$;

CREATE OR REPLACE FUNCTION um_internal.do_grant_scope_role(p_scope_id bigint, p_role text, p_user_id bigint, p_team_id bigint,
                                       p_caller oid)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_scope um.scopes;
  v_actor bigint;
  v_role um.roles;
  v_id bigint;
BEGIN
  SELECT * INTO v_scope FROM um.scopes s WHERE s.id = p_scope_id;
  v_actor := um_internal.authorize(p_caller, 'grant.create', format('give roles on scope node %s', p_scope_id), 'role:grant',
                          v_scope.org_id, 'scope', p_scope_id);
  v_scope := um_internal.require_scope(p_scope_id);
  PERFORM um_internal.assert_one_grantee(p_user_id, p_team_id);
  v_role := um_internal.require_role(v_scope.org_id, p_role);
  IF p_user_id IS NOT NULL THEN
    PERFORM um_internal.require_member(v_scope.org_id, p_user_id);
  ELSE
    PERFORM um_internal.require_org_team(v_scope.org_id, p_team_id);
  END IF;
  PERFORM um_internal.guard_escalation(v_actor, v_scope.org_id, p_scope_id, ARRAY(SELECT um_internal.role_grants(v_role.id)),
                              'grant.create', format('give role "%s"', v_role.name), 'scope', p_scope_id);
  INSERT INTO um.grants (org_id, role_id, user_id, team_id, scope_id, granted_by)
  VALUES (v_scope.org_id, v_role.id, p_user_id, p_team_id, p_scope_id, v_actor)
  ON CONFLICT DO NOTHING
  RETURNING id INTO v_id;
  IF v_id IS NULL THEN
    SELECT g.id INTO v_id FROM um.grants g
     WHERE g.org_id = v_scope.org_id AND g.role_id = v_role.id AND g.scope_id = p_scope_id AND g.scope_kind IS NULL
       AND g.user_id IS NOT DISTINCT FROM p_user_id AND g.team_id IS NOT DISTINCT FROM p_team_id;
    RETURN v_id;
  END IF;
  PERFORM um_internal.audit('grant.create', v_scope.org_id, 'scope', p_scope_id,
                   jsonb_build_object('grant_id', v_id, 'role_id', v_role.id, 'user_id', p_user_id, 'team_id', p_team_id));
  RETURN v_id;
END
$$;

CREATE OR REPLACE FUNCTION um_internal.do_revoke_scope_role(p_scope_id bigint, p_role text, p_user_id bigint, p_team_id bigint,
                                        p_caller oid)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_scope um.scopes;
  v_actor bigint;
  v_role um.roles;
  v_id bigint;
BEGIN
  SELECT * INTO v_scope FROM um.scopes s WHERE s.id = p_scope_id;
  v_actor := um_internal.authorize(p_caller, 'grant.delete', format('take roles on scope node %s', p_scope_id), 'role:grant',
                          v_scope.org_id, 'scope', p_scope_id);
  v_scope := um_internal.require_scope(p_scope_id);
  PERFORM um_internal.assert_one_grantee(p_user_id, p_team_id);
  v_role := um_internal.require_role(v_scope.org_id, p_role);
  IF p_user_id IS NOT NULL THEN
    PERFORM um_internal.guard_root_target(v_actor, v_scope.org_id, p_user_id, 'grant.delete', 'take roles from');
  END IF;
  DELETE FROM um.grants g
   WHERE g.org_id = v_scope.org_id AND g.role_id = v_role.id AND g.scope_id = p_scope_id AND g.scope_kind IS NULL
     AND g.user_id IS NOT DISTINCT FROM p_user_id AND g.team_id IS NOT DISTINCT FROM p_team_id
  RETURNING g.id INTO v_id;
  IF v_id IS NULL THEN
    RETURN false;
  END IF;
  PERFORM um_internal.audit('grant.delete', v_scope.org_id, 'scope', p_scope_id,
                   jsonb_build_object('grant_id', v_id, 'role_id', v_role.id, 'user_id', p_user_id, 'team_id', p_team_id));
  RETURN true;
END
$$;

CREATE OR REPLACE FUNCTION um_internal.do_invite(p_org_id bigint, p_emails text, p_role text, p_team_id bigint, p_valid_for interval,
                             p_caller oid)
RETURNS TABLE (email text, status text, invitation_id bigint, token text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
  v_actor bigint := um_internal.authorize(p_caller, 'invitation.create', format('invite people to organization %s', p_org_id),
                                 'member:invite', p_org_id, 'invitation', NULL);
  v_role um.roles := um_internal.require_role(p_org_id, coalesce(p_role, 'member'));
  v_emails text[] := um_internal.parse_email_batch(p_emails);
  v_bad text[];
  v_email text;
  v_token text;
  v_id bigint;
  v_expires timestamptz;
BEGIN
  IF v_role.builtin = 'root' AND v_actor IS NOT NULL AND NOT um_internal.is_root(p_org_id, v_actor) THEN
    PERFORM um_internal.deny('invitation.create', p_org_id, 'invitation', NULL, 'UM073',
      'only a Root may invite a Root', NULL, 'Invite with another role; a Root can promote the member later.');
  END IF;
  PERFORM um_internal.guard_escalation(v_actor, p_org_id, NULL, ARRAY(SELECT um_internal.role_grants(v_role.id)),
                              'invitation.create', format('invite with role "%s"', v_role.name), 'invitation', NULL);
  IF p_team_id IS NOT NULL THEN
    PERFORM um_internal.require_org_team(p_org_id, p_team_id);
    -- inviting into a team is adding a team member: team:manage or its owner,
    -- and no team whose grants hold more than the inviter
    PERFORM um_internal.authorize_team(p_caller, 'invitation.create', format('invite people into team %s', p_team_id), p_team_id, NULL);
    PERFORM um_internal.guard_team_grants(v_actor, p_team_id, 'invitation.create', NULL);
  END IF;
  IF p_valid_for IS NULL OR p_valid_for <= interval '0' OR p_valid_for > interval '90 days' THEN
    PERFORM um_internal.raise('UM009', format('invalid validity "%s"', p_valid_for), NULL, 'Pass an interval between 1 second and 90 days.');
  END IF;
  IF cardinality(v_emails) = 0 THEN
    RAISE EXCEPTION 'no email addresses given'
      USING ERRCODE = 'UM054', HINT = 'Pass addresses separated by commas, semicolons or new lines.';
  END IF;
  SELECT array_agg(e ORDER BY n) INTO v_bad FROM unnest(v_emails) WITH ORDINALITY AS x(e, n) WHERE NOT um_internal.email_is_valid(e);
  IF v_bad IS NOT NULL THEN
    RAISE EXCEPTION '% of % email addresses are invalid; nobody was invited', cardinality(v_bad), cardinality(v_emails)
      USING ERRCODE = 'UM054',
            DETAIL = 'Invalid: ' || array_to_string(v_bad, ', ') || '.',
            HINT = 'Correct or remove them and send the whole batch again.';
  END IF;
  v_expires := now() + p_valid_for;
  FOREACH v_email IN ARRAY v_emails LOOP
    email := v_email; invitation_id := NULL; token := NULL;
    IF EXISTS (SELECT 1 FROM um.memberships m JOIN um.users u ON u.id = m.user_id
                WHERE m.org_id = p_org_id AND lower(u.email) = lower(v_email)) THEN
      status := 'already_member';
      RETURN NEXT;
      CONTINUE;
    END IF;
    v_token := um_internal.generate_token();
    -- an open invitation (or request) for the address is renewed
    UPDATE um.invitations i
       SET state = 'pending', token_hash = um_internal.token_hash(v_token), expires_at = v_expires, role_id = v_role.id,
           team_id = p_team_id, invited_by = v_actor, created_at = now()
     WHERE i.org_id = p_org_id AND lower(i.email) = lower(v_email) AND i.state IN ('pending', 'requested')
    RETURNING i.id INTO v_id;
    IF FOUND THEN
      status := 'renewed';
    ELSE
      INSERT INTO um.invitations (org_id, email, role_id, team_id, state, token_hash, invited_by, expires_at)
      VALUES (p_org_id, v_email, v_role.id, p_team_id, 'pending', um_internal.token_hash(v_token), v_actor, v_expires)
      ON CONFLICT (org_id, lower(email)) WHERE state IN ('requested', 'pending') DO NOTHING
      RETURNING id INTO v_id;
      IF NOT FOUND THEN                             -- invited at this very moment by someone else
        status := 'already_invited';
        RETURN NEXT;
        CONTINUE;
      END IF;
      status := 'invited';
    END IF;
    invitation_id := v_id; token := v_token;
    PERFORM um_internal.audit('invitation.create', p_org_id, 'invitation', v_id,
                     jsonb_build_object('role_id', v_role.id, 'team_id', p_team_id, 'renewed', status = 'renewed'));
    RETURN NEXT;
  END LOOP;
END
$$;

DROP FUNCTION um.invalid_argument(text, text);

-- Every message written once: the errors that several functions raised with
-- the same text now come from one lookup or check each, with the same
-- SQLSTATE, message, detail and hint as before: um_internal.require_actor (UM072
-- "nobody is acting in this transaction"), um_internal.require_org_team (UM033 "team
-- % does not exist in organization %"), um_internal.require_team_member (UM038 "user
-- % is not a member of team %"), um_internal.require_root_candidate (UM050 "user %
-- cannot be the Root of an organization") and um_internal.assert_one_grantee (UM009
-- "name exactly one grantee").
CREATE OR REPLACE FUNCTION um_internal.require_actor(p_hint text)
RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := @extschema@.um_current_user_id();
BEGIN
  IF v_actor IS NULL THEN
    RAISE EXCEPTION 'nobody is acting in this transaction'
      USING ERRCODE = 'UM072', HINT = p_hint;
  END IF;
  RETURN v_actor;
END
$$;

CREATE OR REPLACE FUNCTION um_internal.require_org_team(p_org_id bigint, p_team_id bigint)
RETURNS um.teams
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.teams;
BEGIN
  SELECT * INTO v FROM um.teams t WHERE t.id = p_team_id AND t.org_id = p_org_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'team % does not exist in organization %', p_team_id, p_org_id
      USING ERRCODE = 'UM033', HINT = 'Look the team up in um.teams.';
  END IF;
  RETURN v;
END
$$;

CREATE OR REPLACE FUNCTION um_internal.require_team_member(p_team um.teams, p_user_id bigint, p_hint text)
RETURNS um.team_members
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.team_members;
BEGIN
  SELECT * INTO v FROM um.team_members tm WHERE tm.team_id = p_team.id AND tm.user_id = p_user_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'user % is not a member of team "%"', p_user_id, p_team.name
      USING ERRCODE = 'UM038', HINT = p_hint;
  END IF;
  RETURN v;
END
$$;

CREATE OR REPLACE FUNCTION um_internal.require_root_candidate(p_user um.users, p_org_id bigint)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF p_user.status <> 'active' OR NOT p_user.allow_login
     OR (p_org_id IS NOT NULL
         AND EXISTS (SELECT 1 FROM um.memberships m WHERE m.org_id = p_org_id AND m.user_id = p_user.id
                                                      AND m.status <> 'active')) THEN
    RAISE EXCEPTION 'user % cannot be the Root of an organization', p_user.id
      USING ERRCODE = 'UM050',
            DETAIL = CASE WHEN p_org_id IS NOT NULL THEN 'The user is suspended or notification-only.'
                          WHEN p_user.status <> 'active' THEN 'The user is suspended.'
                          ELSE 'The user is notification-only (allow_login is false).' END,
            HINT = CASE WHEN p_org_id IS NULL THEN 'Choose an active user who can log in.'
                        ELSE 'Choose an active member who can log in.' END;
  END IF;
END
$$;

CREATE OR REPLACE FUNCTION um_internal.assert_one_grantee(p_user_id bigint, p_team_id bigint)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF num_nonnulls(p_user_id, p_team_id) <> 1 THEN
    PERFORM um_internal.raise('UM009', 'name exactly one grantee', NULL, 'Pass user_id or team_id, not both.');
  END IF;
END
$$;

REVOKE EXECUTE ON FUNCTION
  um_internal.require_actor(text),
  um_internal.require_org_team(bigint, bigint),
  um_internal.require_team_member(um.teams, bigint, text),
  um_internal.require_root_candidate(um.users, bigint),
  um_internal.assert_one_grantee(bigint, bigint)
FROM PUBLIC;

-- (um_impersonate's 0.3 form: a lifecycle entry, its body um_internal.do_impersonate;
-- see "One entry mechanism for every privileged function" below)
CREATE FUNCTION um_internal.do_impersonate(p_target_user_id bigint, p_caller oid)
RETURNS bigint[]
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um_internal.require_actor('Call um_begin(token) first; impersonation starts from a logged-in user.');
  v_target um.users;
  v_orgs bigint[];
BEGIN
  IF v_actor IS DISTINCT FROM @extschema@.um_real_user_id() THEN
    PERFORM um_internal.deny('user.impersonate', NULL, 'user', p_target_user_id, 'UM071',
      'cannot impersonate while impersonating', NULL, 'Call um_end_impersonation() first.');
  END IF;
  IF p_target_user_id = v_actor THEN
    PERFORM um_internal.deny('user.impersonate', NULL, 'user', p_target_user_id, 'UM071',
      'cannot impersonate oneself', NULL, 'Pass the id of another user.');
  END IF;
  -- first: may the actor impersonate anybody in an organization of the
  -- target's?  (Until then, say nothing about the target, not even whether
  -- it exists.)
  SELECT array_agg(m.org_id ORDER BY m.org_id) INTO v_orgs
    FROM um.memberships m
   WHERE m.user_id = p_target_user_id AND m.status = 'active'
     AND @extschema@.um_has_permission(v_actor, 'user:impersonate', m.org_id);
  IF v_orgs IS NULL THEN
    PERFORM um_internal.deny('user.impersonate', NULL, 'user', p_target_user_id, 'UM070',
      format('permission denied to impersonate user %s', p_target_user_id),
      'Impersonation needs user:impersonate in an organization the target is an active member of.',
      'Ask an Admin of the target''s organization.');
  END IF;
  v_target := um_internal.require_user(p_target_user_id);
  IF EXISTS (SELECT 1 FROM um.memberships m JOIN um.roles r ON r.id = m.role_id
              WHERE m.user_id = v_target.id AND r.builtin IN ('root', 'admin')) THEN
    PERFORM um_internal.deny('user.impersonate', v_orgs[1], 'user', p_target_user_id, 'UM071',
      format('cannot impersonate user %s, an Admin or Root', p_target_user_id),
      'Admins and roots (of any organization) are never impersonated.',
      'Ask the user to act themselves.');
  END IF;
  IF v_target.status <> 'active' OR NOT v_target.allow_login THEN
    PERFORM um_internal.deny('user.impersonate', v_orgs[1], 'user', p_target_user_id, 'UM071',
      format('cannot impersonate user %s', p_target_user_id),
      'The user is suspended or may not log in.', 'Reactivate the user first, or act yourself.');
  END IF;
  SELECT array_agg(o ORDER BY o) INTO v_orgs
    FROM unnest(v_orgs) AS o
   WHERE NOT um_internal.impersonation_escalates(v_actor, v_target.id, o);
  IF v_orgs IS NULL THEN
    PERFORM um_internal.deny('user.impersonate', NULL, 'user', p_target_user_id, 'UM070',
      format('permission denied to impersonate user %s', p_target_user_id),
      'The target holds a permission you lack; impersonating them would give it to you.',
      'Ask someone who holds every permission of the target''s.');
  END IF;
  PERFORM um_internal.start_impersonation(v_target.id, v_orgs);
  -- committed at once: a transaction that reads as the target and then
  -- rolls back still leaves the impersonation on record
  PERFORM um_internal.audit_autonomous('user.impersonate', 'ok', v_orgs[1], 'user', v_target.id,
                              jsonb_build_object('orgs', to_jsonb(v_orgs)));
  RETURN v_orgs;
END
$$;
COMMENT ON FUNCTION um_internal.do_impersonate(bigint, oid) IS
  'body of um_impersonate: runs as um''s owner with the calling role passed as p_caller; called only through um_impersonate (EXECUTE held by nobody)';

CREATE OR REPLACE FUNCTION @extschema@.um_impersonate(target_user_id bigint)
RETURNS bigint[] AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
REVOKE EXECUTE ON FUNCTION um_internal.do_impersonate(bigint, oid) FROM PUBLIC;

CREATE OR REPLACE FUNCTION um_internal.do_create_organization(p_slug text, p_name text, p_root_user_id bigint, p_caller oid)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := @extschema@.um_current_user_id();
  v_user um.users;
  v_org bigint;
  v_root bigint;
BEGIN
  IF v_actor IS NULL THEN
    PERFORM um_internal.authorize(p_caller, 'organization.create', 'create an organization', NULL, NULL, 'organization', NULL);
  ELSIF p_root_user_id IS DISTINCT FROM v_actor OR v_actor IS DISTINCT FROM @extschema@.um_real_user_id() THEN
    PERFORM um_internal.deny('organization.create', NULL, 'user', p_root_user_id, 'UM070',
      'permission denied to create an organization for another user',
      'A logged-in user creates organizations only with themself as the Root (and not while impersonating).',
      'Pass your own user id as root_user_id.');
  END IF;
  v_user := um_internal.require_user(p_root_user_id);
  PERFORM um_internal.require_root_candidate(v_user, NULL);
  -- nothing inserted for a slug taken already or at this very moment
  INSERT INTO um.organizations (slug, name)
  SELECT p_slug, p_name WHERE NOT EXISTS (SELECT 1 FROM um.organizations o WHERE o.slug = p_slug)
  ON CONFLICT (slug) DO NOTHING
  RETURNING id INTO v_org;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'organization slug "%" is already taken', p_slug
      USING ERRCODE = 'UM021', HINT = 'Choose another slug.';
  END IF;
  v_root := um_internal.seed_builtin_roles(v_org);
  INSERT INTO um.memberships (org_id, user_id, role_id) VALUES (v_org, p_root_user_id, v_root);
  PERFORM um_internal.audit('organization.create', v_org, 'organization', v_org,
                   jsonb_build_object('root_user_id', p_root_user_id));
  RETURN v_org;
END
$$;

CREATE OR REPLACE FUNCTION um_internal.do_delete_my_account(p_caller oid)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um_internal.require_actor('Call um_begin(token) first: an account is deleted by its own user.');
BEGIN
  IF v_actor IS DISTINCT FROM @extschema@.um_real_user_id() THEN
    PERFORM um_internal.deny('user.delete_self', NULL, 'user', v_actor, 'UM071',
      'cannot delete an account while impersonating it', NULL, 'Call um_end_impersonation() first.');
  END IF;
  PERFORM um_internal.erase_user(v_actor, 'user.delete_self');
END
$$;

CREATE OR REPLACE FUNCTION um_internal.do_export_my_data(p_caller oid)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um_internal.require_actor('Call um_begin(token) first: users export their own data.');
  v jsonb;
BEGIN
  IF v_actor IS DISTINCT FROM @extschema@.um_real_user_id() THEN
    PERFORM um_internal.deny('user.export_self', NULL, 'user', v_actor, 'UM071',
      'cannot export a user''s data while impersonating them', NULL, 'Call um_end_impersonation() first.');
  END IF;
  SELECT jsonb_build_object(
           'exported_at', now(),
           'profile', jsonb_build_object('id', u.id, 'email', u.email, 'name', u.name, 'timezone', u.timezone,
                                         'locale', u.locale, 'mobile', u.mobile, 'allow_login', u.allow_login,
                                         'status', u.status, 'email_verified_at', u.email_verified_at,
                                         'password_changed_at', u.password_changed_at,
                                         'attributes', u.attributes, 'created_at', u.created_at),
           'memberships', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                             'org_id', o.id, 'organization', o.name, 'role', r.name, 'status', m.status,
                             'member_since', m.created_at) ORDER BY o.id), '[]')
                             FROM um.memberships m JOIN um.organizations o ON o.id = m.org_id JOIN um.roles r ON r.id = m.role_id
                            WHERE m.user_id = u.id),
           'teams', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                       'org_id', t.org_id, 'team', t.name, 'owner', tm.is_owner, 'added_at', tm.added_at,
                       'roles', (SELECT coalesce(jsonb_agg(tr.name ORDER BY tr.name), '[]')
                                   FROM um.team_member_roles tmr JOIN um.roles tr ON tr.id = tmr.role_id
                                  WHERE tmr.team_id = tm.team_id AND tmr.user_id = u.id)) ORDER BY t.id), '[]')
                       FROM um.team_members tm JOIN um.teams t ON t.id = tm.team_id WHERE tm.user_id = u.id),
           'grants', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                        'org_id', g.org_id, 'role', gr.name, 'scope_id', g.scope_id, 'scope_kind', g.scope_kind,
                        'granted_at', g.created_at) ORDER BY g.id), '[]')
                        FROM um.grants g JOIN um.roles gr ON gr.id = g.role_id WHERE g.user_id = u.id),
           'sessions', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                          'created_at', s.created_at, 'expires_at', s.expires_at, 'method', s.method,
                          'ended_at', s.revoked_at) ORDER BY s.id), '[]')
                          FROM um.sessions s WHERE s.user_id = u.id),
           'identities', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                            'provider', p.name, 'subject', i.subject, 'linked_at', i.created_at) ORDER BY p.id), '[]')
                            FROM um.user_identities i JOIN um.identity_providers p ON p.id = i.provider_id
                           WHERE i.user_id = u.id),
           'audit_events', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                              'at', a.at, 'action', a.action, 'outcome', a.outcome, 'org_id', a.org_id,
                              'target_type', a.target_type, 'target_id', a.target_id,
                              'by_me', a.actor_user_id = u.id) ORDER BY a.id), '[]')
                              FROM um.audit_events a
                             WHERE a.actor_user_id = u.id OR (a.target_type = 'user' AND a.target_id = u.id)))
    INTO v
    FROM um.users u WHERE u.id = v_actor;
  PERFORM um_internal.audit('user.export_self', NULL, 'user', v_actor, '{}');
  RETURN v;
END
$$;

CREATE OR REPLACE FUNCTION um_internal.do_grant_team_role(p_team_id bigint, p_user_id bigint, p_role text, p_caller oid)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um_internal.authorize_team(p_caller, 'team.grant_role', format('give roles in team %s', p_team_id),
                                      p_team_id, p_user_id);
  v_team um.teams := um_internal.require_team(p_team_id);
  v_role um.roles := um_internal.require_role(v_team.org_id, p_role);
BEGIN
  PERFORM um_internal.require_team_member(v_team, p_user_id, 'Add them to the team first (um_add_team_member).');
  PERFORM um_internal.guard_escalation(v_actor, v_team.org_id, v_team.scope_id, ARRAY(SELECT um_internal.role_grants(v_role.id)),
                              'team.grant_role', format('give team role "%s"', v_role.name), 'user', p_user_id);
  INSERT INTO um.team_member_roles (org_id, team_id, user_id, role_id)
  VALUES (v_team.org_id, p_team_id, p_user_id, v_role.id) ON CONFLICT DO NOTHING;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  PERFORM um_internal.audit('team.grant_role', v_team.org_id, 'user', p_user_id,
                   jsonb_build_object('team_id', p_team_id, 'role_id', v_role.id));
  RETURN true;
END
$$;

CREATE OR REPLACE FUNCTION um_internal.do_remove_team_member(p_team_id bigint, p_user_id bigint, p_caller oid)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint;
  v_team um.teams;
BEGIN
  v_actor := um_internal.authorize_team(p_caller, 'team.remove_member', format('remove members of team %s', p_team_id),
                               p_team_id, p_user_id);
  v_team := um_internal.require_team(p_team_id);
  PERFORM um_internal.guard_root_target(v_actor, v_team.org_id, p_user_id, 'team.remove_member', 'remove from a team');
  PERFORM um_internal.require_team_member(v_team, p_user_id, 'See the team''s members in um.team_members.');
  PERFORM um_internal.assert_not_team_owner(v_team.org_id, p_team_id, p_user_id);
  DELETE FROM um.team_members tm WHERE tm.team_id = p_team_id AND tm.user_id = p_user_id;
  PERFORM um_internal.audit('team.remove_member', v_team.org_id, 'user', p_user_id, jsonb_build_object('team_id', p_team_id));
END
$$;

CREATE OR REPLACE FUNCTION um_internal.do_transfer_team_ownership(p_team_id bigint, p_new_owner_user_id bigint, p_caller oid)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint;
  v_owner bigint;
  v_team um.teams;
BEGIN
  v_actor := um_internal.authorize_team(p_caller, 'team.transfer', format('transfer team %s', p_team_id),
                               p_team_id, p_new_owner_user_id);
  v_team := um_internal.require_team(p_team_id);
  -- the owner loses the team: only a Root takes a team from a Root
  SELECT tm.user_id INTO v_owner FROM um.team_members tm WHERE tm.team_id = p_team_id AND tm.is_owner;
  IF v_owner IS NOT NULL THEN
    PERFORM um_internal.guard_root_target(v_actor, v_team.org_id, v_owner, 'team.transfer', 'take a team from');
  END IF;
  PERFORM um_internal.require_team_member(v_team, p_new_owner_user_id, 'Add them to the team first (um_add_team_member).');
  -- one statement: the team always has exactly one owner
  UPDATE um.team_members tm SET is_owner = (tm.user_id = p_new_owner_user_id)
   WHERE tm.team_id = p_team_id AND (tm.is_owner OR tm.user_id = p_new_owner_user_id);
  PERFORM um_internal.audit('team.transfer', v_team.org_id, 'user', p_new_owner_user_id, jsonb_build_object('team_id', p_team_id));
END
$$;

-- INSERT ... ON CONFLICT DO NOTHING on the unique index, with the pre-check
-- (where there was one) in the same statement, instead of a pre-check and a
-- subtransaction catching unique_violation: the same error (or, in
-- um_invite and um_request_invitation, the same quiet outcome) when the row
-- exists already or is inserted concurrently.  Creating and renaming a team
-- keep one such block, in um_internal.write_team below (see 88_teams_and_scopes.sql).
CREATE OR REPLACE FUNCTION um_internal.insert_user(p_email text, p_name text, p_allow_login boolean, p_timezone text,
                               p_locale text, p_mobile text, p_attributes jsonb)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_email text := btrim(p_email, E' \t\r\n');
  v_id bigint;
BEGIN
  IF p_email IS NULL THEN
    RAISE EXCEPTION 'an email address is required'
      USING ERRCODE = 'UM001', HINT = 'Pass the user''s email address.';
  END IF;
  -- One statement inserts nothing for an address already taken: checked
  -- first (before the row's checks), or by a concurrent insert, which the
  -- arbiter index waits for.
  INSERT INTO um.users (email, name, allow_login, timezone, locale, mobile, attributes)
  SELECT v_email, p_name, coalesce(p_allow_login, true), coalesce(p_timezone, 'UTC'),
         coalesce(p_locale, 'en'), p_mobile, coalesce(p_attributes, '{}')
   WHERE NOT EXISTS (SELECT 1 FROM um.users u WHERE lower(u.email) = lower(v_email))
  ON CONFLICT (lower(email)) DO NOTHING
  RETURNING id INTO v_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'email address "%" is already registered', v_email
      USING ERRCODE = 'UM020',
            DETAIL = 'Email addresses are unique regardless of letter case.',
            HINT = 'Use the existing user (um.users), or choose another address.';
  END IF;
  RETURN v_id;
END
$$;

CREATE OR REPLACE FUNCTION um_internal.do_add_member(p_org_id bigint, p_user_id bigint, p_role text, p_caller oid)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um_internal.authorize(p_caller, 'member.add', format('add members to organization %s', p_org_id),
                                 'member:create', p_org_id, 'user', p_user_id);
  v_org um.organizations;
  v_role um.roles := um_internal.require_role(p_org_id, coalesce(p_role, 'member'));
  v_id bigint;
BEGIN
  -- An acting user never pulls an existing account into their organization
  -- (it would show them its data and put it under their control): people
  -- join through an invitation they accept.
  IF v_actor IS NOT NULL THEN
    PERFORM um_internal.deny('member.add', p_org_id, 'user', p_user_id, 'UM070',
      'permission denied to add an existing user directly',
      'People join an organization by accepting an invitation; only a um administrator adds them directly.',
      'Invite the address with um_invite(), or create a new user with um_create_user(org_id, email, ...).');
  END IF;
  v_org := um_internal.require_organization(p_org_id);
  PERFORM um_internal.guard_escalation(v_actor, p_org_id, NULL, ARRAY(SELECT um_internal.role_grants(v_role.id)),
                              'member.add', format('add a member with role "%s"', v_role.name), 'user', p_user_id);
  PERFORM um_internal.require_user(p_user_id);
  -- nothing inserted for a member already, or one added at this very moment
  INSERT INTO um.memberships (org_id, user_id, role_id, invited_by)
  SELECT p_org_id, p_user_id, v_role.id, v_actor
   WHERE NOT EXISTS (SELECT 1 FROM um.memberships m WHERE m.org_id = p_org_id AND m.user_id = p_user_id)
  ON CONFLICT (org_id, user_id) DO NOTHING
  RETURNING id INTO v_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'user % is already a member of organization "%"', p_user_id, v_org.slug
      USING ERRCODE = 'UM022',
            HINT = 'Change the member''s role instead; a user holds one organization role.';
  END IF;
  PERFORM um_internal.audit('member.add', p_org_id, 'user', p_user_id, jsonb_build_object('role_id', v_role.id));
  RETURN v_id;
END
$$;

CREATE OR REPLACE FUNCTION um_internal.do_create_role(p_org_id bigint, p_name text, p_permissions text[], p_description text,
                                  p_caller oid)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um_internal.authorize(p_caller, 'role.create', format('create roles in organization %s', p_org_id),
                                 'role:create', p_org_id, 'role', NULL);
  v_id bigint;
  v_p text;
BEGIN
  -- bad input first: the refusals below quote the name
  IF p_name IS NULL OR NOT um_internal.display_name_is_valid(p_name, 100) THEN
    RAISE EXCEPTION 'invalid role name "%"', left(p_name, 100) || CASE WHEN length(p_name) > 100 THEN '...' ELSE '' END
      USING ERRCODE = 'UM003',
            DETAIL = 'A name has 1 to 100 characters, no leading or trailing blanks and no control characters.',
            HINT = 'Trim or shorten the name.';
  END IF;
  FOREACH v_p IN ARRAY coalesce(p_permissions, '{}') LOOP
    PERFORM um_internal.assert_permission_name(v_p, true);
  END LOOP;
  PERFORM um_internal.guard_escalation(v_actor, p_org_id, NULL,
                              ARRAY(SELECT DISTINCT g FROM unnest(coalesce(p_permissions, '{}')) AS p, um_internal.pattern_grants(p) AS g),
                              'role.create', format('create role "%s"', p_name), 'role', NULL);
  INSERT INTO um.roles (org_id, name, description) VALUES (p_org_id, p_name, p_description)
  ON CONFLICT (org_id, lower(name)) DO NOTHING
  RETURNING id INTO v_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'organization % already has a role named "%"', p_org_id, p_name
      USING ERRCODE = 'UM026', HINT = 'Choose another name (role names are unique regardless of letter case).';
  END IF;
  -- an acting user's patterns become the permissions they stand for today:
  -- a pattern would also cover permissions registered later, which the
  -- grantor does not hold (a um administrator may store patterns)
  INSERT INTO um.role_permissions (org_id, role_id, permission)
  SELECT DISTINCT p_org_id, v_id, x
    FROM unnest(coalesce(p_permissions, '{}')) AS p,
         LATERAL (SELECT p WHERE v_actor IS NULL OR strpos(p, '*') = 0
                  UNION ALL
                  SELECT g FROM um_internal.pattern_grants(p) AS g WHERE v_actor IS NOT NULL AND strpos(p, '*') > 0) AS e(x);   -- unknown names: UM011
  PERFORM um_internal.audit('role.create', p_org_id, 'role', v_id, jsonb_build_object('permissions', to_jsonb(coalesce(p_permissions, '{}'))));
  RETURN v_id;
END
$$;

CREATE OR REPLACE FUNCTION um_internal.do_request_invitation(p_org_slug text, p_email text, p_caller oid)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_org um.organizations;
  v_email text := btrim(p_email, E' \t\r\n');
  v_member_role bigint;
  v_id bigint;
BEGIN
  SELECT * INTO v_org FROM um.organizations o WHERE o.slug = p_org_slug;
  IF NOT FOUND OR NOT v_org.allow_invite_requests THEN
    RAISE EXCEPTION 'organization "%" does not take invitation requests', p_org_slug
      USING ERRCODE = 'UM055', HINT = 'Ask a member of the organization to invite you.';
  END IF;
  IF v_email IS NULL OR NOT um_internal.email_is_valid(v_email) THEN
    RAISE EXCEPTION 'invalid email address "%"', p_email
      USING ERRCODE = 'UM001', HINT = 'Check the address for typos.';
  END IF;
  SELECT r.id INTO v_member_role FROM um.roles r WHERE r.org_id = v_org.id AND r.builtin = 'member';
  -- members and open invitations (also one made at this very moment):
  -- nothing to do, and nothing said about it
  INSERT INTO um.invitations (org_id, email, role_id, state)
  SELECT v_org.id, v_email, v_member_role, 'requested'
   WHERE NOT EXISTS (SELECT 1 FROM um.memberships m JOIN um.users u ON u.id = m.user_id
                      WHERE m.org_id = v_org.id AND lower(u.email) = lower(v_email))
     AND NOT EXISTS (SELECT 1 FROM um.invitations i
                      WHERE i.org_id = v_org.id AND lower(i.email) = lower(v_email) AND i.state IN ('pending', 'requested'))
  ON CONFLICT (org_id, lower(email)) WHERE state IN ('requested', 'pending') DO NOTHING
  RETURNING id INTO v_id;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  PERFORM um_internal.audit('invitation.request', v_org.id, 'invitation', v_id, '{}');
END
$$;

-- The invalid-address error of users and invitations (UM001, the same
-- detail and hint) comes from one check, um_internal.assert_email, which both
-- triggers call.
CREATE OR REPLACE FUNCTION um_internal.assert_email(email text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF NOT um_internal.email_is_valid(email) THEN
    RAISE EXCEPTION 'invalid email address "%"', email
      USING ERRCODE = 'UM001',
            DETAIL = 'An address is local-part@domain, in ASCII, at most 254 bytes, with a domain of at least two labels.',
            HINT = 'Check the address for typos; write internationalized domains in their xn-- (punycode) form.';
  END IF;
END
$$;
COMMENT ON FUNCTION um_internal.assert_email(text) IS
  'raises SQLSTATE UM001 when email is not a valid address (see um_internal.email_is_valid); NULL passes, for NOT NULL to refuse';
REVOKE EXECUTE ON FUNCTION um_internal.assert_email(text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION um_internal.users_before_write()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM um_internal.assert_email(NEW.email);
  IF NEW.name IS NOT NULL AND NOT um_internal.display_name_is_valid(NEW.name) THEN
    RAISE EXCEPTION 'invalid user name "%"', NEW.name
      USING ERRCODE = 'UM003',
            DETAIL = 'A name has 1 to 200 characters, no leading or trailing blanks and no control characters.',
            HINT = 'Trim the name, or pass NULL for a user without a name.';
  END IF;
  IF (TG_OP = 'INSERT' OR NEW.timezone IS DISTINCT FROM OLD.timezone)
     AND NOT um_internal.timezone_is_valid(NEW.timezone) THEN
    RAISE EXCEPTION 'unknown time zone "%"', NEW.timezone
      USING ERRCODE = 'UM004',
            HINT = 'Use an IANA time zone name such as UTC, Europe/Paris or America/New_York (see pg_timezone_names).';
  END IF;
  IF NOT um_internal.locale_is_valid(NEW.locale) THEN
    RAISE EXCEPTION 'invalid locale "%"', NEW.locale
      USING ERRCODE = 'UM005',
            HINT = 'Use a BCP 47 language tag such as en, en-GB, pt-BR or zh-Hant-TW.';
  END IF;
  IF NEW.mobile IS NOT NULL AND NOT um_internal.mobile_is_valid(NEW.mobile) THEN
    RAISE EXCEPTION 'invalid mobile number "%"', NEW.mobile
      USING ERRCODE = 'UM006',
            HINT = 'Use the E.164 form: "+", country code and number, digits only, e.g. +14155550123.';
  END IF;
  IF jsonb_typeof(NEW.attributes) IS DISTINCT FROM 'object' THEN
    RAISE EXCEPTION 'user attributes must be a JSON object'
      USING ERRCODE = 'UM007',
            DETAIL = format('The value given is a JSON %s.', coalesce(jsonb_typeof(NEW.attributes), 'null')),
            HINT = 'Pass key/value pairs, e.g. ''{"department": "finance"}''.';
  END IF;

  IF TG_OP = 'UPDATE' THEN
    NEW.updated_at := now();
    IF lower(NEW.email) <> lower(OLD.email) THEN
      NEW.email_verified_at := NULL;      -- a new address must be verified again
    END IF;
  END IF;
  -- a change of status records (or clears) when the user was suspended
  IF TG_OP = 'INSERT' OR NEW.status <> OLD.status THEN
    NEW.suspended_at := CASE WHEN NEW.status = 'suspended' THEN coalesce(NEW.suspended_at, now()) END;
  END IF;
  RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION um_internal.invitations_before_write()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM um_internal.assert_email(NEW.email);
  RETURN NEW;
END
$$;

-- "organization % already has a team named %" (UM025) written once: creating
-- and renaming a team write the name through um_internal.write_team, which keeps the
-- one subtransaction that names a taken name.
CREATE OR REPLACE FUNCTION um_internal.write_team(p_org_id bigint, p_team_id bigint, p_name text, p_description text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id bigint := p_team_id;
BEGIN
  BEGIN
    IF p_team_id IS NULL THEN
      INSERT INTO um.teams (org_id, name, description) VALUES (p_org_id, p_name, p_description)
      RETURNING id INTO v_id;
    ELSE
      UPDATE um.teams t SET name = p_name WHERE t.id = p_team_id;
    END IF;
  EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'organization % already has a team named "%"', p_org_id, p_name
      USING ERRCODE = 'UM025', HINT = 'Choose another name (team names are unique regardless of letter case).';
  END;
  RETURN v_id;
END
$$;
REVOKE EXECUTE ON FUNCTION um_internal.write_team(bigint, bigint, text, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION um_internal.do_rename_team(p_team_id bigint, p_name text, p_caller oid)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_team um.teams;
BEGIN
  SELECT * INTO v_team FROM um.teams t WHERE t.id = p_team_id;
  PERFORM um_internal.authorize(p_caller, 'team.rename', format('rename team %s', p_team_id), 'team:update',
                       v_team.org_id, 'team', p_team_id);
  v_team := um_internal.require_team(p_team_id);
  PERFORM um_internal.write_team(v_team.org_id, p_team_id, p_name, NULL);
  PERFORM um_internal.audit('team.rename', v_team.org_id, 'team', p_team_id, '{}');
END
$$;

-- "the owner of team % cannot be removed" (UM043) as um_remove_member and
-- um_remove_team_member raise it, written once: um_internal.assert_not_team_owner.
-- (The trigger team_members_keep_owner keeps its own wording, without the
-- function to call.)
CREATE OR REPLACE FUNCTION um_internal.assert_not_team_owner(p_org_id bigint, p_team_id bigint, p_user_id bigint)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_team text;
BEGIN
  SELECT t.name INTO v_team FROM um.team_members tm JOIN um.teams t ON t.id = tm.team_id
   WHERE tm.org_id = p_org_id AND tm.user_id = p_user_id AND tm.is_owner
     AND CASE WHEN p_team_id IS NULL
              THEN EXISTS (SELECT 1 FROM um.team_members o WHERE o.team_id = tm.team_id AND o.user_id <> p_user_id)
              ELSE tm.team_id = p_team_id END
   ORDER BY t.id LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'the owner of team "%" cannot be removed', v_team
      USING ERRCODE = 'UM043', DETAIL = format('User %s owns the team.', p_user_id),
            HINT = 'Transfer ownership of the team to another member first (um_transfer_team_ownership), or delete the team.';
  END IF;
END
$$;
REVOKE EXECUTE ON FUNCTION um_internal.assert_not_team_owner(bigint, bigint, bigint) FROM PUBLIC;

CREATE OR REPLACE FUNCTION um_internal.do_remove_member(p_org_id bigint, p_user_id bigint, p_caller oid)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := @extschema@.um_current_user_id(p_org_id);
BEGIN
  IF v_actor IS NOT NULL AND v_actor = p_user_id AND v_actor = @extschema@.um_real_user_id() THEN
    PERFORM um_internal.require_organization(p_org_id);       -- leaving needs no permission
  ELSE
    v_actor := um_internal.authorize(p_caller, 'member.remove', format('remove members of organization %s', p_org_id),
                            'member:remove', p_org_id, 'user', p_user_id);
    PERFORM um_internal.guard_root_target(v_actor, p_org_id, p_user_id, 'member.remove', 'remove');
  END IF;
  PERFORM um_internal.require_member(p_org_id, p_user_id);
  PERFORM um_internal.assert_not_team_owner(p_org_id, NULL, p_user_id);
  -- teams they own alone go with them
  DELETE FROM um.teams t
   WHERE t.org_id = p_org_id
     AND EXISTS (SELECT 1 FROM um.team_members tm WHERE tm.team_id = t.id AND tm.user_id = p_user_id AND tm.is_owner);
  DELETE FROM um.memberships m WHERE m.org_id = p_org_id AND m.user_id = p_user_id;   -- keeps a Root (UM044)
  PERFORM um_internal.audit('member.remove', p_org_id, 'user', p_user_id, '{}');
END
$$;

-- the helpers that raise these messages, each written once
COMMENT ON FUNCTION um_internal.assert_not_team_owner(bigint, bigint, bigint) IS 'internal: refuses (UM043) to remove a team''s owner from the team';
COMMENT ON FUNCTION um_internal.assert_one_grantee(bigint, bigint) IS 'internal: refuses (UM009) a grant that names both or neither of a user and a team';
COMMENT ON FUNCTION um_internal.require_actor(text) IS 'internal: the acting user, or UM072 (nobody is acting) with the hint given';
COMMENT ON FUNCTION um_internal.require_org_team(bigint, bigint) IS 'internal: a team of the organization, or the error that names it (UM033)';
COMMENT ON FUNCTION um_internal.require_root_candidate(um.users, bigint) IS 'internal: refuses (UM050) a user who cannot be an organization''s Root: suspended (everywhere, or in the organization of a transfer) or not allowed to log in';
COMMENT ON FUNCTION um_internal.require_team_member(um.teams, bigint, text) IS 'internal: the user''s membership of the team, or UM038 with the hint given';
COMMENT ON FUNCTION um_internal.write_team(bigint, bigint, text, text) IS 'internal: creates a team (no id) or renames one, raising UM025 when the organization already has a team of that name';

-- The escalation and impersonation guards and the role closure answer from
-- the cache's bitmaps in C (src/guards.c): one pass instead of one check per
-- permission, and the closure of role inclusions written once.
CREATE OR REPLACE FUNCTION um_internal.role_grants(p_role_id bigint)
RETURNS SETOF text
AS 'MODULE_PATHNAME', 'um_role_grants'
LANGUAGE C STABLE;
CREATE FUNCTION um_internal.lacking_permissions(p_actor bigint, p_org_id bigint, p_scope_id bigint, p_permissions text[])
RETURNS text[]
AS 'MODULE_PATHNAME', 'um_lacking_permissions'
LANGUAGE C STABLE;
COMMENT ON FUNCTION um_internal.lacking_permissions(bigint, bigint, bigint, text[]) IS 'internal: those of the permissions the actor does not hold in the organization (at the scope node when given), as um_has_permission would answer';
REVOKE EXECUTE ON FUNCTION um_internal.lacking_permissions(bigint, bigint, bigint, text[]) FROM PUBLIC;
CREATE OR REPLACE FUNCTION um_internal.impersonation_escalates(p_impersonator bigint, p_target bigint, p_org_id bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'um_impersonation_escalates'
LANGUAGE C STABLE;
CREATE OR REPLACE FUNCTION um_internal.guard_escalation(p_actor bigint, p_org_id bigint, p_scope_id bigint,
                                    p_permissions text[], p_action text, p_what text,
                                    p_target_type text, p_target_id bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_missing text[];
BEGIN
  IF p_actor IS NULL THEN
    RETURN;                                         -- a um administrator
  END IF;
  SELECT array_agg(p ORDER BY p) INTO v_missing
    FROM unnest(um_internal.lacking_permissions(p_actor, p_org_id, p_scope_id, p_permissions)) AS p;
  IF v_missing IS NOT NULL THEN
    PERFORM um_internal.deny(p_action, p_org_id, p_target_type, p_target_id, 'UM073',
      format('cannot %s: it would hand out permissions you do not hold', p_what),
      format('You lack %s%s.', array_to_string(v_missing[1:8], ', '),
             CASE WHEN cardinality(v_missing) > 8 THEN format(' and %s more', cardinality(v_missing) - 8) ELSE '' END),
      'Ask someone who holds every permission of the role.');
  END IF;
END
$$;

-- every other trigger of um's tables: a comment naming the function it runs
DO $$
DECLARE
  t record;
BEGIN
  FOR t IN SELECT tg.tgname, tg.tgrelid::regclass AS rel, tg.tgfoid::regprocedure AS fn,
                  obj_description(tg.tgfoid, 'pg_proc') AS what
             FROM pg_catalog.pg_trigger tg JOIN pg_catalog.pg_class c ON c.oid = tg.tgrelid
            WHERE c.relnamespace = 'um'::regnamespace AND NOT tg.tgisinternal
              AND obj_description(tg.oid, 'pg_trigger') IS NULL
            ORDER BY 1, 2 LOOP
    EXECUTE format('COMMENT ON TRIGGER %I ON %s IS %L', t.tgname, t.rel,
                   format('runs %s: %s', t.fn, coalesce(t.what, 'see its definition')));
  END LOOP;
END
$$;

-- One entry mechanism for every privileged function (issue 14): um_login,
-- um_change_password, um_set_password, um_logout and um_impersonate (above)
-- become src/lifecycle.c's entry point with the caller's rights, their
-- bodies um.do_<name>(..., caller oid) as um's owner, which nobody else may
-- call; um_begin runs with its caller's rights and does its lookup as um's
-- owner (src/session.c), so that no C function is SECURITY DEFINER.
-- CREATE OR REPLACE without SECURITY DEFINER or SET resets both and keeps
-- the ACL (um_set_password stays revoked from PUBLIC) and the comment.
-- um_internal.deny names the caller by um_internal.caller_role() alone; um.invoker_role()
-- has no user left.
CREATE FUNCTION um_internal.do_login(p_email text, p_password text, p_caller oid)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN um_internal.new_session(um_internal.authenticate(p_email, p_password, false), 'user.login');
END
$$;
COMMENT ON FUNCTION um_internal.do_login(text, text, oid) IS
  'body of um_login: runs as um''s owner with the calling role passed as p_caller; called only through um_login (EXECUTE held by nobody)';

CREATE OR REPLACE FUNCTION @extschema@.um_login(email text, password text)
RETURNS text AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION um_internal.do_change_password(p_email text, p_old_password text, p_new_password text, p_caller oid)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.users;
  v_hash text;
BEGIN
  PERFORM um_internal.login_settings();                      -- (src/session.c: keeps this statement out of the log)
  IF p_new_password IS NOT DISTINCT FROM p_old_password THEN
    RAISE EXCEPTION 'the new password is not acceptable'
      USING ERRCODE = 'UM068', DETAIL = 'It is the same as the old one.', HINT = 'Choose a different password.';
  END IF;
  v_hash := um_internal.hash_password(p_new_password);     -- bad input is refused before anything else
  v := um_internal.authenticate(p_email, p_old_password, true);
  UPDATE um.users u
     SET password_hash = v_hash, must_change_password = false, password_changed_at = now()
   WHERE u.id = v.id
  RETURNING * INTO v;                               -- ends the user's other sessions
  RETURN um_internal.new_session(v, 'user.change_password');
END
$$;
COMMENT ON FUNCTION um_internal.do_change_password(text, text, text, oid) IS
  'body of um_change_password: runs as um''s owner with the calling role passed as p_caller; called only through um_change_password (EXECUTE held by nobody)';

CREATE OR REPLACE FUNCTION @extschema@.um_change_password(email text, old_password text, new_password text)
RETURNS text AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION um_internal.do_set_password(p_user_id bigint, p_password text, p_must_change boolean, p_caller oid)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_hash text := um_internal.hash_password(p_password);
BEGIN
  PERFORM um_internal.require_user(p_user_id);
  UPDATE um.users u
     SET password_hash = v_hash, must_change_password = coalesce(p_must_change, true),
         password_changed_at = now(), failed_login_count = 0, locked_until = NULL
   WHERE u.id = p_user_id;
  PERFORM um_internal.audit('user.set_password', NULL, 'user', p_user_id,
                   jsonb_build_object('must_change', coalesce(p_must_change, true)));
END
$$;
COMMENT ON FUNCTION um_internal.do_set_password(bigint, text, boolean, oid) IS
  'body of um_set_password: runs as um''s owner with the calling role passed as p_caller; called only through um_set_password (EXECUTE held by nobody)';

CREATE OR REPLACE FUNCTION @extschema@.um_set_password(user_id bigint, password text, must_change boolean DEFAULT true)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION um_internal.do_logout(p_token text, p_caller oid)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_session um.sessions;
BEGIN
  UPDATE um.sessions s SET revoked_at = now(), revoked_reason = 'ended by a logout'
   WHERE s.token_hash = um_internal.token_hash(p_token) AND s.revoked_at IS NULL AND s.expires_at > now()
  RETURNING * INTO v_session;
  IF NOT FOUND THEN
    RETURN false;                                   -- unknown, expired or already ended
  END IF;
  PERFORM um_internal.audit('user.logout', NULL, 'user', v_session.user_id, jsonb_build_object('session_id', v_session.id));
  RETURN true;
END
$$;
COMMENT ON FUNCTION um_internal.do_logout(text, oid) IS
  'body of um_logout: runs as um''s owner with the calling role passed as p_caller; called only through um_logout (EXECUTE held by nobody)';

CREATE OR REPLACE FUNCTION @extschema@.um_logout(token text)
RETURNS boolean AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
REVOKE EXECUTE ON FUNCTION
  um_internal.do_login(text, text, oid),
  um_internal.do_change_password(text, text, text, oid),
  um_internal.do_set_password(bigint, text, boolean, oid),
  um_internal.do_logout(text, oid)
FROM PUBLIC;

CREATE OR REPLACE FUNCTION @extschema@.um_begin(token text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'um_begin'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE OR REPLACE FUNCTION um_internal.deny(p_action text, p_org_id bigint, p_target_type text, p_target_id bigint,
                        p_sqlstate text, p_message text, p_detail text, p_hint text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF @extschema@.um_current_user_id() IS NULL THEN
    RAISE LOG 'um: refused % of % % by database role %: %',
      p_action, p_target_type, p_target_id, coalesce(um_internal.caller_role(), current_user::regrole)::regrole, p_message;
  ELSE
    PERFORM um_internal.audit_autonomous(p_action, 'denied', p_org_id, p_target_type, p_target_id,
                                jsonb_build_object('sqlstate', p_sqlstate, 'reason', p_message));
  END IF;
  PERFORM um_internal.raise(p_sqlstate, p_message, p_detail, p_hint);
END
$$;
DROP FUNCTION um.invoker_role();

-- ---------------------------------------------------------------------------
-- The caller reaches a body one way only: um_internal.caller_role(), which the C
-- entry (src/lifecycle.c) sets while the body runs.  The bodies and the
-- authorization helpers no longer take it as an argument (p_caller oid).
DROP FUNCTION um_internal.do_login(text, text, oid);
DROP FUNCTION um_internal.do_change_password(text, text, text, oid);
DROP FUNCTION um_internal.do_set_password(bigint, text, boolean, oid);
DROP FUNCTION um_internal.do_logout(text, oid);
DROP FUNCTION um_internal.do_impersonate(bigint, oid);
DROP FUNCTION um_internal.authorize(oid, text, text, text, bigint, text, bigint);
DROP FUNCTION um_internal.authorize_user(oid, text, text, text, bigint);
DROP FUNCTION um_internal.do_create_user(text, text, boolean, text, text, text, jsonb, oid);
DROP FUNCTION um_internal.do_create_user(bigint, text, text, text, boolean, text, text, text, oid);
DROP FUNCTION um_internal.do_sign_up(text, text, text, text, text, oid);
DROP FUNCTION um_internal.do_resend_verification(text, oid);
DROP FUNCTION um_internal.do_verify_email(text, text, oid);
DROP FUNCTION um_internal.do_mark_verified(bigint, oid);
DROP FUNCTION um_internal.do_disable_login(bigint, oid);
DROP FUNCTION um_internal.do_enable_login(bigint, oid);
DROP FUNCTION um_internal.do_suspend_user(bigint, bigint, oid);
DROP FUNCTION um_internal.do_reactivate_user(bigint, bigint, oid);
DROP FUNCTION um_internal.do_create_organization(text, text, bigint, oid);
DROP FUNCTION um_internal.do_add_member(bigint, bigint, text, oid);
DROP FUNCTION um_internal.do_set_org_role(bigint, bigint, text, oid);
DROP FUNCTION um_internal.do_transfer_org_ownership(bigint, bigint, text, oid);
DROP FUNCTION um_internal.do_remove_member(bigint, bigint, oid);
DROP FUNCTION um_internal.do_set_org_setting(bigint, text, jsonb, oid);
DROP FUNCTION um_internal.do_add_identity_provider(bigint, text, text, text, oid);
DROP FUNCTION um_internal.do_link_identity(bigint, text, text, bigint, oid);
DROP FUNCTION um_internal.authorize_team(oid, text, text, bigint, bigint);
DROP FUNCTION um_internal.do_create_team(bigint, text, text, bigint, oid);
DROP FUNCTION um_internal.do_rename_team(bigint, text, oid);
DROP FUNCTION um_internal.do_delete_team(bigint, oid);
DROP FUNCTION um_internal.do_add_team_member(bigint, bigint, text[], oid);
DROP FUNCTION um_internal.do_remove_team_member(bigint, bigint, oid);
DROP FUNCTION um_internal.do_grant_team_role(bigint, bigint, text, oid);
DROP FUNCTION um_internal.do_revoke_team_role(bigint, bigint, text, oid);
DROP FUNCTION um_internal.do_transfer_team_ownership(bigint, bigint, oid);
DROP FUNCTION um_internal.do_create_role(bigint, text, text[], text, oid);
DROP FUNCTION um_internal.do_delete_role(bigint, oid);
DROP FUNCTION um_internal.authorize_role_edit(oid, text, bigint, text);
DROP FUNCTION um_internal.do_grant_permission(bigint, text, oid);
DROP FUNCTION um_internal.do_revoke_permission(bigint, text, oid);
DROP FUNCTION um_internal.do_grant_scope_role(bigint, text, bigint, bigint, oid);
DROP FUNCTION um_internal.do_revoke_scope_role(bigint, text, bigint, bigint, oid);
DROP FUNCTION um_internal.do_register_permission(text, text, oid);
DROP FUNCTION um_internal.do_invite(bigint, text, text, bigint, interval, oid);
DROP FUNCTION um_internal.do_request_invitation(text, text, oid);
DROP FUNCTION um_internal.do_accept_invitation(text, text, text, oid);
DROP FUNCTION um_internal.do_revoke_invitation(bigint, oid);
DROP FUNCTION um_internal.do_expire_invitations(oid);
DROP FUNCTION um_internal.do_delete_user(bigint, oid);
DROP FUNCTION um_internal.do_delete_my_account(oid);
DROP FUNCTION um_internal.do_logout_all(bigint, oid);
DROP FUNCTION um_internal.do_export_users(bigint, oid);
DROP FUNCTION um_internal.do_export_users_json(bigint, oid);
DROP FUNCTION um_internal.do_export_my_data(oid);

CREATE FUNCTION um_internal.do_login(p_email text, p_password text)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN um_internal.new_session(um_internal.authenticate(p_email, p_password, false), 'user.login');
END
$$;
COMMENT ON FUNCTION um_internal.do_login(text, text) IS
  'body of um_login: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_login (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_change_password(p_email text, p_old_password text, p_new_password text)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.users;
  v_hash text;
BEGIN
  PERFORM um_internal.login_settings();                      -- (src/session.c: keeps this statement out of the log)
  IF p_new_password IS NOT DISTINCT FROM p_old_password THEN
    RAISE EXCEPTION 'the new password is not acceptable'
      USING ERRCODE = 'UM068', DETAIL = 'It is the same as the old one.', HINT = 'Choose a different password.';
  END IF;
  v_hash := um_internal.hash_password(p_new_password);     -- bad input is refused before anything else
  v := um_internal.authenticate(p_email, p_old_password, true);
  -- with a second factor, the password alone changes nothing: the change
  -- comes from a session of the user that proved the factor
  IF EXISTS (SELECT 1 FROM um.mfa_factors f WHERE f.user_id = v.id AND f.confirmed_at IS NOT NULL)
     AND NOT coalesce(um_internal.current_assurance_level() = 2 AND @extschema@.um_current_user_id() = v.id, false) THEN
    RAISE EXCEPTION 'changing the password of an account with a second factor needs a session that proved it'
      USING ERRCODE = 'UM093',
            DETAIL = 'The password alone is what a thief would have.',
            HINT = 'Log in (um_login, um_complete_login), then call um_change_password in a transaction of that session (um_begin).';
  END IF;
  UPDATE um.users u
     SET password_hash = v_hash, must_change_password = false, password_changed_at = now()
   WHERE u.id = v.id
  RETURNING * INTO v;                               -- ends the user's other sessions
  RETURN um_internal.new_session(v, 'user.change_password');
END
$$;
COMMENT ON FUNCTION um_internal.do_change_password(text, text, text) IS
  'body of um_change_password: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_change_password (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_set_password(p_user_id bigint, p_password text, p_must_change boolean)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_hash text := um_internal.hash_password(p_password);
BEGIN
  PERFORM um_internal.require_user(p_user_id);
  UPDATE um.users u
     SET password_hash = v_hash, must_change_password = coalesce(p_must_change, true),
         password_changed_at = now(), failed_login_count = 0, locked_until = NULL
   WHERE u.id = p_user_id;
  PERFORM um_internal.audit('user.set_password', NULL, 'user', p_user_id,
                   jsonb_build_object('must_change', coalesce(p_must_change, true)));
END
$$;
COMMENT ON FUNCTION um_internal.do_set_password(bigint, text, boolean) IS
  'body of um_set_password: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_set_password (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_logout(p_token text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_session um.sessions;
BEGIN
  UPDATE um.sessions s SET revoked_at = now(), revoked_reason = 'ended by a logout'
   WHERE s.token_hash = um_internal.token_hash(p_token) AND s.revoked_at IS NULL AND s.expires_at > now()
  RETURNING * INTO v_session;
  IF NOT FOUND THEN
    RETURN false;                                   -- unknown, expired or already ended
  END IF;
  PERFORM um_internal.audit('user.logout', NULL, 'user', v_session.user_id, jsonb_build_object('session_id', v_session.id));
  RETURN true;
END
$$;
COMMENT ON FUNCTION um_internal.do_logout(text) IS
  'body of um_logout: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_logout (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_impersonate(p_target_user_id bigint)
RETURNS bigint[]
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um_internal.require_actor('Call um_begin(token) first; impersonation starts from a logged-in user.');
  v_target um.users;
  v_orgs bigint[];
BEGIN
  IF v_actor IS DISTINCT FROM @extschema@.um_real_user_id() THEN
    PERFORM um_internal.deny('user.impersonate', NULL, 'user', p_target_user_id, 'UM071',
      'cannot impersonate while impersonating', NULL, 'Call um_end_impersonation() first.');
  END IF;
  IF p_target_user_id = v_actor THEN
    PERFORM um_internal.deny('user.impersonate', NULL, 'user', p_target_user_id, 'UM071',
      'cannot impersonate oneself', NULL, 'Pass the id of another user.');
  END IF;
  -- first: may the actor impersonate anybody in an organization of the
  -- target's?  (Until then, say nothing about the target, not even whether
  -- it exists.)
  SELECT array_agg(m.org_id ORDER BY m.org_id) INTO v_orgs
    FROM um.memberships m
   WHERE m.user_id = p_target_user_id AND m.status = 'active'
     AND @extschema@.um_has_permission(v_actor, 'user:impersonate', m.org_id);
  IF v_orgs IS NULL THEN
    PERFORM um_internal.deny('user.impersonate', NULL, 'user', p_target_user_id, 'UM070',
      format('permission denied to impersonate user %s', p_target_user_id),
      'Impersonation needs user:impersonate in an organization the target is an active member of.',
      'Ask an Admin of the target''s organization.');
  END IF;
  v_target := um_internal.require_user(p_target_user_id);
  IF EXISTS (SELECT 1 FROM um.memberships m JOIN um.roles r ON r.id = m.role_id
              WHERE m.user_id = v_target.id AND r.builtin IN ('root', 'admin')) THEN
    PERFORM um_internal.deny('user.impersonate', v_orgs[1], 'user', p_target_user_id, 'UM071',
      format('cannot impersonate user %s, an Admin or Root', p_target_user_id),
      'Admins and roots (of any organization) are never impersonated.',
      'Ask the user to act themselves.');
  END IF;
  IF v_target.status <> 'active' OR NOT v_target.allow_login THEN
    PERFORM um_internal.deny('user.impersonate', v_orgs[1], 'user', p_target_user_id, 'UM071',
      format('cannot impersonate user %s', p_target_user_id),
      'The user is suspended or may not log in.', 'Reactivate the user first, or act yourself.');
  END IF;
  SELECT array_agg(o ORDER BY o) INTO v_orgs
    FROM unnest(v_orgs) AS o
   WHERE NOT um_internal.impersonation_escalates(v_actor, v_target.id, o);
  IF v_orgs IS NULL THEN
    PERFORM um_internal.deny('user.impersonate', NULL, 'user', p_target_user_id, 'UM070',
      format('permission denied to impersonate user %s', p_target_user_id),
      'The target holds a permission you lack; impersonating them would give it to you.',
      'Ask someone who holds every permission of the target''s.');
  END IF;
  PERFORM um_internal.start_impersonation(v_target.id, v_orgs);
  -- committed at once: a transaction that reads as the target and then
  -- rolls back still leaves the impersonation on record
  PERFORM um_internal.audit_autonomous('user.impersonate', 'ok', v_orgs[1], 'user', v_target.id,
                              jsonb_build_object('orgs', to_jsonb(v_orgs)));
  RETURN v_orgs;
END
$$;
COMMENT ON FUNCTION um_internal.do_impersonate(bigint) IS
  'body of um_impersonate: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_impersonate (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.authorize(p_action text, p_what text, p_permission text,
                             p_org_id bigint, p_target_type text, p_target_id bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := @extschema@.um_current_user_id();
  v_caller oid := um_internal.caller_role();    -- NULL outside a lifecycle function: no administrator
BEGIN
  PERFORM um_internal.assert_no_app_cascades();
  IF v_actor IS NULL THEN
    IF NOT um_internal.role_administers_um(v_caller) THEN
      PERFORM um_internal.deny(p_action, p_org_id, p_target_type, p_target_id, 'UM070',
        'permission denied to ' || p_what,
        format('Nobody is acting in this transaction, and database role %s does not administer um.', coalesce(v_caller::regrole::text, current_user)),
        'Call um_begin(token) first to act as a logged-in user, or ask a um administrator.');
    END IF;
  ELSIF p_permission IS NOT NULL
        AND (p_org_id IS NULL OR NOT @extschema@.um_has_permission(p_permission, p_org_id)) THEN
    IF p_org_id IS NULL OR @extschema@.um_current_user_id(p_org_id) IS NULL
       OR NOT EXISTS (SELECT 1 FROM um.memberships m WHERE m.org_id = p_org_id AND m.user_id = v_actor) THEN
      -- not one of the actor's organizations: say nothing about it, and keep
      -- the refusal out of its audit trail
      PERFORM um_internal.deny(p_action, NULL, p_target_type, p_target_id, 'UM070',
        'permission denied to ' || p_what,
        format('It needs %s in an organization you belong to.', p_permission),
        'Ask an Admin of the organization for that permission.');
    END IF;
    PERFORM um_internal.deny(p_action, p_org_id, p_target_type, p_target_id, 'UM070',
      'permission denied to ' || p_what,
      format('It needs %s in organization %s.', p_permission, p_org_id),
      'Ask an Admin of the organization for that permission.');
  END IF;
  IF p_org_id IS NOT NULL THEN
    PERFORM um_internal.require_organization(p_org_id);
  END IF;
  RETURN v_actor;
END
$$;
COMMENT ON FUNCTION um_internal.authorize(text, text, text, bigint, text, bigint) IS
  'internal: may this lifecycle call go ahead? The acting user needs the permission in the organization, or with nobody acting the calling role must administer um; returns the acting user (NULL for an administrator), else refuses (UM070, audited)';

CREATE FUNCTION um_internal.authorize_user(p_action text, p_what text, p_permission text,
                                  p_user_id bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := @extschema@.um_current_user_id();
  v_org bigint;
BEGIN
  IF v_actor IS NULL THEN
    PERFORM um_internal.authorize(p_action, p_what, NULL, NULL, 'user', p_user_id);
  ELSE
    -- A refusal is recorded in an organization's audit trail, and named,
    -- only when the actor is a member there (the identity reaching it):
    -- the user's other organizations are none of the actor's business.
    SELECT m.org_id INTO v_org FROM um.memberships m
     WHERE m.user_id = p_user_id AND NOT @extschema@.um_has_permission(p_permission, m.org_id)
     ORDER BY m.org_id LIMIT 1;
    IF FOUND OR NOT EXISTS (SELECT 1 FROM um.memberships m WHERE m.user_id = p_user_id) THEN
      PERFORM um_internal.deny(p_action, um_internal.actor_org(v_org), 'user', p_user_id, 'UM070',
        'permission denied to ' || p_what,
        format('It needs %s in every organization the user belongs to.', p_permission),
        'Ask an Admin of each of the user''s organizations, or a um administrator.');
    END IF;
    SELECT m.org_id INTO v_org FROM um.memberships m
     WHERE m.user_id = p_user_id AND um_internal.is_root(m.org_id, p_user_id) AND NOT um_internal.is_root(m.org_id, v_actor)
     ORDER BY m.org_id LIMIT 1;
    IF FOUND THEN
      PERFORM um_internal.deny(p_action, v_org, 'user', p_user_id, 'UM073',
        format('only a Root may %s a Root', p_what),
        format('User %s is a Root of organization %s.', p_user_id, v_org),
        'Ask another Root of that organization.');
    END IF;
  END IF;
  PERFORM um_internal.require_user(p_user_id);
  RETURN v_actor;
END
$$;
COMMENT ON FUNCTION um_internal.authorize_user(text, text, text, bigint) IS
  'internal: authorization for changes to a user account: the permission in every organization of the user, and only a Root acts on a Root; a user in no organization is only a um administrator''s';

CREATE FUNCTION um_internal.do_create_user(p_email text, p_name text, p_allow_login boolean, p_timezone text,
                                  p_locale text, p_mobile text, p_attributes jsonb)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id bigint;
BEGIN
  IF @extschema@.um_current_user_id() IS NOT NULL THEN
    PERFORM um_internal.deny('user.create', NULL, 'user', NULL, 'UM070',
      'permission denied to create a user outside an organization',
      'Only a um administrator, with nobody acting, creates users who belong to no organization.',
      'Create the user in your organization: um_create_user(org_id, email, ...).');
  END IF;
  PERFORM um_internal.authorize('user.create', 'create a user', NULL, NULL, 'user', NULL);
  v_id := um_internal.insert_user(p_email, p_name, p_allow_login, p_timezone, p_locale, p_mobile, p_attributes);
  PERFORM um_internal.audit('user.create', NULL, 'user', v_id,
                   jsonb_build_object('allow_login', coalesce(p_allow_login, true)));
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION um_internal.do_create_user(text, text, boolean, text, text, text, jsonb) IS
  'body of um_create_user for a user in no organization: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_create_user (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_create_user(p_org_id bigint, p_email text, p_role text, p_name text,
                                  p_allow_login boolean, p_timezone text, p_locale text, p_mobile text,
                                  OUT user_id bigint, OUT temporary_password text, OUT verification_token text)
RETURNS record
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um_internal.authorize('user.create', format('create users in organization %s', p_org_id),
                                 'user:create', p_org_id, 'user', NULL);
  v_role um.roles := um_internal.require_role(p_org_id, coalesce(p_role, 'member'));
BEGIN
  PERFORM um_internal.guard_escalation(v_actor, p_org_id, NULL, ARRAY(SELECT um_internal.role_grants(v_role.id)),
                              'user.create', format('create a user with role "%s"', v_role.name), 'user', NULL);
  -- A tenant user creates accounts only in the organization's own domains.
  -- Anywhere else "already registered" would tell them about someone else's
  -- account, and a new account would wait for a mailbox owner who is not
  -- theirs: there people join by invitation.  Decided before the address is
  -- looked up, so a registered and a new address get the same answer.
  IF v_actor IS NOT NULL AND NOT um_internal.org_owns_address(p_org_id, p_email) THEN
    PERFORM um_internal.deny('user.create', p_org_id, 'user', NULL, 'UM074',
      'cannot create an account for an address outside the organization''s domains',
      'Members create accounts only for addresses of domains the organization owns (um.organization_domains).',
      'Invite the address with um_invite(); to create accounts in a domain, have the service''s operator record it (um_add_org_domain).');
  END IF;
  user_id := um_internal.insert_user(p_email, p_name, p_allow_login, p_timezone, p_locale, p_mobile, NULL);
  IF coalesce(p_allow_login, true) THEN
    temporary_password := um_internal.temporary_password();
    UPDATE um.users u SET password_hash = um_internal.hash_password(temporary_password),
                          must_change_password = true, password_changed_at = now()
     WHERE u.id = user_id;
    -- a tenant user must not hold the mailbox's secret (the backend sends
    -- one later with um_resend_verification, with nobody acting)
    IF v_actor IS NULL THEN
      verification_token := um_internal.new_verification(user_id, true);
    END IF;
  END IF;
  INSERT INTO um.memberships (org_id, user_id, role_id, invited_by)
  VALUES (p_org_id, user_id, v_role.id, v_actor);
  PERFORM um_internal.audit('user.create', p_org_id, 'user', user_id,
                   jsonb_build_object('allow_login', coalesce(p_allow_login, true), 'role_id', v_role.id));
END
$$;
COMMENT ON FUNCTION um_internal.do_create_user(bigint, text, text, text, boolean, text, text, text) IS
  'body of um_create_user for a user in an organization: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_create_user (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_sign_up(p_email text, p_password text, p_name text, p_timezone text, p_locale text)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_hash text := um_internal.hash_password(p_password);     -- bad input is refused first
  v_id bigint;
BEGIN
  IF @extschema@.um_current_user_id() IS NOT NULL THEN
    PERFORM um_internal.new_verification(NULL, false);      -- UM058: secrets only with nobody acting
  END IF;
  -- An unverified account with this address: whoever made it never proved
  -- the mailbox.  The answer looks like a sign-up's, and the secret goes to
  -- the mailbox only: redeeming it sets a new password there and then
  -- (um_verify_email(token, password)); this password is not used.
  SELECT u.id INTO v_id FROM um.users u
   WHERE lower(u.email) = lower(btrim(p_email, E' \t\r\n')) AND u.email_verified_at IS NULL AND u.allow_login;
  IF FOUND THEN
    PERFORM um_internal.audit('user.sign_up', NULL, 'user', v_id, '{"claim": true}');
    RETURN um_internal.new_verification(v_id, true);
  END IF;
  v_id := um_internal.insert_user(p_email, p_name, true, p_timezone, p_locale, NULL, NULL);
  UPDATE um.users u SET password_hash = v_hash, password_changed_at = now() WHERE u.id = v_id;
  PERFORM um_internal.audit('user.sign_up', NULL, 'user', v_id, '{}');
  RETURN um_internal.new_verification(v_id, false);
END
$$;
COMMENT ON FUNCTION um_internal.do_sign_up(text, text, text, text, text) IS
  'body of um_sign_up: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_sign_up (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_resend_verification(p_email text)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id bigint;
BEGIN
  IF @extschema@.um_current_user_id() IS NOT NULL THEN
    PERFORM um_internal.new_verification(NULL, true);       -- UM058: secrets only with nobody acting
  END IF;
  SELECT u.id INTO v_id FROM um.users u
   WHERE lower(u.email) = lower(btrim(p_email, E' \t\r\n')) AND u.email_verified_at IS NULL AND u.allow_login;
  IF NOT FOUND THEN
    RETURN NULL;                       -- unknown or already verified: nothing to send
  END IF;
  PERFORM um_internal.audit('user.resend_verification', NULL, 'user', v_id, '{}');
  RETURN um_internal.new_verification(v_id, true);           -- whoever redeems it chooses the password
END
$$;
COMMENT ON FUNCTION um_internal.do_resend_verification(text) IS
  'body of um_resend_verification: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_resend_verification (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_verify_email(p_token text, p_password text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_tok um.verification_tokens;
  v_hash text;
BEGIN
  PERFORM um_internal.assert_no_app_cascades();
  SELECT * INTO v_tok FROM um.verification_tokens t
   WHERE t.token_hash = um_internal.token_hash(coalesce(p_token, '')) AND t.expires_at > now()
     FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'the verification token is not valid'
      USING ERRCODE = 'UM053',
            DETAIL = 'It is unknown, was already used, or is more than 48 hours old.',
            HINT = 'If the address already has an account, log in; otherwise ask for a new verification email (um_resend_verification).';
  END IF;
  IF v_tok.sets_password AND p_password IS NULL THEN
    RAISE EXCEPTION 'choose a password to verify this address'
      USING ERRCODE = 'UM059',
            DETAIL = 'Whoever redeems this secret proves the mailbox and sets the account''s password; no password set before stays valid.',
            HINT = 'Ask for a new password and call um_verify_email(token, password).';
  END IF;
  IF p_password IS NOT NULL THEN
    v_hash := um_internal.hash_password(p_password);         -- bad input changes nothing
  END IF;
  DELETE FROM um.verification_tokens t WHERE t.token_hash = v_tok.token_hash;
  UPDATE um.users u SET email_verified_at = coalesce(u.email_verified_at, now()) WHERE u.id = v_tok.user_id;
  IF v_hash IS NOT NULL THEN
    -- the mailbox's owner takes the account: every session ends (trigger)
    UPDATE um.users u SET password_hash = v_hash, password_changed_at = now(), must_change_password = false,
                          failed_login_count = 0, locked_until = NULL
     WHERE u.id = v_tok.user_id;
  END IF;
  PERFORM um_internal.audit('user.verify_email', NULL, 'user', v_tok.user_id,
                   jsonb_build_object('password_set', v_hash IS NOT NULL));
  RETURN v_tok.user_id;
END
$$;
COMMENT ON FUNCTION um_internal.do_verify_email(text, text) IS
  'body of um_verify_email: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_verify_email (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_mark_verified(p_user_id bigint)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  -- a tenant user vouching for an address would own it (and every
  -- invitation later sent to it): only a um administrator does
  IF @extschema@.um_current_user_id() IS NOT NULL THEN
    PERFORM um_internal.deny('user.mark_verified', NULL, 'user', p_user_id, 'UM070',
      'permission denied to mark an email address verified',
      'Only a um administrator, with nobody acting, vouches for an address; a tenant user could claim someone else''s.',
      'Have the backend send a verification (um_resend_verification) to the address instead.');
  END IF;
  PERFORM um_internal.authorize_user('user.mark_verified', format('mark the email of user %s verified', p_user_id),
                            'user:update', p_user_id);
  UPDATE um.users u SET email_verified_at = now() WHERE u.id = p_user_id AND u.email_verified_at IS NULL;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  DELETE FROM um.verification_tokens t WHERE t.user_id = p_user_id;
  PERFORM um_internal.audit('user.mark_verified', NULL, 'user', p_user_id, '{}');
  RETURN true;
END
$$;
COMMENT ON FUNCTION um_internal.do_mark_verified(bigint) IS
  'body of um_mark_verified: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_mark_verified (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_disable_login(p_user_id bigint)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM um_internal.authorize_user('user.disable_login', format('disable the login of user %s', p_user_id),
                            'user:update', p_user_id);
  PERFORM um_internal.guard_last_active_root(p_user_id, NULL, 'user.disable_login', 'disable the login of');
  UPDATE um.users u SET allow_login = false, updated_at = now() WHERE u.id = p_user_id AND u.allow_login;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  PERFORM um_internal.audit('user.disable_login', NULL, 'user', p_user_id, '{}');
  RETURN true;
END
$$;
COMMENT ON FUNCTION um_internal.do_disable_login(bigint) IS
  'body of um_disable_login: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_disable_login (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_enable_login(p_user_id bigint)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.users;
  v_password text;
BEGIN
  PERFORM um_internal.authorize_user('user.enable_login', format('enable the login of user %s', p_user_id),
                            'user:update', p_user_id);
  SELECT * INTO v FROM um.users u WHERE u.id = p_user_id FOR UPDATE;
  IF v.allow_login THEN
    RETURN NULL;
  END IF;
  IF v.password_hash IS NULL AND NOT EXISTS (SELECT 1 FROM um.user_identities i WHERE i.user_id = p_user_id) THEN
    v_password := um_internal.temporary_password();
    UPDATE um.users u SET password_hash = um_internal.hash_password(v_password), must_change_password = true,
                          password_changed_at = now()
     WHERE u.id = p_user_id;
  END IF;
  UPDATE um.users u SET allow_login = true, updated_at = now() WHERE u.id = p_user_id;
  PERFORM um_internal.audit('user.enable_login', NULL, 'user', p_user_id,
                   jsonb_build_object('temporary_password', v_password IS NOT NULL));
  RETURN v_password;
END
$$;
COMMENT ON FUNCTION um_internal.do_enable_login(bigint) IS
  'body of um_enable_login: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_enable_login (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_suspend_user(p_user_id bigint, p_org_id bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint;
BEGIN
  IF p_org_id IS NULL THEN
    v_actor := um_internal.authorize_user('user.suspend', format('suspend user %s', p_user_id),
                                 'user:suspend', p_user_id);
  ELSE
    v_actor := um_internal.authorize('user.suspend', format('suspend members of organization %s', p_org_id),
                            'user:suspend', p_org_id, 'user', p_user_id);
    PERFORM um_internal.require_member(p_org_id, p_user_id);
    PERFORM um_internal.guard_root_target(v_actor, p_org_id, p_user_id, 'user.suspend', 'suspend');
  END IF;
  IF p_user_id = v_actor THEN
    PERFORM um_internal.deny('user.suspend', p_org_id, 'user', p_user_id, 'UM051', 'cannot suspend yourself',
      NULL, 'Ask another administrator.');
  END IF;
  PERFORM um_internal.guard_last_active_root(p_user_id, p_org_id, 'user.suspend', 'suspend');
  IF p_org_id IS NULL THEN
    UPDATE um.users u SET status = 'suspended', suspended_at = now(), updated_at = now()
     WHERE u.id = p_user_id AND u.status = 'active';
  ELSE
    UPDATE um.memberships m SET status = 'suspended'
     WHERE m.org_id = p_org_id AND m.user_id = p_user_id AND m.status = 'active';
  END IF;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'user % is already suspended%', p_user_id,
                    CASE WHEN p_org_id IS NULL THEN '' ELSE ' in organization ' || p_org_id END
      USING ERRCODE = 'UM051', HINT = 'Reactivate the user with um_reactivate_user().';
  END IF;
  PERFORM um_internal.audit('user.suspend', p_org_id, 'user', p_user_id, '{}');
END
$$;
COMMENT ON FUNCTION um_internal.do_suspend_user(bigint, bigint) IS
  'body of um_suspend_user: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_suspend_user (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_reactivate_user(p_user_id bigint, p_org_id bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint;
BEGIN
  IF p_org_id IS NULL THEN
    v_actor := um_internal.authorize_user('user.reactivate', format('reactivate user %s', p_user_id),
                                 'user:suspend', p_user_id);
    UPDATE um.users u SET status = 'active', suspended_at = NULL, updated_at = now()
     WHERE u.id = p_user_id AND u.status = 'suspended';
  ELSE
    v_actor := um_internal.authorize('user.reactivate', format('reactivate members of organization %s', p_org_id),
                            'user:suspend', p_org_id, 'user', p_user_id);
    PERFORM um_internal.require_member(p_org_id, p_user_id);
    PERFORM um_internal.guard_root_target(v_actor, p_org_id, p_user_id, 'user.reactivate', 'reactivate');
    UPDATE um.memberships m SET status = 'active'
     WHERE m.org_id = p_org_id AND m.user_id = p_user_id AND m.status = 'suspended';
  END IF;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'user % is not suspended%', p_user_id,
                    CASE WHEN p_org_id IS NULL THEN '' ELSE ' in organization ' || p_org_id END
      USING ERRCODE = 'UM051', HINT = 'Nothing to do; um.users.status and um.memberships.status show suspensions.';
  END IF;
  PERFORM um_internal.audit('user.reactivate', p_org_id, 'user', p_user_id, '{}');
END
$$;
COMMENT ON FUNCTION um_internal.do_reactivate_user(bigint, bigint) IS
  'body of um_reactivate_user: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_reactivate_user (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_create_organization(p_slug text, p_name text, p_root_user_id bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := @extschema@.um_current_user_id();
  v_user um.users;
  v_org bigint;
  v_root bigint;
BEGIN
  IF v_actor IS NULL THEN
    PERFORM um_internal.authorize('organization.create', 'create an organization', NULL, NULL, 'organization', NULL);
  ELSIF p_root_user_id IS DISTINCT FROM v_actor OR v_actor IS DISTINCT FROM @extschema@.um_real_user_id() THEN
    PERFORM um_internal.deny('organization.create', NULL, 'user', p_root_user_id, 'UM070',
      'permission denied to create an organization for another user',
      'A logged-in user creates organizations only with themself as the Root (and not while impersonating).',
      'Pass your own user id as root_user_id.');
  END IF;
  v_user := um_internal.require_user(p_root_user_id);
  PERFORM um_internal.require_root_candidate(v_user, NULL);
  -- nothing inserted for a slug taken already or at this very moment
  INSERT INTO um.organizations (slug, name)
  SELECT p_slug, p_name WHERE NOT EXISTS (SELECT 1 FROM um.organizations o WHERE o.slug = p_slug)
  ON CONFLICT (slug) DO NOTHING
  RETURNING id INTO v_org;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'organization slug "%" is already taken', p_slug
      USING ERRCODE = 'UM021', HINT = 'Choose another slug.';
  END IF;
  v_root := um_internal.seed_builtin_roles(v_org);
  INSERT INTO um.memberships (org_id, user_id, role_id) VALUES (v_org, p_root_user_id, v_root);
  PERFORM um_internal.audit('organization.create', v_org, 'organization', v_org,
                   jsonb_build_object('root_user_id', p_root_user_id));
  RETURN v_org;
END
$$;
COMMENT ON FUNCTION um_internal.do_create_organization(text, text, bigint) IS
  'body of um_create_organization: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_create_organization (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_add_member(p_org_id bigint, p_user_id bigint, p_role text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um_internal.authorize('member.add', format('add members to organization %s', p_org_id),
                                 'member:create', p_org_id, 'user', p_user_id);
  v_org um.organizations;
  v_role um.roles := um_internal.require_role(p_org_id, coalesce(p_role, 'member'));
  v_id bigint;
BEGIN
  -- An acting user never pulls an existing account into their organization
  -- (it would show them its data and put it under their control): people
  -- join through an invitation they accept.
  IF v_actor IS NOT NULL THEN
    PERFORM um_internal.deny('member.add', p_org_id, 'user', p_user_id, 'UM070',
      'permission denied to add an existing user directly',
      'People join an organization by accepting an invitation; only a um administrator adds them directly.',
      'Invite the address with um_invite(), or create a new user with um_create_user(org_id, email, ...).');
  END IF;
  v_org := um_internal.require_organization(p_org_id);
  PERFORM um_internal.guard_escalation(v_actor, p_org_id, NULL, ARRAY(SELECT um_internal.role_grants(v_role.id)),
                              'member.add', format('add a member with role "%s"', v_role.name), 'user', p_user_id);
  PERFORM um_internal.require_user(p_user_id);
  -- nothing inserted for a member already, or one added at this very moment
  INSERT INTO um.memberships (org_id, user_id, role_id, invited_by)
  SELECT p_org_id, p_user_id, v_role.id, v_actor
   WHERE NOT EXISTS (SELECT 1 FROM um.memberships m WHERE m.org_id = p_org_id AND m.user_id = p_user_id)
  ON CONFLICT (org_id, user_id) DO NOTHING
  RETURNING id INTO v_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'user % is already a member of organization "%"', p_user_id, v_org.slug
      USING ERRCODE = 'UM022',
            HINT = 'Change the member''s role instead; a user holds one organization role.';
  END IF;
  PERFORM um_internal.audit('member.add', p_org_id, 'user', p_user_id, jsonb_build_object('role_id', v_role.id));
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION um_internal.do_add_member(bigint, bigint, text) IS
  'body of um_add_member: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_add_member (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_set_org_role(p_org_id bigint, p_user_id bigint, p_role text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um_internal.authorize('member.set_role', format('change roles in organization %s', p_org_id),
                                 'role:grant', p_org_id, 'user', p_user_id);
  v_member um.memberships;
  v_role um.roles;
BEGIN
  v_member := um_internal.require_member(p_org_id, p_user_id);
  v_role := um_internal.require_role(p_org_id, p_role);
  PERFORM um_internal.guard_root_target(v_actor, p_org_id, p_user_id, 'member.set_role', 'change the role of');
  PERFORM um_internal.guard_escalation(v_actor, p_org_id, NULL, ARRAY(SELECT um_internal.role_grants(v_role.id)),
                              'member.set_role', format('give role "%s"', v_role.name), 'user', p_user_id);
  IF v_member.role_id = v_role.id THEN
    RETURN;
  END IF;
  UPDATE um.memberships m SET role_id = v_role.id WHERE m.id = v_member.id;   -- keeps a Root (UM044)
  PERFORM um_internal.audit('member.set_role', p_org_id, 'user', p_user_id,
                   jsonb_build_object('old_role_id', v_member.role_id, 'role_id', v_role.id));
END
$$;
COMMENT ON FUNCTION um_internal.do_set_org_role(bigint, bigint, text) IS
  'body of um_set_org_role: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_set_org_role (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_transfer_org_ownership(p_org_id bigint, p_new_root_user_id bigint, p_demote_to text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um_internal.authorize('organization.transfer', format('transfer organization %s', p_org_id),
                                 'org:update', p_org_id, 'user', p_new_root_user_id);
  v_root bigint;
  v_demote um.roles;
  v_user um.users;
BEGIN
  IF v_actor IS NOT NULL AND NOT um_internal.is_root(p_org_id, v_actor) THEN
    PERFORM um_internal.deny('organization.transfer', p_org_id, 'user', p_new_root_user_id, 'UM073',
      'only a Root may transfer ownership of an organization', NULL, 'Ask a Root of the organization.');
  END IF;
  PERFORM um_internal.require_member(p_org_id, p_new_root_user_id);
  v_user := um_internal.require_user(p_new_root_user_id);
  PERFORM um_internal.require_root_candidate(v_user, p_org_id);
  v_demote := um_internal.require_role(p_org_id, coalesce(p_demote_to, 'admin'));
  IF v_demote.builtin = 'root' THEN
    PERFORM um_internal.raise('UM009', 'demote_to must not be the Root role', NULL, 'Pass Admin or another role, or use um_set_org_role to add a Root.');
  END IF;
  SELECT r.id INTO v_root FROM um.roles r WHERE r.org_id = p_org_id AND r.builtin = 'root';
  -- one statement, so the organization is never without a Root
  UPDATE um.memberships m
     SET role_id = CASE WHEN m.user_id = p_new_root_user_id THEN v_root ELSE v_demote.id END
   WHERE m.org_id = p_org_id
     AND (m.user_id = p_new_root_user_id
          OR (m.role_id = v_root AND (v_actor IS NULL OR m.user_id = v_actor)));
  PERFORM um_internal.audit('organization.transfer', p_org_id, 'user', p_new_root_user_id,
                   jsonb_build_object('demoted_to_role_id', v_demote.id));
END
$$;
COMMENT ON FUNCTION um_internal.do_transfer_org_ownership(bigint, bigint, text) IS
  'body of um_transfer_org_ownership: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_transfer_org_ownership (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_remove_member(p_org_id bigint, p_user_id bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := @extschema@.um_current_user_id(p_org_id);
BEGIN
  IF v_actor IS NOT NULL AND v_actor = p_user_id AND v_actor = @extschema@.um_real_user_id() THEN
    PERFORM um_internal.require_organization(p_org_id);       -- leaving needs no permission
  ELSE
    v_actor := um_internal.authorize('member.remove', format('remove members of organization %s', p_org_id),
                            'member:remove', p_org_id, 'user', p_user_id);
    PERFORM um_internal.guard_root_target(v_actor, p_org_id, p_user_id, 'member.remove', 'remove');
  END IF;
  PERFORM um_internal.require_member(p_org_id, p_user_id);
  PERFORM um_internal.assert_not_team_owner(p_org_id, NULL, p_user_id);
  -- teams they own alone go with them
  DELETE FROM um.teams t
   WHERE t.org_id = p_org_id
     AND EXISTS (SELECT 1 FROM um.team_members tm WHERE tm.team_id = t.id AND tm.user_id = p_user_id AND tm.is_owner);
  DELETE FROM um.memberships m WHERE m.org_id = p_org_id AND m.user_id = p_user_id;   -- keeps a Root (UM044)
  PERFORM um_internal.audit('member.remove', p_org_id, 'user', p_user_id, '{}');
END
$$;
COMMENT ON FUNCTION um_internal.do_remove_member(bigint, bigint) IS
  'body of um_remove_member: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_remove_member (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_set_org_setting(p_org_id bigint, p_setting text, p_value jsonb)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um_internal.authorize('organization.set_setting',
                                 format('change settings of organization %s', p_org_id),
                                 'org:update', p_org_id, 'organization', p_org_id);
BEGIN
  IF p_setting IS NULL OR p_setting !~ '^[a-z][a-z0-9_]{0,62}$' THEN
    PERFORM um_internal.raise('UM009', format('invalid setting name "%s"', p_setting), NULL,
      'A setting name is lowercase letters, digits and underscores, e.g. allow_invite_requests.');
  END IF;
  CASE p_setting
    WHEN 'name' THEN
      IF jsonb_typeof(p_value) IS DISTINCT FROM 'string' THEN
        PERFORM um_internal.raise('UM009', 'setting "name" takes a JSON string', NULL, 'Pass e.g. ''"Acme Inc."''::jsonb.');
      END IF;
      UPDATE um.organizations o SET name = p_value #>> '{}' WHERE o.id = p_org_id;
    WHEN 'allow_invite_requests', 'password_login_disabled' THEN
      IF jsonb_typeof(p_value) IS DISTINCT FROM 'boolean' THEN
        PERFORM um_internal.raise('UM009', format('setting "%s" takes true or false', p_setting), NULL, 'Pass ''true''::jsonb or ''false''::jsonb.');
      END IF;
      IF p_setting = 'allow_invite_requests' THEN
        UPDATE um.organizations o SET allow_invite_requests = p_value::boolean WHERE o.id = p_org_id;
      ELSE
        IF p_value::boolean AND NOT EXISTS (
             SELECT 1 FROM um.user_identities i
               JOIN um.memberships m ON m.user_id = i.user_id AND m.org_id = i.org_id
               JOIN um.roles r ON r.id = m.role_id
              WHERE i.org_id = p_org_id AND r.builtin = 'root' AND m.status = 'active')
           AND EXISTS (SELECT 1 FROM um.identity_providers p WHERE p.org_id = p_org_id) THEN
          RAISE EXCEPTION 'no Root of organization % has an identity-provider link', p_org_id
            USING ERRCODE = 'UM045',
                  DETAIL = 'Disabling password login now would lock the organization''s Roots out.',
                  HINT = 'Link a Root''s single sign-on identity first (um_link_identity).';
        END IF;
        UPDATE um.organizations o SET password_login_disabled = p_value::boolean WHERE o.id = p_org_id;  -- needs a provider (UM045)
      END IF;
    ELSE
      UPDATE um.organizations o
         SET settings = CASE WHEN p_value IS NULL OR p_value = 'null' THEN o.settings - p_setting
                             ELSE o.settings || jsonb_build_object(p_setting, p_value) END
       WHERE o.id = p_org_id;
  END CASE;
  PERFORM um_internal.audit('organization.set_setting', p_org_id, 'organization', p_org_id,
                   jsonb_build_object('setting', p_setting));
END
$$;
COMMENT ON FUNCTION um_internal.do_set_org_setting(bigint, text, jsonb) IS
  'body of um_set_org_setting: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_set_org_setting (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_add_identity_provider(p_org_id bigint, p_name text, p_protocol text, p_issuer text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id bigint;
BEGIN
  PERFORM um_internal.authorize('identity_provider.add', format('add identity providers to organization %s', p_org_id),
                       'org:update', p_org_id, 'organization', p_org_id);
  IF p_protocol IS NULL OR p_protocol NOT IN ('oidc', 'saml') THEN
    PERFORM um_internal.raise('UM009', format('unknown protocol "%s"', p_protocol), NULL, 'Pass ''oidc'' or ''saml''.');
  END IF;
  IF p_issuer IS NULL OR p_issuer !~ '^https://[^[:space:]]+$' THEN
    PERFORM um_internal.raise('UM009', format('invalid issuer "%s"', p_issuer), NULL, 'Pass the provider''s https:// issuer URL.');
  END IF;
  IF NOT um_internal.display_name_is_valid(p_name, 100) THEN
    RAISE EXCEPTION 'invalid identity provider name "%"', p_name
      USING ERRCODE = 'UM003', HINT = 'Use 1 to 100 characters without surrounding blanks.';
  END IF;
  INSERT INTO um.identity_providers (org_id, name, protocol, issuer)
  VALUES (p_org_id, p_name, p_protocol, p_issuer)
  ON CONFLICT (org_id, lower(name)) DO NOTHING
  RETURNING id INTO v_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'organization % already has an identity provider named "%"', p_org_id, p_name
      USING ERRCODE = 'UM027', HINT = 'Choose another name, or use the existing provider.';
  END IF;
  PERFORM um_internal.audit('identity_provider.add', p_org_id, 'identity_provider', v_id, '{}');
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION um_internal.do_add_identity_provider(bigint, text, text, text) IS
  'body of um_add_identity_provider: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_add_identity_provider (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_link_identity(p_org_id bigint, p_provider text, p_subject text, p_user_id bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um_internal.authorize('user.link_identity', format('link identities in organization %s', p_org_id),
                                 'user:update', p_org_id, 'user', p_user_id);
  v_provider bigint;
  v_user bigint := coalesce(p_user_id, v_actor);
BEGIN
  -- a sign-in method outlives the impersonation: never while impersonating
  IF v_actor IS DISTINCT FROM @extschema@.um_real_user_id() THEN
    PERFORM um_internal.deny('user.link_identity', um_internal.actor_org(p_org_id), 'user', v_user, 'UM070',
      'permission denied to link identities while impersonating',
      'A linked identity signs in as the account for good.', 'Call um_end_impersonation() first.');
  END IF;
  IF v_user IS NULL THEN
    PERFORM um_internal.raise('UM009', 'a user is required', NULL, 'Pass user_id.');
  END IF;
  PERFORM um_internal.require_member(p_org_id, v_user);
  PERFORM um_internal.guard_root_target(v_actor, p_org_id, v_user, 'user.link_identity', 'link an identity to');
  -- a sign-in method on an account whose mailbox nobody proved would be
  -- waiting for its owner, who may not be who created it
  IF v_actor IS NOT NULL AND v_actor <> v_user
     AND (SELECT u.email_verified_at IS NULL FROM um.users u WHERE u.id = v_user) THEN
    PERFORM um_internal.deny('user.link_identity', p_org_id, 'user', v_user, 'UM070',
      'permission denied to link an identity to an unverified account',
      'The address of the account was never proven; whoever claims it later must not find a sign-in method of someone else''s.',
      'Have the backend send a verification (um_resend_verification) first.');
  END IF;
  IF v_actor IS NOT NULL AND v_actor <> v_user THEN
    -- a sign-in method is the whole account's, in every organization of the user
    PERFORM um_internal.authorize_user('user.link_identity', format('link an identity to user %s', v_user),
                              'user:update', v_user);
  END IF;
  SELECT p.id INTO v_provider FROM um.identity_providers p
   WHERE p.org_id = p_org_id AND lower(p.name) = lower(p_provider);
  IF NOT FOUND THEN
    RAISE EXCEPTION 'organization % has no identity provider named "%"', p_org_id, p_provider
      USING ERRCODE = 'UM037', HINT = 'Add it with um_add_identity_provider(), or see um.identity_providers.';
  END IF;
  IF p_subject IS NULL OR length(p_subject) NOT BETWEEN 1 AND 255 THEN
    PERFORM um_internal.raise('UM009', 'invalid subject', NULL, 'Pass the provider''s subject identifier (1 to 255 characters).');
  END IF;
  INSERT INTO um.user_identities (org_id, provider_id, subject, user_id)
  VALUES (p_org_id, v_provider, p_subject, v_user)
  ON CONFLICT (provider_id, subject) DO NOTHING;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'that subject of provider "%" is already linked to a user', p_provider
      USING ERRCODE = 'UM027', HINT = 'A provider''s subject identifies one user; unlink it first.';
  END IF;
  PERFORM um_internal.audit('user.link_identity', p_org_id, 'user', v_user, jsonb_build_object('provider_id', v_provider));
END
$$;
COMMENT ON FUNCTION um_internal.do_link_identity(bigint, text, text, bigint) IS
  'body of um_link_identity: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_link_identity (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.authorize_team(p_action text, p_what text, p_team_id bigint, p_target_id bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_team um.teams;
  v_org bigint;
  v_actor bigint;
BEGIN
  PERFORM um_internal.assert_no_app_cascades();
  SELECT t.org_id INTO v_org FROM um.teams t WHERE t.id = p_team_id;
  v_actor := @extschema@.um_current_user_id(v_org);
  IF v_actor IS NOT NULL AND EXISTS (
       SELECT 1 FROM um.team_members tm JOIN um.memberships m ON m.org_id = tm.org_id AND m.user_id = tm.user_id
         JOIN um.users u ON u.id = m.user_id
        WHERE tm.team_id = p_team_id AND tm.user_id = v_actor AND tm.is_owner
          AND m.status = 'active' AND u.status = 'active' AND u.allow_login) THEN
    RETURN v_actor;                                  -- the team's owner
  END IF;
  v_actor := um_internal.authorize(p_action, p_what, 'team:manage', v_org, 'user', p_target_id);
  v_team := um_internal.require_team(p_team_id);
  RETURN v_actor;
END
$$;
COMMENT ON FUNCTION um_internal.authorize_team(text, text, bigint, bigint) IS
  'internal: authorization for managing a team''s members: the team''s owner may, else team:manage in the organization (um_internal.authorize)';

CREATE FUNCTION um_internal.do_create_team(p_org_id bigint, p_name text, p_description text, p_owner_user_id bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um_internal.authorize('team.create', format('create teams in organization %s', p_org_id),
                                 'team:create', p_org_id, 'team', NULL);
  v_owner bigint := coalesce(p_owner_user_id, v_actor);
  v_member um.memberships;
  v_id bigint;
BEGIN
  IF v_owner IS NULL THEN
    PERFORM um_internal.raise('UM009', 'a team needs an owner', NULL, 'Pass owner_user_id, a member of the organization.');
  END IF;
  v_member := um_internal.require_member(p_org_id, v_owner);
  IF v_member.status <> 'active' THEN
    RAISE EXCEPTION 'user % cannot own a team', v_owner
      USING ERRCODE = 'UM050', DETAIL = 'The membership is suspended.', HINT = 'Choose an active member.';
  END IF;
  v_id := um_internal.write_team(p_org_id, NULL, p_name, p_description);
  INSERT INTO um.team_members (org_id, team_id, user_id, is_owner) VALUES (p_org_id, v_id, v_owner, true);
  PERFORM um_internal.audit('team.create', p_org_id, 'team', v_id, jsonb_build_object('owner_user_id', v_owner));
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION um_internal.do_create_team(bigint, text, text, bigint) IS
  'body of um_create_team: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_create_team (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_rename_team(p_team_id bigint, p_name text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_team um.teams;
BEGIN
  SELECT * INTO v_team FROM um.teams t WHERE t.id = p_team_id;
  PERFORM um_internal.authorize('team.rename', format('rename team %s', p_team_id), 'team:update',
                       v_team.org_id, 'team', p_team_id);
  v_team := um_internal.require_team(p_team_id);
  PERFORM um_internal.write_team(v_team.org_id, p_team_id, p_name, NULL);
  PERFORM um_internal.audit('team.rename', v_team.org_id, 'team', p_team_id, '{}');
END
$$;
COMMENT ON FUNCTION um_internal.do_rename_team(bigint, text) IS
  'body of um_rename_team: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_rename_team (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_delete_team(p_team_id bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_team um.teams;
  v_actor bigint;
  v_owner bigint;
BEGIN
  SELECT * INTO v_team FROM um.teams t WHERE t.id = p_team_id;
  v_actor := um_internal.authorize('team.delete', format('delete team %s', p_team_id), 'team:delete',
                          v_team.org_id, 'team', p_team_id);
  v_team := um_internal.require_team(p_team_id);
  -- a Root's team is deleted only by a Root
  SELECT tm.user_id INTO v_owner FROM um.team_members tm WHERE tm.team_id = p_team_id AND tm.is_owner;
  IF v_owner IS NOT NULL THEN
    PERFORM um_internal.guard_root_target(v_actor, v_team.org_id, v_owner, 'team.delete', 'delete the team of');
  END IF;
  DELETE FROM um.teams t WHERE t.id = p_team_id;      -- its members, their team roles, its space and grants
  PERFORM um_internal.audit('team.delete', v_team.org_id, 'team', p_team_id, '{}');
END
$$;
COMMENT ON FUNCTION um_internal.do_delete_team(bigint) IS
  'body of um_delete_team: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_delete_team (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_add_team_member(p_team_id bigint, p_user_id bigint, p_roles text[])
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um_internal.authorize_team('team.add_member', format('add members to team %s', p_team_id),
                                      p_team_id, p_user_id);
  v_team um.teams := um_internal.require_team(p_team_id);
  v_role um.roles;
  v_name text;
BEGIN
  -- the membership, locked against a concurrent removal or deletion
  PERFORM 1 FROM um.memberships m WHERE m.org_id = v_team.org_id AND m.user_id = p_user_id FOR KEY SHARE;
  IF NOT FOUND THEN
    PERFORM um_internal.require_member(v_team.org_id, p_user_id);
  END IF;
  IF EXISTS (SELECT 1 FROM um.team_members tm WHERE tm.team_id = p_team_id AND tm.user_id = p_user_id) THEN
    RAISE EXCEPTION 'user % is already a member of team "%"', p_user_id, v_team.name
      USING ERRCODE = 'UM024', HINT = 'Give them team roles with um_grant_team_role().';
  END IF;
  PERFORM um_internal.guard_team_grants(v_actor, p_team_id, 'team.add_member', p_user_id);
  INSERT INTO um.team_members (org_id, team_id, user_id) VALUES (v_team.org_id, p_team_id, p_user_id);
  FOREACH v_name IN ARRAY coalesce(p_roles, '{}') LOOP
    v_role := um_internal.require_role(v_team.org_id, v_name);
    PERFORM um_internal.guard_escalation(v_actor, v_team.org_id, v_team.scope_id, ARRAY(SELECT um_internal.role_grants(v_role.id)),
                                'team.add_member', format('give team role "%s"', v_role.name), 'user', p_user_id);
    INSERT INTO um.team_member_roles (org_id, team_id, user_id, role_id)
    VALUES (v_team.org_id, p_team_id, p_user_id, v_role.id) ON CONFLICT DO NOTHING;
  END LOOP;
  PERFORM um_internal.audit('team.add_member', v_team.org_id, 'user', p_user_id,
                   jsonb_build_object('team_id', p_team_id,
                                      'role_ids', (SELECT coalesce(jsonb_agg(r.role_id ORDER BY r.role_id), '[]')
                                                     FROM um.team_member_roles r
                                                    WHERE r.team_id = p_team_id AND r.user_id = p_user_id)));
END
$$;
COMMENT ON FUNCTION um_internal.do_add_team_member(bigint, bigint, text[]) IS
  'body of um_add_team_member: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_add_team_member (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_remove_team_member(p_team_id bigint, p_user_id bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint;
  v_team um.teams;
BEGIN
  v_actor := um_internal.authorize_team('team.remove_member', format('remove members of team %s', p_team_id),
                               p_team_id, p_user_id);
  v_team := um_internal.require_team(p_team_id);
  PERFORM um_internal.guard_root_target(v_actor, v_team.org_id, p_user_id, 'team.remove_member', 'remove from a team');
  PERFORM um_internal.require_team_member(v_team, p_user_id, 'See the team''s members in um.team_members.');
  PERFORM um_internal.assert_not_team_owner(v_team.org_id, p_team_id, p_user_id);
  DELETE FROM um.team_members tm WHERE tm.team_id = p_team_id AND tm.user_id = p_user_id;
  PERFORM um_internal.audit('team.remove_member', v_team.org_id, 'user', p_user_id, jsonb_build_object('team_id', p_team_id));
END
$$;
COMMENT ON FUNCTION um_internal.do_remove_team_member(bigint, bigint) IS
  'body of um_remove_team_member: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_remove_team_member (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_grant_team_role(p_team_id bigint, p_user_id bigint, p_role text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um_internal.authorize_team('team.grant_role', format('give roles in team %s', p_team_id),
                                      p_team_id, p_user_id);
  v_team um.teams := um_internal.require_team(p_team_id);
  v_role um.roles := um_internal.require_role(v_team.org_id, p_role);
BEGIN
  PERFORM um_internal.require_team_member(v_team, p_user_id, 'Add them to the team first (um_add_team_member).');
  PERFORM um_internal.guard_escalation(v_actor, v_team.org_id, v_team.scope_id, ARRAY(SELECT um_internal.role_grants(v_role.id)),
                              'team.grant_role', format('give team role "%s"', v_role.name), 'user', p_user_id);
  INSERT INTO um.team_member_roles (org_id, team_id, user_id, role_id)
  VALUES (v_team.org_id, p_team_id, p_user_id, v_role.id) ON CONFLICT DO NOTHING;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  PERFORM um_internal.audit('team.grant_role', v_team.org_id, 'user', p_user_id,
                   jsonb_build_object('team_id', p_team_id, 'role_id', v_role.id));
  RETURN true;
END
$$;
COMMENT ON FUNCTION um_internal.do_grant_team_role(bigint, bigint, text) IS
  'body of um_grant_team_role: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_grant_team_role (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_revoke_team_role(p_team_id bigint, p_user_id bigint, p_role text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint;
  v_team um.teams;
  v_role um.roles;
BEGIN
  v_actor := um_internal.authorize_team('team.revoke_role', format('take roles in team %s', p_team_id),
                               p_team_id, p_user_id);
  v_team := um_internal.require_team(p_team_id);
  PERFORM um_internal.guard_root_target(v_actor, v_team.org_id, p_user_id, 'team.revoke_role', 'take team roles from');
  v_role := um_internal.require_role(v_team.org_id, p_role);
  DELETE FROM um.team_member_roles r
   WHERE r.team_id = p_team_id AND r.user_id = p_user_id AND r.role_id = v_role.id;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  PERFORM um_internal.audit('team.revoke_role', v_team.org_id, 'user', p_user_id,
                   jsonb_build_object('team_id', p_team_id, 'role_id', v_role.id));
  RETURN true;
END
$$;
COMMENT ON FUNCTION um_internal.do_revoke_team_role(bigint, bigint, text) IS
  'body of um_revoke_team_role: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_revoke_team_role (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_transfer_team_ownership(p_team_id bigint, p_new_owner_user_id bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint;
  v_owner bigint;
  v_team um.teams;
BEGIN
  v_actor := um_internal.authorize_team('team.transfer', format('transfer team %s', p_team_id),
                               p_team_id, p_new_owner_user_id);
  v_team := um_internal.require_team(p_team_id);
  -- the owner loses the team: only a Root takes a team from a Root
  SELECT tm.user_id INTO v_owner FROM um.team_members tm WHERE tm.team_id = p_team_id AND tm.is_owner;
  IF v_owner IS NOT NULL THEN
    PERFORM um_internal.guard_root_target(v_actor, v_team.org_id, v_owner, 'team.transfer', 'take a team from');
  END IF;
  PERFORM um_internal.require_team_member(v_team, p_new_owner_user_id, 'Add them to the team first (um_add_team_member).');
  -- one statement: the team always has exactly one owner
  UPDATE um.team_members tm SET is_owner = (tm.user_id = p_new_owner_user_id)
   WHERE tm.team_id = p_team_id AND (tm.is_owner OR tm.user_id = p_new_owner_user_id);
  PERFORM um_internal.audit('team.transfer', v_team.org_id, 'user', p_new_owner_user_id, jsonb_build_object('team_id', p_team_id));
END
$$;
COMMENT ON FUNCTION um_internal.do_transfer_team_ownership(bigint, bigint) IS
  'body of um_transfer_team_ownership: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_transfer_team_ownership (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_create_role(p_org_id bigint, p_name text, p_permissions text[], p_description text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um_internal.authorize('role.create', format('create roles in organization %s', p_org_id),
                                 'role:create', p_org_id, 'role', NULL);
  v_id bigint;
  v_p text;
BEGIN
  -- bad input first: the refusals below quote the name
  IF p_name IS NULL OR NOT um_internal.display_name_is_valid(p_name, 100) THEN
    RAISE EXCEPTION 'invalid role name "%"', left(p_name, 100) || CASE WHEN length(p_name) > 100 THEN '...' ELSE '' END
      USING ERRCODE = 'UM003',
            DETAIL = 'A name has 1 to 100 characters, no leading or trailing blanks and no control characters.',
            HINT = 'Trim or shorten the name.';
  END IF;
  FOREACH v_p IN ARRAY coalesce(p_permissions, '{}') LOOP
    PERFORM um_internal.assert_permission_name(v_p, true);
  END LOOP;
  PERFORM um_internal.guard_escalation(v_actor, p_org_id, NULL,
                              ARRAY(SELECT DISTINCT g FROM unnest(coalesce(p_permissions, '{}')) AS p, um_internal.pattern_grants(p) AS g),
                              'role.create', format('create role "%s"', p_name), 'role', NULL);
  INSERT INTO um.roles (org_id, name, description) VALUES (p_org_id, p_name, p_description)
  ON CONFLICT (org_id, lower(name)) DO NOTHING
  RETURNING id INTO v_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'organization % already has a role named "%"', p_org_id, p_name
      USING ERRCODE = 'UM026', HINT = 'Choose another name (role names are unique regardless of letter case).';
  END IF;
  -- an acting user's patterns become the permissions they stand for today:
  -- a pattern would also cover permissions registered later, which the
  -- grantor does not hold (a um administrator may store patterns)
  INSERT INTO um.role_permissions (org_id, role_id, permission)
  SELECT DISTINCT p_org_id, v_id, x
    FROM unnest(coalesce(p_permissions, '{}')) AS p,
         LATERAL (SELECT p WHERE v_actor IS NULL OR strpos(p, '*') = 0
                  UNION ALL
                  SELECT g FROM um_internal.pattern_grants(p) AS g WHERE v_actor IS NOT NULL AND strpos(p, '*') > 0) AS e(x);   -- unknown names: UM011
  PERFORM um_internal.audit('role.create', p_org_id, 'role', v_id, jsonb_build_object('permissions', to_jsonb(coalesce(p_permissions, '{}'))));
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION um_internal.do_create_role(bigint, text, text[], text) IS
  'body of um_create_role: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_create_role (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_delete_role(p_role_id bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_role um.roles;
  v_n bigint;
BEGIN
  SELECT * INTO v_role FROM um.roles r WHERE r.id = p_role_id;
  PERFORM um_internal.authorize('role.delete', format('delete role %s', p_role_id), 'role:delete',
                       v_role.org_id, 'role', p_role_id);
  v_role := um_internal.require_role_id(p_role_id);
  IF v_role.builtin IS NOT NULL THEN
    RAISE EXCEPTION 'built-in role "%" cannot be deleted', v_role.name
      USING ERRCODE = 'UM042', HINT = 'Edit its permissions instead (um_grant_permission, um_revoke_permission).';
  END IF;
  SELECT count(*) INTO v_n FROM um.memberships m WHERE m.role_id = p_role_id;
  IF v_n > 0 THEN
    RAISE EXCEPTION 'role "%" is still the organization role of % member(s)', v_role.name, v_n
      USING ERRCODE = 'UM049', HINT = 'Give them another role first (um_set_org_role).';
  END IF;
  DELETE FROM um.roles r WHERE r.id = p_role_id;      -- its grants, team roles and open invitations go too
  PERFORM um_internal.audit('role.delete', v_role.org_id, 'role', p_role_id, '{}');
END
$$;
COMMENT ON FUNCTION um_internal.do_delete_role(bigint) IS
  'body of um_delete_role: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_delete_role (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.authorize_role_edit(p_action text, p_role_id bigint, p_permission text)
RETURNS um.roles
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_role um.roles;
  v_actor bigint;
BEGIN
  SELECT * INTO v_role FROM um.roles r WHERE r.id = p_role_id;
  v_actor := um_internal.authorize(p_action, format('edit role %s', p_role_id), 'role:update',
                          v_role.org_id, 'role', p_role_id);
  v_role := um_internal.require_role_id(p_role_id);
  IF v_actor IS NOT NULL AND v_role.builtin = 'root' AND NOT um_internal.is_root(v_role.org_id, v_actor) THEN
    PERFORM um_internal.deny(p_action, v_role.org_id, 'role', p_role_id, 'UM073',
      'only a Root may edit the Root role', NULL, 'Ask a Root of the organization.');
  END IF;
  IF p_permission IS NULL THEN
    PERFORM um_internal.raise('UM009', 'a permission is required', NULL, 'Pass "resource:action", or a pattern with *.');
  END IF;
  PERFORM um_internal.assert_permission_name(p_permission, true);
  RETURN v_role;
END
$$;
COMMENT ON FUNCTION um_internal.authorize_role_edit(text, bigint, text) IS
  'internal: authorization for granting or revoking a role''s permission: role:update, only a Root edits the Root role, a valid name or pattern; returns the role';

CREATE FUNCTION um_internal.do_grant_permission(p_role_id bigint, p_permission text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_role um.roles := um_internal.authorize_role_edit('role.grant_permission', p_role_id, p_permission);
BEGIN
  PERFORM um_internal.guard_escalation(@extschema@.um_current_user_id(), v_role.org_id, NULL,
                              ARRAY(SELECT um_internal.pattern_grants(p_permission)),
                              'role.grant_permission', format('add %s to role "%s"', p_permission, v_role.name),
                              'role', p_role_id);
  -- as in um_create_role, an acting user's pattern is stored as the permissions it stands for today
  INSERT INTO um.role_permissions (org_id, role_id, permission)
  SELECT v_role.org_id, p_role_id, x
    FROM (SELECT p_permission WHERE @extschema@.um_current_user_id() IS NULL OR strpos(p_permission, '*') = 0
          UNION ALL
          SELECT g FROM um_internal.pattern_grants(p_permission) AS g
           WHERE @extschema@.um_current_user_id() IS NOT NULL AND strpos(p_permission, '*') > 0) AS e(x)
  ON CONFLICT DO NOTHING;                                                          -- unknown names: UM011
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  PERFORM um_internal.audit('role.grant_permission', v_role.org_id, 'role', p_role_id, jsonb_build_object('permission', p_permission));
  RETURN true;
END
$$;
COMMENT ON FUNCTION um_internal.do_grant_permission(bigint, text) IS
  'body of um_grant_permission: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_grant_permission (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_revoke_permission(p_role_id bigint, p_permission text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_role um.roles := um_internal.authorize_role_edit('role.revoke_permission', p_role_id, p_permission);
BEGIN
  DELETE FROM um.role_permissions rp WHERE rp.role_id = p_role_id AND rp.permission = p_permission;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  PERFORM um_internal.audit('role.revoke_permission', v_role.org_id, 'role', p_role_id, jsonb_build_object('permission', p_permission));
  RETURN true;
END
$$;
COMMENT ON FUNCTION um_internal.do_revoke_permission(bigint, text) IS
  'body of um_revoke_permission: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_revoke_permission (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_grant_scope_role(p_scope_id bigint, p_role text, p_user_id bigint, p_team_id bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_scope um.scopes;
  v_actor bigint;
  v_role um.roles;
  v_id bigint;
BEGIN
  SELECT * INTO v_scope FROM um.scopes s WHERE s.id = p_scope_id;
  v_actor := um_internal.authorize('grant.create', format('give roles on scope node %s', p_scope_id), 'role:grant',
                          v_scope.org_id, 'scope', p_scope_id);
  v_scope := um_internal.require_scope(p_scope_id);
  PERFORM um_internal.assert_one_grantee(p_user_id, p_team_id);
  v_role := um_internal.require_role(v_scope.org_id, p_role);
  IF p_user_id IS NOT NULL THEN
    PERFORM um_internal.require_member(v_scope.org_id, p_user_id);
  ELSE
    PERFORM um_internal.require_org_team(v_scope.org_id, p_team_id);
  END IF;
  PERFORM um_internal.guard_escalation(v_actor, v_scope.org_id, p_scope_id, ARRAY(SELECT um_internal.role_grants(v_role.id)),
                              'grant.create', format('give role "%s"', v_role.name), 'scope', p_scope_id);
  INSERT INTO um.grants (org_id, role_id, user_id, team_id, scope_id, granted_by)
  VALUES (v_scope.org_id, v_role.id, p_user_id, p_team_id, p_scope_id, v_actor)
  ON CONFLICT DO NOTHING
  RETURNING id INTO v_id;
  IF v_id IS NULL THEN
    SELECT g.id INTO v_id FROM um.grants g
     WHERE g.org_id = v_scope.org_id AND g.role_id = v_role.id AND g.scope_id = p_scope_id AND g.scope_kind IS NULL
       AND g.user_id IS NOT DISTINCT FROM p_user_id AND g.team_id IS NOT DISTINCT FROM p_team_id;
    RETURN v_id;
  END IF;
  PERFORM um_internal.audit('grant.create', v_scope.org_id, 'scope', p_scope_id,
                   jsonb_build_object('grant_id', v_id, 'role_id', v_role.id, 'user_id', p_user_id, 'team_id', p_team_id));
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION um_internal.do_grant_scope_role(bigint, text, bigint, bigint) IS
  'body of um_grant_scope_role: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_grant_scope_role (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_revoke_scope_role(p_scope_id bigint, p_role text, p_user_id bigint, p_team_id bigint)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_scope um.scopes;
  v_actor bigint;
  v_role um.roles;
  v_id bigint;
BEGIN
  SELECT * INTO v_scope FROM um.scopes s WHERE s.id = p_scope_id;
  v_actor := um_internal.authorize('grant.delete', format('take roles on scope node %s', p_scope_id), 'role:grant',
                          v_scope.org_id, 'scope', p_scope_id);
  v_scope := um_internal.require_scope(p_scope_id);
  PERFORM um_internal.assert_one_grantee(p_user_id, p_team_id);
  v_role := um_internal.require_role(v_scope.org_id, p_role);
  IF p_user_id IS NOT NULL THEN
    PERFORM um_internal.guard_root_target(v_actor, v_scope.org_id, p_user_id, 'grant.delete', 'take roles from');
  END IF;
  DELETE FROM um.grants g
   WHERE g.org_id = v_scope.org_id AND g.role_id = v_role.id AND g.scope_id = p_scope_id AND g.scope_kind IS NULL
     AND g.user_id IS NOT DISTINCT FROM p_user_id AND g.team_id IS NOT DISTINCT FROM p_team_id
  RETURNING g.id INTO v_id;
  IF v_id IS NULL THEN
    RETURN false;
  END IF;
  PERFORM um_internal.audit('grant.delete', v_scope.org_id, 'scope', p_scope_id,
                   jsonb_build_object('grant_id', v_id, 'role_id', v_role.id, 'user_id', p_user_id, 'team_id', p_team_id));
  RETURN true;
END
$$;
COMMENT ON FUNCTION um_internal.do_revoke_scope_role(bigint, text, bigint, bigint) IS
  'body of um_revoke_scope_role: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_revoke_scope_role (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_register_permission(p_permission text, p_description text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF @extschema@.um_current_user_id() IS NOT NULL THEN
    PERFORM um_internal.deny('permission.register', NULL, 'permission', NULL, 'UM070',
      'permission denied to change the permission catalog',
      'The catalog is shared by every organization; only a um administrator, with nobody acting, changes it.',
      'Register the application''s permissions from its migrations, as a um administrator.');
  END IF;
  PERFORM um_internal.authorize('permission.register', 'change the permission catalog', NULL, NULL, 'permission', NULL);
  IF p_permission IS NULL THEN
    RAISE EXCEPTION 'a permission name is required'
      USING ERRCODE = 'UM010', HINT = 'Pass "resource:action", e.g. ''invoice:read''.';
  END IF;
  PERFORM um_internal.assert_permission_name(p_permission, false);
  INSERT INTO um.permissions AS p (name, description)
  VALUES (p_permission, p_description)
  ON CONFLICT (name) DO UPDATE
     SET description = coalesce(excluded.description, p.description)
   WHERE NOT p.builtin;
  PERFORM um_internal.audit('permission.register', NULL, 'permission', NULL, jsonb_build_object('permission', p_permission));
END
$$;
COMMENT ON FUNCTION um_internal.do_register_permission(text, text) IS
  'body of um_register_permission: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_register_permission (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_invite(p_org_id bigint, p_emails text, p_role text, p_team_id bigint, p_valid_for interval)
RETURNS TABLE (email text, status text, invitation_id bigint, token text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
  v_actor bigint := um_internal.authorize('invitation.create', format('invite people to organization %s', p_org_id),
                                 'member:invite', p_org_id, 'invitation', NULL);
  v_role um.roles := um_internal.require_role(p_org_id, coalesce(p_role, 'member'));
  v_emails text[] := um_internal.parse_email_batch(p_emails);
  v_bad text[];
  v_email text;
  v_token text;
  v_id bigint;
  v_expires timestamptz;
BEGIN
  IF v_role.builtin = 'root' AND v_actor IS NOT NULL AND NOT um_internal.is_root(p_org_id, v_actor) THEN
    PERFORM um_internal.deny('invitation.create', p_org_id, 'invitation', NULL, 'UM073',
      'only a Root may invite a Root', NULL, 'Invite with another role; a Root can promote the member later.');
  END IF;
  PERFORM um_internal.guard_escalation(v_actor, p_org_id, NULL, ARRAY(SELECT um_internal.role_grants(v_role.id)),
                              'invitation.create', format('invite with role "%s"', v_role.name), 'invitation', NULL);
  IF p_team_id IS NOT NULL THEN
    PERFORM um_internal.require_org_team(p_org_id, p_team_id);
    -- inviting into a team is adding a team member: team:manage or its owner,
    -- and no team whose grants hold more than the inviter
    PERFORM um_internal.authorize_team('invitation.create', format('invite people into team %s', p_team_id), p_team_id, NULL);
    PERFORM um_internal.guard_team_grants(v_actor, p_team_id, 'invitation.create', NULL);
  END IF;
  IF p_valid_for IS NULL OR p_valid_for <= interval '0' OR p_valid_for > interval '90 days' THEN
    PERFORM um_internal.raise('UM009', format('invalid validity "%s"', p_valid_for), NULL, 'Pass an interval between 1 second and 90 days.');
  END IF;
  IF cardinality(v_emails) = 0 THEN
    RAISE EXCEPTION 'no email addresses given'
      USING ERRCODE = 'UM054', HINT = 'Pass addresses separated by commas, semicolons or new lines.';
  END IF;
  SELECT array_agg(e ORDER BY n) INTO v_bad FROM unnest(v_emails) WITH ORDINALITY AS x(e, n) WHERE NOT um_internal.email_is_valid(e);
  IF v_bad IS NOT NULL THEN
    RAISE EXCEPTION '% of % email addresses are invalid; nobody was invited', cardinality(v_bad), cardinality(v_emails)
      USING ERRCODE = 'UM054',
            DETAIL = 'Invalid: ' || array_to_string(v_bad, ', ') || '.',
            HINT = 'Correct or remove them and send the whole batch again.';
  END IF;
  v_expires := now() + p_valid_for;
  FOREACH v_email IN ARRAY v_emails LOOP
    email := v_email; invitation_id := NULL; token := NULL;
    IF EXISTS (SELECT 1 FROM um.memberships m JOIN um.users u ON u.id = m.user_id
                WHERE m.org_id = p_org_id AND lower(u.email) = lower(v_email)) THEN
      status := 'already_member';
      RETURN NEXT;
      CONTINUE;
    END IF;
    v_token := um_internal.generate_token();
    -- an open invitation (or request) for the address is renewed
    UPDATE um.invitations i
       SET state = 'pending', token_hash = um_internal.token_hash(v_token), expires_at = v_expires, role_id = v_role.id,
           team_id = p_team_id, invited_by = v_actor, created_at = now()
     WHERE i.org_id = p_org_id AND lower(i.email) = lower(v_email) AND i.state IN ('pending', 'requested')
    RETURNING i.id INTO v_id;
    IF FOUND THEN
      status := 'renewed';
    ELSE
      INSERT INTO um.invitations (org_id, email, role_id, team_id, state, token_hash, invited_by, expires_at)
      VALUES (p_org_id, v_email, v_role.id, p_team_id, 'pending', um_internal.token_hash(v_token), v_actor, v_expires)
      ON CONFLICT (org_id, lower(email)) WHERE state IN ('requested', 'pending') DO NOTHING
      RETURNING id INTO v_id;
      IF NOT FOUND THEN                             -- invited at this very moment by someone else
        status := 'already_invited';
        RETURN NEXT;
        CONTINUE;
      END IF;
      status := 'invited';
    END IF;
    invitation_id := v_id; token := v_token;
    PERFORM um_internal.audit('invitation.create', p_org_id, 'invitation', v_id,
                     jsonb_build_object('role_id', v_role.id, 'team_id', p_team_id, 'renewed', status = 'renewed'));
    RETURN NEXT;
  END LOOP;
END
$$;
COMMENT ON FUNCTION um_internal.do_invite(bigint, text, text, bigint, interval) IS
  'body of um_invite: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_invite (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_request_invitation(p_org_slug text, p_email text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_org um.organizations;
  v_email text := btrim(p_email, E' \t\r\n');
  v_member_role bigint;
  v_id bigint;
BEGIN
  SELECT * INTO v_org FROM um.organizations o WHERE o.slug = p_org_slug;
  IF NOT FOUND OR NOT v_org.allow_invite_requests THEN
    RAISE EXCEPTION 'organization "%" does not take invitation requests', p_org_slug
      USING ERRCODE = 'UM055', HINT = 'Ask a member of the organization to invite you.';
  END IF;
  IF v_email IS NULL OR NOT um_internal.email_is_valid(v_email) THEN
    RAISE EXCEPTION 'invalid email address "%"', p_email
      USING ERRCODE = 'UM001', HINT = 'Check the address for typos.';
  END IF;
  SELECT r.id INTO v_member_role FROM um.roles r WHERE r.org_id = v_org.id AND r.builtin = 'member';
  -- members and open invitations (also one made at this very moment):
  -- nothing to do, and nothing said about it
  INSERT INTO um.invitations (org_id, email, role_id, state)
  SELECT v_org.id, v_email, v_member_role, 'requested'
   WHERE NOT EXISTS (SELECT 1 FROM um.memberships m JOIN um.users u ON u.id = m.user_id
                      WHERE m.org_id = v_org.id AND lower(u.email) = lower(v_email))
     AND NOT EXISTS (SELECT 1 FROM um.invitations i
                      WHERE i.org_id = v_org.id AND lower(i.email) = lower(v_email) AND i.state IN ('pending', 'requested'))
  ON CONFLICT (org_id, lower(email)) WHERE state IN ('requested', 'pending') DO NOTHING
  RETURNING id INTO v_id;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  PERFORM um_internal.audit('invitation.request', v_org.id, 'invitation', v_id, '{}');
END
$$;
COMMENT ON FUNCTION um_internal.do_request_invitation(text, text) IS
  'body of um_request_invitation: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_request_invitation (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_accept_invitation(p_token text, p_password text, p_name text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_inv um.invitations;
  v_actor bigint := @extschema@.um_current_user_id();
  v_user um.users;
  v_user_id bigint;
BEGIN
  PERFORM um_internal.assert_no_app_cascades();
  SELECT * INTO v_inv FROM um.invitations i WHERE i.token_hash = um_internal.token_hash(coalesce(p_token, '')) FOR UPDATE;
  IF NOT FOUND OR v_inv.state <> 'pending' OR v_inv.expires_at <= now() THEN
    PERFORM um_internal.deny('invitation.accept', v_inv.org_id, 'invitation', v_inv.id, 'UM053',
      'the invitation is not valid',
      CASE WHEN v_inv.id IS NULL THEN 'The token is unknown.'
           WHEN v_inv.state = 'accepted' THEN 'It was already accepted.'
           WHEN v_inv.state = 'revoked' THEN 'It was revoked.'
           ELSE 'It has expired.' END,
      'Ask the organization for a new invitation.');
  END IF;
  -- Holding an invitation gives its membership and nothing else: the token
  -- was seen by the inviter, so it proves nothing about the mailbox.  An
  -- existing account accepts only logged in as itself (a password login
  -- needs a verified address), never by whoever holds the token.
  SELECT * INTO v_user FROM um.users u WHERE lower(u.email) = lower(v_inv.email) FOR UPDATE;
  IF FOUND AND v_actor IS NOT NULL THEN
    IF v_actor <> v_user.id OR v_actor IS DISTINCT FROM @extschema@.um_real_user_id() THEN
      PERFORM um_internal.deny('invitation.accept', um_internal.actor_org(v_inv.org_id), 'invitation', v_inv.id, 'UM056',
        'the invitation is for another account', 'It was sent to the address of another user.',
        'Log in as the invited address to accept it.');
    END IF;
    v_user_id := v_user.id;                         -- the invited user, logged in
  ELSIF FOUND THEN
    PERFORM um_internal.deny('invitation.accept', NULL, 'invitation', v_inv.id, 'UM056',
      'the invited address already has an account',
      'An existing account accepts its invitations only while logged in.',
      'Log in as the invited address, then accept; if its address was never verified, the backend sends it a verification (um_resend_verification) to claim it.');
  ELSE
    IF v_actor IS NOT NULL THEN
      PERFORM um_internal.deny('invitation.accept', um_internal.actor_org(v_inv.org_id), 'invitation', v_inv.id, 'UM056',
        'the invitation is for another account', 'It was sent to an address that is not yours.',
        'Accept it logged out, as the invited address, choosing a password.');
    END IF;
    -- a new account, unverified: it logs in once the mailbox is proven
    v_user_id := um_internal.insert_user(v_inv.email, p_name, true, NULL, NULL, NULL, NULL);
    UPDATE um.users u SET password_hash = um_internal.hash_password(p_password), password_changed_at = now()
     WHERE u.id = v_user_id;
  END IF;
  IF EXISTS (SELECT 1 FROM um.memberships m WHERE m.org_id = v_inv.org_id AND m.user_id = v_user_id) THEN
    RAISE EXCEPTION 'user % is already a member of organization %', v_user_id, v_inv.org_id
      USING ERRCODE = 'UM022', HINT = 'Nothing to accept; the invitation stays open until it expires or is revoked.';
  END IF;
  INSERT INTO um.memberships (org_id, user_id, role_id, invited_by)
  VALUES (v_inv.org_id, v_user_id, v_inv.role_id, v_inv.invited_by);
  IF v_inv.team_id IS NOT NULL THEN
    INSERT INTO um.team_members (org_id, team_id, user_id) VALUES (v_inv.org_id, v_inv.team_id, v_user_id);
  END IF;
  UPDATE um.invitations i SET state = 'accepted', accepted_by = v_user_id, decided_at = now(), token_hash = NULL
   WHERE i.id = v_inv.id;
  PERFORM um_internal.audit('invitation.accept', v_inv.org_id, 'invitation', v_inv.id, jsonb_build_object('user_id', v_user_id));
  RETURN v_user_id;
END
$$;
COMMENT ON FUNCTION um_internal.do_accept_invitation(text, text, text) IS
  'body of um_accept_invitation: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_accept_invitation (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_revoke_invitation(p_invitation_id bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_inv um.invitations;
BEGIN
  SELECT * INTO v_inv FROM um.invitations i WHERE i.id = p_invitation_id;
  PERFORM um_internal.authorize('invitation.revoke', format('revoke invitation %s', p_invitation_id),
                       'member:invite', v_inv.org_id, 'invitation', p_invitation_id);
  SELECT * INTO v_inv FROM um.invitations i WHERE i.id = p_invitation_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'invitation % does not exist', p_invitation_id
      USING ERRCODE = 'UM034', HINT = 'See the open invitations in um.invitations.';
  END IF;
  IF v_inv.state NOT IN ('pending', 'requested') THEN
    RAISE EXCEPTION 'invitation % is no longer open', p_invitation_id
      USING ERRCODE = 'UM053', DETAIL = format('It is %s.', v_inv.state), HINT = 'Nothing to revoke.';
  END IF;
  UPDATE um.invitations i SET state = 'revoked', decided_at = now(), token_hash = NULL WHERE i.id = p_invitation_id;
  PERFORM um_internal.audit('invitation.revoke', v_inv.org_id, 'invitation', p_invitation_id, '{}');
END
$$;
COMMENT ON FUNCTION um_internal.do_revoke_invitation(bigint) IS
  'body of um_revoke_invitation: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_revoke_invitation (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_expire_invitations()
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_n integer;
BEGIN
  PERFORM um_internal.authorize('invitation.expire', 'expire invitations', NULL, NULL, 'invitation', NULL);
  IF @extschema@.um_current_user_id() IS NOT NULL THEN
    PERFORM um_internal.deny('invitation.expire', NULL, 'invitation', NULL, 'UM070', 'permission denied to expire invitations',
      'Housekeeping across organizations is for um administrators.', 'Run it from a scheduled job as a um administrator.');
  END IF;
  UPDATE um.invitations i SET state = 'expired', decided_at = now(), token_hash = NULL
   WHERE (i.state = 'pending' AND i.expires_at <= now())
      OR (i.state = 'requested' AND i.created_at <= now() - interval '30 days');   -- unanswered requests
  GET DIAGNOSTICS v_n = ROW_COUNT;
  IF v_n > 0 THEN
    PERFORM um_internal.audit('invitation.expire', NULL, 'invitation', NULL, jsonb_build_object('count', v_n));
  END IF;
  RETURN v_n;
END
$$;
COMMENT ON FUNCTION um_internal.do_expire_invitations() IS
  'body of um_expire_invitations: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_expire_invitations (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_delete_user(p_user_id bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM um_internal.authorize_user('user.delete', format('delete user %s', p_user_id), 'user:delete', p_user_id);
  PERFORM um_internal.erase_user(p_user_id, 'user.delete');
END
$$;
COMMENT ON FUNCTION um_internal.do_delete_user(bigint) IS
  'body of um_delete_user: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_delete_user (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_delete_my_account()
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um_internal.require_actor('Call um_begin(token) first: an account is deleted by its own user.');
BEGIN
  IF v_actor IS DISTINCT FROM @extschema@.um_real_user_id() THEN
    PERFORM um_internal.deny('user.delete_self', NULL, 'user', v_actor, 'UM071',
      'cannot delete an account while impersonating it', NULL, 'Call um_end_impersonation() first.');
  END IF;
  PERFORM um_internal.erase_user(v_actor, 'user.delete_self');
END
$$;
COMMENT ON FUNCTION um_internal.do_delete_my_account() IS
  'body of um_delete_my_account: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_delete_my_account (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_logout_all(p_user_id bigint)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := @extschema@.um_current_user_id();
  v_real bigint := @extschema@.um_real_user_id();
  v_n integer;
BEGIN
  IF v_actor IS NULL THEN
    PERFORM um_internal.authorize('user.logout_all', format('end the sessions of user %s', p_user_id),
                         NULL, NULL, 'user', p_user_id);
    PERFORM um_internal.require_user(p_user_id);
  ELSIF v_actor <> v_real THEN
    PERFORM um_internal.deny('user.logout_all', NULL, 'user', p_user_id, 'UM070',
      'permission denied to end sessions while impersonating',
      NULL, 'Call um_end_impersonation() first.');
  ELSIF v_actor <> p_user_id
        AND (NOT EXISTS (SELECT 1 FROM um.memberships m
                          WHERE m.user_id = p_user_id AND @extschema@.um_has_permission('user:suspend', m.org_id))
             -- sessions are the whole account's: a Root anywhere is ended only by a Root there
             OR EXISTS (SELECT 1 FROM um.memberships m
                         WHERE m.user_id = p_user_id AND um_internal.is_root(m.org_id, p_user_id)
                           AND NOT um_internal.is_root(m.org_id, v_actor))) THEN
    PERFORM um_internal.deny('user.logout_all', NULL, 'user', p_user_id, 'UM070',
      'permission denied to end the sessions of user ' || p_user_id,
      'Only the user, or someone holding user:suspend in an organization of theirs (a Root''s only by a Root of each organization where they are Root), may.',
      'Ask an Admin of the user''s organization.');
  END IF;
  UPDATE um.sessions s SET revoked_at = now(), revoked_reason = 'ended by a logout of all sessions'
   WHERE s.user_id = p_user_id AND s.revoked_at IS NULL AND s.expires_at > now();
  GET DIAGNOSTICS v_n = ROW_COUNT;
  PERFORM um_internal.audit('user.logout_all', NULL, 'user', p_user_id, jsonb_build_object('sessions', v_n));
  RETURN v_n;
END
$$;
COMMENT ON FUNCTION um_internal.do_logout_all(bigint) IS
  'body of um_logout_all: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_logout_all (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_export_users(p_org_id bigint)
RETURNS TABLE (user_id bigint, email text, name text, user_status text, allow_login boolean,
               email_verified boolean, org_role text, membership_status text, member_since timestamptz,
               teams text, team_roles text, scope_roles text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM um_internal.authorize('organization.export_users', format('export the users of organization %s', p_org_id),
                       'user:read', p_org_id, 'organization', p_org_id);
  PERFORM um_internal.audit('organization.export_users', p_org_id, 'organization', p_org_id, '{}');
  RETURN QUERY
  SELECT u.id, u.email, u.name, u.status, u.allow_login, u.email_verified_at IS NOT NULL,
         r.name, m.status, m.created_at,
         (SELECT string_agg(t.name || CASE WHEN tm.is_owner THEN ' (owner)' ELSE '' END, '; ' ORDER BY t.name)
            FROM um.team_members tm JOIN um.teams t ON t.id = tm.team_id
           WHERE tm.org_id = m.org_id AND tm.user_id = u.id),
         (SELECT string_agg(t.name || ': ' || tr.name, '; ' ORDER BY t.name, tr.name)
            FROM um.team_member_roles tmr JOIN um.teams t ON t.id = tmr.team_id JOIN um.roles tr ON tr.id = tmr.role_id
           WHERE tmr.org_id = m.org_id AND tmr.user_id = u.id),
         (SELECT string_agg(gr.name || ' on ' || coalesce(s.kind || ' ' || s.name, 'every ' || g.scope_kind, 'the organization'),
                            '; ' ORDER BY gr.name, s.name)
            FROM um.grants g JOIN um.roles gr ON gr.id = g.role_id LEFT JOIN um.scopes s ON s.id = g.scope_id
           WHERE g.org_id = m.org_id AND g.user_id = u.id)
    FROM um.memberships m JOIN um.users u ON u.id = m.user_id JOIN um.roles r ON r.id = m.role_id
   WHERE m.org_id = p_org_id
   ORDER BY u.id;
END
$$;
COMMENT ON FUNCTION um_internal.do_export_users(bigint) IS
  'body of um_export_users: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_export_users (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_export_users_json(p_org_id bigint)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v jsonb;
BEGIN
  PERFORM um_internal.authorize('organization.export_users', format('export the users of organization %s', p_org_id),
                       'user:read', p_org_id, 'organization', p_org_id);
  SELECT jsonb_build_object(
           'organization', jsonb_build_object('id', o.id, 'slug', o.slug, 'name', o.name),
           'exported_at', now(),
           'users', coalesce((
             SELECT jsonb_agg(jsonb_build_object(
                      'id', u.id, 'email', u.email, 'name', u.name, 'status', u.status,
                      'allow_login', u.allow_login, 'email_verified', u.email_verified_at IS NOT NULL,
                      'timezone', u.timezone, 'locale', u.locale,
                      'role', r.name, 'membership_status', m.status, 'member_since', m.created_at,
                      'teams', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                                  'team', t.name, 'owner', tm.is_owner,
                                  'roles', (SELECT coalesce(jsonb_agg(tr.name ORDER BY tr.name), '[]')
                                              FROM um.team_member_roles tmr JOIN um.roles tr ON tr.id = tmr.role_id
                                             WHERE tmr.team_id = tm.team_id AND tmr.user_id = u.id)) ORDER BY t.name), '[]')
                                  FROM um.team_members tm JOIN um.teams t ON t.id = tm.team_id
                                 WHERE tm.org_id = m.org_id AND tm.user_id = u.id),
                      'grants', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                                   'role', gr.name, 'scope_id', g.scope_id,
                                   'scope', coalesce(s.kind || ' ' || s.name, 'every ' || g.scope_kind, 'the organization'))
                                   ORDER BY g.id), '[]')
                                   FROM um.grants g JOIN um.roles gr ON gr.id = g.role_id LEFT JOIN um.scopes s ON s.id = g.scope_id
                                  WHERE g.org_id = m.org_id AND g.user_id = u.id))
                    ORDER BY u.id)
               FROM um.memberships m JOIN um.users u ON u.id = m.user_id JOIN um.roles r ON r.id = m.role_id
              WHERE m.org_id = o.id), '[]'))
    INTO v
    FROM um.organizations o WHERE o.id = p_org_id;
  PERFORM um_internal.audit('organization.export_users', p_org_id, 'organization', p_org_id, jsonb_build_object('format', 'json'));
  RETURN v;
END
$$;
COMMENT ON FUNCTION um_internal.do_export_users_json(bigint) IS
  'body of um_export_users_json: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_export_users_json (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_export_my_data()
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um_internal.require_actor('Call um_begin(token) first: users export their own data.');
  v jsonb;
BEGIN
  IF v_actor IS DISTINCT FROM @extschema@.um_real_user_id() THEN
    PERFORM um_internal.deny('user.export_self', NULL, 'user', v_actor, 'UM071',
      'cannot export a user''s data while impersonating them', NULL, 'Call um_end_impersonation() first.');
  END IF;
  SELECT jsonb_build_object(
           'exported_at', now(),
           'profile', jsonb_build_object('id', u.id, 'email', u.email, 'name', u.name, 'timezone', u.timezone,
                                         'locale', u.locale, 'mobile', u.mobile, 'allow_login', u.allow_login,
                                         'status', u.status, 'email_verified_at', u.email_verified_at,
                                         'password_changed_at', u.password_changed_at,
                                         'attributes', u.attributes, 'created_at', u.created_at),
           'memberships', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                             'org_id', o.id, 'organization', o.name, 'role', r.name, 'status', m.status,
                             'member_since', m.created_at) ORDER BY o.id), '[]')
                             FROM um.memberships m JOIN um.organizations o ON o.id = m.org_id JOIN um.roles r ON r.id = m.role_id
                            WHERE m.user_id = u.id),
           'teams', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                       'org_id', t.org_id, 'team', t.name, 'owner', tm.is_owner, 'added_at', tm.added_at,
                       'roles', (SELECT coalesce(jsonb_agg(tr.name ORDER BY tr.name), '[]')
                                   FROM um.team_member_roles tmr JOIN um.roles tr ON tr.id = tmr.role_id
                                  WHERE tmr.team_id = tm.team_id AND tmr.user_id = u.id)) ORDER BY t.id), '[]')
                       FROM um.team_members tm JOIN um.teams t ON t.id = tm.team_id WHERE tm.user_id = u.id),
           'grants', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                        'org_id', g.org_id, 'role', gr.name, 'scope_id', g.scope_id, 'scope_kind', g.scope_kind,
                        'granted_at', g.created_at) ORDER BY g.id), '[]')
                        FROM um.grants g JOIN um.roles gr ON gr.id = g.role_id WHERE g.user_id = u.id),
           'sessions', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                          'created_at', s.created_at, 'expires_at', s.expires_at, 'method', s.method,
                          'ended_at', s.revoked_at) ORDER BY s.id), '[]')
                          FROM um.sessions s WHERE s.user_id = u.id),
           'password_reset', (SELECT jsonb_build_object('requested_at', r.created_at, 'expires_at', r.expires_at)
                                FROM um.password_resets r WHERE r.user_id = u.id),
           'identities', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                            'provider', p.name, 'subject', i.subject, 'linked_at', i.created_at) ORDER BY p.id), '[]')
                            FROM um.user_identities i JOIN um.identity_providers p ON p.id = i.provider_id
                           WHERE i.user_id = u.id),
           'audit_events', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                              'at', a.at, 'action', a.action, 'outcome', a.outcome, 'org_id', a.org_id,
                              'target_type', a.target_type, 'target_id', a.target_id,
                              'by_me', a.actor_user_id = u.id) ORDER BY a.id), '[]')
                              FROM um.audit_events a
                             WHERE a.actor_user_id = u.id OR (a.target_type = 'user' AND a.target_id = u.id)))
    INTO v
    FROM um.users u WHERE u.id = v_actor;
  PERFORM um_internal.audit('user.export_self', NULL, 'user', v_actor, '{}');
  RETURN v;
END
$$;
COMMENT ON FUNCTION um_internal.do_export_my_data() IS
  'body of um_export_my_data: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_export_my_data (EXECUTE held by nobody)';

REVOKE EXECUTE ON FUNCTION
  um_internal.do_login(text, text),
  um_internal.do_change_password(text, text, text),
  um_internal.do_set_password(bigint, text, boolean),
  um_internal.do_logout(text),
  um_internal.do_impersonate(bigint),
  um_internal.authorize(text, text, text, bigint, text, bigint),
  um_internal.authorize_user(text, text, text, bigint),
  um_internal.do_create_user(text, text, boolean, text, text, text, jsonb),
  um_internal.do_create_user(bigint, text, text, text, boolean, text, text, text),
  um_internal.do_sign_up(text, text, text, text, text),
  um_internal.do_resend_verification(text),
  um_internal.do_verify_email(text, text),
  um_internal.do_mark_verified(bigint),
  um_internal.do_disable_login(bigint),
  um_internal.do_enable_login(bigint),
  um_internal.do_suspend_user(bigint, bigint),
  um_internal.do_reactivate_user(bigint, bigint),
  um_internal.do_create_organization(text, text, bigint),
  um_internal.do_add_member(bigint, bigint, text),
  um_internal.do_set_org_role(bigint, bigint, text),
  um_internal.do_transfer_org_ownership(bigint, bigint, text),
  um_internal.do_remove_member(bigint, bigint),
  um_internal.do_set_org_setting(bigint, text, jsonb),
  um_internal.do_add_identity_provider(bigint, text, text, text),
  um_internal.do_link_identity(bigint, text, text, bigint),
  um_internal.authorize_team(text, text, bigint, bigint),
  um_internal.do_create_team(bigint, text, text, bigint),
  um_internal.do_rename_team(bigint, text),
  um_internal.do_delete_team(bigint),
  um_internal.do_add_team_member(bigint, bigint, text[]),
  um_internal.do_remove_team_member(bigint, bigint),
  um_internal.do_grant_team_role(bigint, bigint, text),
  um_internal.do_revoke_team_role(bigint, bigint, text),
  um_internal.do_transfer_team_ownership(bigint, bigint),
  um_internal.do_create_role(bigint, text, text[], text),
  um_internal.do_delete_role(bigint),
  um_internal.authorize_role_edit(text, bigint, text),
  um_internal.do_grant_permission(bigint, text),
  um_internal.do_revoke_permission(bigint, text),
  um_internal.do_grant_scope_role(bigint, text, bigint, bigint),
  um_internal.do_revoke_scope_role(bigint, text, bigint, bigint),
  um_internal.do_register_permission(text, text),
  um_internal.do_invite(bigint, text, text, bigint, interval),
  um_internal.do_request_invitation(text, text),
  um_internal.do_accept_invitation(text, text, text),
  um_internal.do_revoke_invitation(bigint),
  um_internal.do_expire_invitations(),
  um_internal.do_delete_user(bigint),
  um_internal.do_delete_my_account(),
  um_internal.do_logout_all(bigint),
  um_internal.do_export_users(bigint),
  um_internal.do_export_users_json(bigint),
  um_internal.do_export_my_data()
FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- Invalidation with the grain of the data (issue 15): a change drops the
-- cache entries of the users and organizations it touches, addressed to
-- 1,024 buckets; only the permission catalog and TRUNCATE empty whole
-- caches.  The statement triggers and the replica-mode row triggers give
-- way to one row trigger (with the table's cache key) and one TRUNCATE
-- trigger, both enabled always.
DO $$
DECLARE
  t record;
BEGIN
  FOR t IN SELECT s.relname FROM um.state_tables s WHERE s.evaluator_input ORDER BY s.relname LOOP
    EXECUTE format('DROP TRIGGER cache_invalidate ON um.%I', t.relname);
    EXECUTE format('DROP TRIGGER cache_invalidate_replica ON um.%I', t.relname);
  END LOOP;
END
$$;
COMMENT ON TABLE um.cache_sentinel IS 'never holds rows: invalidating it tells every backend to empty its permission cache';
-- 1,024 buckets (UM_CACHE_BUCKETS in src/cache.c): composite types, the
-- lightest relations, with no storage.
DO $$
BEGIN
  FOR b IN 0..1023 LOOP
    EXECUTE format('CREATE TYPE um.%I AS ()', 'cache_bucket_' || b);
    EXECUTE format('COMMENT ON TYPE um.%I IS %L', 'cache_bucket_' || b,
                   'never holds anything: invalidating it tells every backend to drop the cache entries of the users and organizations of bucket ' || b);
    EXECUTE format('REVOKE ALL ON TYPE um.%I FROM PUBLIC', 'cache_bucket_' || b);
  END LOOP;
END
$$;

COMMENT ON FUNCTION um_internal.cache_invalidate() IS 'trigger: every backend drops the permission cache entries of the users and organizations a changed row names (its arguments: the table''s cache_key), or its whole cache (no arguments, or TRUNCATE), once the change is visible to it';

-- Row triggers, ENABLE ALWAYS: they also fire under
-- session_replication_role = replica, so changes a logical replication
-- subscription applies reach the subscriber's caches.  (Invalidations of
-- one relation within a command are merged, so a row costs little.)
-- TRUNCATE has no rows: a statement trigger empties every cache.  The
-- tables are those um.state_tables marks evaluator_input, the arguments
-- their cache_key; for um.users only the columns an answer depends on, so
-- that logins (which count failures and reset the count) never drop
-- anybody's entries.
DO $$
DECLARE
  t record;
BEGIN
  FOR t IN SELECT s.relname, s.invalidating_columns, s.cache_key FROM um.state_tables s WHERE s.evaluator_input ORDER BY s.relname LOOP
    EXECUTE format('CREATE TRIGGER cache_invalidate AFTER INSERT OR UPDATE%s OR DELETE ON um.%I '
                   'FOR EACH ROW EXECUTE FUNCTION um_internal.cache_invalidate(%s)',
                   CASE WHEN t.invalidating_columns IS NOT NULL
                        THEN ' OF ' || (SELECT string_agg(quote_ident(c), ', ') FROM unnest(t.invalidating_columns) c) END,
                   t.relname, coalesce(quote_literal(t.cache_key), ''));
    EXECUTE format('CREATE TRIGGER cache_invalidate_truncate AFTER TRUNCATE ON um.%I '
                   'FOR EACH STATEMENT EXECUTE FUNCTION um_internal.cache_invalidate()', t.relname);
    EXECUTE format('COMMENT ON TRIGGER cache_invalidate ON um.%I IS %L', t.relname,
                   format('every backend drops the permission cache entries %s once %s is visible to it (row trigger, enabled always)',
                          CASE WHEN t.cache_key IS NULL THEN 'it holds'
                               WHEN t.cache_key LIKE '%|%' THEN 'of the user the row names, or else of its organization'
                               WHEN t.cache_key LIKE 'user:%' THEN 'of the user the row names'
                               ELSE 'of the organization the row names' END,
                          CASE WHEN t.invalidating_columns IS NULL THEN 'the change'
                               ELSE 'a change of ' || array_to_string(t.invalidating_columns[1:cardinality(t.invalidating_columns) - 1], ', ')
                                    || ' or ' || t.invalidating_columns[cardinality(t.invalidating_columns)] END));
    EXECUTE format('COMMENT ON TRIGGER cache_invalidate_truncate ON um.%I IS %L', t.relname,
                   'every backend empties its permission cache once the TRUNCATE is visible to it (statement trigger, enabled always)');
    EXECUTE format('ALTER TABLE um.%I ENABLE ALWAYS TRIGGER cache_invalidate', t.relname);
    EXECUTE format('ALTER TABLE um.%I ENABLE ALWAYS TRIGGER cache_invalidate_truncate', t.relname);
  END LOOP;
END
$$;

-- um_check_integrity() checks the new triggers and their keys
CREATE OR REPLACE FUNCTION @extschema@.um_check_integrity()
RETURNS TABLE (invariant text, object text, detail text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  -- an organization with members keeps a Root
  SELECT 'organization has a Root', format('organization %s (%s)', o.id, o.slug),
         format('%s members, none of them Root', (SELECT count(*) FROM um.memberships m WHERE m.org_id = o.id))
    FROM um.organizations o
   WHERE EXISTS (SELECT 1 FROM um.memberships m WHERE m.org_id = o.id)
     AND NOT EXISTS (SELECT 1 FROM um.memberships m JOIN um.roles r ON r.id = m.role_id
                      WHERE m.org_id = o.id AND r.builtin = 'root')
  UNION ALL
  -- ... and a Root who can log in
  SELECT 'organization has a Root who can log in', format('organization %s (%s)', o.id, o.slug),
         'every Root is suspended (in the organization or everywhere) or may not log in'
    FROM um.organizations o
   WHERE EXISTS (SELECT 1 FROM um.memberships m JOIN um.roles r ON r.id = m.role_id
                  WHERE m.org_id = o.id AND r.builtin = 'root')
     AND NOT um_internal.has_usable_root(o.id)
  UNION ALL
  -- every organization has each built-in role
  SELECT 'organization has its built-in roles', format('organization %s (%s)', o.id, o.slug),
         'missing: ' || string_agg(b.key, ', ' ORDER BY b.position)
    FROM um.organizations o CROSS JOIN um.builtin_roles b
   WHERE NOT EXISTS (SELECT 1 FROM um.roles r WHERE r.org_id = o.id AND r.builtin = b.key)
   GROUP BY o.id, o.slug
  UNION ALL
  -- assignments point at roles, scopes, teams and members of their own organization
  SELECT 'membership role in the same organization', format('membership %s', m.id),
         format('role %s belongs to %s, the membership to organization %s', m.role_id,
                coalesce((SELECT 'organization ' || r.org_id FROM um.roles r WHERE r.id = m.role_id), 'no organization (missing)'), m.org_id)
    FROM um.memberships m
   WHERE NOT EXISTS (SELECT 1 FROM um.roles r WHERE r.id = m.role_id AND r.org_id = m.org_id)
  UNION ALL
  SELECT 'grant targets in the same organization', format('grant %s', g.id),
         concat_ws('; ',
           CASE WHEN NOT EXISTS (SELECT 1 FROM um.roles r WHERE r.id = g.role_id AND r.org_id = g.org_id)
                THEN format('role %s is missing or of another organization', g.role_id) END,
           CASE WHEN g.scope_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM um.scopes s WHERE s.id = g.scope_id AND s.org_id = g.org_id)
                THEN format('scope node %s is missing or of another organization', g.scope_id) END,
           CASE WHEN g.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM um.memberships m WHERE m.user_id = g.user_id AND m.org_id = g.org_id)
                THEN format('user %s is not a member', g.user_id) END,
           CASE WHEN g.team_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM um.teams t WHERE t.id = g.team_id AND t.org_id = g.org_id)
                THEN format('team %s is missing or of another organization', g.team_id) END)
    FROM um.grants g
   WHERE NOT EXISTS (SELECT 1 FROM um.roles r WHERE r.id = g.role_id AND r.org_id = g.org_id)
      OR (g.scope_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM um.scopes s WHERE s.id = g.scope_id AND s.org_id = g.org_id))
      OR (g.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM um.memberships m WHERE m.user_id = g.user_id AND m.org_id = g.org_id))
      OR (g.team_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM um.teams t WHERE t.id = g.team_id AND t.org_id = g.org_id))
  UNION ALL
  SELECT 'role permission of an existing role', format('role %s', rp.role_id),
         format('the role is missing from organization %s; %s permission rows remain', rp.org_id, count(*))
    FROM um.role_permissions rp
   WHERE NOT EXISTS (SELECT 1 FROM um.roles r WHERE r.id = rp.role_id AND r.org_id = rp.org_id)
   GROUP BY rp.org_id, rp.role_id
  UNION ALL
  SELECT 'role inclusion in the same organization', format('role %s', ri.role_id),
         format('includes role %s; one of them is missing or of another organization than %s', ri.included_role_id, ri.org_id)
    FROM um.role_inclusions ri
   WHERE NOT EXISTS (SELECT 1 FROM um.roles r WHERE r.id = ri.role_id AND r.org_id = ri.org_id)
      OR NOT EXISTS (SELECT 1 FROM um.roles r WHERE r.id = ri.included_role_id AND r.org_id = ri.org_id)
  UNION ALL
  SELECT 'membership of an existing user', format('membership %s', m.id),
         format('user %s is missing', m.user_id)
    FROM um.memberships m
   WHERE NOT EXISTS (SELECT 1 FROM um.users u WHERE u.id = m.user_id)
  UNION ALL
  SELECT 'invitation targets in the same organization', format('invitation %s', i.id),
         concat_ws('; ',
           CASE WHEN NOT EXISTS (SELECT 1 FROM um.roles r WHERE r.id = i.role_id AND r.org_id = i.org_id)
                THEN format('role %s is missing or of another organization', i.role_id) END,
           CASE WHEN i.team_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM um.teams t WHERE t.id = i.team_id AND t.org_id = i.org_id)
                THEN format('team %s is missing or of another organization', i.team_id) END)
    FROM um.invitations i
   WHERE NOT EXISTS (SELECT 1 FROM um.roles r WHERE r.id = i.role_id AND r.org_id = i.org_id)
      OR (i.team_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM um.teams t WHERE t.id = i.team_id AND t.org_id = i.org_id))
  UNION ALL
  SELECT 'identity link to a provider of the organization and an existing user',
         format('provider %s, subject %s', ui.provider_id, ui.subject),
         concat_ws('; ',
           CASE WHEN NOT EXISTS (SELECT 1 FROM um.identity_providers p WHERE p.id = ui.provider_id AND p.org_id = ui.org_id)
                THEN format('provider %s is missing or of another organization', ui.provider_id) END,
           CASE WHEN NOT EXISTS (SELECT 1 FROM um.users u WHERE u.id = ui.user_id)
                THEN format('user %s is missing', ui.user_id) END)
    FROM um.user_identities ui
   WHERE NOT EXISTS (SELECT 1 FROM um.identity_providers p WHERE p.id = ui.provider_id AND p.org_id = ui.org_id)
      OR NOT EXISTS (SELECT 1 FROM um.users u WHERE u.id = ui.user_id)
  UNION ALL
  SELECT 'team role in the same organization', format('team %s, user %s', tr.team_id, tr.user_id),
         format('role %s is missing or of another organization', tr.role_id)
    FROM um.team_member_roles tr
   WHERE NOT EXISTS (SELECT 1 FROM um.roles r WHERE r.id = tr.role_id AND r.org_id = tr.org_id)
  UNION ALL
  -- teams: members are members of the organization; a team with members has one owner
  SELECT 'team members belong to the organization', format('team %s', tm.team_id),
         format('user %s is not a member of organization %s', tm.user_id, tm.org_id)
    FROM um.team_members tm
   WHERE NOT EXISTS (SELECT 1 FROM um.memberships m WHERE m.org_id = tm.org_id AND m.user_id = tm.user_id)
  UNION ALL
  SELECT 'team has an owner', format('team %s (%s)', t.id, t.name),
         format('%s members, %s owners', count(tm.user_id), count(tm.user_id) FILTER (WHERE tm.is_owner))
    FROM um.teams t JOIN um.team_members tm ON tm.team_id = t.id
   GROUP BY t.id, t.name
  HAVING count(tm.user_id) FILTER (WHERE tm.is_owner) <> 1
  UNION ALL
  -- scope trees and role inclusions have no cycles, and stay in their organization
  SELECT 'scope tree has no cycle', format('scope node %s', c.id), 'it is its own ancestor'
    FROM (WITH RECURSIVE walk(start, node, depth) AS (
            SELECT s.id, s.parent_id, 1 FROM um.scopes s WHERE s.parent_id IS NOT NULL
            UNION ALL
            SELECT w.start, s.parent_id, w.depth + 1 FROM walk w JOIN um.scopes s ON s.id = w.node
             WHERE s.parent_id IS NOT NULL AND w.node <> w.start AND w.depth < 10000)
          SELECT DISTINCT start AS id FROM walk WHERE node = start) c
  UNION ALL
  SELECT 'scope parent in the same organization', format('scope node %s', s.id),
         format('parent %s is missing or of another organization', s.parent_id)
    FROM um.scopes s
   WHERE s.parent_id IS NOT NULL
     AND NOT EXISTS (SELECT 1 FROM um.scopes p WHERE p.id = s.parent_id AND p.org_id = s.org_id)
  UNION ALL
  SELECT 'role inclusions have no cycle', format('role %s', c.id), 'it includes itself'
    FROM (WITH RECURSIVE walk(start, node, depth) AS (
            SELECT ri.role_id, ri.included_role_id, 1 FROM um.role_inclusions ri
            UNION ALL
            SELECT w.start, ri.included_role_id, w.depth + 1 FROM walk w JOIN um.role_inclusions ri ON ri.role_id = w.node
             WHERE w.node <> w.start AND w.depth < 10000)
          SELECT DISTINCT start AS id FROM walk WHERE node = start) c
  UNION ALL
  -- users: a suspension has its time
  SELECT 'suspension is recorded', format('user %s', u.id), 'status and suspended_at disagree'
    FROM um.users u
   WHERE (u.status = 'suspended') <> (u.suspended_at IS NOT NULL)
  UNION ALL
  -- sessions belong to users who may log in (um_begin refuses the others; they should be ended)
  SELECT 'sessions of blocked users are ended', format('session %s', s.id),
         format('user %s is %s, and the session is still open', s.user_id,
                CASE WHEN u.id IS NULL THEN 'missing' WHEN u.status <> 'active' THEN 'suspended' ELSE 'not allowed to log in' END)
    FROM um.sessions s LEFT JOIN um.users u ON u.id = s.user_id
   WHERE s.revoked_at IS NULL AND s.expires_at > now()
     AND (u.id IS NULL OR u.status <> 'active' OR NOT u.allow_login)
  UNION ALL
  -- um's tables have what um.state_tables says: every one registered, row
  -- level security forced on those holding tenant data or secrets, the
  -- permission cache told of every change to what its answers depend on
  SELECT 'um table is registered', format('table um.%s', c.relname), 'not in um.state_tables: nothing protects or dumps it'
    FROM pg_catalog.pg_class c
   WHERE c.relnamespace = 'um'::regnamespace AND c.relkind IN ('r', 'p')
     AND NOT EXISTS (SELECT 1 FROM um.state_tables s WHERE s.relname = c.relname)
  UNION ALL
  SELECT 'um table keeps forced row-level security', format('table um.%s', s.relname),
         CASE WHEN c.oid IS NULL THEN 'the table is missing' ELSE 'row-level security is off or not forced' END
    FROM um.state_tables s
    LEFT JOIN pg_catalog.pg_class c ON c.relname = s.relname AND c.relnamespace = 'um'::regnamespace
   WHERE s.access <> 'catalog' AND NOT coalesce(c.relrowsecurity AND c.relforcerowsecurity, false)
  UNION ALL
  SELECT 'permission cache learns of every change', format('table um.%s', s.relname),
         format('trigger %s is missing, not enabled ALWAYS or not %s', x.tgname, x.what)
    FROM um.state_tables s
   CROSS JOIN (VALUES ('cache_invalidate', 'a row trigger with the table''s cache_key', 'R'),
                      ('cache_invalidate_truncate', 'a TRUNCATE trigger', 'T')) AS x(tgname, what, kind)
   WHERE s.evaluator_input
     AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
                      WHERE c.relnamespace = 'um'::regnamespace AND c.relname = s.relname
                        AND t.tgname = x.tgname AND t.tgenabled = 'A' AND (t.tgtype & 66) = 0
                        AND t.tgfoid = 'um_internal.cache_invalidate()'::pg_catalog.regprocedure
                        AND CASE x.kind
                              WHEN 'R' THEN (t.tgtype & 1) = 1 AND (t.tgtype & 28) = 28
                                            AND t.tgargs = CASE WHEN s.cache_key IS NULL THEN ''::bytea
                                                                ELSE pg_catalog.convert_to(s.cache_key, 'UTF8') || '\x00'::bytea END
                              ELSE (t.tgtype & 32) = 32 END)
  ORDER BY 1, 2
$$;
COMMENT ON FUNCTION @extschema@.um_check_integrity() IS
  'every invariant um keeps (Roots, built-in roles, same-organization references, existing users, team owners, no cycles, suspensions, sessions, the protection and cache triggers of um''s own tables), checked on the tables as they are; one row per violation';
REVOKE EXECUTE ON FUNCTION @extschema@.um_check_integrity() FROM PUBLIC;

-- the counters of um.cache_activity under the finer invalidation
COMMENT ON COLUMN um.cache_activity.resets IS 'times the cache was emptied whole and started afresh (a change to the permission catalog, a TRUNCATE, um_cache_reset); other changes drop only the entries they touch';
COMMENT ON COLUMN um.cache_activity.evictions IS 'entries dropped for growing past um.cache_memory_limit, least recently used first';

-- Cold checks with fewer queries (issue 15): the cache's user load also
-- says in which organizations the user holds grants or is in a team, so a
-- member who holds only their organization role needs no query of their own.
CREATE INDEX team_members_user_id_idx ON um.team_members (user_id);
CREATE INDEX grants_user_id_idx ON um.grants (user_id) WHERE user_id IS NOT NULL;

-- Lifecycle calls near the cost of their writes (issue 15).  The SQL
-- helpers a lifecycle call runs at every call (validators in the CHECK
-- constraints um_internal.lock_organization's UPDATE evaluates, the Root tests, the
-- audit append) become plpgsql, whose plans last the session: a SQL function
-- with a pinned search_path is never inlined and was planned at every call.
-- The cascading-key guard moves to C, which reads the catalogs again only
-- after an invalidation that may have changed its answer.
CREATE OR REPLACE FUNCTION um_internal.email_is_valid(email text)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN octet_length(email) <= 254
     AND octet_length(split_part(email, '@', 1)) <= 64
     AND email ~ '^[A-Za-z0-9!#$%&''*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&''*+/=?^_`{|}~-]+)*@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+([A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59})$';
END
$$;

CREATE OR REPLACE FUNCTION um_internal.display_name_is_valid(name text, max_len integer DEFAULT 200)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN name = btrim(name, E' \t\r\n') AND length(name) BETWEEN 1 AND max_len AND name !~ '[[:cntrl:]]';
END
$$;

CREATE OR REPLACE FUNCTION um_internal.slug_is_valid(slug text)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN slug ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$';
END
$$;

CREATE OR REPLACE FUNCTION um_internal.locale_is_valid(locale text)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN locale ~ '^[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?$';
END
$$;

CREATE OR REPLACE FUNCTION um_internal.mobile_is_valid(mobile text)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN mobile ~ '^\+[1-9][0-9]{6,14}$';
END
$$;

CREATE OR REPLACE FUNCTION um_internal.identifier_is_valid(ident text)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN ident ~ '^[a-z][a-z0-9_]{0,62}$';
END
$$;

CREATE OR REPLACE FUNCTION um_internal.has_usable_root(p_org_id bigint)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN EXISTS (SELECT 1 FROM um.memberships m JOIN um.roles r ON r.id = m.role_id JOIN um.users u ON u.id = m.user_id
                  WHERE m.org_id = p_org_id AND r.builtin = 'root' AND m.status = 'active'
                    AND u.status = 'active' AND u.allow_login);
END
$$;

CREATE OR REPLACE FUNCTION um_internal.audit(p_action text, p_org_id bigint, p_target_type text,
                         p_target_id bigint, p_details jsonb DEFAULT '{}',
                         p_outcome text DEFAULT 'ok')
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  INSERT INTO um.audit_events (action, outcome, org_id, target_type, target_id, details)
  VALUES (p_action, p_outcome, p_org_id, p_target_type, p_target_id, coalesce(p_details, '{}'));
END
$$;

CREATE OR REPLACE FUNCTION um_internal.is_root(p_org_id bigint, p_user_id bigint)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN EXISTS (SELECT 1 FROM um.memberships m JOIN um.roles r ON r.id = m.role_id
                  WHERE m.org_id = p_org_id AND m.user_id = p_user_id AND r.builtin = 'root');
END
$$;

CREATE OR REPLACE FUNCTION um_internal.assert_no_app_cascades()
RETURNS void
AS 'MODULE_PATHNAME', 'um_assert_no_app_cascades'
LANGUAGE C STABLE;

-- A sign-up's claim (issue 13): a first sign-up's secret sets the
-- password, as a repeated one's does (the mailbox's owner never verifies an
-- account whose password someone else chose), and redeeming a sign-up's
-- secret leaves behind what others attached to the account while its
-- address was unproven.  The claim stays in every token that replaces it.
ALTER TABLE um.verification_tokens ADD COLUMN claim boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN um.verification_tokens.sets_password IS
  'a claim: whoever redeems it proves the mailbox and chooses the password, so no password someone else set survives (um_resend_verification, every sign-up, an administrator''s new user)';
COMMENT ON COLUMN um.verification_tokens.claim IS
  'asked for by a sign-up: whoever redeems it gets the account without what others attached to it while its mailbox was unproven (memberships, teams, grants, identity links, mobile number, attributes); kept by every later token until the address is verified';
-- outstanding first sign-up tokens keep working as they were issued
DROP FUNCTION um_internal.new_verification(bigint, boolean);
CREATE FUNCTION um_internal.new_verification(p_user_id bigint, p_sets_password boolean, p_claim boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_token text := um_internal.generate_token();
  v_claim boolean;
BEGIN
  PERFORM um_internal.assert_no_app_cascades();
  IF @extschema@.um_current_user_id() IS NOT NULL THEN
    RAISE EXCEPTION 'a verification secret is only issued with nobody acting'
      USING ERRCODE = 'UM058',
            DETAIL = 'It proves control of the mailbox only if no logged-in user could have seen it.',
            HINT = 'Call it from the backend in a transaction where nobody is acting, and mail the result.';
  END IF;
  WITH gone AS (DELETE FROM um.verification_tokens t WHERE t.user_id = p_user_id RETURNING t.claim)   -- one live token per user
  SELECT coalesce(p_claim, false) OR coalesce(bool_or(gone.claim), false) INTO v_claim FROM gone;
  INSERT INTO um.verification_tokens (token_hash, user_id, expires_at, sets_password, claim)
  VALUES (um_internal.token_hash(v_token), p_user_id, now() + interval '48 hours', p_sets_password, v_claim);
  RETURN v_token;
END
$$;
COMMENT ON FUNCTION um_internal.new_verification(bigint, boolean, boolean) IS
  'internal: issues a verification token for the user (replacing any earlier one, and a claim stays a claim) and returns it; only with nobody acting (UM058), so no tenant user sees it';

CREATE FUNCTION um_internal.detach_unproven(p_user_id bigint)
RETURNS bigint[]
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_org bigint;
  v_team record;
  v_left bigint[] := '{}';
BEGIN
  -- an organization that owns the address's domain keeps what it attached
  FOR v_org IN SELECT m.org_id FROM um.memberships m WHERE m.user_id = p_user_id
                  AND NOT um_internal.org_owns_address(m.org_id, (SELECT u.email FROM um.users u WHERE u.id = p_user_id))
                ORDER BY m.org_id LOOP
    BEGIN
      FOR v_team IN
        SELECT tm.team_id,
               (SELECT o.user_id FROM um.team_members o
                 WHERE o.team_id = tm.team_id AND o.user_id <> p_user_id
                 ORDER BY o.added_at, o.user_id LIMIT 1) AS heir
          FROM um.team_members tm
         WHERE tm.org_id = v_org AND tm.user_id = p_user_id AND tm.is_owner
         ORDER BY tm.team_id
      LOOP
        IF v_team.heir IS NULL THEN
          DELETE FROM um.teams t WHERE t.id = v_team.team_id;
        ELSE
          UPDATE um.team_members tm SET is_owner = (tm.user_id = v_team.heir)
           WHERE tm.team_id = v_team.team_id AND tm.user_id IN (p_user_id, v_team.heir);
        END IF;
      END LOOP;
      DELETE FROM um.memberships m WHERE m.org_id = v_org AND m.user_id = p_user_id;
      PERFORM um_internal.audit('member.remove', v_org, 'user', p_user_id, '{"reason": "address claimed"}');
      v_left := v_left || v_org;
    EXCEPTION WHEN SQLSTATE 'UM044' THEN
      NULL;                                          -- its last usable Root stays
    END;
  END LOOP;
  DELETE FROM um.user_identities i WHERE i.user_id = p_user_id
     AND NOT um_internal.org_owns_address(i.org_id, (SELECT u.email FROM um.users u WHERE u.id = p_user_id));
  UPDATE um.users u SET mobile = NULL, attributes = '{}'
   WHERE u.id = p_user_id AND (u.mobile IS NOT NULL OR u.attributes <> '{}');
  RETURN v_left;
END
$$;
COMMENT ON FUNCTION um_internal.detach_unproven(bigint) IS
  'internal: at a sign-up''s claim, removes what others attached to the account while its address was unproven (memberships but a last Root and those of the organization owning the address''s domain, teams, grants, identity links, mobile, attributes); returns the organizations it left';

CREATE OR REPLACE FUNCTION um_internal.do_sign_up(p_email text, p_password text, p_name text, p_timezone text, p_locale text)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_hash text := um_internal.hash_password(p_password);     -- bad input is refused first,
  v_email text := btrim(p_email, E' \t\r\n');
  v_user um.users;
  v_tries integer := 0;
BEGIN
  -- ... every field of it, whether or not the address is registered
  PERFORM um_internal.assert_user_fields(v_email, p_name, coalesce(p_timezone, 'UTC'), coalesce(p_locale, 'en'), NULL, '{}');
  IF @extschema@.um_current_user_id() IS NOT NULL THEN
    PERFORM um_internal.new_verification(NULL, false);      -- UM058: secrets only with nobody acting
  END IF;
  -- Every answer is a secret for the backend to mail, so the caller never
  -- learns whether the address is registered.  Redeeming it
  -- (um_verify_email(token, password)) always sets the password that
  -- whoever holds the mailbox types:
  -- * a new address: a new unverified account (whoever registered may not
  --   own the address, so the registrant's own password counts only if the
  --   mailbox's owner types it again);
  -- * an unverified account: whoever made it never proved the mailbox; the
  --   secret claims it, and leaves behind what others attached to it
  --   (um_internal.detach_unproven); this password is not used;
  -- * a verified account: a secret that redeems nothing (whoever holds a
  --   sign-up's secret must never set the password of an account someone
  --   proved; its owner logs in, or resets the password);
  -- * a notification-only account: a secret that redeems nothing.
  -- Each branch draws a user id, so that the ids a tenant sees its own new
  -- users get tell nothing either; and a sign-up racing another for the
  -- same new address ends in the branch of the account the other made.
  LOOP
    SELECT * INTO v_user FROM um.users u WHERE lower(u.email) = lower(v_email);
    EXIT WHEN FOUND;
    BEGIN
      v_user.id := um_internal.insert_user(v_email, p_name, true, p_timezone, p_locale, NULL, NULL);
    EXCEPTION WHEN SQLSTATE 'UM020' THEN
      v_tries := v_tries + 1;
      IF v_tries > 1 THEN                            -- invisible to this snapshot (REPEATABLE READ)
        RAISE EXCEPTION 'could not serialize a sign-up with a concurrent one'
          USING ERRCODE = 'serialization_failure', HINT = 'Retry the transaction.';
      END IF;
      CONTINUE;                                       -- registered a moment ago
    END;
    UPDATE um.users u SET password_hash = v_hash, password_changed_at = now() WHERE u.id = v_user.id;
    PERFORM um_internal.audit('user.sign_up', NULL, 'user', v_user.id, '{}');
    RETURN um_internal.new_verification(v_user.id, true, true);
  END LOOP;
  PERFORM nextval(pg_get_serial_sequence('um.users', 'id'));
  IF NOT v_user.allow_login THEN
    PERFORM um_internal.audit('user.sign_up', NULL, 'user', v_user.id, '{"registered": true, "notification_only": true}');
    RETURN um_internal.generate_token();
  ELSIF v_user.email_verified_at IS NULL THEN
    PERFORM um_internal.audit('user.sign_up', NULL, 'user', v_user.id, '{"claim": true}');
    RETURN um_internal.new_verification(v_user.id, true, true);
  END IF;
  PERFORM um_internal.audit('user.sign_up', NULL, 'user', v_user.id, '{"registered": true}');
  RETURN um_internal.generate_token();
END
$$;
CREATE OR REPLACE FUNCTION um_internal.do_verify_email(p_token text, p_password text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_tok um.verification_tokens;
  v_hash text;
  v_left bigint[];
BEGIN
  PERFORM um_internal.assert_no_app_cascades();
  SELECT * INTO v_tok FROM um.verification_tokens t
   WHERE t.token_hash = um_internal.token_hash(coalesce(p_token, '')) AND t.expires_at > now()
     FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'the verification token is not valid'
      USING ERRCODE = 'UM053',
            DETAIL = 'It is unknown, was already used, or is more than 48 hours old.',
            HINT = 'If the address already has an account, log in; otherwise ask for a new verification email (um_resend_verification).';
  END IF;
  IF v_tok.sets_password AND p_password IS NULL THEN
    RAISE EXCEPTION 'choose a password to verify this address'
      USING ERRCODE = 'UM059',
            DETAIL = 'Whoever redeems this secret proves the mailbox and sets the account''s password; no password set before stays valid.',
            HINT = 'Ask for a new password and call um_verify_email(token, password).';
  END IF;
  IF p_password IS NOT NULL THEN
    v_hash := um_internal.hash_password(p_password);         -- bad input changes nothing
  END IF;
  DELETE FROM um.verification_tokens t WHERE t.token_hash = v_tok.token_hash;
  IF v_tok.claim THEN
    v_left := um_internal.detach_unproven(v_tok.user_id);
  END IF;
  UPDATE um.users u SET email_verified_at = coalesce(u.email_verified_at, now()) WHERE u.id = v_tok.user_id;
  IF v_hash IS NOT NULL THEN
    -- the mailbox's owner takes the account: every session ends (trigger)
    UPDATE um.users u SET password_hash = v_hash, password_changed_at = now(), must_change_password = false,
                          failed_login_count = 0, locked_until = NULL
     WHERE u.id = v_tok.user_id;
  END IF;
  PERFORM um_internal.audit('user.verify_email', NULL, 'user', v_tok.user_id,
                   jsonb_build_object('password_set', v_hash IS NOT NULL, 'claim', v_tok.claim,
                                      'left_org_ids', to_jsonb(v_left)));
  RETURN v_tok.user_id;
END
$$;
-- Sign-up answers the same for every address (a secret to mail, never
-- UM020), and refuses bad input before it looks the address up.
-- um_internal.assert_user_fields: a user's fields, each refused with its SQLSTATE;
-- the row trigger and the calls that must refuse bad input before they look
-- anything up (um_sign_up) share it.  A NULL time zone is not checked (an
-- UPDATE checks it only when it changes: the zone database may change).
CREATE FUNCTION um_internal.assert_user_fields(p_email text, p_name text, p_timezone text, p_locale text,
                                      p_mobile text, p_attributes jsonb)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM um_internal.assert_email(p_email);
  IF p_name IS NOT NULL AND NOT um_internal.display_name_is_valid(p_name) THEN
    RAISE EXCEPTION 'invalid user name "%"', p_name
      USING ERRCODE = 'UM003',
            DETAIL = 'A name has 1 to 200 characters, no leading or trailing blanks and no control characters.',
            HINT = 'Trim the name, or pass NULL for a user without a name.';
  END IF;
  IF p_timezone IS NOT NULL AND NOT um_internal.timezone_is_valid(p_timezone) THEN
    RAISE EXCEPTION 'unknown time zone "%"', p_timezone
      USING ERRCODE = 'UM004',
            HINT = 'Use an IANA time zone name such as UTC, Europe/Paris or America/New_York (see pg_timezone_names).';
  END IF;
  IF NOT um_internal.locale_is_valid(p_locale) THEN
    RAISE EXCEPTION 'invalid locale "%"', p_locale
      USING ERRCODE = 'UM005',
            HINT = 'Use a BCP 47 language tag such as en, en-GB, pt-BR or zh-Hant-TW.';
  END IF;
  IF p_mobile IS NOT NULL AND NOT um_internal.mobile_is_valid(p_mobile) THEN
    RAISE EXCEPTION 'invalid mobile number "%"', p_mobile
      USING ERRCODE = 'UM006',
            HINT = 'Use the E.164 form: "+", country code and number, digits only, e.g. +14155550123.';
  END IF;
  IF jsonb_typeof(p_attributes) IS DISTINCT FROM 'object' THEN
    RAISE EXCEPTION 'user attributes must be a JSON object'
      USING ERRCODE = 'UM007',
            DETAIL = format('The value given is a JSON %s.', coalesce(jsonb_typeof(p_attributes), 'null')),
            HINT = 'Pass key/value pairs, e.g. ''{"department": "finance"}''.';
  END IF;
END
$$;
COMMENT ON FUNCTION um_internal.assert_user_fields(text, text, text, text, text, jsonb) IS
  'internal: refuses an invalid email (UM001), name (UM003), time zone (UM004, unless NULL), locale (UM005), mobile (UM006) or attributes (UM007)';

CREATE OR REPLACE FUNCTION um_internal.users_before_write()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM um_internal.assert_user_fields(NEW.email, NEW.name,
                                CASE WHEN TG_OP = 'INSERT' OR NEW.timezone IS DISTINCT FROM OLD.timezone
                                     THEN coalesce(NEW.timezone, '') END,
                                NEW.locale, NEW.mobile, NEW.attributes);
  IF TG_OP = 'UPDATE' THEN
    NEW.updated_at := now();
    IF lower(NEW.email) <> lower(OLD.email) THEN
      NEW.email_verified_at := NULL;      -- a new address must be verified again
    END IF;
  END IF;
  -- a change of status records (or clears) when the user was suspended
  IF TG_OP = 'INSERT' OR NEW.status <> OLD.status THEN
    NEW.suspended_at := CASE WHEN NEW.status = 'suspended' THEN coalesce(NEW.suspended_at, now()) END;
  END IF;
  RETURN NEW;
END
$$;
REVOKE EXECUTE ON FUNCTION um_internal.new_verification(bigint, boolean, boolean), um_internal.detach_unproven(bigint),
  um_internal.assert_user_fields(text, text, text, text, text, jsonb) FROM PUBLIC;


-- Domains an organization owns: its members create accounts only for
-- addresses there (um_create_user no longer tells a tenant user whether an
-- address elsewhere is registered).  The table as 20_tables and 94_own_rls
-- make it from um.state_tables.

-- A DNS name of at least two labels with an alphabetic (or punycode)
-- top-level label, in lowercase, at most 253 bytes: the domain part that
-- um_internal.email_is_valid accepts.
CREATE FUNCTION um_internal.domain_is_valid(domain text)
RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN octet_length(domain) <= 253
   AND domain ~ '^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+([a-z]{2,63}|xn--[a-z0-9-]{1,59})$';
COMMENT ON FUNCTION um_internal.domain_is_valid(text) IS 'true when domain is a lowercase DNS name of at least two labels, as in an address um accepts';

-- Domains an organization owns.  The backend proves ownership (a DNS TXT
-- record, say) and records it with um_add_org_domain; a tenant user creates
-- accounts only for addresses there (um_create_user), so nobody learns
-- through um_create_user whether an address of someone else's is registered.
CREATE TABLE um.organization_domains (
  id bigint GENERATED ALWAYS AS IDENTITY,
  org_id bigint NOT NULL REFERENCES um.organizations ON DELETE CASCADE,
  domain text NOT NULL CONSTRAINT organization_domains_domain_check CHECK (um_internal.domain_is_valid(domain)),
  verified_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT organization_domains_pkey PRIMARY KEY (org_id, id),
  CONSTRAINT organization_domains_org_id_domain_key UNIQUE (org_id, domain)
);
-- one organization owns a domain: um_add_org_domain checks it under a lock
-- (a unique key without org_id would not shard by organization)
CREATE INDEX organization_domains_domain_idx ON um.organization_domains (domain);
COMMENT ON TABLE um.organization_domains IS
  'domains an organization has proven it owns (recorded by a um administrator): its members create accounts only for addresses there';
COMMENT ON COLUMN um.organization_domains.id IS 'the record''s id (audit events name it)';
COMMENT ON COLUMN um.organization_domains.org_id IS 'the organization that owns it';
COMMENT ON COLUMN um.organization_domains.domain IS 'the domain, in lowercase (punycode for internationalized ones); one organization owns it';
COMMENT ON COLUMN um.organization_domains.verified_at IS 'when a um administrator recorded the proof';
INSERT INTO um.state_tables (relname, access, read_rule, readable_columns, evaluator_input, invalidating_columns, cache_key, dump_filter)
VALUES ('organization_domains', 'tenant', '%1$I.um_has_permission(''org:read'', org_id)', NULL, false, NULL, NULL, '');
ALTER TABLE um.organization_domains ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY um_administrators ON um.organization_domains USING (um_internal.administers_um()) WITH CHECK (um_internal.administers_um());
CREATE POLICY um_read ON um.organization_domains FOR SELECT USING (@extschema@.um_has_permission('org:read', org_id));
GRANT SELECT ON um.organization_domains TO PUBLIC;
REVOKE REFERENCES ON um.organization_domains FROM PUBLIC;
COMMENT ON POLICY um_read ON um.organization_domains IS 'application roles read the domains of organizations where the acting user holds org:read';
COMMENT ON POLICY um_administrators ON um.organization_domains IS
  'um administrators (roles with the privileges of the extension''s owner) read and write every row';
SELECT pg_catalog.pg_extension_config_dump('um.organization_domains', '');
SELECT pg_catalog.pg_extension_config_dump('um.organization_domains_id_seq', '');

-- An organization's domains.  um cannot check DNS itself: the backend proves
-- ownership (a TXT record it asked the tenant to publish, say) and records
-- it here with nobody acting; a tenant user never does, since a domain lets
-- its members create accounts for every address in it.
CREATE FUNCTION um_internal.do_add_org_domain(p_org_id bigint, p_domain text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_domain text := lower(btrim(p_domain, E' \t\r\n'));
  v_owner bigint;
  v_id bigint;
BEGIN
  IF @extschema@.um_current_user_id() IS NOT NULL THEN
    PERFORM um_internal.deny('org.domain_add', um_internal.actor_org(p_org_id), 'organization', p_org_id, 'UM070',
      'permission denied to record a domain',
      'Only a um administrator, with nobody acting, records that an organization owns a domain: um cannot check DNS itself.',
      'Have the backend verify the domain (a DNS record), then call um_add_org_domain() with nobody acting.');
  END IF;
  PERFORM um_internal.authorize('org.domain_add', format('record domains of organization %s', p_org_id),
                       NULL, p_org_id, 'organization', p_org_id);
  PERFORM um_internal.require_organization(p_org_id);
  IF v_domain IS NULL OR NOT um_internal.domain_is_valid(v_domain) THEN
    PERFORM um_internal.raise('UM012', format('invalid domain "%s"', p_domain),
      'A domain is a DNS name of at least two labels, in ASCII, at most 253 bytes.',
      'Pass the part of the addresses after the @, e.g. ''example.com''; write internationalized domains in their xn-- form.');
  END IF;
  -- one organization owns a domain: concurrent additions take turns
  LOCK TABLE um.organization_domains IN SHARE ROW EXCLUSIVE MODE;
  SELECT d.org_id INTO v_owner FROM um.organization_domains d WHERE d.domain = v_domain;
  IF v_owner = p_org_id THEN
    RETURN false;                                    -- recorded already
  ELSIF v_owner IS NOT NULL THEN
    PERFORM um_internal.raise('UM028', format('domain "%s" belongs to organization %s', v_domain, v_owner),
      'One organization owns a domain.',
      'Remove it from that organization first (um_remove_org_domain), if the domain changed hands.');
  END IF;
  INSERT INTO um.organization_domains (org_id, domain) VALUES (p_org_id, v_domain) RETURNING id INTO v_id;
  PERFORM um_internal.audit('org.domain_add', p_org_id, 'organization_domain', v_id, '{}');
  RETURN true;
END
$$;
COMMENT ON FUNCTION um_internal.do_add_org_domain(bigint, text) IS
  'body of um_add_org_domain: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_add_org_domain (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_remove_org_domain(p_org_id bigint, p_domain text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_domain text := lower(btrim(p_domain, E' \t\r\n'));
  v_id bigint;
BEGIN
  IF @extschema@.um_current_user_id() IS NOT NULL THEN
    PERFORM um_internal.deny('org.domain_remove', um_internal.actor_org(p_org_id), 'organization', p_org_id, 'UM070',
      'permission denied to remove a domain',
      'Only a um administrator, with nobody acting, records which domains an organization owns.',
      'Ask the service''s operator; the backend calls um_remove_org_domain() with nobody acting.');
  END IF;
  PERFORM um_internal.authorize('org.domain_remove', format('remove domains of organization %s', p_org_id),
                       NULL, p_org_id, 'organization', p_org_id);
  PERFORM um_internal.require_organization(p_org_id);
  DELETE FROM um.organization_domains d WHERE d.org_id = p_org_id AND d.domain = v_domain RETURNING d.id INTO v_id;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  PERFORM um_internal.audit('org.domain_remove', p_org_id, 'organization_domain', v_id, '{}');
  RETURN true;
END
$$;
COMMENT ON FUNCTION um_internal.do_remove_org_domain(bigint, text) IS
  'body of um_remove_org_domain: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_remove_org_domain (EXECUTE held by nobody)';

-- does the organization own the address's domain?
CREATE FUNCTION um_internal.org_owns_address(p_org_id bigint, p_email text)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT EXISTS (SELECT 1 FROM um.organization_domains d
                  WHERE d.org_id = p_org_id
                    AND d.domain = lower(substring(btrim(p_email, E' \t\r\n') FROM '@([^@]*)$')));
$$;
COMMENT ON FUNCTION um_internal.org_owns_address(bigint, text) IS
  'internal: is the address in one of the organization''s domains (um.organization_domains)?';

CREATE FUNCTION @extschema@.um_add_org_domain(org_id bigint, domain text)
RETURNS boolean AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_add_org_domain(bigint, text) IS
  'um administrators: record that the organization owns a domain (after the backend verified it), so its members may create accounts there; true when recorded now';

CREATE FUNCTION @extschema@.um_remove_org_domain(org_id bigint, domain text)
RETURNS boolean AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_remove_org_domain(bigint, text) IS
  'um administrators: the organization no longer owns a domain; true when it was recorded';
REVOKE EXECUTE ON FUNCTION um_internal.domain_is_valid(text), um_internal.org_owns_address(bigint, text),
  um_internal.do_add_org_domain(bigint, text), um_internal.do_remove_org_domain(bigint, text) FROM PUBLIC;

-- um's SQLSTATEs for an application to load: each code's name, what it
-- means (as doc/errors.md says) and the HTTP status an API would answer
-- with (doc/integration.md).
CREATE VIEW um.error_codes AS
SELECT v.sqlstate, v.name, v.http_status, v.meaning
  FROM (VALUES
  ('UM001', 'invalid_email', 400, 'invalid email address'),
  ('UM002', 'invalid_slug', 400, 'invalid organization slug'),
  ('UM003', 'invalid_name', 400, 'invalid name (organization, user, role, team, scope node)'),
  ('UM004', 'unknown_time_zone', 400, 'unknown time zone'),
  ('UM005', 'invalid_locale', 400, 'invalid locale'),
  ('UM006', 'invalid_mobile', 400, 'invalid mobile number'),
  ('UM007', 'invalid_attributes', 400, 'user attributes are not a JSON object'),
  ('UM008', 'invalid_scope_kind', 400, 'invalid scope kind'),
  ('UM009', 'invalid_argument', 400, 'invalid argument (a setting of the wrong type, two grantees, a validity out of range, ...)'),
  ('UM010', 'invalid_permission_name', 400, 'invalid permission name or pattern'),
  ('UM011', 'unknown_permission', 400, 'unknown permission'),
  ('UM012', 'invalid_domain', 400, 'invalid domain'),
  ('UM013', 'unknown_attribute', 400, 'unknown or invalid user attribute key'),
  ('UM020', 'email_taken', 409, 'email address already registered'),
  ('UM021', 'slug_taken', 409, 'organization slug already taken'),
  ('UM022', 'already_member', 409, 'already a member'),
  ('UM023', 'scope_node_exists', 409, 'scope node name or ref taken'),
  ('UM024', 'already_team_member', 409, 'already a member of the team'),
  ('UM025', 'team_name_taken', 409, 'team name already taken in the organization'),
  ('UM026', 'role_name_taken', 409, 'role name already taken in the organization'),
  ('UM027', 'identity_taken', 409, 'identity provider name taken, or the subject already linked'),
  ('UM028', 'domain_taken', 409, 'the domain belongs to another organization'),
  ('UM030', 'unknown_organization', 404, 'unknown organization'),
  ('UM031', 'unknown_user', 404, 'unknown user (or a NULL acting user)'),
  ('UM032', 'unknown_role', 404, 'unknown role'),
  ('UM033', 'unknown_team', 404, 'unknown team'),
  ('UM034', 'unknown_invitation', 404, 'unknown invitation'),
  ('UM035', 'not_member', 404, 'not a member of the organization'),
  ('UM036', 'unknown_scope', 404, 'unknown scope node'),
  ('UM037', 'unknown_identity_provider', 404, 'unknown identity provider'),
  ('UM038', 'not_team_member', 404, 'not a member of the team'),
  ('UM039', 'unknown_role_template', 404, 'unknown role template'),
  ('UM040', 'role_cycle', 409, 'role inclusion would make a cycle'),
  ('UM041', 'scope_tree_shape', 409, 'scope node would make a cycle, or a branch deeper than 64 levels'),
  ('UM042', 'builtin_role', 409, 'built-in role cannot be renamed, deleted or made; the root role holds every permission'),
  ('UM043', 'team_owner', 409, 'team owner cannot be removed'),
  ('UM044', 'last_root', 409, 'organization would be left without a Root'),
  ('UM045', 'sso_required_for_setting', 409, 'password login needs an identity provider'),
  ('UM046', 'cross_organization', 409, 'cross-organization reference or move'),
  ('UM047', 'audit_append_only', 409, 'the audit trail is append-only'),
  ('UM048', 'permission_in_use', 409, 'permission is built in or still granted'),
  ('UM049', 'role_in_use', 409, 'role is still some member''s organization role'),
  ('UM050', 'user_cannot_hold', 409, 'user cannot be the Root of an organization (or own a team): suspended or notification-only'),
  ('UM051', 'suspension_state', 409, 'already suspended / not suspended; nobody suspends themself'),
  ('UM052', 'deletion_blocked', 409, 'the user cannot be deleted yet (sole Root, team owner, application rows)'),
  ('UM053', 'token_not_valid', 410, 'token or invitation not valid (unknown, used, revoked, expired)'),
  ('UM054', 'invalid_batch', 422, 'invitation batch with invalid addresses (all listed), or empty'),
  ('UM055', 'requests_closed', 403, 'organization takes no invitation requests'),
  ('UM056', 'invitation_other_account', 403, 'invitation for another account, or for an existing account while logged out'),
  ('UM057', 'cascading_foreign_key', 500, 'an application table''s foreign key into um cascades: um would change application rows'),
  ('UM058', 'secret_with_actor', 500, 'a mailbox secret (verification token) is only issued with nobody acting'),
  ('UM059', 'password_required', 422, 'verifying an address needs the password (the one typed at the sign-up, or a new one, which claims the account)'),
  ('UM060', 'invalid_credentials', 401, 'invalid email or password (also: unknown email)'),
  ('UM061', 'user_suspended', 403, 'login refused: the user is suspended'),
  ('UM062', 'login_not_allowed', 403, 'login refused: the user may not log in (allow_login is false)'),
  ('UM063', 'email_not_verified', 403, 'login refused: the email address is not verified'),
  ('UM064', 'password_change_required', 403, 'login refused: a temporary password must be changed first'),
  ('UM065', 'sso_required', 403, 'login refused: an organization of the user requires single sign-on'),
  ('UM066', 'read_committed_required', 500, 'a password reset redeemed in a REPEATABLE READ or SERIALIZABLE transaction'),
  ('UM067', 'session_not_valid', 401, 'session token is not valid (unknown, expired, ended)'),
  ('UM068', 'password_not_acceptable', 422, 'the new password is not acceptable'),
  ('UM069', 'not_recorded', 503, 'a login attempt or refusal could not be recorded (no background worker, a long row lock), or pgcrypto is missing'),
  ('UM070', 'permission_denied', 403, 'permission denied'),
  ('UM071', 'impersonation_refused', 403, 'impersonation refused (an Admin or Root, oneself, nested, a suspended user)'),
  ('UM072', 'nobody_acting', 401, 'nobody is acting in this transaction'),
  ('UM073', 'escalation_refused', 403, 'escalation refused: a role with permissions you lack, or a Root acted on by a non-Root'),
  ('UM074', 'outside_domains', 403, 'an account for an address outside the organization''s domains'),
  ('UM075', 'attribute_not_editable', 403, 'a user attribute the caller may not change (admin-only for its own user, read-only for tenants)'),
  ('UM080', 'cannot_protect', 500, 'cannot protect the table (no such column, not bigint, not a table), or register a user reference'),
  ('UM081', 'still_referenced', 409, 'the organization or scope node is still referenced'),
  ('UM090', 'factor_code_not_valid', 401, 'the second-factor code is not valid (not the current code of a confirmed factor, used already, no recovery code of the user''s, or the account is locked)'),
  ('UM091', 'unknown_factor', 404, 'unknown factor, or no pending enrolment of the acting user''s'),
  ('UM092', 'second_factor_required', 403, 'the organization requires a second factor and the session is at assurance level 1 (every check and lifecycle call there is refused); or turning require_mfa on from such a session'),
  ('UM093', 'recent_authentication_required', 403, 'a sensitive call needs a recent authentication (transferring an organization, deleting one''s account, changing one''s address, adding or removing a factor), or a proven factor (adding a factor to, or changing the password of, an account that has one)')
  ) AS v (sqlstate, name, http_status, meaning);
COMMENT ON VIEW um.error_codes IS 'um''s error codes (class UM): name, HTTP status and meaning, for an application to map errors';
COMMENT ON COLUMN um.error_codes.sqlstate IS 'the SQLSTATE, e.g. UM060';
COMMENT ON COLUMN um.error_codes.name IS 'a stable snake_case name for code, e.g. invalid_credentials';
COMMENT ON COLUMN um.error_codes.http_status IS 'the HTTP status an API answers with';
COMMENT ON COLUMN um.error_codes.meaning IS 'what went wrong, as doc/errors.md says';
ALTER VIEW um.error_codes SET (security_invoker = true);
GRANT SELECT ON um.error_codes TO PUBLIC;

-- Verifying an address can log the user in (issue 16): the login checks
-- of um_internal.authenticate, shared as um_internal.login_refusal and um_internal.raise_login_refusal.
-- Why a user who proved who they are may not log in now (NULL: they may),
-- and the organization that requires single sign-on when that is why.
CREATE FUNCTION um_internal.login_refusal(p_user um.users, p_changing_password boolean, OUT reason text, OUT sso_org text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  SELECT o.slug INTO sso_org
    FROM um.memberships m JOIN um.organizations o ON o.id = m.org_id
   WHERE m.user_id = p_user.id AND o.password_login_disabled
   ORDER BY o.id LIMIT 1;
  reason := CASE WHEN p_user.status <> 'active' THEN 'suspended'
                 WHEN NOT p_user.allow_login THEN 'login not allowed'
                 WHEN p_user.email_verified_at IS NULL THEN 'email not verified'
                 WHEN sso_org IS NOT NULL THEN 'password login disabled'
                 WHEN p_user.must_change_password AND NOT p_changing_password THEN 'password must be changed' END;
END
$$;
COMMENT ON FUNCTION um_internal.login_refusal(um.users, boolean) IS
  'internal: why the user may not log in now (suspended, login not allowed, email not verified, password login disabled, password must be changed), or NULL; with the organization requiring single sign-on';

-- The error for a refusal um_internal.login_refusal found (nothing for NULL).
CREATE FUNCTION um_internal.raise_login_refusal(p_reason text, p_sso_org text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  CASE p_reason
    WHEN 'suspended' THEN
      PERFORM um_internal.raise('UM061', 'the user is suspended', NULL, 'Ask an administrator of your organization to reactivate you.');
    WHEN 'login not allowed' THEN
      PERFORM um_internal.raise('UM062', 'this user may not log in',
        'The user receives notifications only (allow_login is false).', 'Ask an administrator to enable login.');
    WHEN 'email not verified' THEN
      PERFORM um_internal.raise('UM063', 'the email address is not verified', NULL,
        'Follow the link in the verification email, or ask an administrator to mark the address verified.');
    WHEN 'password login disabled' THEN
      PERFORM um_internal.raise('UM065', 'password login is turned off for this user''s organization',
        format('Organization "%s" requires single sign-on.', p_sso_org), 'Sign in through the organization''s identity provider.');
    WHEN 'password must be changed' THEN
      PERFORM um_internal.raise('UM064', 'the password must be changed before logging in', 'It is a temporary password.',
        'Call um_change_password(email, temporary_password, new_password), which returns a session token.');
    ELSE
      NULL;
  END CASE;
END
$$;
COMMENT ON FUNCTION um_internal.raise_login_refusal(text, text) IS 'internal: raises the error of a login refusal (UM061 to UM065), nothing for NULL';

-- um_internal.authenticate: the checks of um_login and um_change_password, in an
-- order that tells a stranger nothing.  Every attempt costs one bcrypt
-- (an unknown email hashes against nothing) and is recorded by the audit
-- writer before anything is revealed (src/autonomous.c): it counts a wrong
-- password under a row lock, says whether the account was locked at that
-- moment, and fails closed, so that a right and a wrong password are told
-- apart only once the attempt is counted.  An unknown email, a wrong
-- password and a locked account get the same error (UM060); only a right
-- password on an unlocked account learns why else the login is refused.
-- p_changing_password accepts a temporary password that must be changed.
CREATE OR REPLACE FUNCTION um_internal.authenticate(p_email text, p_password text, p_changing_password boolean)
RETURNS um.users
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.users;
  v_now um.users;
  v_action text := CASE WHEN p_changing_password THEN 'user.change_password' ELSE 'user.login' END;
  v_settings record := um_internal.login_settings();
  v_ok boolean;
  v_org text;
  v_reason text;
  v_rec record;
BEGIN
  IF pg_is_in_recovery() THEN
    RAISE EXCEPTION 'cannot log in on a hot standby'
      USING ERRCODE = 'read_only_sql_transaction',
            HINT = 'Log in on the primary server; um_begin() with the session token works on standbys.';
  END IF;
  SELECT * INTO v FROM um.users u
   WHERE lower(u.email) = lower(btrim(coalesce(p_email, ''), E' \t\r\n'));
  IF NOT FOUND THEN
    PERFORM um_internal.password_matches(p_password, NULL);
    PERFORM um_internal.record_login(NULL, v_action, 'unknown_email', 'unknown email');
    v_ok := false;
  ELSE
    v_ok := um_internal.password_matches(p_password, v.password_hash);
    IF v_ok THEN
      SELECT r.reason, r.sso_org INTO v_reason, v_org FROM um_internal.login_refusal(v, p_changing_password) r;
    END IF;
    v_rec := um_internal.record_login(v.id, v_action,
                             CASE WHEN NOT v_ok THEN 'wrong' WHEN v_reason IS NOT NULL THEN 'refused' ELSE 'success' END,
                             CASE WHEN NOT v_ok THEN (CASE WHEN v.password_hash IS NULL THEN 'no password' ELSE 'wrong password' END)
                                  ELSE v_reason END);
    IF v_rec.was_locked THEN
      v_ok := false;
    END IF;
    IF v_ok THEN
      -- The password was checked against an earlier snapshot.  A reset, a
      -- change or a suspension committed since then (the writer above waited
      -- for its row lock) wins: no session comes from a password that no
      -- longer holds.  Read afresh, not locked: a lock would make the writer
      -- of this transaction's next attempt wait for this transaction.
      SELECT * INTO v_now FROM um.users u WHERE u.id = v.id;
      IF v_now.password_changed_at IS DISTINCT FROM v.password_changed_at
         OR (v_now.password_hash IS DISTINCT FROM v.password_hash       -- (a rehash at a higher cost keeps the password)
             AND NOT um_internal.password_matches(p_password, v_now.password_hash)) THEN
        v_ok := false;
      ELSE
        v := v_now;
        SELECT r.reason, r.sso_org INTO v_reason, v_org FROM um_internal.login_refusal(v, p_changing_password) r;
      END IF;
    END IF;
  END IF;
  IF NOT v_ok THEN
    PERFORM um_internal.raise('UM060', 'invalid email or password', NULL,
      format('Check both and try again; after %s failed attempts in a row the account is locked for %s.',
             v_settings.max_failures,
             um_internal.lockout_words(v_settings.lockout_seconds)));
  END IF;
  PERFORM um_internal.raise_login_refusal(v_reason, v_org);
  -- a hash made at a lower cost than today's is made again, now that the
  -- password is known to be right (after the attempt was recorded, whose
  -- writer locks the row); sessions go on
  IF um_internal.hash_cost(v.password_hash) < v_settings.password_hash_cost AND NOT p_changing_password
     AND char_length(p_password) >= 8 AND octet_length(p_password) <= 72 THEN
    UPDATE um.users u SET password_hash = um_internal.hash_password(p_password) WHERE u.id = v.id
    RETURNING * INTO v;
  END IF;
  RETURN v;
END
$$;

-- Verify an address and log in: the same redemption as um_verify_email, by
-- whoever holds the mailbox's secret and chooses the password, then a
-- session, as um_login would give.  A refusal undoes the verification too
-- (the secret stays valid).
CREATE FUNCTION um_internal.do_verify_email_and_login(p_token text, p_password text)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.users;
  v_id bigint;
  v_refusal record;
BEGIN
  IF p_password IS NULL THEN
    PERFORM um_internal.raise('UM059', 'choose a password to verify this address and log in',
      'The session is for whoever proves the mailbox and sets the account''s password.',
      'Ask for a new password and call um_verify_email_and_login(token, password).');
  END IF;
  v_id := um_internal.do_verify_email(p_token, p_password);
  SELECT * INTO v FROM um.users u WHERE u.id = v_id;
  v_refusal := um_internal.login_refusal(v, false);
  PERFORM um_internal.raise_login_refusal(v_refusal.reason, v_refusal.sso_org);
  RETURN um_internal.new_session(v, 'user.login');
END
$$;
COMMENT ON FUNCTION um_internal.do_verify_email_and_login(text, text) IS
  'body of um_verify_email_and_login: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_verify_email_and_login (EXECUTE held by nobody)';

CREATE FUNCTION @extschema@.um_verify_email_and_login(token text, password text)
RETURNS text AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_verify_email_and_login(text, text) IS
  'redeem an email verification token with the password the mailbox''s owner chooses, and return a session token (as um_login would)';
REVOKE EXECUTE ON FUNCTION um_internal.login_refusal(um.users, boolean), um_internal.raise_login_refusal(text, text),
  um_internal.do_verify_email_and_login(text, text) FROM PUBLIC;

-- um_lint: login roles whose settings log the secrets they pass to um (issue 16)
CREATE OR REPLACE FUNCTION @extschema@.um_lint()
RETURNS TABLE (severity text, object text, finding text, hint text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT f.* FROM (
  WITH app_tables AS (
    SELECT c.oid, c.relkind, c.relrowsecurity, c.relforcerowsecurity, c.relispartition
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p')
       AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'um', 'um_internal', 'pg_toast')
       AND n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast_temp%'),
  org_columns AS (
    -- a column that references um.organizations, or is called org_id / organization_id
    SELECT t.oid, a.attname
      FROM app_tables t JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
     WHERE a.attname IN ('org_id', 'organization_id')
        OR EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k
                    WHERE k.conrelid = t.oid AND k.contype = 'f' AND k.confrelid = 'um.organizations'::pg_catalog.regclass
                      AND a.attnum = ANY (k.conkey))),
  policies AS (
    SELECT p.polrelid, count(*) AS n, count(*) FILTER (WHERE p.polname IN ('um_read', 'um_create', 'um_update', 'um_delete')) AS um
      FROM pg_catalog.pg_policy p GROUP BY p.polrelid),
  policy_columns AS (
    -- the columns um's read policy uses: the organization column (and a scope column)
    SELECT t.oid, a.attnum, a.attname
      FROM app_tables t JOIN pg_catalog.pg_policy pol ON pol.polrelid = t.oid AND pol.polname = 'um_read'
      JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_policy'::pg_catalog.regclass AND d.objid = pol.oid
                                 AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = t.oid
                                 AND d.refobjsubid > 0
      JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid),
  protected_columns AS (
    -- of those, the organization column: the one that looks like one, else all
    SELECT DISTINCT c.oid, c.attnum, c.attname FROM policy_columns c
     WHERE EXISTS (SELECT 1 FROM org_columns o WHERE o.oid = c.oid AND o.attname = c.attname)
        OR NOT EXISTS (SELECT 1 FROM policy_columns c2 JOIN org_columns o ON o.oid = c2.oid AND o.attname = c2.attname
                        WHERE c2.oid = c.oid))
  -- 1. an organization column and no policy at all
  SELECT 'critical' AS severity, t.oid::pg_catalog.regclass::text AS object,
         format('has an organization column (%s) but no row-level security policy: every role with SELECT sees every tenant''s rows',
                (SELECT string_agg(DISTINCT o.attname::text, ', ') FROM org_columns o WHERE o.oid = t.oid)) AS finding,
         format('SELECT um_protect_table(%L, %L, ''<resource>'');', t.oid::pg_catalog.regclass::text,
                (SELECT min(o.attname::text) FROM org_columns o WHERE o.oid = t.oid)) AS hint
    FROM app_tables t
   WHERE EXISTS (SELECT 1 FROM org_columns o WHERE o.oid = t.oid)
     AND NOT EXISTS (SELECT 1 FROM policies p WHERE p.polrelid = t.oid)
     AND NOT (t.relispartition AND EXISTS (SELECT 1 FROM pg_catalog.pg_partition_ancestors(t.oid) a
                                            JOIN policies p ON p.polrelid = a.relid WHERE a.relid <> t.oid))
  UNION ALL
  -- 2. a partition of a protected table without the policies (queries naming it skip the parent's)
  SELECT 'critical', t.oid::pg_catalog.regclass::text,
         'is a partition of a protected table but has no policies of its own: a query that names the partition sees every tenant''s rows',
         format('SELECT um_protect_table(%L, ...) again on the parent table protects its partitions too.',
                (SELECT a.relid::pg_catalog.regclass::text FROM pg_catalog.pg_partition_ancestors(t.oid) a
                  WHERE a.relid <> t.oid ORDER BY a.relid LIMIT 1))
    FROM app_tables t
   WHERE t.relispartition AND NOT EXISTS (SELECT 1 FROM policies p WHERE p.polrelid = t.oid)
     AND EXISTS (SELECT 1 FROM pg_catalog.pg_partition_ancestors(t.oid) a JOIN policies p ON p.polrelid = a.relid
                  WHERE a.relid <> t.oid)
  UNION ALL
  -- 2b. another permissive policy beside um's: permissive policies are OR'ed,
  -- so it widens what um's policy allows
  SELECT 'critical', t.oid::pg_catalog.regclass::text,
         format('has permissive policy %I beside um''s policies: permissive policies add up, so it lets through whatever it allows', p.polname),
         format('Make it restrictive (CREATE POLICY ... AS RESTRICTIVE) to narrow um''s policies, or drop it: DROP POLICY %I ON %s;',
                p.polname, t.oid::pg_catalog.regclass)
    FROM app_tables t JOIN pg_catalog.pg_policy p ON p.polrelid = t.oid
   WHERE p.polpermissive AND p.polname NOT IN ('um_read', 'um_create', 'um_update', 'um_delete')
     AND EXISTS (SELECT 1 FROM policies q WHERE q.polrelid = t.oid AND q.um > 0)
  UNION ALL
  -- 3. policies that are not enforced
  SELECT 'critical', t.oid::pg_catalog.regclass::text,
         'has policies but row-level security is not enabled: they are ignored',
         format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;', t.oid::pg_catalog.regclass)
    FROM app_tables t JOIN policies p ON p.polrelid = t.oid
   WHERE NOT t.relrowsecurity
  UNION ALL
  SELECT 'warning', t.oid::pg_catalog.regclass::text,
         'enables row-level security without forcing it: the table''s owner (and views it owns) bypass the policies',
         format('ALTER TABLE %s FORCE ROW LEVEL SECURITY;', t.oid::pg_catalog.regclass)
    FROM app_tables t
   WHERE t.relrowsecurity AND NOT t.relforcerowsecurity
  UNION ALL
  -- 4. views over protected tables that do not run as their caller
  SELECT CASE WHEN v.relkind = 'm' OR r.rolsuper OR r.rolbypassrls THEN 'critical' ELSE 'warning' END,
         v.oid::pg_catalog.regclass::text,
         CASE WHEN v.relkind = 'm'
              THEN format('is a materialized view over protected table %s: it stores rows as its owner saw them, and its readers are not filtered', t.oid::pg_catalog.regclass)
              WHEN r.rolsuper OR r.rolbypassrls
              THEN format('reads protected table %s as its owner %I, who bypasses row-level security: its readers see every tenant''s rows', t.oid::pg_catalog.regclass, r.rolname)
              ELSE format('reads protected table %s with its owner''s privileges, not its caller''s (security_invoker is off)', t.oid::pg_catalog.regclass) END,
         CASE WHEN v.relkind = 'm'
              THEN format('Replace it with a view, or protect it: SELECT um_protect_table(%L, ...).', v.oid::pg_catalog.regclass::text)
              ELSE format('ALTER VIEW %s SET (security_invoker = true);', v.oid::pg_catalog.regclass) END
    FROM pg_catalog.pg_rewrite rw
    JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = rw.oid
                               AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
    JOIN pg_catalog.pg_class v ON v.oid = rw.ev_class
    JOIN pg_catalog.pg_class t ON t.oid = d.refobjid
    JOIN pg_catalog.pg_roles r ON r.oid = v.relowner
   WHERE v.relkind IN ('v', 'm') AND t.oid <> v.oid AND t.relrowsecurity
     AND (v.relkind = 'm'
          OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_options_to_table(v.reloptions) o
                          WHERE o.option_name = 'security_invoker'
                            AND lower(o.option_value) IN ('true', 'on', 'yes', '1', 't', 'y')))
   GROUP BY v.oid, v.relkind, t.oid, r.rolsuper, r.rolbypassrls, r.rolname
  UNION ALL
  -- 5. roles that log in and bypass row-level security
  SELECT CASE WHEN r.rolsuper THEN 'warning' ELSE 'critical' END, 'role ' || quote_ident(r.rolname),
         CASE WHEN r.rolsuper THEN 'is a superuser that can log in: if an application connects as it, no policy applies'
              ELSE 'can log in and has BYPASSRLS: no policy applies to it' END,
         CASE WHEN r.rolsuper THEN 'Connect applications with a role that is neither superuser nor BYPASSRLS; keep this one for administration.'
              ELSE format('ALTER ROLE %I NOBYPASSRLS;', r.rolname) END
    FROM pg_catalog.pg_roles r
   WHERE r.rolcanlogin AND (r.rolbypassrls OR r.rolsuper) AND r.oid <> 10
  UNION ALL
  -- 6. SECURITY DEFINER functions whose search_path the caller chooses
  SELECT 'warning', 'function ' || p.oid::pg_catalog.regprocedure::text,
         'is SECURITY DEFINER without a pinned search_path: a caller can put objects of its own in the way',
         format('ALTER FUNCTION %s SET search_path = pg_catalog, pg_temp;', p.oid::pg_catalog.regprocedure)
    FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
   WHERE p.prosecdef AND n.nspname NOT IN ('pg_catalog', 'information_schema')
     AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search\_path=%')
  UNION ALL
  -- 7. protected tables whose organization column has no index
  SELECT 'info', t.oid::pg_catalog.regclass::text,
         format('is protected on column %s, which no index leads with: every query reads the whole table', o.attname),
         format('CREATE INDEX ON %s (%I);', t.oid::pg_catalog.regclass, o.attname)
    FROM app_tables t JOIN policies p ON p.polrelid = t.oid AND p.um > 0
    JOIN protected_columns o ON o.oid = t.oid
   WHERE t.relkind = 'r'
     AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                      WHERE i.indrelid = t.oid
                        AND i.indkey[0] = (SELECT a.attnum FROM pg_catalog.pg_attribute a
                                            WHERE a.attrelid = t.oid AND a.attname = o.attname))
  UNION ALL
  -- 8. protected tables with a unique key that leaves out the organization
  -- column: a unique index ignores row-level security, so a write that
  -- collides (a unique violation, INSERT ... ON CONFLICT DO NOTHING) tells
  -- one tenant that another tenant's row holds the value; and a
  -- tenant-sharded deployment (distributed by organization) needs the
  -- organization in each key
  SELECT 'warning', t.oid::pg_catalog.regclass::text,
         format('is protected on column %I, which its %s %I does not include: a colliding insert or update tells a tenant that another tenant''s row holds the value (unique indexes ignore row-level security), and the table cannot be distributed by organization',
                o.attname, CASE k.contype WHEN 'p' THEN 'primary key' WHEN 'u' THEN 'unique constraint' ELSE 'unique index' END,
                coalesce(k.conname, ic.relname)),
         CASE WHEN k.oid IS NOT NULL
              THEN format('Lead it with the organization (it then holds within each organization; foreign keys that reference it must be dropped first and re-created on the new key): ALTER TABLE %s DROP CONSTRAINT %I, ADD %s (%s);',
                          t.oid::pg_catalog.regclass, k.conname, CASE k.contype WHEN 'p' THEN 'PRIMARY KEY' ELSE 'UNIQUE' END,
                          (SELECT string_agg(quote_ident(x.name), ', ' ORDER BY x.ord)
                             FROM (SELECT o.attname::text AS name, 0::bigint AS ord
                                   UNION ALL
                                   SELECT a.attname::text, c.ord FROM unnest(k.conkey) WITH ORDINALITY AS c(attnum, ord)
                                     JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attnum = c.attnum) x))
              ELSE format('Re-create it with %I as its first column (it then holds within each organization): it is %s',
                          o.attname, pg_catalog.pg_get_indexdef(i.indexrelid)) END
    FROM app_tables t JOIN policies p ON p.polrelid = t.oid AND p.um > 0
    JOIN protected_columns o ON o.oid = t.oid
    JOIN pg_catalog.pg_index i ON i.indrelid = t.oid AND i.indisunique
    JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
    LEFT JOIN pg_catalog.pg_constraint k ON k.conrelid = t.oid AND k.conindid = i.indexrelid AND k.contype IN ('p', 'u')
   WHERE NOT t.relispartition
     AND NOT o.attnum = ANY ((i.indkey::pg_catalog.int2[])[0:i.indnkeyatts - 1])   -- key columns, not INCLUDE ones
  UNION ALL
  -- 9. foreign keys into um's tables: PostgreSQL checks each inserted row
  -- as the owner of the referenced table, with the referencing column's
  -- casts (code of the application's with um's rights when the types differ)
  -- A plain key (same types, no actions, not deferrable) into
  -- um.organizations or um.scopes runs no code of the application's and
  -- makes um's deletions wait for its rows (UM081): the supported way to
  -- keep a tenant's rows from being orphaned.  Keys with ON DELETE/UPDATE
  -- actions stop um's deleting calls (UM057); deferrable ones its deletions.
  SELECT CASE WHEN k.casts OR k.actions THEN 'critical'
              WHEN k.plain_org_key THEN 'info'
              ELSE 'warning' END,
         k.conrelid::pg_catalog.regclass::text,
         CASE WHEN k.plain_org_key
              THEN format('has foreign key %I into %s: um refuses to delete what its rows still reference (UM081)',
                          k.conname, k.confrelid::pg_catalog.regclass)
              WHEN k.actions AND NOT k.casts
              THEN format('has foreign key %I into %s with ON DELETE or ON UPDATE actions: they would run as um''s owner, so every lifecycle call that deletes refuses (UM057)',
                          k.conname, k.confrelid::pg_catalog.regclass)
              WHEN k.condeferrable AND NOT k.casts
              THEN format('has deferrable foreign key %I into %s: it would be checked only at COMMIT, so um refuses to delete organizations and scope nodes (UM081)',
                          k.conname, k.confrelid::pg_catalog.regclass)
              ELSE format('has foreign key %I into %s: PostgreSQL checks it as um''s owner, running the column''s casts with um''s rights',
                          k.conname, k.confrelid::pg_catalog.regclass) END,
         CASE WHEN k.plain_org_key
              THEN 'Nothing to do: delete or move those rows before deleting the organization or scope node.'
              WHEN k.condeferrable AND NOT k.casts AND NOT k.actions
              THEN format('ALTER TABLE %s ALTER CONSTRAINT %I NOT DEFERRABLE;', k.conrelid::pg_catalog.regclass, k.conname)
              WHEN k.confrelid = 'um.users'::pg_catalog.regclass AND cardinality(k.conkey) = 1
              THEN format('ALTER TABLE %s DROP CONSTRAINT %I; SELECT um_add_user_reference(%L, %L);',
                          k.conrelid::pg_catalog.regclass, k.conname, k.conrelid::pg_catalog.regclass::text,
                          (SELECT a.attname FROM pg_catalog.pg_attribute a WHERE a.attrelid = k.conrelid AND a.attnum = k.conkey[1]))
              ELSE format('ALTER TABLE %s DROP CONSTRAINT %I; keep the ids without a foreign key into um''s tables.',
                          k.conrelid::pg_catalog.regclass, k.conname) END
    FROM (SELECT k0.*, EXISTS (SELECT 1 FROM unnest(k0.conkey, k0.confkey) AS x(a, b)
                                 JOIN pg_catalog.pg_attribute fa ON fa.attrelid = k0.conrelid AND fa.attnum = x.a
                                 JOIN pg_catalog.pg_attribute pa ON pa.attrelid = k0.confrelid AND pa.attnum = x.b
                                WHERE fa.atttypid <> pa.atttypid) AS casts,
                 k0.confdeltype NOT IN ('a', 'r') OR k0.confupdtype NOT IN ('a', 'r') AS actions
            FROM pg_catalog.pg_constraint k0 WHERE k0.contype = 'f') AS k1
    CROSS JOIN LATERAL (SELECT k1.*, NOT k1.casts AND NOT k1.actions AND NOT k1.condeferrable
                               AND k1.confrelid IN ('um.organizations'::pg_catalog.regclass, 'um.scopes'::pg_catalog.regclass)
                               AS plain_org_key) AS k
    JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
   WHERE k.contype = 'f' AND c.relnamespace <> 'um'::pg_catalog.regnamespace
     AND (SELECT r.relnamespace FROM pg_catalog.pg_class r WHERE r.oid = k.confrelid) = 'um'::pg_catalog.regnamespace
     AND k.conparentid = 0
  UNION ALL
  -- 10. roles holding REFERENCES on um's tables: they can make such keys
  SELECT 'critical', 'role ' || a.grantee::pg_catalog.regrole::text,
         format('holds REFERENCES on %s: a foreign key it makes is checked with um''s rights, running its casts', c.oid::pg_catalog.regclass),
         format('REVOKE REFERENCES ON %s FROM %s; register columns of user ids with um_add_user_reference() instead.',
                c.oid::pg_catalog.regclass, a.grantee::pg_catalog.regrole)
    FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
   WHERE c.relnamespace = 'um'::pg_catalog.regnamespace AND a.privilege_type = 'REFERENCES'
     AND a.grantee <> c.relowner AND a.grantee <> 0
  UNION ALL
  SELECT 'critical', 'role ' || a.grantee::pg_catalog.regrole::text,
         format('holds REFERENCES on column %I of %s: a foreign key it makes is checked with um''s rights, running its casts',
                att.attname, c.oid::pg_catalog.regclass),
         format('REVOKE REFERENCES (%I) ON %s FROM %s; register columns of user ids with um_add_user_reference() instead.',
                att.attname, c.oid::pg_catalog.regclass, a.grantee::pg_catalog.regrole)
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_attribute att ON att.attrelid = c.oid, pg_catalog.aclexplode(att.attacl) a
   WHERE c.relnamespace = 'um'::pg_catalog.regnamespace AND a.privilege_type = 'REFERENCES'
     AND a.grantee <> c.relowner AND a.grantee <> 0
  UNION ALL
  -- 11. login roles whose settings write what they pass to um (passwords,
  -- tokens) into the server log: their effective settings in this database
  -- (role and database settings over the server's)
  SELECT 'critical', 'role ' || quote_ident(r.rolname),
         format('can log in and call um_login, and its settings log the statements it runs (%s): the passwords and tokens it passes to um reach the server log',
                l.why),
         l.fix || ' Statements logged by log_statement or for their duration, and the parameters of failing ones, are written before um can hide them.'
    FROM pg_catalog.pg_roles r
    CROSS JOIN LATERAL (
      SELECT string_agg(format('%s = %s', e.name, e.value), ', ' ORDER BY e.name) AS why,
             string_agg(format('ALTER ROLE %I IN DATABASE %I SET %s = %s;', r.rolname, pg_catalog.current_database(), e.name, e.safe),
                        ' ' ORDER BY e.name) AS fix
        FROM (SELECT g.name, g.safe,
                     coalesce((SELECT substr(c, length(g.name) + 2)
                                 FROM pg_catalog.pg_db_role_setting s, unnest(s.setconfig) c
                                WHERE s.setrole IN (r.oid, 0)
                                  AND s.setdatabase IN ((SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database()), 0)
                                  AND NOT (s.setrole = 0 AND s.setdatabase = 0)
                                  AND c LIKE g.name || '=%'
                                ORDER BY (s.setrole <> 0 AND s.setdatabase <> 0) DESC, (s.setrole <> 0) DESC
                                LIMIT 1),
                              (SELECT CASE WHEN p.source IN ('database', 'user', 'database user') THEN p.boot_val
                                           WHEN p.source IN ('session', 'client') THEN p.reset_val
                                           ELSE p.setting END
                                 FROM pg_catalog.pg_settings p WHERE p.name = g.name)) AS value
                FROM (VALUES ('log_statement', '''none'''),
                             ('log_min_duration_statement', '-1'),
                             ('log_min_duration_sample', '-1'),
                             ('log_transaction_sample_rate', '0'),
                             ('log_parameter_max_length_on_error', '0')) AS g (name, safe)) e
       WHERE CASE e.name
               WHEN 'log_statement' THEN btrim(e.value, '''"') = 'all'
               WHEN 'log_transaction_sample_rate' THEN btrim(e.value, '''"') !~ '^0*(\.0*)?$'
               WHEN 'log_parameter_max_length_on_error' THEN btrim(e.value, '''"') !~ '^0+[A-Za-z]*$'
               ELSE btrim(e.value, '''"') !~ '^-' END) l
   WHERE r.rolcanlogin AND l.why IS NOT NULL
     AND (pg_catalog.has_function_privilege(r.oid, '@extschema@.um_login(text, text)', 'EXECUTE')
          OR pg_catalog.has_function_privilege(r.oid, '@extschema@.um_begin(text)', 'EXECUTE'))
  UNION ALL
  -- 12. um not loaded at backend start: a statement that fails before um is
  -- loaded in its backend (a syntax error) is logged with its text, and
  -- logins have no audit writers of their own
  SELECT 'warning', 'server',
         'um is not preloaded: a statement that fails before a backend loads um (a syntax error in a call of um_login) is logged with its text, password included, and logins share background worker slots with parallel queries',
         format('ALTER SYSTEM SET shared_preload_libraries = %L; then restart the server (or, for this database only and without reserved audit writers: ALTER DATABASE %I SET session_preload_libraries = ''um'';)',
                CASE WHEN pg_catalog.current_setting('shared_preload_libraries') = '' THEN 'um'
                     ELSE pg_catalog.current_setting('shared_preload_libraries') || ',um' END,
                pg_catalog.current_database())
   WHERE NOT EXISTS (SELECT 1 FROM unnest(string_to_array(pg_catalog.current_setting('shared_preload_libraries') || ','
                                                          || pg_catalog.current_setting('session_preload_libraries') || ','
                                                          || pg_catalog.current_setting('local_preload_libraries'), ',')) l
                      WHERE btrim(l) IN ('um', '$libdir/um', '"um"'))
  ) f
  ORDER BY array_position(ARRAY['critical', 'warning', 'info'], f.severity), f.object, f.finding
$$;
COMMENT ON FUNCTION @extschema@.um_lint() IS
  'a security advisor: tables with an organization column but no policies, RLS not forced, unprotected partitions, views and materialized views over protected tables, roles that bypass RLS, SECURITY DEFINER functions without a pinned search_path, unindexed organization columns, keys without the organization, login roles whose settings log the secrets they pass to um, um not preloaded; each with a hint';

-- What an application reads about the acting user (issue 16): their
-- organizations with their role, their permissions in one organization; and
-- whoever reads an organization's members reads its role names.
-- Every permission of the catalog the acting user holds in the
-- organization (on the scope node, when given): a user interface asks once
-- instead of once per button.  As the checks do, it answers for the acting
-- user only, and empty with nobody acting.
CREATE FUNCTION @extschema@.um_my_permissions(org_id bigint, scope_id bigint DEFAULT NULL)
RETURNS SETOF text
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT p.name FROM um.permissions p
   WHERE CASE WHEN scope_id IS NULL THEN @extschema@.um_has_permission(p.name, org_id)
              ELSE @extschema@.um_has_permission(p.name, org_id, scope_id) END
   ORDER BY p.name;
$$;
COMMENT ON FUNCTION @extschema@.um_my_permissions(bigint, bigint) IS
  'the permissions of the catalog the acting user holds in the organization (on the scope node, when given), by name; none with nobody acting';

-- What an application reads about the acting user: their organizations
-- with their role there (a Member may not read roles otherwise), and, for a
-- user interface, every permission they hold in one organization.
CREATE FUNCTION um_internal.do_my_organizations(OUT org_id bigint, OUT slug text, OUT name text, OUT role text,
                                       OUT role_id bigint, OUT status text, OUT member_since timestamptz)
RETURNS SETOF record
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM um_internal.require_actor('Call um_begin(token) first: this lists the organizations of the acting user.');
  -- while impersonating, the impersonated organizations only
  RETURN QUERY
    SELECT o.id, o.slug, o.name, r.name, r.id, m.status, m.created_at
      FROM um.memberships m
      JOIN um.organizations o ON o.id = m.org_id
      JOIN um.roles r ON r.id = m.role_id
     WHERE m.user_id = @extschema@.um_current_user_id()
       AND @extschema@.um_current_user_id(m.org_id) = m.user_id
     ORDER BY o.slug;
END
$$;
COMMENT ON FUNCTION um_internal.do_my_organizations() IS
  'body of um_my_organizations: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_my_organizations (EXECUTE held by nobody)';

CREATE FUNCTION @extschema@.um_my_organizations(OUT org_id bigint, OUT slug text, OUT name text, OUT role text,
                                                OUT role_id bigint, OUT status text, OUT member_since timestamptz)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_my_organizations() IS
  'the acting user''s organizations (only the impersonated ones while impersonating), with their organization role and membership status, by slug';
REVOKE EXECUTE ON FUNCTION um_internal.do_my_organizations() FROM PUBLIC;
UPDATE um.state_tables
   SET read_rule = '%1$I.um_has_permission(''role:read'', org_id) OR %1$I.um_has_permission(''member:read'', org_id)'
 WHERE relname = 'roles';
ALTER POLICY um_read ON um.roles USING (@extschema@.um_has_permission('role:read', org_id) OR @extschema@.um_has_permission('member:read', org_id));
COMMENT ON POLICY um_read ON um.roles IS 'application roles read the roles of organizations where the acting user holds role:read, or member:read (a member list names each member''s role)';

-- um_set_org_setting with a text value: UM009 for a value that is not JSON (issue 16)
-- The same with the value as text, which is what an unquoted literal or a
-- driver's string parameter becomes: parsed here, so that a value that is
-- not JSON gets UM009 naming the type the setting takes (a jsonb parameter
-- would fail with a raw 22P02 before um could say anything).
CREATE FUNCTION um_internal.do_set_org_setting(p_org_id bigint, p_setting text, p_value text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_value jsonb;
BEGIN
  PERFORM um_internal.authorize('organization.set_setting', format('change settings of organization %s', p_org_id),
                       'org:update', p_org_id, 'organization', p_org_id);
  IF p_setting IS NULL OR p_setting !~ '^[a-z][a-z0-9_]{0,62}$' THEN
    PERFORM um_internal.do_set_org_setting(p_org_id, p_setting, NULL::jsonb);   -- the name's error (UM009)
  END IF;
  BEGIN
    v_value := p_value::jsonb;
  EXCEPTION WHEN invalid_text_representation OR untranslatable_character OR statement_too_complex
                 OR program_limit_exceeded THEN
    -- (the value is not repeated: a setting may hold a secret)
    PERFORM um_internal.raise('UM009', format('the value of setting "%s" is not JSON', p_setting),
      'It is not a JSON value PostgreSQL can store (a bare word, a \u0000 escape, or nested too deep).',
      CASE WHEN p_setting IN ('allow_invite_requests', 'password_login_disabled') THEN 'Pass true or false.'
           WHEN p_setting = 'name' THEN 'Pass a JSON string, in double quotes: ''"Acme Inc."''.'
           ELSE 'Pass a JSON value: a string in double quotes (''"dark"''), a number, true or false, an array or an object.' END);
  END;
  PERFORM um_internal.do_set_org_setting(p_org_id, p_setting, v_value);
END
$$;
COMMENT ON FUNCTION um_internal.do_set_org_setting(bigint, text, text) IS
  'body of um_set_org_setting with a text value: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_set_org_setting (EXECUTE held by nobody)';

CREATE FUNCTION @extschema@.um_set_org_setting(org_id bigint, setting text, value text)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_set_org_setting(bigint, text, text) IS
  'the same with the value as JSON text (what a string literal or a driver''s text parameter is): a value that is not JSON is refused with UM009 naming the type the setting takes';
REVOKE EXECUTE ON FUNCTION um_internal.do_set_org_setting(bigint, text, text) FROM PUBLIC;

-- The application's role template (issue 16, items 1 and 2): um's
-- built-in roles become a template the application changes through
-- um_set_role_template and friends, dumped once changed; the root role
-- holds * (every permission of the catalog, later ones too); permissions
-- registered with roles => reach those roles in every organization.
ALTER TABLE um.builtin_roles DROP CONSTRAINT builtin_roles_position_key;
ALTER TABLE um.builtin_roles ALTER COLUMN description DROP NOT NULL;
ALTER TABLE um.builtin_roles ADD CONSTRAINT builtin_roles_key_check CHECK (key ~ '^[a-z][a-z0-9_]{0,62}$');
ALTER TABLE um.builtin_roles ADD COLUMN renamable boolean NOT NULL DEFAULT false;
ALTER TABLE um.builtin_roles ADD COLUMN source text NOT NULL DEFAULT 'um'
  CONSTRAINT builtin_roles_source_check CHECK (source IN ('um', 'application'));
ALTER TABLE um.builtin_roles ALTER COLUMN source DROP DEFAULT;
COMMENT ON TABLE um.builtin_roles IS
  'the template of built-in roles every organization has (um_set_role_template); the role with key root is the root role';
COMMENT ON COLUMN um.builtin_roles.key IS
  'stable identifier of the built-in role (lower case, digits, _); um.roles.builtin refers to it; root is the root role, which holds every permission';
COMMENT ON COLUMN um.builtin_roles.name IS 'the display name the role gets in every organization';
COMMENT ON COLUMN um.builtin_roles.renamable IS 'organizations may give the role a display name of their own (um_rename_role)';
COMMENT ON COLUMN um.builtin_roles.source IS
  'um: the default template of um''s script (not dumped); application: the template the application made (dumped)';
ALTER TABLE um.roles DROP CONSTRAINT roles_builtin_fkey;
ALTER TABLE um.roles ADD CONSTRAINT roles_builtin_fkey FOREIGN KEY (builtin) REFERENCES um.builtin_roles (key) ON DELETE SET NULL;
COMMENT ON TABLE um.roles IS 'roles of an organization: built-in (builtin is set: made from the template, not deletable, renamable only if the template allows, permissions editable except the root role''s) or custom';
COMMENT ON COLUMN um.roles.builtin IS 'key of the built-in role this is (um.builtin_roles); NULL for a custom role (and for a built-in role the template no longer has)';

ALTER TABLE um.builtin_role_permissions DROP CONSTRAINT builtin_role_permissions_permission_fkey;
ALTER TABLE um.builtin_role_permissions DROP CONSTRAINT builtin_role_permissions_role_key_fkey;
ALTER TABLE um.builtin_role_permissions ADD CONSTRAINT builtin_role_permissions_role_key_fkey
  FOREIGN KEY (role_key) REFERENCES um.builtin_roles (key) ON DELETE CASCADE;
ALTER TABLE um.builtin_role_permissions ADD CONSTRAINT builtin_role_permissions_permission_check
  CHECK (um_internal.permission_name_is_valid(permission, true));
ALTER TABLE um.builtin_role_permissions ADD COLUMN source text NOT NULL DEFAULT 'um'
  CONSTRAINT builtin_role_permissions_source_check CHECK (source IN ('um', 'application'));
ALTER TABLE um.builtin_role_permissions ALTER COLUMN source DROP DEFAULT;
COMMENT ON TABLE um.builtin_role_permissions IS
  'the permissions each built-in role of the template holds in every organization (um_set_role_template, um_grant_template_permission)';
COMMENT ON COLUMN um.builtin_role_permissions.permission IS 'a catalog permission, or a pattern with * (the root role holds exactly *)';
COMMENT ON COLUMN um.builtin_role_permissions.source IS
  'um: part of the default template of um''s script (not dumped); application: the application''s template (dumped)';

-- the root role holds every permission, in the template and in every organization
DELETE FROM um.builtin_role_permissions t WHERE t.role_key = 'root';
INSERT INTO um.builtin_role_permissions (role_key, permission, source) VALUES ('root', '*', 'um');
DELETE FROM um.role_permissions rp USING um.roles r
 WHERE r.builtin = 'root' AND rp.org_id = r.org_id AND rp.role_id = r.id;
INSERT INTO um.role_permissions (org_id, role_id, permission)
SELECT r.org_id, r.id, '*' FROM um.roles r WHERE r.builtin = 'root';

CREATE FUNCTION um_internal.builtin_role_permissions_before_write()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF (NEW.role_key = 'root') <> (NEW.permission = '*') THEN
    RAISE EXCEPTION 'the root role holds every permission, and only it holds * in the template'
      USING ERRCODE = 'UM042',
            HINT = 'Give * to no other built-in role; the root role needs nothing more.';
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION um_internal.builtin_role_permissions_before_write() IS
  'trigger on um.builtin_role_permissions: the root role holds exactly *, no other template role holds * (UM042)';

CREATE TRIGGER builtin_role_permissions_before_write BEFORE INSERT OR UPDATE ON um.builtin_role_permissions
  FOR EACH ROW EXECUTE FUNCTION um_internal.builtin_role_permissions_before_write();

UPDATE um.state_tables SET dump_filter = 'WHERE source = ''application'''
 WHERE relname IN ('builtin_roles', 'builtin_role_permissions');
SELECT pg_catalog.pg_extension_config_dump('um.builtin_roles', 'WHERE source = ''application''');
SELECT pg_catalog.pg_extension_config_dump('um.builtin_role_permissions', 'WHERE source = ''application''');

CREATE OR REPLACE FUNCTION um_internal.roles_before_write()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    IF OLD.builtin IS NOT NULL
       AND EXISTS (SELECT 1 FROM um.organizations o WHERE o.id = OLD.org_id) THEN
      RAISE EXCEPTION 'built-in role "%" cannot be deleted', OLD.name
        USING ERRCODE = 'UM042',
              DETAIL = 'Every organization keeps its built-in roles; their permissions can be edited.',
              HINT = 'Edit the role''s permissions instead, or create a custom role.';
    END IF;
    RETURN OLD;
  END IF;
  IF TG_OP = 'UPDATE' THEN
    IF NEW.org_id <> OLD.org_id THEN
      RAISE EXCEPTION 'a role cannot move to another organization'
        USING ERRCODE = 'UM046',
              HINT = 'Create a role of the same name in the other organization.';
    END IF;
    -- a built-in role stops being one only when the template drops it (the
    -- foreign key's SET NULL); it takes another name only when the template
    -- allows organizations to rename it, or to follow the template's name
    IF OLD.builtin IS NOT NULL AND NEW.builtin IS DISTINCT FROM OLD.builtin
       AND (NEW.builtin IS NOT NULL OR EXISTS (SELECT 1 FROM um.builtin_roles b WHERE b.key = OLD.builtin)) THEN
      RAISE EXCEPTION 'built-in role "%" cannot become another role', OLD.name
        USING ERRCODE = 'UM042',
              HINT = 'Drop the role from the template (um_drop_role_template) to make it a custom role everywhere.';
    END IF;
    IF OLD.builtin IS NOT NULL AND NEW.builtin IS NOT NULL AND NEW.name <> OLD.name
       AND NOT EXISTS (SELECT 1 FROM um.builtin_roles b
                        WHERE b.key = OLD.builtin AND (b.renamable OR b.name = NEW.name)) THEN
      RAISE EXCEPTION 'built-in role "%" cannot be renamed', OLD.name
        USING ERRCODE = 'UM042',
              DETAIL = 'The application keeps the names of its built-in roles the same in every organization.',
              HINT = 'Create a custom role with the name you want, including the built-in role if it should grant the same.';
    END IF;
    IF OLD.builtin IS NULL AND NEW.builtin IS NOT NULL THEN
      RAISE EXCEPTION 'custom role "%" cannot become a built-in role', OLD.name
        USING ERRCODE = 'UM042',
              HINT = 'Built-in roles are created with the organization.';
    END IF;
  END IF;
  IF NOT um_internal.display_name_is_valid(NEW.name, 100) THEN
    RAISE EXCEPTION 'invalid role name "%"', NEW.name
      USING ERRCODE = 'UM003',
            DETAIL = 'A name has 1 to 100 characters, no leading or trailing blanks and no control characters.',
            HINT = 'Trim the name.';
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION um_internal.roles_before_write() IS 'trigger on um.roles: built-in roles are not deleted, made from custom ones, or renamed unless the template allows it (UM042); no role moves to another organization; validates the name';

CREATE OR REPLACE FUNCTION um_internal.role_permissions_before_write()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_known boolean;
BEGIN
  PERFORM um_internal.assert_permission_name(NEW.permission, true);
  IF strpos(NEW.permission, '*') = 0 THEN
    v_known := EXISTS (SELECT 1 FROM um.permissions p WHERE p.name = NEW.permission);
  ELSE
    v_known := EXISTS (SELECT 1 FROM um.permissions p WHERE @extschema@.um_permission_matches(NEW.permission, p.name));
  END IF;
  IF NOT v_known THEN
    RAISE EXCEPTION 'unknown permission "%"', NEW.permission
      USING ERRCODE = 'UM011',
            DETAIL = 'No permission in the catalog (um.permissions) matches it.',
            HINT = 'Check the spelling, or register the permission first with um_register_permission().';
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION um_internal.role_permissions_before_write() IS 'trigger on um.role_permissions: the permission must be a valid name or pattern and name or match catalog permissions (UM010, UM011)';

CREATE OR REPLACE FUNCTION um_internal.permissions_before_write()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_roles bigint;
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM um_internal.assert_permission_name(NEW.name, false);
    RETURN NEW;
  END IF;
  IF OLD.builtin THEN
    RAISE EXCEPTION 'built-in permission "%" cannot be %', OLD.name,
                    CASE TG_OP WHEN 'DELETE' THEN 'removed' ELSE 'changed' END
      USING ERRCODE = 'UM048',
            HINT = 'um itself checks built-in permissions; remove them from roles instead.';
  END IF;
  IF TG_OP = 'UPDATE' THEN
    IF NEW.name <> OLD.name THEN
      RAISE EXCEPTION 'permission "%" cannot be renamed', OLD.name
        USING ERRCODE = 'UM048',
              HINT = 'Register the new name, move the grants, then remove the old one.';
    END IF;
    RETURN NEW;
  END IF;
  SELECT count(*) INTO v_roles FROM um.role_permissions rp WHERE rp.permission = OLD.name;
  IF EXISTS (SELECT 1 FROM um.builtin_role_permissions t WHERE t.permission = OLD.name) THEN
    RAISE EXCEPTION 'permission "%" is still in the role template', OLD.name
      USING ERRCODE = 'UM048',
            HINT = 'Take it from the template first (um_revoke_template_permission).';
  END IF;
  IF v_roles > 0 THEN
    RAISE EXCEPTION 'permission "%" is still granted by % role(s)', OLD.name, v_roles
      USING ERRCODE = 'UM048',
            HINT = 'Remove it from those roles first (see um.role_permissions).';
  END IF;
  RETURN OLD;
END
$$;
COMMENT ON FUNCTION um_internal.permissions_before_write() IS 'trigger on um.permissions: validates new names; built-in permissions are never changed or deleted, none is renamed, nor deleted while a role grants it (UM048)';

CREATE OR REPLACE FUNCTION um_internal.seed_builtin_roles(p_org_id bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_root bigint;
BEGIN
  LOCK TABLE um.builtin_roles IN ROW SHARE MODE;
  INSERT INTO um.roles (org_id, name, description, builtin)
  SELECT p_org_id, b.name, b.description, b.key
    FROM um.builtin_roles b ORDER BY b.position, b.key;
  INSERT INTO um.role_permissions (org_id, role_id, permission)
  SELECT p_org_id, r.id, t.permission
    FROM um.roles r JOIN um.builtin_role_permissions t ON t.role_key = r.builtin
   WHERE r.org_id = p_org_id;
  SELECT r.id INTO STRICT v_root FROM um.roles r WHERE r.org_id = p_org_id AND r.builtin = 'root';
  RETURN v_root;
END
$$;
COMMENT ON FUNCTION um_internal.seed_builtin_roles(bigint) IS
  'internal: gives an organization its built-in roles with the template''s permissions (um.builtin_roles, um.builtin_role_permissions); returns its Root role''s id';

CREATE OR REPLACE FUNCTION um_internal.require_role(p_org_id bigint, p_role text)
RETURNS um.roles
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.roles;
BEGIN
  SELECT * INTO v FROM um.roles r
   WHERE r.org_id = p_org_id AND (lower(r.name) = lower(p_role) OR r.builtin = p_role);
  IF NOT FOUND THEN
    RAISE EXCEPTION 'organization % has no role "%"', p_org_id, p_role
      USING ERRCODE = 'UM032',
            HINT = 'See the organization''s roles in um.roles; the built-in ones are those of um.role_template_list.';
  END IF;
  RETURN v;
END
$$;
COMMENT ON FUNCTION um_internal.require_role(bigint, text) IS
  'internal: an organization''s role by name (any letter case) or built-in key, or the error that names it (UM032)';

CREATE OR REPLACE FUNCTION um_internal.authorize_role_edit(p_action text, p_role_id bigint, p_permission text)
RETURNS um.roles
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_role um.roles;
  v_actor bigint;
BEGIN
  SELECT * INTO v_role FROM um.roles r WHERE r.id = p_role_id;
  v_actor := um_internal.authorize(p_action, format('edit role %s', p_role_id), 'role:update',
                          v_role.org_id, 'role', p_role_id);
  v_role := um_internal.require_role_id(p_role_id);
  IF v_actor IS NOT NULL AND v_role.builtin = 'root' AND NOT um_internal.is_root(v_role.org_id, v_actor) THEN
    PERFORM um_internal.deny(p_action, v_role.org_id, 'role', p_role_id, 'UM073',
      'only a Root may edit the Root role', NULL, 'Ask a Root of the organization.');
  END IF;
  IF p_action NOT IN ('role.grant_permission', 'role.revoke_permission') THEN
    RETURN v_role;                                  -- a rename, a description, an inclusion
  END IF;
  IF v_role.builtin = 'root' THEN
    PERFORM um_internal.raise('UM042', format('role "%s" is the root role: it holds every permission', v_role.name),
      'The root role''s permissions are * in every organization, so that its members can hand out any of them.',
      'Give the permission to, or take it from, another role.');
  END IF;
  IF p_permission IS NULL THEN
    PERFORM um_internal.raise('UM009', 'a permission is required', NULL, 'Pass "resource:action", or a pattern with *.');
  END IF;
  PERFORM um_internal.assert_permission_name(p_permission, true);
  RETURN v_role;
END
$$;
COMMENT ON FUNCTION um_internal.authorize_role_edit(text, bigint, text) IS
  'internal: authorization for editing a role: role:update, only a Root edits the Root role; for a permission, never the root role''s and a valid name or pattern; returns the role';

-- The role template: the built-in roles every organization has, and what
-- they hold.  The application changes it from its migrations, as a um
-- administrator with nobody acting; every change reaches every existing
-- organization in the same transaction and every organization made later.
--
-- An organization's built-in role follows the template's permissions (a
-- permission added to the template is added to the role, one taken away is
-- taken away), its display name (unless the organization renamed it) and
-- its description (unless changed there).  Permissions an organization
-- added to or took from its own copy otherwise stay as they are.  The root
-- role (key root) holds * and always stays; it can be renamed.

-- The root role stays in the template and holds exactly *.  A row of the
-- application's template arriving while um's default is in place and no
-- organization has roles is a restore (pg_dump keeps only the application's
-- template): the default makes way for it.
CREATE FUNCTION um_internal.builtin_roles_before_write()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    IF OLD.key = 'root' AND (OLD.source <> 'um' OR EXISTS (SELECT 1 FROM um.roles r WHERE r.builtin = 'root')) THEN
      RAISE EXCEPTION 'the root role cannot be dropped from the template'
        USING ERRCODE = 'UM042',
              DETAIL = 'Every organization has one root role: its owners, whom the last-Root rule protects.',
              HINT = 'Give it the display name you want (um_set_role_template(''root'', ...)).';
    END IF;
    RETURN OLD;
  END IF;
  IF TG_OP = 'UPDATE' AND NEW.key <> OLD.key THEN
    RAISE EXCEPTION 'the key of built-in role "%" cannot change', OLD.name
      USING ERRCODE = 'UM042', HINT = 'Keys are stable: change the display name instead.';
  END IF;
  IF TG_OP = 'INSERT' AND NEW.source = 'application'
     AND EXISTS (SELECT 1 FROM um.builtin_roles b WHERE b.source = 'um')
     AND NOT EXISTS (SELECT 1 FROM um.roles r WHERE r.builtin IS NOT NULL) THEN
    DELETE FROM um.builtin_roles b WHERE b.source = 'um';    -- their permissions go with them
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION um_internal.builtin_roles_before_write() IS
  'trigger on um.builtin_roles: the root role stays and keys never change (UM042); a restored application template replaces um''s default';
CREATE TRIGGER builtin_roles_before_write BEFORE INSERT OR UPDATE OR DELETE ON um.builtin_roles
  FOR EACH ROW EXECUTE FUNCTION um_internal.builtin_roles_before_write();

-- Who changes the template: a um administrator, with nobody acting.
CREATE FUNCTION um_internal.authorize_template(p_action text, p_what text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF @extschema@.um_current_user_id() IS NOT NULL THEN
    PERFORM um_internal.deny(p_action, NULL, 'role_template', NULL, 'UM070',
      'permission denied to ' || p_what,
      'The role template is shared by every organization; only a um administrator, with nobody acting, changes it.',
      'Change the application''s roles from its migrations, as a um administrator.');
  END IF;
  PERFORM um_internal.authorize(p_action, p_what, NULL, NULL, 'role_template', NULL);
  -- one template change at a time, and none while an organization is being
  -- made (um_internal.seed_builtin_roles takes ROW SHARE)
  LOCK TABLE um.builtin_roles IN EXCLUSIVE MODE;
  -- from the first change on, the whole template is the application's,
  -- which pg_dump keeps
  UPDATE um.builtin_role_permissions t SET source = 'application' WHERE t.source = 'um';
  UPDATE um.builtin_roles b SET source = 'application' WHERE b.source = 'um';
END
$$;
COMMENT ON FUNCTION um_internal.authorize_template(text, text) IS
  'internal: only a um administrator with nobody acting changes the role template (UM070, audited); locks it and makes it the application''s';

CREATE FUNCTION um_internal.require_template(p_key text)
RETURNS um.builtin_roles
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.builtin_roles;
BEGIN
  SELECT * INTO v FROM um.builtin_roles b WHERE b.key = p_key;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'the role template has no role "%"', left(p_key, 100)
      USING ERRCODE = 'UM039',
            HINT = 'See the template''s roles in um.role_template_list, or add one with um_set_role_template().';
  END IF;
  RETURN v;
END
$$;
COMMENT ON FUNCTION um_internal.require_template(text) IS 'internal: the template role of that key, or UM039';

-- A permission or pattern a template role may hold: valid, known to the
-- catalog, and never for the root role (which holds *) nor * for another.
CREATE FUNCTION um_internal.assert_template_permission(p_key text, p_permission text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF p_permission IS NULL THEN
    PERFORM um_internal.raise('UM009', 'a permission is required', NULL, 'Pass "resource:action", or a pattern with *.');
  END IF;
  PERFORM um_internal.assert_permission_name(p_permission, true);
  IF p_key = 'root' THEN
    PERFORM um_internal.raise('UM042', 'the root role holds every permission',
      'Its permissions are * in every organization: the catalog''s, and every permission registered later.', 
      'Give the permission to the other roles that need it.');
  END IF;
  IF p_permission IN ('*', '*:*') THEN                 -- both stand for every permission
    PERFORM um_internal.raise('UM042', 'only the root role holds *',
      format('Built-in role "%s" would hold every permission, the root role''s included.', p_key),
      'Give it patterns for the parts it needs (invoice:*, *:read).');
  END IF;
  IF NOT EXISTS (SELECT 1 FROM um.permissions p WHERE @extschema@.um_permission_matches(p_permission, p.name)) THEN
    PERFORM um_internal.raise('UM011', format('unknown permission "%s"', p_permission),
      'No permission in the catalog (um.permissions) matches it.',
      'Register the permission first with um_register_permission().');
  END IF;
END
$$;
COMMENT ON FUNCTION um_internal.assert_template_permission(text, text) IS
  'internal: a permission or pattern a template role may hold (UM009, UM010, UM011; UM042 for the root role or *)';

-- Add a permission to a template role and to that role in every organization.
CREATE FUNCTION um_internal.template_add(p_key text, p_permission text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  INSERT INTO um.builtin_role_permissions (role_key, permission, source)
  VALUES (p_key, p_permission, 'application') ON CONFLICT DO NOTHING;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  INSERT INTO um.role_permissions (org_id, role_id, permission)
  SELECT r.org_id, r.id, p_permission FROM um.roles r WHERE r.builtin = p_key
  ON CONFLICT DO NOTHING;
  RETURN true;
END
$$;
COMMENT ON FUNCTION um_internal.template_add(text, text) IS
  'internal: adds a permission to a template role and to that built-in role of every organization; false when the template had it';

CREATE FUNCTION um_internal.template_remove(p_key text, p_permission text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  DELETE FROM um.builtin_role_permissions t WHERE t.role_key = p_key AND t.permission = p_permission;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  DELETE FROM um.role_permissions rp USING um.roles r
   WHERE r.builtin = p_key AND rp.org_id = r.org_id AND rp.role_id = r.id AND rp.permission = p_permission;
  RETURN true;
END
$$;
COMMENT ON FUNCTION um_internal.template_remove(text, text) IS
  'internal: takes a permission from a template role and from that built-in role of every organization; false when the template did not have it';

-- A display name for a template role that no other role uses: not another
-- template role, not a role of an organization that would get it.
CREATE FUNCTION um_internal.assert_template_name(p_key text, p_name text, p_old_name text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_slug text;
  v_n bigint;
BEGIN
  IF p_name IS NULL OR NOT um_internal.display_name_is_valid(p_name, 100) THEN
    PERFORM um_internal.raise('UM003', format('invalid role name "%s"', left(p_name, 100)),
      'A name has 1 to 100 characters, no leading or trailing blanks and no control characters.',
      'Trim or shorten the name.');
  END IF;
  IF EXISTS (SELECT 1 FROM um.builtin_roles b WHERE lower(b.name) = lower(p_name) AND b.key <> p_key) THEN
    PERFORM um_internal.raise('UM026', format('the role template already has a role named "%s"', p_name),
      NULL, 'Choose another name (role names are unique regardless of letter case).');
  END IF;
  -- the organizations whose copy would take the name: all of them for a new
  -- role, those that kept the template's name for a renamed one
  SELECT min(o.slug), count(*) INTO v_slug, v_n
    FROM um.roles x JOIN um.organizations o ON o.id = x.org_id
   WHERE lower(x.name) = lower(p_name) AND x.builtin IS DISTINCT FROM p_key
     AND (p_old_name IS NULL
          OR EXISTS (SELECT 1 FROM um.roles r WHERE r.org_id = x.org_id AND r.builtin = p_key AND r.name = p_old_name));
  IF v_n > 0 THEN
    PERFORM um_internal.raise('UM026', format('%s organization(s) already have a role named "%s"', v_n, p_name),
      format('Organization "%s" is one of them.', v_slug),
      'Choose another name, or have those organizations rename their role first.');
  END IF;
END
$$;
COMMENT ON FUNCTION um_internal.assert_template_name(text, text, text) IS
  'internal: a valid display name for a template role that no other template role and no role of an organization that would take it uses (UM003, UM026)';

CREATE FUNCTION um_internal.do_set_role_template(p_key text, p_name text, p_description text, p_permissions text[],
                                        p_renamable boolean, p_position integer)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_old um.builtin_roles;
  v_p text;
  v_added text[];
  v_removed text[];
BEGIN
  PERFORM um_internal.authorize_template('role_template.set', 'change the role template');
  IF p_key IS NULL OR p_key !~ '^[a-z][a-z0-9_]{0,62}$' THEN
    PERFORM um_internal.raise('UM009', format('invalid role template key "%s"', left(p_key, 100)),
      'A key is a lower-case letter followed by up to 62 lower-case letters, digits or _.',
      'Pass a stable identifier such as ''billing_admin''.');
  END IF;
  IF p_position IS NOT NULL AND p_position < 1 THEN
    PERFORM um_internal.raise('UM009', 'a position is a positive number', NULL, 'Pass 1 for the first role, or NULL.');
  END IF;
  SELECT * INTO v_old FROM um.builtin_roles b WHERE b.key = p_key;
  PERFORM um_internal.assert_template_name(p_key, p_name, CASE WHEN v_old.key IS NULL THEN NULL ELSE v_old.name END);
  IF p_permissions IS NOT NULL AND NOT (p_key = 'root' AND p_permissions = '{*}') THEN
    FOREACH v_p IN ARRAY p_permissions LOOP
      PERFORM um_internal.assert_template_permission(p_key, v_p);
    END LOOP;
  END IF;

  IF v_old.key IS NULL THEN
    INSERT INTO um.builtin_roles (key, name, description, position, renamable, source)
    VALUES (p_key, p_name, p_description,
            coalesce(p_position, (SELECT coalesce(max(b.position), 0) + 1 FROM um.builtin_roles b)),
            coalesce(p_renamable, false), 'application');
    INSERT INTO um.roles (org_id, name, description, builtin)
    SELECT o.id, p_name, p_description, p_key FROM um.organizations o ORDER BY o.id;
    SELECT array_agg(DISTINCT x ORDER BY x) INTO v_added FROM unnest(p_permissions) AS x;
    PERFORM um_internal.template_add(p_key, x) FROM unnest(v_added) AS x;
    PERFORM um_internal.audit('role_template.set', NULL, 'role_template', NULL,
                     jsonb_build_object('key', p_key, 'created', true, 'name', p_name,
                                        'permissions', to_jsonb(coalesce(v_added, '{}'))));
    RETURN true;
  END IF;

  p_description := coalesce(p_description, v_old.description);      -- NULL: as it is
  UPDATE um.builtin_roles b
     SET name = p_name, description = p_description,
         renamable = coalesce(p_renamable, b.renamable), position = coalesce(p_position, b.position)
   WHERE b.key = p_key;
  -- the organizations that kept the template's name and description follow it
  UPDATE um.roles r SET name = p_name
   WHERE r.builtin = p_key AND r.name = v_old.name AND p_name <> v_old.name;
  UPDATE um.roles r SET description = p_description
   WHERE r.builtin = p_key AND r.description IS NOT DISTINCT FROM v_old.description
     AND p_description IS DISTINCT FROM v_old.description;
  IF p_permissions IS NOT NULL AND p_key <> 'root' THEN
    SELECT array_agg(DISTINCT x ORDER BY x) INTO v_added FROM unnest(p_permissions) AS x
     WHERE NOT EXISTS (SELECT 1 FROM um.builtin_role_permissions t WHERE t.role_key = p_key AND t.permission = x);
    SELECT array_agg(t.permission ORDER BY t.permission) INTO v_removed FROM um.builtin_role_permissions t
     WHERE t.role_key = p_key AND t.permission <> ALL (p_permissions);
    PERFORM um_internal.template_add(p_key, x) FROM unnest(v_added) AS x;
    PERFORM um_internal.template_remove(p_key, x) FROM unnest(v_removed) AS x;
  END IF;
  PERFORM um_internal.audit('role_template.set', NULL, 'role_template', NULL,
                   jsonb_build_object('key', p_key, 'created', false, 'name', p_name,
                                      'added', to_jsonb(coalesce(v_added, '{}')),
                                      'removed', to_jsonb(coalesce(v_removed, '{}'))));
  RETURN false;
END
$$;
COMMENT ON FUNCTION um_internal.do_set_role_template(text, text, text, text[], boolean, integer) IS
  'body of um_set_role_template: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_set_role_template (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_grant_template_permission(p_key text, p_permission text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM um_internal.authorize_template('role_template.grant_permission', 'change the role template');
  PERFORM um_internal.require_template(p_key);
  PERFORM um_internal.assert_template_permission(p_key, p_permission);
  IF NOT um_internal.template_add(p_key, p_permission) THEN
    RETURN false;
  END IF;
  PERFORM um_internal.audit('role_template.grant_permission', NULL, 'role_template', NULL,
                   jsonb_build_object('key', p_key, 'permission', p_permission));
  RETURN true;
END
$$;
COMMENT ON FUNCTION um_internal.do_grant_template_permission(text, text) IS
  'body of um_grant_template_permission: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_grant_template_permission (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_revoke_template_permission(p_key text, p_permission text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM um_internal.authorize_template('role_template.revoke_permission', 'change the role template');
  PERFORM um_internal.require_template(p_key);
  IF p_key = 'root' THEN
    PERFORM um_internal.assert_template_permission(p_key, coalesce(p_permission, '*'));   -- UM042
  END IF;
  IF p_permission IS NULL THEN
    PERFORM um_internal.raise('UM009', 'a permission is required', NULL, 'Pass "resource:action", or a pattern with *.');
  END IF;
  PERFORM um_internal.assert_permission_name(p_permission, true);
  IF NOT um_internal.template_remove(p_key, p_permission) THEN
    RETURN false;
  END IF;
  PERFORM um_internal.audit('role_template.revoke_permission', NULL, 'role_template', NULL,
                   jsonb_build_object('key', p_key, 'permission', p_permission));
  RETURN true;
END
$$;
COMMENT ON FUNCTION um_internal.do_revoke_template_permission(text, text) IS
  'body of um_revoke_template_permission: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_revoke_template_permission (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_drop_role_template(p_key text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_n bigint;
BEGIN
  PERFORM um_internal.authorize_template('role_template.drop', 'change the role template');
  PERFORM um_internal.require_template(p_key);
  IF p_key = 'root' THEN
    PERFORM um_internal.raise('UM042', 'the root role cannot be dropped from the template',
      'Every organization has one root role: its owners, whom the last-Root rule protects.',
      'Give it the display name you want (um_set_role_template(''root'', ...)).');
  END IF;
  SELECT count(*) INTO v_n FROM um.roles r WHERE r.builtin = p_key;
  -- every organization's copy becomes a custom role (the foreign key's SET
  -- NULL): its members, grants and permissions stay as they are
  DELETE FROM um.builtin_roles b WHERE b.key = p_key;
  PERFORM um_internal.audit('role_template.drop', NULL, 'role_template', NULL,
                   jsonb_build_object('key', p_key, 'organizations', v_n));
END
$$;
COMMENT ON FUNCTION um_internal.do_drop_role_template(text) IS
  'body of um_drop_role_template: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_drop_role_template (EXECUTE held by nobody)';

-- ---------------------------------------------------------------------------
-- What the template is, for everybody to read.

CREATE VIEW um.role_template_list AS
SELECT b.key, b.name, b.description, b.position, b.key = 'root' AS root, b.renamable,
       ARRAY(SELECT t.permission FROM um.builtin_role_permissions t
              WHERE t.role_key = b.key ORDER BY t.permission) AS permissions,
       b.source
  FROM um.builtin_roles b;
COMMENT ON VIEW um.role_template_list IS 'the role template: the built-in roles every organization has, with their permissions';
COMMENT ON COLUMN um.role_template_list.key IS 'the stable key (um.roles.builtin)';
COMMENT ON COLUMN um.role_template_list.name IS 'the display name organizations get';
COMMENT ON COLUMN um.role_template_list.description IS 'what the role is for';
COMMENT ON COLUMN um.role_template_list.position IS 'display order';
COMMENT ON COLUMN um.role_template_list.root IS 'the root role: holds every permission, always has an active member';
COMMENT ON COLUMN um.role_template_list.renamable IS 'organizations may give it a name of their own';
COMMENT ON COLUMN um.role_template_list.permissions IS 'permissions and patterns it holds in every organization';
COMMENT ON COLUMN um.role_template_list.source IS 'um: um''s default template; application: changed by the application';

-- ---------------------------------------------------------------------------
-- The public functions (src/lifecycle.c's entry point calls um.do_<name>).

CREATE FUNCTION @extschema@.um_set_role_template(key text, name text, description text DEFAULT NULL,
                                                 permissions text[] DEFAULT NULL, renamable boolean DEFAULT NULL,
                                                 "position" integer DEFAULT NULL)
RETURNS boolean AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_set_role_template(text, text, text, text[], boolean, integer) IS
  'um administrators: add a built-in role to every organization, or change one (its name; description, permissions, renamable and position when not NULL); true when added';

CREATE FUNCTION @extschema@.um_grant_template_permission(key text, permission text)
RETURNS boolean AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_grant_template_permission(text, text) IS
  'um administrators: give a built-in role a permission or pattern in every organization, now and later; false when it had it';

CREATE FUNCTION @extschema@.um_revoke_template_permission(key text, permission text)
RETURNS boolean AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_revoke_template_permission(text, text) IS
  'um administrators: take a permission or pattern from a built-in role in every organization; false when the template did not have it';

CREATE FUNCTION @extschema@.um_drop_role_template(key text)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_drop_role_template(text) IS
  'um administrators: remove a built-in role from the template; each organization keeps its copy as a custom role (never the root role)';
DROP FUNCTION @extschema@.um_register_permission(text, text);
DROP FUNCTION um_internal.do_register_permission(text, text);

CREATE FUNCTION um_internal.do_register_permission(p_permission text, p_description text, p_roles text[])
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_key text;
BEGIN
  IF @extschema@.um_current_user_id() IS NOT NULL THEN
    PERFORM um_internal.deny('permission.register', NULL, 'permission', NULL, 'UM070',
      'permission denied to change the permission catalog',
      'The catalog is shared by every organization; only a um administrator, with nobody acting, changes it.',
      'Register the application''s permissions from its migrations, as a um administrator.');
  END IF;
  PERFORM um_internal.authorize('permission.register', 'change the permission catalog', NULL, NULL, 'permission', NULL);
  IF p_permission IS NULL THEN
    RAISE EXCEPTION 'a permission name is required'
      USING ERRCODE = 'UM010', HINT = 'Pass "resource:action", e.g. ''invoice:read''.';
  END IF;
  PERFORM um_internal.assert_permission_name(p_permission, false);
  IF cardinality(p_roles) > 0 THEN
    PERFORM um_internal.authorize_template('permission.register', 'change the role template');
    FOREACH v_key IN ARRAY p_roles LOOP
      PERFORM um_internal.require_template(v_key);                          -- UM039 before any change
    END LOOP;
  END IF;
  INSERT INTO um.permissions AS p (name, description)
  VALUES (p_permission, p_description)
  ON CONFLICT (name) DO UPDATE
     SET description = coalesce(excluded.description, p.description)
   WHERE NOT p.builtin;
  -- the roles that hold it, in every organization (the root role holds
  -- every permission already)
  PERFORM um_internal.template_add(k, p_permission)
     FROM unnest(p_roles) AS k WHERE k <> 'root';
  PERFORM um_internal.audit('permission.register', NULL, 'permission', NULL,
                   jsonb_build_object('permission', p_permission, 'roles', to_jsonb(coalesce(p_roles, '{}'))));
END
$$;
COMMENT ON FUNCTION um_internal.do_register_permission(text, text, text[]) IS
  'body of um_register_permission: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_register_permission (EXECUTE held by nobody)';

CREATE FUNCTION @extschema@.um_register_permission(permission text, description text DEFAULT NULL,
                                                   roles text[] DEFAULT NULL)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_register_permission(text, text, text[]) IS
  'um administrators: add an application permission ("resource:action") to the catalog and give it to the built-in roles whose keys are listed, in every organization; idempotent';


-- Tenants rename their roles and describe them, and make roles include others (issue 16, item 3).

CREATE FUNCTION um_internal.do_rename_role(p_role_id bigint, p_name text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_role um.roles := um_internal.authorize_role_edit('role.rename', p_role_id, NULL);
BEGIN
  IF p_name IS NULL OR NOT um_internal.display_name_is_valid(p_name, 100) THEN
    PERFORM um_internal.raise('UM003', format('invalid role name "%s"', left(p_name, 100)),
      'A name has 1 to 100 characters, no leading or trailing blanks and no control characters.',
      'Trim or shorten the name.');
  END IF;
  IF v_role.builtin IS NOT NULL
     AND NOT EXISTS (SELECT 1 FROM um.builtin_roles b WHERE b.key = v_role.builtin AND (b.renamable OR b.name = p_name)) THEN
    PERFORM um_internal.raise('UM042', format('built-in role "%s" cannot be renamed', v_role.name),
      'The application keeps the names of its built-in roles the same in every organization.',
      'Create a custom role with the name you want, including the built-in role if it should grant the same.');
  END IF;
  IF p_name = v_role.name THEN
    RETURN;
  END IF;
  IF EXISTS (SELECT 1 FROM um.roles r WHERE r.org_id = v_role.org_id AND lower(r.name) = lower(p_name) AND r.id <> p_role_id) THEN
    RAISE EXCEPTION 'organization % already has a role named "%"', v_role.org_id, p_name
      USING ERRCODE = 'UM026', HINT = 'Choose another name (role names are unique regardless of letter case).';
  END IF;
  UPDATE um.roles r SET name = p_name WHERE r.id = p_role_id;
  PERFORM um_internal.audit('role.rename', v_role.org_id, 'role', p_role_id,
                   jsonb_build_object('from', v_role.name, 'to', p_name));
END
$$;
COMMENT ON FUNCTION um_internal.do_rename_role(bigint, text) IS
  'body of um_rename_role: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_rename_role (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_set_role_description(p_role_id bigint, p_description text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_role um.roles := um_internal.authorize_role_edit('role.update', p_role_id, NULL);
BEGIN
  IF length(p_description) > 1000 THEN
    PERFORM um_internal.raise('UM009', 'a role description has at most 1000 characters', NULL, 'Shorten the description.');
  END IF;
  IF p_description IS NOT DISTINCT FROM v_role.description THEN
    RETURN;
  END IF;
  UPDATE um.roles r SET description = p_description WHERE r.id = p_role_id;
  PERFORM um_internal.audit('role.update', v_role.org_id, 'role', p_role_id, jsonb_build_object('description', p_description));
END
$$;
COMMENT ON FUNCTION um_internal.do_set_role_description(bigint, text) IS
  'body of um_set_role_description: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_set_role_description (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_include_role(p_role_id bigint, p_included_role_id bigint)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_role um.roles := um_internal.authorize_role_edit('role.include', p_role_id, NULL);
  v_included um.roles;
BEGIN
  SELECT * INTO v_included FROM um.roles r WHERE r.id = p_included_role_id AND r.org_id = v_role.org_id;
  IF NOT FOUND THEN
    PERFORM um_internal.raise('UM032', format('organization %s has no role %s', v_role.org_id, coalesce(p_included_role_id::text, 'NULL')),
      NULL, 'Pass the id of a role of the same organization (see um.roles).');
  END IF;
  IF p_included_role_id = p_role_id THEN
    PERFORM um_internal.raise('UM040', format('role "%s" cannot include itself', v_role.name), NULL,
      'Include other roles only.');
  END IF;
  PERFORM um_internal.guard_escalation(@extschema@.um_current_user_id(), v_role.org_id, NULL,
                              ARRAY(SELECT um_internal.role_grants(p_included_role_id)),
                              'role.include', format('make role "%s" include role "%s"', v_role.name, v_included.name),
                              'role', p_role_id);
  INSERT INTO um.role_inclusions (org_id, role_id, included_role_id)
  VALUES (v_role.org_id, p_role_id, p_included_role_id)
  ON CONFLICT DO NOTHING;                                   -- a cycle: UM040 from its trigger
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  PERFORM um_internal.audit('role.include', v_role.org_id, 'role', p_role_id,
                   jsonb_build_object('included_role_id', p_included_role_id));
  RETURN true;
END
$$;
COMMENT ON FUNCTION um_internal.do_include_role(bigint, bigint) IS
  'body of um_include_role: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_include_role (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_exclude_role(p_role_id bigint, p_included_role_id bigint)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_role um.roles := um_internal.authorize_role_edit('role.exclude', p_role_id, NULL);
BEGIN
  DELETE FROM um.role_inclusions ri
   WHERE ri.org_id = v_role.org_id AND ri.role_id = p_role_id AND ri.included_role_id = p_included_role_id;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  PERFORM um_internal.audit('role.exclude', v_role.org_id, 'role', p_role_id,
                   jsonb_build_object('included_role_id', p_included_role_id));
  RETURN true;
END
$$;
COMMENT ON FUNCTION um_internal.do_exclude_role(bigint, bigint) IS
  'body of um_exclude_role: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_exclude_role (EXECUTE held by nobody)';

CREATE FUNCTION @extschema@.um_rename_role(role_id bigint, name text)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_rename_role(bigint, text) IS
  'rename a custom role, or a built-in one the template lets organizations rename (role:update; the Root role only by a Root)';

CREATE FUNCTION @extschema@.um_set_role_description(role_id bigint, description text)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_set_role_description(bigint, text) IS
  'set or clear (NULL) a role''s description (role:update; the Root role only by a Root)';

CREATE FUNCTION @extschema@.um_include_role(role_id bigint, included_role_id bigint)
RETURNS boolean AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_include_role(bigint, bigint) IS
  'make a role grant everything another role of the organization grants (role:update; only with every permission of the included role; no cycles); false when it did';

CREATE FUNCTION @extschema@.um_exclude_role(role_id bigint, included_role_id bigint)
RETURNS boolean AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_exclude_role(bigint, bigint) IS
  'stop a role including another (role:update); false when it did not';


ALTER VIEW um.role_template_list SET (security_invoker = true);
GRANT SELECT ON um.role_template_list TO PUBLIC;
REVOKE EXECUTE ON FUNCTION um_internal.authorize_template(text, text), um_internal.require_template(text),
  um_internal.assert_template_permission(text, text), um_internal.template_add(text, text), um_internal.template_remove(text, text),
  um_internal.assert_template_name(text, text, text),
  um_internal.do_set_role_template(text, text, text, text[], boolean, integer), um_internal.do_grant_template_permission(text, text),
  um_internal.do_revoke_template_permission(text, text), um_internal.do_drop_role_template(text),
  um_internal.do_register_permission(text, text, text[]), um_internal.do_rename_role(bigint, text),
  um_internal.do_set_role_description(bigint, text), um_internal.do_include_role(bigint, bigint), um_internal.do_exclude_role(bigint, bigint),
  um_internal.builtin_roles_before_write(), um_internal.builtin_role_permissions_before_write()
  FROM PUBLIC;

-- the comments 97_trigger_comments gives these triggers (a new function, or a changed comment)
DO $$
DECLARE
  t record;
BEGIN
  FOR t IN SELECT tg.tgname, tg.tgrelid::regclass AS rel, tg.tgfoid::regprocedure AS fn,
                  obj_description(tg.tgfoid, 'pg_proc') AS what
             FROM pg_catalog.pg_trigger tg
            WHERE tg.tgname IN ('roles_before_write', 'builtin_roles_before_write', 'builtin_role_permissions_before_write')
              AND tg.tgrelid IN ('um.roles'::regclass, 'um.builtin_roles'::regclass, 'um.builtin_role_permissions'::regclass) LOOP
    EXECUTE format('COMMENT ON TRIGGER %I ON %s IS %L', t.tgname, t.rel,
                   format('runs %s: %s', t.fn, coalesce(t.what, 'see its definition')));
  END LOOP;
END
$$;

-- Issue 16, item 3: lifecycle calls of scope nodes (create with a ref,
-- rename, move, inheritance, delete a subtree) and of organizations
-- (rename, new slug, deletion); UM023 and UM081 (um.error_codes above).

-- Deleting what application rows may reference.  A foreign key of an
-- application table into um's tables refuses the deletion while rows hold
-- it (one that cascades is refused earlier: um_internal.assert_no_app_cascades);
-- um names the table.  PostgreSQL checks such a key by querying the table as
-- its owner; a key whose column is not bigint makes that query run a cast,
-- the application's code, inside the deleting user's transaction, so
-- deletion is refused outright while one exists (um_lint reports it).
CREATE FUNCTION um_internal.delete_referenced(p_table text, p_id bigint, p_what text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_key record;
  v_schema text;
  v_table text;
  v_constraint text;
BEGIN
  -- A deferrable key of the application's would be checked at COMMIT, after
  -- the deletion said it succeeded; making it immediate here (SET
  -- CONSTRAINTS) would fire the application's pending constraint triggers of
  -- that name inside this body, with um's owner's rights.  Refused instead.
  SELECT c.conrelid::regclass AS tbl, c.conname INTO v_key
    FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
   WHERE c.contype = 'f' AND c.condeferrable
     AND c.confrelid IN (SELECT k.oid FROM pg_class k WHERE k.relnamespace = 'um'::regnamespace)
     AND t.relnamespace <> 'um'::regnamespace
   ORDER BY c.oid LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'cannot delete %: table % has a deferrable foreign key into um', p_what, v_key.tbl
      USING ERRCODE = 'UM081',
            DETAIL = format('Constraint %s would be checked only at COMMIT, after the deletion said it succeeded.', v_key.conname),
            HINT = format('ALTER TABLE %s ALTER CONSTRAINT %I NOT DEFERRABLE;', v_key.tbl, v_key.conname);
  END IF;
  SELECT c.conrelid::regclass AS tbl, c.conname, a.attname INTO v_key
    FROM pg_constraint c
    JOIN pg_class t ON t.oid = c.conrelid
    JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
   WHERE c.contype = 'f'
     AND c.confrelid IN (SELECT k.oid FROM pg_class k WHERE k.relnamespace = 'um'::regnamespace)
     AND t.relnamespace <> 'um'::regnamespace
     AND a.atttypid <> 'int8'::regtype
   ORDER BY c.oid LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'cannot delete %: table % has a foreign key into um whose column is not bigint', p_what, v_key.tbl
      USING ERRCODE = 'UM081',
            DETAIL = format('Constraint %s, column %s: PostgreSQL would run the column''s cast, the table''s code, while deleting.', v_key.conname, v_key.attname),
            HINT = format('Make column %s of %s bigint.', v_key.attname, v_key.tbl);
  END IF;
  BEGIN
    CASE p_table
      WHEN 'organizations' THEN DELETE FROM um.organizations o WHERE o.id = p_id;
      WHEN 'scopes' THEN DELETE FROM um.scopes s WHERE s.id = p_id;
    END CASE;
  EXCEPTION WHEN foreign_key_violation THEN
    GET STACKED DIAGNOSTICS v_schema = SCHEMA_NAME, v_table = TABLE_NAME, v_constraint = CONSTRAINT_NAME;
    IF v_schema = 'um' THEN
      RAISE;                                        -- um's own rule: not the application's rows
    END IF;
    RAISE EXCEPTION 'cannot delete %: rows of table %.% still reference it', p_what, quote_ident(v_schema), quote_ident(v_table)
      USING ERRCODE = 'UM081',
            DETAIL = format('Foreign key %s of %I.%I refers to what the deletion removes.', v_constraint, v_schema, v_table),
            HINT = format('Delete or move the rows of %I.%I that reference it first.', v_schema, v_table);
  END;
END
$$;
COMMENT ON FUNCTION um_internal.delete_referenced(text, bigint, text) IS
  'internal: deletes an organization or a scope node (with everything under it), refusing with UM081 named after the application table whose foreign key still references it, or whose key is deferrable or its column not bigint';

-- Renaming, a new slug, deletion.  A new slug changes the organization's
-- URLs and what its members type at login: like deletion, only a Root or a
-- um administrator does it.
CREATE FUNCTION um_internal.authorize_root(p_action text, p_what text, p_permission text, p_org_id bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um_internal.authorize(p_action, p_what, p_permission, p_org_id, 'organization', p_org_id);
BEGIN
  IF v_actor IS NOT NULL AND NOT um_internal.is_root(p_org_id, v_actor) THEN
    PERFORM um_internal.deny(p_action, p_org_id, 'organization', p_org_id, 'UM070',
      'permission denied to ' || p_what,
      format('Only a Root of organization %s (or a um administrator) may.', p_org_id),
      'Ask a Root of the organization.');
  END IF;
  RETURN v_actor;
END
$$;
COMMENT ON FUNCTION um_internal.authorize_root(text, text, text, bigint) IS
  'internal: um_internal.authorize, and the acting user must also be a Root of the organization (UM070, audited)';

CREATE FUNCTION um_internal.do_rename_organization(p_org_id bigint, p_name text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_old text;
BEGIN
  PERFORM um_internal.authorize('organization.rename', format('rename organization %s', p_org_id),
                       'org:update', p_org_id, 'organization', p_org_id);
  SELECT o.name INTO v_old FROM um.organizations o WHERE o.id = p_org_id FOR NO KEY UPDATE;
  PERFORM um_internal.require_organization(p_org_id);          -- deleted meanwhile: UM030
  IF p_name IS NOT DISTINCT FROM v_old THEN
    RETURN;
  END IF;
  IF p_name IS NULL THEN
    PERFORM um_internal.raise('UM003', 'invalid organization name "NULL"', NULL, 'Pass a name of 1 to 200 characters.');
  END IF;
  UPDATE um.organizations o SET name = p_name WHERE o.id = p_org_id;     -- UM003
  PERFORM um_internal.audit('organization.rename', p_org_id, 'organization', p_org_id,
                   jsonb_build_object('from', v_old, 'to', p_name));
END
$$;
COMMENT ON FUNCTION um_internal.do_rename_organization(bigint, text) IS
  'body of um_rename_organization: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_rename_organization (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_set_org_slug(p_org_id bigint, p_slug text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_old text;
BEGIN
  PERFORM um_internal.authorize_root('organization.set_slug', format('change the slug of organization %s', p_org_id),
                            'org:update', p_org_id);
  SELECT o.slug INTO v_old FROM um.organizations o WHERE o.id = p_org_id FOR NO KEY UPDATE;
  PERFORM um_internal.require_organization(p_org_id);          -- deleted meanwhile: UM030
  IF p_slug IS NOT DISTINCT FROM v_old THEN
    RETURN;
  END IF;
  IF p_slug IS NULL OR NOT um_internal.slug_is_valid(p_slug) THEN
    PERFORM um_internal.raise('UM002', format('invalid organization slug "%s"', coalesce(p_slug, 'NULL')),
      'A slug has 1 to 63 lowercase ASCII letters, digits and hyphens, and starts and ends with a letter or digit.',
      'Use something like "acme" or "acme-eu".');
  END IF;
  BEGIN
    UPDATE um.organizations o SET slug = p_slug WHERE o.id = p_org_id;
  EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'organization slug "%" is already taken', p_slug
      USING ERRCODE = 'UM021', HINT = 'Choose another slug.';
  END;
  PERFORM um_internal.audit('organization.set_slug', p_org_id, 'organization', p_org_id,
                   jsonb_build_object('from', v_old, 'to', p_slug));
END
$$;
COMMENT ON FUNCTION um_internal.do_set_org_slug(bigint, text) IS
  'body of um_set_org_slug: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_set_org_slug (EXECUTE held by nobody)';

-- Deletion takes everything of the organization: roles, memberships, teams,
-- scope nodes, grants, invitations, identity providers and links, domains.
-- Accounts stay (they are the users'); so does the audit trail, which is
-- append-only, with the deletion as its last event.  The caller names the
-- slug too, so that a wrong id deletes nothing.
CREATE FUNCTION um_internal.do_delete_organization(p_org_id bigint, p_slug text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_org um.organizations;
  v_members bigint;
BEGIN
  PERFORM um_internal.authorize_root('organization.delete', format('delete organization %s', p_org_id),
                            'org:delete', p_org_id);
  SELECT * INTO v_org FROM um.organizations o WHERE o.id = p_org_id FOR UPDATE;
  IF p_slug IS DISTINCT FROM v_org.slug THEN
    PERFORM um_internal.raise('UM009', format('organization %s does not have slug "%s"', p_org_id, p_slug),
      'Deleting an organization takes its id and its slug, which must match.',
      format('Pass the organization''s slug to confirm the deletion of organization %s.', p_org_id));
  END IF;
  SELECT count(*) INTO v_members FROM um.memberships m WHERE m.org_id = p_org_id;
  PERFORM um_internal.delete_referenced('organizations', p_org_id, format('organization "%s"', v_org.slug));
  PERFORM um_internal.audit('organization.delete', p_org_id, 'organization', p_org_id,
                   jsonb_build_object('slug', v_org.slug, 'name', v_org.name, 'members', v_members));
END
$$;
COMMENT ON FUNCTION um_internal.do_delete_organization(bigint, text) IS
  'body of um_delete_organization: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_delete_organization (EXECUTE held by nobody)';

CREATE FUNCTION @extschema@.um_rename_organization(org_id bigint, name text)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_rename_organization(bigint, text) IS 'change the organization''s display name (org:update)';

CREATE FUNCTION @extschema@.um_set_org_slug(org_id bigint, slug text)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_set_org_slug(bigint, text) IS
  'give the organization a new slug (a Root with org:update, or a um administrator); the old one is free for others at once';

CREATE FUNCTION @extschema@.um_delete_organization(org_id bigint, slug text)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_delete_organization(bigint, text) IS
  'delete the organization with everything in it (a Root, or a um administrator; slug confirms the id); refused (UM081) while application rows reference it; accounts and the audit trail stay';

-- Scope nodes: the tree of an organization's resources.  scope:create,
-- scope:update and scope:delete are checked on the node (on its parent for
-- a new node, in the organization for a top-level one), so a grant on a
-- project lets its holder manage what lies below it.

-- um_internal.authorize_scope: um_internal.authorize, with the permission checked on a node
-- of the organization when one is given.
CREATE FUNCTION um_internal.authorize_scope(p_action text, p_what text, p_permission text,
                                   p_org_id bigint, p_node_id bigint, p_target_id bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := @extschema@.um_current_user_id(p_org_id);
BEGIN
  IF v_actor IS NOT NULL AND p_node_id IS NOT NULL
     AND @extschema@.um_has_permission(p_permission, p_org_id, p_node_id) THEN
    PERFORM um_internal.assert_no_app_cascades();
    PERFORM um_internal.require_organization(p_org_id);
    RETURN v_actor;
  END IF;
  RETURN um_internal.authorize(p_action, p_what, p_permission, p_org_id, 'scope', p_target_id);
END
$$;
COMMENT ON FUNCTION um_internal.authorize_scope(text, text, text, bigint, bigint, bigint) IS
  'internal: um_internal.authorize with the permission checked on a scope node of the organization (when given): the acting user may hold it there only';

-- um_internal.org_scope: a node of the organization, or UM036 (a node of another
-- organization is not named as such: that would tell it exists).
CREATE FUNCTION um_internal.org_scope(p_org_id bigint, p_scope_id bigint, p_role text)
RETURNS um.scopes
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.scopes;
BEGIN
  SELECT * INTO v FROM um.scopes s WHERE s.id = p_scope_id AND s.org_id = p_org_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'scope node % does not exist in organization %', coalesce(p_scope_id::text, 'NULL'), p_org_id
      USING ERRCODE = 'UM036', HINT = format('Pass the id of a node of organization %s as %s, or NULL.', p_org_id, p_role);
  END IF;
  RETURN v;
END
$$;
COMMENT ON FUNCTION um_internal.org_scope(bigint, bigint, text) IS 'internal: a scope node of the organization, or UM036 naming the argument';

-- um_internal.write_scope: insert (p_id NULL) or update a node, saying which name or
-- ref is taken instead of a raw unique violation.
CREATE FUNCTION um_internal.write_scope(p_id bigint, p_org_id bigint, p_parent_id bigint, p_kind text,
                               p_name text, p_ref text, p_inherit boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id bigint := p_id;
  v_constraint text;
BEGIN
  IF p_kind IS NULL THEN
    PERFORM um_internal.raise('UM008', 'invalid scope kind "NULL"', NULL, 'Pass a lowercase identifier such as project or environment.');
  END IF;
  IF p_name IS NULL THEN
    PERFORM um_internal.raise('UM003', 'invalid scope name "NULL"', NULL, 'Pass a name of 1 to 200 characters.');
  END IF;
  IF p_ref IS NOT NULL AND length(p_ref) NOT BETWEEN 1 AND 200 THEN
    PERFORM um_internal.raise('UM009', 'invalid scope ref', 'A ref has 1 to 200 characters.',
                     'Pass the application''s own key of the resource (e.g. its id), or NULL.');
  END IF;
  BEGIN
    IF p_id IS NULL THEN
      INSERT INTO um.scopes (org_id, parent_id, kind, name, ref, inherit)
      VALUES (p_org_id, p_parent_id, p_kind, p_name, p_ref, coalesce(p_inherit, true))
      RETURNING id INTO v_id;
    ELSE
      UPDATE um.scopes s SET parent_id = p_parent_id, name = p_name, inherit = p_inherit WHERE s.id = p_id;
    END IF;
  EXCEPTION WHEN unique_violation THEN
    GET STACKED DIAGNOSTICS v_constraint = CONSTRAINT_NAME;
    IF v_constraint = 'scopes_ref_key' THEN
      RAISE EXCEPTION 'organization % already has a node of kind "%" with ref "%"', p_org_id, p_kind, p_ref
        USING ERRCODE = 'UM023', HINT = 'A ref names one node of its kind: look that node up in um.scopes.';
    END IF;
    RAISE EXCEPTION 'a node of kind "%" named "%" already exists there', p_kind, p_name
      USING ERRCODE = 'UM023',
            DETAIL = format('Siblings of the same kind have different names regardless of letter case (parent %s).',
                            coalesce(p_parent_id::text, 'none: top level')),
            HINT = 'Choose another name, or another parent.';
  END;
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION um_internal.write_scope(bigint, bigint, bigint, text, text, text, boolean) IS
  'internal: inserts a scope node (no id) or updates one, raising UM023 when a sibling of the kind has the name or a node of the kind has the ref';

CREATE FUNCTION um_internal.do_create_scope(p_org_id bigint, p_kind text, p_name text, p_parent_id bigint,
                                   p_ref text, p_inherit boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id bigint;
BEGIN
  IF p_parent_id IS NOT NULL AND EXISTS (SELECT 1 FROM um.scopes s WHERE s.id = p_parent_id AND s.org_id = p_org_id) THEN
    PERFORM um_internal.authorize_scope('scope.create', format('create scope nodes in organization %s', p_org_id),
                               'scope:create', p_org_id, p_parent_id, NULL);
  ELSE
    PERFORM um_internal.authorize('scope.create', format('create scope nodes in organization %s', p_org_id),
                         'scope:create', p_org_id, 'scope', NULL);
    IF p_parent_id IS NOT NULL THEN
      PERFORM um_internal.org_scope(p_org_id, p_parent_id, 'parent_id');
    END IF;
  END IF;
  IF p_inherit IS NULL THEN
    PERFORM um_internal.raise('UM009', 'inherit is NULL', NULL, 'Pass true (the node inherits its ancestors'' grants) or false.');
  END IF;
  PERFORM um_internal.lock_organization(p_org_id);      -- one change to a tree at a time (its depth: UM041)
  v_id := um_internal.write_scope(NULL, p_org_id, p_parent_id, p_kind, p_name, p_ref, p_inherit);
  PERFORM um_internal.audit('scope.create', p_org_id, 'scope', v_id,
                   jsonb_build_object('kind', p_kind, 'parent_id', p_parent_id, 'ref', p_ref, 'inherit', p_inherit));
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION um_internal.do_create_scope(bigint, text, text, bigint, text, boolean) IS
  'body of um_create_scope: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_create_scope (EXECUTE held by nobody)';

-- The node, for a change to it: authorized on the node itself.
CREATE FUNCTION um_internal.scope_for_change(p_scope_id bigint, p_action text, p_what text, p_permission text)
RETURNS um.scopes
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.scopes;
BEGIN
  SELECT * INTO v FROM um.scopes s WHERE s.id = p_scope_id;
  PERFORM um_internal.authorize_scope(p_action, format(p_what, p_scope_id), p_permission, v.org_id, v.id, p_scope_id);
  v := um_internal.require_scope(p_scope_id);
  PERFORM um_internal.lock_organization(v.org_id);      -- one change to a tree at a time
  SELECT * INTO v FROM um.scopes s WHERE s.id = p_scope_id;
  RETURN um_internal.require_scope(v.id);
END
$$;
COMMENT ON FUNCTION um_internal.scope_for_change(bigint, text, text, text) IS
  'internal: the scope node, once the caller may make this change to it (the permission on the node), with its organization locked';

CREATE FUNCTION um_internal.do_rename_scope(p_scope_id bigint, p_name text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.scopes := um_internal.scope_for_change(p_scope_id, 'scope.rename', 'rename scope node %s', 'scope:update');
BEGIN
  IF p_name IS NOT DISTINCT FROM v.name THEN
    RETURN;
  END IF;
  PERFORM um_internal.write_scope(v.id, v.org_id, v.parent_id, v.kind, p_name, v.ref, v.inherit);
  PERFORM um_internal.audit('scope.rename', v.org_id, 'scope', v.id, jsonb_build_object('from', v.name, 'to', p_name));
END
$$;
COMMENT ON FUNCTION um_internal.do_rename_scope(bigint, text) IS
  'body of um_rename_scope: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_rename_scope (EXECUTE held by nobody)';

-- Moving a node changes whose grants reach its subtree: scope:update is
-- needed on the node and on its new parent (in the organization, to make it
-- top-level).
CREATE FUNCTION um_internal.do_move_scope(p_scope_id bigint, p_parent_id bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.scopes := um_internal.scope_for_change(p_scope_id, 'scope.move', 'move scope node %s', 'scope:update');
BEGIN
  IF p_parent_id IS NULL THEN
    PERFORM um_internal.authorize('scope.move', format('make scope node %s top-level', p_scope_id),
                         'scope:update', v.org_id, 'scope', p_scope_id);
  ELSE
    PERFORM um_internal.org_scope(v.org_id, p_parent_id, 'parent_id');
    PERFORM um_internal.authorize_scope('scope.move', format('move scope nodes under node %s', p_parent_id),
                               'scope:update', v.org_id, p_parent_id, p_scope_id);
  END IF;
  IF p_parent_id IS NOT DISTINCT FROM v.parent_id THEN
    RETURN;
  END IF;
  IF v.inherit THEN
    PERFORM um_internal.guard_scope_reach(@extschema@.um_current_user_id(v.org_id), v, p_parent_id, v.parent_id, 'scope.move');
  END IF;
  PERFORM um_internal.write_scope(v.id, v.org_id, p_parent_id, v.kind, v.name, v.ref, v.inherit);   -- a cycle, too deep: UM041
  PERFORM um_internal.audit('scope.move', v.org_id, 'scope', v.id, jsonb_build_object('from', v.parent_id, 'to', p_parent_id));
END
$$;
COMMENT ON FUNCTION um_internal.do_move_scope(bigint, bigint) IS
  'body of um_move_scope: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_move_scope (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_set_scope_inherit(p_scope_id bigint, p_inherit boolean)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.scopes := um_internal.scope_for_change(p_scope_id, 'scope.set_inherit', 'change inheritance of scope node %s', 'scope:update');
BEGIN
  IF p_inherit IS NULL THEN
    PERFORM um_internal.raise('UM009', 'inherit is NULL', NULL, 'Pass true (the node inherits its ancestors'' grants) or false (only grants made on it and below apply).');
  END IF;
  IF p_inherit = v.inherit THEN
    RETURN false;
  END IF;
  IF p_inherit THEN
    PERFORM um_internal.guard_scope_reach(@extschema@.um_current_user_id(v.org_id), v, v.parent_id, NULL, 'scope.set_inherit');
  END IF;
  PERFORM um_internal.write_scope(v.id, v.org_id, v.parent_id, v.kind, v.name, v.ref, p_inherit);
  PERFORM um_internal.audit('scope.set_inherit', v.org_id, 'scope', v.id, jsonb_build_object('inherit', p_inherit));
  RETURN true;
END
$$;
COMMENT ON FUNCTION um_internal.do_set_scope_inherit(bigint, boolean) IS
  'body of um_set_scope_inherit: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_set_scope_inherit (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_delete_scope(p_scope_id bigint)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.scopes := um_internal.scope_for_change(p_scope_id, 'scope.delete', 'delete scope node %s', 'scope:delete');
  v_nodes bigint[];
  v_team record;
  v_grants bigint[];
  v_user bigint;
BEGIN
  WITH RECURSIVE sub(id) AS (
    SELECT v.id
    UNION
    SELECT s.id FROM um.scopes s JOIN sub ON s.parent_id = sub.id)
  SELECT array_agg(id ORDER BY id) INTO v_nodes FROM sub;
  SELECT t.id, t.name, t.scope_id INTO v_team FROM um.teams t WHERE t.scope_id = ANY (v_nodes) ORDER BY t.id LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'scope node % cannot be deleted: it holds the space of team "%"', p_scope_id, v_team.name
      USING ERRCODE = 'UM081',
            DETAIL = format('Node %s is the space of team %s.', v_team.scope_id, v_team.id),
            HINT = 'Delete the team first (um_delete_team), or move its space out of the subtree (um_move_scope).';
  END IF;
  -- the grants on the subtree go with it: what taking them needs (um_revoke_scope_role)
  SELECT array_agg(g.id ORDER BY g.id) INTO v_grants FROM um.grants g WHERE g.scope_id = ANY (v_nodes);
  IF v_grants IS NOT NULL THEN
    PERFORM um_internal.authorize('scope.delete', format('take the roles granted on scope node %s and below', p_scope_id),
                         'role:grant', v.org_id, 'scope', p_scope_id);
    FOR v_user IN SELECT DISTINCT g.user_id FROM um.grants g WHERE g.id = ANY (v_grants) AND g.user_id IS NOT NULL ORDER BY 1 LOOP
      PERFORM um_internal.guard_root_target(@extschema@.um_current_user_id(v.org_id), v.org_id, v_user, 'scope.delete', 'take roles from');
    END LOOP;
  END IF;
  PERFORM um_internal.delete_referenced('scopes', p_scope_id, format('scope node %s', p_scope_id));
  PERFORM um_internal.audit('scope.delete', v.org_id, 'scope', v.id,
                   jsonb_build_object('kind', v.kind, 'ref', v.ref, 'nodes', to_jsonb(v_nodes),
                                      'grants', coalesce(to_jsonb(v_grants), '[]'::jsonb)));
  RETURN cardinality(v_nodes);
END
$$;
COMMENT ON FUNCTION um_internal.do_delete_scope(bigint) IS
  'body of um_delete_scope: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_delete_scope (EXECUTE held by nobody)';

CREATE FUNCTION @extschema@.um_create_scope(org_id bigint, kind text, name text, parent_id bigint DEFAULT NULL,
                                            ref text DEFAULT NULL, inherit boolean DEFAULT true)
RETURNS bigint AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_create_scope(bigint, text, text, bigint, text, boolean) IS
  'create a scope node (top-level, or under parent_id) with the application''s ref for it; scope:create on the parent (in the organization for a top-level node); returns its id';

CREATE FUNCTION @extschema@.um_rename_scope(scope_id bigint, name text)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_rename_scope(bigint, text) IS 'rename a scope node (scope:update on it)';

CREATE FUNCTION @extschema@.um_move_scope(scope_id bigint, parent_id bigint)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_move_scope(bigint, bigint) IS
  'move a scope node with its subtree under another node of the organization (NULL: top level); scope:update on the node and on the new parent; never into its own subtree (UM041)';

CREATE FUNCTION @extschema@.um_set_scope_inherit(scope_id bigint, inherit boolean)
RETURNS boolean AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_set_scope_inherit(bigint, boolean) IS
  'false: the node stops inheriting its ancestors'' grants; true: it inherits them again (scope:update on it); false when it already did so';

CREATE FUNCTION @extschema@.um_delete_scope(scope_id bigint)
RETURNS integer AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_delete_scope(bigint) IS
  'delete a scope node with its subtree and every grant on them (scope:delete on it); refused (UM081) while a team''s space or application rows are in it; returns the number of nodes deleted';

REVOKE EXECUTE ON FUNCTION um_internal.delete_referenced(text, bigint, text),
  um_internal.authorize_root(text, text, text, bigint),
  um_internal.do_rename_organization(bigint, text),
  um_internal.do_set_org_slug(bigint, text),
  um_internal.do_delete_organization(bigint, text),
  um_internal.authorize_scope(text, text, text, bigint, bigint, bigint),
  um_internal.org_scope(bigint, bigint, text),
  um_internal.write_scope(bigint, bigint, bigint, text, text, text, boolean),
  um_internal.do_create_scope(bigint, text, text, bigint, text, boolean),
  um_internal.scope_for_change(bigint, text, text, text),
  um_internal.do_rename_scope(bigint, text),
  um_internal.do_move_scope(bigint, bigint),
  um_internal.do_set_scope_inherit(bigint, boolean),
  um_internal.do_delete_scope(bigint)
  FROM PUBLIC;

-- A scope branch is at most 64 levels deep (the evaluator follows no
-- more); moving a node, or letting it inherit again, needs what granting
-- the roles that newly reach it needs; deleting a subtree's grants needs
-- what revoking them needs (UM041, UM070, UM073).
-- (um_internal.scopes_check_cycle: see the scope tree's triggers below)
COMMENT ON FUNCTION um_internal.scopes_check_cycle() IS 'trigger on um.scopes: the parent exists in the same organization (UM036, locked as a foreign key would); refuses re-parenting that would make a cycle in the scope tree, and a branch deeper than the 64 levels the evaluator follows (UM041)';

-- The nodes whose grants reach a node: the node, then its ancestors up to
-- and including the first that does not inherit (as src/cache.c follows
-- them).  Empty for NULL.
CREATE FUNCTION um_internal.scope_chain(p_node_id bigint)
RETURNS TABLE (id bigint, kind text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  WITH RECURSIVE up(id, kind, inherit, parent_id, d) AS (
    SELECT s.id, s.kind, s.inherit, s.parent_id, 1 FROM um.scopes s WHERE s.id = p_node_id
    UNION ALL
    SELECT s.id, s.kind, s.inherit, s.parent_id, up.d + 1
      FROM up JOIN um.scopes s ON s.id = up.parent_id
     WHERE up.inherit AND up.d <= 64)
  SELECT up.id, up.kind FROM up
$$;
COMMENT ON FUNCTION um_internal.scope_chain(bigint) IS
  'internal: the node and the ancestors whose grants reach it (up to the first that does not inherit), as the evaluator follows them';

-- Moving a node, or letting it inherit again, makes the grants on its new
-- ancestors reach its subtree: that hands out their roles there, so it
-- needs what granting them there needs (role:grant, and every permission
-- of each such role held on the node before the change).
-- p_old_parent: where the node's grants came from until now (NULL: none).
CREATE FUNCTION um_internal.guard_scope_reach(p_actor bigint, p_node um.scopes, p_new_parent bigint,
                                     p_old_parent bigint, p_action text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  g record;
  v_first boolean := true;
BEGIN
  IF p_actor IS NULL OR p_new_parent IS NULL THEN
    RETURN;                                       -- a um administrator; nothing above reaches it
  END IF;
  IF EXISTS (WITH RECURSIVE up(id) AS (
               SELECT p_new_parent
               UNION
               SELECT s.parent_id FROM um.scopes s JOIN up ON s.id = up.id WHERE s.parent_id IS NOT NULL)
             SELECT 1 FROM up WHERE up.id = p_node.id) THEN
    RETURN;                                       -- into its own subtree: the move itself is refused (UM041)
  END IF;
  FOR g IN
    WITH new_chain AS (SELECT * FROM um_internal.scope_chain(p_new_parent)),
         old_chain AS (SELECT * FROM um_internal.scope_chain(p_old_parent))
    SELECT DISTINCT r.id, r.name
      FROM (SELECT gr.role_id FROM um.grants gr
             WHERE gr.org_id = p_node.org_id
               AND ((gr.scope_id IN (SELECT id FROM new_chain) AND gr.scope_id NOT IN (SELECT id FROM old_chain))
                    OR (gr.scope_kind IN (SELECT kind FROM new_chain) AND gr.scope_kind <> p_node.kind
                        AND gr.scope_kind NOT IN (SELECT kind FROM old_chain)))
            UNION ALL                              -- team roles hold on the team's space and below
            SELECT tr.role_id FROM um.team_member_roles tr JOIN um.teams t ON t.id = tr.team_id
             WHERE tr.org_id = p_node.org_id
               AND t.scope_id IN (SELECT id FROM new_chain) AND t.scope_id NOT IN (SELECT id FROM old_chain)) AS g0
      JOIN um.roles r ON r.id = g0.role_id
     ORDER BY r.id
  LOOP
    IF v_first THEN
      PERFORM um_internal.authorize(p_action, format('let the grants of role "%s" reach scope node %s', g.name, p_node.id),
                           'role:grant', p_node.org_id, 'scope', p_node.id);    -- as um_grant_scope_role
      v_first := false;
    END IF;
    PERFORM um_internal.guard_escalation(p_actor, p_node.org_id, p_node.id, ARRAY(SELECT um_internal.role_grants(g.id)),
                                p_action, format('let the grants of role "%s" reach scope node %s', g.name, p_node.id),
                                'scope', p_node.id);
  END LOOP;
END
$$;
COMMENT ON FUNCTION um_internal.guard_scope_reach(bigint, um.scopes, bigint, bigint, text) IS
  'internal: moving a scope node or letting it inherit again hands out the roles granted on its new ancestors: role:grant and every permission of those roles on the node (UM070, UM073)';
REVOKE EXECUTE ON FUNCTION um_internal.scope_chain(bigint),
  um_internal.guard_scope_reach(bigint, um.scopes, bigint, bigint, text)
  FROM PUBLIC;

-- Ids an application pages by (issue 16): new columns at the end of the
-- views; an organization's audit trail paged by (at, id).
CREATE OR REPLACE VIEW um.member_list AS
SELECT o.slug AS org, u.id AS user_id, u.email, u.name,
       r.name AS role, m.status AS membership,
       u.status AS user_status, u.allow_login,
       u.email_verified_at IS NOT NULL AS email_verified,
       m.created_at AS member_since,
       m.org_id, m.id AS membership_id, m.role_id
  FROM um.memberships m
  JOIN um.organizations o ON o.id = m.org_id
  JOIN um.users u ON u.id = m.user_id
  JOIN um.roles r ON r.id = m.role_id;
COMMENT ON VIEW um.member_list IS 'who belongs to which organization, with which role';
COMMENT ON COLUMN um.member_list.org IS 'the organization''s slug';
COMMENT ON COLUMN um.member_list.user_id IS 'the member''s user id';
COMMENT ON COLUMN um.member_list.email IS 'the member''s address';
COMMENT ON COLUMN um.member_list.name IS 'the member''s display name';
COMMENT ON COLUMN um.member_list.role IS 'name of the member''s organization role';
COMMENT ON COLUMN um.member_list.membership IS 'status of the membership in this organization: active or suspended';
COMMENT ON COLUMN um.member_list.user_status IS 'status of the user account: active or suspended';
COMMENT ON COLUMN um.member_list.allow_login IS 'false for a notification-only user';
COMMENT ON COLUMN um.member_list.email_verified IS 'the user has proved control of the address';
COMMENT ON COLUMN um.member_list.member_since IS 'when the user joined the organization';
COMMENT ON COLUMN um.member_list.org_id IS 'the organization''s id';
COMMENT ON COLUMN um.member_list.membership_id IS 'the membership''s id: page an organization''s members by it (WHERE org_id = $1 AND membership_id > $2 ORDER BY membership_id)';
COMMENT ON COLUMN um.member_list.role_id IS 'the id of the member''s organization role';

CREATE OR REPLACE VIEW um.role_permission_list AS
SELECT o.slug AS org, r.name AS role, r.builtin IS NOT NULL AS builtin,
       (SELECT string_agg(ir.name, ', ' ORDER BY ir.name)
          FROM um.role_inclusions ri JOIN um.roles ir ON ir.id = ri.included_role_id
         WHERE ri.role_id = r.id) AS includes,
       (SELECT string_agg(rp.permission, ' ' ORDER BY rp.permission)
          FROM um.role_permissions rp WHERE rp.role_id = r.id) AS permissions,
       r.org_id, r.id AS role_id
  FROM um.roles r
  JOIN um.organizations o ON o.id = r.org_id
  LEFT JOIN um.builtin_roles b ON b.key = r.builtin;
COMMENT ON VIEW um.role_permission_list IS 'each role of each organization with the roles it includes and the permissions it grants directly';
COMMENT ON COLUMN um.role_permission_list.org IS 'the organization''s slug';
COMMENT ON COLUMN um.role_permission_list.role IS 'the role''s name';
COMMENT ON COLUMN um.role_permission_list.builtin IS 'a built-in role';
COMMENT ON COLUMN um.role_permission_list.includes IS 'names of the roles it includes directly, comma-separated';
COMMENT ON COLUMN um.role_permission_list.permissions IS 'the permissions and patterns it grants directly, space-separated';
COMMENT ON COLUMN um.role_permission_list.org_id IS 'the organization''s id';
COMMENT ON COLUMN um.role_permission_list.role_id IS 'the role''s id';

ALTER VIEW um.member_list SET (security_invoker = true);   -- CREATE OR REPLACE reset it
ALTER VIEW um.role_permission_list SET (security_invoker = true);
DROP INDEX um.audit_events_org_id_at_idx;
CREATE INDEX audit_events_org_id_at_id_idx ON um.audit_events (org_id, at, id);   -- an organization's trail, paged by (at, id)

-- Accepting an invitation can log a new address in, where the application
-- says invitations prove the mailbox (issue 16).
-- Accept as a new address and log in.  The token was mailed to the address,
-- but um_invite returned it to the inviter's request too: it proves the
-- mailbox only where the application promises that inviters never see it
-- (um.invitations_prove_address, which only a superuser sets).
CREATE FUNCTION um_internal.do_accept_invitation_and_login(p_token text, p_password text, p_name text)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.users;
  v_id bigint;
  v_refusal record;
BEGIN
  IF @extschema@.um_current_user_id() IS NOT NULL THEN
    PERFORM um_internal.raise('UM058', 'someone is acting in this transaction',
      'A logged-in user already has a session; um_accept_invitation_and_login is for a new address, logged out.',
      'Accept with um_accept_invitation(token) inside the user''s request.');
  END IF;
  IF p_password IS NULL THEN
    PERFORM um_internal.raise('UM059', 'choose a password to accept this invitation and log in', NULL,
      'Pass the password the invitee chose.');
  END IF;
  IF coalesce(current_setting('um.invitations_prove_address', true), 'off') <> 'on' THEN
    PERFORM um_internal.raise('UM063', 'accepting an invitation does not prove the address here',
      'um.invitations_prove_address is off: the inviter may have seen the token, so the new account stays unverified and cannot log in yet.',
      'Accept with um_accept_invitation(token, password, name), mail a verification (um_resend_verification) and log in with um_verify_email_and_login; or, if your backend never shows invitation tokens to inviters, have a superuser turn um.invitations_prove_address on.');
  END IF;
  v_id := um_internal.do_accept_invitation(p_token, p_password, p_name);    -- an existing account: UM056
  UPDATE um.users u SET email_verified_at = now() WHERE u.id = v_id AND u.email_verified_at IS NULL;
  PERFORM um_internal.audit('user.verify_email', NULL, 'user', v_id, jsonb_build_object('via', 'invitation'));
  SELECT * INTO v FROM um.users u WHERE u.id = v_id;
  v_refusal := um_internal.login_refusal(v, false);
  PERFORM um_internal.raise_login_refusal(v_refusal.reason, v_refusal.sso_org);   -- e.g. single sign-on: nothing stays
  RETURN um_internal.new_session(v, 'user.login');
END
$$;
COMMENT ON FUNCTION um_internal.do_accept_invitation_and_login(text, text, text) IS
  'body of um_accept_invitation_and_login: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_accept_invitation_and_login (EXECUTE held by nobody)';
REVOKE EXECUTE ON FUNCTION um_internal.do_accept_invitation_and_login(text, text, text) FROM PUBLIC;

CREATE FUNCTION @extschema@.um_accept_invitation_and_login(token text, password text, name text DEFAULT NULL)
RETURNS text AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_accept_invitation_and_login(text, text, text) IS
  'join with an invitation token as a new address and get a session token: the address counts as verified (only where um.invitations_prove_address is on)';

-- The scope tree keeps its parents by triggers instead of a foreign key of
-- um.scopes to itself, which made every pg_dump warn about circular
-- foreign keys (um's tables' data is dumped as extension configuration).
ALTER TABLE um.scopes DROP CONSTRAINT scopes_parent_fkey;
CREATE OR REPLACE FUNCTION um_internal.scopes_before_write()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_parent_org bigint;
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.org_id <> OLD.org_id THEN
    RAISE EXCEPTION 'a scope node cannot move to another organization'
      USING ERRCODE = 'UM046',
            HINT = 'Create the node in the other organization instead.';
  END IF;
  IF NOT um_internal.identifier_is_valid(NEW.kind) THEN
    RAISE EXCEPTION 'invalid scope kind "%"', NEW.kind
      USING ERRCODE = 'UM008',
            HINT = 'A kind is a lowercase identifier such as project, environment or dashboard_group.';
  END IF;
  IF NOT um_internal.display_name_is_valid(NEW.name) THEN
    RAISE EXCEPTION 'invalid scope name "%"', NEW.name
      USING ERRCODE = 'UM003',
            DETAIL = 'A name has 1 to 200 characters, no leading or trailing blanks and no control characters.',
            HINT = 'Trim the name.';
  END IF;
  IF NEW.parent_id = NEW.id THEN
    RAISE EXCEPTION 'scope node % cannot be its own parent', NEW.id
      USING ERRCODE = 'UM041',
            HINT = 'Pick another node as the parent, or NULL for a top-level node.';
  END IF;
  -- A parent that does not exist (yet) is left to scopes_check_cycle, which
  -- runs at the end of the statement: a bulk load (pg_restore's COPY) may
  -- bring a child before its parent.
  IF NEW.parent_id IS NOT NULL
     AND (TG_OP = 'INSERT' OR NEW.parent_id IS DISTINCT FROM OLD.parent_id) THEN
    SELECT s.org_id INTO v_parent_org FROM um.scopes s WHERE s.id = NEW.parent_id;
    IF FOUND AND v_parent_org <> NEW.org_id THEN
      RAISE EXCEPTION 'scope node % belongs to another organization', NEW.parent_id
        USING ERRCODE = 'UM046',
              DETAIL = 'A node''s parent must be in the same organization as the node.',
              HINT = 'Pick a parent from the same organization (um.scopes.org_id).';
    END IF;
  END IF;
  RETURN NEW;
END
$$;
CREATE OR REPLACE FUNCTION um_internal.scopes_check_cycle()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_parent_org bigint;
  v_above integer;
  v_below integer;
BEGIN
  IF NEW.parent_id IS NULL THEN
    RETURN NULL;
  END IF;
  IF TG_OP = 'UPDATE' THEN
    PERFORM um_internal.lock_organization(NEW.org_id);
  END IF;
  -- the parent exists, in the same organization, and stays until this
  -- transaction ends (what a foreign key would do; um.scopes has none to
  -- itself, so that pg_dump finds no loop among um's tables' data)
  SELECT s.org_id INTO v_parent_org FROM um.scopes s WHERE s.id = NEW.parent_id FOR KEY SHARE;
  IF NOT FOUND OR v_parent_org <> NEW.org_id THEN
    RAISE EXCEPTION 'scope node % does not exist in organization %', NEW.parent_id, NEW.org_id
      USING ERRCODE = 'UM036',
            DETAIL = format('Node %s names it as its parent.', NEW.id),
            HINT = 'Pass the id of a node of the same organization as the parent, or NULL for a top-level node.';
  END IF;
  IF EXISTS (
      WITH RECURSIVE up(id) AS (
        SELECT NEW.parent_id
        UNION
        SELECT s.parent_id FROM um.scopes s JOIN up ON s.id = up.id
         WHERE s.parent_id IS NOT NULL)
      SELECT 1 FROM up WHERE up.id = NEW.id) THEN
    RAISE EXCEPTION 'scope node % cannot be placed under node %: that would make a cycle', NEW.id, NEW.parent_id
      USING ERRCODE = 'UM041',
            DETAIL = format('Node %s is node %s itself or one of its descendants.', NEW.parent_id, NEW.id),
            HINT = 'Move the node under a node outside its own subtree.';
  END IF;
  -- The evaluator follows at most 64 levels (src/cache.c): a deeper branch
  -- would make every check on it fail, so it is refused here.
  WITH RECURSIVE up(id, d) AS (SELECT NEW.parent_id, 1 UNION ALL SELECT s.parent_id, up.d + 1
                   FROM um.scopes s JOIN up ON s.id = up.id WHERE s.parent_id IS NOT NULL AND up.d <= 64)
  SELECT max(d) INTO v_above FROM up;
  WITH RECURSIVE down(id, d) AS (SELECT NEW.id, 1 UNION ALL SELECT s.id, down.d + 1
                   FROM um.scopes s JOIN down ON s.parent_id = down.id WHERE down.d <= 64)
  SELECT max(d) INTO v_below FROM down;
  IF v_above + v_below > 64 THEN
    RAISE EXCEPTION 'scope node % cannot be placed under node %: its branch would be % levels deep', NEW.id, NEW.parent_id, v_above + v_below
      USING ERRCODE = 'UM041',
            DETAIL = format('Node %s has %s levels above it and its subtree %s levels; a scope tree has at most 64.', NEW.parent_id, v_above - 1, v_below),
            HINT = 'Place the node higher up in the tree, or flatten the tree.';
  END IF;
  RETURN NULL;
END
$$;
CREATE FUNCTION um_internal.scopes_delete_children()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM gone) THEN          -- every DELETE fires it, an empty one too: stop there
    DELETE FROM um.scopes s USING gone g WHERE s.parent_id = g.id;
  END IF;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION um_internal.scopes_delete_children() IS 'statement trigger on um.scopes: deleting nodes deletes their children, and so the whole subtree';
REVOKE EXECUTE ON FUNCTION um_internal.scopes_delete_children() FROM PUBLIC;
CREATE TRIGGER scopes_delete_children AFTER DELETE ON um.scopes
  REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION um_internal.scopes_delete_children();
COMMENT ON TRIGGER scopes_delete_children ON um.scopes IS
  'runs um_internal.scopes_delete_children(): statement trigger on um.scopes: deleting nodes deletes their children, and so the whole subtree';
COMMENT ON COLUMN um.scopes.parent_id IS 'the parent node, of the same organization (kept by triggers: deleting a node deletes its subtree); NULL for a top-level node';

-- Password reset (sql/install/79_account_recovery.sql): a table under um's
-- own row-level security (secret), dumped, and its functions.
-- Password resets (79_account_recovery.sql): at most one live request per
-- user, its link token and its code stored only as hashes.
CREATE TABLE um.password_resets (
  user_id bigint PRIMARY KEY REFERENCES um.users ON DELETE CASCADE,
  token_hash bytea NOT NULL CONSTRAINT password_resets_token_hash_key UNIQUE,
  code_hash bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  code_attempts integer NOT NULL DEFAULT 0,
  CONSTRAINT password_resets_expiry_check CHECK (expires_at > created_at)
);
CREATE INDEX password_resets_expires_at_idx ON um.password_resets (expires_at);
COMMENT ON TABLE um.password_resets IS 'outstanding password resets (um_request_password_reset), one per user, single use; the secrets themselves are never stored';
COMMENT ON COLUMN um.password_resets.user_id IS 'whose password the reset sets';
COMMENT ON COLUMN um.password_resets.token_hash IS 'SHA-256 of the link token mailed to the user';
COMMENT ON COLUMN um.password_resets.code_hash IS 'SHA-256 of token_hash and the code mailed with it (um_internal.reset_code_hash)';
COMMENT ON COLUMN um.password_resets.created_at IS 'when it was asked for: a new request replaces it only um.password_reset_interval later';
COMMENT ON COLUMN um.password_resets.expires_at IS 'it can be redeemed until then (um.password_reset_lifetime after the request)';
COMMENT ON COLUMN um.password_resets.code_attempts IS 'wrong codes tried against this request (counted in a transaction of their own); at um.login_max_failures the code is spent, the link still works';
INSERT INTO um.state_tables (relname, access, read_rule, readable_columns, evaluator_input, invalidating_columns, cache_key, dump_filter)
VALUES ('password_resets', 'secret', NULL, NULL, false, NULL, NULL, NULL);
ALTER TABLE um.password_resets ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY um_administrators ON um.password_resets USING (um_internal.administers_um()) WITH CHECK (um_internal.administers_um());
COMMENT ON POLICY um_administrators ON um.password_resets IS
  'um administrators (roles with the privileges of the extension''s owner) read and write every row';
REVOKE REFERENCES ON um.password_resets FROM PUBLIC;
-- (not dumped: see um.state_tables)

-- A session carries the password its login checked: um_begin refuses it
-- once the password changed, even when the login committed after the change.
ALTER TABLE um.sessions ADD COLUMN password_changed_at timestamptz;
COMMENT ON COLUMN um.sessions.password_changed_at IS 'the user''s password_changed_at that the login saw: um_begin refuses the session once the password changed since, even if the login committed after the change';
UPDATE um.sessions s SET password_changed_at = u.password_changed_at FROM um.users u WHERE u.id = s.user_id;

-- ---------------------------------------------------------------------------
-- C primitives

CREATE FUNCTION um_internal.generate_code(p_digits integer)
RETURNS text
AS 'MODULE_PATHNAME', 'um_generate_code'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION um_internal.generate_code(integer) IS
  'a fresh one-time code of that many decimal digits (6 to 12), every digit uniform, from pg_strong_random()';

CREATE FUNCTION um_internal.password_reset_settings(OUT lifetime_seconds integer, OUT interval_seconds integer)
RETURNS record
AS 'MODULE_PATHNAME', 'um_password_reset_settings'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION um_internal.password_reset_settings() IS
  'um.password_reset_lifetime and um.password_reset_interval, read by the module that defines them';

CREATE FUNCTION um_internal.reset_code_hash(p_token_hash bytea, p_code text)
RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN pg_catalog.sha256(p_token_hash || pg_catalog.convert_to(p_code, 'UTF8'));
COMMENT ON FUNCTION um_internal.reset_code_hash(bytea, text) IS
  'what um.password_resets stores for a code: SHA-256 of the request''s token hash and the code, so equal codes of two requests differ';

-- ---------------------------------------------------------------------------
-- Rules

CREATE FUNCTION um_internal.users_void_password_resets()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  DELETE FROM um.password_resets r WHERE r.user_id = NEW.id;
  -- so does a pending email change (asked for by a session that may be
  -- the reason for the change)
  DELETE FROM um.email_changes c WHERE c.user_id = NEW.id;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION um_internal.users_void_password_resets() IS
  'a user''s outstanding password reset and pending email change end when the password, the address, the status or the right to log in changes';
CREATE TRIGGER users_void_password_resets AFTER UPDATE OF password_changed_at, email, status, allow_login ON um.users
  FOR EACH ROW
  WHEN (OLD.password_changed_at IS DISTINCT FROM NEW.password_changed_at
        OR lower(OLD.email) <> lower(NEW.email)
        OR (OLD.status = 'active' AND NEW.status <> 'active')
        OR (OLD.allow_login AND NOT NEW.allow_login))
  EXECUTE FUNCTION um_internal.users_void_password_resets();

-- ---------------------------------------------------------------------------
-- Bodies

CREATE FUNCTION um_internal.do_request_password_reset(p_email text, OUT address text, OUT token text, OUT code text,
                                                      OUT expires_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.users;
  v_settings record := um_internal.password_reset_settings();
  v_email text := btrim(coalesce(p_email, ''), E' \t\r\n');
  -- made for every address, known or not: the answer takes the same work
  v_token text := um_internal.generate_token();
  v_code text := um_internal.generate_code(8);
  v_reason text;
  v_issued boolean;
BEGIN
  IF @extschema@.um_current_user_id() IS NOT NULL THEN
    RAISE EXCEPTION 'a password reset secret is only issued with nobody acting'
      USING ERRCODE = 'UM058',
            DETAIL = 'It gives the account to whoever reads the mailbox; no logged-in user may see it.',
            HINT = 'Call it from the backend in a transaction where nobody is acting, and mail the result.';
  END IF;
  address := v_email;
  expires_at := clock_timestamp() + make_interval(secs => v_settings.lifetime_seconds);
  -- housekeeping: a few expired requests of anybody (none that another
  -- request is replacing: nobody waits here for another tenant)
  DELETE FROM um.password_resets r
   WHERE r.user_id IN (SELECT e.user_id FROM um.password_resets e WHERE e.expires_at <= clock_timestamp()
                        ORDER BY e.expires_at LIMIT 16 FOR UPDATE SKIP LOCKED);
  SELECT * INTO v FROM um.users u WHERE lower(u.email) = lower(v_email);
  IF FOUND THEN
    v_reason := (um_internal.login_refusal(v, true)).reason;
    IF v_reason IS NULL THEN
      -- one live request per user; a new one replaces it once the last is
      -- um.password_reset_interval old (two at once: the second waits on the
      -- key, then finds the first fresh and issues nothing)
      INSERT INTO um.password_resets AS r (user_id, token_hash, code_hash, created_at, expires_at)
      VALUES (v.id, um_internal.token_hash(v_token),
              um_internal.reset_code_hash(um_internal.token_hash(v_token), v_code), clock_timestamp(), expires_at)
      ON CONFLICT (user_id) DO UPDATE
        SET token_hash = EXCLUDED.token_hash, code_hash = EXCLUDED.code_hash,
            created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at, code_attempts = 0
        WHERE r.created_at <= clock_timestamp() - make_interval(secs => v_settings.interval_seconds)
           OR r.expires_at <= clock_timestamp()
      RETURNING true INTO v_issued;
    END IF;
  END IF;
  PERFORM um_internal.audit('user.request_password_reset', NULL, 'user', v.id,
                   jsonb_build_object('result', CASE WHEN v_issued THEN 'issued'
                                                     WHEN v.id IS NULL THEN 'unknown address'
                                                     WHEN v_reason IS NOT NULL THEN v_reason
                                                     ELSE 'asked again too soon' END));
  IF v_issued THEN
    address := v.email;
    token := v_token;
    code := v_code;
  END IF;
END
$$;
COMMENT ON FUNCTION um_internal.do_request_password_reset(text) IS
  'body of um_request_password_reset: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_request_password_reset (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_reset_password(p_secret text, p_new_password text, p_email text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_settings record := um_internal.login_settings();       -- first: keeps the statement out of the log
  v um.users;
  v_req um.password_resets;
  v_hash text;
  v_by text;
  v_ok boolean := false;
  v_rec record;
  v_refusal record;
  v_now um.password_resets;
BEGIN
  PERFORM um_internal.assert_no_app_cascades();
  -- the attempt is counted in a transaction of its own (src/login.c), which a
  -- REPEATABLE READ snapshot would not see: its reads here would be stale
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    PERFORM um_internal.raise('UM066', 'a password reset runs in a READ COMMITTED transaction',
      format('This transaction is %s.', upper(current_setting('transaction_isolation'))),
      'Redeem it in a transaction of its own at the default isolation level (BEGIN ISOLATION LEVEL READ COMMITTED).');
  END IF;
  IF p_secret IS NULL OR p_new_password IS NULL THEN
    PERFORM um_internal.raise('UM009', 'the reset secret and the new password are required', NULL,
      'Pass the token from the link, or the code with the address it was sent to, and the new password.');
  END IF;
  -- bad input changes nothing; and every attempt, right or wrong, costs a hash
  v_hash := um_internal.hash_password(p_new_password);
  IF p_secret LIKE 'um\_%' THEN
    v_by := 'link';
    SELECT r.* INTO v_req FROM um.password_resets r
     WHERE r.token_hash = um_internal.token_hash(p_secret) AND r.expires_at > clock_timestamp();
    v_ok := FOUND;
  ELSE
    v_by := 'code';
    IF p_email IS NULL THEN
      PERFORM um_internal.raise('UM009', 'a reset code needs the address it was sent to', NULL,
        'Pass the address too: um_reset_password(code, new_password, email), or use the link''s token.');
    END IF;
    SELECT * INTO v FROM um.users u WHERE lower(u.email) = lower(btrim(p_email, E' \t\r\n'));
    IF NOT FOUND THEN
      PERFORM um_internal.record_login(NULL, 'user.reset_password', 'unknown_email', 'unknown email');
    ELSE
      -- read, not locked: the attempt's writer below locks the user, then this row
      SELECT r.* INTO v_req FROM um.password_resets r WHERE r.user_id = v.id AND r.expires_at > clock_timestamp();
      -- (the digests are compared: how long that takes says nothing of the code)
      v_ok := FOUND AND v_req.code_attempts < v_settings.max_failures
              AND v_req.code_hash = um_internal.reset_code_hash(v_req.token_hash, btrim(p_secret));
      -- counted where no ROLLBACK forgets it, against the account (the Nth
      -- wrong code or password in a row locks it) and against the request
      -- (the Nth wrong code spends the code)
      v_rec := um_internal.record_login(v.id, 'user.reset_password', CASE WHEN v_ok THEN 'success' ELSE 'wrong' END,
                                        CASE WHEN v_ok THEN NULL ELSE 'wrong reset code' END);
      IF v_rec.was_locked THEN
        v_ok := false;
      END IF;
    END IF;
  END IF;
  IF v_ok THEN
    -- locked as the attempt's writer locks them, the user first; then
    -- decided again on what concurrent redemptions and guesses committed
    SELECT * INTO v FROM um.users u WHERE u.id = v_req.user_id FOR NO KEY UPDATE;
    SELECT r.* INTO v_now FROM um.password_resets r WHERE r.user_id = v_req.user_id FOR UPDATE;
    v_ok := FOUND AND v_now.token_hash = v_req.token_hash AND v_now.expires_at > clock_timestamp()
            AND (v_by = 'link' OR v_now.code_attempts < v_settings.max_failures);
  END IF;
  IF NOT v_ok THEN
    PERFORM um_internal.raise('UM053', 'the password reset secret is not valid',
      'It is unknown, was used or replaced, or expired; a code is taken only with the address it was sent to, not while the account is locked, and not after too many wrong ones.',
      format('Ask for a new reset (um_request_password_reset); after %s wrong codes the code is spent and the account locked for %s, while the link in the same mail still works.',
             v_settings.max_failures,
             um_internal.lockout_words(v_settings.lockout_seconds)));
  END IF;
  v_refusal := um_internal.login_refusal(v, true);
  PERFORM um_internal.raise_login_refusal(v_refusal.reason, v_refusal.sso_org);
  DELETE FROM um.password_resets r WHERE r.user_id = v.id;
  DELETE FROM um.verification_tokens t WHERE t.user_id = v.id;
  -- every session ends (trigger users_end_sessions)
  UPDATE um.users u SET password_hash = v_hash, password_changed_at = now(), must_change_password = false,
                        failed_login_count = 0, locked_until = NULL
   WHERE u.id = v.id;
  PERFORM um_internal.audit('user.reset_password', NULL, 'user', v.id, jsonb_build_object('by', v_by));
  RETURN v.id;
END
$$;
COMMENT ON FUNCTION um_internal.do_reset_password(text, text, text) IS
  'body of um_reset_password: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_reset_password (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_reset_password_and_login(p_secret text, p_new_password text, p_email text)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.users;
  v_id bigint := um_internal.do_reset_password(p_secret, p_new_password, p_email);
BEGIN
  SELECT * INTO v FROM um.users u WHERE u.id = v_id;
  RETURN um_internal.new_session(v, 'user.login');
END
$$;
COMMENT ON FUNCTION um_internal.do_reset_password_and_login(text, text, text) IS
  'body of um_reset_password_and_login: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_reset_password_and_login (EXECUTE held by nobody)';

-- ---------------------------------------------------------------------------
-- The public functions: each is src/lifecycle.c's entry point, which calls
-- um_internal.do_<name> with the calling role.  None is STRICT: a NULL
-- argument gets the error that names it.

CREATE FUNCTION @extschema@.um_request_password_reset(email text, OUT address text, OUT token text, OUT code text,
                                                      OUT expires_at timestamptz)
RETURNS record AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_request_password_reset(text) IS
  'a forgotten password: for an address that can log in with a password, a link token and an 8-digit code to mail to address (single use, expiring at expires_at, replacing the last request); for any other address, or asked again within um.password_reset_interval, the same row with token and code NULL; nobody may be acting';

CREATE FUNCTION @extschema@.um_reset_password(secret text, new_password text, email text DEFAULT NULL)
RETURNS bigint AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_reset_password(text, text, text) IS
  'redeem a password reset: the link''s token, or the code with the address it was sent to; sets the password, ends every session and every other reset or verification secret, clears the lockout; returns the user id';

CREATE FUNCTION @extschema@.um_reset_password_and_login(secret text, new_password text, email text DEFAULT NULL)
RETURNS text AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_reset_password_and_login(text, text, text) IS
  'um_reset_password, then a session token (as um_login would)';

-- The reset's secrets go to the caller, which must be the backend that mails
-- them (whoever holds one takes the account): EXECUTE is granted to that role
-- by the DBA.  Redeeming one needs the secret: everybody may.
REVOKE EXECUTE ON FUNCTION @extschema@.um_request_password_reset(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION
  um_internal.generate_code(integer),
  um_internal.password_reset_settings(),
  um_internal.reset_code_hash(bytea, text),
  um_internal.users_void_password_resets(),
  um_internal.do_request_password_reset(text),
  um_internal.do_reset_password(text, text, text),
  um_internal.do_reset_password_and_login(text, text, text)
FROM PUBLIC;
COMMENT ON TRIGGER users_void_password_resets ON um.users IS
  'runs um_internal.users_void_password_resets(): a user''s outstanding password reset and pending email change end when the password, the address, the status or the right to log in changes';


-- ---------------------------------------------------------------------------
-- Timed suspension (issue 17, item 6): um_suspend_user(..., until => ...)
-- ends by itself; sql/install/77_suspension.sql.

ALTER TABLE um.users ADD COLUMN suspended_until timestamptz,
  ADD CONSTRAINT users_suspended_until_check CHECK (suspended_until IS NULL OR status = 'suspended');
COMMENT ON COLUMN um.users.suspended_until IS 'when a timed suspension ends by itself (NULL: it lasts until a reactivation); from then on it has no effect, and um_end_suspensions() records it as over';
ALTER TABLE um.memberships ADD COLUMN suspended_until timestamptz,
  ADD CONSTRAINT memberships_suspended_until_check CHECK (suspended_until IS NULL OR status = 'suspended');
COMMENT ON COLUMN um.memberships.suspended_until IS 'when a timed suspension in this organization ends by itself (NULL: it lasts until a reactivation)';
UPDATE um.state_tables
   SET readable_columns = '{id,email,name,timezone,locale,mobile,allow_login,status,suspended_at,suspended_until,email_verified_at,attributes,created_at,updated_at}',
       invalidating_columns = '{id,status,allow_login,suspended_until}'
 WHERE relname = 'users';
GRANT SELECT (suspended_until) ON um.users TO PUBLIC;
DROP TRIGGER cache_invalidate ON um.users;
CREATE TRIGGER cache_invalidate AFTER INSERT OR UPDATE OF id, status, allow_login, suspended_until OR DELETE ON um.users
  FOR EACH ROW EXECUTE FUNCTION um_internal.cache_invalidate('user:id');
COMMENT ON TRIGGER cache_invalidate ON um.users IS
  'every backend drops the permission cache entries of the user the row names once a change of id, status, allow_login or suspended_until is visible to it (row trigger, enabled always)';
ALTER TABLE um.users ENABLE ALWAYS TRIGGER cache_invalidate;


CREATE FUNCTION um_internal.suspended(p_status text, p_until timestamptz)
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN p_status = 'suspended' AND (p_until IS NULL OR p_until > pg_catalog.statement_timestamp());
COMMENT ON FUNCTION um_internal.suspended(text, timestamptz) IS
  'internal: whether a suspension (status, suspended_until) is in effect at the start of this statement';

CREATE OR REPLACE FUNCTION um_internal.users_before_write()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM um_internal.assert_user_fields(NEW.email, NEW.name,
                                CASE WHEN TG_OP = 'INSERT' OR NEW.timezone IS DISTINCT FROM OLD.timezone
                                     THEN coalesce(NEW.timezone, '') END,
                                NEW.locale, NEW.mobile, NEW.attributes);
  IF TG_OP = 'UPDATE' THEN
    NEW.updated_at := now();
    IF lower(NEW.email) <> lower(OLD.email) THEN
      NEW.email_verified_at := NULL;      -- a new address must be verified again
    END IF;
  END IF;
  -- a change of status records (or clears) when the user was suspended
  IF TG_OP = 'INSERT' OR NEW.status <> OLD.status THEN
    NEW.suspended_at := CASE WHEN NEW.status = 'suspended' THEN coalesce(NEW.suspended_at, now()) END;
    NEW.suspended_until := CASE WHEN NEW.status = 'suspended' THEN NEW.suspended_until END;
  END IF;
  RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION um_internal.login_refusal(p_user um.users, p_changing_password boolean, OUT reason text, OUT sso_org text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  SELECT o.slug INTO sso_org
    FROM um.memberships m JOIN um.organizations o ON o.id = m.org_id
   WHERE m.user_id = p_user.id AND o.password_login_disabled
   ORDER BY o.id LIMIT 1;
  reason := CASE WHEN um_internal.suspended(p_user.status, p_user.suspended_until) THEN 'suspended'
                 WHEN NOT p_user.allow_login THEN 'login not allowed'
                 WHEN p_user.email_verified_at IS NULL THEN 'email not verified'
                 WHEN sso_org IS NOT NULL THEN 'password login disabled'
                 WHEN p_user.must_change_password AND NOT p_changing_password THEN 'password must be changed' END;
END
$$;

CREATE OR REPLACE FUNCTION um_internal.require_root_candidate(p_user um.users, p_org_id bigint)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF um_internal.suspended(p_user.status, p_user.suspended_until) OR NOT p_user.allow_login
     OR (p_org_id IS NOT NULL
         AND EXISTS (SELECT 1 FROM um.memberships m WHERE m.org_id = p_org_id AND m.user_id = p_user.id
                                                      AND um_internal.suspended(m.status, m.suspended_until))) THEN
    RAISE EXCEPTION 'user % cannot be the Root of an organization', p_user.id
      USING ERRCODE = 'UM050',
            DETAIL = CASE WHEN p_org_id IS NOT NULL THEN 'The user is suspended or notification-only.'
                          WHEN um_internal.suspended(p_user.status, p_user.suspended_until) THEN 'The user is suspended.'
                          ELSE 'The user is notification-only (allow_login is false).' END,
            HINT = CASE WHEN p_org_id IS NULL THEN 'Choose an active user who can log in.'
                        ELSE 'Choose an active member who can log in.' END;
  END IF;
END
$$;

CREATE OR REPLACE FUNCTION um_internal.ref_denial(p_user_id bigint, p_org_id bigint, p_scope_id bigint, p_has_scope boolean)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE
    WHEN p_user_id IS NULL THEN 'nobody is acting'
    WHEN p_org_id IS NULL THEN 'no organization was given'
    WHEN p_has_scope AND p_scope_id IS NULL THEN 'no scope node was given'
    WHEN u.id IS NULL THEN format('user %s does not exist', p_user_id)
    WHEN um_internal.suspended(u.status, u.suspended_until) THEN format('user %s is %s', p_user_id, u.status)
    WHEN NOT u.allow_login THEN format('user %s is notification-only (allow_login is false)', p_user_id)
    WHEN m.id IS NULL THEN format('user %s is not a member of organization %s', p_user_id, p_org_id)
    WHEN um_internal.suspended(m.status, m.suspended_until) THEN format('the membership of user %s in organization %s is %s', p_user_id, p_org_id, m.status)
    WHEN p_scope_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM um.scopes s WHERE s.id = p_scope_id AND s.org_id = p_org_id)
      THEN format('scope node %s is not in organization %s', p_scope_id, p_org_id)
  END
    FROM (SELECT 1) one
    LEFT JOIN um.users u ON u.id = p_user_id
    LEFT JOIN um.memberships m ON m.org_id = p_org_id AND m.user_id = p_user_id
$$;

CREATE OR REPLACE FUNCTION um_internal.do_create_team(p_org_id bigint, p_name text, p_description text, p_owner_user_id bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um_internal.authorize('team.create', format('create teams in organization %s', p_org_id),
                                 'team:create', p_org_id, 'team', NULL);
  v_owner bigint := coalesce(p_owner_user_id, v_actor);
  v_member um.memberships;
  v_id bigint;
BEGIN
  IF v_owner IS NULL THEN
    PERFORM um_internal.raise('UM009', 'a team needs an owner', NULL, 'Pass owner_user_id, a member of the organization.');
  END IF;
  v_member := um_internal.require_member(p_org_id, v_owner);
  IF um_internal.suspended(v_member.status, v_member.suspended_until) THEN
    RAISE EXCEPTION 'user % cannot own a team', v_owner
      USING ERRCODE = 'UM050', DETAIL = 'The membership is suspended.', HINT = 'Choose an active member.';
  END IF;
  v_id := um_internal.write_team(p_org_id, NULL, p_name, p_description);
  INSERT INTO um.team_members (org_id, team_id, user_id, is_owner) VALUES (p_org_id, v_id, v_owner, true);
  PERFORM um_internal.audit('team.create', p_org_id, 'team', v_id, jsonb_build_object('owner_user_id', v_owner));
  RETURN v_id;
END
$$;

CREATE OR REPLACE FUNCTION um_internal.do_impersonate(p_target_user_id bigint)
RETURNS bigint[]
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um_internal.require_actor('Call um_begin(token) first; impersonation starts from a logged-in user.');
  v_target um.users;
  v_orgs bigint[];
BEGIN
  IF v_actor IS DISTINCT FROM @extschema@.um_real_user_id() THEN
    PERFORM um_internal.deny('user.impersonate', NULL, 'user', p_target_user_id, 'UM071',
      'cannot impersonate while impersonating', NULL, 'Call um_end_impersonation() first.');
  END IF;
  IF p_target_user_id = v_actor THEN
    PERFORM um_internal.deny('user.impersonate', NULL, 'user', p_target_user_id, 'UM071',
      'cannot impersonate oneself', NULL, 'Pass the id of another user.');
  END IF;
  -- first: may the actor impersonate anybody in an organization of the
  -- target's?  (Until then, say nothing about the target, not even whether
  -- it exists.)
  SELECT array_agg(m.org_id ORDER BY m.org_id) INTO v_orgs
    FROM um.memberships m
   WHERE m.user_id = p_target_user_id AND NOT um_internal.suspended(m.status, m.suspended_until)
     AND @extschema@.um_has_permission(v_actor, 'user:impersonate', m.org_id);
  IF v_orgs IS NULL THEN
    PERFORM um_internal.deny('user.impersonate', NULL, 'user', p_target_user_id, 'UM070',
      format('permission denied to impersonate user %s', p_target_user_id),
      'Impersonation needs user:impersonate in an organization the target is an active member of.',
      'Ask an Admin of the target''s organization.');
  END IF;
  v_target := um_internal.require_user(p_target_user_id);
  IF EXISTS (SELECT 1 FROM um.memberships m JOIN um.roles r ON r.id = m.role_id
              WHERE m.user_id = v_target.id AND r.builtin IN ('root', 'admin')) THEN
    PERFORM um_internal.deny('user.impersonate', v_orgs[1], 'user', p_target_user_id, 'UM071',
      format('cannot impersonate user %s, an Admin or Root', p_target_user_id),
      'Admins and roots (of any organization) are never impersonated.',
      'Ask the user to act themselves.');
  END IF;
  IF um_internal.suspended(v_target.status, v_target.suspended_until) OR NOT v_target.allow_login THEN
    PERFORM um_internal.deny('user.impersonate', v_orgs[1], 'user', p_target_user_id, 'UM071',
      format('cannot impersonate user %s', p_target_user_id),
      'The user is suspended or may not log in.', 'Reactivate the user first, or act yourself.');
  END IF;
  SELECT array_agg(o ORDER BY o) INTO v_orgs
    FROM unnest(v_orgs) AS o
   WHERE NOT um_internal.impersonation_escalates(v_actor, v_target.id, o);
  IF v_orgs IS NULL THEN
    PERFORM um_internal.deny('user.impersonate', NULL, 'user', p_target_user_id, 'UM070',
      format('permission denied to impersonate user %s', p_target_user_id),
      'The target holds a permission you lack; impersonating them would give it to you.',
      'Ask someone who holds every permission of the target''s.');
  END IF;
  PERFORM um_internal.start_impersonation(v_target.id, v_orgs);
  -- committed at once: a transaction that reads as the target and then
  -- rolls back still leaves the impersonation on record
  PERFORM um_internal.audit_autonomous('user.impersonate', 'ok', v_orgs[1], 'user', v_target.id,
                              jsonb_build_object('orgs', to_jsonb(v_orgs)));
  RETURN v_orgs;
END
$$;

CREATE OR REPLACE FUNCTION um_internal.do_reactivate_user(p_user_id bigint, p_org_id bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint;
BEGIN
  IF p_org_id IS NULL THEN
    v_actor := um_internal.authorize_user('user.reactivate', format('reactivate user %s', p_user_id),
                                 'user:suspend', p_user_id);
    UPDATE um.users u SET status = 'active', suspended_at = NULL, suspended_until = NULL, updated_at = now()
     WHERE u.id = p_user_id AND u.status = 'suspended';
  ELSE
    v_actor := um_internal.authorize('user.reactivate', format('reactivate members of organization %s', p_org_id),
                            'user:suspend', p_org_id, 'user', p_user_id);
    PERFORM um_internal.require_member(p_org_id, p_user_id);
    PERFORM um_internal.guard_root_target(v_actor, p_org_id, p_user_id, 'user.reactivate', 'reactivate');
    UPDATE um.memberships m SET status = 'active', suspended_until = NULL
     WHERE m.org_id = p_org_id AND m.user_id = p_user_id AND m.status = 'suspended';
  END IF;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'user % is not suspended%', p_user_id,
                    CASE WHEN p_org_id IS NULL THEN '' ELSE ' in organization ' || p_org_id END
      USING ERRCODE = 'UM051', HINT = 'Nothing to do; um.users.status and um.memberships.status show suspensions.';
  END IF;
  PERFORM um_internal.audit('user.reactivate', p_org_id, 'user', p_user_id, '{}');
END
$$;

CREATE OR REPLACE VIEW um.member_list AS
SELECT o.slug AS org, u.id AS user_id, u.email, u.name,
       r.name AS role,
       -- a timed suspension whose end has passed is over (um_internal.suspended)
       CASE WHEN m.status = 'suspended' AND (m.suspended_until IS NULL OR m.suspended_until > statement_timestamp())
            THEN 'suspended' ELSE 'active' END AS membership,
       CASE WHEN u.status = 'suspended' AND (u.suspended_until IS NULL OR u.suspended_until > statement_timestamp())
            THEN 'suspended' ELSE 'active' END AS user_status,
       u.allow_login,
       u.email_verified_at IS NOT NULL AS email_verified,
       m.created_at AS member_since,
       m.org_id, m.id AS membership_id, m.role_id
  FROM um.memberships m
  JOIN um.organizations o ON o.id = m.org_id
  JOIN um.users u ON u.id = m.user_id
  JOIN um.roles r ON r.id = m.role_id;
ALTER VIEW um.member_list SET (security_invoker = true);
COMMENT ON COLUMN um.member_list.membership IS 'status of the membership in this organization: active or suspended (a timed suspension ends by itself)';
COMMENT ON COLUMN um.member_list.user_status IS 'status of the user account: active or suspended (a timed suspension ends by itself)';
CREATE OR REPLACE FUNCTION um_internal.do_my_organizations(OUT org_id bigint, OUT slug text, OUT name text, OUT role text,
                                       OUT role_id bigint, OUT status text, OUT member_since timestamptz)
RETURNS SETOF record
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM um_internal.require_actor('Call um_begin(token) first: this lists the organizations of the acting user.');
  -- while impersonating, the impersonated organizations only
  RETURN QUERY
    SELECT o.id, o.slug, o.name, r.name, r.id,
           CASE WHEN um_internal.suspended(m.status, m.suspended_until) THEN 'suspended' ELSE 'active' END, m.created_at
      FROM um.memberships m
      JOIN um.organizations o ON o.id = m.org_id
      JOIN um.roles r ON r.id = m.role_id
     WHERE m.user_id = @extschema@.um_current_user_id()
       AND @extschema@.um_current_user_id(m.org_id) = m.user_id
     ORDER BY o.slug;
END
$$;
DROP FUNCTION @extschema@.um_suspend_user(bigint, bigint);
DROP FUNCTION um_internal.do_suspend_user(bigint, bigint);

CREATE FUNCTION um_internal.record_ended_suspensions(p_user_id bigint, p_org_id bigint)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v record;
  v_n integer := 0;
BEGIN
  FOR v IN
    UPDATE um.users u SET status = 'active', suspended_until = NULL
     WHERE u.status = 'suspended' AND u.suspended_until <= statement_timestamp()
       AND p_org_id IS NULL AND (p_user_id IS NULL OR u.id = p_user_id)
    RETURNING u.id
  LOOP
    v_n := v_n + 1;
    PERFORM um_internal.audit('user.reactivate', NULL, 'user', v.id, jsonb_build_object('ended', 'scheduled'));
  END LOOP;
  FOR v IN
    UPDATE um.memberships m SET status = 'active', suspended_until = NULL
     WHERE m.status = 'suspended' AND m.suspended_until <= statement_timestamp()
       AND ((p_user_id IS NULL AND p_org_id IS NULL) OR (m.user_id = p_user_id AND m.org_id = p_org_id))
    RETURNING m.org_id, m.user_id
  LOOP
    v_n := v_n + 1;
    PERFORM um_internal.audit('user.reactivate', v.org_id, 'user', v.user_id, jsonb_build_object('ended', 'scheduled'));
  END LOOP;
  RETURN v_n;
END
$$;
COMMENT ON FUNCTION um_internal.record_ended_suspensions(bigint, bigint) IS
  'internal: marks active again, and audits, the suspensions whose end has passed (they already had no effect): of anybody, of a user''s account, or of a user''s membership of one organization';

CREATE FUNCTION um_internal.do_suspend_user(p_user_id bigint, p_org_id bigint, p_until timestamptz)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint;
BEGIN
  IF p_until IS NOT NULL AND (p_until <= statement_timestamp() OR NOT isfinite(p_until)) THEN
    PERFORM um_internal.raise('UM009', format('a suspension cannot end at %s', p_until),
      'The end of a timed suspension is a moment to come.',
      'Pass a future timestamptz (now() + interval ''7 days''), or leave until NULL for a suspension that lasts until um_reactivate_user.');
  END IF;
  IF p_org_id IS NULL THEN
    v_actor := um_internal.authorize_user('user.suspend', format('suspend user %s', p_user_id),
                                 'user:suspend', p_user_id);
  ELSE
    v_actor := um_internal.authorize('user.suspend', format('suspend members of organization %s', p_org_id),
                            'user:suspend', p_org_id, 'user', p_user_id);
    PERFORM um_internal.require_member(p_org_id, p_user_id);
    PERFORM um_internal.guard_root_target(v_actor, p_org_id, p_user_id, 'user.suspend', 'suspend');
  END IF;
  IF p_user_id = v_actor THEN
    PERFORM um_internal.deny('user.suspend', p_org_id, 'user', p_user_id, 'UM051', 'cannot suspend yourself',
      NULL, 'Ask another administrator.');
  END IF;
  PERFORM um_internal.guard_last_active_root(p_user_id, p_org_id, 'user.suspend', 'suspend');
  -- a timed suspension that has ended is recorded as over first: the new
  -- one then ends the user's sessions as any suspension does
  PERFORM um_internal.record_ended_suspensions(p_user_id, p_org_id);
  IF p_org_id IS NULL THEN
    UPDATE um.users u SET status = 'suspended', suspended_at = now(), suspended_until = p_until, updated_at = now()
     WHERE u.id = p_user_id AND u.status = 'active';
  ELSE
    UPDATE um.memberships m SET status = 'suspended', suspended_until = p_until
     WHERE m.org_id = p_org_id AND m.user_id = p_user_id AND m.status = 'active';
  END IF;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'user % is already suspended%', p_user_id,
                    CASE WHEN p_org_id IS NULL THEN '' ELSE ' in organization ' || p_org_id END
      USING ERRCODE = 'UM051',
            HINT = 'Reactivate the user with um_reactivate_user(); to change when a suspension ends, reactivate and suspend again in one transaction.';
  END IF;
  PERFORM um_internal.audit('user.suspend', p_org_id, 'user', p_user_id,
                            CASE WHEN p_until IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('until', p_until) END);
END
$$;
COMMENT ON FUNCTION um_internal.do_suspend_user(bigint, bigint, timestamptz) IS
  'body of um_suspend_user: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_suspend_user (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_end_suspensions()
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM um_internal.authorize('user.end_suspensions', 'record ended suspensions', NULL, NULL, 'user', NULL);
  IF @extschema@.um_current_user_id() IS NOT NULL THEN
    PERFORM um_internal.deny('user.end_suspensions', NULL, 'user', NULL, 'UM070', 'permission denied to record ended suspensions',
      'Housekeeping across organizations is for um administrators.', 'Run it from a scheduled job as a um administrator.');
  END IF;
  RETURN um_internal.record_ended_suspensions(NULL, NULL);
END
$$;
COMMENT ON FUNCTION um_internal.do_end_suspensions() IS
  'body of um_end_suspensions: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_end_suspensions (EXECUTE held by nobody)';

CREATE FUNCTION @extschema@.um_suspend_user(user_id bigint, org_id bigint DEFAULT NULL, until timestamptz DEFAULT NULL)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_suspend_user(bigint, bigint, timestamptz) IS
  'suspend a user everywhere (org_id NULL) or in one organization, for good or until a moment (access returns by itself then): everything is kept, all access blocked';

CREATE FUNCTION @extschema@.um_end_suspensions()
RETURNS integer AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_end_suspensions() IS
  'um administrators'' housekeeping: record the timed suspensions that have ended (they already grant access again) as over, audited; returns how many';

REVOKE EXECUTE ON FUNCTION
  um_internal.suspended(text, timestamptz),
  um_internal.record_ended_suspensions(bigint, bigint),
  um_internal.do_suspend_user(bigint, bigint, timestamptz),
  um_internal.do_end_suspensions()
FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- Profiles (issue 17, item 3): um_update_profile, um_update_user, and the
-- application's attribute rules; sql/install/78_profile.sql.

-- What an application keeps in um.users.attributes, key by key, and who may
-- change each (78_profile.sql): an attribute that decides data access must
-- not be changed by the user it restricts.
CREATE TABLE um.user_attribute_rules (
  key text PRIMARY KEY CONSTRAINT user_attribute_rules_key_check CHECK (key ~ '^[a-z][a-z0-9_]{0,62}$'),
  editable_by text NOT NULL DEFAULT 'admin'
    CONSTRAINT user_attribute_rules_editable_by_check CHECK (editable_by IN ('user', 'admin', 'nobody')),
  description text,
  created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE um.user_attribute_rules IS 'the keys of um.users.attributes the application declared (um_declare_user_attribute), each with who may change it; other keys only um administrators set';
COMMENT ON COLUMN um.user_attribute_rules.key IS 'the attribute''s key: a lowercase identifier';
COMMENT ON COLUMN um.user_attribute_rules.editable_by IS 'user: the user (um_update_profile) and admins; admin: admins with user:update in each of the user''s organizations (um_update_user), never the user; nobody: um administrators only (read-only for tenants)';
COMMENT ON COLUMN um.user_attribute_rules.description IS 'what the attribute means, for forms and reviews';
COMMENT ON COLUMN um.user_attribute_rules.created_at IS 'when it was declared';
INSERT INTO um.state_tables (relname, access, read_rule, readable_columns, evaluator_input, invalidating_columns, cache_key, dump_filter)
VALUES ('user_attribute_rules', 'catalog', NULL, NULL, false, NULL, NULL, '');
GRANT SELECT ON um.user_attribute_rules TO PUBLIC;
REVOKE REFERENCES ON um.user_attribute_rules FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('um.user_attribute_rules', '');

-- ---------------------------------------------------------------------------
-- Rules

-- The attributes after a patch (a JSON object: a key with value null is
-- removed, any other value set), each changed key allowed for p_as ('user',
-- 'admin' or 'administrator'); the changed keys go to p_changed.
CREATE FUNCTION um_internal.patch_attributes(p_old jsonb, p_patch jsonb, p_as text, INOUT p_changed text[],
                                             OUT p_new jsonb)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_key text;
  v_value jsonb;
  v_rule text;
BEGIN
  p_new := p_old;
  IF p_patch IS NULL THEN
    RETURN;
  END IF;
  IF jsonb_typeof(p_patch) <> 'object' THEN
    RAISE EXCEPTION 'user attributes must be a JSON object'
      USING ERRCODE = 'UM007', DETAIL = format('The value given is a JSON %s.', jsonb_typeof(p_patch)),
            HINT = 'Pass the keys to change, e.g. ''{"department": "finance"}''; a key set to null is removed.';
  END IF;
  FOR v_key, v_value IN SELECT e.key, e.value FROM jsonb_each(p_patch) e ORDER BY e.key LOOP
    IF v_value = 'null'::jsonb THEN
      CONTINUE WHEN NOT (p_old ? v_key);
    ELSE
      CONTINUE WHEN p_old -> v_key = v_value;
    END IF;
    SELECT r.editable_by INTO v_rule FROM um.user_attribute_rules r WHERE r.key = v_key;
    IF NOT FOUND AND p_as <> 'administrator' THEN
      RAISE EXCEPTION 'unknown user attribute "%"', v_key
        USING ERRCODE = 'UM013', DETAIL = 'The application has not declared this key.',
              HINT = 'Use a key of um.user_attribute_rules; a um administrator declares new ones with um_declare_user_attribute().';
    END IF;
    IF (p_as = 'user' AND v_rule <> 'user') OR (p_as = 'admin' AND v_rule = 'nobody') THEN
      RAISE EXCEPTION 'user attribute "%" cannot be changed here', v_key
        USING ERRCODE = 'UM075',
              DETAIL = CASE v_rule WHEN 'admin' THEN 'Only an admin of the user''s organizations changes it, never the user it describes.'
                                   ELSE 'It is read-only: only a um administrator sets it.' END,
              HINT = CASE v_rule WHEN 'admin' THEN 'Ask an Admin of your organization (um_update_user).'
                                 ELSE 'Have the backend set it with nobody acting, or leave the key out.' END;
    END IF;
    p_new := CASE WHEN v_value = 'null'::jsonb THEN p_new - v_key ELSE jsonb_set(p_new, ARRAY[v_key], v_value) END;
    p_changed := p_changed || ('attributes.' || v_key);
  END LOOP;
END
$$;
COMMENT ON FUNCTION um_internal.patch_attributes(jsonb, jsonb, text, text[]) IS
  'internal: the user attributes after a patch (null removes a key), each changed key allowed for the actor by um.user_attribute_rules (UM013 undeclared, UM075 not theirs to change)';

-- Apply a profile change for p_as; returns the profile as the user sees it.
CREATE FUNCTION um_internal.apply_profile(p_user_id bigint, p_as text, p_action text, p_name text, p_timezone text,
                                          p_locale text, p_mobile text, p_attributes jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.users;
  v_changed text[] := '{}';
  v_attributes jsonb;
BEGIN
  SELECT * INTO v FROM um.users u WHERE u.id = p_user_id FOR NO KEY UPDATE;
  IF p_name IS NOT NULL AND p_name IS DISTINCT FROM v.name THEN v_changed := v_changed || 'name'::text; END IF;
  IF p_timezone IS NOT NULL AND p_timezone IS DISTINCT FROM v.timezone THEN v_changed := v_changed || 'timezone'::text; END IF;
  IF p_locale IS NOT NULL AND p_locale IS DISTINCT FROM v.locale THEN v_changed := v_changed || 'locale'::text; END IF;
  IF p_mobile IS NOT NULL AND nullif(p_mobile, '') IS DISTINCT FROM v.mobile THEN v_changed := v_changed || 'mobile'::text; END IF;
  SELECT a.p_new, a.p_changed INTO v_attributes, v_changed
    FROM um_internal.patch_attributes(v.attributes, p_attributes, p_as, v_changed) a;
  IF cardinality(v_changed) > 0 THEN
    -- checked by users_before_write (UM003-UM006): a bad value changes nothing
    UPDATE um.users u
       SET name = coalesce(p_name, u.name), timezone = coalesce(p_timezone, u.timezone),
           locale = coalesce(p_locale, u.locale),
           mobile = CASE WHEN p_mobile IS NULL THEN u.mobile ELSE nullif(p_mobile, '') END,
           attributes = v_attributes
     WHERE u.id = p_user_id
    RETURNING * INTO v;
    PERFORM um_internal.audit(p_action, NULL, 'user', p_user_id, jsonb_build_object('changed', to_jsonb(v_changed)));
  END IF;
  RETURN jsonb_build_object('id', v.id, 'email', v.email, 'name', v.name, 'timezone', v.timezone, 'locale', v.locale,
                            'mobile', v.mobile, 'attributes', v.attributes, 'updated_at', v.updated_at);
END
$$;
COMMENT ON FUNCTION um_internal.apply_profile(bigint, text, text, text, text, text, text, jsonb) IS
  'internal: changes a user''s name, time zone, locale, mobile ('''' removes it) and attributes (a patch) as p_as may, audits the fields changed (not their values), and returns the profile';

-- ---------------------------------------------------------------------------
-- Bodies

CREATE FUNCTION um_internal.do_declare_user_attribute(p_key text, p_editable_by text, p_description text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF @extschema@.um_current_user_id() IS NOT NULL THEN
    PERFORM um_internal.deny('user_attribute.declare', NULL, 'user_attribute', NULL, 'UM070',
      'permission denied to declare user attributes',
      'The application''s attributes are declared by a um administrator, for every organization.',
      'Declare them in the application''s migrations, with nobody acting.');
  END IF;
  PERFORM um_internal.authorize('user_attribute.declare', 'declare user attributes', NULL, NULL, 'user_attribute', NULL);
  IF p_key IS NULL OR p_key !~ '^[a-z][a-z0-9_]{0,62}$' THEN
    PERFORM um_internal.raise('UM013', format('invalid user attribute key "%s"', p_key), NULL,
      'Use a lowercase identifier of up to 63 characters, like department or cost_center.');
  END IF;
  IF p_editable_by IS NULL OR p_editable_by NOT IN ('user', 'admin', 'nobody') THEN
    PERFORM um_internal.raise('UM009', format('invalid editable_by "%s"', p_editable_by), NULL,
      'Pass user (the user and admins), admin (admins only, never the user it describes) or nobody (um administrators only).');
  END IF;
  INSERT INTO um.user_attribute_rules AS r (key, editable_by, description)
  VALUES (p_key, p_editable_by, p_description)
  ON CONFLICT (key) DO UPDATE SET editable_by = EXCLUDED.editable_by, description = EXCLUDED.description;
  PERFORM um_internal.audit('user_attribute.declare', NULL, 'user_attribute', NULL,
                            jsonb_build_object('key', p_key, 'editable_by', p_editable_by));
END
$$;
COMMENT ON FUNCTION um_internal.do_declare_user_attribute(text, text, text) IS
  'body of um_declare_user_attribute: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_declare_user_attribute (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_drop_user_attribute(p_key text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF @extschema@.um_current_user_id() IS NOT NULL THEN
    PERFORM um_internal.deny('user_attribute.drop', NULL, 'user_attribute', NULL, 'UM070',
      'permission denied to drop user attributes',
      'The application''s attributes are declared by a um administrator, for every organization.',
      'Drop them in the application''s migrations, with nobody acting.');
  END IF;
  PERFORM um_internal.authorize('user_attribute.drop', 'drop user attributes', NULL, NULL, 'user_attribute', NULL);
  DELETE FROM um.user_attribute_rules r WHERE r.key = p_key;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  PERFORM um_internal.audit('user_attribute.drop', NULL, 'user_attribute', NULL, jsonb_build_object('key', p_key));
  RETURN true;
END
$$;
COMMENT ON FUNCTION um_internal.do_drop_user_attribute(text) IS
  'body of um_drop_user_attribute: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_drop_user_attribute (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_update_profile(p_name text, p_timezone text, p_locale text, p_mobile text, p_attributes jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um_internal.require_actor('Call um_begin(token) first: a profile is changed by its own user.');
BEGIN
  IF v_actor IS DISTINCT FROM @extschema@.um_real_user_id() THEN
    PERFORM um_internal.deny('user.update_profile', NULL, 'user', v_actor, 'UM071',
      'cannot change a profile while impersonating its user', 'Impersonation shows what the user sees; it changes nothing of theirs.',
      'Call um_end_impersonation() first; an admin changes other users with um_update_user.');
  END IF;
  RETURN um_internal.apply_profile(v_actor, 'user', 'user.update_profile', p_name, p_timezone, p_locale, p_mobile, p_attributes);
END
$$;
COMMENT ON FUNCTION um_internal.do_update_profile(text, text, text, text, jsonb) IS
  'body of um_update_profile: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_update_profile (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_update_user(p_user_id bigint, p_name text, p_timezone text, p_locale text, p_mobile text,
                                           p_attributes jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint;
BEGIN
  IF @extschema@.um_current_user_id() IS DISTINCT FROM @extschema@.um_real_user_id() THEN
    PERFORM um_internal.deny('user.update', NULL, 'user', p_user_id, 'UM071',
      'cannot change users while impersonating', NULL, 'Call um_end_impersonation() first.');
  END IF;
  v_actor := um_internal.authorize_user('user.update', format('update user %s', p_user_id), 'user:update', p_user_id);
  RETURN um_internal.apply_profile(p_user_id,
                                   CASE WHEN v_actor IS NULL THEN 'administrator' WHEN v_actor = p_user_id THEN 'user' ELSE 'admin' END,
                                   'user.update', p_name, p_timezone, p_locale, p_mobile, p_attributes);
END
$$;
COMMENT ON FUNCTION um_internal.do_update_user(bigint, text, text, text, text, jsonb) IS
  'body of um_update_user: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_update_user (EXECUTE held by nobody)';

-- ---------------------------------------------------------------------------
-- The public functions: each is src/lifecycle.c's entry point, which calls
-- um_internal.do_<name> with the calling role.  None is STRICT: a NULL
-- argument gets the error that names it (or, for a profile field, leaves it).

CREATE FUNCTION @extschema@.um_declare_user_attribute(key text, editable_by text DEFAULT 'admin', description text DEFAULT NULL)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_declare_user_attribute(text, text, text) IS
  'declare (or redeclare) a key of um.users.attributes and who may change it: user, admin (never the user it describes) or nobody (um administrators only); um administrators';

CREATE FUNCTION @extschema@.um_drop_user_attribute(key text)
RETURNS boolean AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_drop_user_attribute(text) IS
  'forget a declared attribute key (the users'' values stay; only um administrators change them then); false when it was not declared; um administrators';

CREATE FUNCTION @extschema@.um_update_profile(name text DEFAULT NULL, timezone text DEFAULT NULL, locale text DEFAULT NULL,
                                              mobile text DEFAULT NULL, attributes jsonb DEFAULT NULL)
RETURNS jsonb AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_update_profile(text, text, text, text, jsonb) IS
  'the acting user changes their own profile: NULL leaves a field, mobile '''' removes it, attributes is a patch of user-editable keys (null removes one); returns the profile';

CREATE FUNCTION @extschema@.um_update_user(user_id bigint, name text DEFAULT NULL, timezone text DEFAULT NULL,
                                           locale text DEFAULT NULL, mobile text DEFAULT NULL, attributes jsonb DEFAULT NULL)
RETURNS jsonb AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_update_user(bigint, text, text, text, text, jsonb) IS
  'an admin (user:update in each of the user''s organizations; a Root only by a Root) changes a user''s profile as um_update_profile does, with admin-only attributes too (never their own); returns the profile';

REVOKE EXECUTE ON FUNCTION
  um_internal.patch_attributes(jsonb, jsonb, text, text[]),
  um_internal.apply_profile(bigint, text, text, text, text, text, text, jsonb),
  um_internal.do_declare_user_attribute(text, text, text),
  um_internal.do_drop_user_attribute(text),
  um_internal.do_update_profile(text, text, text, text, jsonb),
  um_internal.do_update_user(bigint, text, text, text, text, jsonb)
FROM PUBLIC;


-- ---------------------------------------------------------------------------
-- Email change with re-verification (issue 17, item 2);
-- sql/install/76_email_change.sql.

-- Email changes (76_email_change.sql): at most one pending per user; the
-- new address takes effect only when its mailbox confirms it.
CREATE TABLE um.email_changes (
  user_id bigint PRIMARY KEY REFERENCES um.users ON DELETE CASCADE,
  new_email text NOT NULL CONSTRAINT email_changes_new_email_check CHECK (um_internal.email_is_valid(new_email)),
  requested_by bigint,
  confirm_hash bytea CONSTRAINT email_changes_confirm_hash_key UNIQUE,
  cancel_hash bytea CONSTRAINT email_changes_cancel_hash_key UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  CONSTRAINT email_changes_expiry_check CHECK (expires_at > created_at)
);
COMMENT ON TABLE um.email_changes IS 'pending email address changes (um_request_email_change), one per user; the secrets themselves are never stored';
COMMENT ON COLUMN um.email_changes.user_id IS 'whose address changes';
COMMENT ON COLUMN um.email_changes.new_email IS 'the address asked for; it replaces the user''s once its mailbox confirms (um_confirm_email_change)';
COMMENT ON COLUMN um.email_changes.requested_by IS 'the acting user who asked (the user, or an admin); NULL for a um administrator';
COMMENT ON COLUMN um.email_changes.confirm_hash IS 'SHA-256 of the confirmation token mailed to the new address (NULL until um_email_change_mail issues it)';
COMMENT ON COLUMN um.email_changes.cancel_hash IS 'SHA-256 of the cancel token mailed to the old address with the notice';
COMMENT ON COLUMN um.email_changes.created_at IS 'when it was asked for';
COMMENT ON COLUMN um.email_changes.expires_at IS 'it can be confirmed until then (24 hours after the request)';
INSERT INTO um.state_tables (relname, access, read_rule, readable_columns, evaluator_input, invalidating_columns, cache_key, dump_filter)
VALUES ('email_changes', 'secret', NULL, NULL, false, NULL, NULL, '');
ALTER TABLE um.email_changes ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY um_administrators ON um.email_changes USING (um_internal.administers_um()) WITH CHECK (um_internal.administers_um());
COMMENT ON POLICY um_administrators ON um.email_changes IS
  'um administrators (roles with the privileges of the extension''s owner) read and write every row';
REVOKE REFERENCES ON um.email_changes FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('um.email_changes', '');

-- ---------------------------------------------------------------------------
-- Bodies

CREATE FUNCTION um_internal.may_update_user(p_actor bigint, p_user bigint)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN EXISTS (SELECT 1 FROM um.memberships m WHERE m.user_id = p_user)
     AND NOT EXISTS (SELECT 1 FROM um.memberships m
                      WHERE m.user_id = p_user
                        AND (NOT @extschema@.um_has_permission(p_actor, 'user:update', m.org_id)
                             OR (um_internal.is_root(m.org_id, p_user) AND NOT um_internal.is_root(m.org_id, p_actor))));
END
$$;
COMMENT ON FUNCTION um_internal.may_update_user(bigint, bigint) IS
  'internal: whether a user may change another''s account now (user:update in each of the other''s organizations; a Root''s only as a Root)';

CREATE FUNCTION um_internal.do_request_email_change(p_new_email text, p_user_id bigint)
RETURNS timestamptz
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := @extschema@.um_current_user_id();
  v_user bigint := coalesce(p_user_id, v_actor);
  v_email text := btrim(coalesce(p_new_email, ''), E' \t\r\n');
  v um.users;
  v_expires timestamptz := now() + interval '24 hours';
BEGIN
  IF v_actor IS DISTINCT FROM @extschema@.um_real_user_id() THEN
    PERFORM um_internal.deny('user.request_email_change', NULL, 'user', v_user, 'UM071',
      'cannot change an email address while impersonating', NULL, 'Call um_end_impersonation() first.');
  END IF;
  IF p_user_id IS NULL OR p_user_id = v_actor THEN
    PERFORM um_internal.require_actor('Call um_begin(token) first, or pass the user_id as a um administrator.');
    PERFORM um_internal.require_recent_authentication('user.request_email_change', 'changing your email address');
  ELSIF p_user_id IS DISTINCT FROM v_actor THEN
    PERFORM um_internal.authorize_user('user.request_email_change', format('change the email address of user %s', p_user_id),
                                       'user:update', p_user_id);
    -- an admin moves an account only to an address of a domain one of the
    -- user's organizations owns: anywhere else it would be taking it over
    IF v_actor IS NOT NULL AND NOT EXISTS (SELECT 1 FROM um.memberships m
                                            WHERE m.user_id = p_user_id AND um_internal.org_owns_address(m.org_id, v_email)) THEN
      PERFORM um_internal.deny('user.request_email_change', NULL, 'user', p_user_id, 'UM074',
        'cannot move an account to an address outside its organizations'' domains',
        'An admin changes a user''s address only within a domain one of the user''s organizations owns (um.organization_domains).',
        'Ask the user to change it themself, or record the domain first (um_add_org_domain, by the service''s operator).');
    END IF;
  END IF;
  -- the same checks as a sign-up's, whether or not the address is registered
  IF NOT um_internal.email_is_valid(v_email) THEN
    PERFORM um_internal.raise('UM001', format('invalid email address "%s"', v_email), NULL,
      'Check the address for typos; write internationalized domains in their xn-- (punycode) form.');
  END IF;
  SELECT * INTO v FROM um.users u WHERE u.id = v_user FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    PERFORM um_internal.require_user(v_user);
  END IF;
  IF lower(v.email) = lower(v_email) THEN
    PERFORM um_internal.raise('UM009', 'the new email address is the current one', NULL,
      'Pass the address to change to; to cancel a pending change, use the token of the notice (um_cancel_email_change).');
  END IF;
  INSERT INTO um.email_changes AS c (user_id, new_email, requested_by, expires_at)
  VALUES (v.id, v_email, v_actor, v_expires)
  ON CONFLICT (user_id) DO UPDATE
    SET new_email = EXCLUDED.new_email, requested_by = EXCLUDED.requested_by, confirm_hash = NULL, cancel_hash = NULL,
        created_at = now(), expires_at = EXCLUDED.expires_at;
  PERFORM um_internal.audit('user.request_email_change', NULL, 'user', v.id,
                            jsonb_build_object('by', CASE WHEN v_actor IS NULL THEN 'administrator'
                                                          WHEN v_actor = v.id THEN 'user' ELSE 'admin' END));
  RETURN v_expires;
END
$$;
COMMENT ON FUNCTION um_internal.do_request_email_change(text, bigint) IS
  'body of um_request_email_change: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_request_email_change (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_email_change_mail(p_user_id bigint, OUT old_address text, OUT new_address text,
                                                 OUT confirm_token text, OUT cancel_token text,
                                                 OUT new_address_registered boolean, OUT expires_at timestamptz)
RETURNS SETOF record
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v record;
BEGIN
  IF @extschema@.um_current_user_id() IS NOT NULL THEN
    RAISE EXCEPTION 'an email change''s secrets are only issued with nobody acting'
      USING ERRCODE = 'UM058',
            DETAIL = 'The confirmation token proves the new mailbox; no logged-in user may see it.',
            HINT = 'Call it from the backend in a transaction where nobody is acting, and mail the result.';
  END IF;
  SELECT c.*, u.email AS old_email INTO v
    FROM um.email_changes c JOIN um.users u ON u.id = c.user_id
   WHERE c.user_id = p_user_id AND c.expires_at > clock_timestamp()
     FOR UPDATE OF c;
  IF NOT FOUND THEN
    RETURN;                                   -- nothing pending: nothing to mail
  END IF;
  old_address := v.old_email;
  new_address := v.new_email;
  new_address_registered := EXISTS (SELECT 1 FROM um.users u WHERE lower(u.email) = lower(v.new_email));
  -- issued afresh at each call (the last mail's tokens stop working)
  cancel_token := um_internal.generate_token();
  IF NOT new_address_registered THEN
    confirm_token := um_internal.generate_token();
  END IF;
  UPDATE um.email_changes c
     SET confirm_hash = um_internal.token_hash(confirm_token), cancel_hash = um_internal.token_hash(cancel_token)
   WHERE c.user_id = p_user_id;
  expires_at := v.expires_at;
  PERFORM um_internal.audit('user.email_change_mail', NULL, 'user', p_user_id,
                            jsonb_build_object('new_address_registered', new_address_registered));
  RETURN NEXT;
END
$$;
COMMENT ON FUNCTION um_internal.do_email_change_mail(bigint) IS
  'body of um_email_change_mail: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_email_change_mail (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_confirm_email_change(p_token text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.email_changes;
BEGIN
  SELECT c.* INTO v FROM um.email_changes c
   WHERE c.confirm_hash = um_internal.token_hash(coalesce(p_token, '')) AND c.expires_at > clock_timestamp()
     FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM um_internal.raise('UM053', 'the email change token is not valid',
      'It is unknown, was used, replaced or cancelled, or expired.', 'Ask for the change again (um_request_email_change).');
  END IF;
  -- an admin's request holds only while they may still change the account
  -- (a suspension, a lost role, the user joining an organization of which
  -- the admin is none, void it)
  IF v.requested_by IS NOT NULL AND v.requested_by <> v.user_id AND NOT um_internal.may_update_user(v.requested_by, v.user_id) THEN
    PERFORM um_internal.raise('UM053', 'the email change token is not valid',
      'The admin who asked for the change may no longer change this account.', 'Ask for the change again.');
  END IF;
  BEGIN
    -- (users_before_write unverifies a changed address: the second statement
    -- records that this mailbox was just proven)
    UPDATE um.users u SET email = v.new_email WHERE u.id = v.user_id;
  EXCEPTION WHEN unique_violation THEN
    PERFORM um_internal.raise('UM020', format('email address "%s" is already registered', v.new_email),
      'An account was made for it since the change was asked for.',
      'Log in to that account instead, or ask for a change to another address.');
  END;
  UPDATE um.users u SET email_verified_at = now() WHERE u.id = v.user_id;
  DELETE FROM um.email_changes c WHERE c.user_id = v.user_id;
  DELETE FROM um.verification_tokens t WHERE t.user_id = v.user_id;
  IF coalesce(current_setting('um.email_change_ends_sessions', true), 'off') = 'on' THEN
    UPDATE um.sessions s SET revoked_at = now(), revoked_reason = 'ended by an email change'
     WHERE s.user_id = v.user_id AND s.revoked_at IS NULL;
  END IF;
  PERFORM um_internal.audit('user.change_email', NULL, 'user', v.user_id,
                            jsonb_build_object('requested_by', v.requested_by));
  RETURN v.user_id;
END
$$;
COMMENT ON FUNCTION um_internal.do_confirm_email_change(text) IS
  'body of um_confirm_email_change: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_confirm_email_change (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_cancel_email_change(p_token text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_user bigint;
BEGIN
  DELETE FROM um.email_changes c WHERE c.cancel_hash = um_internal.token_hash(coalesce(p_token, ''))
  RETURNING c.user_id INTO v_user;
  IF NOT FOUND THEN
    PERFORM um_internal.raise('UM053', 'the email change token is not valid',
      'It is unknown, or the change was confirmed, replaced or cancelled already.', 'Nothing is pending to cancel.');
  END IF;
  PERFORM um_internal.audit('user.cancel_email_change', NULL, 'user', v_user, '{}');
  RETURN v_user;
END
$$;
COMMENT ON FUNCTION um_internal.do_cancel_email_change(text) IS
  'body of um_cancel_email_change: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_cancel_email_change (EXECUTE held by nobody)';

-- ---------------------------------------------------------------------------
-- The public functions: each is src/lifecycle.c's entry point, which calls
-- um_internal.do_<name> with the calling role.  None is STRICT: a NULL
-- argument gets the error that names it.

CREATE FUNCTION @extschema@.um_request_email_change(new_email text, user_id bigint DEFAULT NULL)
RETURNS timestamptz AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_request_email_change(text, bigint) IS
  'ask to change the acting user''s address (or, user_id given, a user''s: user:update in each of their organizations); nothing changes until the new mailbox confirms; the same answer whether the address is registered; returns when the request expires';

CREATE FUNCTION @extschema@.um_email_change_mail(user_id bigint, OUT old_address text, OUT new_address text,
                                                 OUT confirm_token text, OUT cancel_token text,
                                                 OUT new_address_registered boolean, OUT expires_at timestamptz)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 1;
COMMENT ON FUNCTION @extschema@.um_email_change_mail(bigint) IS
  'what the backend mails for a user''s pending email change: a confirmation token to new_address (NULL when it has an account: mail its owner a notice), a cancel token with a notice to old_address; fresh tokens at each call; no row when nothing is pending; nobody may be acting';

CREATE FUNCTION @extschema@.um_confirm_email_change(token text)
RETURNS bigint AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_confirm_email_change(text) IS
  'the new mailbox confirms: the address changes, verified; the user''s other mailbox secrets end (and their sessions where um.email_change_ends_sessions is on); returns the user id';

CREATE FUNCTION @extschema@.um_cancel_email_change(token text)
RETURNS bigint AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_cancel_email_change(text) IS
  'the old mailbox cancels a pending email change with the token of its notice; returns the user id';

-- The secrets go to the caller, which must be the backend that mails them:
-- EXECUTE is granted to that role by the DBA.
REVOKE EXECUTE ON FUNCTION @extschema@.um_email_change_mail(bigint) FROM PUBLIC;

REVOKE EXECUTE ON FUNCTION
  um_internal.may_update_user(bigint, bigint),
  um_internal.do_request_email_change(text, bigint),
  um_internal.do_email_change_mail(bigint),
  um_internal.do_confirm_email_change(text),
  um_internal.do_cancel_email_change(text)
FROM PUBLIC;

-- the export names a pending email change
CREATE OR REPLACE FUNCTION um_internal.do_export_my_data()
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um_internal.require_actor('Call um_begin(token) first: users export their own data.');
  v jsonb;
BEGIN
  IF v_actor IS DISTINCT FROM @extschema@.um_real_user_id() THEN
    PERFORM um_internal.deny('user.export_self', NULL, 'user', v_actor, 'UM071',
      'cannot export a user''s data while impersonating them', NULL, 'Call um_end_impersonation() first.');
  END IF;
  SELECT jsonb_build_object(
           'exported_at', now(),
           'profile', jsonb_build_object('id', u.id, 'email', u.email, 'name', u.name, 'timezone', u.timezone,
                                         'locale', u.locale, 'mobile', u.mobile, 'allow_login', u.allow_login,
                                         'status', u.status, 'email_verified_at', u.email_verified_at,
                                         'password_changed_at', u.password_changed_at,
                                         'attributes', u.attributes, 'created_at', u.created_at),
           'memberships', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                             'org_id', o.id, 'organization', o.name, 'role', r.name, 'status', m.status,
                             'member_since', m.created_at) ORDER BY o.id), '[]')
                             FROM um.memberships m JOIN um.organizations o ON o.id = m.org_id JOIN um.roles r ON r.id = m.role_id
                            WHERE m.user_id = u.id),
           'teams', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                       'org_id', t.org_id, 'team', t.name, 'owner', tm.is_owner, 'added_at', tm.added_at,
                       'roles', (SELECT coalesce(jsonb_agg(tr.name ORDER BY tr.name), '[]')
                                   FROM um.team_member_roles tmr JOIN um.roles tr ON tr.id = tmr.role_id
                                  WHERE tmr.team_id = tm.team_id AND tmr.user_id = u.id)) ORDER BY t.id), '[]')
                       FROM um.team_members tm JOIN um.teams t ON t.id = tm.team_id WHERE tm.user_id = u.id),
           'grants', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                        'org_id', g.org_id, 'role', gr.name, 'scope_id', g.scope_id, 'scope_kind', g.scope_kind,
                        'granted_at', g.created_at) ORDER BY g.id), '[]')
                        FROM um.grants g JOIN um.roles gr ON gr.id = g.role_id WHERE g.user_id = u.id),
           'sessions', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                          'created_at', s.created_at, 'expires_at', s.expires_at, 'method', s.method,
                          'last_seen_at', (SELECT a.last_seen_at FROM um.session_activity a WHERE a.session_id = s.id),
                          'client_addr', s.client_addr, 'user_agent', s.user_agent,
                          'ended_at', s.revoked_at) ORDER BY s.id), '[]')
                          FROM um.sessions s WHERE s.user_id = u.id),
           'password_reset', (SELECT jsonb_build_object('requested_at', r.created_at, 'expires_at', r.expires_at)
                                FROM um.password_resets r WHERE r.user_id = u.id),
           'email_change', (SELECT jsonb_build_object('new_email', c.new_email, 'requested_at', c.created_at,
                                                      'expires_at', c.expires_at)
                              FROM um.email_changes c WHERE c.user_id = u.id),
           'second_factors', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                                'kind', f.kind, 'name', f.name, 'enrolled_at', f.created_at, 'confirmed_at', f.confirmed_at,
                                'last_used_at', f.last_used_at) ORDER BY f.id), '[]')
                                FROM um.mfa_factors f WHERE f.user_id = u.id),
           'recovery_codes_left', (SELECT count(*) FROM um.mfa_recovery_codes r WHERE r.user_id = u.id),
           'identities', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                            'provider', p.name, 'subject', i.subject, 'linked_at', i.created_at) ORDER BY p.id), '[]')
                            FROM um.user_identities i JOIN um.identity_providers p ON p.id = i.provider_id
                           WHERE i.user_id = u.id),
           'audit_events', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                              'at', a.at, 'action', a.action, 'outcome', a.outcome, 'org_id', a.org_id,
                              'target_type', a.target_type, 'target_id', a.target_id,
                              'by_me', a.actor_user_id = u.id) ORDER BY a.id), '[]')
                              FROM um.audit_events a
                             WHERE a.actor_user_id = u.id OR (a.target_type = 'user' AND a.target_id = u.id)))
    INTO v
    FROM um.users u WHERE u.id = v_actor;
  PERFORM um_internal.audit('user.export_self', NULL, 'user', v_actor, '{}');
  RETURN v;
END
$$;

-- ---------------------------------------------------------------------------
-- Sessions and devices (issue 17, item 4); sql/install/74_sessions.sql.

-- Settings of these names were the application's own in 0.2; from 0.3 on
-- they are um's (session limits, require_mfa): values 0.2 stored are
-- dropped, not trusted, and said so.
DO $$
DECLARE
  v text;
BEGIN
  SELECT string_agg(o.slug, ', ' ORDER BY o.slug) INTO v FROM um.organizations o
   WHERE o.settings ?| ARRAY['session_lifetime', 'session_idle_timeout', 'require_mfa'];
  IF v IS NOT NULL THEN
    UPDATE um.organizations o SET settings = o.settings - 'session_lifetime' - 'session_idle_timeout' - 'require_mfa'
     WHERE o.settings ?| ARRAY['session_lifetime', 'session_idle_timeout', 'require_mfa'];
    RAISE NOTICE 'um: settings session_lifetime, session_idle_timeout and require_mfa are um''s from 0.3 on; removed the values of organizations %', v
      USING HINT = 'Set them again with um_set_org_setting, which checks them.';
  END IF;
END
$$;
ALTER TABLE um.sessions DROP CONSTRAINT sessions_method_check,
  ADD CONSTRAINT sessions_method_check CHECK (method IN ('password', 'reset', 'invitation', 'verification', 'sso', 'key')),
  ADD COLUMN idle_timeout integer CONSTRAINT sessions_idle_timeout_check CHECK (idle_timeout > 0),
  ADD COLUMN client_addr inet,
  ADD COLUMN user_agent text CONSTRAINT sessions_user_agent_check CHECK (char_length(user_agent) <= 512),
  ADD COLUMN assurance_level smallint NOT NULL DEFAULT 1 CONSTRAINT sessions_assurance_level_check CHECK (assurance_level IN (1, 2)),
  ADD COLUMN previous_token_hash bytea;
CREATE INDEX sessions_previous_token_hash_idx ON um.sessions (previous_token_hash) WHERE previous_token_hash IS NOT NULL;
-- When a session was last used, apart from it: um_begin records it there
-- without taking a lock on the session, which logouts, revocations and
-- limits update (src/session.c, touch_session).
CREATE TABLE um.session_activity (
  session_id bigint PRIMARY KEY REFERENCES um.sessions ON DELETE CASCADE,
  last_seen_at timestamptz NOT NULL
);
COMMENT ON TABLE um.session_activity IS 'when each session was last used, coarsely (um_begin writes at most every 5 minutes, never on a hot standby or in a read-only transaction, and never waits for a lock)';
COMMENT ON COLUMN um.session_activity.session_id IS 'the session';
COMMENT ON COLUMN um.session_activity.last_seen_at IS 'when um_begin (or um_refresh_session) last recorded its use';
INSERT INTO um.session_activity (session_id, last_seen_at) SELECT s.id, s.created_at FROM um.sessions s;
INSERT INTO um.state_tables (relname, access, read_rule, readable_columns, evaluator_input, invalidating_columns, cache_key, dump_filter)
VALUES ('session_activity', 'secret', NULL, NULL, false, NULL, NULL, '');
ALTER TABLE um.session_activity ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY um_administrators ON um.session_activity USING (um_internal.administers_um()) WITH CHECK (um_internal.administers_um());
COMMENT ON POLICY um_administrators ON um.session_activity IS
  'um administrators (roles with the privileges of the extension''s owner) read and write every row';
REVOKE REFERENCES ON um.session_activity FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('um.session_activity', '');
COMMENT ON COLUMN um.sessions.method IS 'how the session began: password (um_login, um_change_password), reset (um_reset_password_and_login), invitation (um_accept_invitation_and_login), verification (um_verify_email_and_login), sso or key (identity providers and API keys: no um function starts those yet)';
COMMENT ON COLUMN um.sessions.idle_timeout IS 'seconds without use after which it ends (um.session_idle_timeout, or a stricter organization''s session_idle_timeout); NULL: none';
COMMENT ON COLUMN um.sessions.client_addr IS 'the client''s address, as the backend passed it at login (SET LOCAL um.client_addr)';
COMMENT ON COLUMN um.sessions.user_agent IS 'the client''s user agent, as the backend passed it at login (SET LOCAL um.client_user_agent), 512 characters at most';
COMMENT ON COLUMN um.sessions.assurance_level IS '1: one factor; 2: a second factor was proven';
COMMENT ON COLUMN um.sessions.previous_token_hash IS 'SHA-256 of the token um_refresh_session replaced: presented again, it ends the session (a stolen token in use)';

-- The lifetimes of a session a user starts now: the absolute one and the
-- idle timeout (NULL: none), each the strictest of the setting and of the
-- user's organizations' (settings session_lifetime, session_idle_timeout).
CREATE FUNCTION um_internal.session_limits(p_user_id bigint, OUT lifetime_seconds integer, OUT idle_seconds integer)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  -- (only what um_set_org_setting stores counts: seconds in range)
  SELECT least((um_internal.login_settings()).session_lifetime_seconds,
               min(CASE WHEN jsonb_typeof(o.settings -> 'session_lifetime') = 'number'
                         AND (o.settings ->> 'session_lifetime')::numeric BETWEEN 60 AND 31536000
                        THEN (o.settings ->> 'session_lifetime')::numeric::integer END)),
         least(nullif(extract(epoch FROM current_setting('um.session_idle_timeout')::interval)::integer, 0),
               min(CASE WHEN jsonb_typeof(o.settings -> 'session_idle_timeout') = 'number'
                         AND (o.settings ->> 'session_idle_timeout')::numeric BETWEEN 60 AND 31536000
                        THEN (o.settings ->> 'session_idle_timeout')::numeric::integer END))
    INTO lifetime_seconds, idle_seconds
    FROM um.memberships m JOIN um.organizations o ON o.id = m.org_id
   WHERE m.user_id = p_user_id;
END
$$;
COMMENT ON FUNCTION um_internal.session_limits(bigint) IS
  'internal: the absolute lifetime and idle timeout (NULL: none) of a session the user starts now: the strictest of um.session_lifetime, um.session_idle_timeout and the user''s organizations'' session_lifetime and session_idle_timeout';

-- An organization's limit, tightened: its members' sessions end by it too.
CREATE FUNCTION um_internal.apply_session_limit(p_org_id bigint, p_setting text, p_seconds integer)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF p_setting = 'session_lifetime' THEN
    UPDATE um.sessions s SET expires_at = greatest(s.created_at + make_interval(secs => p_seconds), s.created_at + interval '1 second')
     WHERE s.user_id IN (SELECT m.user_id FROM um.memberships m WHERE m.org_id = p_org_id)
       AND s.revoked_at IS NULL AND s.expires_at > s.created_at + make_interval(secs => p_seconds);
  ELSE
    UPDATE um.sessions s SET idle_timeout = p_seconds
     WHERE s.user_id IN (SELECT m.user_id FROM um.memberships m WHERE m.org_id = p_org_id)
       AND s.revoked_at IS NULL AND (s.idle_timeout IS NULL OR s.idle_timeout > p_seconds);
  END IF;
END
$$;
COMMENT ON FUNCTION um_internal.apply_session_limit(bigint, text, integer) IS
  'internal: an organization''s new session_lifetime or session_idle_timeout also shortens the live sessions of its members';

-- The session this transaction's um_begin used (NULL: none, e.g. um_act_as).
CREATE FUNCTION um_internal.current_session_id()
RETURNS bigint
AS 'MODULE_PATHNAME', 'um_current_session_id'
LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION um_internal.current_session_id() IS
  'internal: the id of the session um_begin made acting in this transaction; NULL when nobody acts through a session';

-- ---------------------------------------------------------------------------
-- Bodies

CREATE FUNCTION um_internal.do_my_sessions(OUT session_id bigint, OUT method text, OUT created_at timestamptz,
                                           OUT last_seen_at timestamptz, OUT expires_at timestamptz,
                                           OUT idle_expires_at timestamptz, OUT client_addr inet, OUT user_agent text,
                                           OUT assurance_level smallint, OUT current boolean)
RETURNS SETOF record
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um_internal.require_actor('Call um_begin(token) first: this lists the acting user''s sessions.');
BEGIN
  IF v_actor IS DISTINCT FROM @extschema@.um_real_user_id() THEN
    PERFORM um_internal.raise('UM071', 'cannot list sessions while impersonating',
      'Where and how a user signs in is theirs alone.', 'Call um_end_impersonation() first.');
  END IF;
  RETURN QUERY
    SELECT s.id, s.method, s.created_at, a.last_seen_at, s.expires_at,
           coalesce(a.last_seen_at, s.created_at) + make_interval(secs => s.idle_timeout),
           s.client_addr, s.user_agent, s.assurance_level, s.id = um_internal.current_session_id()
      FROM um.sessions s JOIN um.users u ON u.id = s.user_id
      LEFT JOIN um.session_activity a ON a.session_id = s.id
     WHERE s.user_id = v_actor AND s.revoked_at IS NULL AND s.expires_at > clock_timestamp()
       AND (s.idle_timeout IS NULL OR coalesce(a.last_seen_at, s.created_at) + make_interval(secs => s.idle_timeout) > clock_timestamp())
       AND s.password_changed_at IS NOT DISTINCT FROM u.password_changed_at
     ORDER BY coalesce(a.last_seen_at, s.created_at) DESC, s.id DESC;
END
$$;
COMMENT ON FUNCTION um_internal.do_my_sessions() IS
  'body of um_my_sessions: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_my_sessions (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_end_session(p_session_id bigint)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := @extschema@.um_current_user_id();
  v_real bigint := @extschema@.um_real_user_id();
  v um.sessions;
BEGIN
  SELECT * INTO v FROM um.sessions s WHERE s.id = p_session_id FOR UPDATE;
  IF v_actor IS NULL THEN
    PERFORM um_internal.authorize('user.end_session', format('end session %s', p_session_id), NULL, NULL, 'user', v.user_id);
  ELSIF v_actor <> v_real
        OR ((v.user_id IS NULL OR v.user_id <> v_actor)
            AND (v.user_id IS NULL
                 OR NOT EXISTS (SELECT 1 FROM um.memberships m
                                 WHERE m.user_id = v.user_id AND @extschema@.um_has_permission('user:suspend', m.org_id))
                 OR EXISTS (SELECT 1 FROM um.memberships m
                             WHERE m.user_id = v.user_id AND um_internal.is_root(m.org_id, v.user_id)
                               AND NOT um_internal.is_root(m.org_id, v_actor)))) THEN
    -- (an unknown session gets the same answer as somebody else's)
    PERFORM um_internal.deny('user.end_session', NULL, 'user', NULL, 'UM070',
      format('permission denied to end session %s', p_session_id),
      'A session is ended by its user, or by someone holding user:suspend in an organization of the user (a Root''s only by a Root), not while impersonating.',
      'Pass the id of one of your sessions (um_my_sessions), or ask an Admin of the user''s organization.');
  END IF;
  IF v.id IS NULL OR v.revoked_at IS NOT NULL OR v.expires_at <= now() THEN
    RETURN false;
  END IF;
  UPDATE um.sessions s SET revoked_at = now(),
                           revoked_reason = CASE WHEN v.user_id = v_actor THEN 'ended by its user' ELSE 'ended by an administrator' END
   WHERE s.id = v.id;
  PERFORM um_internal.audit('user.end_session', NULL, 'user', v.user_id, jsonb_build_object('session_id', v.id));
  RETURN true;
END
$$;
COMMENT ON FUNCTION um_internal.do_end_session(bigint) IS
  'body of um_end_session: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_end_session (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_end_other_sessions()
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um_internal.require_actor('Call um_begin(token) first: this ends the acting user''s other sessions.');
  v_n integer;
BEGIN
  IF v_actor IS DISTINCT FROM @extschema@.um_real_user_id() THEN
    PERFORM um_internal.raise('UM071', 'cannot end sessions while impersonating', NULL, 'Call um_end_impersonation() first.');
  END IF;
  UPDATE um.sessions s SET revoked_at = now(), revoked_reason = 'ended by its user'
   WHERE s.user_id = v_actor AND s.revoked_at IS NULL AND s.expires_at > now()
     AND s.id IS DISTINCT FROM um_internal.current_session_id();
  GET DIAGNOSTICS v_n = ROW_COUNT;
  PERFORM um_internal.audit('user.end_other_sessions', NULL, 'user', v_actor, jsonb_build_object('sessions', v_n));
  RETURN v_n;
END
$$;
COMMENT ON FUNCTION um_internal.do_end_other_sessions() IS
  'body of um_end_other_sessions: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_end_other_sessions (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_refresh_session(p_token text)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_hash bytea := um_internal.token_hash(coalesce(p_token, ''));
  v um.sessions;
  v_user um.users;
  v_token text := um_internal.generate_token();
BEGIN
  IF pg_is_in_recovery() THEN
    RAISE EXCEPTION 'cannot refresh a session on a hot standby'
      USING ERRCODE = 'read_only_sql_transaction', HINT = 'Refresh on the primary server; um_begin() works on standbys.';
  END IF;
  SELECT * INTO v FROM um.sessions s WHERE s.token_hash = v_hash FOR UPDATE;
  IF NOT FOUND THEN
    -- a token this session rotated away, presented again: two hold it
    UPDATE um.sessions s SET revoked_at = now(), revoked_reason = 'ended: a replaced token was used again'
     WHERE s.previous_token_hash = v_hash AND s.revoked_at IS NULL
    RETURNING * INTO v;
    IF FOUND THEN
      -- not an error, so that the end commits: the caller answers NULL as
      -- an invalid token, and the other holder's token dies with it
      PERFORM um_internal.audit('user.session_token_reused', NULL, 'user', v.user_id, jsonb_build_object('session_id', v.id));
      RETURN NULL;
    END IF;
    PERFORM um_internal.raise('UM067', 'session token is not valid', 'No session has this token.',
      'Log in again with um_login() to get a new token.');
  END IF;
  SELECT * INTO v_user FROM um.users u WHERE u.id = v.user_id;
  IF v.revoked_at IS NOT NULL OR v.expires_at <= clock_timestamp()
     OR (v.idle_timeout IS NOT NULL
         AND coalesce((SELECT a.last_seen_at FROM um.session_activity a WHERE a.session_id = v.id), v.created_at)
             + make_interval(secs => v.idle_timeout) <= clock_timestamp())
     OR v.password_changed_at IS DISTINCT FROM v_user.password_changed_at
     OR um_internal.suspended(v_user.status, v_user.suspended_until) OR NOT v_user.allow_login THEN
    PERFORM um_internal.raise('UM067', 'session token is not valid', 'The session has ended.',
      'Log in again with um_login() to get a new token.');
  END IF;
  UPDATE um.sessions s SET token_hash = um_internal.token_hash(v_token), previous_token_hash = v.token_hash
   WHERE s.id = v.id;
  INSERT INTO um.session_activity AS a (session_id, last_seen_at) VALUES (v.id, now())
  ON CONFLICT (session_id) DO UPDATE SET last_seen_at = EXCLUDED.last_seen_at;
  RETURN v_token;
END
$$;
COMMENT ON FUNCTION um_internal.do_refresh_session(text) IS
  'body of um_refresh_session: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_refresh_session (EXECUTE held by nobody)';

-- ---------------------------------------------------------------------------
-- The public functions: each is src/lifecycle.c's entry point, which calls
-- um_internal.do_<name> with the calling role.  None is STRICT: a NULL
-- argument gets the error that names it.

CREATE FUNCTION @extschema@.um_my_sessions(OUT session_id bigint, OUT method text, OUT created_at timestamptz,
                                           OUT last_seen_at timestamptz, OUT expires_at timestamptz,
                                           OUT idle_expires_at timestamptz, OUT client_addr inet, OUT user_agent text,
                                           OUT assurance_level smallint, OUT current boolean)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 5;
COMMENT ON FUNCTION @extschema@.um_my_sessions() IS
  'the acting user''s live sessions (devices), most recently used first: how each began, when, last seen (coarsely), its ends, client address and user agent, assurance level, and which one this request uses';

CREATE FUNCTION @extschema@.um_end_session(session_id bigint)
RETURNS boolean AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_end_session(bigint) IS
  'end one session: one''s own, or a user''s with user:suspend in an organization of theirs (a Root''s only by a Root); false when it had ended';

CREATE FUNCTION @extschema@.um_end_other_sessions()
RETURNS integer AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_end_other_sessions() IS
  'end every session of the acting user but the one of this request; returns how many';

CREATE FUNCTION @extschema@.um_refresh_session(token text)
RETURNS text AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_refresh_session(text) IS
  'a new token for a live session (the old one stops working; presented again, it ends the session and the answer is NULL); the session''s idle time starts again, its absolute end stays';

DROP FUNCTION um_internal.new_session(um.users, text);
CREATE FUNCTION um_internal.new_session(p_user um.users, p_action text, p_method text DEFAULT 'password')
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_token text := um_internal.generate_token();
  v_session bigint;
  v_limits record := um_internal.session_limits(p_user.id);
  v_addr inet;
BEGIN
  BEGIN
    v_addr := nullif(current_setting('um.client_addr', true), '')::inet;
  EXCEPTION WHEN invalid_text_representation THEN
    PERFORM um_internal.raise('UM009', 'um.client_addr is not an IP address', NULL,
      'SET LOCAL um.client_addr to the client''s address (e.g. 203.0.113.7 or 2001:db8::7), or leave it empty.');
  END;
  -- housekeeping, unless an application table references sessions (um
  -- never changes application rows: see um_internal.assert_no_app_cascades)
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c JOIN pg_catalog.pg_class r ON r.oid = c.conrelid
                  WHERE c.contype = 'f' AND c.confrelid = 'um.sessions'::regclass
                    AND r.relnamespace <> 'um'::regnamespace) THEN
    DELETE FROM um.sessions s WHERE s.user_id = p_user.id AND s.expires_at < now();
  END IF;
  -- stamped with the password the caller checked (p_user as it read it): a
  -- change committed meanwhile ends the session in um_begin
  INSERT INTO um.sessions (user_id, token_hash, expires_at, password_changed_at, method, idle_timeout,
                           client_addr, user_agent)
  VALUES (p_user.id, um_internal.token_hash(v_token), now() + make_interval(secs => v_limits.lifetime_seconds),
          p_user.password_changed_at, p_method, v_limits.idle_seconds,
          v_addr, left(nullif(current_setting('um.client_user_agent', true), ''), 512))
  RETURNING id INTO v_session;
  PERFORM um_internal.audit(p_action, NULL, 'user', p_user.id, jsonb_build_object('session_id', v_session, 'method', p_method));
  RETURN v_token;
END
$$;
COMMENT ON FUNCTION um_internal.new_session(um.users, text, text) IS 'internal: starts a session (by a method, for the lifetimes of um_internal.session_limits, with um.client_addr and um.client_user_agent) for a user who just proved who they are, audits it, and returns its token';

CREATE OR REPLACE FUNCTION um_internal.do_reset_password_and_login(p_secret text, p_new_password text, p_email text)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.users;
  v_id bigint := um_internal.do_reset_password(p_secret, p_new_password, p_email);
BEGIN
  SELECT * INTO v FROM um.users u WHERE u.id = v_id;
  RETURN um_internal.new_session(v, 'user.login', 'reset');
END
$$;

CREATE OR REPLACE FUNCTION um_internal.do_verify_email_and_login(p_token text, p_password text)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.users;
  v_id bigint;
  v_refusal record;
BEGIN
  IF p_password IS NULL THEN
    PERFORM um_internal.raise('UM059', 'choose a password to verify this address and log in',
      'The session is for whoever proves the mailbox and sets the account''s password.',
      'Ask for a new password and call um_verify_email_and_login(token, password).');
  END IF;
  v_id := um_internal.do_verify_email(p_token, p_password);
  SELECT * INTO v FROM um.users u WHERE u.id = v_id;
  v_refusal := um_internal.login_refusal(v, false);
  PERFORM um_internal.raise_login_refusal(v_refusal.reason, v_refusal.sso_org);
  RETURN um_internal.new_session(v, 'user.login', 'verification');
END
$$;

CREATE OR REPLACE FUNCTION um_internal.do_accept_invitation_and_login(p_token text, p_password text, p_name text)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.users;
  v_id bigint;
  v_refusal record;
BEGIN
  IF @extschema@.um_current_user_id() IS NOT NULL THEN
    PERFORM um_internal.raise('UM058', 'someone is acting in this transaction',
      'A logged-in user already has a session; um_accept_invitation_and_login is for a new address, logged out.',
      'Accept with um_accept_invitation(token) inside the user''s request.');
  END IF;
  IF p_password IS NULL THEN
    PERFORM um_internal.raise('UM059', 'choose a password to accept this invitation and log in', NULL,
      'Pass the password the invitee chose.');
  END IF;
  IF coalesce(current_setting('um.invitations_prove_address', true), 'off') <> 'on' THEN
    PERFORM um_internal.raise('UM063', 'accepting an invitation does not prove the address here',
      'um.invitations_prove_address is off: the inviter may have seen the token, so the new account stays unverified and cannot log in yet.',
      'Accept with um_accept_invitation(token, password, name), mail a verification (um_resend_verification) and log in with um_verify_email_and_login; or, if your backend never shows invitation tokens to inviters, have a superuser turn um.invitations_prove_address on.');
  END IF;
  v_id := um_internal.do_accept_invitation(p_token, p_password, p_name);    -- an existing account: UM056
  UPDATE um.users u SET email_verified_at = now() WHERE u.id = v_id AND u.email_verified_at IS NULL;
  PERFORM um_internal.audit('user.verify_email', NULL, 'user', v_id, jsonb_build_object('via', 'invitation'));
  SELECT * INTO v FROM um.users u WHERE u.id = v_id;
  v_refusal := um_internal.login_refusal(v, false);
  PERFORM um_internal.raise_login_refusal(v_refusal.reason, v_refusal.sso_org);   -- e.g. single sign-on: nothing stays
  RETURN um_internal.new_session(v, 'user.login', 'invitation');
END
$$;

CREATE OR REPLACE FUNCTION um_internal.do_set_org_setting(p_org_id bigint, p_setting text, p_value jsonb)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um_internal.authorize('organization.set_setting',
                                 format('change settings of organization %s', p_org_id),
                                 'org:update', p_org_id, 'organization', p_org_id);
  v_seconds numeric;
BEGIN
  IF p_setting IS NULL OR p_setting !~ '^[a-z][a-z0-9_]{0,62}$' THEN
    PERFORM um_internal.raise('UM009', format('invalid setting name "%s"', p_setting), NULL,
      'A setting name is lowercase letters, digits and underscores, e.g. allow_invite_requests.');
  END IF;
  CASE p_setting
    WHEN 'name' THEN
      IF jsonb_typeof(p_value) IS DISTINCT FROM 'string' THEN
        PERFORM um_internal.raise('UM009', 'setting "name" takes a JSON string', NULL, 'Pass e.g. ''"Acme Inc."''::jsonb.');
      END IF;
      UPDATE um.organizations o SET name = p_value #>> '{}' WHERE o.id = p_org_id;
    WHEN 'allow_invite_requests', 'password_login_disabled' THEN
      IF jsonb_typeof(p_value) IS DISTINCT FROM 'boolean' THEN
        PERFORM um_internal.raise('UM009', format('setting "%s" takes true or false', p_setting), NULL, 'Pass ''true''::jsonb or ''false''::jsonb.');
      END IF;
      IF p_setting = 'allow_invite_requests' THEN
        UPDATE um.organizations o SET allow_invite_requests = p_value::boolean WHERE o.id = p_org_id;
      ELSE
        IF p_value::boolean AND NOT EXISTS (
             SELECT 1 FROM um.user_identities i
               JOIN um.memberships m ON m.user_id = i.user_id AND m.org_id = i.org_id
               JOIN um.roles r ON r.id = m.role_id
              WHERE i.org_id = p_org_id AND r.builtin = 'root' AND m.status = 'active')
           AND EXISTS (SELECT 1 FROM um.identity_providers p WHERE p.org_id = p_org_id) THEN
          RAISE EXCEPTION 'no Root of organization % has an identity-provider link', p_org_id
            USING ERRCODE = 'UM045',
                  DETAIL = 'Disabling password login now would lock the organization''s Roots out.',
                  HINT = 'Link a Root''s single sign-on identity first (um_link_identity).';
        END IF;
        UPDATE um.organizations o SET password_login_disabled = p_value::boolean WHERE o.id = p_org_id;  -- needs a provider (UM045)
      END IF;
    WHEN 'session_lifetime', 'session_idle_timeout' THEN
      -- seconds, or an interval as a string; stored as seconds
      IF p_value IS NULL OR p_value = 'null' THEN
        UPDATE um.organizations o SET settings = o.settings - p_setting WHERE o.id = p_org_id;
      ELSE
        BEGIN
          v_seconds := CASE jsonb_typeof(p_value)
                         WHEN 'number' THEN (p_value #>> '{}')::numeric
                         WHEN 'string' THEN extract(epoch FROM (p_value #>> '{}')::interval) END;
        EXCEPTION WHEN invalid_datetime_format OR invalid_text_representation OR datetime_field_overflow
                       OR interval_field_overflow OR numeric_value_out_of_range THEN
          v_seconds := NULL;
        END;
        IF v_seconds IS NULL OR v_seconds < 60 OR v_seconds > 365 * 86400 THEN
          PERFORM um_internal.raise('UM009', format('setting "%s" takes a duration from 1 minute to 365 days', p_setting), NULL,
            'Pass seconds (28800) or an interval as a JSON string (''"8 hours"''); null removes the limit.');
        END IF;
        UPDATE um.organizations o SET settings = o.settings || jsonb_build_object(p_setting, round(v_seconds)::integer)
         WHERE o.id = p_org_id;
        PERFORM um_internal.apply_session_limit(p_org_id, p_setting, round(v_seconds)::integer);
      END IF;
    ELSE
      UPDATE um.organizations o
         SET settings = CASE WHEN p_value IS NULL OR p_value = 'null' THEN o.settings - p_setting
                             ELSE o.settings || jsonb_build_object(p_setting, p_value) END
       WHERE o.id = p_org_id;
  END CASE;
  PERFORM um_internal.audit('organization.set_setting', p_org_id, 'organization', p_org_id,
                   jsonb_build_object('setting', p_setting));
END
$$;

CREATE OR REPLACE FUNCTION um_internal.do_set_org_setting(p_org_id bigint, p_setting text, p_value text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_value jsonb;
BEGIN
  PERFORM um_internal.authorize('organization.set_setting', format('change settings of organization %s', p_org_id),
                       'org:update', p_org_id, 'organization', p_org_id);
  IF p_setting IS NULL OR p_setting !~ '^[a-z][a-z0-9_]{0,62}$' THEN
    PERFORM um_internal.do_set_org_setting(p_org_id, p_setting, NULL::jsonb);   -- the name's error (UM009)
  END IF;
  BEGIN
    v_value := p_value::jsonb;
  EXCEPTION WHEN invalid_text_representation OR untranslatable_character OR statement_too_complex
                 OR program_limit_exceeded THEN
    -- (the value is not repeated: a setting may hold a secret)
    PERFORM um_internal.raise('UM009', format('the value of setting "%s" is not JSON', p_setting),
      'It is not a JSON value PostgreSQL can store (a bare word, a \u0000 escape, or nested too deep).',
      CASE WHEN p_setting IN ('allow_invite_requests', 'password_login_disabled') THEN 'Pass true or false.'
           WHEN p_setting IN ('session_lifetime', 'session_idle_timeout') THEN 'Pass seconds (28800) or an interval in double quotes: ''"8 hours"''.'
           WHEN p_setting = 'name' THEN 'Pass a JSON string, in double quotes: ''"Acme Inc."''.'
           ELSE 'Pass a JSON value: a string in double quotes (''"dark"''), a number, true or false, an array or an object.' END);
  END;
  PERFORM um_internal.do_set_org_setting(p_org_id, p_setting, v_value);
END
$$;

REVOKE EXECUTE ON FUNCTION
  um_internal.session_limits(bigint),
  um_internal.apply_session_limit(bigint, text, integer),
  um_internal.current_session_id(),
  um_internal.do_my_sessions(),
  um_internal.do_end_session(bigint),
  um_internal.do_end_other_sessions(),
  um_internal.do_refresh_session(text),
  um_internal.new_session(um.users, text, text)
FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- Second factors, first part (issue 17, item 5); sql/install/73_mfa.sql.

-- Second factors (73_mfa.sql): authenticator apps (TOTP) and WebAuthn
-- credentials a backend verified, and single-use recovery codes.
CREATE TABLE um.mfa_factors (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id bigint NOT NULL REFERENCES um.users ON DELETE CASCADE,
  kind text NOT NULL CONSTRAINT mfa_factors_kind_check CHECK (kind IN ('totp', 'webauthn')),
  name text NOT NULL CONSTRAINT mfa_factors_name_check CHECK (um_internal.display_name_is_valid(name, 100)),
  totp_secret bytea,
  last_step bigint,
  webauthn_credential_id bytea CONSTRAINT mfa_factors_webauthn_credential_id_key UNIQUE,
  webauthn_public_key bytea,
  webauthn_sign_count bigint,
  confirmed_at timestamptz,
  last_used_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT mfa_factors_totp_check CHECK ((kind = 'totp') = (totp_secret IS NOT NULL)),
  CONSTRAINT mfa_factors_webauthn_check
    CHECK ((kind = 'webauthn') = (webauthn_credential_id IS NOT NULL AND webauthn_public_key IS NOT NULL AND webauthn_sign_count IS NOT NULL))
);
CREATE INDEX mfa_factors_user_id_idx ON um.mfa_factors (user_id);
COMMENT ON TABLE um.mfa_factors IS 'second factors of users: TOTP authenticator apps (um_enroll_totp) and WebAuthn credentials; readable by no application role';
COMMENT ON COLUMN um.mfa_factors.id IS 'the factor''s id';
COMMENT ON COLUMN um.mfa_factors.user_id IS 'whose factor it is';
COMMENT ON COLUMN um.mfa_factors.kind IS 'totp (an authenticator app) or webauthn (a security key or passkey a backend verified)';
COMMENT ON COLUMN um.mfa_factors.name IS 'the user''s name for it (Phone, YubiKey)';
COMMENT ON COLUMN um.mfa_factors.totp_secret IS 'the shared TOTP secret (160 bits): the app and um both need it, so it cannot be a hash; protect dumps as you protect password hashes';
COMMENT ON COLUMN um.mfa_factors.last_step IS 'the last 30-second step whose code was accepted: that code, and every earlier one, is never accepted again';
COMMENT ON COLUMN um.mfa_factors.webauthn_credential_id IS 'the WebAuthn credential id';
COMMENT ON COLUMN um.mfa_factors.webauthn_public_key IS 'the credential''s public key (COSE), for the backend that verifies assertions';
COMMENT ON COLUMN um.mfa_factors.webauthn_sign_count IS 'the authenticator''s signature counter as last seen: one that does not grow betrays a cloned key';
COMMENT ON COLUMN um.mfa_factors.confirmed_at IS 'when a first code proved the enrolment; NULL: pending, not yet a factor';
COMMENT ON COLUMN um.mfa_factors.last_used_at IS 'when it last proved a login or a step-up';
COMMENT ON COLUMN um.mfa_factors.created_at IS 'when it was enrolled';

CREATE TABLE um.mfa_recovery_codes (
  user_id bigint NOT NULL REFERENCES um.users ON DELETE CASCADE,
  code_hash bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT mfa_recovery_codes_pkey PRIMARY KEY (user_id, code_hash)
);
COMMENT ON TABLE um.mfa_recovery_codes IS 'single-use recovery codes of users with a second factor (shown once, at the first confirmation or a regeneration); only their hashes';
COMMENT ON COLUMN um.mfa_recovery_codes.user_id IS 'whose code it is';
COMMENT ON COLUMN um.mfa_recovery_codes.code_hash IS 'SHA-256 of the user id and the code (80 random bits)';
COMMENT ON COLUMN um.mfa_recovery_codes.created_at IS 'when it was issued';

INSERT INTO um.state_tables (relname, access, read_rule, readable_columns, evaluator_input, invalidating_columns, cache_key, dump_filter)
VALUES ('mfa_factors', 'secret', NULL, NULL, false, NULL, NULL, ''),
       ('mfa_recovery_codes', 'secret', NULL, NULL, false, NULL, NULL, '');
ALTER TABLE um.mfa_factors ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE um.mfa_recovery_codes ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY um_administrators ON um.mfa_factors USING (um_internal.administers_um()) WITH CHECK (um_internal.administers_um());
CREATE POLICY um_administrators ON um.mfa_recovery_codes USING (um_internal.administers_um()) WITH CHECK (um_internal.administers_um());
COMMENT ON POLICY um_administrators ON um.mfa_factors IS
  'um administrators (roles with the privileges of the extension''s owner) read and write every row';
COMMENT ON POLICY um_administrators ON um.mfa_recovery_codes IS
  'um administrators (roles with the privileges of the extension''s owner) read and write every row';
REVOKE REFERENCES ON um.mfa_factors, um.mfa_recovery_codes FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('um.mfa_factors', '');
SELECT pg_catalog.pg_extension_config_dump('um.mfa_factors_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('um.mfa_recovery_codes', '');

-- ---------------------------------------------------------------------------
-- C primitives (src/totp.c)

CREATE FUNCTION um_internal.totp_secret()
RETURNS bytea AS 'MODULE_PATHNAME', 'um_totp_secret' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION um_internal.totp_secret() IS 'internal: a fresh TOTP secret, 160 bits from pg_strong_random()';

CREATE FUNCTION um_internal.totp_base32(secret bytea)
RETURNS text AS 'MODULE_PATHNAME', 'um_totp_base32' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION um_internal.totp_base32(bytea) IS 'internal: RFC 4648 base32 (unpadded), the form authenticator apps take a secret in';

CREATE FUNCTION um_internal.totp_code(secret bytea, step bigint)
RETURNS text AS 'MODULE_PATHNAME', 'um_totp_code' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION um_internal.totp_code(bytea, bigint) IS 'internal: the 6-digit code of a 30-second step (RFC 6238, HMAC-SHA1)';

CREATE FUNCTION um_internal.totp_match(secret bytea, code text, after_step bigint)
RETURNS bigint AS 'MODULE_PATHNAME', 'um_totp_match' LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION um_internal.totp_match(bytea, text, bigint) IS
  'internal: the step (now, one before or one after, later than after_step) whose code this is, or NULL; compared in constant time';

-- ---------------------------------------------------------------------------
-- Rules

-- A user's fresh recovery codes (the old ones end): 10 of 80 random bits.
CREATE FUNCTION um_internal.new_recovery_codes(p_user_id bigint)
RETURNS text[]
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_codes text[] := '{}';
  v_code text;
BEGIN
  DELETE FROM um.mfa_recovery_codes r WHERE r.user_id = p_user_id;
  FOR i IN 1..10 LOOP
    v_code := lower(left(um_internal.totp_base32(um_internal.totp_secret()), 16));
    v_code := substr(v_code, 1, 4) || '-' || substr(v_code, 5, 4) || '-' || substr(v_code, 9, 4) || '-' || substr(v_code, 13, 4);
    INSERT INTO um.mfa_recovery_codes (user_id, code_hash) VALUES (p_user_id, um_internal.recovery_code_hash(p_user_id, v_code));
    v_codes := v_codes || v_code;
  END LOOP;
  RETURN v_codes;
END
$$;
COMMENT ON FUNCTION um_internal.new_recovery_codes(bigint) IS
  'internal: replaces a user''s recovery codes with 10 fresh ones (80 random bits each, stored as hashes) and returns them';

CREATE FUNCTION um_internal.recovery_code_hash(p_user_id bigint, p_code text)
RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN pg_catalog.sha256(pg_catalog.convert_to(p_user_id::text || ':' || lower(replace(btrim(p_code), ' ', '')), 'UTF8'));
COMMENT ON FUNCTION um_internal.recovery_code_hash(bigint, text) IS
  'internal: what um.mfa_recovery_codes stores for a code: SHA-256 of the user id and the code (case and blanks ignored)';

-- Prove a second factor now: a code of one of the user's confirmed TOTP
-- factors (accepted once), or one of their recovery codes (spent).  Counted
-- like a password, where no ROLLBACK forgets it; a locked account proves
-- nothing.  Returns how ('totp' or 'recovery'), or raises UM090.
CREATE FUNCTION um_internal.prove_second_factor(p_user_id bigint, p_code text, p_action text)
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_settings record := um_internal.login_settings();
  v_how text;
  v_step bigint;
  f record;
  v_rec record;
BEGIN
  -- the factors locked first: two uses of one code at once, one wins
  FOR f IN SELECT m.id, m.totp_secret, m.last_step FROM um.mfa_factors m
            WHERE m.user_id = p_user_id AND m.kind = 'totp' AND m.confirmed_at IS NOT NULL
            ORDER BY m.id FOR UPDATE LOOP
    v_step := um_internal.totp_match(f.totp_secret, coalesce(p_code, ''), f.last_step);
    IF v_step IS NOT NULL AND v_how IS NULL THEN
      UPDATE um.mfa_factors m SET last_step = v_step, last_used_at = now() WHERE m.id = f.id;
      v_how := 'totp';
    END IF;
  END LOOP;
  IF v_how IS NULL THEN
    DELETE FROM um.mfa_recovery_codes r
     WHERE r.user_id = p_user_id AND r.code_hash = um_internal.recovery_code_hash(p_user_id, coalesce(p_code, ''));
    IF FOUND THEN
      v_how := 'recovery';
    END IF;
  END IF;
  v_rec := um_internal.record_login(p_user_id, p_action, CASE WHEN v_how IS NULL THEN 'wrong' ELSE 'success' END,
                                    CASE WHEN v_how IS NULL THEN 'wrong second-factor code' END);
  IF v_how IS NULL OR v_rec.was_locked THEN
    PERFORM um_internal.raise('UM090', 'the second-factor code is not valid',
      'It is not the current code of a confirmed factor, was used already, or is no recovery code of yours; or the account is locked.',
      format('Type the code your authenticator app shows now, or a recovery code; after %s failures in a row the account is locked for %s.',
             v_settings.max_failures,
             um_internal.lockout_words(v_settings.lockout_seconds)));
  END IF;
  RETURN v_how;
END
$$;
COMMENT ON FUNCTION um_internal.prove_second_factor(bigint, text, text) IS
  'internal: checks a TOTP code (once per step) or spends a recovery code of the user, counted like a password (UM090 when wrong or locked); returns totp or recovery';

-- The acting user, themself (not impersonated), for a factor call.
CREATE FUNCTION um_internal.factor_owner(p_action text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um_internal.require_actor('Call um_begin(token) first: factors are the acting user''s.');
BEGIN
  IF v_actor IS DISTINCT FROM @extschema@.um_real_user_id() THEN
    PERFORM um_internal.deny(p_action, NULL, 'user', v_actor, 'UM071',
      'cannot change second factors while impersonating', 'A user''s factors are theirs alone.', 'Call um_end_impersonation() first.');
  END IF;
  RETURN v_actor;
END
$$;
COMMENT ON FUNCTION um_internal.factor_owner(text) IS 'internal: the acting user for a call on their own factors; UM072 nobody, UM071 impersonating';

-- ---------------------------------------------------------------------------
-- Bodies

CREATE FUNCTION um_internal.do_enroll_totp(p_name text, OUT factor_id bigint, OUT secret text, OUT otpauth_uri text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_user bigint := um_internal.factor_owner('user.enroll_factor');
  v_secret bytea := um_internal.totp_secret();
  v_email text;
  v_issuer text := coalesce(nullif(current_setting('um.mfa_issuer', true), ''), 'um');
BEGIN
  PERFORM um_internal.require_factor_proof(v_user, 'user.enroll_factor');
  IF (SELECT count(*) FROM um.mfa_factors m WHERE m.user_id = v_user) >= 10 THEN
    PERFORM um_internal.raise('UM009', 'a user has at most 10 factors', NULL,
      'Remove a factor you no longer use (um_remove_factor), or finish a pending enrolment.');
  END IF;
  -- a pending enrolment of the same name is replaced (a new QR code)
  DELETE FROM um.mfa_factors m WHERE m.user_id = v_user AND m.confirmed_at IS NULL AND m.name = coalesce(p_name, 'Authenticator');
  INSERT INTO um.mfa_factors (user_id, kind, name, totp_secret)
  VALUES (v_user, 'totp', coalesce(p_name, 'Authenticator'), v_secret)
  RETURNING id INTO factor_id;
  SELECT u.email INTO v_email FROM um.users u WHERE u.id = v_user;
  secret := um_internal.totp_base32(v_secret);
  otpauth_uri := format('otpauth://totp/%s:%s?secret=%s&issuer=%s&algorithm=SHA1&digits=6&period=30',
                        replace(replace(v_issuer, '%', '%25'), ' ', '%20'), replace(v_email, '@', '%40'), secret,
                        replace(replace(v_issuer, '%', '%25'), ' ', '%20'));
  PERFORM um_internal.audit('user.enroll_factor', NULL, 'user', v_user, jsonb_build_object('factor_id', factor_id, 'kind', 'totp'));
END
$$;
COMMENT ON FUNCTION um_internal.do_enroll_totp(text) IS
  'body of um_enroll_totp: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_enroll_totp (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_confirm_totp(p_factor_id bigint, p_code text)
RETURNS text[]
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_user bigint := um_internal.factor_owner('user.confirm_factor');
  v um.mfa_factors;
  v_step bigint;
  v_first boolean;
  v_rec record;
  v_settings record := um_internal.login_settings();
BEGIN
  PERFORM um_internal.require_factor_proof(v_user, 'user.confirm_factor');
  SELECT * INTO v FROM um.mfa_factors m WHERE m.id = p_factor_id AND m.user_id = v_user AND m.kind = 'totp' FOR UPDATE;
  IF NOT FOUND OR v.confirmed_at IS NOT NULL THEN
    PERFORM um_internal.raise('UM091', format('factor %s is not a pending enrolment of yours', p_factor_id), NULL,
      'Enrol again (um_enroll_totp) and confirm with the code the app then shows.');
  END IF;
  v_step := um_internal.totp_match(v.totp_secret, coalesce(p_code, ''), v.last_step);
  v_rec := um_internal.record_login(v_user, 'user.confirm_factor', CASE WHEN v_step IS NULL THEN 'wrong' ELSE 'success' END,
                                    CASE WHEN v_step IS NULL THEN 'wrong second-factor code' END);
  IF v_step IS NULL OR v_rec.was_locked THEN
    PERFORM um_internal.raise('UM090', 'the second-factor code is not valid',
      'It is not the code the authenticator app shows now for this enrolment, or the account is locked.',
      format('Type the current code; after %s failures in a row the account is locked for %s.', v_settings.max_failures,
             um_internal.lockout_words(v_settings.lockout_seconds)));
  END IF;
  v_first := NOT EXISTS (SELECT 1 FROM um.mfa_factors m WHERE m.user_id = v_user AND m.confirmed_at IS NOT NULL);
  UPDATE um.mfa_factors m SET confirmed_at = now(), last_step = v_step, last_used_at = now() WHERE m.id = v.id;
  PERFORM um_internal.audit('user.confirm_factor', NULL, 'user', v_user, jsonb_build_object('factor_id', v.id));
  -- the first factor comes with recovery codes, shown this once
  RETURN CASE WHEN v_first THEN um_internal.new_recovery_codes(v_user) ELSE '{}'::text[] END;
END
$$;
COMMENT ON FUNCTION um_internal.do_confirm_totp(bigint, text) IS
  'body of um_confirm_totp: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_confirm_totp (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_my_factors(OUT factor_id bigint, OUT kind text, OUT name text, OUT confirmed boolean,
                                          OUT created_at timestamptz, OUT last_used_at timestamptz,
                                          OUT recovery_codes_left integer)
RETURNS SETOF record
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_user bigint := um_internal.factor_owner('user.list_factors');
BEGIN
  RETURN QUERY
    SELECT m.id, m.kind, m.name, m.confirmed_at IS NOT NULL, m.created_at, m.last_used_at,
           (SELECT count(*)::integer FROM um.mfa_recovery_codes r WHERE r.user_id = v_user)
      FROM um.mfa_factors m WHERE m.user_id = v_user ORDER BY m.id;
END
$$;
COMMENT ON FUNCTION um_internal.do_my_factors() IS
  'body of um_my_factors: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_my_factors (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_remove_factor(p_factor_id bigint, p_code text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_user bigint := um_internal.factor_owner('user.remove_factor');
  v um.mfa_factors;
BEGIN
  SELECT * INTO v FROM um.mfa_factors m WHERE m.id = p_factor_id AND m.user_id = v_user;
  IF NOT FOUND THEN
    PERFORM um_internal.raise('UM091', format('factor %s is not one of yours', p_factor_id), NULL,
      'See your factors with um_my_factors().');
  END IF;
  IF v.confirmed_at IS NOT NULL THEN
    -- a session alone does not take a factor away: a proof now does
    PERFORM um_internal.prove_second_factor(v_user, p_code, 'user.remove_factor');
  END IF;
  DELETE FROM um.mfa_factors m WHERE m.id = v.id;
  IF NOT EXISTS (SELECT 1 FROM um.mfa_factors m WHERE m.user_id = v_user AND m.confirmed_at IS NOT NULL) THEN
    DELETE FROM um.mfa_recovery_codes r WHERE r.user_id = v_user;      -- no factor, nothing to recover
  END IF;
  PERFORM um_internal.audit('user.remove_factor', NULL, 'user', v_user, jsonb_build_object('factor_id', v.id));
END
$$;
COMMENT ON FUNCTION um_internal.do_remove_factor(bigint, text) IS
  'body of um_remove_factor: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_remove_factor (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_regenerate_recovery_codes(p_code text)
RETURNS text[]
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_user bigint := um_internal.factor_owner('user.regenerate_recovery_codes');
BEGIN
  IF NOT EXISTS (SELECT 1 FROM um.mfa_factors m WHERE m.user_id = v_user AND m.confirmed_at IS NOT NULL) THEN
    PERFORM um_internal.raise('UM009', 'recovery codes need a confirmed factor', NULL, 'Enrol and confirm a factor first (um_enroll_totp).');
  END IF;
  PERFORM um_internal.prove_second_factor(v_user, p_code, 'user.regenerate_recovery_codes');
  PERFORM um_internal.audit('user.regenerate_recovery_codes', NULL, 'user', v_user, '{}');
  RETURN um_internal.new_recovery_codes(v_user);
END
$$;
COMMENT ON FUNCTION um_internal.do_regenerate_recovery_codes(text) IS
  'body of um_regenerate_recovery_codes: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_regenerate_recovery_codes (EXECUTE held by nobody)';

-- ---------------------------------------------------------------------------
-- The public functions: each is src/lifecycle.c's entry point, which calls
-- um_internal.do_<name> with the calling role.  None is STRICT: a NULL
-- argument gets the error that names it.

CREATE FUNCTION @extschema@.um_enroll_totp(name text DEFAULT 'Authenticator', OUT factor_id bigint, OUT secret text,
                                           OUT otpauth_uri text)
RETURNS record AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_enroll_totp(text) IS
  'the acting user starts enrolling an authenticator app: a pending factor, its secret (base32) and the otpauth URI for a QR code; um_confirm_totp with a first code makes it a factor';

CREATE FUNCTION @extschema@.um_confirm_totp(factor_id bigint, code text)
RETURNS text[] AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_confirm_totp(bigint, text) IS
  'confirm a pending TOTP enrolment with the code the app shows; returns the recovery codes (shown once) for the first factor, else an empty array';

CREATE FUNCTION @extschema@.um_my_factors(OUT factor_id bigint, OUT kind text, OUT name text, OUT confirmed boolean,
                                          OUT created_at timestamptz, OUT last_used_at timestamptz,
                                          OUT recovery_codes_left integer)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 3;
COMMENT ON FUNCTION @extschema@.um_my_factors() IS 'the acting user''s second factors (never their secrets), and how many recovery codes are left';

CREATE FUNCTION @extschema@.um_remove_factor(factor_id bigint, code text DEFAULT NULL)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_remove_factor(bigint, text) IS
  'remove one of the acting user''s factors; a confirmed one takes a proof now (a current code or a recovery code)';

CREATE FUNCTION @extschema@.um_regenerate_recovery_codes(code text)
RETURNS text[] AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_regenerate_recovery_codes(text) IS
  'fresh recovery codes for the acting user (the old ones end), against a proof now (a current code or a recovery code)';

REVOKE EXECUTE ON FUNCTION
  um_internal.totp_secret(),
  um_internal.totp_base32(bytea),
  um_internal.totp_code(bytea, bigint),
  um_internal.totp_match(bytea, text, bigint),
  um_internal.new_recovery_codes(bigint),
  um_internal.recovery_code_hash(bigint, text),
  um_internal.prove_second_factor(bigint, text, text),
  um_internal.factor_owner(text),
  um_internal.do_enroll_totp(text),
  um_internal.do_confirm_totp(bigint, text),
  um_internal.do_my_factors(),
  um_internal.do_remove_factor(bigint, text),
  um_internal.do_regenerate_recovery_codes(text)
FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- Second factors, second part (issue 17, item 5): two-step logins,
-- assurance levels, organizations that require level 2, step-up, WebAuthn.

ALTER TABLE um.organizations ADD COLUMN require_mfa boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN um.organizations.require_mfa IS 'a session at assurance level 1 (one factor) may do nothing here: every check and lifecycle call is refused (UM092) until the user proves a second factor';
ALTER TABLE um.sessions ADD COLUMN authenticated_at timestamptz;
COMMENT ON COLUMN um.sessions.authenticated_at IS 'when the user last proved who they are in this session (the login, a second factor, um_reauthenticate): sensitive calls need it within um.step_up_window';
-- Logins waiting for a second factor (73_mfa.sql): the first step's proof,
-- for 5 minutes, single use.
CREATE TABLE um.login_challenges (
  token_hash bytea PRIMARY KEY,
  user_id bigint NOT NULL REFERENCES um.users ON DELETE CASCADE,
  method text NOT NULL,
  password_changed_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  CONSTRAINT login_challenges_expiry_check CHECK (expires_at > created_at)
);
CREATE INDEX login_challenges_user_id_idx ON um.login_challenges (user_id);
COMMENT ON TABLE um.login_challenges IS 'logins whose first step (a password, a reset, ...) succeeded for a user with a second factor: um_complete_login turns one into a session at assurance level 2';
COMMENT ON COLUMN um.login_challenges.token_hash IS 'SHA-256 of the challenge token (umc_...) the first step returned';
COMMENT ON COLUMN um.login_challenges.user_id IS 'who is logging in';
COMMENT ON COLUMN um.login_challenges.method IS 'how the first step went (the session''s method)';
COMMENT ON COLUMN um.login_challenges.password_changed_at IS 'the password the first step checked: a change since voids the challenge';
COMMENT ON COLUMN um.login_challenges.created_at IS 'when the first step succeeded';
COMMENT ON COLUMN um.login_challenges.expires_at IS 'the second step must come before (5 minutes)';
INSERT INTO um.state_tables (relname, access, read_rule, readable_columns, evaluator_input, invalidating_columns, cache_key, dump_filter)
VALUES ('login_challenges', 'secret', NULL, NULL, false, NULL, NULL, NULL);
ALTER TABLE um.login_challenges ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY um_administrators ON um.login_challenges USING (um_internal.administers_um()) WITH CHECK (um_internal.administers_um());
COMMENT ON POLICY um_administrators ON um.login_challenges IS
  'um administrators (roles with the privileges of the extension''s owner) read and write every row';
REVOKE REFERENCES ON um.login_challenges FROM PUBLIC;

CREATE FUNCTION um_internal.current_assurance_level()
RETURNS smallint AS 'MODULE_PATHNAME', 'um_current_assurance_level' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION um_internal.current_assurance_level() IS
  'internal: the assurance level of the session this transaction acts through (1 or 2), NULL when it acts through none';

CREATE FUNCTION um_internal.note_assurance_level(p_level smallint)
RETURNS void AS 'MODULE_PATHNAME', 'um_note_assurance_level' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION um_internal.note_assurance_level(smallint) IS
  'internal: the current session proved more (um_reauthenticate): checks of this transaction see the new level';

CREATE FUNCTION um_internal.require_recent_authentication(p_action text, p_what text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_at timestamptz;
  v_window integer := extract(epoch FROM current_setting('um.step_up_window')::interval)::integer;
BEGIN
  IF um_internal.current_session_id() IS NULL THEN
    RETURN;                                    -- um_act_as: the backend vouches
  END IF;
  SELECT s.authenticated_at INTO v_at FROM um.sessions s WHERE s.id = um_internal.current_session_id();
  IF v_at IS NULL OR v_at < now() - make_interval(secs => v_window) THEN
    PERFORM um_internal.deny(p_action, NULL, 'user', @extschema@.um_current_user_id(), 'UM093',
      format('%s needs a recent authentication', p_what),
      format('The session last proved who its user is %s ago; this call takes a proof within %s.',
             coalesce(date_trunc('second', now() - v_at)::text, 'too long'), make_interval(secs => v_window)),
      'Ask the user for their password or a second-factor code, call um_reauthenticate(...), then retry.');
  END IF;
END
$$;
COMMENT ON FUNCTION um_internal.require_recent_authentication(text, text) IS
  'internal: refuses (UM093) a sensitive call through a session whose last authentication is older than um.step_up_window';

CREATE FUNCTION um_internal.mfa_gaps(OUT org_slug text, OUT members_without integer)
RETURNS SETOF record
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF NOT um_internal.administers_um() THEN
    RETURN;
  END IF;
  RETURN QUERY
    SELECT o.slug, count(*)::integer
      FROM um.organizations o
      JOIN um.memberships m ON m.org_id = o.id AND m.status = 'active'
      JOIN um.users u ON u.id = m.user_id AND u.status = 'active' AND u.allow_login
     WHERE o.require_mfa
       AND NOT EXISTS (SELECT 1 FROM um.mfa_factors f WHERE f.user_id = u.id AND f.confirmed_at IS NOT NULL)
     GROUP BY o.slug;
END
$$;
COMMENT ON FUNCTION um_internal.mfa_gaps() IS
  'internal (um_lint): organizations requiring a second factor, with how many members who can log in have none; for um administrators only';

CREATE FUNCTION um_internal.do_complete_login(p_challenge text, p_code text)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.login_challenges;
  v_user um.users;
  v_refusal record;
BEGIN
  SELECT c.* INTO v FROM um.login_challenges c
   WHERE c.token_hash = um_internal.token_hash(coalesce(p_challenge, '')) AND c.expires_at > clock_timestamp()
     FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM um_internal.raise('UM053', 'the login challenge is not valid',
      'It is unknown, was used, or is older than 5 minutes.', 'Log in again (um_login) for a new challenge.');
  END IF;
  PERFORM um_internal.prove_second_factor(v.user_id, p_code, 'user.login_second_factor');
  SELECT * INTO v_user FROM um.users u WHERE u.id = v.user_id;
  -- what the first step checked must still hold
  IF v_user.password_changed_at IS DISTINCT FROM v.password_changed_at THEN
    PERFORM um_internal.raise('UM053', 'the login challenge is not valid', 'The password changed since the first step.',
      'Log in again (um_login) with the new password.');
  END IF;
  v_refusal := um_internal.login_refusal(v_user, false);
  PERFORM um_internal.raise_login_refusal(v_refusal.reason, v_refusal.sso_org);
  DELETE FROM um.login_challenges c WHERE c.token_hash = v.token_hash;
  RETURN um_internal.new_session(v_user, 'user.login', v.method, 2::smallint);
END
$$;
COMMENT ON FUNCTION um_internal.do_complete_login(text, text) IS
  'body of um_complete_login: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_complete_login (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_reauthenticate(p_password text, p_code text)
RETURNS smallint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_user bigint := um_internal.factor_owner('user.reauthenticate');
  v_session bigint := um_internal.current_session_id();
  v_level smallint;
  v_email text;
BEGIN
  IF v_session IS NULL THEN
    PERFORM um_internal.raise('UM072', 'there is no session to reauthenticate', 'This transaction acts without a session (um_act_as).',
      'Call um_begin(token) first.');
  END IF;
  IF p_password IS NULL AND p_code IS NULL THEN
    PERFORM um_internal.raise('UM009', 'a password or a second-factor code is required', NULL,
      'Pass the user''s password, or a code of their authenticator app (which also raises the session to level 2).');
  END IF;
  IF p_code IS NOT NULL THEN
    PERFORM um_internal.prove_second_factor(v_user, p_code, 'user.reauthenticate_factor');
  ELSE
    SELECT u.email INTO v_email FROM um.users u WHERE u.id = v_user;
    PERFORM um_internal.authenticate(v_email, p_password, false);
  END IF;
  UPDATE um.sessions s SET authenticated_at = now(),
                           assurance_level = CASE WHEN p_code IS NOT NULL THEN 2 ELSE s.assurance_level END
   WHERE s.id = v_session
  RETURNING s.assurance_level INTO v_level;
  PERFORM um_internal.note_assurance_level(v_level);
  PERFORM um_internal.audit('user.reauthenticate', NULL, 'user', v_user,
                            jsonb_build_object('session_id', v_session, 'by', CASE WHEN p_code IS NOT NULL THEN 'second factor' ELSE 'password' END));
  RETURN v_level;
END
$$;
COMMENT ON FUNCTION um_internal.do_reauthenticate(text, text) IS
  'body of um_reauthenticate: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_reauthenticate (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_register_webauthn(p_name text, p_credential_id bytea, p_public_key bytea, p_sign_count bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_user bigint := um_internal.factor_owner('user.enroll_factor');
  v_id bigint;
BEGIN
  PERFORM um_internal.require_factor_proof(v_user, 'user.enroll_factor');
  IF p_credential_id IS NULL OR p_public_key IS NULL OR octet_length(p_credential_id) NOT BETWEEN 16 AND 1023
     OR coalesce(p_sign_count, -1) < 0 THEN
    PERFORM um_internal.raise('UM009', 'a WebAuthn credential needs its id (16 to 1023 bytes), public key and signature counter', NULL,
      'Pass what the verified registration (attestation) gave: credential id, COSE public key, sign count (0 if the key keeps none).');
  END IF;
  IF (SELECT count(*) FROM um.mfa_factors m WHERE m.user_id = v_user) >= 10 THEN
    PERFORM um_internal.raise('UM009', 'a user has at most 10 factors', NULL, 'Remove a factor you no longer use (um_remove_factor).');
  END IF;
  BEGIN
    INSERT INTO um.mfa_factors (user_id, kind, name, webauthn_credential_id, webauthn_public_key, webauthn_sign_count, confirmed_at)
    VALUES (v_user, 'webauthn', coalesce(p_name, 'Security key'), p_credential_id, p_public_key, p_sign_count, now())
    RETURNING id INTO v_id;
  EXCEPTION WHEN unique_violation THEN
    PERFORM um_internal.raise('UM009', 'this WebAuthn credential is registered already', NULL, 'Register a new credential.');
  END;
  PERFORM um_internal.audit('user.enroll_factor', NULL, 'user', v_user, jsonb_build_object('factor_id', v_id, 'kind', 'webauthn'));
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION um_internal.do_register_webauthn(text, bytea, bytea, bigint) IS
  'body of um_register_webauthn: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_register_webauthn (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_webauthn_credential(p_credential_id bytea, OUT user_id bigint, OUT public_key bytea,
                                                   OUT sign_count bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  SELECT m.user_id, m.webauthn_public_key, m.webauthn_sign_count INTO user_id, public_key, sign_count
    FROM um.mfa_factors m WHERE m.kind = 'webauthn' AND m.webauthn_credential_id = p_credential_id;
END
$$;
COMMENT ON FUNCTION um_internal.do_webauthn_credential(bytea) IS
  'body of um_webauthn_credential: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_webauthn_credential (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_complete_login_webauthn(p_challenge text, p_credential_id bytea, p_sign_count bigint)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.login_challenges;
  v_f um.mfa_factors;
  v_user um.users;
  v_refusal record;
  v_ok boolean;
  v_rec record;
BEGIN
  SELECT c.* INTO v FROM um.login_challenges c
   WHERE c.token_hash = um_internal.token_hash(coalesce(p_challenge, '')) AND c.expires_at > clock_timestamp()
     FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM um_internal.raise('UM053', 'the login challenge is not valid',
      'It is unknown, was used, or is older than 5 minutes.', 'Log in again (um_login) for a new challenge.');
  END IF;
  SELECT m.* INTO v_f FROM um.mfa_factors m
   WHERE m.kind = 'webauthn' AND m.webauthn_credential_id = p_credential_id AND m.user_id = v.user_id FOR UPDATE;
  -- a counter that does not grow (when the key keeps one) betrays a copy of the key
  v_ok := FOUND AND p_sign_count IS NOT NULL
          AND NOT ((v_f.webauthn_sign_count > 0 OR p_sign_count > 0) AND p_sign_count <= v_f.webauthn_sign_count);
  v_rec := um_internal.record_login(v.user_id, 'user.login_second_factor', CASE WHEN v_ok THEN 'success' ELSE 'wrong' END,
                                    CASE WHEN v_ok THEN NULL ELSE 'WebAuthn credential not valid' END);
  IF NOT v_ok OR v_rec.was_locked THEN
    PERFORM um_internal.raise('UM090', 'the second-factor code is not valid',
      'The credential is not one of this user''s, its signature counter did not grow (a cloned key?), or second factors are locked after too many failures.',
      'Verify the assertion again with a registered credential of the user.');
  END IF;
  UPDATE um.mfa_factors m SET webauthn_sign_count = p_sign_count, last_used_at = now() WHERE m.id = v_f.id;
  SELECT * INTO v_user FROM um.users u WHERE u.id = v.user_id;
  IF v_user.password_changed_at IS DISTINCT FROM v.password_changed_at THEN
    PERFORM um_internal.raise('UM053', 'the login challenge is not valid', 'The password changed since the first step.',
      'Log in again (um_login) with the new password.');
  END IF;
  v_refusal := um_internal.login_refusal(v_user, false);
  PERFORM um_internal.raise_login_refusal(v_refusal.reason, v_refusal.sso_org);
  DELETE FROM um.login_challenges c WHERE c.token_hash = v.token_hash;
  RETURN um_internal.new_session(v_user, 'user.login', v.method, 2::smallint);
END
$$;
COMMENT ON FUNCTION um_internal.do_complete_login_webauthn(text, bytea, bigint) IS
  'body of um_complete_login_webauthn: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_complete_login_webauthn (EXECUTE held by nobody)';

CREATE FUNCTION @extschema@.um_complete_login(challenge text, code text)
RETURNS text AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_complete_login(text, text) IS
  'the second step of a login: the challenge (umc_...) a first step returned for a user with a second factor, and a code of that factor or a recovery code; returns a session token at assurance level 2';

CREATE FUNCTION @extschema@.um_reauthenticate(password text DEFAULT NULL, code text DEFAULT NULL)
RETURNS smallint AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_reauthenticate(text, text) IS
  'the acting user proves who they are again in this session (their password, or a second-factor code, which raises the session to level 2), for the calls that need a recent authentication; returns the session''s level';

CREATE FUNCTION @extschema@.um_register_webauthn(name text, credential_id bytea, public_key bytea, sign_count bigint)
RETURNS bigint AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_register_webauthn(text, bytea, bytea, bigint) IS
  'the acting user adds a security key or passkey whose registration the backend verified: credential id, COSE public key, signature counter; returns the factor id';

CREATE FUNCTION @extschema@.um_webauthn_credential(credential_id bytea, OUT user_id bigint, OUT public_key bytea,
                                                   OUT sign_count bigint)
RETURNS record AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_webauthn_credential(bytea) IS
  'for the backend verifying a WebAuthn assertion: the credential''s user, public key and signature counter (NULLs when unknown)';

CREATE FUNCTION @extschema@.um_complete_login_webauthn(challenge text, credential_id bytea, sign_count bigint)
RETURNS text AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_complete_login_webauthn(text, bytea, bigint) IS
  'the second step of a login by a security key: the backend verified the assertion of this credential of the challenge''s user, with this signature counter; returns a session at assurance level 2';

DROP FUNCTION um_internal.new_session(um.users, text, text);
CREATE FUNCTION um_internal.new_session(p_user um.users, p_action text, p_method text DEFAULT 'password',
                                        p_level smallint DEFAULT 1)
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_token text := um_internal.generate_token();
  v_session bigint;
  v_limits record := um_internal.session_limits(p_user.id);
  v_addr inet;
BEGIN
  IF p_level < 2 AND EXISTS (SELECT 1 FROM um.mfa_factors f WHERE f.user_id = p_user.id AND f.confirmed_at IS NOT NULL) THEN
    v_token := 'umc_' || substr(v_token, 4);
    DELETE FROM um.login_challenges c WHERE c.user_id = p_user.id AND c.expires_at < now();
    INSERT INTO um.login_challenges (token_hash, user_id, method, password_changed_at, expires_at)
    VALUES (um_internal.token_hash(v_token), p_user.id, p_method, p_user.password_changed_at, now() + interval '5 minutes');
    PERFORM um_internal.audit('user.login_challenge', NULL, 'user', p_user.id, jsonb_build_object('method', p_method));
    RETURN v_token;
  END IF;
  BEGIN
    v_addr := nullif(current_setting('um.client_addr', true), '')::inet;
  EXCEPTION WHEN invalid_text_representation THEN
    PERFORM um_internal.raise('UM009', 'um.client_addr is not an IP address', NULL,
      'SET LOCAL um.client_addr to the client''s address (e.g. 203.0.113.7 or 2001:db8::7), or leave it empty.');
  END;
  -- housekeeping, unless an application table references sessions (um
  -- never changes application rows: see um_internal.assert_no_app_cascades)
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c JOIN pg_catalog.pg_class r ON r.oid = c.conrelid
                  WHERE c.contype = 'f' AND c.confrelid = 'um.sessions'::regclass
                    AND r.relnamespace <> 'um'::regnamespace) THEN
    DELETE FROM um.sessions s WHERE s.user_id = p_user.id AND s.expires_at < now();
  END IF;
  -- stamped with the password the caller checked (p_user as it read it): a
  -- change committed meanwhile ends the session in um_begin
  INSERT INTO um.sessions (user_id, token_hash, expires_at, password_changed_at, method, idle_timeout,
                           client_addr, user_agent, assurance_level, authenticated_at)
  VALUES (p_user.id, um_internal.token_hash(v_token), now() + make_interval(secs => v_limits.lifetime_seconds),
          p_user.password_changed_at, p_method, v_limits.idle_seconds,
          v_addr, left(nullif(current_setting('um.client_user_agent', true), ''), 512), p_level, now())
  RETURNING id INTO v_session;
  -- its use is recorded apart (um_begin updates the row, never inserts it)
  INSERT INTO um.session_activity (session_id, last_seen_at) VALUES (v_session, now());
  PERFORM um_internal.audit(p_action, NULL, 'user', p_user.id,
                            jsonb_build_object('session_id', v_session, 'method', p_method, 'assurance_level', p_level));
  RETURN v_token;
END
$$;
COMMENT ON FUNCTION um_internal.new_session(um.users, text, text, smallint) IS 'internal: starts a session (by a method, at an assurance level, for the lifetimes of um_internal.session_limits, with um.client_addr and um.client_user_agent) for a user who just proved who they are, audits it, and returns its token; a user with a second factor gets a login challenge instead of a level-1 session';

CREATE OR REPLACE FUNCTION um_internal.do_remove_factor(p_factor_id bigint, p_code text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_user bigint := um_internal.factor_owner('user.remove_factor');
  v um.mfa_factors;
BEGIN
  SELECT * INTO v FROM um.mfa_factors m WHERE m.id = p_factor_id AND m.user_id = v_user;
  IF NOT FOUND THEN
    PERFORM um_internal.raise('UM091', format('factor %s is not one of yours', p_factor_id), NULL,
      'See your factors with um_my_factors().');
  END IF;
  IF v.confirmed_at IS NOT NULL THEN
    -- a session alone does not take a factor away: a proof now does (a
    -- code), or a recent authentication of the session
    IF p_code IS NOT NULL THEN
      PERFORM um_internal.prove_second_factor(v_user, p_code, 'user.remove_factor');
    ELSIF um_internal.current_session_id() IS NOT NULL THEN
      PERFORM um_internal.require_recent_authentication('user.remove_factor', 'removing a second factor');
    ELSE
      PERFORM um_internal.deny('user.remove_factor', NULL, 'user', v_user, 'UM093',
        'removing a second factor needs a recent authentication',
        'Without a session there is no authentication to rely on.', 'Pass a current code or a recovery code.');
    END IF;
  END IF;
  DELETE FROM um.mfa_factors m WHERE m.id = v.id;
  IF NOT EXISTS (SELECT 1 FROM um.mfa_factors m WHERE m.user_id = v_user AND m.confirmed_at IS NOT NULL) THEN
    DELETE FROM um.mfa_recovery_codes r WHERE r.user_id = v_user;      -- no factor, nothing to recover
  END IF;
  PERFORM um_internal.audit('user.remove_factor', NULL, 'user', v_user, jsonb_build_object('factor_id', v.id));
END
$$;

CREATE OR REPLACE FUNCTION um_internal.do_transfer_org_ownership(p_org_id bigint, p_new_root_user_id bigint, p_demote_to text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um_internal.authorize('organization.transfer', format('transfer organization %s', p_org_id),
                                 'org:update', p_org_id, 'user', p_new_root_user_id);
  v_root bigint;
  v_demote um.roles;
  v_user um.users;
BEGIN
  IF v_actor IS NOT NULL AND NOT um_internal.is_root(p_org_id, v_actor) THEN
    PERFORM um_internal.deny('organization.transfer', p_org_id, 'user', p_new_root_user_id, 'UM073',
      'only a Root may transfer ownership of an organization', NULL, 'Ask a Root of the organization.');
  END IF;
  PERFORM um_internal.require_recent_authentication('organization.transfer', 'transferring an organization');
  PERFORM um_internal.require_member(p_org_id, p_new_root_user_id);
  v_user := um_internal.require_user(p_new_root_user_id);
  PERFORM um_internal.require_root_candidate(v_user, p_org_id);
  v_demote := um_internal.require_role(p_org_id, coalesce(p_demote_to, 'admin'));
  IF v_demote.builtin = 'root' THEN
    PERFORM um_internal.raise('UM009', 'demote_to must not be the Root role', NULL, 'Pass Admin or another role, or use um_set_org_role to add a Root.');
  END IF;
  SELECT r.id INTO v_root FROM um.roles r WHERE r.org_id = p_org_id AND r.builtin = 'root';
  -- one statement, so the organization is never without a Root
  UPDATE um.memberships m
     SET role_id = CASE WHEN m.user_id = p_new_root_user_id THEN v_root ELSE v_demote.id END
   WHERE m.org_id = p_org_id
     AND (m.user_id = p_new_root_user_id
          OR (m.role_id = v_root AND (v_actor IS NULL OR m.user_id = v_actor)));
  PERFORM um_internal.audit('organization.transfer', p_org_id, 'user', p_new_root_user_id,
                   jsonb_build_object('demoted_to_role_id', v_demote.id));
END
$$;

CREATE OR REPLACE FUNCTION um_internal.do_delete_my_account()
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um_internal.require_actor('Call um_begin(token) first: an account is deleted by its own user.');
BEGIN
  IF v_actor IS DISTINCT FROM @extschema@.um_real_user_id() THEN
    PERFORM um_internal.deny('user.delete_self', NULL, 'user', v_actor, 'UM071',
      'cannot delete an account while impersonating it', NULL, 'Call um_end_impersonation() first.');
  END IF;
  PERFORM um_internal.require_recent_authentication('user.delete_self', 'deleting your account');
  PERFORM um_internal.erase_user(v_actor, 'user.delete_self');
END
$$;

CREATE OR REPLACE FUNCTION um_internal.do_request_email_change(p_new_email text, p_user_id bigint)
RETURNS timestamptz
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := @extschema@.um_current_user_id();
  v_user bigint := coalesce(p_user_id, v_actor);
  v_email text := btrim(coalesce(p_new_email, ''), E' \t\r\n');
  v um.users;
  v_expires timestamptz := now() + interval '24 hours';
BEGIN
  IF v_actor IS DISTINCT FROM @extschema@.um_real_user_id() THEN
    PERFORM um_internal.deny('user.request_email_change', NULL, 'user', v_user, 'UM071',
      'cannot change an email address while impersonating', NULL, 'Call um_end_impersonation() first.');
  END IF;
  IF p_user_id IS NULL OR p_user_id = v_actor THEN
    PERFORM um_internal.require_actor('Call um_begin(token) first, or pass the user_id as a um administrator.');
    PERFORM um_internal.require_recent_authentication('user.request_email_change', 'changing your email address');
  ELSIF p_user_id IS DISTINCT FROM v_actor THEN
    PERFORM um_internal.authorize_user('user.request_email_change', format('change the email address of user %s', p_user_id),
                                       'user:update', p_user_id);
    -- an admin moves an account only to an address of a domain one of the
    -- user's organizations owns: anywhere else it would be taking it over
    IF v_actor IS NOT NULL AND NOT EXISTS (SELECT 1 FROM um.memberships m
                                            WHERE m.user_id = p_user_id AND um_internal.org_owns_address(m.org_id, v_email)) THEN
      PERFORM um_internal.deny('user.request_email_change', NULL, 'user', p_user_id, 'UM074',
        'cannot move an account to an address outside its organizations'' domains',
        'An admin changes a user''s address only within a domain one of the user''s organizations owns (um.organization_domains).',
        'Ask the user to change it themself, or record the domain first (um_add_org_domain, by the service''s operator).');
    END IF;
  END IF;
  -- the same checks as a sign-up's, whether or not the address is registered
  IF NOT um_internal.email_is_valid(v_email) THEN
    PERFORM um_internal.raise('UM001', format('invalid email address "%s"', v_email), NULL,
      'Check the address for typos; write internationalized domains in their xn-- (punycode) form.');
  END IF;
  SELECT * INTO v FROM um.users u WHERE u.id = v_user FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    PERFORM um_internal.require_user(v_user);
  END IF;
  IF lower(v.email) = lower(v_email) THEN
    PERFORM um_internal.raise('UM009', 'the new email address is the current one', NULL,
      'Pass the address to change to; to cancel a pending change, use the token of the notice (um_cancel_email_change).');
  END IF;
  INSERT INTO um.email_changes AS c (user_id, new_email, requested_by, expires_at)
  VALUES (v.id, v_email, v_actor, v_expires)
  ON CONFLICT (user_id) DO UPDATE
    SET new_email = EXCLUDED.new_email, requested_by = EXCLUDED.requested_by, confirm_hash = NULL, cancel_hash = NULL,
        created_at = now(), expires_at = EXCLUDED.expires_at;
  PERFORM um_internal.audit('user.request_email_change', NULL, 'user', v.id,
                            jsonb_build_object('by', CASE WHEN v_actor IS NULL THEN 'administrator'
                                                          WHEN v_actor = v.id THEN 'user' ELSE 'admin' END));
  RETURN v_expires;
END
$$;

CREATE OR REPLACE FUNCTION um_internal.do_set_org_setting(p_org_id bigint, p_setting text, p_value jsonb)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um_internal.authorize('organization.set_setting',
                                 format('change settings of organization %s', p_org_id),
                                 'org:update', p_org_id, 'organization', p_org_id);
  v_seconds numeric;
BEGIN
  IF p_setting IS NULL OR p_setting !~ '^[a-z][a-z0-9_]{0,62}$' THEN
    PERFORM um_internal.raise('UM009', format('invalid setting name "%s"', p_setting), NULL,
      'A setting name is lowercase letters, digits and underscores, e.g. allow_invite_requests.');
  END IF;
  CASE p_setting
    WHEN 'name' THEN
      IF jsonb_typeof(p_value) IS DISTINCT FROM 'string' THEN
        PERFORM um_internal.raise('UM009', 'setting "name" takes a JSON string', NULL, 'Pass e.g. ''"Acme Inc."''::jsonb.');
      END IF;
      UPDATE um.organizations o SET name = p_value #>> '{}' WHERE o.id = p_org_id;
    WHEN 'require_mfa' THEN
      IF jsonb_typeof(p_value) IS DISTINCT FROM 'boolean' THEN
        PERFORM um_internal.raise('UM009', 'setting "require_mfa" takes true or false', NULL, 'Pass ''true''::jsonb or ''false''::jsonb.');
      END IF;
      -- turned on from a session, the session must already meet it
      IF p_value::boolean AND um_internal.current_assurance_level() = 1 THEN
        PERFORM um_internal.deny('organization.set_setting', p_org_id, 'organization', p_org_id, 'UM092',
          'requiring a second factor needs a session that proved one',
          'This session is at assurance level 1: it would lock itself out of the organization.',
          'Enrol a factor (um_enroll_totp), log in again or call um_reauthenticate(code => ...), then turn it on.');
      END IF;
      UPDATE um.organizations o SET require_mfa = p_value::boolean WHERE o.id = p_org_id;
    WHEN 'allow_invite_requests', 'password_login_disabled' THEN
      IF jsonb_typeof(p_value) IS DISTINCT FROM 'boolean' THEN
        PERFORM um_internal.raise('UM009', format('setting "%s" takes true or false', p_setting), NULL, 'Pass ''true''::jsonb or ''false''::jsonb.');
      END IF;
      IF p_setting = 'allow_invite_requests' THEN
        UPDATE um.organizations o SET allow_invite_requests = p_value::boolean WHERE o.id = p_org_id;
      ELSE
        IF p_value::boolean AND NOT EXISTS (
             SELECT 1 FROM um.user_identities i
               JOIN um.memberships m ON m.user_id = i.user_id AND m.org_id = i.org_id
               JOIN um.roles r ON r.id = m.role_id
              WHERE i.org_id = p_org_id AND r.builtin = 'root' AND m.status = 'active')
           AND EXISTS (SELECT 1 FROM um.identity_providers p WHERE p.org_id = p_org_id) THEN
          RAISE EXCEPTION 'no Root of organization % has an identity-provider link', p_org_id
            USING ERRCODE = 'UM045',
                  DETAIL = 'Disabling password login now would lock the organization''s Roots out.',
                  HINT = 'Link a Root''s single sign-on identity first (um_link_identity).';
        END IF;
        UPDATE um.organizations o SET password_login_disabled = p_value::boolean WHERE o.id = p_org_id;  -- needs a provider (UM045)
      END IF;
    WHEN 'session_lifetime', 'session_idle_timeout' THEN
      -- seconds, or an interval as a string; stored as seconds
      IF p_value IS NULL OR p_value = 'null' THEN
        UPDATE um.organizations o SET settings = o.settings - p_setting WHERE o.id = p_org_id;
      ELSE
        BEGIN
          v_seconds := CASE jsonb_typeof(p_value)
                         WHEN 'number' THEN (p_value #>> '{}')::numeric
                         WHEN 'string' THEN extract(epoch FROM (p_value #>> '{}')::interval) END;
        EXCEPTION WHEN invalid_datetime_format OR invalid_text_representation OR datetime_field_overflow
                       OR interval_field_overflow OR numeric_value_out_of_range THEN
          v_seconds := NULL;
        END;
        IF v_seconds IS NULL OR v_seconds < 60 OR v_seconds > 365 * 86400 THEN
          PERFORM um_internal.raise('UM009', format('setting "%s" takes a duration from 1 minute to 365 days', p_setting), NULL,
            'Pass seconds (28800) or an interval as a JSON string (''"8 hours"''); null removes the limit.');
        END IF;
        UPDATE um.organizations o SET settings = o.settings || jsonb_build_object(p_setting, round(v_seconds)::integer)
         WHERE o.id = p_org_id;
        PERFORM um_internal.apply_session_limit(p_org_id, p_setting, round(v_seconds)::integer);
      END IF;
    ELSE
      UPDATE um.organizations o
         SET settings = CASE WHEN p_value IS NULL OR p_value = 'null' THEN o.settings - p_setting
                             ELSE o.settings || jsonb_build_object(p_setting, p_value) END
       WHERE o.id = p_org_id;
  END CASE;
  PERFORM um_internal.audit('organization.set_setting', p_org_id, 'organization', p_org_id,
                   jsonb_build_object('setting', p_setting));
END
$$;

CREATE OR REPLACE FUNCTION um_internal.do_set_org_setting(p_org_id bigint, p_setting text, p_value text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_value jsonb;
BEGIN
  PERFORM um_internal.authorize('organization.set_setting', format('change settings of organization %s', p_org_id),
                       'org:update', p_org_id, 'organization', p_org_id);
  IF p_setting IS NULL OR p_setting !~ '^[a-z][a-z0-9_]{0,62}$' THEN
    PERFORM um_internal.do_set_org_setting(p_org_id, p_setting, NULL::jsonb);   -- the name's error (UM009)
  END IF;
  BEGIN
    v_value := p_value::jsonb;
  EXCEPTION WHEN invalid_text_representation OR untranslatable_character OR statement_too_complex
                 OR program_limit_exceeded THEN
    -- (the value is not repeated: a setting may hold a secret)
    PERFORM um_internal.raise('UM009', format('the value of setting "%s" is not JSON', p_setting),
      'It is not a JSON value PostgreSQL can store (a bare word, a \u0000 escape, or nested too deep).',
      CASE WHEN p_setting IN ('allow_invite_requests', 'password_login_disabled', 'require_mfa') THEN 'Pass true or false.'
           WHEN p_setting IN ('session_lifetime', 'session_idle_timeout') THEN 'Pass seconds (28800) or an interval in double quotes: ''"8 hours"''.'
           WHEN p_setting = 'name' THEN 'Pass a JSON string, in double quotes: ''"Acme Inc."''.'
           ELSE 'Pass a JSON value: a string in double quotes (''"dark"''), a number, true or false, an array or an object.' END);
  END;
  PERFORM um_internal.do_set_org_setting(p_org_id, p_setting, v_value);
END
$$;

CREATE OR REPLACE FUNCTION @extschema@.um_lint()
RETURNS TABLE (severity text, object text, finding text, hint text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT f.* FROM (
  WITH app_tables AS (
    SELECT c.oid, c.relkind, c.relrowsecurity, c.relforcerowsecurity, c.relispartition
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p')
       AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'um', 'um_internal', 'pg_toast')
       AND n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast_temp%'),
  org_columns AS (
    -- a column that references um.organizations, or is called org_id / organization_id
    SELECT t.oid, a.attname
      FROM app_tables t JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
     WHERE a.attname IN ('org_id', 'organization_id')
        OR EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k
                    WHERE k.conrelid = t.oid AND k.contype = 'f' AND k.confrelid = 'um.organizations'::pg_catalog.regclass
                      AND a.attnum = ANY (k.conkey))),
  policies AS (
    SELECT p.polrelid, count(*) AS n, count(*) FILTER (WHERE p.polname IN ('um_read', 'um_create', 'um_update', 'um_delete')) AS um
      FROM pg_catalog.pg_policy p GROUP BY p.polrelid),
  policy_columns AS (
    -- the columns um's read policy uses: the organization column (and a scope column)
    SELECT t.oid, a.attnum, a.attname
      FROM app_tables t JOIN pg_catalog.pg_policy pol ON pol.polrelid = t.oid AND pol.polname = 'um_read'
      JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_policy'::pg_catalog.regclass AND d.objid = pol.oid
                                 AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = t.oid
                                 AND d.refobjsubid > 0
      JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid),
  protected_columns AS (
    -- of those, the organization column: the one that looks like one, else all
    SELECT DISTINCT c.oid, c.attnum, c.attname FROM policy_columns c
     WHERE EXISTS (SELECT 1 FROM org_columns o WHERE o.oid = c.oid AND o.attname = c.attname)
        OR NOT EXISTS (SELECT 1 FROM policy_columns c2 JOIN org_columns o ON o.oid = c2.oid AND o.attname = c2.attname
                        WHERE c2.oid = c.oid))
  -- 1. an organization column and no policy at all
  SELECT 'critical' AS severity, t.oid::pg_catalog.regclass::text AS object,
         format('has an organization column (%s) but no row-level security policy: every role with SELECT sees every tenant''s rows',
                (SELECT string_agg(DISTINCT o.attname::text, ', ') FROM org_columns o WHERE o.oid = t.oid)) AS finding,
         format('SELECT um_protect_table(%L, %L, ''<resource>'');', t.oid::pg_catalog.regclass::text,
                (SELECT min(o.attname::text) FROM org_columns o WHERE o.oid = t.oid)) AS hint
    FROM app_tables t
   WHERE EXISTS (SELECT 1 FROM org_columns o WHERE o.oid = t.oid)
     AND NOT EXISTS (SELECT 1 FROM policies p WHERE p.polrelid = t.oid)
     AND NOT (t.relispartition AND EXISTS (SELECT 1 FROM pg_catalog.pg_partition_ancestors(t.oid) a
                                            JOIN policies p ON p.polrelid = a.relid WHERE a.relid <> t.oid))
  UNION ALL
  -- 2. a partition of a protected table without the policies (queries naming it skip the parent's)
  SELECT 'critical', t.oid::pg_catalog.regclass::text,
         'is a partition of a protected table but has no policies of its own: a query that names the partition sees every tenant''s rows',
         format('SELECT um_protect_table(%L, ...) again on the parent table protects its partitions too.',
                (SELECT a.relid::pg_catalog.regclass::text FROM pg_catalog.pg_partition_ancestors(t.oid) a
                  WHERE a.relid <> t.oid ORDER BY a.relid LIMIT 1))
    FROM app_tables t
   WHERE t.relispartition AND NOT EXISTS (SELECT 1 FROM policies p WHERE p.polrelid = t.oid)
     AND EXISTS (SELECT 1 FROM pg_catalog.pg_partition_ancestors(t.oid) a JOIN policies p ON p.polrelid = a.relid
                  WHERE a.relid <> t.oid)
  UNION ALL
  -- 2b. another permissive policy beside um's: permissive policies are OR'ed,
  -- so it widens what um's policy allows
  SELECT 'critical', t.oid::pg_catalog.regclass::text,
         format('has permissive policy %I beside um''s policies: permissive policies add up, so it lets through whatever it allows', p.polname),
         format('Make it restrictive (CREATE POLICY ... AS RESTRICTIVE) to narrow um''s policies, or drop it: DROP POLICY %I ON %s;',
                p.polname, t.oid::pg_catalog.regclass)
    FROM app_tables t JOIN pg_catalog.pg_policy p ON p.polrelid = t.oid
   WHERE p.polpermissive AND p.polname NOT IN ('um_read', 'um_create', 'um_update', 'um_delete')
     AND EXISTS (SELECT 1 FROM policies q WHERE q.polrelid = t.oid AND q.um > 0)
  UNION ALL
  -- 3. policies that are not enforced
  SELECT 'critical', t.oid::pg_catalog.regclass::text,
         'has policies but row-level security is not enabled: they are ignored',
         format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;', t.oid::pg_catalog.regclass)
    FROM app_tables t JOIN policies p ON p.polrelid = t.oid
   WHERE NOT t.relrowsecurity
  UNION ALL
  SELECT 'warning', t.oid::pg_catalog.regclass::text,
         'enables row-level security without forcing it: the table''s owner (and views it owns) bypass the policies',
         format('ALTER TABLE %s FORCE ROW LEVEL SECURITY;', t.oid::pg_catalog.regclass)
    FROM app_tables t
   WHERE t.relrowsecurity AND NOT t.relforcerowsecurity
  UNION ALL
  -- 4. views over protected tables that do not run as their caller
  SELECT CASE WHEN v.relkind = 'm' OR r.rolsuper OR r.rolbypassrls THEN 'critical' ELSE 'warning' END,
         v.oid::pg_catalog.regclass::text,
         CASE WHEN v.relkind = 'm'
              THEN format('is a materialized view over protected table %s: it stores rows as its owner saw them, and its readers are not filtered', t.oid::pg_catalog.regclass)
              WHEN r.rolsuper OR r.rolbypassrls
              THEN format('reads protected table %s as its owner %I, who bypasses row-level security: its readers see every tenant''s rows', t.oid::pg_catalog.regclass, r.rolname)
              ELSE format('reads protected table %s with its owner''s privileges, not its caller''s (security_invoker is off)', t.oid::pg_catalog.regclass) END,
         CASE WHEN v.relkind = 'm'
              THEN format('Replace it with a view, or protect it: SELECT um_protect_table(%L, ...).', v.oid::pg_catalog.regclass::text)
              ELSE format('ALTER VIEW %s SET (security_invoker = true);', v.oid::pg_catalog.regclass) END
    FROM pg_catalog.pg_rewrite rw
    JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = rw.oid
                               AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
    JOIN pg_catalog.pg_class v ON v.oid = rw.ev_class
    JOIN pg_catalog.pg_class t ON t.oid = d.refobjid
    JOIN pg_catalog.pg_roles r ON r.oid = v.relowner
   WHERE v.relkind IN ('v', 'm') AND t.oid <> v.oid AND t.relrowsecurity
     AND (v.relkind = 'm'
          OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_options_to_table(v.reloptions) o
                          WHERE o.option_name = 'security_invoker'
                            AND lower(o.option_value) IN ('true', 'on', 'yes', '1', 't', 'y')))
   GROUP BY v.oid, v.relkind, t.oid, r.rolsuper, r.rolbypassrls, r.rolname
  UNION ALL
  -- 5. roles that log in and bypass row-level security
  SELECT CASE WHEN r.rolsuper THEN 'warning' ELSE 'critical' END, 'role ' || quote_ident(r.rolname),
         CASE WHEN r.rolsuper THEN 'is a superuser that can log in: if an application connects as it, no policy applies'
              ELSE 'can log in and has BYPASSRLS: no policy applies to it' END,
         CASE WHEN r.rolsuper THEN 'Connect applications with a role that is neither superuser nor BYPASSRLS; keep this one for administration.'
              ELSE format('ALTER ROLE %I NOBYPASSRLS;', r.rolname) END
    FROM pg_catalog.pg_roles r
   WHERE r.rolcanlogin AND (r.rolbypassrls OR r.rolsuper) AND r.oid <> 10
  UNION ALL
  -- 6. SECURITY DEFINER functions whose search_path the caller chooses
  SELECT 'warning', 'function ' || p.oid::pg_catalog.regprocedure::text,
         'is SECURITY DEFINER without a pinned search_path: a caller can put objects of its own in the way',
         format('ALTER FUNCTION %s SET search_path = pg_catalog, pg_temp;', p.oid::pg_catalog.regprocedure)
    FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
   WHERE p.prosecdef AND n.nspname NOT IN ('pg_catalog', 'information_schema')
     AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search\_path=%')
  UNION ALL
  -- 7. protected tables whose organization column has no index
  SELECT 'info', t.oid::pg_catalog.regclass::text,
         format('is protected on column %s, which no index leads with: every query reads the whole table', o.attname),
         format('CREATE INDEX ON %s (%I);', t.oid::pg_catalog.regclass, o.attname)
    FROM app_tables t JOIN policies p ON p.polrelid = t.oid AND p.um > 0
    JOIN protected_columns o ON o.oid = t.oid
   WHERE t.relkind = 'r'
     AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                      WHERE i.indrelid = t.oid
                        AND i.indkey[0] = (SELECT a.attnum FROM pg_catalog.pg_attribute a
                                            WHERE a.attrelid = t.oid AND a.attname = o.attname))
  UNION ALL
  -- 8. protected tables with a unique key that leaves out the organization
  -- column: a unique index ignores row-level security, so a write that
  -- collides (a unique violation, INSERT ... ON CONFLICT DO NOTHING) tells
  -- one tenant that another tenant's row holds the value; and a
  -- tenant-sharded deployment (distributed by organization) needs the
  -- organization in each key
  SELECT 'warning', t.oid::pg_catalog.regclass::text,
         format('is protected on column %I, which its %s %I does not include: a colliding insert or update tells a tenant that another tenant''s row holds the value (unique indexes ignore row-level security), and the table cannot be distributed by organization',
                o.attname, CASE k.contype WHEN 'p' THEN 'primary key' WHEN 'u' THEN 'unique constraint' ELSE 'unique index' END,
                coalesce(k.conname, ic.relname)),
         CASE WHEN k.oid IS NOT NULL
              THEN format('Lead it with the organization (it then holds within each organization; foreign keys that reference it must be dropped first and re-created on the new key): ALTER TABLE %s DROP CONSTRAINT %I, ADD %s (%s);',
                          t.oid::pg_catalog.regclass, k.conname, CASE k.contype WHEN 'p' THEN 'PRIMARY KEY' ELSE 'UNIQUE' END,
                          (SELECT string_agg(quote_ident(x.name), ', ' ORDER BY x.ord)
                             FROM (SELECT o.attname::text AS name, 0::bigint AS ord
                                   UNION ALL
                                   SELECT a.attname::text, c.ord FROM unnest(k.conkey) WITH ORDINALITY AS c(attnum, ord)
                                     JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attnum = c.attnum) x))
              ELSE format('Re-create it with %I as its first column (it then holds within each organization): it is %s',
                          o.attname, pg_catalog.pg_get_indexdef(i.indexrelid)) END
    FROM app_tables t JOIN policies p ON p.polrelid = t.oid AND p.um > 0
    JOIN protected_columns o ON o.oid = t.oid
    JOIN pg_catalog.pg_index i ON i.indrelid = t.oid AND i.indisunique
    JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
    LEFT JOIN pg_catalog.pg_constraint k ON k.conrelid = t.oid AND k.conindid = i.indexrelid AND k.contype IN ('p', 'u')
   WHERE NOT t.relispartition
     AND NOT o.attnum = ANY ((i.indkey::pg_catalog.int2[])[0:i.indnkeyatts - 1])   -- key columns, not INCLUDE ones
  UNION ALL
  -- 9. foreign keys into um's tables: PostgreSQL checks each inserted row
  -- as the owner of the referenced table, with the referencing column's
  -- casts (code of the application's with um's rights when the types differ)
  -- A plain key (same types, no actions, not deferrable) into
  -- um.organizations or um.scopes runs no code of the application's and
  -- makes um's deletions wait for its rows (UM081): the supported way to
  -- keep a tenant's rows from being orphaned.  Keys with ON DELETE/UPDATE
  -- actions stop um's deleting calls (UM057); deferrable ones its deletions.
  SELECT CASE WHEN k.casts OR k.actions THEN 'critical'
              WHEN k.plain_org_key THEN 'info'
              ELSE 'warning' END,
         k.conrelid::pg_catalog.regclass::text,
         CASE WHEN k.plain_org_key
              THEN format('has foreign key %I into %s: um refuses to delete what its rows still reference (UM081)',
                          k.conname, k.confrelid::pg_catalog.regclass)
              WHEN k.actions AND NOT k.casts
              THEN format('has foreign key %I into %s with ON DELETE or ON UPDATE actions: they would run as um''s owner, so every lifecycle call that deletes refuses (UM057)',
                          k.conname, k.confrelid::pg_catalog.regclass)
              WHEN k.condeferrable AND NOT k.casts
              THEN format('has deferrable foreign key %I into %s: it would be checked only at COMMIT, so um refuses to delete organizations and scope nodes (UM081)',
                          k.conname, k.confrelid::pg_catalog.regclass)
              ELSE format('has foreign key %I into %s: PostgreSQL checks it as um''s owner, running the column''s casts with um''s rights',
                          k.conname, k.confrelid::pg_catalog.regclass) END,
         CASE WHEN k.plain_org_key
              THEN 'Nothing to do: delete or move those rows before deleting the organization or scope node.'
              WHEN k.condeferrable AND NOT k.casts AND NOT k.actions
              THEN format('ALTER TABLE %s ALTER CONSTRAINT %I NOT DEFERRABLE;', k.conrelid::pg_catalog.regclass, k.conname)
              WHEN k.confrelid = 'um.users'::pg_catalog.regclass AND cardinality(k.conkey) = 1
              THEN format('ALTER TABLE %s DROP CONSTRAINT %I; SELECT um_add_user_reference(%L, %L);',
                          k.conrelid::pg_catalog.regclass, k.conname, k.conrelid::pg_catalog.regclass::text,
                          (SELECT a.attname FROM pg_catalog.pg_attribute a WHERE a.attrelid = k.conrelid AND a.attnum = k.conkey[1]))
              ELSE format('ALTER TABLE %s DROP CONSTRAINT %I; keep the ids without a foreign key into um''s tables.',
                          k.conrelid::pg_catalog.regclass, k.conname) END
    FROM (SELECT k0.*, EXISTS (SELECT 1 FROM unnest(k0.conkey, k0.confkey) AS x(a, b)
                                 JOIN pg_catalog.pg_attribute fa ON fa.attrelid = k0.conrelid AND fa.attnum = x.a
                                 JOIN pg_catalog.pg_attribute pa ON pa.attrelid = k0.confrelid AND pa.attnum = x.b
                                WHERE fa.atttypid <> pa.atttypid) AS casts,
                 k0.confdeltype NOT IN ('a', 'r') OR k0.confupdtype NOT IN ('a', 'r') AS actions
            FROM pg_catalog.pg_constraint k0 WHERE k0.contype = 'f') AS k1
    CROSS JOIN LATERAL (SELECT k1.*, NOT k1.casts AND NOT k1.actions AND NOT k1.condeferrable
                               AND k1.confrelid IN ('um.organizations'::pg_catalog.regclass, 'um.scopes'::pg_catalog.regclass)
                               AS plain_org_key) AS k
    JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
   WHERE k.contype = 'f' AND c.relnamespace <> 'um'::pg_catalog.regnamespace
     AND (SELECT r.relnamespace FROM pg_catalog.pg_class r WHERE r.oid = k.confrelid) = 'um'::pg_catalog.regnamespace
     AND k.conparentid = 0
  UNION ALL
  -- 10. roles holding REFERENCES on um's tables: they can make such keys
  SELECT 'critical', 'role ' || a.grantee::pg_catalog.regrole::text,
         format('holds REFERENCES on %s: a foreign key it makes is checked with um''s rights, running its casts', c.oid::pg_catalog.regclass),
         format('REVOKE REFERENCES ON %s FROM %s; register columns of user ids with um_add_user_reference() instead.',
                c.oid::pg_catalog.regclass, a.grantee::pg_catalog.regrole)
    FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
   WHERE c.relnamespace = 'um'::pg_catalog.regnamespace AND a.privilege_type = 'REFERENCES'
     AND a.grantee <> c.relowner AND a.grantee <> 0
  UNION ALL
  SELECT 'critical', 'role ' || a.grantee::pg_catalog.regrole::text,
         format('holds REFERENCES on column %I of %s: a foreign key it makes is checked with um''s rights, running its casts',
                att.attname, c.oid::pg_catalog.regclass),
         format('REVOKE REFERENCES (%I) ON %s FROM %s; register columns of user ids with um_add_user_reference() instead.',
                att.attname, c.oid::pg_catalog.regclass, a.grantee::pg_catalog.regrole)
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_attribute att ON att.attrelid = c.oid, pg_catalog.aclexplode(att.attacl) a
   WHERE c.relnamespace = 'um'::pg_catalog.regnamespace AND a.privilege_type = 'REFERENCES'
     AND a.grantee <> c.relowner AND a.grantee <> 0
  UNION ALL
  -- 11. login roles whose settings write what they pass to um (passwords,
  -- tokens) into the server log: their effective settings in this database
  -- (role and database settings over the server's)
  SELECT 'critical', 'role ' || quote_ident(r.rolname),
         format('can log in and call um_login, and its settings log the statements it runs (%s): the passwords and tokens it passes to um reach the server log',
                l.why),
         l.fix || ' Statements logged by log_statement or for their duration, and the parameters of failing ones, are written before um can hide them.'
    FROM pg_catalog.pg_roles r
    CROSS JOIN LATERAL (
      SELECT string_agg(format('%s = %s', e.name, e.value), ', ' ORDER BY e.name) AS why,
             string_agg(format('ALTER ROLE %I IN DATABASE %I SET %s = %s;', r.rolname, pg_catalog.current_database(), e.name, e.safe),
                        ' ' ORDER BY e.name) AS fix
        FROM (SELECT g.name, g.safe,
                     coalesce((SELECT substr(c, length(g.name) + 2)
                                 FROM pg_catalog.pg_db_role_setting s, unnest(s.setconfig) c
                                WHERE s.setrole IN (r.oid, 0)
                                  AND s.setdatabase IN ((SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database()), 0)
                                  AND NOT (s.setrole = 0 AND s.setdatabase = 0)
                                  AND c LIKE g.name || '=%'
                                ORDER BY (s.setrole <> 0 AND s.setdatabase <> 0) DESC, (s.setrole <> 0) DESC
                                LIMIT 1),
                              (SELECT CASE WHEN p.source IN ('database', 'user', 'database user') THEN p.boot_val
                                           WHEN p.source IN ('session', 'client') THEN p.reset_val
                                           ELSE p.setting END
                                 FROM pg_catalog.pg_settings p WHERE p.name = g.name)) AS value
                FROM (VALUES ('log_statement', '''none'''),
                             ('log_min_duration_statement', '-1'),
                             ('log_min_duration_sample', '-1'),
                             ('log_transaction_sample_rate', '0'),
                             ('log_parameter_max_length_on_error', '0')) AS g (name, safe)) e
       WHERE CASE e.name
               WHEN 'log_statement' THEN btrim(e.value, '''"') = 'all'
               WHEN 'log_transaction_sample_rate' THEN btrim(e.value, '''"') !~ '^0*(\.0*)?$'
               WHEN 'log_parameter_max_length_on_error' THEN btrim(e.value, '''"') !~ '^0+[A-Za-z]*$'
               ELSE btrim(e.value, '''"') !~ '^-' END) l
   WHERE r.rolcanlogin AND l.why IS NOT NULL
     AND (pg_catalog.has_function_privilege(r.oid, '@extschema@.um_login(text, text)', 'EXECUTE')
          OR pg_catalog.has_function_privilege(r.oid, '@extschema@.um_begin(text)', 'EXECUTE'))
  UNION ALL
  -- 12. um not loaded at backend start: a statement that fails before um is
  -- loaded in its backend (a syntax error) is logged with its text, and
  -- logins have no audit writers of their own
  SELECT 'warning', 'server',
         'um is not preloaded: a statement that fails before a backend loads um (a syntax error in a call of um_login) is logged with its text, password included, and logins share background worker slots with parallel queries',
         format('ALTER SYSTEM SET shared_preload_libraries = %L; then restart the server (or, for this database only and without reserved audit writers: ALTER DATABASE %I SET session_preload_libraries = ''um'';)',
                CASE WHEN pg_catalog.current_setting('shared_preload_libraries') = '' THEN 'um'
                     ELSE pg_catalog.current_setting('shared_preload_libraries') || ',um' END,
                pg_catalog.current_database())
   WHERE NOT EXISTS (SELECT 1 FROM unnest(string_to_array(pg_catalog.current_setting('shared_preload_libraries') || ','
                                                          || pg_catalog.current_setting('session_preload_libraries') || ','
                                                          || pg_catalog.current_setting('local_preload_libraries'), ',')) l
                      WHERE btrim(l) IN ('um', '$libdir/um', '"um"'))
  UNION ALL
  -- 13. organizations that require a second factor from members without one
  SELECT 'warning', 'organization ' || g.org_slug,
         format('requires a second factor (require_mfa), and %s member(s) who can log in have none: they can do nothing there', g.members_without),
         'Have them enrol one (um_enroll_totp, then um_complete_login at their next login), or turn require_mfa off until they have.'
    FROM um_internal.mfa_gaps() g
  ) f
  ORDER BY array_position(ARRAY['critical', 'warning', 'info'], f.severity), f.object, f.finding
$$;

COMMENT ON FUNCTION @extschema@.um_lint() IS
  'a security advisor: tables with an organization column but no policies, RLS not forced, unprotected partitions, views and materialized views over protected tables, roles that bypass RLS, SECURITY DEFINER functions without a pinned search_path, unindexed organization columns, keys without the organization, login roles whose settings log the secrets they pass to um, um not preloaded, organizations requiring a second factor from members without one; each with a hint';
COMMENT ON FUNCTION @extschema@.um_remove_factor(bigint, text) IS
  'remove one of the acting user''s factors; a confirmed one takes a proof now (a current code or a recovery code) or a recent authentication of the session';

REVOKE EXECUTE ON FUNCTION
  um_internal.current_assurance_level(),
  um_internal.note_assurance_level(smallint),
  um_internal.require_recent_authentication(text, text),
  um_internal.do_complete_login(text, text),
  um_internal.do_reauthenticate(text, text),
  um_internal.do_register_webauthn(text, bytea, bytea, bigint),
  um_internal.do_webauthn_credential(bytea),
  um_internal.do_complete_login_webauthn(text, bytea, bigint),
  um_internal.new_session(um.users, text, text, smallint),
  @extschema@.um_complete_login_webauthn(text, bytea, bigint),
  @extschema@.um_webauthn_credential(bytea)
FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION um_internal.mfa_gaps() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION um_internal.mfa_gaps() TO PUBLIC;

-- Erasing a user through a session needs a recent authentication; integrity
-- checks see timed suspensions and outstanding secrets of blocked users.
CREATE OR REPLACE FUNCTION um_internal.do_delete_user(p_user_id bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM um_internal.authorize_user('user.delete', format('delete user %s', p_user_id), 'user:delete', p_user_id);
  PERFORM um_internal.require_recent_authentication('user.delete', 'erasing a user');
  PERFORM um_internal.erase_user(p_user_id, 'user.delete');
END
$$;

CREATE OR REPLACE FUNCTION @extschema@.um_check_integrity()
RETURNS TABLE (invariant text, object text, detail text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  -- an organization with members keeps a Root
  SELECT 'organization has a Root', format('organization %s (%s)', o.id, o.slug),
         format('%s members, none of them Root', (SELECT count(*) FROM um.memberships m WHERE m.org_id = o.id))
    FROM um.organizations o
   WHERE EXISTS (SELECT 1 FROM um.memberships m WHERE m.org_id = o.id)
     AND NOT EXISTS (SELECT 1 FROM um.memberships m JOIN um.roles r ON r.id = m.role_id
                      WHERE m.org_id = o.id AND r.builtin = 'root')
  UNION ALL
  -- ... and a Root who can log in
  SELECT 'organization has a Root who can log in', format('organization %s (%s)', o.id, o.slug),
         'every Root is suspended (in the organization or everywhere) or may not log in'
    FROM um.organizations o
   WHERE EXISTS (SELECT 1 FROM um.memberships m JOIN um.roles r ON r.id = m.role_id
                  WHERE m.org_id = o.id AND r.builtin = 'root')
     AND NOT um_internal.has_usable_root(o.id)
  UNION ALL
  -- every organization has each built-in role
  SELECT 'organization has its built-in roles', format('organization %s (%s)', o.id, o.slug),
         'missing: ' || string_agg(b.key, ', ' ORDER BY b.position)
    FROM um.organizations o CROSS JOIN um.builtin_roles b
   WHERE NOT EXISTS (SELECT 1 FROM um.roles r WHERE r.org_id = o.id AND r.builtin = b.key)
   GROUP BY o.id, o.slug
  UNION ALL
  -- assignments point at roles, scopes, teams and members of their own organization
  SELECT 'membership role in the same organization', format('membership %s', m.id),
         format('role %s belongs to %s, the membership to organization %s', m.role_id,
                coalesce((SELECT 'organization ' || r.org_id FROM um.roles r WHERE r.id = m.role_id), 'no organization (missing)'), m.org_id)
    FROM um.memberships m
   WHERE NOT EXISTS (SELECT 1 FROM um.roles r WHERE r.id = m.role_id AND r.org_id = m.org_id)
  UNION ALL
  SELECT 'grant targets in the same organization', format('grant %s', g.id),
         concat_ws('; ',
           CASE WHEN NOT EXISTS (SELECT 1 FROM um.roles r WHERE r.id = g.role_id AND r.org_id = g.org_id)
                THEN format('role %s is missing or of another organization', g.role_id) END,
           CASE WHEN g.scope_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM um.scopes s WHERE s.id = g.scope_id AND s.org_id = g.org_id)
                THEN format('scope node %s is missing or of another organization', g.scope_id) END,
           CASE WHEN g.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM um.memberships m WHERE m.user_id = g.user_id AND m.org_id = g.org_id)
                THEN format('user %s is not a member', g.user_id) END,
           CASE WHEN g.team_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM um.teams t WHERE t.id = g.team_id AND t.org_id = g.org_id)
                THEN format('team %s is missing or of another organization', g.team_id) END)
    FROM um.grants g
   WHERE NOT EXISTS (SELECT 1 FROM um.roles r WHERE r.id = g.role_id AND r.org_id = g.org_id)
      OR (g.scope_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM um.scopes s WHERE s.id = g.scope_id AND s.org_id = g.org_id))
      OR (g.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM um.memberships m WHERE m.user_id = g.user_id AND m.org_id = g.org_id))
      OR (g.team_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM um.teams t WHERE t.id = g.team_id AND t.org_id = g.org_id))
  UNION ALL
  SELECT 'role permission of an existing role', format('role %s', rp.role_id),
         format('the role is missing from organization %s; %s permission rows remain', rp.org_id, count(*))
    FROM um.role_permissions rp
   WHERE NOT EXISTS (SELECT 1 FROM um.roles r WHERE r.id = rp.role_id AND r.org_id = rp.org_id)
   GROUP BY rp.org_id, rp.role_id
  UNION ALL
  SELECT 'role inclusion in the same organization', format('role %s', ri.role_id),
         format('includes role %s; one of them is missing or of another organization than %s', ri.included_role_id, ri.org_id)
    FROM um.role_inclusions ri
   WHERE NOT EXISTS (SELECT 1 FROM um.roles r WHERE r.id = ri.role_id AND r.org_id = ri.org_id)
      OR NOT EXISTS (SELECT 1 FROM um.roles r WHERE r.id = ri.included_role_id AND r.org_id = ri.org_id)
  UNION ALL
  SELECT 'membership of an existing user', format('membership %s', m.id),
         format('user %s is missing', m.user_id)
    FROM um.memberships m
   WHERE NOT EXISTS (SELECT 1 FROM um.users u WHERE u.id = m.user_id)
  UNION ALL
  SELECT 'invitation targets in the same organization', format('invitation %s', i.id),
         concat_ws('; ',
           CASE WHEN NOT EXISTS (SELECT 1 FROM um.roles r WHERE r.id = i.role_id AND r.org_id = i.org_id)
                THEN format('role %s is missing or of another organization', i.role_id) END,
           CASE WHEN i.team_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM um.teams t WHERE t.id = i.team_id AND t.org_id = i.org_id)
                THEN format('team %s is missing or of another organization', i.team_id) END)
    FROM um.invitations i
   WHERE NOT EXISTS (SELECT 1 FROM um.roles r WHERE r.id = i.role_id AND r.org_id = i.org_id)
      OR (i.team_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM um.teams t WHERE t.id = i.team_id AND t.org_id = i.org_id))
  UNION ALL
  SELECT 'identity link to a provider of the organization and an existing user',
         format('provider %s, subject %s', ui.provider_id, ui.subject),
         concat_ws('; ',
           CASE WHEN NOT EXISTS (SELECT 1 FROM um.identity_providers p WHERE p.id = ui.provider_id AND p.org_id = ui.org_id)
                THEN format('provider %s is missing or of another organization', ui.provider_id) END,
           CASE WHEN NOT EXISTS (SELECT 1 FROM um.users u WHERE u.id = ui.user_id)
                THEN format('user %s is missing', ui.user_id) END)
    FROM um.user_identities ui
   WHERE NOT EXISTS (SELECT 1 FROM um.identity_providers p WHERE p.id = ui.provider_id AND p.org_id = ui.org_id)
      OR NOT EXISTS (SELECT 1 FROM um.users u WHERE u.id = ui.user_id)
  UNION ALL
  SELECT 'team role in the same organization', format('team %s, user %s', tr.team_id, tr.user_id),
         format('role %s is missing or of another organization', tr.role_id)
    FROM um.team_member_roles tr
   WHERE NOT EXISTS (SELECT 1 FROM um.roles r WHERE r.id = tr.role_id AND r.org_id = tr.org_id)
  UNION ALL
  -- teams: members are members of the organization; a team with members has one owner
  SELECT 'team members belong to the organization', format('team %s', tm.team_id),
         format('user %s is not a member of organization %s', tm.user_id, tm.org_id)
    FROM um.team_members tm
   WHERE NOT EXISTS (SELECT 1 FROM um.memberships m WHERE m.org_id = tm.org_id AND m.user_id = tm.user_id)
  UNION ALL
  SELECT 'team has an owner', format('team %s (%s)', t.id, t.name),
         format('%s members, %s owners', count(tm.user_id), count(tm.user_id) FILTER (WHERE tm.is_owner))
    FROM um.teams t JOIN um.team_members tm ON tm.team_id = t.id
   GROUP BY t.id, t.name
  HAVING count(tm.user_id) FILTER (WHERE tm.is_owner) <> 1
  UNION ALL
  -- scope trees and role inclusions have no cycles, and stay in their organization
  SELECT 'scope tree has no cycle', format('scope node %s', c.id), 'it is its own ancestor'
    FROM (WITH RECURSIVE walk(start, node, depth) AS (
            SELECT s.id, s.parent_id, 1 FROM um.scopes s WHERE s.parent_id IS NOT NULL
            UNION ALL
            SELECT w.start, s.parent_id, w.depth + 1 FROM walk w JOIN um.scopes s ON s.id = w.node
             WHERE s.parent_id IS NOT NULL AND w.node <> w.start AND w.depth < 10000)
          SELECT DISTINCT start AS id FROM walk WHERE node = start) c
  UNION ALL
  SELECT 'scope parent in the same organization', format('scope node %s', s.id),
         format('parent %s is missing or of another organization', s.parent_id)
    FROM um.scopes s
   WHERE s.parent_id IS NOT NULL
     AND NOT EXISTS (SELECT 1 FROM um.scopes p WHERE p.id = s.parent_id AND p.org_id = s.org_id)
  UNION ALL
  SELECT 'role inclusions have no cycle', format('role %s', c.id), 'it includes itself'
    FROM (WITH RECURSIVE walk(start, node, depth) AS (
            SELECT ri.role_id, ri.included_role_id, 1 FROM um.role_inclusions ri
            UNION ALL
            SELECT w.start, ri.included_role_id, w.depth + 1 FROM walk w JOIN um.role_inclusions ri ON ri.role_id = w.node
             WHERE w.node <> w.start AND w.depth < 10000)
          SELECT DISTINCT start AS id FROM walk WHERE node = start) c
  UNION ALL
  -- users: a suspension has its time
  SELECT 'suspension is recorded', format('user %s', u.id), 'status and suspended_at disagree'
    FROM um.users u
   WHERE (u.status = 'suspended') <> (u.suspended_at IS NOT NULL)
  UNION ALL
  -- sessions belong to users who may log in (um_begin refuses the others; they should be ended)
  SELECT 'sessions of blocked users are ended', format('session %s', s.id),
         format('user %s is %s, and the session is still open', s.user_id,
                CASE WHEN u.id IS NULL THEN 'missing' WHEN um_internal.suspended(u.status, u.suspended_until) THEN 'suspended'
                     ELSE 'not allowed to log in' END)
    FROM um.sessions s LEFT JOIN um.users u ON u.id = s.user_id
   WHERE s.revoked_at IS NULL AND s.expires_at > now()
     AND (u.id IS NULL OR um_internal.suspended(u.status, u.suspended_until) OR NOT u.allow_login)
  UNION ALL
  -- a mailbox or login secret outstanding for a user who may not log in (the
  -- trigger users_void_password_resets ends resets and email changes; a
  -- challenge's completion would be refused, but it should not be there);
  -- a notification-only user's address may change, not a suspended one's
  SELECT 'secrets of blocked users are void', format('%s of user %s', x.what, x.user_id),
         'the user is suspended or may not log in, and it is still outstanding'
    FROM (SELECT 'password reset' AS what, r.user_id, true AS login FROM um.password_resets r
          UNION ALL SELECT 'email change', c.user_id, false FROM um.email_changes c
          UNION ALL SELECT 'login challenge', l.user_id, true FROM um.login_challenges l WHERE l.expires_at > now()) x
    JOIN um.users u ON u.id = x.user_id
   WHERE um_internal.suspended(u.status, u.suspended_until) OR (x.login AND NOT u.allow_login)
  UNION ALL
  -- um's tables have what um.state_tables says: every one registered, row
  -- level security forced on those holding tenant data or secrets, the
  -- permission cache told of every change to what its answers depend on
  SELECT 'um table is registered', format('table um.%s', c.relname), 'not in um.state_tables: nothing protects or dumps it'
    FROM pg_catalog.pg_class c
   WHERE c.relnamespace = 'um'::regnamespace AND c.relkind IN ('r', 'p')
     AND NOT EXISTS (SELECT 1 FROM um.state_tables s WHERE s.relname = c.relname)
  UNION ALL
  SELECT 'um table keeps forced row-level security', format('table um.%s', s.relname),
         CASE WHEN c.oid IS NULL THEN 'the table is missing' ELSE 'row-level security is off or not forced' END
    FROM um.state_tables s
    LEFT JOIN pg_catalog.pg_class c ON c.relname = s.relname AND c.relnamespace = 'um'::regnamespace
   WHERE s.access <> 'catalog' AND NOT coalesce(c.relrowsecurity AND c.relforcerowsecurity, false)
  UNION ALL
  SELECT 'permission cache learns of every change', format('table um.%s', s.relname),
         format('trigger %s is missing, not enabled ALWAYS or not %s', x.tgname, x.what)
    FROM um.state_tables s
   CROSS JOIN (VALUES ('cache_invalidate', 'a row trigger with the table''s cache_key', 'R'),
                      ('cache_invalidate_truncate', 'a TRUNCATE trigger', 'T')) AS x(tgname, what, kind)
   WHERE s.evaluator_input
     AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
                      WHERE c.relnamespace = 'um'::regnamespace AND c.relname = s.relname
                        AND t.tgname = x.tgname AND t.tgenabled = 'A' AND (t.tgtype & 66) = 0
                        AND t.tgfoid = 'um_internal.cache_invalidate()'::pg_catalog.regprocedure
                        AND CASE x.kind
                              WHEN 'R' THEN (t.tgtype & 1) = 1 AND (t.tgtype & 28) = 28
                                            AND t.tgargs = CASE WHEN s.cache_key IS NULL THEN ''::bytea
                                                                ELSE pg_catalog.convert_to(s.cache_key, 'UTF8') || '\x00'::bytea END
                              ELSE (t.tgtype & 32) = 32 END)
  ORDER BY 1, 2
$$;

-- Second-factor failures are counted apart from passwords (review of the
-- MFA work: a right password must not clear them).
ALTER TABLE um.users
  ADD COLUMN mfa_failed_count integer NOT NULL DEFAULT 0 CONSTRAINT users_mfa_failed_count_check CHECK (mfa_failed_count >= 0),
  ADD COLUMN mfa_locked_until timestamptz;
COMMENT ON COLUMN um.users.mfa_failed_count IS 'wrong second-factor codes in a row (counted apart from passwords: a right password clears nothing of it); not readable by application roles';
COMMENT ON COLUMN um.users.mfa_locked_until IS 'second-factor codes are refused until then, after um.login_max_failures wrong ones; not readable by application roles';
-- Adding a factor: a recent authentication, and for a user who has a
-- factor already, a session that proved one (else a stolen level-1 session
-- could enrol its own factor and pass every proof with it).
CREATE FUNCTION um_internal.require_factor_proof(p_user bigint, p_action text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM um_internal.require_recent_authentication(p_action, 'adding a second factor');
  IF um_internal.current_assurance_level() = 1
     AND EXISTS (SELECT 1 FROM um.mfa_factors f WHERE f.user_id = p_user AND f.confirmed_at IS NOT NULL) THEN
    PERFORM um_internal.deny(p_action, NULL, 'user', p_user, 'UM093',
      'adding a second factor needs a session that proved an existing one',
      'The account has a factor already, and this session is at assurance level 1.',
      'Prove one first: um_reauthenticate(code => ...) with a current code or a recovery code, then enrol.');
  END IF;
END
$$;
COMMENT ON FUNCTION um_internal.require_factor_proof(bigint, text) IS
  'internal: refuses (UM093) adding a factor without a recent authentication, or, when the user has one, from a level-1 session';
REVOKE EXECUTE ON FUNCTION um_internal.require_factor_proof(bigint, text) FROM PUBLIC;

-- How long a lockout lasts, in the words of the hints ("15 minutes").
CREATE FUNCTION um_internal.lockout_words(p_seconds integer)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN CASE WHEN p_seconds % 60 = 0 THEN (p_seconds / 60) || ' minutes' ELSE p_seconds || ' seconds' END;
COMMENT ON FUNCTION um_internal.lockout_words(integer) IS 'internal: a lockout''s length as the hints say it (minutes when whole, else seconds)';

REVOKE EXECUTE ON FUNCTION um_internal.lockout_words(integer) FROM PUBLIC;

-- Last: tell every backend to empty its cache and look the message
-- addresses up again.  A backend that used the cache before this update
-- knows no buckets and would ignore their messages; an invalidation of the
-- sentinel (forcing row-level security it already forces rewrites its
-- pg_class row, which changes nothing else) makes it find them.
ALTER TABLE um.cache_sentinel FORCE ROW LEVEL SECURITY;
