-- Lifecycle of teams, their members and their roles, and of scope nodes;
-- then their public declarations.

-- ---------------------------------------------------------------------------
-- Teams: team:create/update/delete in the organization; members and their
-- team roles are managed by holders of team:manage or by the team's owner.

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

-- Joining a team gives the roles the team holds (its grants); nobody adds a
-- member to a team whose grants hold permissions they lack there.
CREATE FUNCTION um_internal.guard_team_grants(p_actor bigint, p_team_id bigint, p_action text, p_target_id bigint)
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
COMMENT ON FUNCTION um_internal.guard_team_grants(bigint, bigint, text, bigint) IS
  'internal: nobody adds a member to a team whose grants hold permissions they lack there (joining gives the team''s roles)';

-- Insert a team (p_team_id NULL) or rename one, or say that the name is
-- taken.  Not ON CONFLICT: a new team's insert trigger first creates its
-- team space, a scope node named as the team, and that insert fails for a
-- name taken (by another team's space, also one a renamed team kept)
-- before the team's own arbiter is consulted; and an UPDATE has none.  A
-- name taken at this very moment fails in a unique index too.
CREATE FUNCTION um_internal.write_team(p_org_id bigint, p_team_id bigint, p_name text, p_description text)
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
COMMENT ON FUNCTION um_internal.write_team(bigint, bigint, text, text) IS 'internal: creates a team (no id) or renames one, raising UM025 when the organization already has a team of that name';

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

-- ---------------------------------------------------------------------------
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

-- ---------------------------------------------------------------------------
-- The public functions: each is src/lifecycle.c's entry point, which calls
-- um_internal.do_<name> with the calling role.  None is STRICT: a NULL argument gets
-- the error that names it.

CREATE FUNCTION @extschema@.um_create_team(org_id bigint, name text, description text DEFAULT NULL,
                                           owner_user_id bigint DEFAULT NULL)
RETURNS bigint AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_create_team(bigint, text, text, bigint) IS
  'create a team with its team space; its owner is owner_user_id or yourself (team:create)';

CREATE FUNCTION @extschema@.um_rename_team(team_id bigint, name text)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_rename_team(bigint, text) IS 'rename a team (team:update)';

CREATE FUNCTION @extschema@.um_delete_team(team_id bigint)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_delete_team(bigint) IS 'delete a team with its seats, team roles, team space and its grants (team:delete)';

CREATE FUNCTION @extschema@.um_add_team_member(team_id bigint, user_id bigint, roles text[] DEFAULT '{}')
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_add_team_member(bigint, bigint, text[]) IS
  'add a member of the organization to a team, with team roles (team:manage, or the team''s owner)';

CREATE FUNCTION @extschema@.um_remove_team_member(team_id bigint, user_id bigint)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_remove_team_member(bigint, bigint) IS
  'take a member off a team (never its owner: transfer ownership first)';

CREATE FUNCTION @extschema@.um_grant_team_role(team_id bigint, user_id bigint, role text)
RETURNS boolean AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_grant_team_role(bigint, bigint, text) IS
  'give a team member a role within the team; false when they had it';

CREATE FUNCTION @extschema@.um_revoke_team_role(team_id bigint, user_id bigint, role text)
RETURNS boolean AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_revoke_team_role(bigint, bigint, text) IS
  'take a role within the team from a member; false when they did not have it';

CREATE FUNCTION @extschema@.um_transfer_team_ownership(team_id bigint, new_owner_user_id bigint)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_transfer_team_ownership(bigint, bigint) IS
  'make another team member the owner (the owner, or team:manage)';

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
