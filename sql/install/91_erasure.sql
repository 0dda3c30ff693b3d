-- Account deletion (GDPR erasure) and the end of another user's sessions;
-- then their public declarations.

-- ---------------------------------------------------------------------------
-- Deletion (GDPR erasure)

-- What stops a user's deletion, if anything: the first blocker as
-- (kind, what, detail).
CREATE FUNCTION um_internal.deletion_blocker(p_user_id bigint, OUT kind text, OUT what text, OUT detail text)
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
COMMENT ON FUNCTION um_internal.deletion_blocker(bigint) IS
  'internal: what stops the user''s deletion (the only Root who can log in of an organization with other members, the owner of a team with other members) as (kind, what, detail); NULLs when nothing does';

CREATE FUNCTION um_internal.erase_user(p_user_id bigint, p_action text)
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
COMMENT ON FUNCTION um_internal.erase_user(bigint, text) IS
  'internal: deletes a user with everything that is theirs (memberships, team seats, grants, sessions, links, tokens, invitations to the address) and audits it; refuses (UM052) while um_internal.deletion_blocker names something';

CREATE FUNCTION um_internal.do_delete_user(p_user_id bigint)
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
  PERFORM um_internal.require_recent_authentication('user.delete_self', 'deleting your account');
  PERFORM um_internal.erase_user(v_actor, 'user.delete_self');
END
$$;
COMMENT ON FUNCTION um_internal.do_delete_my_account() IS
  'body of um_delete_my_account: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_delete_my_account (EXECUTE held by nobody)';

-- ---------------------------------------------------------------------------
-- Sessions of another user

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

-- ---------------------------------------------------------------------------
-- The public functions: each is src/lifecycle.c's entry point, which calls
-- um_internal.do_<name> with the calling role.  None is STRICT: a NULL argument gets
-- the error that names it.

CREATE FUNCTION @extschema@.um_delete_user(user_id bigint)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_delete_user(bigint) IS
  'erase a user (GDPR): every personal field in um goes, audit events keep ids; refused while they are a sole Root or team owner with others, or application rows reference them';

CREATE FUNCTION @extschema@.um_delete_my_account()
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_delete_my_account() IS 'the acting user erases their own account, under the rules of um_delete_user';

CREATE FUNCTION @extschema@.um_logout_all(user_id bigint)
RETURNS integer AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_logout_all(bigint) IS
  'end every session of a user (the user themself, a holder of user:suspend in an organization of theirs, or a um administrator); returns how many';
