-- Lifecycle of users: creation, sign-up and email verification, login
-- switches, suspension; then, from "The public functions", their
-- declarations (see 85_authorization.sql for how every lifecycle call runs).

-- ---------------------------------------------------------------------------
-- Users


-- A secret proves control of a mailbox only if no tenant user could have
-- seen it: one is returned only to a call with nobody acting (the backend,
-- which mails it), never to a call made for a logged-in user.  A claim
-- (p_claim, asked for by a sign-up) stays a claim in every token that
-- replaces it until the address is verified: someone who attached things to
-- the account cannot turn the owner's clean account back into theirs by
-- having a verification resent.
CREATE FUNCTION um_internal.new_verification(p_user_id bigint, p_sets_password boolean, p_claim boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_token text := um_internal.generate_token();
  v_claim boolean;
BEGIN
  PERFORM um_internal.assert_no_app_cascades();
  IF @extschema@.um_current_user_id() IS NOT NULL THEN
    RAISE EXCEPTION 'a verification secret is only issued with nobody acting'
      USING ERRCODE = 'UM058',
            DETAIL = 'It proves control of the mailbox only if no logged-in user could have seen it.',
            HINT = 'Call it from the backend in a transaction where nobody is acting, and mail the result.';
  END IF;
  WITH gone AS (DELETE FROM um.verification_tokens t WHERE t.user_id = p_user_id RETURNING t.claim)   -- one live token per user
  SELECT coalesce(p_claim, false) OR coalesce(bool_or(gone.claim), false) INTO v_claim FROM gone;
  INSERT INTO um.verification_tokens (token_hash, user_id, expires_at, sets_password, claim)
  VALUES (um_internal.token_hash(v_token), p_user_id, now() + interval '48 hours', p_sets_password, v_claim);
  RETURN v_token;
END
$$;
COMMENT ON FUNCTION um_internal.new_verification(bigint, boolean, boolean) IS
  'internal: issues a verification token for the user (replacing any earlier one, and a claim stays a claim) and returns it; only with nobody acting (UM058), so no tenant user sees it';

-- um_internal.detach_unproven: what the owner of a mailbox gets when they claim an
-- account through a sign-up is the account, and nothing that others attached
-- to it while nobody had proven the address: an organization that created
-- it for an address it does not own would otherwise manage the owner's
-- account (set its password, add its identity links) once it is verified.
-- Memberships go (with their teams and grants; a team the user owns passes
-- to its earliest other member, or goes if they are alone in it), each
-- audited in its organization; a membership that is its organization's last
-- Root who can log in stays (only a Root acts on a Root, so nobody there
-- gains anything over the account).  Identity links, the mobile number and
-- the attributes go too.  Returns the organizations left.
CREATE FUNCTION um_internal.detach_unproven(p_user_id bigint)
RETURNS bigint[]
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_org bigint;
  v_team record;
  v_left bigint[] := '{}';
BEGIN
  -- an organization that owns the address's domain keeps what it attached
  FOR v_org IN SELECT m.org_id FROM um.memberships m WHERE m.user_id = p_user_id
                  AND NOT um_internal.org_owns_address(m.org_id, (SELECT u.email FROM um.users u WHERE u.id = p_user_id))
                ORDER BY m.org_id LOOP
    BEGIN
      FOR v_team IN
        SELECT tm.team_id,
               (SELECT o.user_id FROM um.team_members o
                 WHERE o.team_id = tm.team_id AND o.user_id <> p_user_id
                 ORDER BY o.added_at, o.user_id LIMIT 1) AS heir
          FROM um.team_members tm
         WHERE tm.org_id = v_org AND tm.user_id = p_user_id AND tm.is_owner
         ORDER BY tm.team_id
      LOOP
        IF v_team.heir IS NULL THEN
          DELETE FROM um.teams t WHERE t.id = v_team.team_id;
        ELSE
          UPDATE um.team_members tm SET is_owner = (tm.user_id = v_team.heir)
           WHERE tm.team_id = v_team.team_id AND tm.user_id IN (p_user_id, v_team.heir);
        END IF;
      END LOOP;
      DELETE FROM um.memberships m WHERE m.org_id = v_org AND m.user_id = p_user_id;
      PERFORM um_internal.audit('member.remove', v_org, 'user', p_user_id, '{"reason": "address claimed"}');
      v_left := v_left || v_org;
    EXCEPTION WHEN SQLSTATE 'UM044' THEN
      NULL;                                          -- its last usable Root stays
    END;
  END LOOP;
  DELETE FROM um.user_identities i WHERE i.user_id = p_user_id
     AND NOT um_internal.org_owns_address(i.org_id, (SELECT u.email FROM um.users u WHERE u.id = p_user_id));
  UPDATE um.users u SET mobile = NULL, attributes = '{}'
   WHERE u.id = p_user_id AND (u.mobile IS NOT NULL OR u.attributes <> '{}');
  RETURN v_left;
END
$$;
COMMENT ON FUNCTION um_internal.detach_unproven(bigint) IS
  'internal: at a sign-up''s claim, removes what others attached to the account while its address was unproven (memberships but a last Root and those of the organization owning the address''s domain, teams, grants, identity links, mobile, attributes); returns the organizations it left';

-- A temporary password: 120 random bits, which the user must change.
CREATE FUNCTION um_internal.temporary_password()
RETURNS text
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
RETURN substr(um_internal.generate_token(), 4, 20);
COMMENT ON FUNCTION um_internal.temporary_password() IS 'internal: a random temporary password (120 bits), which the user must change';

-- Insert a user, or say why not.
CREATE FUNCTION um_internal.insert_user(p_email text, p_name text, p_allow_login boolean, p_timezone text,
                               p_locale text, p_mobile text, p_attributes jsonb)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_email text := btrim(p_email, E' \t\r\n');
  v_id bigint;
BEGIN
  IF p_email IS NULL THEN
    RAISE EXCEPTION 'an email address is required'
      USING ERRCODE = 'UM001', HINT = 'Pass the user''s email address.';
  END IF;
  -- One statement inserts nothing for an address already taken: checked
  -- first (before the row's checks), or by a concurrent insert, which the
  -- arbiter index waits for.
  INSERT INTO um.users (email, name, allow_login, timezone, locale, mobile, attributes)
  SELECT v_email, p_name, coalesce(p_allow_login, true), coalesce(p_timezone, 'UTC'),
         coalesce(p_locale, 'en'), p_mobile, coalesce(p_attributes, '{}')
   WHERE NOT EXISTS (SELECT 1 FROM um.users u WHERE lower(u.email) = lower(v_email))
  ON CONFLICT (lower(email)) DO NOTHING
  RETURNING id INTO v_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'email address "%" is already registered', v_email
      USING ERRCODE = 'UM020',
            DETAIL = 'Email addresses are unique regardless of letter case.',
            HINT = 'Use the existing user (um.users), or choose another address.';
  END IF;
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION um_internal.insert_user(text, text, boolean, text, text, text, jsonb) IS
  'internal: inserts a user and returns the id, or says why not (UM001 no address, UM020 address registered)';

-- psql administration: a user in no organization yet.
CREATE FUNCTION um_internal.do_create_user(p_email text, p_name text, p_allow_login boolean, p_timezone text,
                                  p_locale text, p_mobile text, p_attributes jsonb)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id bigint;
BEGIN
  IF @extschema@.um_current_user_id() IS NOT NULL THEN
    PERFORM um_internal.deny('user.create', NULL, 'user', NULL, 'UM070',
      'permission denied to create a user outside an organization',
      'Only a um administrator, with nobody acting, creates users who belong to no organization.',
      'Create the user in your organization: um_create_user(org_id, email, ...).');
  END IF;
  PERFORM um_internal.authorize('user.create', 'create a user', NULL, NULL, 'user', NULL);
  v_id := um_internal.insert_user(p_email, p_name, p_allow_login, p_timezone, p_locale, p_mobile, p_attributes);
  PERFORM um_internal.audit('user.create', NULL, 'user', v_id,
                   jsonb_build_object('allow_login', coalesce(p_allow_login, true)));
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION um_internal.do_create_user(text, text, boolean, text, text, text, jsonb) IS
  'body of um_create_user for a user in no organization: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_create_user (EXECUTE held by nobody)';

-- An Admin creates a user in their organization.
CREATE FUNCTION um_internal.do_create_user(p_org_id bigint, p_email text, p_role text, p_name text,
                                  p_allow_login boolean, p_timezone text, p_locale text, p_mobile text,
                                  OUT user_id bigint, OUT temporary_password text, OUT verification_token text)
RETURNS record
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um_internal.authorize('user.create', format('create users in organization %s', p_org_id),
                                 'user:create', p_org_id, 'user', NULL);
  v_role um.roles := um_internal.require_role(p_org_id, coalesce(p_role, 'member'));
BEGIN
  PERFORM um_internal.guard_escalation(v_actor, p_org_id, NULL, ARRAY(SELECT um_internal.role_grants(v_role.id)),
                              'user.create', format('create a user with role "%s"', v_role.name), 'user', NULL);
  -- A tenant user creates accounts only in the organization's own domains.
  -- Anywhere else "already registered" would tell them about someone else's
  -- account, and a new account would wait for a mailbox owner who is not
  -- theirs: there people join by invitation.  Decided before the address is
  -- looked up, so a registered and a new address get the same answer.
  IF v_actor IS NOT NULL AND NOT um_internal.org_owns_address(p_org_id, p_email) THEN
    PERFORM um_internal.deny('user.create', p_org_id, 'user', NULL, 'UM074',
      'cannot create an account for an address outside the organization''s domains',
      'Members create accounts only for addresses of domains the organization owns (um.organization_domains).',
      'Invite the address with um_invite(); to create accounts in a domain, have the service''s operator record it (um_add_org_domain).');
  END IF;
  user_id := um_internal.insert_user(p_email, p_name, p_allow_login, p_timezone, p_locale, p_mobile, NULL);
  IF coalesce(p_allow_login, true) THEN
    temporary_password := um_internal.temporary_password();
    UPDATE um.users u SET password_hash = um_internal.hash_password(temporary_password),
                          must_change_password = true, password_changed_at = now()
     WHERE u.id = user_id;
    -- a tenant user must not hold the mailbox's secret (the backend sends
    -- one later with um_resend_verification, with nobody acting)
    IF v_actor IS NULL THEN
      verification_token := um_internal.new_verification(user_id, true);
    END IF;
  END IF;
  INSERT INTO um.memberships (org_id, user_id, role_id, invited_by)
  VALUES (p_org_id, user_id, v_role.id, v_actor);
  PERFORM um_internal.audit('user.create', p_org_id, 'user', user_id,
                   jsonb_build_object('allow_login', coalesce(p_allow_login, true), 'role_id', v_role.id));
END
$$;
COMMENT ON FUNCTION um_internal.do_create_user(bigint, text, text, text, boolean, text, text, text) IS
  'body of um_create_user for a user in an organization: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_create_user (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_sign_up(p_email text, p_password text, p_name text, p_timezone text, p_locale text)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_hash text := um_internal.hash_password(p_password);     -- bad input is refused first,
  v_email text := btrim(p_email, E' \t\r\n');
  v_user um.users;
  v_tries integer := 0;
BEGIN
  -- ... every field of it, whether or not the address is registered
  PERFORM um_internal.assert_user_fields(v_email, p_name, coalesce(p_timezone, 'UTC'), coalesce(p_locale, 'en'), NULL, '{}');
  IF @extschema@.um_current_user_id() IS NOT NULL THEN
    PERFORM um_internal.new_verification(NULL, false);      -- UM058: secrets only with nobody acting
  END IF;
  -- Every answer is a secret for the backend to mail, so the caller never
  -- learns whether the address is registered.  Redeeming it
  -- (um_verify_email(token, password)) always sets the password that
  -- whoever holds the mailbox types:
  -- * a new address: a new unverified account (whoever registered may not
  --   own the address, so the registrant's own password counts only if the
  --   mailbox's owner types it again);
  -- * an unverified account: whoever made it never proved the mailbox; the
  --   secret claims it, and leaves behind what others attached to it
  --   (um_internal.detach_unproven); this password is not used;
  -- * a verified account: a secret that redeems nothing (whoever holds a
  --   sign-up's secret must never set the password of an account someone
  --   proved; its owner logs in, or resets the password);
  -- * a notification-only account: a secret that redeems nothing.
  -- Each branch draws a user id, so that the ids a tenant sees its own new
  -- users get tell nothing either; and a sign-up racing another for the
  -- same new address ends in the branch of the account the other made.
  LOOP
    SELECT * INTO v_user FROM um.users u WHERE lower(u.email) = lower(v_email);
    EXIT WHEN FOUND;
    BEGIN
      v_user.id := um_internal.insert_user(v_email, p_name, true, p_timezone, p_locale, NULL, NULL);
    EXCEPTION WHEN SQLSTATE 'UM020' THEN
      v_tries := v_tries + 1;
      IF v_tries > 1 THEN                            -- invisible to this snapshot (REPEATABLE READ)
        RAISE EXCEPTION 'could not serialize a sign-up with a concurrent one'
          USING ERRCODE = 'serialization_failure', HINT = 'Retry the transaction.';
      END IF;
      CONTINUE;                                       -- registered a moment ago
    END;
    UPDATE um.users u SET password_hash = v_hash, password_changed_at = now() WHERE u.id = v_user.id;
    PERFORM um_internal.audit('user.sign_up', NULL, 'user', v_user.id, '{}');
    RETURN um_internal.new_verification(v_user.id, true, true);
  END LOOP;
  PERFORM nextval(pg_get_serial_sequence('um.users', 'id'));
  IF NOT v_user.allow_login THEN
    PERFORM um_internal.audit('user.sign_up', NULL, 'user', v_user.id, '{"registered": true, "notification_only": true}');
    RETURN um_internal.generate_token();
  ELSIF v_user.email_verified_at IS NULL THEN
    PERFORM um_internal.audit('user.sign_up', NULL, 'user', v_user.id, '{"claim": true}');
    RETURN um_internal.new_verification(v_user.id, true, true);
  END IF;
  PERFORM um_internal.audit('user.sign_up', NULL, 'user', v_user.id, '{"registered": true}');
  RETURN um_internal.generate_token();
END
$$;
COMMENT ON FUNCTION um_internal.do_sign_up(text, text, text, text, text) IS
  'body of um_sign_up: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_sign_up (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_resend_verification(p_email text)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id bigint;
BEGIN
  IF @extschema@.um_current_user_id() IS NOT NULL THEN
    PERFORM um_internal.new_verification(NULL, true);       -- UM058: secrets only with nobody acting
  END IF;
  SELECT u.id INTO v_id FROM um.users u
   WHERE lower(u.email) = lower(btrim(p_email, E' \t\r\n')) AND u.email_verified_at IS NULL AND u.allow_login;
  IF NOT FOUND THEN
    RETURN NULL;                       -- unknown or already verified: nothing to send
  END IF;
  PERFORM um_internal.audit('user.resend_verification', NULL, 'user', v_id, '{}');
  RETURN um_internal.new_verification(v_id, true);           -- whoever redeems it chooses the password
END
$$;
COMMENT ON FUNCTION um_internal.do_resend_verification(text) IS
  'body of um_resend_verification: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_resend_verification (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_verify_email(p_token text, p_password text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_tok um.verification_tokens;
  v_hash text;
  v_left bigint[];
BEGIN
  PERFORM um_internal.assert_no_app_cascades();
  SELECT * INTO v_tok FROM um.verification_tokens t
   WHERE t.token_hash = um_internal.token_hash(coalesce(p_token, '')) AND t.expires_at > now()
     FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'the verification token is not valid'
      USING ERRCODE = 'UM053',
            DETAIL = 'It is unknown, was already used, or is more than 48 hours old.',
            HINT = 'If the address already has an account, log in; otherwise ask for a new verification email (um_resend_verification).';
  END IF;
  IF v_tok.sets_password AND p_password IS NULL THEN
    RAISE EXCEPTION 'choose a password to verify this address'
      USING ERRCODE = 'UM059',
            DETAIL = 'Whoever redeems this secret proves the mailbox and sets the account''s password; no password set before stays valid.',
            HINT = 'Ask for a new password and call um_verify_email(token, password).';
  END IF;
  IF p_password IS NOT NULL THEN
    v_hash := um_internal.hash_password(p_password);         -- bad input changes nothing
  END IF;
  DELETE FROM um.verification_tokens t WHERE t.token_hash = v_tok.token_hash;
  IF v_tok.claim THEN
    v_left := um_internal.detach_unproven(v_tok.user_id);
  END IF;
  UPDATE um.users u SET email_verified_at = coalesce(u.email_verified_at, now()) WHERE u.id = v_tok.user_id;
  IF v_hash IS NOT NULL THEN
    -- the mailbox's owner takes the account: every session ends (trigger)
    UPDATE um.users u SET password_hash = v_hash, password_changed_at = now(), must_change_password = false,
                          failed_login_count = 0, locked_until = NULL
     WHERE u.id = v_tok.user_id;
  END IF;
  PERFORM um_internal.audit('user.verify_email', NULL, 'user', v_tok.user_id,
                   jsonb_build_object('password_set', v_hash IS NOT NULL, 'claim', v_tok.claim,
                                      'left_org_ids', to_jsonb(v_left)));
  RETURN v_tok.user_id;
END
$$;
COMMENT ON FUNCTION um_internal.do_verify_email(text, text) IS
  'body of um_verify_email: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_verify_email (EXECUTE held by nobody)';

-- Verify an address and log in: the same redemption as um_verify_email, by
-- whoever holds the mailbox's secret and chooses the password, then a
-- session, as um_login would give.  A refusal undoes the verification too
-- (the secret stays valid).
CREATE FUNCTION um_internal.do_verify_email_and_login(p_token text, p_password text)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.users;
  v_id bigint;
  v_refusal record;
BEGIN
  IF p_password IS NULL THEN
    PERFORM um_internal.raise('UM059', 'choose a password to verify this address and log in',
      'The session is for whoever proves the mailbox and sets the account''s password.',
      'Ask for a new password and call um_verify_email_and_login(token, password).');
  END IF;
  v_id := um_internal.do_verify_email(p_token, p_password);
  SELECT * INTO v FROM um.users u WHERE u.id = v_id;
  v_refusal := um_internal.login_refusal(v, false);
  PERFORM um_internal.raise_login_refusal(v_refusal.reason, v_refusal.sso_org);
  RETURN um_internal.new_session(v, 'user.login', 'verification');
END
$$;
COMMENT ON FUNCTION um_internal.do_verify_email_and_login(text, text) IS
  'body of um_verify_email_and_login: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_verify_email_and_login (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_mark_verified(p_user_id bigint)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  -- a tenant user vouching for an address would own it (and every
  -- invitation later sent to it): only a um administrator does
  IF @extschema@.um_current_user_id() IS NOT NULL THEN
    PERFORM um_internal.deny('user.mark_verified', NULL, 'user', p_user_id, 'UM070',
      'permission denied to mark an email address verified',
      'Only a um administrator, with nobody acting, vouches for an address; a tenant user could claim someone else''s.',
      'Have the backend send a verification (um_resend_verification) to the address instead.');
  END IF;
  PERFORM um_internal.authorize_user('user.mark_verified', format('mark the email of user %s verified', p_user_id),
                            'user:update', p_user_id);
  UPDATE um.users u SET email_verified_at = now() WHERE u.id = p_user_id AND u.email_verified_at IS NULL;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  DELETE FROM um.verification_tokens t WHERE t.user_id = p_user_id;
  PERFORM um_internal.audit('user.mark_verified', NULL, 'user', p_user_id, '{}');
  RETURN true;
END
$$;
COMMENT ON FUNCTION um_internal.do_mark_verified(bigint) IS
  'body of um_mark_verified: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_mark_verified (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_disable_login(p_user_id bigint)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM um_internal.authorize_user('user.disable_login', format('disable the login of user %s', p_user_id),
                            'user:update', p_user_id);
  PERFORM um_internal.guard_last_active_root(p_user_id, NULL, 'user.disable_login', 'disable the login of');
  UPDATE um.users u SET allow_login = false, updated_at = now() WHERE u.id = p_user_id AND u.allow_login;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  PERFORM um_internal.audit('user.disable_login', NULL, 'user', p_user_id, '{}');
  RETURN true;
END
$$;
COMMENT ON FUNCTION um_internal.do_disable_login(bigint) IS
  'body of um_disable_login: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_disable_login (EXECUTE held by nobody)';

-- Returns a temporary password when the user had none (and no identity link).
CREATE FUNCTION um_internal.do_enable_login(p_user_id bigint)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.users;
  v_password text;
BEGIN
  PERFORM um_internal.authorize_user('user.enable_login', format('enable the login of user %s', p_user_id),
                            'user:update', p_user_id);
  SELECT * INTO v FROM um.users u WHERE u.id = p_user_id FOR UPDATE;
  IF v.allow_login THEN
    RETURN NULL;
  END IF;
  IF v.password_hash IS NULL AND NOT EXISTS (SELECT 1 FROM um.user_identities i WHERE i.user_id = p_user_id) THEN
    v_password := um_internal.temporary_password();
    UPDATE um.users u SET password_hash = um_internal.hash_password(v_password), must_change_password = true,
                          password_changed_at = now()
     WHERE u.id = p_user_id;
  END IF;
  UPDATE um.users u SET allow_login = true, updated_at = now() WHERE u.id = p_user_id;
  PERFORM um_internal.audit('user.enable_login', NULL, 'user', p_user_id,
                   jsonb_build_object('temporary_password', v_password IS NOT NULL));
  RETURN v_password;
END
$$;
COMMENT ON FUNCTION um_internal.do_enable_login(bigint) IS
  'body of um_enable_login: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_enable_login (EXECUTE held by nobody)';

-- ---------------------------------------------------------------------------
-- The public functions: each is src/lifecycle.c's entry point, which calls
-- um_internal.do_<name> with the calling role.  None is STRICT: a NULL argument gets
-- the error that names it.

CREATE FUNCTION @extschema@.um_sign_up(email text, password text, name text DEFAULT NULL,
                                       timezone text DEFAULT 'UTC', locale text DEFAULT 'en')
RETURNS text AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_sign_up(text, text, text, text, text) IS
  'self-registration: create an unverified user with a password; returns the email verification token (for um_verify_email); for an address with an unverified account, a claim token instead (same shape); nobody may be acting';

CREATE FUNCTION @extschema@.um_resend_verification(email text)
RETURNS text AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_resend_verification(text) IS
  'a new email verification token for an unverified user (the old one stops working), which sets a new password when redeemed; NULL when there is nothing to verify; nobody may be acting';

CREATE FUNCTION @extschema@.um_verify_email(token text, password text DEFAULT NULL)
RETURNS bigint AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_verify_email(text, text) IS
  'mark the token''s user verified (single use, valid 48 hours); a claim (a token from um_resend_verification or a repeated sign-up) needs the new password, which replaces any other and ends every session; returns the user id';

CREATE FUNCTION @extschema@.um_verify_email_and_login(token text, password text)
RETURNS text AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_verify_email_and_login(text, text) IS
  'redeem an email verification token with the password the mailbox''s owner chooses, and return a session token (as um_login would)';

CREATE FUNCTION @extschema@.um_mark_verified(user_id bigint)
RETURNS boolean AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_mark_verified(bigint) IS
  'verification by another mechanism: a um administrator (nobody acting) marks the user''s email verified';

CREATE FUNCTION @extschema@.um_create_user(
  email text,
  name text DEFAULT NULL,
  allow_login boolean DEFAULT true,
  timezone text DEFAULT 'UTC',
  locale text DEFAULT 'en',
  mobile text DEFAULT NULL,
  attributes jsonb DEFAULT '{}')
RETURNS bigint AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_create_user(text, text, boolean, text, text, text, jsonb) IS
  'um administrators: create a user in no organization and return its id; allow_login => false makes a notification-only user';

CREATE FUNCTION @extschema@.um_create_user(org_id bigint, email text, role text DEFAULT 'Member',
                                           name text DEFAULT NULL, allow_login boolean DEFAULT true,
                                           timezone text DEFAULT 'UTC', locale text DEFAULT 'en',
                                           mobile text DEFAULT NULL,
                                           OUT user_id bigint, OUT temporary_password text,
                                           OUT verification_token text)
RETURNS record AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_create_user(bigint, text, text, text, boolean, text, text, text) IS
  'create a user as a member of the organization (user:create); returns a temporary password to change at first login and an email verification token';

CREATE FUNCTION @extschema@.um_disable_login(user_id bigint)
RETURNS boolean AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_disable_login(bigint) IS
  'make the user notification-only (ends their sessions); returns false when it already was';

CREATE FUNCTION @extschema@.um_enable_login(user_id bigint)
RETURNS text AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_enable_login(bigint) IS
  'let a notification-only user log in; returns a temporary password when they had no way to sign in';

-- Self-registration returns the verification token to its caller, which
-- must be the application backend that emails it (whoever holds the token
-- can verify the address): EXECUTE is granted to that role by the DBA.
REVOKE EXECUTE ON FUNCTION @extschema@.um_sign_up(text, text, text, text, text),
                           @extschema@.um_resend_verification(text)
  FROM PUBLIC;
