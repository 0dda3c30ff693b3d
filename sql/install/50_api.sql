-- The first API functions: enough to create organizations, users and
-- memberships from psql.  The full lifecycle (invitations, suspension,
-- deletion, ...) with per-user permission checks arrives with the acting
-- identity; until then these functions run with the caller's own
-- privileges (SECURITY INVOKER) and EXECUTE is revoked from PUBLIC, so only
-- roles that administer um's tables can use them.

-- um.audit: append one audit event.  The actor columns are filled in by the
-- identity module once it exists; the database role is always recorded.
CREATE FUNCTION um.audit(p_action text, p_org_id bigint, p_target_type text,
                         p_target_id bigint, p_details jsonb DEFAULT '{}',
                         p_outcome text DEFAULT 'ok')
RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
  INSERT INTO um.audit_events (action, outcome, org_id, target_type, target_id, details)
  VALUES (p_action, p_outcome, p_org_id, p_target_type, p_target_id, coalesce(p_details, '{}'));
$$;

-- um.require_*: look a thing up or raise the error that names it.
CREATE FUNCTION um.require_organization(p_org_id bigint)
RETURNS um.organizations
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.organizations;
BEGIN
  SELECT * INTO v FROM um.organizations o WHERE o.id = p_org_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'organization % does not exist', coalesce(p_org_id::text, 'NULL')
      USING ERRCODE = 'UM030',
            HINT = 'Look the organization up in um.organizations, or create it with um_create_organization().';
  END IF;
  RETURN v;
END
$$;

CREATE FUNCTION um.require_user(p_user_id bigint)
RETURNS um.users
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.users;
BEGIN
  SELECT * INTO v FROM um.users u WHERE u.id = p_user_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'user % does not exist', coalesce(p_user_id::text, 'NULL')
      USING ERRCODE = 'UM031',
            HINT = 'Look the user up in um.users, or create them with um_create_user().';
  END IF;
  RETURN v;
END
$$;

-- A role of an organization by name (any letter case) or built-in key.
CREATE FUNCTION um.require_role(p_org_id bigint, p_role text)
RETURNS um.roles
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.roles;
BEGIN
  SELECT * INTO v FROM um.roles r
   WHERE r.org_id = p_org_id AND (lower(r.name) = lower(p_role) OR r.builtin = p_role);
  IF NOT FOUND THEN
    RAISE EXCEPTION 'organization % has no role "%"', p_org_id, p_role
      USING ERRCODE = 'UM032',
            HINT = 'See the organization''s roles in um.roles; built-in roles are Root, Admin, Service Editor, Service Operator, Service Reader and Member.';
  END IF;
  RETURN v;
END
$$;

CREATE FUNCTION @extschema@.um_create_user(
  email text,
  name text DEFAULT NULL,
  allow_login boolean DEFAULT true,
  timezone text DEFAULT 'UTC',
  locale text DEFAULT 'en',
  mobile text DEFAULT NULL,
  attributes jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_email text := btrim(um_create_user.email, E' \t\r\n');
  v_id bigint;
BEGIN
  IF um_create_user.email IS NULL THEN
    RAISE EXCEPTION 'an email address is required'
      USING ERRCODE = 'UM001', HINT = 'Pass the user''s email address as the first argument.';
  END IF;
  IF EXISTS (SELECT 1 FROM um.users u WHERE lower(u.email) = lower(v_email)) THEN
    RAISE EXCEPTION 'email address "%" is already registered', v_email
      USING ERRCODE = 'UM020',
            DETAIL = 'Email addresses are unique regardless of letter case.',
            HINT = 'Use the existing user (um.users), or choose another address.';
  END IF;
  BEGIN
    INSERT INTO um.users (email, name, allow_login, timezone, locale, mobile, attributes)
    VALUES (v_email, um_create_user.name, coalesce(um_create_user.allow_login, true),
            coalesce(um_create_user.timezone, 'UTC'), coalesce(um_create_user.locale, 'en'),
            um_create_user.mobile, coalesce(um_create_user.attributes, '{}'))
    RETURNING id INTO v_id;
  EXCEPTION WHEN unique_violation THEN          -- lost a race for the address
    RAISE EXCEPTION 'email address "%" is already registered', v_email
      USING ERRCODE = 'UM020',
            DETAIL = 'Email addresses are unique regardless of letter case.',
            HINT = 'Use the existing user (um.users), or choose another address.';
  END;
  PERFORM um.audit('user.create', NULL, 'user', v_id,
                   jsonb_build_object('allow_login', coalesce(um_create_user.allow_login, true)));
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION @extschema@.um_create_user(text, text, boolean, text, text, text, jsonb) IS
  'create a user and return its id; allow_login => false makes a notification-only user';

CREATE FUNCTION @extschema@.um_create_organization(slug text, name text, root_user_id bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_user um.users;
  v_org bigint;
  v_root bigint;
BEGIN
  v_user := um.require_user(root_user_id);
  IF v_user.status <> 'active' OR NOT v_user.allow_login THEN
    RAISE EXCEPTION 'user % cannot be the Root of an organization', root_user_id
      USING ERRCODE = 'UM050',
            DETAIL = CASE WHEN v_user.status <> 'active' THEN 'The user is suspended.'
                          ELSE 'The user is notification-only (allow_login is false).' END,
            HINT = 'Choose an active user who can log in.';
  END IF;
  IF EXISTS (SELECT 1 FROM um.organizations o WHERE o.slug = um_create_organization.slug) THEN
    RAISE EXCEPTION 'organization slug "%" is already taken', um_create_organization.slug
      USING ERRCODE = 'UM021', HINT = 'Choose another slug.';
  END IF;
  BEGIN
    INSERT INTO um.organizations (slug, name)
    VALUES (um_create_organization.slug, um_create_organization.name)
    RETURNING id INTO v_org;
  EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'organization slug "%" is already taken', um_create_organization.slug
      USING ERRCODE = 'UM021', HINT = 'Choose another slug.';
  END;
  v_root := um.seed_builtin_roles(v_org);
  INSERT INTO um.memberships (org_id, user_id, role_id) VALUES (v_org, root_user_id, v_root);
  PERFORM um.audit('organization.create', v_org, 'organization', v_org,
                   jsonb_build_object('root_user_id', root_user_id));
  RETURN v_org;
END
$$;
COMMENT ON FUNCTION @extschema@.um_create_organization(text, text, bigint) IS
  'create an organization with its built-in roles, make root_user_id its Root, and return its id';

CREATE FUNCTION @extschema@.um_add_member(org_id bigint, user_id bigint, role text DEFAULT 'member')
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_org um.organizations;
  v_role um.roles;
  v_id bigint;
BEGIN
  v_org := um.require_organization(um_add_member.org_id);
  PERFORM um.require_user(um_add_member.user_id);
  v_role := um.require_role(um_add_member.org_id, coalesce(um_add_member.role, 'member'));
  IF EXISTS (SELECT 1 FROM um.memberships m
              WHERE m.org_id = um_add_member.org_id AND m.user_id = um_add_member.user_id) THEN
    RAISE EXCEPTION 'user % is already a member of organization "%"', um_add_member.user_id, v_org.slug
      USING ERRCODE = 'UM022',
            HINT = 'Change the member''s role instead; a user holds one organization role.';
  END IF;
  INSERT INTO um.memberships (org_id, user_id, role_id)
  VALUES (um_add_member.org_id, um_add_member.user_id, v_role.id)
  RETURNING id INTO v_id;
  PERFORM um.audit('member.add', um_add_member.org_id, 'user', um_add_member.user_id,
                   jsonb_build_object('role_id', v_role.id));
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION @extschema@.um_add_member(bigint, bigint, text) IS
  'make a user a member of an organization with one organization role (name or built-in key); returns the membership id';

CREATE FUNCTION @extschema@.um_register_permission(permission text, description text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF permission IS NULL THEN
    RAISE EXCEPTION 'a permission name is required'
      USING ERRCODE = 'UM010', HINT = 'Pass "resource:action", e.g. ''invoice:read''.';
  END IF;
  PERFORM um.assert_permission_name(permission, false);
  INSERT INTO um.permissions AS p (name, description)
  VALUES (um_register_permission.permission, um_register_permission.description)
  ON CONFLICT (name) DO UPDATE
     SET description = coalesce(excluded.description, p.description)
   WHERE NOT p.builtin;
  PERFORM um.audit('permission.register', NULL, 'permission', NULL,
                   jsonb_build_object('permission', permission));
END
$$;
COMMENT ON FUNCTION @extschema@.um_register_permission(text, text) IS
  'add an application permission ("resource:action") to the catalog; idempotent';

REVOKE EXECUTE ON FUNCTION
  @extschema@.um_create_user(text, text, boolean, text, text, text, jsonb),
  @extschema@.um_create_organization(text, text, bigint),
  @extschema@.um_add_member(bigint, bigint, text),
  @extschema@.um_register_permission(text, text)
FROM PUBLIC;
