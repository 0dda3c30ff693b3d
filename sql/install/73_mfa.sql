-- Second factors, first part (issue 17, item 5): TOTP factors (enrol with a
-- secret and an otpauth URI, confirm with a first code), single-use
-- recovery codes, listing and removing factors.  Proving a factor is
-- counted like a password (src/login.c: a wrong code is a failed login, the
-- Nth in a row locks the account), a TOTP code is accepted once (its step is
-- kept), and removing a confirmed factor or regenerating the recovery codes
-- takes a proof now (a code of a confirmed factor, or a recovery code).
-- A user with a confirmed factor logs in in two steps: the first
-- (um_login, or any call that would start a session) returns a challenge
-- (umc_...), um_complete_login with a code turns it into a session at
-- assurance level 2.  An organization with require_mfa refuses everything
-- to level-1 sessions (src/session.c, src/evaluator.c: UM092).  Sensitive
-- calls need an authentication within um.step_up_window (UM093);
-- um_reauthenticate provides one.

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
-- Logging in with a second factor, assurance levels, step-up

-- The assurance level of this transaction's session (src/session.c): 1 or
-- 2; NULL without a session (um_act_as: the backend vouches for the user).
CREATE FUNCTION um_internal.current_assurance_level()
RETURNS smallint AS 'MODULE_PATHNAME', 'um_current_assurance_level' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION um_internal.current_assurance_level() IS
  'internal: the assurance level of the session this transaction acts through (1 or 2), NULL when it acts through none';

CREATE FUNCTION um_internal.note_assurance_level(p_level smallint)
RETURNS void AS 'MODULE_PATHNAME', 'um_note_assurance_level' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION um_internal.note_assurance_level(smallint) IS
  'internal: the current session proved more (um_reauthenticate): checks of this transaction see the new level';

-- A sensitive call through a session needs an authentication within
-- um.step_up_window (the login, a second factor, um_reauthenticate).
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

-- For um_lint: organizations that require a second factor and their
-- members who can log in without one.  Only um administrators read those
-- rows; for anybody else, nothing (with the caller's rights, as um_lint).
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

-- WebAuthn: the backend runs the ceremonies (it holds the relying party's
-- origin and verifies signatures); um keeps the credentials and their
-- signature counters, and turns a verified assertion into a level-2 login.
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
  'remove one of the acting user''s factors; a confirmed one takes a proof now (a current code or a recovery code) or a recent authentication of the session';

CREATE FUNCTION @extschema@.um_regenerate_recovery_codes(code text)
RETURNS text[] AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_regenerate_recovery_codes(text) IS
  'fresh recovery codes for the acting user (the old ones end), against a proof now (a current code or a recovery code)';

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

-- Completing a login by WebAuthn asserts that the signature was verified:
-- only the backend that verifies it may (EXECUTE granted by the DBA).
REVOKE EXECUTE ON FUNCTION @extschema@.um_complete_login_webauthn(text, bytea, bigint),
                           @extschema@.um_webauthn_credential(bytea) FROM PUBLIC;
