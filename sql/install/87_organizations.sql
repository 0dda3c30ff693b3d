-- Lifecycle of organizations and their members, settings, identity providers
-- and identity links; then their public declarations.

-- ---------------------------------------------------------------------------
-- Organizations and members

CREATE FUNCTION um.do_create_organization(p_slug text, p_name text, p_root_user_id bigint)
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
    PERFORM um.authorize('organization.create', 'create an organization', NULL, NULL, 'organization', NULL);
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
COMMENT ON FUNCTION um.do_create_organization(text, text, bigint) IS
  'body of um_create_organization: runs as um''s owner, the calling role named by um.caller_role(); called only through um_create_organization (EXECUTE held by nobody)';

CREATE FUNCTION um.do_add_member(p_org_id bigint, p_user_id bigint, p_role text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um.authorize('member.add', format('add members to organization %s', p_org_id),
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
COMMENT ON FUNCTION um.do_add_member(bigint, bigint, text) IS
  'body of um_add_member: runs as um''s owner, the calling role named by um.caller_role(); called only through um_add_member (EXECUTE held by nobody)';

CREATE FUNCTION um.do_set_org_role(p_org_id bigint, p_user_id bigint, p_role text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um.authorize('member.set_role', format('change roles in organization %s', p_org_id),
                                 'role:grant', p_org_id, 'user', p_user_id);
  v_member um.memberships;
  v_role um.roles;
BEGIN
  v_member := um.require_member(p_org_id, p_user_id);
  v_role := um.require_role(p_org_id, p_role);
  PERFORM um.guard_root_target(v_actor, p_org_id, p_user_id, 'member.set_role', 'change the role of');
  PERFORM um.guard_escalation(v_actor, p_org_id, NULL, ARRAY(SELECT um.role_grants(v_role.id)),
                              'member.set_role', format('give role "%s"', v_role.name), 'user', p_user_id);
  IF v_member.role_id = v_role.id THEN
    RETURN;
  END IF;
  UPDATE um.memberships m SET role_id = v_role.id WHERE m.id = v_member.id;   -- keeps a Root (UM044)
  PERFORM um.audit('member.set_role', p_org_id, 'user', p_user_id,
                   jsonb_build_object('old_role_id', v_member.role_id, 'role_id', v_role.id));
END
$$;
COMMENT ON FUNCTION um.do_set_org_role(bigint, bigint, text) IS
  'body of um_set_org_role: runs as um''s owner, the calling role named by um.caller_role(); called only through um_set_org_role (EXECUTE held by nobody)';

CREATE FUNCTION um.do_transfer_org_ownership(p_org_id bigint, p_new_root_user_id bigint, p_demote_to text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um.authorize('organization.transfer', format('transfer organization %s', p_org_id),
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
COMMENT ON FUNCTION um.do_transfer_org_ownership(bigint, bigint, text) IS
  'body of um_transfer_org_ownership: runs as um''s owner, the calling role named by um.caller_role(); called only through um_transfer_org_ownership (EXECUTE held by nobody)';

CREATE FUNCTION um.do_remove_member(p_org_id bigint, p_user_id bigint)
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
    v_actor := um.authorize('member.remove', format('remove members of organization %s', p_org_id),
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
COMMENT ON FUNCTION um.do_remove_member(bigint, bigint) IS
  'body of um_remove_member: runs as um''s owner, the calling role named by um.caller_role(); called only through um_remove_member (EXECUTE held by nobody)';

CREATE FUNCTION um.do_set_org_setting(p_org_id bigint, p_setting text, p_value jsonb)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um.authorize('organization.set_setting',
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
COMMENT ON FUNCTION um.do_set_org_setting(bigint, text, jsonb) IS
  'body of um_set_org_setting: runs as um''s owner, the calling role named by um.caller_role(); called only through um_set_org_setting (EXECUTE held by nobody)';

-- The same with the value as text, which is what an unquoted literal or a
-- driver's string parameter becomes: parsed here, so that a value that is
-- not JSON gets UM009 naming the type the setting takes (a jsonb parameter
-- would fail with a raw 22P02 before um could say anything).
CREATE FUNCTION um.do_set_org_setting(p_org_id bigint, p_setting text, p_value text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_value jsonb;
BEGIN
  PERFORM um.authorize('organization.set_setting', format('change settings of organization %s', p_org_id),
                       'org:update', p_org_id, 'organization', p_org_id);
  IF p_setting IS NULL OR p_setting !~ '^[a-z][a-z0-9_]{0,62}$' THEN
    PERFORM um.do_set_org_setting(p_org_id, p_setting, NULL::jsonb);   -- the name's error (UM009)
  END IF;
  BEGIN
    v_value := p_value::jsonb;
  EXCEPTION WHEN invalid_text_representation OR untranslatable_character OR statement_too_complex
                 OR program_limit_exceeded THEN
    -- (the value is not repeated: a setting may hold a secret)
    PERFORM um.raise('UM009', format('the value of setting "%s" is not JSON', p_setting),
      'It is not a JSON value PostgreSQL can store (a bare word, a \u0000 escape, or nested too deep).',
      CASE WHEN p_setting IN ('allow_invite_requests', 'password_login_disabled') THEN 'Pass true or false.'
           WHEN p_setting = 'name' THEN 'Pass a JSON string, in double quotes: ''"Acme Inc."''.'
           ELSE 'Pass a JSON value: a string in double quotes (''"dark"''), a number, true or false, an array or an object.' END);
  END;
  PERFORM um.do_set_org_setting(p_org_id, p_setting, v_value);
END
$$;
COMMENT ON FUNCTION um.do_set_org_setting(bigint, text, text) IS
  'body of um_set_org_setting with a text value: runs as um''s owner, the calling role named by um.caller_role(); called only through um_set_org_setting (EXECUTE held by nobody)';

CREATE FUNCTION um.do_add_identity_provider(p_org_id bigint, p_name text, p_protocol text, p_issuer text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id bigint;
BEGIN
  PERFORM um.authorize('identity_provider.add', format('add identity providers to organization %s', p_org_id),
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
COMMENT ON FUNCTION um.do_add_identity_provider(bigint, text, text, text) IS
  'body of um_add_identity_provider: runs as um''s owner, the calling role named by um.caller_role(); called only through um_add_identity_provider (EXECUTE held by nobody)';

-- An organization's domains.  um cannot check DNS itself: the backend proves
-- ownership (a TXT record it asked the tenant to publish, say) and records
-- it here with nobody acting; a tenant user never does, since a domain lets
-- its members create accounts for every address in it.
CREATE FUNCTION um.do_add_org_domain(p_org_id bigint, p_domain text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_domain text := lower(btrim(p_domain, E' \t\r\n'));
  v_owner bigint;
  v_id bigint;
BEGIN
  IF @extschema@.um_current_user_id() IS NOT NULL THEN
    PERFORM um.deny('org.domain_add', um.actor_org(p_org_id), 'organization', p_org_id, 'UM070',
      'permission denied to record a domain',
      'Only a um administrator, with nobody acting, records that an organization owns a domain: um cannot check DNS itself.',
      'Have the backend verify the domain (a DNS record), then call um_add_org_domain() with nobody acting.');
  END IF;
  PERFORM um.authorize('org.domain_add', format('record domains of organization %s', p_org_id),
                       NULL, p_org_id, 'organization', p_org_id);
  PERFORM um.require_organization(p_org_id);
  IF v_domain IS NULL OR NOT um.domain_is_valid(v_domain) THEN
    PERFORM um.raise('UM012', format('invalid domain "%s"', p_domain),
      'A domain is a DNS name of at least two labels, in ASCII, at most 253 bytes.',
      'Pass the part of the addresses after the @, e.g. ''example.com''; write internationalized domains in their xn-- form.');
  END IF;
  -- one organization owns a domain: concurrent additions take turns
  LOCK TABLE um.organization_domains IN SHARE ROW EXCLUSIVE MODE;
  SELECT d.org_id INTO v_owner FROM um.organization_domains d WHERE d.domain = v_domain;
  IF v_owner = p_org_id THEN
    RETURN false;                                    -- recorded already
  ELSIF v_owner IS NOT NULL THEN
    PERFORM um.raise('UM028', format('domain "%s" belongs to organization %s', v_domain, v_owner),
      'One organization owns a domain.',
      'Remove it from that organization first (um_remove_org_domain), if the domain changed hands.');
  END IF;
  INSERT INTO um.organization_domains (org_id, domain) VALUES (p_org_id, v_domain) RETURNING id INTO v_id;
  PERFORM um.audit('org.domain_add', p_org_id, 'organization_domain', v_id, '{}');
  RETURN true;
END
$$;
COMMENT ON FUNCTION um.do_add_org_domain(bigint, text) IS
  'body of um_add_org_domain: runs as um''s owner, the calling role named by um.caller_role(); called only through um_add_org_domain (EXECUTE held by nobody)';

CREATE FUNCTION um.do_remove_org_domain(p_org_id bigint, p_domain text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_domain text := lower(btrim(p_domain, E' \t\r\n'));
  v_id bigint;
BEGIN
  IF @extschema@.um_current_user_id() IS NOT NULL THEN
    PERFORM um.deny('org.domain_remove', um.actor_org(p_org_id), 'organization', p_org_id, 'UM070',
      'permission denied to remove a domain',
      'Only a um administrator, with nobody acting, records which domains an organization owns.',
      'Ask the service''s operator; the backend calls um_remove_org_domain() with nobody acting.');
  END IF;
  PERFORM um.authorize('org.domain_remove', format('remove domains of organization %s', p_org_id),
                       NULL, p_org_id, 'organization', p_org_id);
  PERFORM um.require_organization(p_org_id);
  DELETE FROM um.organization_domains d WHERE d.org_id = p_org_id AND d.domain = v_domain RETURNING d.id INTO v_id;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  PERFORM um.audit('org.domain_remove', p_org_id, 'organization_domain', v_id, '{}');
  RETURN true;
END
$$;
COMMENT ON FUNCTION um.do_remove_org_domain(bigint, text) IS
  'body of um_remove_org_domain: runs as um''s owner, the calling role named by um.caller_role(); called only through um_remove_org_domain (EXECUTE held by nobody)';

-- does the organization own the address's domain?
CREATE FUNCTION um.org_owns_address(p_org_id bigint, p_email text)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT EXISTS (SELECT 1 FROM um.organization_domains d
                  WHERE d.org_id = p_org_id
                    AND d.domain = lower(substring(btrim(p_email, E' \t\r\n') FROM '@([^@]*)$')));
$$;
COMMENT ON FUNCTION um.org_owns_address(bigint, text) IS
  'internal: is the address in one of the organization''s domains (um.organization_domains)?';

CREATE FUNCTION um.do_link_identity(p_org_id bigint, p_provider text, p_subject text, p_user_id bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um.authorize('user.link_identity', format('link identities in organization %s', p_org_id),
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
    PERFORM um.authorize_user('user.link_identity', format('link an identity to user %s', v_user),
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
COMMENT ON FUNCTION um.do_link_identity(bigint, text, text, bigint) IS
  'body of um_link_identity: runs as um''s owner, the calling role named by um.caller_role(); called only through um_link_identity (EXECUTE held by nobody)';

-- ---------------------------------------------------------------------------
-- The public functions: each is src/lifecycle.c's entry point, which calls
-- um.do_<name> with the calling role.  None is STRICT: a NULL argument gets
-- the error that names it.

CREATE FUNCTION @extschema@.um_create_organization(slug text, name text, root_user_id bigint)
RETURNS bigint AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_create_organization(text, text, bigint) IS
  'create an organization with its built-in roles, make root_user_id (yourself, when acting) its Root, and return its id';

CREATE FUNCTION @extschema@.um_add_member(org_id bigint, user_id bigint, role text DEFAULT 'member')
RETURNS bigint AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_add_member(bigint, bigint, text) IS
  'make an existing user a member with one organization role (member:create); returns the membership id';

CREATE FUNCTION @extschema@.um_set_org_role(org_id bigint, user_id bigint, role text)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_set_org_role(bigint, bigint, text) IS
  'change a member''s organization role (role:grant; never to a role with permissions you lack; a Root''s only by a Root)';

CREATE FUNCTION @extschema@.um_transfer_org_ownership(org_id bigint, new_root_user_id bigint,
                                                      demote_to text DEFAULT 'Admin')
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_transfer_org_ownership(bigint, bigint, text) IS
  'make a member Root and the calling Root (every Root, for a um administrator) demote_to, in one step';

CREATE FUNCTION @extschema@.um_remove_member(org_id bigint, user_id bigint)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_remove_member(bigint, bigint) IS
  'remove a member (member:remove; or leave, for yourself) with their team seats and grants; re-adding starts afresh';

CREATE FUNCTION @extschema@.um_set_org_setting(org_id bigint, setting text, value jsonb)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_set_org_setting(bigint, text, jsonb) IS
  'set name, allow_invite_requests, password_login_disabled, or an application setting (JSON null removes it); org:update';

CREATE FUNCTION @extschema@.um_set_org_setting(org_id bigint, setting text, value text)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_set_org_setting(bigint, text, text) IS
  'the same with the value as JSON text (what a string literal or a driver''s text parameter is): a value that is not JSON is refused with UM009 naming the type the setting takes';

CREATE FUNCTION @extschema@.um_add_identity_provider(org_id bigint, name text, protocol text, issuer text)
RETURNS bigint AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_add_identity_provider(bigint, text, text, text) IS
  'link a single sign-on provider (oidc or saml, https issuer) to the organization; org:update';

CREATE FUNCTION @extschema@.um_add_org_domain(org_id bigint, domain text)
RETURNS boolean AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_add_org_domain(bigint, text) IS
  'um administrators: record that the organization owns a domain (after the backend verified it), so its members may create accounts there; true when recorded now';

CREATE FUNCTION @extschema@.um_remove_org_domain(org_id bigint, domain text)
RETURNS boolean AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_remove_org_domain(bigint, text) IS
  'um administrators: the organization no longer owns a domain; true when it was recorded';

CREATE FUNCTION @extschema@.um_link_identity(org_id bigint, provider text, subject text, user_id bigint DEFAULT NULL)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_link_identity(bigint, text, text, bigint) IS
  'say which member a provider''s subject is (user:update)';

-- What an application reads about the acting user: their organizations
-- with their role there (a Member may not read roles otherwise), and, for a
-- user interface, every permission they hold in one organization.
CREATE FUNCTION um.do_my_organizations(OUT org_id bigint, OUT slug text, OUT name text, OUT role text,
                                       OUT role_id bigint, OUT status text, OUT member_since timestamptz)
RETURNS SETOF record
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM um.require_actor('Call um_begin(token) first: this lists the organizations of the acting user.');
  -- while impersonating, the impersonated organizations only
  RETURN QUERY
    SELECT o.id, o.slug, o.name, r.name, r.id, m.status, m.created_at
      FROM um.memberships m
      JOIN um.organizations o ON o.id = m.org_id
      JOIN um.roles r ON r.id = m.role_id
     WHERE m.user_id = @extschema@.um_current_user_id()
       AND @extschema@.um_current_user_id(m.org_id) = m.user_id
     ORDER BY o.slug;
END
$$;
COMMENT ON FUNCTION um.do_my_organizations() IS
  'body of um_my_organizations: runs as um''s owner, the calling role named by um.caller_role(); called only through um_my_organizations (EXECUTE held by nobody)';

CREATE FUNCTION @extschema@.um_my_organizations(OUT org_id bigint, OUT slug text, OUT name text, OUT role text,
                                                OUT role_id bigint, OUT status text, OUT member_since timestamptz)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_my_organizations() IS
  'the acting user''s organizations (only the impersonated ones while impersonating), with their organization role and membership status, by slug';
