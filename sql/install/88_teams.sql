-- Lifecycle of teams, their members and their roles; then their public
-- declarations.

-- ---------------------------------------------------------------------------
-- Teams: team:create/update/delete in the organization; members and their
-- team roles are managed by holders of team:manage or by the team's owner.

CREATE FUNCTION um.authorize_team(p_action text, p_what text, p_team_id bigint, p_target_id bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_team um.teams;
  v_org bigint;
  v_actor bigint;
BEGIN
  PERFORM um.assert_no_app_cascades();
  SELECT t.org_id INTO v_org FROM um.teams t WHERE t.id = p_team_id;
  v_actor := @extschema@.um_current_user_id(v_org);
  IF v_actor IS NOT NULL AND EXISTS (
       SELECT 1 FROM um.team_members tm JOIN um.memberships m ON m.org_id = tm.org_id AND m.user_id = tm.user_id
         JOIN um.users u ON u.id = m.user_id
        WHERE tm.team_id = p_team_id AND tm.user_id = v_actor AND tm.is_owner
          AND m.status = 'active' AND u.status = 'active' AND u.allow_login) THEN
    RETURN v_actor;                                  -- the team's owner
  END IF;
  v_actor := um.authorize(p_action, p_what, 'team:manage', v_org, 'user', p_target_id);
  v_team := um.require_team(p_team_id);
  RETURN v_actor;
END
$$;
COMMENT ON FUNCTION um.authorize_team(text, text, bigint, bigint) IS
  'internal: authorization for managing a team''s members: the team''s owner may, else team:manage in the organization (um.authorize)';

-- Joining a team gives the roles the team holds (its grants); nobody adds a
-- member to a team whose grants hold permissions they lack there.
CREATE FUNCTION um.guard_team_grants(p_actor bigint, p_team_id bigint, p_action text, p_target_id bigint)
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
    PERFORM um.guard_escalation(p_actor, g.org_id, g.scope_id, ARRAY(SELECT um.role_grants(g.role_id)),
                                p_action, format('add a member to a team that holds role "%s"', g.name), 'user', p_target_id);
  END LOOP;
END
$$;
COMMENT ON FUNCTION um.guard_team_grants(bigint, bigint, text, bigint) IS
  'internal: nobody adds a member to a team whose grants hold permissions they lack there (joining gives the team''s roles)';

-- Insert a team (p_team_id NULL) or rename one, or say that the name is
-- taken.  Not ON CONFLICT: a new team's insert trigger first creates its
-- team space, a scope node named as the team, and that insert fails for a
-- name taken (by another team's space, also one a renamed team kept)
-- before the team's own arbiter is consulted; and an UPDATE has none.  A
-- name taken at this very moment fails in a unique index too.
CREATE FUNCTION um.write_team(p_org_id bigint, p_team_id bigint, p_name text, p_description text)
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
COMMENT ON FUNCTION um.write_team(bigint, bigint, text, text) IS 'internal: creates a team (no id) or renames one, raising UM025 when the organization already has a team of that name';

CREATE FUNCTION um.do_create_team(p_org_id bigint, p_name text, p_description text, p_owner_user_id bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um.authorize('team.create', format('create teams in organization %s', p_org_id),
                                 'team:create', p_org_id, 'team', NULL);
  v_owner bigint := coalesce(p_owner_user_id, v_actor);
  v_member um.memberships;
  v_id bigint;
BEGIN
  IF v_owner IS NULL THEN
    PERFORM um.raise('UM009', 'a team needs an owner', NULL, 'Pass owner_user_id, a member of the organization.');
  END IF;
  v_member := um.require_member(p_org_id, v_owner);
  IF v_member.status <> 'active' THEN
    RAISE EXCEPTION 'user % cannot own a team', v_owner
      USING ERRCODE = 'UM050', DETAIL = 'The membership is suspended.', HINT = 'Choose an active member.';
  END IF;
  v_id := um.write_team(p_org_id, NULL, p_name, p_description);
  INSERT INTO um.team_members (org_id, team_id, user_id, is_owner) VALUES (p_org_id, v_id, v_owner, true);
  PERFORM um.audit('team.create', p_org_id, 'team', v_id, jsonb_build_object('owner_user_id', v_owner));
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION um.do_create_team(bigint, text, text, bigint) IS
  'body of um_create_team: runs as um''s owner, the calling role named by um.caller_role(); called only through um_create_team (EXECUTE held by nobody)';

CREATE FUNCTION um.do_rename_team(p_team_id bigint, p_name text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_team um.teams;
BEGIN
  SELECT * INTO v_team FROM um.teams t WHERE t.id = p_team_id;
  PERFORM um.authorize('team.rename', format('rename team %s', p_team_id), 'team:update',
                       v_team.org_id, 'team', p_team_id);
  v_team := um.require_team(p_team_id);
  PERFORM um.write_team(v_team.org_id, p_team_id, p_name, NULL);
  PERFORM um.audit('team.rename', v_team.org_id, 'team', p_team_id, '{}');
END
$$;
COMMENT ON FUNCTION um.do_rename_team(bigint, text) IS
  'body of um_rename_team: runs as um''s owner, the calling role named by um.caller_role(); called only through um_rename_team (EXECUTE held by nobody)';

CREATE FUNCTION um.do_delete_team(p_team_id bigint)
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
  v_actor := um.authorize('team.delete', format('delete team %s', p_team_id), 'team:delete',
                          v_team.org_id, 'team', p_team_id);
  v_team := um.require_team(p_team_id);
  -- a Root's team is deleted only by a Root
  SELECT tm.user_id INTO v_owner FROM um.team_members tm WHERE tm.team_id = p_team_id AND tm.is_owner;
  IF v_owner IS NOT NULL THEN
    PERFORM um.guard_root_target(v_actor, v_team.org_id, v_owner, 'team.delete', 'delete the team of');
  END IF;
  DELETE FROM um.teams t WHERE t.id = p_team_id;      -- its members, their team roles, its space and grants
  PERFORM um.audit('team.delete', v_team.org_id, 'team', p_team_id, '{}');
END
$$;
COMMENT ON FUNCTION um.do_delete_team(bigint) IS
  'body of um_delete_team: runs as um''s owner, the calling role named by um.caller_role(); called only through um_delete_team (EXECUTE held by nobody)';

CREATE FUNCTION um.do_add_team_member(p_team_id bigint, p_user_id bigint, p_roles text[])
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um.authorize_team('team.add_member', format('add members to team %s', p_team_id),
                                      p_team_id, p_user_id);
  v_team um.teams := um.require_team(p_team_id);
  v_role um.roles;
  v_name text;
BEGIN
  -- the membership, locked against a concurrent removal or deletion
  PERFORM 1 FROM um.memberships m WHERE m.org_id = v_team.org_id AND m.user_id = p_user_id FOR KEY SHARE;
  IF NOT FOUND THEN
    PERFORM um.require_member(v_team.org_id, p_user_id);
  END IF;
  IF EXISTS (SELECT 1 FROM um.team_members tm WHERE tm.team_id = p_team_id AND tm.user_id = p_user_id) THEN
    RAISE EXCEPTION 'user % is already a member of team "%"', p_user_id, v_team.name
      USING ERRCODE = 'UM024', HINT = 'Give them team roles with um_grant_team_role().';
  END IF;
  PERFORM um.guard_team_grants(v_actor, p_team_id, 'team.add_member', p_user_id);
  INSERT INTO um.team_members (org_id, team_id, user_id) VALUES (v_team.org_id, p_team_id, p_user_id);
  FOREACH v_name IN ARRAY coalesce(p_roles, '{}') LOOP
    v_role := um.require_role(v_team.org_id, v_name);
    PERFORM um.guard_escalation(v_actor, v_team.org_id, v_team.scope_id, ARRAY(SELECT um.role_grants(v_role.id)),
                                'team.add_member', format('give team role "%s"', v_role.name), 'user', p_user_id);
    INSERT INTO um.team_member_roles (org_id, team_id, user_id, role_id)
    VALUES (v_team.org_id, p_team_id, p_user_id, v_role.id) ON CONFLICT DO NOTHING;
  END LOOP;
  PERFORM um.audit('team.add_member', v_team.org_id, 'user', p_user_id,
                   jsonb_build_object('team_id', p_team_id,
                                      'role_ids', (SELECT coalesce(jsonb_agg(r.role_id ORDER BY r.role_id), '[]')
                                                     FROM um.team_member_roles r
                                                    WHERE r.team_id = p_team_id AND r.user_id = p_user_id)));
END
$$;
COMMENT ON FUNCTION um.do_add_team_member(bigint, bigint, text[]) IS
  'body of um_add_team_member: runs as um''s owner, the calling role named by um.caller_role(); called only through um_add_team_member (EXECUTE held by nobody)';

CREATE FUNCTION um.do_remove_team_member(p_team_id bigint, p_user_id bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint;
  v_team um.teams;
BEGIN
  v_actor := um.authorize_team('team.remove_member', format('remove members of team %s', p_team_id),
                               p_team_id, p_user_id);
  v_team := um.require_team(p_team_id);
  PERFORM um.guard_root_target(v_actor, v_team.org_id, p_user_id, 'team.remove_member', 'remove from a team');
  PERFORM um.require_team_member(v_team, p_user_id, 'See the team''s members in um.team_members.');
  PERFORM um.assert_not_team_owner(v_team.org_id, p_team_id, p_user_id);
  DELETE FROM um.team_members tm WHERE tm.team_id = p_team_id AND tm.user_id = p_user_id;
  PERFORM um.audit('team.remove_member', v_team.org_id, 'user', p_user_id, jsonb_build_object('team_id', p_team_id));
END
$$;
COMMENT ON FUNCTION um.do_remove_team_member(bigint, bigint) IS
  'body of um_remove_team_member: runs as um''s owner, the calling role named by um.caller_role(); called only through um_remove_team_member (EXECUTE held by nobody)';

CREATE FUNCTION um.do_grant_team_role(p_team_id bigint, p_user_id bigint, p_role text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um.authorize_team('team.grant_role', format('give roles in team %s', p_team_id),
                                      p_team_id, p_user_id);
  v_team um.teams := um.require_team(p_team_id);
  v_role um.roles := um.require_role(v_team.org_id, p_role);
BEGIN
  PERFORM um.require_team_member(v_team, p_user_id, 'Add them to the team first (um_add_team_member).');
  PERFORM um.guard_escalation(v_actor, v_team.org_id, v_team.scope_id, ARRAY(SELECT um.role_grants(v_role.id)),
                              'team.grant_role', format('give team role "%s"', v_role.name), 'user', p_user_id);
  INSERT INTO um.team_member_roles (org_id, team_id, user_id, role_id)
  VALUES (v_team.org_id, p_team_id, p_user_id, v_role.id) ON CONFLICT DO NOTHING;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  PERFORM um.audit('team.grant_role', v_team.org_id, 'user', p_user_id,
                   jsonb_build_object('team_id', p_team_id, 'role_id', v_role.id));
  RETURN true;
END
$$;
COMMENT ON FUNCTION um.do_grant_team_role(bigint, bigint, text) IS
  'body of um_grant_team_role: runs as um''s owner, the calling role named by um.caller_role(); called only through um_grant_team_role (EXECUTE held by nobody)';

CREATE FUNCTION um.do_revoke_team_role(p_team_id bigint, p_user_id bigint, p_role text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint;
  v_team um.teams;
  v_role um.roles;
BEGIN
  v_actor := um.authorize_team('team.revoke_role', format('take roles in team %s', p_team_id),
                               p_team_id, p_user_id);
  v_team := um.require_team(p_team_id);
  PERFORM um.guard_root_target(v_actor, v_team.org_id, p_user_id, 'team.revoke_role', 'take team roles from');
  v_role := um.require_role(v_team.org_id, p_role);
  DELETE FROM um.team_member_roles r
   WHERE r.team_id = p_team_id AND r.user_id = p_user_id AND r.role_id = v_role.id;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  PERFORM um.audit('team.revoke_role', v_team.org_id, 'user', p_user_id,
                   jsonb_build_object('team_id', p_team_id, 'role_id', v_role.id));
  RETURN true;
END
$$;
COMMENT ON FUNCTION um.do_revoke_team_role(bigint, bigint, text) IS
  'body of um_revoke_team_role: runs as um''s owner, the calling role named by um.caller_role(); called only through um_revoke_team_role (EXECUTE held by nobody)';

CREATE FUNCTION um.do_transfer_team_ownership(p_team_id bigint, p_new_owner_user_id bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint;
  v_owner bigint;
  v_team um.teams;
BEGIN
  v_actor := um.authorize_team('team.transfer', format('transfer team %s', p_team_id),
                               p_team_id, p_new_owner_user_id);
  v_team := um.require_team(p_team_id);
  -- the owner loses the team: only a Root takes a team from a Root
  SELECT tm.user_id INTO v_owner FROM um.team_members tm WHERE tm.team_id = p_team_id AND tm.is_owner;
  IF v_owner IS NOT NULL THEN
    PERFORM um.guard_root_target(v_actor, v_team.org_id, v_owner, 'team.transfer', 'take a team from');
  END IF;
  PERFORM um.require_team_member(v_team, p_new_owner_user_id, 'Add them to the team first (um_add_team_member).');
  -- one statement: the team always has exactly one owner
  UPDATE um.team_members tm SET is_owner = (tm.user_id = p_new_owner_user_id)
   WHERE tm.team_id = p_team_id AND (tm.is_owner OR tm.user_id = p_new_owner_user_id);
  PERFORM um.audit('team.transfer', v_team.org_id, 'user', p_new_owner_user_id, jsonb_build_object('team_id', p_team_id));
END
$$;
COMMENT ON FUNCTION um.do_transfer_team_ownership(bigint, bigint) IS
  'body of um_transfer_team_ownership: runs as um''s owner, the calling role named by um.caller_role(); called only through um_transfer_team_ownership (EXECUTE held by nobody)';

-- ---------------------------------------------------------------------------
-- The public functions: each is src/lifecycle.c's entry point, which calls
-- um.do_<name> with the calling role.  None is STRICT: a NULL argument gets
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
