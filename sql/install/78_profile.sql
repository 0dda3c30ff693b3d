-- Profiles: a user changes their own (um_update_profile), an admin with
-- user:update in each of the user's organizations changes anybody's there
-- (um_update_user).  Name, time zone, locale and mobile number are checked
-- as everywhere (users_before_write: UM003-UM006).  Attributes change key by
-- key as the application declared (um.user_attribute_rules): 'user' keys
-- the user and admins, 'admin' keys admins but never the user they describe
-- (an attribute a policy reads to restrict someone is not theirs to
-- change, nor is it an Admin's own), 'nobody' keys um administrators only,
-- as do undeclared ones.  A key whose value stays the same is not a change,
-- so a form may send the whole object back.

-- ---------------------------------------------------------------------------
-- Rules

-- The attributes after a patch (a JSON object: a key with value null is
-- removed, any other value set), each changed key allowed for p_as ('user',
-- 'admin' or 'administrator'); the changed keys go to p_changed.
CREATE FUNCTION um_internal.patch_attributes(p_old jsonb, p_patch jsonb, p_as text, INOUT p_changed text[],
                                             OUT p_new jsonb)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_key text;
  v_value jsonb;
  v_rule text;
BEGIN
  p_new := p_old;
  IF p_patch IS NULL THEN
    RETURN;
  END IF;
  IF jsonb_typeof(p_patch) <> 'object' THEN
    RAISE EXCEPTION 'user attributes must be a JSON object'
      USING ERRCODE = 'UM007', DETAIL = format('The value given is a JSON %s.', jsonb_typeof(p_patch)),
            HINT = 'Pass the keys to change, e.g. ''{"department": "finance"}''; a key set to null is removed.';
  END IF;
  FOR v_key, v_value IN SELECT e.key, e.value FROM jsonb_each(p_patch) e ORDER BY e.key LOOP
    IF v_value = 'null'::jsonb THEN
      CONTINUE WHEN NOT (p_old ? v_key);
    ELSE
      CONTINUE WHEN p_old -> v_key = v_value;
    END IF;
    SELECT r.editable_by INTO v_rule FROM um.user_attribute_rules r WHERE r.key = v_key;
    IF NOT FOUND AND p_as <> 'administrator' THEN
      RAISE EXCEPTION 'unknown user attribute "%"', v_key
        USING ERRCODE = 'UM013', DETAIL = 'The application has not declared this key.',
              HINT = 'Use a key of um.user_attribute_rules; a um administrator declares new ones with um_declare_user_attribute().';
    END IF;
    IF (p_as = 'user' AND v_rule <> 'user') OR (p_as = 'admin' AND v_rule = 'nobody') THEN
      RAISE EXCEPTION 'user attribute "%" cannot be changed here', v_key
        USING ERRCODE = 'UM075',
              DETAIL = CASE v_rule WHEN 'admin' THEN 'Only an admin of the user''s organizations changes it, never the user it describes.'
                                   ELSE 'It is read-only: only a um administrator sets it.' END,
              HINT = CASE v_rule WHEN 'admin' THEN 'Ask an Admin of your organization (um_update_user).'
                                 ELSE 'Have the backend set it with nobody acting, or leave the key out.' END;
    END IF;
    p_new := CASE WHEN v_value = 'null'::jsonb THEN p_new - v_key ELSE jsonb_set(p_new, ARRAY[v_key], v_value) END;
    p_changed := p_changed || ('attributes.' || v_key);
  END LOOP;
END
$$;
COMMENT ON FUNCTION um_internal.patch_attributes(jsonb, jsonb, text, text[]) IS
  'internal: the user attributes after a patch (null removes a key), each changed key allowed for the actor by um.user_attribute_rules (UM013 undeclared, UM075 not theirs to change)';

-- Apply a profile change for p_as; returns the profile as the user sees it.
CREATE FUNCTION um_internal.apply_profile(p_user_id bigint, p_as text, p_action text, p_name text, p_timezone text,
                                          p_locale text, p_mobile text, p_attributes jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.users;
  v_changed text[] := '{}';
  v_attributes jsonb;
BEGIN
  SELECT * INTO v FROM um.users u WHERE u.id = p_user_id FOR NO KEY UPDATE;
  IF p_name IS NOT NULL AND p_name IS DISTINCT FROM v.name THEN v_changed := v_changed || 'name'::text; END IF;
  IF p_timezone IS NOT NULL AND p_timezone IS DISTINCT FROM v.timezone THEN v_changed := v_changed || 'timezone'::text; END IF;
  IF p_locale IS NOT NULL AND p_locale IS DISTINCT FROM v.locale THEN v_changed := v_changed || 'locale'::text; END IF;
  IF p_mobile IS NOT NULL AND nullif(p_mobile, '') IS DISTINCT FROM v.mobile THEN v_changed := v_changed || 'mobile'::text; END IF;
  SELECT a.p_new, a.p_changed INTO v_attributes, v_changed
    FROM um_internal.patch_attributes(v.attributes, p_attributes, p_as, v_changed) a;
  IF cardinality(v_changed) > 0 THEN
    -- checked by users_before_write (UM003-UM006): a bad value changes nothing
    UPDATE um.users u
       SET name = coalesce(p_name, u.name), timezone = coalesce(p_timezone, u.timezone),
           locale = coalesce(p_locale, u.locale),
           mobile = CASE WHEN p_mobile IS NULL THEN u.mobile ELSE nullif(p_mobile, '') END,
           attributes = v_attributes
     WHERE u.id = p_user_id
    RETURNING * INTO v;
    PERFORM um_internal.audit(p_action, NULL, 'user', p_user_id, jsonb_build_object('changed', to_jsonb(v_changed)));
  END IF;
  RETURN jsonb_build_object('id', v.id, 'email', v.email, 'name', v.name, 'timezone', v.timezone, 'locale', v.locale,
                            'mobile', v.mobile, 'attributes', v.attributes, 'updated_at', v.updated_at);
END
$$;
COMMENT ON FUNCTION um_internal.apply_profile(bigint, text, text, text, text, text, text, jsonb) IS
  'internal: changes a user''s name, time zone, locale, mobile ('''' removes it) and attributes (a patch) as p_as may, audits the fields changed (not their values), and returns the profile';

-- ---------------------------------------------------------------------------
-- Bodies

CREATE FUNCTION um_internal.do_declare_user_attribute(p_key text, p_editable_by text, p_description text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF @extschema@.um_current_user_id() IS NOT NULL THEN
    PERFORM um_internal.deny('user_attribute.declare', NULL, 'user_attribute', NULL, 'UM070',
      'permission denied to declare user attributes',
      'The application''s attributes are declared by a um administrator, for every organization.',
      'Declare them in the application''s migrations, with nobody acting.');
  END IF;
  PERFORM um_internal.authorize('user_attribute.declare', 'declare user attributes', NULL, NULL, 'user_attribute', NULL);
  IF p_key IS NULL OR p_key !~ '^[a-z][a-z0-9_]{0,62}$' THEN
    PERFORM um_internal.raise('UM013', format('invalid user attribute key "%s"', p_key), NULL,
      'Use a lowercase identifier of up to 63 characters, like department or cost_center.');
  END IF;
  IF p_editable_by IS NULL OR p_editable_by NOT IN ('user', 'admin', 'nobody') THEN
    PERFORM um_internal.raise('UM009', format('invalid editable_by "%s"', p_editable_by), NULL,
      'Pass user (the user and admins), admin (admins only, never the user it describes) or nobody (um administrators only).');
  END IF;
  INSERT INTO um.user_attribute_rules AS r (key, editable_by, description)
  VALUES (p_key, p_editable_by, p_description)
  ON CONFLICT (key) DO UPDATE SET editable_by = EXCLUDED.editable_by, description = EXCLUDED.description;
  PERFORM um_internal.audit('user_attribute.declare', NULL, 'user_attribute', NULL,
                            jsonb_build_object('key', p_key, 'editable_by', p_editable_by));
END
$$;
COMMENT ON FUNCTION um_internal.do_declare_user_attribute(text, text, text) IS
  'body of um_declare_user_attribute: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_declare_user_attribute (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_drop_user_attribute(p_key text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF @extschema@.um_current_user_id() IS NOT NULL THEN
    PERFORM um_internal.deny('user_attribute.drop', NULL, 'user_attribute', NULL, 'UM070',
      'permission denied to drop user attributes',
      'The application''s attributes are declared by a um administrator, for every organization.',
      'Drop them in the application''s migrations, with nobody acting.');
  END IF;
  PERFORM um_internal.authorize('user_attribute.drop', 'drop user attributes', NULL, NULL, 'user_attribute', NULL);
  DELETE FROM um.user_attribute_rules r WHERE r.key = p_key;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  PERFORM um_internal.audit('user_attribute.drop', NULL, 'user_attribute', NULL, jsonb_build_object('key', p_key));
  RETURN true;
END
$$;
COMMENT ON FUNCTION um_internal.do_drop_user_attribute(text) IS
  'body of um_drop_user_attribute: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_drop_user_attribute (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_update_profile(p_name text, p_timezone text, p_locale text, p_mobile text, p_attributes jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um_internal.require_actor('Call um_begin(token) first: a profile is changed by its own user.');
BEGIN
  IF v_actor IS DISTINCT FROM @extschema@.um_real_user_id() THEN
    PERFORM um_internal.deny('user.update_profile', NULL, 'user', v_actor, 'UM071',
      'cannot change a profile while impersonating its user', 'Impersonation shows what the user sees; it changes nothing of theirs.',
      'Call um_end_impersonation() first; an admin changes other users with um_update_user.');
  END IF;
  RETURN um_internal.apply_profile(v_actor, 'user', 'user.update_profile', p_name, p_timezone, p_locale, p_mobile, p_attributes);
END
$$;
COMMENT ON FUNCTION um_internal.do_update_profile(text, text, text, text, jsonb) IS
  'body of um_update_profile: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_update_profile (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_update_user(p_user_id bigint, p_name text, p_timezone text, p_locale text, p_mobile text,
                                           p_attributes jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint;
BEGIN
  IF @extschema@.um_current_user_id() IS DISTINCT FROM @extschema@.um_real_user_id() THEN
    PERFORM um_internal.deny('user.update', NULL, 'user', p_user_id, 'UM071',
      'cannot change users while impersonating', NULL, 'Call um_end_impersonation() first.');
  END IF;
  v_actor := um_internal.authorize_user('user.update', format('update user %s', p_user_id), 'user:update', p_user_id);
  RETURN um_internal.apply_profile(p_user_id,
                                   CASE WHEN v_actor IS NULL THEN 'administrator' WHEN v_actor = p_user_id THEN 'user' ELSE 'admin' END,
                                   'user.update', p_name, p_timezone, p_locale, p_mobile, p_attributes);
END
$$;
COMMENT ON FUNCTION um_internal.do_update_user(bigint, text, text, text, text, jsonb) IS
  'body of um_update_user: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_update_user (EXECUTE held by nobody)';

-- ---------------------------------------------------------------------------
-- The public functions: each is src/lifecycle.c's entry point, which calls
-- um_internal.do_<name> with the calling role.  None is STRICT: a NULL
-- argument gets the error that names it (or, for a profile field, leaves it).

CREATE FUNCTION @extschema@.um_declare_user_attribute(key text, editable_by text DEFAULT 'admin', description text DEFAULT NULL)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_declare_user_attribute(text, text, text) IS
  'declare (or redeclare) a key of um.users.attributes and who may change it: user, admin (never the user it describes) or nobody (um administrators only); um administrators';

CREATE FUNCTION @extschema@.um_drop_user_attribute(key text)
RETURNS boolean AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_drop_user_attribute(text) IS
  'forget a declared attribute key (the users'' values stay; only um administrators change them then); false when it was not declared; um administrators';

CREATE FUNCTION @extschema@.um_update_profile(name text DEFAULT NULL, timezone text DEFAULT NULL, locale text DEFAULT NULL,
                                              mobile text DEFAULT NULL, attributes jsonb DEFAULT NULL)
RETURNS jsonb AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_update_profile(text, text, text, text, jsonb) IS
  'the acting user changes their own profile: NULL leaves a field, mobile '''' removes it, attributes is a patch of user-editable keys (null removes one); returns the profile';

CREATE FUNCTION @extschema@.um_update_user(user_id bigint, name text DEFAULT NULL, timezone text DEFAULT NULL,
                                           locale text DEFAULT NULL, mobile text DEFAULT NULL, attributes jsonb DEFAULT NULL)
RETURNS jsonb AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_update_user(bigint, text, text, text, text, jsonb) IS
  'an admin (user:update in each of the user''s organizations; a Root only by a Root) changes a user''s profile as um_update_profile does, with admin-only attributes too (never their own); returns the profile';
