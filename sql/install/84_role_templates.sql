-- The role template: the built-in roles every organization has, and what
-- they hold.  The application changes it from its migrations, as a um
-- administrator with nobody acting; every change reaches every existing
-- organization in the same transaction and every organization made later.
--
-- An organization's built-in role follows the template's permissions (a
-- permission added to the template is added to the role, one taken away is
-- taken away), its display name (unless the organization renamed it) and
-- its description (unless changed there).  Permissions an organization
-- added to or took from its own copy otherwise stay as they are.  The root
-- role (key root) holds * and always stays; it can be renamed.

-- The root role stays in the template and holds exactly *.  A row of the
-- application's template arriving while um's default is in place and no
-- organization has roles is a restore (pg_dump keeps only the application's
-- template): the default makes way for it.
CREATE FUNCTION um_internal.builtin_roles_before_write()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    IF OLD.key = 'root' AND (OLD.source <> 'um' OR EXISTS (SELECT 1 FROM um.roles r WHERE r.builtin = 'root')) THEN
      RAISE EXCEPTION 'the root role cannot be dropped from the template'
        USING ERRCODE = 'UM042',
              DETAIL = 'Every organization has one root role: its owners, whom the last-Root rule protects.',
              HINT = 'Give it the display name you want (um_set_role_template(''root'', ...)).';
    END IF;
    RETURN OLD;
  END IF;
  IF TG_OP = 'UPDATE' AND NEW.key <> OLD.key THEN
    RAISE EXCEPTION 'the key of built-in role "%" cannot change', OLD.name
      USING ERRCODE = 'UM042', HINT = 'Keys are stable: change the display name instead.';
  END IF;
  IF TG_OP = 'INSERT' AND NEW.source = 'application'
     AND EXISTS (SELECT 1 FROM um.builtin_roles b WHERE b.source = 'um')
     AND NOT EXISTS (SELECT 1 FROM um.roles r WHERE r.builtin IS NOT NULL) THEN
    DELETE FROM um.builtin_roles b WHERE b.source = 'um';    -- their permissions go with them
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION um_internal.builtin_roles_before_write() IS
  'trigger on um.builtin_roles: the root role stays and keys never change (UM042); a restored application template replaces um''s default';
CREATE TRIGGER builtin_roles_before_write BEFORE INSERT OR UPDATE OR DELETE ON um.builtin_roles
  FOR EACH ROW EXECUTE FUNCTION um_internal.builtin_roles_before_write();

-- Who changes the template: a um administrator, with nobody acting.
CREATE FUNCTION um_internal.authorize_template(p_action text, p_what text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF @extschema@.um_current_user_id() IS NOT NULL THEN
    PERFORM um_internal.deny(p_action, NULL, 'role_template', NULL, 'UM070',
      'permission denied to ' || p_what,
      'The role template is shared by every organization; only a um administrator, with nobody acting, changes it.',
      'Change the application''s roles from its migrations, as a um administrator.');
  END IF;
  PERFORM um_internal.authorize(p_action, p_what, NULL, NULL, 'role_template', NULL);
  -- one template change at a time, and none while an organization is being
  -- made (um_internal.seed_builtin_roles takes ROW SHARE)
  LOCK TABLE um.builtin_roles IN EXCLUSIVE MODE;
  -- from the first change on, the whole template is the application's,
  -- which pg_dump keeps
  UPDATE um.builtin_role_permissions t SET source = 'application' WHERE t.source = 'um';
  UPDATE um.builtin_roles b SET source = 'application' WHERE b.source = 'um';
END
$$;
COMMENT ON FUNCTION um_internal.authorize_template(text, text) IS
  'internal: only a um administrator with nobody acting changes the role template (UM070, audited); locks it and makes it the application''s';

CREATE FUNCTION um_internal.require_template(p_key text)
RETURNS um.builtin_roles
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.builtin_roles;
BEGIN
  SELECT * INTO v FROM um.builtin_roles b WHERE b.key = p_key;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'the role template has no role "%"', left(p_key, 100)
      USING ERRCODE = 'UM039',
            HINT = 'See the template''s roles in um.role_template_list, or add one with um_set_role_template().';
  END IF;
  RETURN v;
END
$$;
COMMENT ON FUNCTION um_internal.require_template(text) IS 'internal: the template role of that key, or UM039';

-- A permission or pattern a template role may hold: valid, known to the
-- catalog, and never for the root role (which holds *) nor * for another.
CREATE FUNCTION um_internal.assert_template_permission(p_key text, p_permission text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF p_permission IS NULL THEN
    PERFORM um_internal.raise('UM009', 'a permission is required', NULL, 'Pass "resource:action", or a pattern with *.');
  END IF;
  PERFORM um_internal.assert_permission_name(p_permission, true);
  IF p_key = 'root' THEN
    PERFORM um_internal.raise('UM042', 'the root role holds every permission',
      'Its permissions are * in every organization: the catalog''s, and every permission registered later.', 
      'Give the permission to the other roles that need it.');
  END IF;
  IF p_permission IN ('*', '*:*') THEN                 -- both stand for every permission
    PERFORM um_internal.raise('UM042', 'only the root role holds *',
      format('Built-in role "%s" would hold every permission, the root role''s included.', p_key),
      'Give it patterns for the parts it needs (invoice:*, *:read).');
  END IF;
  IF NOT EXISTS (SELECT 1 FROM um.permissions p WHERE @extschema@.um_permission_matches(p_permission, p.name)) THEN
    PERFORM um_internal.raise('UM011', format('unknown permission "%s"', p_permission),
      'No permission in the catalog (um.permissions) matches it.',
      'Register the permission first with um_register_permission().');
  END IF;
END
$$;
COMMENT ON FUNCTION um_internal.assert_template_permission(text, text) IS
  'internal: a permission or pattern a template role may hold (UM009, UM010, UM011; UM042 for the root role or *)';

-- Add a permission to a template role and to that role in every organization.
CREATE FUNCTION um_internal.template_add(p_key text, p_permission text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  INSERT INTO um.builtin_role_permissions (role_key, permission, source)
  VALUES (p_key, p_permission, 'application') ON CONFLICT DO NOTHING;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  INSERT INTO um.role_permissions (org_id, role_id, permission)
  SELECT r.org_id, r.id, p_permission FROM um.roles r WHERE r.builtin = p_key
  ON CONFLICT DO NOTHING;
  RETURN true;
END
$$;
COMMENT ON FUNCTION um_internal.template_add(text, text) IS
  'internal: adds a permission to a template role and to that built-in role of every organization; false when the template had it';

CREATE FUNCTION um_internal.template_remove(p_key text, p_permission text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  DELETE FROM um.builtin_role_permissions t WHERE t.role_key = p_key AND t.permission = p_permission;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  DELETE FROM um.role_permissions rp USING um.roles r
   WHERE r.builtin = p_key AND rp.org_id = r.org_id AND rp.role_id = r.id AND rp.permission = p_permission;
  RETURN true;
END
$$;
COMMENT ON FUNCTION um_internal.template_remove(text, text) IS
  'internal: takes a permission from a template role and from that built-in role of every organization; false when the template did not have it';

-- A display name for a template role that no other role uses: not another
-- template role, not a role of an organization that would get it.
CREATE FUNCTION um_internal.assert_template_name(p_key text, p_name text, p_old_name text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_slug text;
  v_n bigint;
BEGIN
  IF p_name IS NULL OR NOT um_internal.display_name_is_valid(p_name, 100) THEN
    PERFORM um_internal.raise('UM003', format('invalid role name "%s"', left(p_name, 100)),
      'A name has 1 to 100 characters, no leading or trailing blanks and no control characters.',
      'Trim or shorten the name.');
  END IF;
  IF EXISTS (SELECT 1 FROM um.builtin_roles b WHERE lower(b.name) = lower(p_name) AND b.key <> p_key) THEN
    PERFORM um_internal.raise('UM026', format('the role template already has a role named "%s"', p_name),
      NULL, 'Choose another name (role names are unique regardless of letter case).');
  END IF;
  -- the organizations whose copy would take the name: all of them for a new
  -- role, those that kept the template's name for a renamed one
  SELECT min(o.slug), count(*) INTO v_slug, v_n
    FROM um.roles x JOIN um.organizations o ON o.id = x.org_id
   WHERE lower(x.name) = lower(p_name) AND x.builtin IS DISTINCT FROM p_key
     AND (p_old_name IS NULL
          OR EXISTS (SELECT 1 FROM um.roles r WHERE r.org_id = x.org_id AND r.builtin = p_key AND r.name = p_old_name));
  IF v_n > 0 THEN
    PERFORM um_internal.raise('UM026', format('%s organization(s) already have a role named "%s"', v_n, p_name),
      format('Organization "%s" is one of them.', v_slug),
      'Choose another name, or have those organizations rename their role first.');
  END IF;
END
$$;
COMMENT ON FUNCTION um_internal.assert_template_name(text, text, text) IS
  'internal: a valid display name for a template role that no other template role and no role of an organization that would take it uses (UM003, UM026)';

CREATE FUNCTION um_internal.do_set_role_template(p_key text, p_name text, p_description text, p_permissions text[],
                                        p_renamable boolean, p_position integer)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_old um.builtin_roles;
  v_p text;
  v_added text[];
  v_removed text[];
BEGIN
  PERFORM um_internal.authorize_template('role_template.set', 'change the role template');
  IF p_key IS NULL OR p_key !~ '^[a-z][a-z0-9_]{0,62}$' THEN
    PERFORM um_internal.raise('UM009', format('invalid role template key "%s"', left(p_key, 100)),
      'A key is a lower-case letter followed by up to 62 lower-case letters, digits or _.',
      'Pass a stable identifier such as ''billing_admin''.');
  END IF;
  IF p_position IS NOT NULL AND p_position < 1 THEN
    PERFORM um_internal.raise('UM009', 'a position is a positive number', NULL, 'Pass 1 for the first role, or NULL.');
  END IF;
  SELECT * INTO v_old FROM um.builtin_roles b WHERE b.key = p_key;
  PERFORM um_internal.assert_template_name(p_key, p_name, CASE WHEN v_old.key IS NULL THEN NULL ELSE v_old.name END);
  IF p_permissions IS NOT NULL AND NOT (p_key = 'root' AND p_permissions = '{*}') THEN
    FOREACH v_p IN ARRAY p_permissions LOOP
      PERFORM um_internal.assert_template_permission(p_key, v_p);
    END LOOP;
  END IF;

  IF v_old.key IS NULL THEN
    INSERT INTO um.builtin_roles (key, name, description, position, renamable, source)
    VALUES (p_key, p_name, p_description,
            coalesce(p_position, (SELECT coalesce(max(b.position), 0) + 1 FROM um.builtin_roles b)),
            coalesce(p_renamable, false), 'application');
    INSERT INTO um.roles (org_id, name, description, builtin)
    SELECT o.id, p_name, p_description, p_key FROM um.organizations o ORDER BY o.id;
    SELECT array_agg(DISTINCT x ORDER BY x) INTO v_added FROM unnest(p_permissions) AS x;
    PERFORM um_internal.template_add(p_key, x) FROM unnest(v_added) AS x;
    PERFORM um_internal.audit('role_template.set', NULL, 'role_template', NULL,
                     jsonb_build_object('key', p_key, 'created', true, 'name', p_name,
                                        'permissions', to_jsonb(coalesce(v_added, '{}'))));
    RETURN true;
  END IF;

  p_description := coalesce(p_description, v_old.description);      -- NULL: as it is
  UPDATE um.builtin_roles b
     SET name = p_name, description = p_description,
         renamable = coalesce(p_renamable, b.renamable), position = coalesce(p_position, b.position)
   WHERE b.key = p_key;
  -- the organizations that kept the template's name and description follow it
  UPDATE um.roles r SET name = p_name
   WHERE r.builtin = p_key AND r.name = v_old.name AND p_name <> v_old.name;
  UPDATE um.roles r SET description = p_description
   WHERE r.builtin = p_key AND r.description IS NOT DISTINCT FROM v_old.description
     AND p_description IS DISTINCT FROM v_old.description;
  IF p_permissions IS NOT NULL AND p_key <> 'root' THEN
    SELECT array_agg(DISTINCT x ORDER BY x) INTO v_added FROM unnest(p_permissions) AS x
     WHERE NOT EXISTS (SELECT 1 FROM um.builtin_role_permissions t WHERE t.role_key = p_key AND t.permission = x);
    SELECT array_agg(t.permission ORDER BY t.permission) INTO v_removed FROM um.builtin_role_permissions t
     WHERE t.role_key = p_key AND t.permission <> ALL (p_permissions);
    PERFORM um_internal.template_add(p_key, x) FROM unnest(v_added) AS x;
    PERFORM um_internal.template_remove(p_key, x) FROM unnest(v_removed) AS x;
  END IF;
  PERFORM um_internal.audit('role_template.set', NULL, 'role_template', NULL,
                   jsonb_build_object('key', p_key, 'created', false, 'name', p_name,
                                      'added', to_jsonb(coalesce(v_added, '{}')),
                                      'removed', to_jsonb(coalesce(v_removed, '{}'))));
  RETURN false;
END
$$;
COMMENT ON FUNCTION um_internal.do_set_role_template(text, text, text, text[], boolean, integer) IS
  'body of um_set_role_template: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_set_role_template (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_grant_template_permission(p_key text, p_permission text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM um_internal.authorize_template('role_template.grant_permission', 'change the role template');
  PERFORM um_internal.require_template(p_key);
  PERFORM um_internal.assert_template_permission(p_key, p_permission);
  IF NOT um_internal.template_add(p_key, p_permission) THEN
    RETURN false;
  END IF;
  PERFORM um_internal.audit('role_template.grant_permission', NULL, 'role_template', NULL,
                   jsonb_build_object('key', p_key, 'permission', p_permission));
  RETURN true;
END
$$;
COMMENT ON FUNCTION um_internal.do_grant_template_permission(text, text) IS
  'body of um_grant_template_permission: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_grant_template_permission (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_revoke_template_permission(p_key text, p_permission text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM um_internal.authorize_template('role_template.revoke_permission', 'change the role template');
  PERFORM um_internal.require_template(p_key);
  IF p_key = 'root' THEN
    PERFORM um_internal.assert_template_permission(p_key, coalesce(p_permission, '*'));   -- UM042
  END IF;
  IF p_permission IS NULL THEN
    PERFORM um_internal.raise('UM009', 'a permission is required', NULL, 'Pass "resource:action", or a pattern with *.');
  END IF;
  PERFORM um_internal.assert_permission_name(p_permission, true);
  IF NOT um_internal.template_remove(p_key, p_permission) THEN
    RETURN false;
  END IF;
  PERFORM um_internal.audit('role_template.revoke_permission', NULL, 'role_template', NULL,
                   jsonb_build_object('key', p_key, 'permission', p_permission));
  RETURN true;
END
$$;
COMMENT ON FUNCTION um_internal.do_revoke_template_permission(text, text) IS
  'body of um_revoke_template_permission: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_revoke_template_permission (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_drop_role_template(p_key text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_n bigint;
BEGIN
  PERFORM um_internal.authorize_template('role_template.drop', 'change the role template');
  PERFORM um_internal.require_template(p_key);
  IF p_key = 'root' THEN
    PERFORM um_internal.raise('UM042', 'the root role cannot be dropped from the template',
      'Every organization has one root role: its owners, whom the last-Root rule protects.',
      'Give it the display name you want (um_set_role_template(''root'', ...)).');
  END IF;
  SELECT count(*) INTO v_n FROM um.roles r WHERE r.builtin = p_key;
  -- every organization's copy becomes a custom role (the foreign key's SET
  -- NULL): its members, grants and permissions stay as they are
  DELETE FROM um.builtin_roles b WHERE b.key = p_key;
  PERFORM um_internal.audit('role_template.drop', NULL, 'role_template', NULL,
                   jsonb_build_object('key', p_key, 'organizations', v_n));
END
$$;
COMMENT ON FUNCTION um_internal.do_drop_role_template(text) IS
  'body of um_drop_role_template: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_drop_role_template (EXECUTE held by nobody)';

-- ---------------------------------------------------------------------------
-- What the template is, for everybody to read.

CREATE VIEW um.role_template_list AS
SELECT b.key, b.name, b.description, b.position, b.key = 'root' AS root, b.renamable,
       ARRAY(SELECT t.permission FROM um.builtin_role_permissions t
              WHERE t.role_key = b.key ORDER BY t.permission) AS permissions,
       b.source
  FROM um.builtin_roles b;
COMMENT ON VIEW um.role_template_list IS 'the role template: the built-in roles every organization has, with their permissions';
COMMENT ON COLUMN um.role_template_list.key IS 'the stable key (um.roles.builtin)';
COMMENT ON COLUMN um.role_template_list.name IS 'the display name organizations get';
COMMENT ON COLUMN um.role_template_list.description IS 'what the role is for';
COMMENT ON COLUMN um.role_template_list.position IS 'display order';
COMMENT ON COLUMN um.role_template_list.root IS 'the root role: holds every permission, always has an active member';
COMMENT ON COLUMN um.role_template_list.renamable IS 'organizations may give it a name of their own';
COMMENT ON COLUMN um.role_template_list.permissions IS 'permissions and patterns it holds in every organization';
COMMENT ON COLUMN um.role_template_list.source IS 'um: um''s default template; application: changed by the application';

-- ---------------------------------------------------------------------------
-- The public functions (src/lifecycle.c's entry point calls um_internal.do_<name>).

CREATE FUNCTION @extschema@.um_set_role_template(key text, name text, description text DEFAULT NULL,
                                                 permissions text[] DEFAULT NULL, renamable boolean DEFAULT NULL,
                                                 "position" integer DEFAULT NULL)
RETURNS boolean AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_set_role_template(text, text, text, text[], boolean, integer) IS
  'um administrators: add a built-in role to every organization, or change one (its name; description, permissions, renamable and position when not NULL); true when added';

CREATE FUNCTION @extschema@.um_grant_template_permission(key text, permission text)
RETURNS boolean AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_grant_template_permission(text, text) IS
  'um administrators: give a built-in role a permission or pattern in every organization, now and later; false when it had it';

CREATE FUNCTION @extschema@.um_revoke_template_permission(key text, permission text)
RETURNS boolean AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_revoke_template_permission(text, text) IS
  'um administrators: take a permission or pattern from a built-in role in every organization; false when the template did not have it';

CREATE FUNCTION @extschema@.um_drop_role_template(key text)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_drop_role_template(text) IS
  'um administrators: remove a built-in role from the template; each organization keeps its copy as a custom role (never the root role)';
