-- Invitations: invite, request, accept, revoke, expire; then their public
-- declarations.

-- ---------------------------------------------------------------------------
-- Invitations

-- A batch of addresses: split on commas, semicolons and line breaks,
-- trimmed, empty entries dropped, duplicates (in any letter case) dropped.
CREATE FUNCTION um_internal.parse_email_batch(p_emails text)
RETURNS text[]
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce(array_agg(d.e ORDER BY d.n), '{}')
    FROM (SELECT DISTINCT ON (lower(t.e)) t.e, t.n
            FROM (SELECT btrim(x, E' \t\r\n\x0b\f') AS e, n
                    FROM regexp_split_to_table(coalesce(p_emails, ''), '[,;\r\n]+') WITH ORDINALITY AS s(x, n)) AS t
           WHERE t.e <> ''
           ORDER BY lower(t.e), t.n) AS d;
$$;
COMMENT ON FUNCTION um_internal.parse_email_batch(text) IS
  'internal: the addresses of a batch, split on commas, semicolons and line breaks, trimmed, without empty entries or duplicates (any letter case)';

CREATE FUNCTION um_internal.do_invite(p_org_id bigint, p_emails text, p_role text, p_team_id bigint, p_valid_for interval)
RETURNS TABLE (email text, status text, invitation_id bigint, token text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
  v_actor bigint := um_internal.authorize('invitation.create', format('invite people to organization %s', p_org_id),
                                 'member:invite', p_org_id, 'invitation', NULL);
  v_role um.roles := um_internal.require_role(p_org_id, coalesce(p_role, 'member'));
  v_emails text[] := um_internal.parse_email_batch(p_emails);
  v_bad text[];
  v_email text;
  v_token text;
  v_id bigint;
  v_expires timestamptz;
BEGIN
  IF v_role.builtin = 'root' AND v_actor IS NOT NULL AND NOT um_internal.is_root(p_org_id, v_actor) THEN
    PERFORM um_internal.deny('invitation.create', p_org_id, 'invitation', NULL, 'UM073',
      'only a Root may invite a Root', NULL, 'Invite with another role; a Root can promote the member later.');
  END IF;
  PERFORM um_internal.guard_escalation(v_actor, p_org_id, NULL, ARRAY(SELECT um_internal.role_grants(v_role.id)),
                              'invitation.create', format('invite with role "%s"', v_role.name), 'invitation', NULL);
  IF p_team_id IS NOT NULL THEN
    PERFORM um_internal.require_org_team(p_org_id, p_team_id);
    -- inviting into a team is adding a team member: team:manage or its owner,
    -- and no team whose grants hold more than the inviter
    PERFORM um_internal.authorize_team('invitation.create', format('invite people into team %s', p_team_id), p_team_id, NULL);
    PERFORM um_internal.guard_team_grants(v_actor, p_team_id, 'invitation.create', NULL);
  END IF;
  IF p_valid_for IS NULL OR p_valid_for <= interval '0' OR p_valid_for > interval '90 days' THEN
    PERFORM um_internal.raise('UM009', format('invalid validity "%s"', p_valid_for), NULL, 'Pass an interval between 1 second and 90 days.');
  END IF;
  IF cardinality(v_emails) = 0 THEN
    RAISE EXCEPTION 'no email addresses given'
      USING ERRCODE = 'UM054', HINT = 'Pass addresses separated by commas, semicolons or new lines.';
  END IF;
  SELECT array_agg(e ORDER BY n) INTO v_bad FROM unnest(v_emails) WITH ORDINALITY AS x(e, n) WHERE NOT um_internal.email_is_valid(e);
  IF v_bad IS NOT NULL THEN
    RAISE EXCEPTION '% of % email addresses are invalid; nobody was invited', cardinality(v_bad), cardinality(v_emails)
      USING ERRCODE = 'UM054',
            DETAIL = 'Invalid: ' || array_to_string(v_bad, ', ') || '.',
            HINT = 'Correct or remove them and send the whole batch again.';
  END IF;
  v_expires := now() + p_valid_for;
  FOREACH v_email IN ARRAY v_emails LOOP
    email := v_email; invitation_id := NULL; token := NULL;
    IF EXISTS (SELECT 1 FROM um.memberships m JOIN um.users u ON u.id = m.user_id
                WHERE m.org_id = p_org_id AND lower(u.email) = lower(v_email)) THEN
      status := 'already_member';
      RETURN NEXT;
      CONTINUE;
    END IF;
    v_token := um_internal.generate_token();
    -- an open invitation (or request) for the address is renewed
    UPDATE um.invitations i
       SET state = 'pending', token_hash = um_internal.token_hash(v_token), expires_at = v_expires, role_id = v_role.id,
           team_id = p_team_id, invited_by = v_actor, created_at = now()
     WHERE i.org_id = p_org_id AND lower(i.email) = lower(v_email) AND i.state IN ('pending', 'requested')
    RETURNING i.id INTO v_id;
    IF FOUND THEN
      status := 'renewed';
    ELSE
      INSERT INTO um.invitations (org_id, email, role_id, team_id, state, token_hash, invited_by, expires_at)
      VALUES (p_org_id, v_email, v_role.id, p_team_id, 'pending', um_internal.token_hash(v_token), v_actor, v_expires)
      ON CONFLICT (org_id, lower(email)) WHERE state IN ('requested', 'pending') DO NOTHING
      RETURNING id INTO v_id;
      IF NOT FOUND THEN                             -- invited at this very moment by someone else
        status := 'already_invited';
        RETURN NEXT;
        CONTINUE;
      END IF;
      status := 'invited';
    END IF;
    invitation_id := v_id; token := v_token;
    PERFORM um_internal.audit('invitation.create', p_org_id, 'invitation', v_id,
                     jsonb_build_object('role_id', v_role.id, 'team_id', p_team_id, 'renewed', status = 'renewed'));
    RETURN NEXT;
  END LOOP;
END
$$;
COMMENT ON FUNCTION um_internal.do_invite(bigint, text, text, bigint, interval) IS
  'body of um_invite: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_invite (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_request_invitation(p_org_slug text, p_email text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_org um.organizations;
  v_email text := btrim(p_email, E' \t\r\n');
  v_member_role bigint;
  v_id bigint;
BEGIN
  SELECT * INTO v_org FROM um.organizations o WHERE o.slug = p_org_slug;
  IF NOT FOUND OR NOT v_org.allow_invite_requests THEN
    RAISE EXCEPTION 'organization "%" does not take invitation requests', p_org_slug
      USING ERRCODE = 'UM055', HINT = 'Ask a member of the organization to invite you.';
  END IF;
  IF v_email IS NULL OR NOT um_internal.email_is_valid(v_email) THEN
    RAISE EXCEPTION 'invalid email address "%"', p_email
      USING ERRCODE = 'UM001', HINT = 'Check the address for typos.';
  END IF;
  SELECT r.id INTO v_member_role FROM um.roles r WHERE r.org_id = v_org.id AND r.builtin = 'member';
  -- members and open invitations (also one made at this very moment):
  -- nothing to do, and nothing said about it
  INSERT INTO um.invitations (org_id, email, role_id, state)
  SELECT v_org.id, v_email, v_member_role, 'requested'
   WHERE NOT EXISTS (SELECT 1 FROM um.memberships m JOIN um.users u ON u.id = m.user_id
                      WHERE m.org_id = v_org.id AND lower(u.email) = lower(v_email))
     AND NOT EXISTS (SELECT 1 FROM um.invitations i
                      WHERE i.org_id = v_org.id AND lower(i.email) = lower(v_email) AND i.state IN ('pending', 'requested'))
  ON CONFLICT (org_id, lower(email)) WHERE state IN ('requested', 'pending') DO NOTHING
  RETURNING id INTO v_id;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  PERFORM um_internal.audit('invitation.request', v_org.id, 'invitation', v_id, '{}');
END
$$;
COMMENT ON FUNCTION um_internal.do_request_invitation(text, text) IS
  'body of um_request_invitation: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_request_invitation (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_accept_invitation(p_token text, p_password text, p_name text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_inv um.invitations;
  v_actor bigint := @extschema@.um_current_user_id();
  v_user um.users;
  v_user_id bigint;
BEGIN
  PERFORM um_internal.assert_no_app_cascades();
  SELECT * INTO v_inv FROM um.invitations i WHERE i.token_hash = um_internal.token_hash(coalesce(p_token, '')) FOR UPDATE;
  IF NOT FOUND OR v_inv.state <> 'pending' OR v_inv.expires_at <= now() THEN
    PERFORM um_internal.deny('invitation.accept', v_inv.org_id, 'invitation', v_inv.id, 'UM053',
      'the invitation is not valid',
      CASE WHEN v_inv.id IS NULL THEN 'The token is unknown.'
           WHEN v_inv.state = 'accepted' THEN 'It was already accepted.'
           WHEN v_inv.state = 'revoked' THEN 'It was revoked.'
           ELSE 'It has expired.' END,
      'Ask the organization for a new invitation.');
  END IF;
  -- Holding an invitation gives its membership and nothing else: the token
  -- was seen by the inviter, so it proves nothing about the mailbox.  An
  -- existing account accepts only logged in as itself (a password login
  -- needs a verified address), never by whoever holds the token.
  SELECT * INTO v_user FROM um.users u WHERE lower(u.email) = lower(v_inv.email) FOR UPDATE;
  IF FOUND AND v_actor IS NOT NULL THEN
    IF v_actor <> v_user.id OR v_actor IS DISTINCT FROM @extschema@.um_real_user_id() THEN
      PERFORM um_internal.deny('invitation.accept', um_internal.actor_org(v_inv.org_id), 'invitation', v_inv.id, 'UM056',
        'the invitation is for another account', 'It was sent to the address of another user.',
        'Log in as the invited address to accept it.');
    END IF;
    v_user_id := v_user.id;                         -- the invited user, logged in
  ELSIF FOUND THEN
    PERFORM um_internal.deny('invitation.accept', NULL, 'invitation', v_inv.id, 'UM056',
      'the invited address already has an account',
      'An existing account accepts its invitations only while logged in.',
      'Log in as the invited address, then accept; if its address was never verified, the backend sends it a verification (um_resend_verification) to claim it.');
  ELSE
    IF v_actor IS NOT NULL THEN
      PERFORM um_internal.deny('invitation.accept', um_internal.actor_org(v_inv.org_id), 'invitation', v_inv.id, 'UM056',
        'the invitation is for another account', 'It was sent to an address that is not yours.',
        'Accept it logged out, as the invited address, choosing a password.');
    END IF;
    -- a new account, unverified: it logs in once the mailbox is proven
    v_user_id := um_internal.insert_user(v_inv.email, p_name, true, NULL, NULL, NULL, NULL);
    UPDATE um.users u SET password_hash = um_internal.hash_password(p_password), password_changed_at = now()
     WHERE u.id = v_user_id;
  END IF;
  IF EXISTS (SELECT 1 FROM um.memberships m WHERE m.org_id = v_inv.org_id AND m.user_id = v_user_id) THEN
    RAISE EXCEPTION 'user % is already a member of organization %', v_user_id, v_inv.org_id
      USING ERRCODE = 'UM022', HINT = 'Nothing to accept; the invitation stays open until it expires or is revoked.';
  END IF;
  INSERT INTO um.memberships (org_id, user_id, role_id, invited_by)
  VALUES (v_inv.org_id, v_user_id, v_inv.role_id, v_inv.invited_by);
  IF v_inv.team_id IS NOT NULL THEN
    INSERT INTO um.team_members (org_id, team_id, user_id) VALUES (v_inv.org_id, v_inv.team_id, v_user_id);
  END IF;
  UPDATE um.invitations i SET state = 'accepted', accepted_by = v_user_id, decided_at = now(), token_hash = NULL
   WHERE i.id = v_inv.id;
  PERFORM um_internal.audit('invitation.accept', v_inv.org_id, 'invitation', v_inv.id, jsonb_build_object('user_id', v_user_id));
  RETURN v_user_id;
END
$$;
COMMENT ON FUNCTION um_internal.do_accept_invitation(text, text, text) IS
  'body of um_accept_invitation: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_accept_invitation (EXECUTE held by nobody)';

-- Accept as a new address and log in.  The token was mailed to the address,
-- but um_invite returned it to the inviter's request too: it proves the
-- mailbox only where the application promises that inviters never see it
-- (um.invitations_prove_address, which only a superuser sets).
CREATE FUNCTION um_internal.do_accept_invitation_and_login(p_token text, p_password text, p_name text)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.users;
  v_id bigint;
  v_refusal record;
BEGIN
  IF @extschema@.um_current_user_id() IS NOT NULL THEN
    PERFORM um_internal.raise('UM058', 'someone is acting in this transaction',
      'A logged-in user already has a session; um_accept_invitation_and_login is for a new address, logged out.',
      'Accept with um_accept_invitation(token) inside the user''s request.');
  END IF;
  IF p_password IS NULL THEN
    PERFORM um_internal.raise('UM059', 'choose a password to accept this invitation and log in', NULL,
      'Pass the password the invitee chose.');
  END IF;
  IF coalesce(current_setting('um.invitations_prove_address', true), 'off') <> 'on' THEN
    PERFORM um_internal.raise('UM063', 'accepting an invitation does not prove the address here',
      'um.invitations_prove_address is off: the inviter may have seen the token, so the new account stays unverified and cannot log in yet.',
      'Accept with um_accept_invitation(token, password, name), mail a verification (um_resend_verification) and log in with um_verify_email_and_login; or, if your backend never shows invitation tokens to inviters, have a superuser turn um.invitations_prove_address on.');
  END IF;
  v_id := um_internal.do_accept_invitation(p_token, p_password, p_name);    -- an existing account: UM056
  UPDATE um.users u SET email_verified_at = now() WHERE u.id = v_id AND u.email_verified_at IS NULL;
  PERFORM um_internal.audit('user.verify_email', NULL, 'user', v_id, jsonb_build_object('via', 'invitation'));
  SELECT * INTO v FROM um.users u WHERE u.id = v_id;
  v_refusal := um_internal.login_refusal(v, false);
  PERFORM um_internal.raise_login_refusal(v_refusal.reason, v_refusal.sso_org);   -- e.g. single sign-on: nothing stays
  RETURN um_internal.new_session(v, 'user.login', 'invitation');
END
$$;
COMMENT ON FUNCTION um_internal.do_accept_invitation_and_login(text, text, text) IS
  'body of um_accept_invitation_and_login: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_accept_invitation_and_login (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_revoke_invitation(p_invitation_id bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_inv um.invitations;
BEGIN
  SELECT * INTO v_inv FROM um.invitations i WHERE i.id = p_invitation_id;
  PERFORM um_internal.authorize('invitation.revoke', format('revoke invitation %s', p_invitation_id),
                       'member:invite', v_inv.org_id, 'invitation', p_invitation_id);
  SELECT * INTO v_inv FROM um.invitations i WHERE i.id = p_invitation_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'invitation % does not exist', p_invitation_id
      USING ERRCODE = 'UM034', HINT = 'See the open invitations in um.invitations.';
  END IF;
  IF v_inv.state NOT IN ('pending', 'requested') THEN
    RAISE EXCEPTION 'invitation % is no longer open', p_invitation_id
      USING ERRCODE = 'UM053', DETAIL = format('It is %s.', v_inv.state), HINT = 'Nothing to revoke.';
  END IF;
  UPDATE um.invitations i SET state = 'revoked', decided_at = now(), token_hash = NULL WHERE i.id = p_invitation_id;
  PERFORM um_internal.audit('invitation.revoke', v_inv.org_id, 'invitation', p_invitation_id, '{}');
END
$$;
COMMENT ON FUNCTION um_internal.do_revoke_invitation(bigint) IS
  'body of um_revoke_invitation: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_revoke_invitation (EXECUTE held by nobody)';

-- Housekeeping: pending invitations past their expiry become 'expired'.
CREATE FUNCTION um_internal.do_expire_invitations()
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_n integer;
BEGIN
  PERFORM um_internal.authorize('invitation.expire', 'expire invitations', NULL, NULL, 'invitation', NULL);
  IF @extschema@.um_current_user_id() IS NOT NULL THEN
    PERFORM um_internal.deny('invitation.expire', NULL, 'invitation', NULL, 'UM070', 'permission denied to expire invitations',
      'Housekeeping across organizations is for um administrators.', 'Run it from a scheduled job as a um administrator.');
  END IF;
  UPDATE um.invitations i SET state = 'expired', decided_at = now(), token_hash = NULL
   WHERE (i.state = 'pending' AND i.expires_at <= now())
      OR (i.state = 'requested' AND i.created_at <= now() - interval '30 days');   -- unanswered requests
  GET DIAGNOSTICS v_n = ROW_COUNT;
  IF v_n > 0 THEN
    PERFORM um_internal.audit('invitation.expire', NULL, 'invitation', NULL, jsonb_build_object('count', v_n));
  END IF;
  RETURN v_n;
END
$$;
COMMENT ON FUNCTION um_internal.do_expire_invitations() IS
  'body of um_expire_invitations: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_expire_invitations (EXECUTE held by nobody)';

-- ---------------------------------------------------------------------------
-- The public functions: each is src/lifecycle.c's entry point, which calls
-- um_internal.do_<name> with the calling role.  None is STRICT: a NULL argument gets
-- the error that names it.

CREATE FUNCTION @extschema@.um_invite(org_id bigint, emails text, role text DEFAULT 'Member',
                                      team_id bigint DEFAULT NULL, valid_for interval DEFAULT '7 days')
RETURNS TABLE (email text, status text, invitation_id bigint, token text)
AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_invite(bigint, text, text, bigint, interval) IS
  'invite a batch of addresses (commas, semicolons, new lines) with a preset role and team (member:invite); one row per address: invited, renewed, already_member or already_invited, with the token to send';

CREATE FUNCTION @extschema@.um_request_invitation(org_slug text, email text)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_request_invitation(text, text) IS
  'ask to join an organization that takes requests (an Admin approves with um_invite)';

CREATE FUNCTION @extschema@.um_accept_invitation(token text, password text DEFAULT NULL, name text DEFAULT NULL)
RETURNS bigint AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_accept_invitation(text, text, text) IS
  'join with an invitation token: logged out, a new address gets an account with the password given (unverified until its mailbox is proven); an existing account accepts only logged in as itself; returns the user id';

CREATE FUNCTION @extschema@.um_accept_invitation_and_login(token text, password text, name text DEFAULT NULL)
RETURNS text AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_accept_invitation_and_login(text, text, text) IS
  'join with an invitation token as a new address and get a session token: the address counts as verified (only where um.invitations_prove_address is on)';

CREATE FUNCTION @extschema@.um_revoke_invitation(invitation_id bigint)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_revoke_invitation(bigint) IS 'withdraw an open invitation or refuse a request (member:invite)';

CREATE FUNCTION @extschema@.um_expire_invitations()
RETURNS integer AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_expire_invitations() IS
  'um administrators'' housekeeping: mark pending invitations past their expiry, and requests unanswered for 30 days, expired; returns how many';
