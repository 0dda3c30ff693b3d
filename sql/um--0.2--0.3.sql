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

-- Functions changed by several of the steps below appear once, with their
-- 0.3 body, under the first step that changed them.

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
  PERFORM um.require_root_candidate(v_user, p_org_id);
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
  INSERT INTO um.identity_providers (org_id, name, protocol, issuer)
  VALUES (p_org_id, p_name, p_protocol, p_issuer)
  ON CONFLICT (org_id, lower(name)) DO NOTHING
  RETURNING id INTO v_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'organization % already has an identity provider named "%"', p_org_id, p_name
      USING ERRCODE = 'UM027', HINT = 'Choose another name, or use the existing provider.';
  END IF;
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
  INSERT INTO um.user_identities (org_id, provider_id, subject, user_id)
  VALUES (p_org_id, v_provider, p_subject, v_user)
  ON CONFLICT (provider_id, subject) DO NOTHING;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'that subject of provider "%" is already linked to a user', p_provider
      USING ERRCODE = 'UM027', HINT = 'A provider''s subject identifies one user; unlink it first.';
  END IF;
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
  v_id := um.write_team(p_org_id, NULL, p_name, p_description);
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
  PERFORM um.assert_one_grantee(p_user_id, p_team_id);
  v_role := um.require_role(v_scope.org_id, p_role);
  IF p_user_id IS NOT NULL THEN
    PERFORM um.require_member(v_scope.org_id, p_user_id);
  ELSE
    PERFORM um.require_org_team(v_scope.org_id, p_team_id);
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
  PERFORM um.assert_one_grantee(p_user_id, p_team_id);
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
  IF p_team_id IS NOT NULL THEN
    PERFORM um.require_org_team(p_org_id, p_team_id);
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
      INSERT INTO um.invitations (org_id, email, role_id, team_id, state, token_hash, invited_by, expires_at)
      VALUES (p_org_id, v_email, v_role.id, p_team_id, 'pending', um.token_hash(v_token), v_actor, v_expires)
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
    PERFORM um.audit('invitation.create', p_org_id, 'invitation', v_id,
                     jsonb_build_object('role_id', v_role.id, 'team_id', p_team_id, 'renewed', status = 'renewed'));
    RETURN NEXT;
  END LOOP;
END
$$;

DROP FUNCTION um.invalid_argument(text, text);

-- Every message written once: the errors that several functions raised with
-- the same text now come from one lookup or check each, with the same
-- SQLSTATE, message, detail and hint as before: um.require_actor (UM072
-- "nobody is acting in this transaction"), um.require_org_team (UM033 "team
-- % does not exist in organization %"), um.require_team_member (UM038 "user
-- % is not a member of team %"), um.require_root_candidate (UM050 "user %
-- cannot be the Root of an organization") and um.assert_one_grantee (UM009
-- "name exactly one grantee").
CREATE OR REPLACE FUNCTION um.require_actor(p_hint text)
RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := @extschema@.um_current_user_id();
BEGIN
  IF v_actor IS NULL THEN
    RAISE EXCEPTION 'nobody is acting in this transaction'
      USING ERRCODE = 'UM072', HINT = p_hint;
  END IF;
  RETURN v_actor;
END
$$;

CREATE OR REPLACE FUNCTION um.require_org_team(p_org_id bigint, p_team_id bigint)
RETURNS um.teams
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.teams;
BEGIN
  SELECT * INTO v FROM um.teams t WHERE t.id = p_team_id AND t.org_id = p_org_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'team % does not exist in organization %', p_team_id, p_org_id
      USING ERRCODE = 'UM033', HINT = 'Look the team up in um.teams.';
  END IF;
  RETURN v;
END
$$;

CREATE OR REPLACE FUNCTION um.require_team_member(p_team um.teams, p_user_id bigint, p_hint text)
RETURNS um.team_members
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.team_members;
BEGIN
  SELECT * INTO v FROM um.team_members tm WHERE tm.team_id = p_team.id AND tm.user_id = p_user_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'user % is not a member of team "%"', p_user_id, p_team.name
      USING ERRCODE = 'UM038', HINT = p_hint;
  END IF;
  RETURN v;
END
$$;

CREATE OR REPLACE FUNCTION um.require_root_candidate(p_user um.users, p_org_id bigint)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF p_user.status <> 'active' OR NOT p_user.allow_login
     OR (p_org_id IS NOT NULL
         AND EXISTS (SELECT 1 FROM um.memberships m WHERE m.org_id = p_org_id AND m.user_id = p_user.id
                                                      AND m.status <> 'active')) THEN
    RAISE EXCEPTION 'user % cannot be the Root of an organization', p_user.id
      USING ERRCODE = 'UM050',
            DETAIL = CASE WHEN p_org_id IS NOT NULL THEN 'The user is suspended or notification-only.'
                          WHEN p_user.status <> 'active' THEN 'The user is suspended.'
                          ELSE 'The user is notification-only (allow_login is false).' END,
            HINT = CASE WHEN p_org_id IS NULL THEN 'Choose an active user who can log in.'
                        ELSE 'Choose an active member who can log in.' END;
  END IF;
END
$$;

CREATE OR REPLACE FUNCTION um.assert_one_grantee(p_user_id bigint, p_team_id bigint)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF num_nonnulls(p_user_id, p_team_id) <> 1 THEN
    PERFORM um.raise('UM009', 'name exactly one grantee', NULL, 'Pass user_id or team_id, not both.');
  END IF;
END
$$;

REVOKE EXECUTE ON FUNCTION
  um.require_actor(text),
  um.require_org_team(bigint, bigint),
  um.require_team_member(um.teams, bigint, text),
  um.require_root_candidate(um.users, bigint),
  um.assert_one_grantee(bigint, bigint)
FROM PUBLIC;

CREATE OR REPLACE FUNCTION @extschema@.um_impersonate(target_user_id bigint)
RETURNS bigint[]
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um.require_actor('Call um_begin(token) first; impersonation starts from a logged-in user.');
  v_target um.users;
  v_orgs bigint[];
BEGIN
  IF v_actor IS DISTINCT FROM @extschema@.um_real_user_id() THEN
    PERFORM um.deny('user.impersonate', NULL, 'user', target_user_id, 'UM071',
      'cannot impersonate while impersonating', NULL, 'Call um_end_impersonation() first.');
  END IF;
  IF target_user_id = v_actor THEN
    PERFORM um.deny('user.impersonate', NULL, 'user', target_user_id, 'UM071',
      'cannot impersonate oneself', NULL, 'Pass the id of another user.');
  END IF;
  -- first: may the actor impersonate anybody in an organization of the
  -- target's?  (Until then, say nothing about the target, not even whether
  -- it exists.)
  SELECT array_agg(m.org_id ORDER BY m.org_id) INTO v_orgs
    FROM um.memberships m
   WHERE m.user_id = target_user_id AND m.status = 'active'
     AND @extschema@.um_has_permission(v_actor, 'user:impersonate', m.org_id);
  IF v_orgs IS NULL THEN
    PERFORM um.deny('user.impersonate', NULL, 'user', target_user_id, 'UM070',
      format('permission denied to impersonate user %s', target_user_id),
      'Impersonation needs user:impersonate in an organization the target is an active member of.',
      'Ask an Admin of the target''s organization.');
  END IF;
  v_target := um.require_user(target_user_id);
  IF EXISTS (SELECT 1 FROM um.memberships m JOIN um.roles r ON r.id = m.role_id
              WHERE m.user_id = v_target.id AND r.builtin IN ('root', 'admin')) THEN
    PERFORM um.deny('user.impersonate', v_orgs[1], 'user', target_user_id, 'UM071',
      format('cannot impersonate user %s, an Admin or Root', target_user_id),
      'Admins and roots (of any organization) are never impersonated.',
      'Ask the user to act themselves.');
  END IF;
  IF v_target.status <> 'active' OR NOT v_target.allow_login THEN
    PERFORM um.deny('user.impersonate', v_orgs[1], 'user', target_user_id, 'UM071',
      format('cannot impersonate user %s', target_user_id),
      'The user is suspended or may not log in.', 'Reactivate the user first, or act yourself.');
  END IF;
  SELECT array_agg(o ORDER BY o) INTO v_orgs
    FROM unnest(v_orgs) AS o
   WHERE NOT um.impersonation_escalates(v_actor, v_target.id, o);
  IF v_orgs IS NULL THEN
    PERFORM um.deny('user.impersonate', NULL, 'user', target_user_id, 'UM070',
      format('permission denied to impersonate user %s', target_user_id),
      'The target holds a permission you lack; impersonating them would give it to you.',
      'Ask someone who holds every permission of the target''s.');
  END IF;
  PERFORM um.start_impersonation(v_target.id, v_orgs);
  -- committed at once: a transaction that reads as the target and then
  -- rolls back still leaves the impersonation on record
  PERFORM um.audit_autonomous('user.impersonate', 'ok', v_orgs[1], 'user', v_target.id,
                              jsonb_build_object('orgs', to_jsonb(v_orgs)));
  RETURN v_orgs;
END
$$;

CREATE OR REPLACE FUNCTION um.do_create_organization(p_slug text, p_name text, p_root_user_id bigint, p_caller oid)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := @extschema@.um_current_user_id();
  v_user um.users;
  v_org bigint;
  v_root bigint;
BEGIN
  IF v_actor IS NULL THEN
    PERFORM um.authorize(p_caller, 'organization.create', 'create an organization', NULL, NULL, 'organization', NULL);
  ELSIF p_root_user_id IS DISTINCT FROM v_actor OR v_actor IS DISTINCT FROM @extschema@.um_real_user_id() THEN
    PERFORM um.deny('organization.create', NULL, 'user', p_root_user_id, 'UM070',
      'permission denied to create an organization for another user',
      'A logged-in user creates organizations only with themself as the Root (and not while impersonating).',
      'Pass your own user id as root_user_id.');
  END IF;
  v_user := um.require_user(p_root_user_id);
  PERFORM um.require_root_candidate(v_user, NULL);
  -- nothing inserted for a slug taken already or at this very moment
  INSERT INTO um.organizations (slug, name)
  SELECT p_slug, p_name WHERE NOT EXISTS (SELECT 1 FROM um.organizations o WHERE o.slug = p_slug)
  ON CONFLICT (slug) DO NOTHING
  RETURNING id INTO v_org;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'organization slug "%" is already taken', p_slug
      USING ERRCODE = 'UM021', HINT = 'Choose another slug.';
  END IF;
  v_root := um.seed_builtin_roles(v_org);
  INSERT INTO um.memberships (org_id, user_id, role_id) VALUES (v_org, p_root_user_id, v_root);
  PERFORM um.audit('organization.create', v_org, 'organization', v_org,
                   jsonb_build_object('root_user_id', p_root_user_id));
  RETURN v_org;
END
$$;

CREATE OR REPLACE FUNCTION um.do_delete_my_account(p_caller oid)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um.require_actor('Call um_begin(token) first: an account is deleted by its own user.');
BEGIN
  IF v_actor IS DISTINCT FROM @extschema@.um_real_user_id() THEN
    PERFORM um.deny('user.delete_self', NULL, 'user', v_actor, 'UM071',
      'cannot delete an account while impersonating it', NULL, 'Call um_end_impersonation() first.');
  END IF;
  PERFORM um.erase_user(v_actor, 'user.delete_self');
END
$$;

CREATE OR REPLACE FUNCTION um.do_export_my_data(p_caller oid)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um.require_actor('Call um_begin(token) first: users export their own data.');
  v jsonb;
BEGIN
  IF v_actor IS DISTINCT FROM @extschema@.um_real_user_id() THEN
    PERFORM um.deny('user.export_self', NULL, 'user', v_actor, 'UM071',
      'cannot export a user''s data while impersonating them', NULL, 'Call um_end_impersonation() first.');
  END IF;
  SELECT jsonb_build_object(
           'exported_at', now(),
           'profile', jsonb_build_object('id', u.id, 'email', u.email, 'name', u.name, 'timezone', u.timezone,
                                         'locale', u.locale, 'mobile', u.mobile, 'allow_login', u.allow_login,
                                         'status', u.status, 'email_verified_at', u.email_verified_at,
                                         'password_changed_at', u.password_changed_at,
                                         'attributes', u.attributes, 'created_at', u.created_at),
           'memberships', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                             'org_id', o.id, 'organization', o.name, 'role', r.name, 'status', m.status,
                             'member_since', m.created_at) ORDER BY o.id), '[]')
                             FROM um.memberships m JOIN um.organizations o ON o.id = m.org_id JOIN um.roles r ON r.id = m.role_id
                            WHERE m.user_id = u.id),
           'teams', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                       'org_id', t.org_id, 'team', t.name, 'owner', tm.is_owner, 'added_at', tm.added_at,
                       'roles', (SELECT coalesce(jsonb_agg(tr.name ORDER BY tr.name), '[]')
                                   FROM um.team_member_roles tmr JOIN um.roles tr ON tr.id = tmr.role_id
                                  WHERE tmr.team_id = tm.team_id AND tmr.user_id = u.id)) ORDER BY t.id), '[]')
                       FROM um.team_members tm JOIN um.teams t ON t.id = tm.team_id WHERE tm.user_id = u.id),
           'grants', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                        'org_id', g.org_id, 'role', gr.name, 'scope_id', g.scope_id, 'scope_kind', g.scope_kind,
                        'granted_at', g.created_at) ORDER BY g.id), '[]')
                        FROM um.grants g JOIN um.roles gr ON gr.id = g.role_id WHERE g.user_id = u.id),
           'sessions', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                          'created_at', s.created_at, 'expires_at', s.expires_at, 'method', s.method,
                          'ended_at', s.revoked_at) ORDER BY s.id), '[]')
                          FROM um.sessions s WHERE s.user_id = u.id),
           'identities', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                            'provider', p.name, 'subject', i.subject, 'linked_at', i.created_at) ORDER BY p.id), '[]')
                            FROM um.user_identities i JOIN um.identity_providers p ON p.id = i.provider_id
                           WHERE i.user_id = u.id),
           'audit_events', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                              'at', a.at, 'action', a.action, 'outcome', a.outcome, 'org_id', a.org_id,
                              'target_type', a.target_type, 'target_id', a.target_id,
                              'by_me', a.actor_user_id = u.id) ORDER BY a.id), '[]')
                              FROM um.audit_events a
                             WHERE a.actor_user_id = u.id OR (a.target_type = 'user' AND a.target_id = u.id)))
    INTO v
    FROM um.users u WHERE u.id = v_actor;
  PERFORM um.audit('user.export_self', NULL, 'user', v_actor, '{}');
  RETURN v;
END
$$;

CREATE OR REPLACE FUNCTION um.do_grant_team_role(p_team_id bigint, p_user_id bigint, p_role text, p_caller oid)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um.authorize_team(p_caller, 'team.grant_role', format('give roles in team %s', p_team_id),
                                      p_team_id, p_user_id);
  v_team um.teams := um.require_team(p_team_id);
  v_role um.roles := um.require_role(v_team.org_id, p_role);
BEGIN
  PERFORM um.require_team_member(v_team, p_user_id, 'Add them to the team first (um_add_team_member).');
  PERFORM um.guard_escalation(v_actor, v_team.org_id, v_team.scope_id, ARRAY(SELECT um.role_grants(v_role.id)),
                              'team.grant_role', format('give team role "%s"', v_role.name), 'user', p_user_id);
  INSERT INTO um.team_member_roles (org_id, team_id, user_id, role_id)
  VALUES (v_team.org_id, p_team_id, p_user_id, v_role.id) ON CONFLICT DO NOTHING;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  PERFORM um.audit('team.grant_role', v_team.org_id, 'user', p_user_id,
                   jsonb_build_object('team_id', p_team_id, 'role_id', v_role.id));
  RETURN true;
END
$$;

CREATE OR REPLACE FUNCTION um.do_remove_team_member(p_team_id bigint, p_user_id bigint, p_caller oid)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint;
  v_team um.teams;
BEGIN
  v_actor := um.authorize_team(p_caller, 'team.remove_member', format('remove members of team %s', p_team_id),
                               p_team_id, p_user_id);
  v_team := um.require_team(p_team_id);
  PERFORM um.guard_root_target(v_actor, v_team.org_id, p_user_id, 'team.remove_member', 'remove from a team');
  PERFORM um.require_team_member(v_team, p_user_id, 'See the team''s members in um.team_members.');
  PERFORM um.assert_not_team_owner(v_team.org_id, p_team_id, p_user_id);
  DELETE FROM um.team_members tm WHERE tm.team_id = p_team_id AND tm.user_id = p_user_id;
  PERFORM um.audit('team.remove_member', v_team.org_id, 'user', p_user_id, jsonb_build_object('team_id', p_team_id));
END
$$;

CREATE OR REPLACE FUNCTION um.do_transfer_team_ownership(p_team_id bigint, p_new_owner_user_id bigint, p_caller oid)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint;
  v_owner bigint;
  v_team um.teams;
BEGIN
  v_actor := um.authorize_team(p_caller, 'team.transfer', format('transfer team %s', p_team_id),
                               p_team_id, p_new_owner_user_id);
  v_team := um.require_team(p_team_id);
  -- the owner loses the team: only a Root takes a team from a Root
  SELECT tm.user_id INTO v_owner FROM um.team_members tm WHERE tm.team_id = p_team_id AND tm.is_owner;
  IF v_owner IS NOT NULL THEN
    PERFORM um.guard_root_target(v_actor, v_team.org_id, v_owner, 'team.transfer', 'take a team from');
  END IF;
  PERFORM um.require_team_member(v_team, p_new_owner_user_id, 'Add them to the team first (um_add_team_member).');
  -- one statement: the team always has exactly one owner
  UPDATE um.team_members tm SET is_owner = (tm.user_id = p_new_owner_user_id)
   WHERE tm.team_id = p_team_id AND (tm.is_owner OR tm.user_id = p_new_owner_user_id);
  PERFORM um.audit('team.transfer', v_team.org_id, 'user', p_new_owner_user_id, jsonb_build_object('team_id', p_team_id));
END
$$;

-- INSERT ... ON CONFLICT DO NOTHING on the unique index, with the pre-check
-- (where there was one) in the same statement, instead of a pre-check and a
-- subtransaction catching unique_violation: the same error (or, in
-- um_invite and um_request_invitation, the same quiet outcome) when the row
-- exists already or is inserted concurrently.  Creating and renaming a team
-- keep one such block, in um.write_team below (see 88_teams.sql).
CREATE OR REPLACE FUNCTION um.insert_user(p_email text, p_name text, p_allow_login boolean, p_timezone text,
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

CREATE OR REPLACE FUNCTION um.do_add_member(p_org_id bigint, p_user_id bigint, p_role text, p_caller oid)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um.authorize(p_caller, 'member.add', format('add members to organization %s', p_org_id),
                                 'member:create', p_org_id, 'user', p_user_id);
  v_org um.organizations;
  v_role um.roles := um.require_role(p_org_id, coalesce(p_role, 'member'));
  v_id bigint;
BEGIN
  -- An acting user never pulls an existing account into their organization
  -- (it would show them its data and put it under their control): people
  -- join through an invitation they accept.
  IF v_actor IS NOT NULL THEN
    PERFORM um.deny('member.add', p_org_id, 'user', p_user_id, 'UM070',
      'permission denied to add an existing user directly',
      'People join an organization by accepting an invitation; only a um administrator adds them directly.',
      'Invite the address with um_invite(), or create a new user with um_create_user(org_id, email, ...).');
  END IF;
  v_org := um.require_organization(p_org_id);
  PERFORM um.guard_escalation(v_actor, p_org_id, NULL, ARRAY(SELECT um.role_grants(v_role.id)),
                              'member.add', format('add a member with role "%s"', v_role.name), 'user', p_user_id);
  PERFORM um.require_user(p_user_id);
  -- nothing inserted for a member already, or one added at this very moment
  INSERT INTO um.memberships (org_id, user_id, role_id, invited_by)
  SELECT p_org_id, p_user_id, v_role.id, v_actor
   WHERE NOT EXISTS (SELECT 1 FROM um.memberships m WHERE m.org_id = p_org_id AND m.user_id = p_user_id)
  ON CONFLICT (org_id, user_id) DO NOTHING
  RETURNING id INTO v_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'user % is already a member of organization "%"', p_user_id, v_org.slug
      USING ERRCODE = 'UM022',
            HINT = 'Change the member''s role instead; a user holds one organization role.';
  END IF;
  PERFORM um.audit('member.add', p_org_id, 'user', p_user_id, jsonb_build_object('role_id', v_role.id));
  RETURN v_id;
END
$$;

CREATE OR REPLACE FUNCTION um.do_create_role(p_org_id bigint, p_name text, p_permissions text[], p_description text,
                                  p_caller oid)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um.authorize(p_caller, 'role.create', format('create roles in organization %s', p_org_id),
                                 'role:create', p_org_id, 'role', NULL);
  v_id bigint;
  v_p text;
BEGIN
  -- bad input first: the refusals below quote the name
  IF p_name IS NULL OR NOT um.display_name_is_valid(p_name, 100) THEN
    RAISE EXCEPTION 'invalid role name "%"', left(p_name, 100) || CASE WHEN length(p_name) > 100 THEN '...' ELSE '' END
      USING ERRCODE = 'UM003',
            DETAIL = 'A name has 1 to 100 characters, no leading or trailing blanks and no control characters.',
            HINT = 'Trim or shorten the name.';
  END IF;
  FOREACH v_p IN ARRAY coalesce(p_permissions, '{}') LOOP
    PERFORM um.assert_permission_name(v_p, true);
  END LOOP;
  PERFORM um.guard_escalation(v_actor, p_org_id, NULL,
                              ARRAY(SELECT DISTINCT g FROM unnest(coalesce(p_permissions, '{}')) AS p, um.pattern_grants(p) AS g),
                              'role.create', format('create role "%s"', p_name), 'role', NULL);
  INSERT INTO um.roles (org_id, name, description) VALUES (p_org_id, p_name, p_description)
  ON CONFLICT (org_id, lower(name)) DO NOTHING
  RETURNING id INTO v_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'organization % already has a role named "%"', p_org_id, p_name
      USING ERRCODE = 'UM026', HINT = 'Choose another name (role names are unique regardless of letter case).';
  END IF;
  -- an acting user's patterns become the permissions they stand for today:
  -- a pattern would also cover permissions registered later, which the
  -- grantor does not hold (a um administrator may store patterns)
  INSERT INTO um.role_permissions (org_id, role_id, permission)
  SELECT DISTINCT p_org_id, v_id, x
    FROM unnest(coalesce(p_permissions, '{}')) AS p,
         LATERAL (SELECT p WHERE v_actor IS NULL OR strpos(p, '*') = 0
                  UNION ALL
                  SELECT g FROM um.pattern_grants(p) AS g WHERE v_actor IS NOT NULL AND strpos(p, '*') > 0) AS e(x);   -- unknown names: UM011
  PERFORM um.audit('role.create', p_org_id, 'role', v_id, jsonb_build_object('permissions', to_jsonb(coalesce(p_permissions, '{}'))));
  RETURN v_id;
END
$$;

CREATE OR REPLACE FUNCTION um.do_request_invitation(p_org_slug text, p_email text, p_caller oid)
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
  IF v_email IS NULL OR NOT um.email_is_valid(v_email) THEN
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
  PERFORM um.audit('invitation.request', v_org.id, 'invitation', v_id, '{}');
END
$$;

-- The invalid-address error of users and invitations (UM001, the same
-- detail and hint) comes from one check, um.assert_email, which both
-- triggers call.
CREATE OR REPLACE FUNCTION um.assert_email(email text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF NOT um.email_is_valid(email) THEN
    RAISE EXCEPTION 'invalid email address "%"', email
      USING ERRCODE = 'UM001',
            DETAIL = 'An address is local-part@domain, in ASCII, at most 254 bytes, with a domain of at least two labels.',
            HINT = 'Check the address for typos; write internationalized domains in their xn-- (punycode) form.';
  END IF;
END
$$;
COMMENT ON FUNCTION um.assert_email(text) IS
  'raises SQLSTATE UM001 when email is not a valid address (see um.email_is_valid); NULL passes, for NOT NULL to refuse';
REVOKE EXECUTE ON FUNCTION um.assert_email(text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION um.users_before_write()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM um.assert_email(NEW.email);
  IF NEW.name IS NOT NULL AND NOT um.display_name_is_valid(NEW.name) THEN
    RAISE EXCEPTION 'invalid user name "%"', NEW.name
      USING ERRCODE = 'UM003',
            DETAIL = 'A name has 1 to 200 characters, no leading or trailing blanks and no control characters.',
            HINT = 'Trim the name, or pass NULL for a user without a name.';
  END IF;
  IF (TG_OP = 'INSERT' OR NEW.timezone IS DISTINCT FROM OLD.timezone)
     AND NOT um.timezone_is_valid(NEW.timezone) THEN
    RAISE EXCEPTION 'unknown time zone "%"', NEW.timezone
      USING ERRCODE = 'UM004',
            HINT = 'Use an IANA time zone name such as UTC, Europe/Paris or America/New_York (see pg_timezone_names).';
  END IF;
  IF NOT um.locale_is_valid(NEW.locale) THEN
    RAISE EXCEPTION 'invalid locale "%"', NEW.locale
      USING ERRCODE = 'UM005',
            HINT = 'Use a BCP 47 language tag such as en, en-GB, pt-BR or zh-Hant-TW.';
  END IF;
  IF NEW.mobile IS NOT NULL AND NOT um.mobile_is_valid(NEW.mobile) THEN
    RAISE EXCEPTION 'invalid mobile number "%"', NEW.mobile
      USING ERRCODE = 'UM006',
            HINT = 'Use the E.164 form: "+", country code and number, digits only, e.g. +14155550123.';
  END IF;
  IF jsonb_typeof(NEW.attributes) IS DISTINCT FROM 'object' THEN
    RAISE EXCEPTION 'user attributes must be a JSON object'
      USING ERRCODE = 'UM007',
            DETAIL = format('The value given is a JSON %s.', coalesce(jsonb_typeof(NEW.attributes), 'null')),
            HINT = 'Pass key/value pairs, e.g. ''{"department": "finance"}''.';
  END IF;

  IF TG_OP = 'UPDATE' THEN
    NEW.updated_at := now();
    IF lower(NEW.email) <> lower(OLD.email) THEN
      NEW.email_verified_at := NULL;      -- a new address must be verified again
    END IF;
  END IF;
  -- a change of status records (or clears) when the user was suspended
  IF TG_OP = 'INSERT' OR NEW.status <> OLD.status THEN
    NEW.suspended_at := CASE WHEN NEW.status = 'suspended' THEN coalesce(NEW.suspended_at, now()) END;
  END IF;
  RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION um.invitations_before_write()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM um.assert_email(NEW.email);
  RETURN NEW;
END
$$;

-- "organization % already has a team named %" (UM025) written once: creating
-- and renaming a team write the name through um.write_team, which keeps the
-- one subtransaction that names a taken name.
CREATE OR REPLACE FUNCTION um.write_team(p_org_id bigint, p_team_id bigint, p_name text, p_description text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id bigint := p_team_id;
BEGIN
  BEGIN
    IF p_team_id IS NULL THEN
      INSERT INTO um.teams (org_id, name, description) VALUES (p_org_id, p_name, p_description)
      RETURNING id INTO v_id;
    ELSE
      UPDATE um.teams t SET name = p_name WHERE t.id = p_team_id;
    END IF;
  EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'organization % already has a team named "%"', p_org_id, p_name
      USING ERRCODE = 'UM025', HINT = 'Choose another name (team names are unique regardless of letter case).';
  END;
  RETURN v_id;
END
$$;
REVOKE EXECUTE ON FUNCTION um.write_team(bigint, bigint, text, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION um.do_rename_team(p_team_id bigint, p_name text, p_caller oid)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_team um.teams;
BEGIN
  SELECT * INTO v_team FROM um.teams t WHERE t.id = p_team_id;
  PERFORM um.authorize(p_caller, 'team.rename', format('rename team %s', p_team_id), 'team:update',
                       v_team.org_id, 'team', p_team_id);
  v_team := um.require_team(p_team_id);
  PERFORM um.write_team(v_team.org_id, p_team_id, p_name, NULL);
  PERFORM um.audit('team.rename', v_team.org_id, 'team', p_team_id, '{}');
END
$$;

-- "the owner of team % cannot be removed" (UM043) as um_remove_member and
-- um_remove_team_member raise it, written once: um.assert_not_team_owner.
-- (The trigger team_members_keep_owner keeps its own wording, without the
-- function to call.)
CREATE OR REPLACE FUNCTION um.assert_not_team_owner(p_org_id bigint, p_team_id bigint, p_user_id bigint)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_team text;
BEGIN
  SELECT t.name INTO v_team FROM um.team_members tm JOIN um.teams t ON t.id = tm.team_id
   WHERE tm.org_id = p_org_id AND tm.user_id = p_user_id AND tm.is_owner
     AND CASE WHEN p_team_id IS NULL
              THEN EXISTS (SELECT 1 FROM um.team_members o WHERE o.team_id = tm.team_id AND o.user_id <> p_user_id)
              ELSE tm.team_id = p_team_id END
   ORDER BY t.id LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'the owner of team "%" cannot be removed', v_team
      USING ERRCODE = 'UM043', DETAIL = format('User %s owns the team.', p_user_id),
            HINT = 'Transfer ownership of the team to another member first (um_transfer_team_ownership), or delete the team.';
  END IF;
END
$$;
REVOKE EXECUTE ON FUNCTION um.assert_not_team_owner(bigint, bigint, bigint) FROM PUBLIC;

CREATE OR REPLACE FUNCTION um.do_remove_member(p_org_id bigint, p_user_id bigint, p_caller oid)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := @extschema@.um_current_user_id(p_org_id);
BEGIN
  IF v_actor IS NOT NULL AND v_actor = p_user_id AND v_actor = @extschema@.um_real_user_id() THEN
    PERFORM um.require_organization(p_org_id);       -- leaving needs no permission
  ELSE
    v_actor := um.authorize(p_caller, 'member.remove', format('remove members of organization %s', p_org_id),
                            'member:remove', p_org_id, 'user', p_user_id);
    PERFORM um.guard_root_target(v_actor, p_org_id, p_user_id, 'member.remove', 'remove');
  END IF;
  PERFORM um.require_member(p_org_id, p_user_id);
  PERFORM um.assert_not_team_owner(p_org_id, NULL, p_user_id);
  -- teams they own alone go with them
  DELETE FROM um.teams t
   WHERE t.org_id = p_org_id
     AND EXISTS (SELECT 1 FROM um.team_members tm WHERE tm.team_id = t.id AND tm.user_id = p_user_id AND tm.is_owner);
  DELETE FROM um.memberships m WHERE m.org_id = p_org_id AND m.user_id = p_user_id;   -- keeps a Root (UM044)
  PERFORM um.audit('member.remove', p_org_id, 'user', p_user_id, '{}');
END
$$;
