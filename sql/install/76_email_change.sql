-- Email change with re-verification (um_request_email_change,
-- um_email_change_mail, um_confirm_email_change, um_cancel_email_change).
--
-- The user (or an admin with user:update in each of the user's
-- organizations) asks for a new address; nothing changes yet, and the
-- answer is the same whether the address is registered or not.  The backend
-- then fetches, with nobody acting, what to mail: a confirmation token for
-- the new address (none when that address has an account: its owner gets a
-- notice instead, as a sign-up would) and a cancel token for the old one.
-- The secrets never reach the acting user: whoever held the confirmation
-- token without the mailbox would own an address (and the invitations sent
-- to it).  Confirming sets the address, verified, voids the user's other
-- mailbox secrets (a pending password reset, a verification) and, when
-- um.email_change_ends_sessions is on, ends the user's sessions.  The old
-- address cancels with its token.  One pending change per user: a new
-- request replaces it.  Both tokens are 256 random bits, stored only as
-- hashes, single use, expiring 24 hours after the request.

-- ---------------------------------------------------------------------------
-- Rules

-- May p_actor change p_user's account now: user:update in every organization
-- of the user, a Root's only as a Root there (authorize_user's rule, for a
-- request made earlier by someone no longer acting)?
CREATE FUNCTION um_internal.may_update_user(p_actor bigint, p_user bigint)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN EXISTS (SELECT 1 FROM um.memberships m WHERE m.user_id = p_user)
     AND NOT EXISTS (SELECT 1 FROM um.memberships m
                      WHERE m.user_id = p_user
                        AND (NOT @extschema@.um_has_permission(p_actor, 'user:update', m.org_id)
                             OR (um_internal.is_root(m.org_id, p_user) AND NOT um_internal.is_root(m.org_id, p_actor))));
END
$$;
COMMENT ON FUNCTION um_internal.may_update_user(bigint, bigint) IS
  'internal: whether a user may change another''s account now (user:update in each of the other''s organizations; a Root''s only as a Root)';

-- ---------------------------------------------------------------------------
-- Bodies

CREATE FUNCTION um_internal.do_request_email_change(p_new_email text, p_user_id bigint)
RETURNS timestamptz
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := @extschema@.um_current_user_id();
  v_user bigint := coalesce(p_user_id, v_actor);
  v_email text := btrim(coalesce(p_new_email, ''), E' \t\r\n');
  v um.users;
  v_expires timestamptz := now() + interval '24 hours';
BEGIN
  IF v_actor IS DISTINCT FROM @extschema@.um_real_user_id() THEN
    PERFORM um_internal.deny('user.request_email_change', NULL, 'user', v_user, 'UM071',
      'cannot change an email address while impersonating', NULL, 'Call um_end_impersonation() first.');
  END IF;
  IF p_user_id IS NULL OR p_user_id = v_actor THEN
    PERFORM um_internal.require_actor('Call um_begin(token) first, or pass the user_id as a um administrator.');
    PERFORM um_internal.require_recent_authentication('user.request_email_change', 'changing your email address');
  ELSIF p_user_id IS DISTINCT FROM v_actor THEN
    PERFORM um_internal.authorize_user('user.request_email_change', format('change the email address of user %s', p_user_id),
                                       'user:update', p_user_id);
    -- an admin moves an account only to an address of a domain one of the
    -- user's organizations owns: anywhere else it would be taking it over
    IF v_actor IS NOT NULL AND NOT EXISTS (SELECT 1 FROM um.memberships m
                                            WHERE m.user_id = p_user_id AND um_internal.org_owns_address(m.org_id, v_email)) THEN
      PERFORM um_internal.deny('user.request_email_change', NULL, 'user', p_user_id, 'UM074',
        'cannot move an account to an address outside its organizations'' domains',
        'An admin changes a user''s address only within a domain one of the user''s organizations owns (um.organization_domains).',
        'Ask the user to change it themself, or record the domain first (um_add_org_domain, by the service''s operator).');
    END IF;
  END IF;
  -- the same checks as a sign-up's, whether or not the address is registered
  IF NOT um_internal.email_is_valid(v_email) THEN
    PERFORM um_internal.raise('UM001', format('invalid email address "%s"', v_email), NULL,
      'Check the address for typos; write internationalized domains in their xn-- (punycode) form.');
  END IF;
  SELECT * INTO v FROM um.users u WHERE u.id = v_user FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    PERFORM um_internal.require_user(v_user);
  END IF;
  IF lower(v.email) = lower(v_email) THEN
    PERFORM um_internal.raise('UM009', 'the new email address is the current one', NULL,
      'Pass the address to change to; to cancel a pending change, use the token of the notice (um_cancel_email_change).');
  END IF;
  INSERT INTO um.email_changes AS c (user_id, new_email, requested_by, expires_at)
  VALUES (v.id, v_email, v_actor, v_expires)
  ON CONFLICT (user_id) DO UPDATE
    SET new_email = EXCLUDED.new_email, requested_by = EXCLUDED.requested_by, confirm_hash = NULL, cancel_hash = NULL,
        created_at = now(), expires_at = EXCLUDED.expires_at;
  PERFORM um_internal.audit('user.request_email_change', NULL, 'user', v.id,
                            jsonb_build_object('by', CASE WHEN v_actor IS NULL THEN 'administrator'
                                                          WHEN v_actor = v.id THEN 'user' ELSE 'admin' END));
  RETURN v_expires;
END
$$;
COMMENT ON FUNCTION um_internal.do_request_email_change(text, bigint) IS
  'body of um_request_email_change: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_request_email_change (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_email_change_mail(p_user_id bigint, OUT old_address text, OUT new_address text,
                                                 OUT confirm_token text, OUT cancel_token text,
                                                 OUT new_address_registered boolean, OUT expires_at timestamptz)
RETURNS SETOF record
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v record;
BEGIN
  IF @extschema@.um_current_user_id() IS NOT NULL THEN
    RAISE EXCEPTION 'an email change''s secrets are only issued with nobody acting'
      USING ERRCODE = 'UM058',
            DETAIL = 'The confirmation token proves the new mailbox; no logged-in user may see it.',
            HINT = 'Call it from the backend in a transaction where nobody is acting, and mail the result.';
  END IF;
  SELECT c.*, u.email AS old_email INTO v
    FROM um.email_changes c JOIN um.users u ON u.id = c.user_id
   WHERE c.user_id = p_user_id AND c.expires_at > clock_timestamp()
     FOR UPDATE OF c;
  IF NOT FOUND THEN
    RETURN;                                   -- nothing pending: nothing to mail
  END IF;
  old_address := v.old_email;
  new_address := v.new_email;
  new_address_registered := EXISTS (SELECT 1 FROM um.users u WHERE lower(u.email) = lower(v.new_email));
  -- issued afresh at each call (the last mail's tokens stop working)
  cancel_token := um_internal.generate_token();
  IF NOT new_address_registered THEN
    confirm_token := um_internal.generate_token();
  END IF;
  UPDATE um.email_changes c
     SET confirm_hash = um_internal.token_hash(confirm_token), cancel_hash = um_internal.token_hash(cancel_token)
   WHERE c.user_id = p_user_id;
  expires_at := v.expires_at;
  PERFORM um_internal.audit('user.email_change_mail', NULL, 'user', p_user_id,
                            jsonb_build_object('new_address_registered', new_address_registered));
  RETURN NEXT;
END
$$;
COMMENT ON FUNCTION um_internal.do_email_change_mail(bigint) IS
  'body of um_email_change_mail: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_email_change_mail (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_confirm_email_change(p_token text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.email_changes;
BEGIN
  SELECT c.* INTO v FROM um.email_changes c
   WHERE c.confirm_hash = um_internal.token_hash(coalesce(p_token, '')) AND c.expires_at > clock_timestamp()
     FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM um_internal.raise('UM053', 'the email change token is not valid',
      'It is unknown, was used, replaced or cancelled, or expired.', 'Ask for the change again (um_request_email_change).');
  END IF;
  -- an admin's request holds only while they may still change the account
  -- (a suspension, a lost role, the user joining an organization of which
  -- the admin is none, void it)
  IF v.requested_by IS NOT NULL AND v.requested_by <> v.user_id AND NOT um_internal.may_update_user(v.requested_by, v.user_id) THEN
    PERFORM um_internal.raise('UM053', 'the email change token is not valid',
      'The admin who asked for the change may no longer change this account.', 'Ask for the change again.');
  END IF;
  BEGIN
    -- (users_before_write unverifies a changed address: the second statement
    -- records that this mailbox was just proven)
    UPDATE um.users u SET email = v.new_email WHERE u.id = v.user_id;
  EXCEPTION WHEN unique_violation THEN
    PERFORM um_internal.raise('UM020', format('email address "%s" is already registered', v.new_email),
      'An account was made for it since the change was asked for.',
      'Log in to that account instead, or ask for a change to another address.');
  END;
  UPDATE um.users u SET email_verified_at = now() WHERE u.id = v.user_id;
  DELETE FROM um.email_changes c WHERE c.user_id = v.user_id;
  DELETE FROM um.verification_tokens t WHERE t.user_id = v.user_id;
  IF coalesce(current_setting('um.email_change_ends_sessions', true), 'off') = 'on' THEN
    UPDATE um.sessions s SET revoked_at = now(), revoked_reason = 'ended by an email change'
     WHERE s.user_id = v.user_id AND s.revoked_at IS NULL;
  END IF;
  PERFORM um_internal.audit('user.change_email', NULL, 'user', v.user_id,
                            jsonb_build_object('requested_by', v.requested_by));
  RETURN v.user_id;
END
$$;
COMMENT ON FUNCTION um_internal.do_confirm_email_change(text) IS
  'body of um_confirm_email_change: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_confirm_email_change (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_cancel_email_change(p_token text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_user bigint;
BEGIN
  DELETE FROM um.email_changes c WHERE c.cancel_hash = um_internal.token_hash(coalesce(p_token, ''))
  RETURNING c.user_id INTO v_user;
  IF NOT FOUND THEN
    PERFORM um_internal.raise('UM053', 'the email change token is not valid',
      'It is unknown, or the change was confirmed, replaced or cancelled already.', 'Nothing is pending to cancel.');
  END IF;
  PERFORM um_internal.audit('user.cancel_email_change', NULL, 'user', v_user, '{}');
  RETURN v_user;
END
$$;
COMMENT ON FUNCTION um_internal.do_cancel_email_change(text) IS
  'body of um_cancel_email_change: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_cancel_email_change (EXECUTE held by nobody)';

-- ---------------------------------------------------------------------------
-- The public functions: each is src/lifecycle.c's entry point, which calls
-- um_internal.do_<name> with the calling role.  None is STRICT: a NULL
-- argument gets the error that names it.

CREATE FUNCTION @extschema@.um_request_email_change(new_email text, user_id bigint DEFAULT NULL)
RETURNS timestamptz AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_request_email_change(text, bigint) IS
  'ask to change the acting user''s address (or, user_id given, a user''s: user:update in each of their organizations); nothing changes until the new mailbox confirms; the same answer whether the address is registered; returns when the request expires';

CREATE FUNCTION @extschema@.um_email_change_mail(user_id bigint, OUT old_address text, OUT new_address text,
                                                 OUT confirm_token text, OUT cancel_token text,
                                                 OUT new_address_registered boolean, OUT expires_at timestamptz)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 1;
COMMENT ON FUNCTION @extschema@.um_email_change_mail(bigint) IS
  'what the backend mails for a user''s pending email change: a confirmation token to new_address (NULL when it has an account: mail its owner a notice), a cancel token with a notice to old_address; fresh tokens at each call; no row when nothing is pending; nobody may be acting';

CREATE FUNCTION @extschema@.um_confirm_email_change(token text)
RETURNS bigint AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_confirm_email_change(text) IS
  'the new mailbox confirms: the address changes, verified; the user''s other mailbox secrets end (and their sessions where um.email_change_ends_sessions is on); returns the user id';

CREATE FUNCTION @extschema@.um_cancel_email_change(token text)
RETURNS bigint AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_cancel_email_change(text) IS
  'the old mailbox cancels a pending email change with the token of its notice; returns the user id';

-- The secrets go to the caller, which must be the backend that mails them:
-- EXECUTE is granted to that role by the DBA.
REVOKE EXECUTE ON FUNCTION @extschema@.um_email_change_mail(bigint) FROM PUBLIC;
