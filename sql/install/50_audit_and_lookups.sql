-- Helpers of the lifecycle functions (85_authorization.sql onwards): the audit trail,
-- the one raise helper, and lookups that name what is missing.

-- um_internal.audit: append one audit event.  The actor columns are filled in by the
-- identity module once it exists; the database role is always recorded.
CREATE FUNCTION um_internal.audit(p_action text, p_org_id bigint, p_target_type text,
                         p_target_id bigint, p_details jsonb DEFAULT '{}',
                         p_outcome text DEFAULT 'ok')
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  INSERT INTO um.audit_events (action, outcome, org_id, target_type, target_id, details)
  VALUES (p_action, p_outcome, p_org_id, p_target_type, p_target_id, coalesce(p_details, '{}'));
END
$$;
COMMENT ON FUNCTION um_internal.audit(text, bigint, text, bigint, jsonb, text) IS
  'internal: appends one event to um.audit_events in the current transaction (actor columns are stamped by its trigger)';

-- um_internal.raise: raise an error with an optional detail and hint.  The one raise
-- helper, for an error whose code and text are passed in (um_internal.deny uses it).
CREATE FUNCTION um_internal.raise(p_sqlstate text, p_message text, p_detail text, p_hint text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF p_detail IS NOT NULL AND p_hint IS NOT NULL THEN
    RAISE EXCEPTION USING MESSAGE = p_message, ERRCODE = p_sqlstate, DETAIL = p_detail, HINT = p_hint;
  ELSIF p_detail IS NOT NULL THEN
    RAISE EXCEPTION USING MESSAGE = p_message, ERRCODE = p_sqlstate, DETAIL = p_detail;
  ELSIF p_hint IS NOT NULL THEN
    RAISE EXCEPTION USING MESSAGE = p_message, ERRCODE = p_sqlstate, HINT = p_hint;
  ELSE
    RAISE EXCEPTION USING MESSAGE = p_message, ERRCODE = p_sqlstate;
  END IF;
END
$$;
COMMENT ON FUNCTION um_internal.raise(text, text, text, text) IS 'internal: raises an error with this SQLSTATE, message and optional detail and hint';

-- um.require_*: look a thing up or raise the error that names it.
CREATE FUNCTION um_internal.require_organization(p_org_id bigint)
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
COMMENT ON FUNCTION um_internal.require_organization(bigint) IS 'internal: the organization, or the error that names it (UM030)';

CREATE FUNCTION um_internal.require_user(p_user_id bigint)
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
COMMENT ON FUNCTION um_internal.require_user(bigint) IS 'internal: the user, or the error that names them (UM031)';

-- A role of an organization by name (any letter case) or built-in key.
CREATE FUNCTION um_internal.require_role(p_org_id bigint, p_role text)
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
            HINT = 'See the organization''s roles in um.roles; the built-in ones are those of um.role_template_list.';
  END IF;
  RETURN v;
END
$$;
COMMENT ON FUNCTION um_internal.require_role(bigint, text) IS
  'internal: an organization''s role by name (any letter case) or built-in key, or the error that names it (UM032)';

-- The acting user, or the error that says nobody is (p_hint: what to do
-- first, for what the caller was about to do).
CREATE FUNCTION um_internal.require_actor(p_hint text)
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
COMMENT ON FUNCTION um_internal.require_actor(text) IS 'internal: the acting user, or UM072 (nobody is acting) with the hint given';
