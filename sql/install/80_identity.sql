-- Identity: login, sessions, the acting user and impersonation
-- (src/identity.c, src/session.c, src/autonomous.c).
--
-- Who may call what:
--   um_login, um_change_password, um_begin, um_logout     everyone (PUBLIC):
--       they demand a password or a token
--   um_impersonate, um_end_impersonation, um_logout_all   everyone, checked
--       against the acting user's permissions
--   um_act_as, um_set_password                            only roles the DBA
--       grants them (EXECUTE revoked from PUBLIC)
--   um_internal.*                                         internal: EXECUTE is
--       revoked from PUBLIC (94_own_rls.sql)

-- ---------------------------------------------------------------------------
-- C primitives

CREATE FUNCTION um_internal.generate_token()
RETURNS text
AS 'MODULE_PATHNAME', 'um_generate_token'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION um_internal.generate_token() IS 'a fresh token: "um_" and 256 bits from pg_strong_random() in base64url';

CREATE FUNCTION um_internal.token_hash(p_token text)
RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN pg_catalog.sha256(pg_catalog.convert_to(p_token, 'UTF8'));
COMMENT ON FUNCTION um_internal.token_hash(text) IS 'what um.sessions stores instead of a token (um_begin''s lookup uses it too)';

CREATE FUNCTION um_internal.audit_autonomous(p_action text, p_outcome text, p_org_id bigint,
                                    p_target_type text, p_target_id bigint, p_details jsonb)
RETURNS void
AS 'MODULE_PATHNAME', 'um_audit_autonomous'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION um_internal.audit_autonomous(text, text, bigint, text, bigint, jsonb) IS
  'commit an audit event in a transaction of its own (a background worker), which survives the caller''s error';

CREATE FUNCTION um_internal.record_login(p_user_id bigint, p_action text, p_result text, p_reason text,
                                OUT was_locked boolean, OUT failed_logins integer, OUT locked boolean)
RETURNS record
AS 'MODULE_PATHNAME', 'um_record_login'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION um_internal.record_login(bigint, text, text, text) IS
  'commit a login attempt (result unknown_email, wrong, refused or success) in a transaction of its own: count, lock, reset, audit; says whether the account was locked at the attempt';

CREATE FUNCTION um_internal.login_settings(OUT max_failures integer, OUT lockout_seconds integer,
                                  OUT session_lifetime_seconds integer, OUT password_hash_cost integer)
RETURNS record
AS 'MODULE_PATHNAME', 'um_login_settings'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION um_internal.login_settings() IS 'um.login_max_failures, um.login_lockout, um.session_lifetime and um.password_hash_cost, read by the module that defines them';

CREATE FUNCTION um_internal.start_impersonation(p_target bigint, p_orgs bigint[])
RETURNS void
AS 'MODULE_PATHNAME', 'um_start_impersonation'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION um_internal.start_impersonation(bigint, bigint[]) IS 'internal to um_impersonate(), which checks first';

CREATE FUNCTION @extschema@.um_begin(token text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'um_begin'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_begin(text) IS
  'make the session token''s user the acting user until the end of the current transaction; returns the user id';

CREATE FUNCTION @extschema@.um_current_user_id(org_id bigint)
RETURNS bigint
AS 'MODULE_PATHNAME', 'um_current_user_id_in'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.um_current_user_id(bigint) IS
  'the acting user for rows of this organization: NULL while impersonating someone outside the organizations the impersonation is for; for owner_id = um_current_user_id(org_id) policies';

CREATE FUNCTION @extschema@.um_real_user_id()
RETURNS bigint
AS 'MODULE_PATHNAME', 'um_real_user_id'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.um_real_user_id() IS
  'the person really acting: the impersonator while impersonating, else the acting user; NULL when nobody is acting';

CREATE FUNCTION @extschema@.um_end_impersonation()
RETURNS boolean
AS 'MODULE_PATHNAME', 'um_end_impersonation'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_end_impersonation() IS
  'act as oneself again; returns whether an impersonation ended';

CREATE FUNCTION @extschema@.um_impersonated_orgs()
RETURNS bigint[]
AS 'MODULE_PATHNAME', 'um_impersonated_orgs'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.um_impersonated_orgs() IS
  'the organizations the current impersonation applies to; NULL when not impersonating';

-- ---------------------------------------------------------------------------
-- Passwords: bcrypt from pgcrypto (a required extension).  bcrypt is salted
-- and slow by design, with a cost that can grow with hardware
-- (um.password_hash_cost); pgcrypto ships with PostgreSQL, so nothing
-- outside the server is trusted with passwords.  bcrypt reads at most 72
-- bytes, so longer passwords are refused rather than silently cut.
-- pgcrypto may live in any schema; PostgreSQL 15 cannot name it in an
-- install script, so its schema is looked up when a hash is computed.

CREATE FUNCTION um_internal.pgcrypto_schema()
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v text;
BEGIN
  SELECT n.nspname INTO v
    FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
   WHERE e.extname = 'pgcrypto';
  IF v IS NULL THEN
    RAISE EXCEPTION 'extension "pgcrypto" is not installed'
      USING ERRCODE = 'UM069', HINT = 'um hashes passwords with pgcrypto: CREATE EXTENSION pgcrypto.';
  END IF;
  RETURN v;
END
$$;
COMMENT ON FUNCTION um_internal.pgcrypto_schema() IS 'internal: the schema pgcrypto is installed in (um hashes passwords with it), or UM069';

CREATE FUNCTION um_internal.hash_password(p_password text)
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
COMMENT ON FUNCTION um_internal.hash_password(text) IS 'internal: a bcrypt hash of an acceptable password (8 characters to 72 bytes, else UM068) at cost um.password_hash_cost';

-- Does the password match the hash?  With no hash (an unknown user, or one
-- who signs in only through an identity provider) it still spends the time
-- of a hash, so timing does not tell which emails exist.
CREATE FUNCTION um_internal.password_matches(p_password text, p_hash text)
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
COMMENT ON FUNCTION um_internal.password_matches(text, text) IS 'internal: does the password match the bcrypt hash? Without a hash it still spends a hash''s time, so timing does not tell which emails exist';

-- um_internal.hash_cost: the bcrypt cost a hash was made with ($2a$NN$...); 0 when
-- it is not a bcrypt hash.
CREATE FUNCTION um_internal.hash_cost(p_hash text)
RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN CASE WHEN p_hash ~ '^\$2[abxy]?\$[0-9][0-9]\$' THEN substr(p_hash, 5, 2)::integer ELSE 0 END;
COMMENT ON FUNCTION um_internal.hash_cost(text) IS 'internal: the bcrypt cost a hash was made with; 0 when it is not a bcrypt hash';

-- ---------------------------------------------------------------------------
-- Audit events name who acted: with an acting user, the actor columns are
-- always the identity module's (the target and the impersonator while
-- impersonating), whatever the insert said.  Without one (psql
-- administration, a restore, the audit writer, which passes the caller's)
-- they are kept as inserted.
CREATE FUNCTION um_internal.audit_events_stamp()
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
COMMENT ON FUNCTION um_internal.audit_events_stamp() IS 'trigger on um.audit_events: fills in the acting user, the impersonator and the calling database role, whatever the insert said, when someone is acting';
CREATE TRIGGER audit_events_stamp BEFORE INSERT ON um.audit_events
  FOR EACH ROW EXECUTE FUNCTION um_internal.audit_events_stamp();

-- A password change, a suspension or the loss of login ends the user's
-- sessions (um_begin also checks the user's state on every call).
CREATE FUNCTION um_internal.users_end_sessions()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  UPDATE um.sessions s
     SET revoked_at = now(),
         revoked_reason = CASE WHEN NEW.status <> 'active' AND OLD.status = 'active' THEN 'ended by a suspension'
                               WHEN OLD.allow_login AND NOT NEW.allow_login THEN 'ended by the loss of login'
                               ELSE 'ended by a password change' END
   WHERE s.user_id = NEW.id AND s.revoked_at IS NULL;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION um_internal.users_end_sessions() IS 'trigger on um.users: a password change, a suspension or the loss of login revokes the user''s open sessions';
-- (A login that re-hashes the same password at today's higher cost, leaving
-- password_changed_at as it was, is no password change.)
CREATE TRIGGER users_end_sessions AFTER UPDATE OF password_hash, status, allow_login ON um.users
  FOR EACH ROW
  WHEN ((OLD.password_hash IS DISTINCT FROM NEW.password_hash
         AND NOT (OLD.password_changed_at IS NOT DISTINCT FROM NEW.password_changed_at
                  AND um_internal.hash_cost(NEW.password_hash) > um_internal.hash_cost(OLD.password_hash)))
        OR (OLD.status = 'active' AND NEW.status <> 'active')
        OR (OLD.allow_login AND NOT NEW.allow_login))
  EXECUTE FUNCTION um_internal.users_end_sessions();

-- ---------------------------------------------------------------------------
-- Login

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
  reason := CASE WHEN um_internal.suspended(p_user.status, p_user.suspended_until) THEN 'suspended'
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

-- How long a lockout lasts, in the words of the hints ("15 minutes").
CREATE FUNCTION um_internal.lockout_words(p_seconds integer)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN CASE WHEN p_seconds % 60 = 0 THEN (p_seconds / 60) || ' minutes' ELSE p_seconds || ' seconds' END;
COMMENT ON FUNCTION um_internal.lockout_words(integer) IS 'internal: a lockout''s length as the hints say it (minutes when whole, else seconds)';

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
CREATE FUNCTION um_internal.authenticate(p_email text, p_password text, p_changing_password boolean)
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
COMMENT ON FUNCTION um_internal.authenticate(text, text, boolean) IS 'internal: the checks of um_login and um_change_password (bcrypt, lockout, state), in an order that tells a stranger nothing; returns the user or raises (UM060 for an unknown email, a wrong password or a locked account)';


-- The public functions below are src/lifecycle.c's entry point, with the
-- caller's rights; each calls its body um_internal.do_<name>(the same arguments...,
-- calling role), which runs as um's owner and which nobody else may call.

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

CREATE FUNCTION @extschema@.um_login(email text, password text)
RETURNS text AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_login(text, text) IS
  'check an email and password and return a new session token for um_begin(); refusals raise UM060-UM065 (UM069 when the attempt cannot be recorded) and are audited';

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

CREATE FUNCTION @extschema@.um_change_password(email text, old_password text, new_password text)
RETURNS text AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_change_password(text, text, text) IS
  'change a password (also a temporary one that must be changed), end the user''s other sessions, and return a new session token';

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

CREATE FUNCTION @extschema@.um_set_password(user_id bigint, password text, must_change boolean DEFAULT true)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_set_password(bigint, text, boolean) IS
  'administrators: set a user''s password (by default a temporary one to be changed at the next login) and unlock the account';

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

CREATE FUNCTION @extschema@.um_logout(token text)
RETURNS boolean AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_logout(text) IS
  'end the session of this token; returns false when it was not live';

-- um_internal.deny: audit a refused call and raise the permission error.  With an
-- acting user the audit event is committed by the audit writer, whatever
-- happens next; without one (nobody logged in) the refusal goes to the
-- server log instead, so that unauthenticated callers cannot occupy
-- background workers or grow the audit trail.  It runs inside a lifecycle
-- body, whose caller um_internal.caller_role() names.
CREATE FUNCTION um_internal.deny(p_action text, p_org_id bigint, p_target_type text, p_target_id bigint,
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
COMMENT ON FUNCTION um_internal.deny(text, bigint, text, bigint, text, text, text, text) IS 'internal: audits a refused call (committed even though the call fails; the server log when nobody is acting) and raises the error';

-- ---------------------------------------------------------------------------
-- Impersonation

-- Does the target hold anything in the organization that the impersonator
-- lacks (organization-wide or on any scope node)?  Then impersonating would
-- be an escalation.  One pass over the cache's bitmaps (src/guards.c).
CREATE FUNCTION um_internal.impersonation_escalates(p_impersonator bigint, p_target bigint, p_org_id bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'um_impersonation_escalates'
LANGUAGE C STABLE;
COMMENT ON FUNCTION um_internal.impersonation_escalates(bigint, bigint, bigint) IS 'internal: does the target hold anything in the organization that the impersonator lacks? Then impersonating would be an escalation';

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
COMMENT ON FUNCTION um_internal.do_impersonate(bigint) IS
  'body of um_impersonate: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_impersonate (EXECUTE held by nobody)';

CREATE FUNCTION @extschema@.um_impersonate(target_user_id bigint)
RETURNS bigint[] AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_impersonate(bigint) IS
  'act as another (non-admin) member until the transaction ends or um_end_impersonation(); returns the organizations it applies to';

REVOKE EXECUTE ON FUNCTION
  um_internal.generate_token(),
  um_internal.token_hash(text),
  um_internal.audit_autonomous(text, text, bigint, text, bigint, jsonb),
  um_internal.record_login(bigint, text, text, text),
  um_internal.login_settings(),
  um_internal.start_impersonation(bigint, bigint[]),
  um_internal.pgcrypto_schema(),
  um_internal.hash_password(text),
  um_internal.password_matches(text, text),
  um_internal.authenticate(text, text, boolean),
  um_internal.new_session(um.users, text, text, smallint),
  um_internal.deny(text, bigint, text, bigint, text, text, text, text),
  um_internal.impersonation_escalates(bigint, bigint, bigint),
  @extschema@.um_set_password(bigint, text, boolean)
FROM PUBLIC;
