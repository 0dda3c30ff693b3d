-- Suspension: of the account (every organization), or of one membership,
-- for good or until a moment (um_suspend_user(..., until => ...)).  It keeps
-- everything and blocks all access; reactivation undoes exactly it.
--
-- A timed suspension ends by itself: from the first statement that starts
-- at its end, um_internal.suspended() and the C cache (src/scan.c,
-- um_scan_suspended) treat it as over, so checks, um_begin and logins need
-- no job to have run (the cache entry built on it is made again then: no
-- message announces the end).  The row keeps status 'suspended' with
-- suspended_until in the past until um_end_suspensions() (a scheduled job),
-- or the next suspension or reactivation of that user, records the end:
-- then it says 'active' again and the audit trail has user.reactivate with
-- details ->> 'ended' = 'scheduled'.

-- The end of the suspensions that ended by themselves, recorded and
-- audited; how many: of anybody (both NULL), of a user's account
-- (p_user_id), or of a user's membership of one organization (both given),
-- so that a call in one organization writes nothing into another's trail.
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
COMMENT ON FUNCTION um_internal.do_reactivate_user(bigint, bigint) IS
  'body of um_reactivate_user: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_reactivate_user (EXECUTE held by nobody)';

-- Housekeeping: record the timed suspensions that have ended.
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

-- ---------------------------------------------------------------------------
-- The public functions: each is src/lifecycle.c's entry point, which calls
-- um_internal.do_<name> with the calling role.  None is STRICT: a NULL argument gets
-- the error that names it.

CREATE FUNCTION @extschema@.um_suspend_user(user_id bigint, org_id bigint DEFAULT NULL, until timestamptz DEFAULT NULL)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_suspend_user(bigint, bigint, timestamptz) IS
  'suspend a user everywhere (org_id NULL) or in one organization, for good or until a moment (access returns by itself then): everything is kept, all access blocked';

CREATE FUNCTION @extschema@.um_reactivate_user(user_id bigint, org_id bigint DEFAULT NULL)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_reactivate_user(bigint, bigint) IS
  'undo a suspension (everywhere, or in one organization): exactly the previous access returns';

CREATE FUNCTION @extschema@.um_end_suspensions()
RETURNS integer AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_end_suspensions() IS
  'um administrators'' housekeeping: record the timed suspensions that have ended (they already grant access again) as over, audited; returns how many';
