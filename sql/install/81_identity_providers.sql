-- Organizations' single sign-on providers, owned domains and identity links;
-- then their public declarations.

-- ---------------------------------------------------------------------------
-- Identity providers, domains, links

CREATE FUNCTION um_internal.do_add_identity_provider(p_org_id bigint, p_name text, p_protocol text, p_issuer text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id bigint;
BEGIN
  PERFORM um_internal.authorize('identity_provider.add', format('add identity providers to organization %s', p_org_id),
                       'org:update', p_org_id, 'organization', p_org_id);
  IF p_protocol IS NULL OR p_protocol NOT IN ('oidc', 'saml') THEN
    PERFORM um_internal.raise('UM009', format('unknown protocol "%s"', p_protocol), NULL, 'Pass ''oidc'' or ''saml''.');
  END IF;
  IF p_issuer IS NULL OR p_issuer !~ '^https://[^[:space:]]+$' THEN
    PERFORM um_internal.raise('UM009', format('invalid issuer "%s"', p_issuer), NULL, 'Pass the provider''s https:// issuer URL.');
  END IF;
  IF NOT um_internal.display_name_is_valid(p_name, 100) THEN
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
  PERFORM um_internal.audit('identity_provider.add', p_org_id, 'identity_provider', v_id, '{}');
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION um_internal.do_add_identity_provider(bigint, text, text, text) IS
  'body of um_add_identity_provider: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_add_identity_provider (EXECUTE held by nobody)';

-- An organization's domains.  um cannot check DNS itself: the backend proves
-- ownership (a TXT record it asked the tenant to publish, say) and records
-- it here with nobody acting; a tenant user never does, since a domain lets
-- its members create accounts for every address in it.
CREATE FUNCTION um_internal.do_add_org_domain(p_org_id bigint, p_domain text)
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
    PERFORM um_internal.deny('org.domain_add', um_internal.actor_org(p_org_id), 'organization', p_org_id, 'UM070',
      'permission denied to record a domain',
      'Only a um administrator, with nobody acting, records that an organization owns a domain: um cannot check DNS itself.',
      'Have the backend verify the domain (a DNS record), then call um_add_org_domain() with nobody acting.');
  END IF;
  PERFORM um_internal.authorize('org.domain_add', format('record domains of organization %s', p_org_id),
                       NULL, p_org_id, 'organization', p_org_id);
  PERFORM um_internal.require_organization(p_org_id);
  IF v_domain IS NULL OR NOT um_internal.domain_is_valid(v_domain) THEN
    PERFORM um_internal.raise('UM012', format('invalid domain "%s"', p_domain),
      'A domain is a DNS name of at least two labels, in ASCII, at most 253 bytes.',
      'Pass the part of the addresses after the @, e.g. ''example.com''; write internationalized domains in their xn-- form.');
  END IF;
  -- one organization owns a domain: concurrent additions take turns
  LOCK TABLE um.organization_domains IN SHARE ROW EXCLUSIVE MODE;
  SELECT d.org_id INTO v_owner FROM um.organization_domains d WHERE d.domain = v_domain;
  IF v_owner = p_org_id THEN
    RETURN false;                                    -- recorded already
  ELSIF v_owner IS NOT NULL THEN
    PERFORM um_internal.raise('UM028', format('domain "%s" belongs to organization %s', v_domain, v_owner),
      'One organization owns a domain.',
      'Remove it from that organization first (um_remove_org_domain), if the domain changed hands.');
  END IF;
  INSERT INTO um.organization_domains (org_id, domain) VALUES (p_org_id, v_domain) RETURNING id INTO v_id;
  PERFORM um_internal.audit('org.domain_add', p_org_id, 'organization_domain', v_id, '{}');
  RETURN true;
END
$$;
COMMENT ON FUNCTION um_internal.do_add_org_domain(bigint, text) IS
  'body of um_add_org_domain: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_add_org_domain (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_remove_org_domain(p_org_id bigint, p_domain text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_domain text := lower(btrim(p_domain, E' \t\r\n'));
  v_id bigint;
BEGIN
  IF @extschema@.um_current_user_id() IS NOT NULL THEN
    PERFORM um_internal.deny('org.domain_remove', um_internal.actor_org(p_org_id), 'organization', p_org_id, 'UM070',
      'permission denied to remove a domain',
      'Only a um administrator, with nobody acting, records which domains an organization owns.',
      'Ask the service''s operator; the backend calls um_remove_org_domain() with nobody acting.');
  END IF;
  PERFORM um_internal.authorize('org.domain_remove', format('remove domains of organization %s', p_org_id),
                       NULL, p_org_id, 'organization', p_org_id);
  PERFORM um_internal.require_organization(p_org_id);
  DELETE FROM um.organization_domains d WHERE d.org_id = p_org_id AND d.domain = v_domain RETURNING d.id INTO v_id;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  PERFORM um_internal.audit('org.domain_remove', p_org_id, 'organization_domain', v_id, '{}');
  RETURN true;
END
$$;
COMMENT ON FUNCTION um_internal.do_remove_org_domain(bigint, text) IS
  'body of um_remove_org_domain: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_remove_org_domain (EXECUTE held by nobody)';

-- does the organization own the address's domain?
CREATE FUNCTION um_internal.org_owns_address(p_org_id bigint, p_email text)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT EXISTS (SELECT 1 FROM um.organization_domains d
                  WHERE d.org_id = p_org_id
                    AND d.domain = lower(substring(btrim(p_email, E' \t\r\n') FROM '@([^@]*)$')));
$$;
COMMENT ON FUNCTION um_internal.org_owns_address(bigint, text) IS
  'internal: is the address in one of the organization''s domains (um.organization_domains)?';

CREATE FUNCTION um_internal.do_link_identity(p_org_id bigint, p_provider text, p_subject text, p_user_id bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um_internal.authorize('user.link_identity', format('link identities in organization %s', p_org_id),
                                 'user:update', p_org_id, 'user', p_user_id);
  v_provider bigint;
  v_user bigint := coalesce(p_user_id, v_actor);
BEGIN
  -- a sign-in method outlives the impersonation: never while impersonating
  IF v_actor IS DISTINCT FROM @extschema@.um_real_user_id() THEN
    PERFORM um_internal.deny('user.link_identity', um_internal.actor_org(p_org_id), 'user', v_user, 'UM070',
      'permission denied to link identities while impersonating',
      'A linked identity signs in as the account for good.', 'Call um_end_impersonation() first.');
  END IF;
  IF v_user IS NULL THEN
    PERFORM um_internal.raise('UM009', 'a user is required', NULL, 'Pass user_id.');
  END IF;
  PERFORM um_internal.require_member(p_org_id, v_user);
  PERFORM um_internal.guard_root_target(v_actor, p_org_id, v_user, 'user.link_identity', 'link an identity to');
  -- a sign-in method on an account whose mailbox nobody proved would be
  -- waiting for its owner, who may not be who created it
  IF v_actor IS NOT NULL AND v_actor <> v_user
     AND (SELECT u.email_verified_at IS NULL FROM um.users u WHERE u.id = v_user) THEN
    PERFORM um_internal.deny('user.link_identity', p_org_id, 'user', v_user, 'UM070',
      'permission denied to link an identity to an unverified account',
      'The address of the account was never proven; whoever claims it later must not find a sign-in method of someone else''s.',
      'Have the backend send a verification (um_resend_verification) first.');
  END IF;
  IF v_actor IS NOT NULL AND v_actor <> v_user THEN
    -- a sign-in method is the whole account's, in every organization of the user
    PERFORM um_internal.authorize_user('user.link_identity', format('link an identity to user %s', v_user),
                              'user:update', v_user);
  END IF;
  SELECT p.id INTO v_provider FROM um.identity_providers p
   WHERE p.org_id = p_org_id AND lower(p.name) = lower(p_provider);
  IF NOT FOUND THEN
    RAISE EXCEPTION 'organization % has no identity provider named "%"', p_org_id, p_provider
      USING ERRCODE = 'UM037', HINT = 'Add it with um_add_identity_provider(), or see um.identity_providers.';
  END IF;
  IF p_subject IS NULL OR length(p_subject) NOT BETWEEN 1 AND 255 THEN
    PERFORM um_internal.raise('UM009', 'invalid subject', NULL, 'Pass the provider''s subject identifier (1 to 255 characters).');
  END IF;
  INSERT INTO um.user_identities (org_id, provider_id, subject, user_id)
  VALUES (p_org_id, v_provider, p_subject, v_user)
  ON CONFLICT (provider_id, subject) DO NOTHING;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'that subject of provider "%" is already linked to a user', p_provider
      USING ERRCODE = 'UM027', HINT = 'A provider''s subject identifies one user; unlink it first.';
  END IF;
  PERFORM um_internal.audit('user.link_identity', p_org_id, 'user', v_user, jsonb_build_object('provider_id', v_provider));
END
$$;
COMMENT ON FUNCTION um_internal.do_link_identity(bigint, text, text, bigint) IS
  'body of um_link_identity: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_link_identity (EXECUTE held by nobody)';

-- ---------------------------------------------------------------------------
-- The public functions: each is src/lifecycle.c's entry point, which calls
-- um_internal.do_<name> with the calling role.  None is STRICT: a NULL argument gets
-- the error that names it.

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
