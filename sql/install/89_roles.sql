-- Lifecycle of roles, their permissions, scope grants and the permission
-- catalog; then their public declarations.

-- ---------------------------------------------------------------------------
-- Roles and grants

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

-- A role that includes another grants what the other grants: whoever holds
-- the first gets the second's permissions, so the actor must hold them all.
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

-- A grant on a scope node is for a member or for a team.
CREATE FUNCTION um_internal.assert_one_grantee(p_user_id bigint, p_team_id bigint)
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
COMMENT ON FUNCTION um_internal.assert_one_grantee(bigint, bigint) IS 'internal: refuses (UM009) a grant that names both or neither of a user and a team';

-- A role on one scope node (and what inherits from it), for a member or a team.
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

-- ---------------------------------------------------------------------------
-- The public functions: each is src/lifecycle.c's entry point, which calls
-- um_internal.do_<name> with the calling role.  None is STRICT: a NULL argument gets
-- the error that names it.

CREATE FUNCTION @extschema@.um_create_role(org_id bigint, name text, permissions text[] DEFAULT '{}',
                                           description text DEFAULT NULL)
RETURNS bigint AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_create_role(bigint, text, text[], text) IS
  'create a custom role with permissions or patterns you hold yourself (role:create)';

CREATE FUNCTION @extschema@.um_delete_role(role_id bigint)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_delete_role(bigint) IS
  'delete a custom role no member holds as organization role (role:delete)';

CREATE FUNCTION @extschema@.um_grant_permission(role_id bigint, permission text)
RETURNS boolean AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_grant_permission(bigint, text) IS
  'add a permission or pattern you hold to a role, built-in roles too (role:update; the Root role only by a Root)';

CREATE FUNCTION @extschema@.um_revoke_permission(role_id bigint, permission text)
RETURNS boolean AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_revoke_permission(bigint, text) IS
  'take a permission or pattern from a role (role:update; the Root role only by a Root)';

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

CREATE FUNCTION @extschema@.um_grant_scope_role(scope_id bigint, role text, user_id bigint DEFAULT NULL,
                                                team_id bigint DEFAULT NULL)
RETURNS bigint AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_grant_scope_role(bigint, text, bigint, bigint) IS
  'give a member or a team a role on a scope node and what inherits from it (role:grant; only permissions you hold there); returns the grant id';

CREATE FUNCTION @extschema@.um_revoke_scope_role(scope_id bigint, role text, user_id bigint DEFAULT NULL,
                                                 team_id bigint DEFAULT NULL)
RETURNS boolean AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_revoke_scope_role(bigint, text, bigint, bigint) IS
  'take back a role given on a scope node; false when there was no such grant';

CREATE FUNCTION @extschema@.um_register_permission(permission text, description text DEFAULT NULL,
                                                   roles text[] DEFAULT NULL)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_register_permission(text, text, text[]) IS
  'um administrators: add an application permission ("resource:action") to the catalog and give it to the built-in roles whose keys are listed, in every organization; idempotent';
