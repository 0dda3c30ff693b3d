-- Lifecycle of organizations and their members and settings; then their
-- public declarations (identity providers, domains and links: 81).

-- ---------------------------------------------------------------------------
-- Organizations and members

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
COMMENT ON FUNCTION um_internal.do_set_org_setting(bigint, text, jsonb) IS
  'body of um_set_org_setting: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_set_org_setting (EXECUTE held by nobody)';

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
      CASE WHEN p_setting IN ('allow_invite_requests', 'password_login_disabled', 'require_mfa') THEN 'Pass true or false.'
           WHEN p_setting IN ('session_lifetime', 'session_idle_timeout') THEN 'Pass seconds (28800) or an interval in double quotes: ''"8 hours"''.'
           WHEN p_setting = 'name' THEN 'Pass a JSON string, in double quotes: ''"Acme Inc."''.'
           ELSE 'Pass a JSON value: a string in double quotes (''"dark"''), a number, true or false, an array or an object.' END);
  END;
  PERFORM um_internal.do_set_org_setting(p_org_id, p_setting, v_value);
END
$$;
COMMENT ON FUNCTION um_internal.do_set_org_setting(bigint, text, text) IS
  'body of um_set_org_setting with a text value: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_set_org_setting (EXECUTE held by nobody)';

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

-- ---------------------------------------------------------------------------
-- The public functions: each is src/lifecycle.c's entry point, which calls
-- um_internal.do_<name> with the calling role.  None is STRICT: a NULL argument gets
-- the error that names it.

CREATE FUNCTION @extschema@.um_create_organization(slug text, name text, root_user_id bigint)
RETURNS bigint AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_create_organization(text, text, bigint) IS
  'create an organization with its built-in roles, make root_user_id (yourself, when acting) its Root, and return its id';

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

CREATE FUNCTION @extschema@.um_add_member(org_id bigint, user_id bigint, role text DEFAULT 'member')
RETURNS bigint AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_add_member(bigint, bigint, text) IS
  'make an existing user a member with one organization role (member:create); returns the membership id';

CREATE FUNCTION @extschema@.um_set_org_role(org_id bigint, user_id bigint, role text)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_set_org_role(bigint, bigint, text) IS
  'change a member''s organization role (role:grant; never to a role with permissions you lack; a Root''s only by a Root)';

CREATE FUNCTION @extschema@.um_transfer_org_ownership(org_id bigint, new_root_user_id bigint,
                                                      demote_to text DEFAULT 'Admin')
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_transfer_org_ownership(bigint, bigint, text) IS
  'make a member Root and the calling Root (every Root, for a um administrator) demote_to, in one step';

CREATE FUNCTION @extschema@.um_remove_member(org_id bigint, user_id bigint)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_remove_member(bigint, bigint) IS
  'remove a member (member:remove; or leave, for yourself) with their team seats and grants; re-adding starts afresh';

CREATE FUNCTION @extschema@.um_set_org_setting(org_id bigint, setting text, value jsonb)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_set_org_setting(bigint, text, jsonb) IS
  'set name, allow_invite_requests, password_login_disabled, or an application setting (JSON null removes it); org:update';

CREATE FUNCTION @extschema@.um_set_org_setting(org_id bigint, setting text, value text)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_set_org_setting(bigint, text, text) IS
  'the same with the value as JSON text (what a string literal or a driver''s text parameter is): a value that is not JSON is refused with UM009 naming the type the setting takes';

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
COMMENT ON FUNCTION um_internal.do_my_organizations() IS
  'body of um_my_organizations: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_my_organizations (EXECUTE held by nobody)';

CREATE FUNCTION @extschema@.um_my_organizations(OUT org_id bigint, OUT slug text, OUT name text, OUT role text,
                                                OUT role_id bigint, OUT status text, OUT member_since timestamptz)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_my_organizations() IS
  'the acting user''s organizations (only the impersonated ones while impersonating), with their organization role and membership status, by slug';
