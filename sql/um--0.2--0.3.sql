-- um 0.2 -> 0.3
--
-- Written by hand.  Every change made in sql/install/ for 0.3 is also made
-- here, so that ALTER EXTENSION um UPDATE from 0.2 gives exactly what a fresh
-- CREATE EXTENSION um gives (test/shell/upgrade.sh walks 0.1 -> 0.2 -> 0.3
-- and compares the result with a fresh install).

\echo Use "ALTER EXTENSION um UPDATE TO '0.3'" to load this file. \quit

-- The comment of um_accept_invitation said an existing user could accept
-- logged out; 0.2 refuses that (UM056).
COMMENT ON FUNCTION @extschema@.um_accept_invitation(text, text, text) IS
  'join with an invitation token: logged out, a new address gets an account with the password given (unverified until its mailbox is proven); an existing account accepts only logged in as itself; returns the user id';

-- One raise helper: um.raise(sqlstate, message, detail, hint).  The callers
-- of um.invalid_argument(message, hint) raise UM009 through it, the same
-- error with no detail.
CREATE OR REPLACE FUNCTION um.do_transfer_org_ownership(p_org_id bigint, p_new_root_user_id bigint, p_demote_to text,
                                             p_caller oid)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um.authorize(p_caller, 'organization.transfer', format('transfer organization %s', p_org_id),
                                 'org:update', p_org_id, 'user', p_new_root_user_id);
  v_root bigint;
  v_demote um.roles;
  v_user um.users;
BEGIN
  IF v_actor IS NOT NULL AND NOT um.is_root(p_org_id, v_actor) THEN
    PERFORM um.deny('organization.transfer', p_org_id, 'user', p_new_root_user_id, 'UM073',
      'only a Root may transfer ownership of an organization', NULL, 'Ask a Root of the organization.');
  END IF;
  PERFORM um.require_member(p_org_id, p_new_root_user_id);
  v_user := um.require_user(p_new_root_user_id);
  IF v_user.status <> 'active' OR NOT v_user.allow_login
     OR EXISTS (SELECT 1 FROM um.memberships m WHERE m.org_id = p_org_id AND m.user_id = p_new_root_user_id
                                                  AND m.status <> 'active') THEN
    RAISE EXCEPTION 'user % cannot be the Root of an organization', p_new_root_user_id
      USING ERRCODE = 'UM050', DETAIL = 'The user is suspended or notification-only.',
            HINT = 'Choose an active member who can log in.';
  END IF;
  v_demote := um.require_role(p_org_id, coalesce(p_demote_to, 'admin'));
  IF v_demote.builtin = 'root' THEN
    PERFORM um.raise('UM009', 'demote_to must not be the Root role', NULL, 'Pass Admin or another role, or use um_set_org_role to add a Root.');
  END IF;
  SELECT r.id INTO v_root FROM um.roles r WHERE r.org_id = p_org_id AND r.builtin = 'root';
  -- one statement, so the organization is never without a Root
  UPDATE um.memberships m
     SET role_id = CASE WHEN m.user_id = p_new_root_user_id THEN v_root ELSE v_demote.id END
   WHERE m.org_id = p_org_id
     AND (m.user_id = p_new_root_user_id
          OR (m.role_id = v_root AND (v_actor IS NULL OR m.user_id = v_actor)));
  PERFORM um.audit('organization.transfer', p_org_id, 'user', p_new_root_user_id,
                   jsonb_build_object('demoted_to_role_id', v_demote.id));
END
$$;

CREATE OR REPLACE FUNCTION um.do_set_org_setting(p_org_id bigint, p_setting text, p_value jsonb, p_caller oid)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um.authorize(p_caller, 'organization.set_setting',
                                 format('change settings of organization %s', p_org_id),
                                 'org:update', p_org_id, 'organization', p_org_id);
BEGIN
  IF p_setting IS NULL OR p_setting !~ '^[a-z][a-z0-9_]{0,62}$' THEN
    PERFORM um.raise('UM009', format('invalid setting name "%s"', p_setting), NULL,
      'A setting name is lowercase letters, digits and underscores, e.g. allow_invite_requests.');
  END IF;
  CASE p_setting
    WHEN 'name' THEN
      IF jsonb_typeof(p_value) IS DISTINCT FROM 'string' THEN
        PERFORM um.raise('UM009', 'setting "name" takes a JSON string', NULL, 'Pass e.g. ''"Acme Inc."''::jsonb.');
      END IF;
      UPDATE um.organizations o SET name = p_value #>> '{}' WHERE o.id = p_org_id;
    WHEN 'allow_invite_requests', 'password_login_disabled' THEN
      IF jsonb_typeof(p_value) IS DISTINCT FROM 'boolean' THEN
        PERFORM um.raise('UM009', format('setting "%s" takes true or false', p_setting), NULL, 'Pass ''true''::jsonb or ''false''::jsonb.');
      END IF;
      IF p_setting = 'allow_invite_requests' THEN
        UPDATE um.organizations o SET allow_invite_requests = p_value::boolean WHERE o.id = p_org_id;
      ELSE
        IF p_value::boolean AND NOT EXISTS (
             SELECT 1 FROM um.user_identities i
               JOIN um.memberships m ON m.user_id = i.user_id AND m.org_id = i.org_id
               JOIN um.roles r ON r.id = m.role_id
              WHERE i.org_id = p_org_id AND r.builtin = 'root' AND m.status = 'active')
           AND EXISTS (SELECT 1 FROM um.identity_providers p WHERE p.org_id = p_org_id) THEN
          RAISE EXCEPTION 'no Root of organization % has an identity-provider link', p_org_id
            USING ERRCODE = 'UM045',
                  DETAIL = 'Disabling password login now would lock the organization''s Roots out.',
                  HINT = 'Link a Root''s single sign-on identity first (um_link_identity).';
        END IF;
        UPDATE um.organizations o SET password_login_disabled = p_value::boolean WHERE o.id = p_org_id;  -- needs a provider (UM045)
      END IF;
    ELSE
      UPDATE um.organizations o
         SET settings = CASE WHEN p_value IS NULL OR p_value = 'null' THEN o.settings - p_setting
                             ELSE o.settings || jsonb_build_object(p_setting, p_value) END
       WHERE o.id = p_org_id;
  END CASE;
  PERFORM um.audit('organization.set_setting', p_org_id, 'organization', p_org_id,
                   jsonb_build_object('setting', p_setting));
END
$$;

CREATE OR REPLACE FUNCTION um.do_add_identity_provider(p_org_id bigint, p_name text, p_protocol text, p_issuer text,
                                            p_caller oid)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id bigint;
BEGIN
  PERFORM um.authorize(p_caller, 'identity_provider.add', format('add identity providers to organization %s', p_org_id),
                       'org:update', p_org_id, 'organization', p_org_id);
  IF p_protocol IS NULL OR p_protocol NOT IN ('oidc', 'saml') THEN
    PERFORM um.raise('UM009', format('unknown protocol "%s"', p_protocol), NULL, 'Pass ''oidc'' or ''saml''.');
  END IF;
  IF p_issuer IS NULL OR p_issuer !~ '^https://[^[:space:]]+$' THEN
    PERFORM um.raise('UM009', format('invalid issuer "%s"', p_issuer), NULL, 'Pass the provider''s https:// issuer URL.');
  END IF;
  IF NOT um.display_name_is_valid(p_name, 100) THEN
    RAISE EXCEPTION 'invalid identity provider name "%"', p_name
      USING ERRCODE = 'UM003', HINT = 'Use 1 to 100 characters without surrounding blanks.';
  END IF;
  BEGIN
    INSERT INTO um.identity_providers (org_id, name, protocol, issuer)
    VALUES (p_org_id, p_name, p_protocol, p_issuer) RETURNING id INTO v_id;
  EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'organization % already has an identity provider named "%"', p_org_id, p_name
      USING ERRCODE = 'UM027', HINT = 'Choose another name, or use the existing provider.';
  END;
  PERFORM um.audit('identity_provider.add', p_org_id, 'identity_provider', v_id, '{}');
  RETURN v_id;
END
$$;

CREATE OR REPLACE FUNCTION um.do_link_identity(p_org_id bigint, p_provider text, p_subject text, p_user_id bigint,
                                    p_caller oid)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um.authorize(p_caller, 'user.link_identity', format('link identities in organization %s', p_org_id),
                                 'user:update', p_org_id, 'user', p_user_id);
  v_provider bigint;
  v_user bigint := coalesce(p_user_id, v_actor);
BEGIN
  -- a sign-in method outlives the impersonation: never while impersonating
  IF v_actor IS DISTINCT FROM @extschema@.um_real_user_id() THEN
    PERFORM um.deny('user.link_identity', um.actor_org(p_org_id), 'user', v_user, 'UM070',
      'permission denied to link identities while impersonating',
      'A linked identity signs in as the account for good.', 'Call um_end_impersonation() first.');
  END IF;
  IF v_user IS NULL THEN
    PERFORM um.raise('UM009', 'a user is required', NULL, 'Pass user_id.');
  END IF;
  PERFORM um.require_member(p_org_id, v_user);
  PERFORM um.guard_root_target(v_actor, p_org_id, v_user, 'user.link_identity', 'link an identity to');
  -- a sign-in method on an account whose mailbox nobody proved would be
  -- waiting for its owner, who may not be who created it
  IF v_actor IS NOT NULL AND v_actor <> v_user
     AND (SELECT u.email_verified_at IS NULL FROM um.users u WHERE u.id = v_user) THEN
    PERFORM um.deny('user.link_identity', p_org_id, 'user', v_user, 'UM070',
      'permission denied to link an identity to an unverified account',
      'The address of the account was never proven; whoever claims it later must not find a sign-in method of someone else''s.',
      'Have the backend send a verification (um_resend_verification) first.');
  END IF;
  IF v_actor IS NOT NULL AND v_actor <> v_user THEN
    -- a sign-in method is the whole account's, in every organization of the user
    PERFORM um.authorize_user(p_caller, 'user.link_identity', format('link an identity to user %s', v_user),
                              'user:update', v_user);
  END IF;
  SELECT p.id INTO v_provider FROM um.identity_providers p
   WHERE p.org_id = p_org_id AND lower(p.name) = lower(p_provider);
  IF NOT FOUND THEN
    RAISE EXCEPTION 'organization % has no identity provider named "%"', p_org_id, p_provider
      USING ERRCODE = 'UM037', HINT = 'Add it with um_add_identity_provider(), or see um.identity_providers.';
  END IF;
  IF p_subject IS NULL OR length(p_subject) NOT BETWEEN 1 AND 255 THEN
    PERFORM um.raise('UM009', 'invalid subject', NULL, 'Pass the provider''s subject identifier (1 to 255 characters).');
  END IF;
  BEGIN
    INSERT INTO um.user_identities (org_id, provider_id, subject, user_id)
    VALUES (p_org_id, v_provider, p_subject, v_user);
  EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'that subject of provider "%" is already linked to a user', p_provider
      USING ERRCODE = 'UM027', HINT = 'A provider''s subject identifies one user; unlink it first.';
  END;
  PERFORM um.audit('user.link_identity', p_org_id, 'user', v_user, jsonb_build_object('provider_id', v_provider));
END
$$;

CREATE OR REPLACE FUNCTION um.do_create_team(p_org_id bigint, p_name text, p_description text, p_owner_user_id bigint,
                                  p_caller oid)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um.authorize(p_caller, 'team.create', format('create teams in organization %s', p_org_id),
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
  BEGIN
    INSERT INTO um.teams (org_id, name, description) VALUES (p_org_id, p_name, p_description)
    RETURNING id INTO v_id;
  EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'organization % already has a team named "%"', p_org_id, p_name
      USING ERRCODE = 'UM025', HINT = 'Choose another name (team names are unique regardless of letter case).';
  END;
  INSERT INTO um.team_members (org_id, team_id, user_id, is_owner) VALUES (p_org_id, v_id, v_owner, true);
  PERFORM um.audit('team.create', p_org_id, 'team', v_id, jsonb_build_object('owner_user_id', v_owner));
  RETURN v_id;
END
$$;

CREATE OR REPLACE FUNCTION um.authorize_role_edit(p_caller oid, p_action text, p_role_id bigint, p_permission text)
RETURNS um.roles
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_role um.roles;
  v_actor bigint;
BEGIN
  SELECT * INTO v_role FROM um.roles r WHERE r.id = p_role_id;
  v_actor := um.authorize(p_caller, p_action, format('edit role %s', p_role_id), 'role:update',
                          v_role.org_id, 'role', p_role_id);
  v_role := um.require_role_id(p_role_id);
  IF v_actor IS NOT NULL AND v_role.builtin = 'root' AND NOT um.is_root(v_role.org_id, v_actor) THEN
    PERFORM um.deny(p_action, v_role.org_id, 'role', p_role_id, 'UM073',
      'only a Root may edit the Root role', NULL, 'Ask a Root of the organization.');
  END IF;
  IF p_permission IS NULL THEN
    PERFORM um.raise('UM009', 'a permission is required', NULL, 'Pass "resource:action", or a pattern with *.');
  END IF;
  PERFORM um.assert_permission_name(p_permission, true);
  RETURN v_role;
END
$$;

CREATE OR REPLACE FUNCTION um.do_grant_scope_role(p_scope_id bigint, p_role text, p_user_id bigint, p_team_id bigint,
                                       p_caller oid)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_scope um.scopes;
  v_actor bigint;
  v_role um.roles;
  v_id bigint;
BEGIN
  SELECT * INTO v_scope FROM um.scopes s WHERE s.id = p_scope_id;
  v_actor := um.authorize(p_caller, 'grant.create', format('give roles on scope node %s', p_scope_id), 'role:grant',
                          v_scope.org_id, 'scope', p_scope_id);
  v_scope := um.require_scope(p_scope_id);
  IF num_nonnulls(p_user_id, p_team_id) <> 1 THEN
    PERFORM um.raise('UM009', 'name exactly one grantee', NULL, 'Pass user_id or team_id, not both.');
  END IF;
  v_role := um.require_role(v_scope.org_id, p_role);
  IF p_user_id IS NOT NULL THEN
    PERFORM um.require_member(v_scope.org_id, p_user_id);
  ELSIF NOT EXISTS (SELECT 1 FROM um.teams t WHERE t.id = p_team_id AND t.org_id = v_scope.org_id) THEN
    RAISE EXCEPTION 'team % does not exist in organization %', p_team_id, v_scope.org_id
      USING ERRCODE = 'UM033', HINT = 'Look the team up in um.teams.';
  END IF;
  PERFORM um.guard_escalation(v_actor, v_scope.org_id, p_scope_id, ARRAY(SELECT um.role_grants(v_role.id)),
                              'grant.create', format('give role "%s"', v_role.name), 'scope', p_scope_id);
  INSERT INTO um.grants (org_id, role_id, user_id, team_id, scope_id, granted_by)
  VALUES (v_scope.org_id, v_role.id, p_user_id, p_team_id, p_scope_id, v_actor)
  ON CONFLICT DO NOTHING
  RETURNING id INTO v_id;
  IF v_id IS NULL THEN
    SELECT g.id INTO v_id FROM um.grants g
     WHERE g.org_id = v_scope.org_id AND g.role_id = v_role.id AND g.scope_id = p_scope_id AND g.scope_kind IS NULL
       AND g.user_id IS NOT DISTINCT FROM p_user_id AND g.team_id IS NOT DISTINCT FROM p_team_id;
    RETURN v_id;
  END IF;
  PERFORM um.audit('grant.create', v_scope.org_id, 'scope', p_scope_id,
                   jsonb_build_object('grant_id', v_id, 'role_id', v_role.id, 'user_id', p_user_id, 'team_id', p_team_id));
  RETURN v_id;
END
$$;

CREATE OR REPLACE FUNCTION um.do_revoke_scope_role(p_scope_id bigint, p_role text, p_user_id bigint, p_team_id bigint,
                                        p_caller oid)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_scope um.scopes;
  v_actor bigint;
  v_role um.roles;
  v_id bigint;
BEGIN
  SELECT * INTO v_scope FROM um.scopes s WHERE s.id = p_scope_id;
  v_actor := um.authorize(p_caller, 'grant.delete', format('take roles on scope node %s', p_scope_id), 'role:grant',
                          v_scope.org_id, 'scope', p_scope_id);
  v_scope := um.require_scope(p_scope_id);
  IF num_nonnulls(p_user_id, p_team_id) <> 1 THEN
    PERFORM um.raise('UM009', 'name exactly one grantee', NULL, 'Pass user_id or team_id, not both.');
  END IF;
  v_role := um.require_role(v_scope.org_id, p_role);
  IF p_user_id IS NOT NULL THEN
    PERFORM um.guard_root_target(v_actor, v_scope.org_id, p_user_id, 'grant.delete', 'take roles from');
  END IF;
  DELETE FROM um.grants g
   WHERE g.org_id = v_scope.org_id AND g.role_id = v_role.id AND g.scope_id = p_scope_id AND g.scope_kind IS NULL
     AND g.user_id IS NOT DISTINCT FROM p_user_id AND g.team_id IS NOT DISTINCT FROM p_team_id
  RETURNING g.id INTO v_id;
  IF v_id IS NULL THEN
    RETURN false;
  END IF;
  PERFORM um.audit('grant.delete', v_scope.org_id, 'scope', p_scope_id,
                   jsonb_build_object('grant_id', v_id, 'role_id', v_role.id, 'user_id', p_user_id, 'team_id', p_team_id));
  RETURN true;
END
$$;

CREATE OR REPLACE FUNCTION um.do_invite(p_org_id bigint, p_emails text, p_role text, p_team_id bigint, p_valid_for interval,
                             p_caller oid)
RETURNS TABLE (email text, status text, invitation_id bigint, token text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
  v_actor bigint := um.authorize(p_caller, 'invitation.create', format('invite people to organization %s', p_org_id),
                                 'member:invite', p_org_id, 'invitation', NULL);
  v_role um.roles := um.require_role(p_org_id, coalesce(p_role, 'member'));
  v_emails text[] := um.parse_email_batch(p_emails);
  v_bad text[];
  v_email text;
  v_token text;
  v_id bigint;
  v_expires timestamptz;
BEGIN
  IF v_role.builtin = 'root' AND v_actor IS NOT NULL AND NOT um.is_root(p_org_id, v_actor) THEN
    PERFORM um.deny('invitation.create', p_org_id, 'invitation', NULL, 'UM073',
      'only a Root may invite a Root', NULL, 'Invite with another role; a Root can promote the member later.');
  END IF;
  PERFORM um.guard_escalation(v_actor, p_org_id, NULL, ARRAY(SELECT um.role_grants(v_role.id)),
                              'invitation.create', format('invite with role "%s"', v_role.name), 'invitation', NULL);
  IF p_team_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM um.teams t WHERE t.id = p_team_id AND t.org_id = p_org_id) THEN
    RAISE EXCEPTION 'team % does not exist in organization %', p_team_id, p_org_id
      USING ERRCODE = 'UM033', HINT = 'Look the team up in um.teams.';
  END IF;
  IF p_team_id IS NOT NULL THEN
    -- inviting into a team is adding a team member: team:manage or its owner,
    -- and no team whose grants hold more than the inviter
    PERFORM um.authorize_team(p_caller, 'invitation.create', format('invite people into team %s', p_team_id), p_team_id, NULL);
    PERFORM um.guard_team_grants(v_actor, p_team_id, 'invitation.create', NULL);
  END IF;
  IF p_valid_for IS NULL OR p_valid_for <= interval '0' OR p_valid_for > interval '90 days' THEN
    PERFORM um.raise('UM009', format('invalid validity "%s"', p_valid_for), NULL, 'Pass an interval between 1 second and 90 days.');
  END IF;
  IF cardinality(v_emails) = 0 THEN
    RAISE EXCEPTION 'no email addresses given'
      USING ERRCODE = 'UM054', HINT = 'Pass addresses separated by commas, semicolons or new lines.';
  END IF;
  SELECT array_agg(e ORDER BY n) INTO v_bad FROM unnest(v_emails) WITH ORDINALITY AS x(e, n) WHERE NOT um.email_is_valid(e);
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
    v_token := um.generate_token();
    -- an open invitation (or request) for the address is renewed
    UPDATE um.invitations i
       SET state = 'pending', token_hash = um.token_hash(v_token), expires_at = v_expires, role_id = v_role.id,
           team_id = p_team_id, invited_by = v_actor, created_at = now()
     WHERE i.org_id = p_org_id AND lower(i.email) = lower(v_email) AND i.state IN ('pending', 'requested')
    RETURNING i.id INTO v_id;
    IF FOUND THEN
      status := 'renewed';
    ELSE
      BEGIN
        INSERT INTO um.invitations (org_id, email, role_id, team_id, state, token_hash, invited_by, expires_at)
        VALUES (p_org_id, v_email, v_role.id, p_team_id, 'pending', um.token_hash(v_token), v_actor, v_expires)
        RETURNING id INTO v_id;
        status := 'invited';
      EXCEPTION WHEN unique_violation THEN          -- invited at this very moment by someone else
        status := 'already_invited';
        RETURN NEXT;
        CONTINUE;
      END;
    END IF;
    invitation_id := v_id; token := v_token;
    PERFORM um.audit('invitation.create', p_org_id, 'invitation', v_id,
                     jsonb_build_object('role_id', v_role.id, 'team_id', p_team_id, 'renewed', status = 'renewed'));
    RETURN NEXT;
  END LOOP;
END
$$;

DROP FUNCTION um.invalid_argument(text, text);
