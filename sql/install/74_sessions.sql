-- Sessions and devices: what a session records, its lifetimes, and the
-- calls that list, end and refresh sessions (um_my_sessions, um_end_session,
-- um_end_other_sessions, um_refresh_session).
--
-- A session ends at expires_at (absolute: um.session_lifetime after it
-- began, never extended) or after idle_timeout seconds unused (the lesser
-- of um.session_idle_timeout and the organizations' session_idle_timeout);
-- the strictest organization of the user wins, at login and whenever an
-- organization tightens its limit (um_set_org_setting).  um_begin (C,
-- src/session.c) records use coarsely in um.session_activity: at most every
-- five minutes (a quarter of the idle timeout when that is shorter), never on
-- a hot standby or in a read-only transaction, and without waiting for a
-- lock; apart from the session's row, so that a request left open holds no
-- lock a logout or a revocation would wait for.
-- um_refresh_session rotates the token: the old one stops working, and
-- presented again (a copy somebody else holds), it ends the session.

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

-- um_internal.new_session: start a session for a user who just proved who
-- they are, by p_method (the column's words), for the lifetimes of
-- um_internal.session_limits, with what the backend said of its client, at
-- assurance level p_level.  A user with a confirmed second factor gets no
-- level-1 session: a challenge (umc_...) instead, for um_complete_login.
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
