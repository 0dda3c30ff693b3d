-- Account recovery: a forgotten password (um_request_password_reset,
-- um_reset_password, um_reset_password_and_login).
--
-- The backend asks for a reset with the address a person typed and mails
-- what it gets: a link token and a short code (for people whose mail
-- scanners follow links and would spend a link), both single use, stored
-- only as hashes, expiring after um.password_reset_lifetime.  One live
-- request per user: a new one replaces it, but not within
-- um.password_reset_interval of the last (the earlier mail still works).
-- An address that cannot log in with a password (unknown, suspended,
-- notification-only, not yet verified, in an organization that requires
-- single sign-on) gets the same-shaped answer with nothing to deliver, after
-- the same work, so the HTTP layer answers every address alike.
--
-- An account without a password (made by an administrator, or for single
-- sign-on in an organization that does not require it) gets its first one
-- this way: whoever reads the mailbox may log in, as a verification proves.
--
-- Redeeming the link, or the code with its address, sets the password, ends
-- every session, voids every other reset and verification secret of the
-- user and clears the lockout.  A wrong code counts twice, in a transaction
-- of its own (src/login.c), so no ROLLBACK forgets it: as a failed login (a
-- locked account takes no code) and against the request (after
-- um.login_max_failures wrong codes the code is spent, whatever the user's
-- own logins do to the account's counter); the link, 256 random bits, still
-- works.  Any other change of the password, the address, the status or the
-- right to log in voids an outstanding reset (a trigger).  Expiry is read
-- from the clock, not from the start of the transaction.  pg_dump leaves
-- the requests out: 8 digits hashed are searched in a second, so no dump
-- may carry them (a restore voids the requests outstanding).

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
  RETURN um_internal.new_session(v, 'user.login', 'reset');
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
