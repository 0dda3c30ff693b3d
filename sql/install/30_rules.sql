-- Rules the foreign keys and CHECK constraints cannot say: validation with
-- explanations, cycles, protected built-in roles, the Root an organization
-- must keep, the owner a team must keep, the append-only audit trail.
-- Each raises a um SQLSTATE (class UM, listed in doc/errors.md) with a hint.
-- Row-level rules that only validate are BEFORE triggers; rules over a whole
-- organization are AFTER ... FOR EACH STATEMENT triggers over the transition
-- table, so a bulk change is checked once per organization, after all its
-- rows are in place.

-- um_internal.suspended: is a suspension (of a user or of a membership) in
-- effect?  A timed one ends by itself at the first statement that starts at
-- its end (src/scan.c's um_scan_suspended decides the same for the cache).
CREATE FUNCTION um_internal.suspended(p_status text, p_until timestamptz)
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN p_status = 'suspended' AND (p_until IS NULL OR p_until > pg_catalog.statement_timestamp());
COMMENT ON FUNCTION um_internal.suspended(text, timestamptz) IS
  'internal: whether a suspension (status, suspended_until) is in effect at the start of this statement';

-- um_internal.lock_organization: serialize changes to one organization's invariants.
-- Updating (not just locking) the row makes a concurrent REPEATABLE READ
-- transaction fail with a serialization error instead of deciding on a stale
-- snapshot; under READ COMMITTED the second transaction waits and the checks
-- after this call see what the first one committed.  Returns false when the
-- organization no longer exists (it is being deleted).
CREATE FUNCTION um_internal.lock_organization(p_org_id bigint)
RETURNS boolean
LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  UPDATE um.organizations SET revision = revision + 1 WHERE id = p_org_id;
  RETURN FOUND;
END
$$;
COMMENT ON FUNCTION um_internal.lock_organization(bigint) IS 'internal: serializes changes to one organization''s invariants by updating its row (a concurrent REPEATABLE READ transaction fails instead of deciding on a stale snapshot); false when the organization is gone';

-- users ---------------------------------------------------------------------
-- um_internal.assert_user_fields: a user's fields, each refused with its SQLSTATE;
-- the row trigger and the calls that must refuse bad input before they look
-- anything up (um_sign_up) share it.  A NULL time zone is not checked (an
-- UPDATE checks it only when it changes: the zone database may change).
CREATE FUNCTION um_internal.assert_user_fields(p_email text, p_name text, p_timezone text, p_locale text,
                                      p_mobile text, p_attributes jsonb)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM um_internal.assert_email(p_email);
  IF p_name IS NOT NULL AND NOT um_internal.display_name_is_valid(p_name) THEN
    RAISE EXCEPTION 'invalid user name "%"', p_name
      USING ERRCODE = 'UM003',
            DETAIL = 'A name has 1 to 200 characters, no leading or trailing blanks and no control characters.',
            HINT = 'Trim the name, or pass NULL for a user without a name.';
  END IF;
  IF p_timezone IS NOT NULL AND NOT um_internal.timezone_is_valid(p_timezone) THEN
    RAISE EXCEPTION 'unknown time zone "%"', p_timezone
      USING ERRCODE = 'UM004',
            HINT = 'Use an IANA time zone name such as UTC, Europe/Paris or America/New_York (see pg_timezone_names).';
  END IF;
  IF NOT um_internal.locale_is_valid(p_locale) THEN
    RAISE EXCEPTION 'invalid locale "%"', p_locale
      USING ERRCODE = 'UM005',
            HINT = 'Use a BCP 47 language tag such as en, en-GB, pt-BR or zh-Hant-TW.';
  END IF;
  IF p_mobile IS NOT NULL AND NOT um_internal.mobile_is_valid(p_mobile) THEN
    RAISE EXCEPTION 'invalid mobile number "%"', p_mobile
      USING ERRCODE = 'UM006',
            HINT = 'Use the E.164 form: "+", country code and number, digits only, e.g. +14155550123.';
  END IF;
  IF jsonb_typeof(p_attributes) IS DISTINCT FROM 'object' THEN
    RAISE EXCEPTION 'user attributes must be a JSON object'
      USING ERRCODE = 'UM007',
            DETAIL = format('The value given is a JSON %s.', coalesce(jsonb_typeof(p_attributes), 'null')),
            HINT = 'Pass key/value pairs, e.g. ''{"department": "finance"}''.';
  END IF;
END
$$;
COMMENT ON FUNCTION um_internal.assert_user_fields(text, text, text, text, text, jsonb) IS
  'internal: refuses an invalid email (UM001), name (UM003), time zone (UM004, unless NULL), locale (UM005), mobile (UM006) or attributes (UM007)';

CREATE FUNCTION um_internal.users_before_write()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM um_internal.assert_user_fields(NEW.email, NEW.name,
                                CASE WHEN TG_OP = 'INSERT' OR NEW.timezone IS DISTINCT FROM OLD.timezone
                                     THEN coalesce(NEW.timezone, '') END,
                                NEW.locale, NEW.mobile, NEW.attributes);
  IF TG_OP = 'UPDATE' THEN
    NEW.updated_at := now();
    IF lower(NEW.email) <> lower(OLD.email) THEN
      NEW.email_verified_at := NULL;      -- a new address must be verified again
    END IF;
  END IF;
  -- a change of status records (or clears) when the user was suspended
  IF TG_OP = 'INSERT' OR NEW.status <> OLD.status THEN
    NEW.suspended_at := CASE WHEN NEW.status = 'suspended' THEN coalesce(NEW.suspended_at, now()) END;
    NEW.suspended_until := CASE WHEN NEW.status = 'suspended' THEN NEW.suspended_until END;
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION um_internal.users_before_write() IS 'trigger on um.users: validates email, name, time zone, locale, mobile and attributes with explanations; keeps updated_at, suspended_at, and unverifies a changed address';
CREATE TRIGGER users_before_write BEFORE INSERT OR UPDATE ON um.users
  FOR EACH ROW EXECUTE FUNCTION um_internal.users_before_write();

-- organizations ---------------------------------------------------------------
CREATE FUNCTION um_internal.organizations_before_write()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.slug = OLD.slug AND NEW.name = OLD.name
     AND NEW.password_login_disabled = OLD.password_login_disabled THEN
    RETURN NEW;                           -- e.g. um_internal.lock_organization
  END IF;
  IF NOT um_internal.slug_is_valid(NEW.slug) THEN
    RAISE EXCEPTION 'invalid organization slug "%"', NEW.slug
      USING ERRCODE = 'UM002',
            DETAIL = 'A slug has 1 to 63 lowercase ASCII letters, digits and hyphens, and starts and ends with a letter or digit.',
            HINT = 'Use something like "acme" or "acme-eu".';
  END IF;
  IF NOT um_internal.display_name_is_valid(NEW.name) THEN
    RAISE EXCEPTION 'invalid organization name "%"', NEW.name
      USING ERRCODE = 'UM003',
            DETAIL = 'A name has 1 to 200 characters, no leading or trailing blanks and no control characters.',
            HINT = 'Trim the name.';
  END IF;
  -- Checked when the setting is switched on.  (A new row cannot have an
  -- identity provider yet; rows that arrive with it on come from pg_restore,
  -- whose providers follow.)
  IF TG_OP = 'UPDATE' AND NEW.password_login_disabled AND NOT OLD.password_login_disabled
     AND NOT EXISTS (SELECT 1 FROM um.identity_providers p WHERE p.org_id = NEW.id) THEN
    RAISE EXCEPTION 'organization "%" has no identity provider', NEW.slug
      USING ERRCODE = 'UM045',
            DETAIL = 'Disabling password login without an identity provider would lock every member out.',
            HINT = 'Link and test an identity provider for the organization first, then disable password login.';
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION um_internal.organizations_before_write() IS 'trigger on um.organizations: validates slug and name; refuses password_login_disabled without an identity provider (UM045)';
CREATE TRIGGER organizations_before_write BEFORE INSERT OR UPDATE ON um.organizations
  FOR EACH ROW EXECUTE FUNCTION um_internal.organizations_before_write();

CREATE FUNCTION um_internal.identity_providers_before_delete()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_slug text;
BEGIN
  SELECT o.slug INTO v_slug FROM um.organizations o
   WHERE o.id = OLD.org_id AND o.password_login_disabled;
  IF FOUND AND NOT EXISTS (SELECT 1 FROM um.identity_providers p
                            WHERE p.org_id = OLD.org_id AND p.id <> OLD.id) THEN
    RAISE EXCEPTION 'cannot remove the last identity provider of organization "%"', v_slug
      USING ERRCODE = 'UM045',
            DETAIL = 'Password login is disabled there, so members could no longer sign in.',
            HINT = 'Enable password login for the organization first, or link another identity provider.';
  END IF;
  RETURN OLD;
END
$$;
COMMENT ON FUNCTION um_internal.identity_providers_before_delete() IS 'trigger on um.identity_providers: refuses to remove the last provider of an organization whose password login is disabled (UM045)';
CREATE TRIGGER identity_providers_before_delete BEFORE DELETE ON um.identity_providers
  FOR EACH ROW EXECUTE FUNCTION um_internal.identity_providers_before_delete();

-- roles -----------------------------------------------------------------------
CREATE FUNCTION um_internal.roles_before_write()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    IF OLD.builtin IS NOT NULL
       AND EXISTS (SELECT 1 FROM um.organizations o WHERE o.id = OLD.org_id) THEN
      RAISE EXCEPTION 'built-in role "%" cannot be deleted', OLD.name
        USING ERRCODE = 'UM042',
              DETAIL = 'Every organization keeps its built-in roles; their permissions can be edited.',
              HINT = 'Edit the role''s permissions instead, or create a custom role.';
    END IF;
    RETURN OLD;
  END IF;
  IF TG_OP = 'UPDATE' THEN
    IF NEW.org_id <> OLD.org_id THEN
      RAISE EXCEPTION 'a role cannot move to another organization'
        USING ERRCODE = 'UM046',
              HINT = 'Create a role of the same name in the other organization.';
    END IF;
    -- a built-in role stops being one only when the template drops it (the
    -- foreign key's SET NULL); it takes another name only when the template
    -- allows organizations to rename it, or to follow the template's name
    IF OLD.builtin IS NOT NULL AND NEW.builtin IS DISTINCT FROM OLD.builtin
       AND (NEW.builtin IS NOT NULL OR EXISTS (SELECT 1 FROM um.builtin_roles b WHERE b.key = OLD.builtin)) THEN
      RAISE EXCEPTION 'built-in role "%" cannot become another role', OLD.name
        USING ERRCODE = 'UM042',
              HINT = 'Drop the role from the template (um_drop_role_template) to make it a custom role everywhere.';
    END IF;
    IF OLD.builtin IS NOT NULL AND NEW.builtin IS NOT NULL AND NEW.name <> OLD.name
       AND NOT EXISTS (SELECT 1 FROM um.builtin_roles b
                        WHERE b.key = OLD.builtin AND (b.renamable OR b.name = NEW.name)) THEN
      RAISE EXCEPTION 'built-in role "%" cannot be renamed', OLD.name
        USING ERRCODE = 'UM042',
              DETAIL = 'The application keeps the names of its built-in roles the same in every organization.',
              HINT = 'Create a custom role with the name you want, including the built-in role if it should grant the same.';
    END IF;
    IF OLD.builtin IS NULL AND NEW.builtin IS NOT NULL THEN
      RAISE EXCEPTION 'custom role "%" cannot become a built-in role', OLD.name
        USING ERRCODE = 'UM042',
              HINT = 'Built-in roles are created with the organization.';
    END IF;
  END IF;
  IF NOT um_internal.display_name_is_valid(NEW.name, 100) THEN
    RAISE EXCEPTION 'invalid role name "%"', NEW.name
      USING ERRCODE = 'UM003',
            DETAIL = 'A name has 1 to 100 characters, no leading or trailing blanks and no control characters.',
            HINT = 'Trim the name.';
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION um_internal.roles_before_write() IS 'trigger on um.roles: built-in roles are not deleted, made from custom ones, or renamed unless the template allows it (UM042); no role moves to another organization; validates the name';
CREATE TRIGGER roles_before_write BEFORE INSERT OR UPDATE OR DELETE ON um.roles
  FOR EACH ROW EXECUTE FUNCTION um_internal.roles_before_write();

CREATE FUNCTION um_internal.role_inclusions_check_cycle()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_role text;
  v_included text;
BEGIN
  PERFORM um_internal.lock_organization(NEW.org_id);
  IF EXISTS (
      WITH RECURSIVE reach(role_id) AS (
        SELECT NEW.included_role_id
        UNION
        SELECT ri.included_role_id
          FROM um.role_inclusions ri JOIN reach ON ri.role_id = reach.role_id)
      SELECT 1 FROM reach WHERE reach.role_id = NEW.role_id) THEN
    SELECT name INTO v_role FROM um.roles WHERE id = NEW.role_id;
    SELECT name INTO v_included FROM um.roles WHERE id = NEW.included_role_id;
    RAISE EXCEPTION 'role "%" cannot include role "%": that would make a cycle', v_role, v_included
      USING ERRCODE = 'UM040',
            DETAIL = format('Role "%s" already includes role "%s", directly or through other roles.', v_included, v_role),
            HINT = 'Include the roles in one direction only; a composite role includes smaller ones.';
  END IF;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION um_internal.role_inclusions_check_cycle() IS 'statement trigger on um.role_inclusions: refuses an inclusion that would make a cycle of roles (UM040)';
CREATE TRIGGER role_inclusions_check_cycle AFTER INSERT OR UPDATE ON um.role_inclusions
  FOR EACH ROW EXECUTE FUNCTION um_internal.role_inclusions_check_cycle();

-- permissions -----------------------------------------------------------------
CREATE FUNCTION um_internal.role_permissions_before_write()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_known boolean;
BEGIN
  PERFORM um_internal.assert_permission_name(NEW.permission, true);
  IF strpos(NEW.permission, '*') = 0 THEN
    v_known := EXISTS (SELECT 1 FROM um.permissions p WHERE p.name = NEW.permission);
  ELSE
    v_known := EXISTS (SELECT 1 FROM um.permissions p WHERE @extschema@.um_permission_matches(NEW.permission, p.name));
  END IF;
  IF NOT v_known THEN
    RAISE EXCEPTION 'unknown permission "%"', NEW.permission
      USING ERRCODE = 'UM011',
            DETAIL = 'No permission in the catalog (um.permissions) matches it.',
            HINT = 'Check the spelling, or register the permission first with um_register_permission().';
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION um_internal.role_permissions_before_write() IS 'trigger on um.role_permissions: the permission must be a valid name or pattern and name or match catalog permissions (UM010, UM011)';
CREATE TRIGGER role_permissions_before_write BEFORE INSERT OR UPDATE ON um.role_permissions
  FOR EACH ROW EXECUTE FUNCTION um_internal.role_permissions_before_write();

CREATE FUNCTION um_internal.permissions_before_write()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_roles bigint;
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM um_internal.assert_permission_name(NEW.name, false);
    RETURN NEW;
  END IF;
  IF OLD.builtin THEN
    RAISE EXCEPTION 'built-in permission "%" cannot be %', OLD.name,
                    CASE TG_OP WHEN 'DELETE' THEN 'removed' ELSE 'changed' END
      USING ERRCODE = 'UM048',
            HINT = 'um itself checks built-in permissions; remove them from roles instead.';
  END IF;
  IF TG_OP = 'UPDATE' THEN
    IF NEW.name <> OLD.name THEN
      RAISE EXCEPTION 'permission "%" cannot be renamed', OLD.name
        USING ERRCODE = 'UM048',
              HINT = 'Register the new name, move the grants, then remove the old one.';
    END IF;
    RETURN NEW;
  END IF;
  SELECT count(*) INTO v_roles FROM um.role_permissions rp WHERE rp.permission = OLD.name;
  IF EXISTS (SELECT 1 FROM um.builtin_role_permissions t WHERE t.permission = OLD.name) THEN
    RAISE EXCEPTION 'permission "%" is still in the role template', OLD.name
      USING ERRCODE = 'UM048',
            HINT = 'Take it from the template first (um_revoke_template_permission).';
  END IF;
  IF v_roles > 0 THEN
    RAISE EXCEPTION 'permission "%" is still granted by % role(s)', OLD.name, v_roles
      USING ERRCODE = 'UM048',
            HINT = 'Remove it from those roles first (see um.role_permissions).';
  END IF;
  RETURN OLD;
END
$$;
COMMENT ON FUNCTION um_internal.permissions_before_write() IS 'trigger on um.permissions: validates new names; built-in permissions are never changed or deleted, none is renamed, nor deleted while a role grants it (UM048)';
CREATE TRIGGER permissions_before_write BEFORE INSERT OR UPDATE OR DELETE ON um.permissions
  FOR EACH ROW EXECUTE FUNCTION um_internal.permissions_before_write();

-- memberships -----------------------------------------------------------------
CREATE FUNCTION um_internal.memberships_before_update()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF NEW.org_id <> OLD.org_id OR NEW.user_id <> OLD.user_id THEN
    RAISE EXCEPTION 'a membership cannot move to another organization or user'
      USING ERRCODE = 'UM046',
            HINT = 'Remove the membership and add a new one.';
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION um_internal.memberships_before_update() IS 'trigger on um.memberships: a membership never moves to another organization or user (UM046)';
CREATE TRIGGER memberships_before_update BEFORE UPDATE ON um.memberships
  FOR EACH ROW EXECUTE FUNCTION um_internal.memberships_before_update();

-- um_internal.has_usable_root: does the organization have a Root who can act (an
-- active membership of an active user who may log in)?
CREATE FUNCTION um_internal.has_usable_root(p_org_id bigint)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN EXISTS (SELECT 1 FROM um.memberships m JOIN um.roles r ON r.id = m.role_id JOIN um.users u ON u.id = m.user_id
                  WHERE m.org_id = p_org_id AND r.builtin = 'root' AND m.status = 'active'
                    AND u.status = 'active' AND u.allow_login);
END
$$;
COMMENT ON FUNCTION um_internal.has_usable_root(bigint) IS 'internal: does the organization have a Root who can act (active membership, active user allowed to log in)?';

-- An organization with members always has a Root among them, and no change
-- of memberships takes away its last Root who can log in (a Root leaving,
-- demoted, removed, suspended in it or deleted while the other Roots cannot
-- log in).  A membership whose user is gone (an account being deleted)
-- counts as one that could log in.  Suspending a user or taking their login
-- is guarded by the lifecycle functions (um_internal.guard_last_active_root); a direct
-- UPDATE of um.users by an administrator is not, and um_check_integrity()
-- reports what it leaves.
CREATE FUNCTION um_internal.memberships_keep_root()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_org bigint;
  v_slug text;
BEGIN
  FOR v_org IN SELECT DISTINCT c.org_id FROM changed_rows c ORDER BY 1 LOOP
    CONTINUE WHEN NOT um_internal.lock_organization(v_org);   -- organization being deleted
    CONTINUE WHEN NOT EXISTS (SELECT 1 FROM um.memberships m WHERE m.org_id = v_org);
    IF NOT EXISTS (SELECT 1 FROM um.memberships m JOIN um.roles r ON r.id = m.role_id
                    WHERE m.org_id = v_org AND r.builtin = 'root') THEN
      SELECT slug INTO v_slug FROM um.organizations WHERE id = v_org;
      RAISE EXCEPTION 'organization "%" would be left without a Root', v_slug
        USING ERRCODE = 'UM044',
              DETAIL = 'An organization with members always has at least one member with the built-in Root role.',
              HINT = 'Make another member Root first, or transfer ownership of the organization.';
    END IF;
    IF TG_OP <> 'INSERT'
       AND EXISTS (SELECT 1 FROM changed_rows c JOIN um.roles r ON r.id = c.role_id
                     LEFT JOIN um.users u ON u.id = c.user_id
                    WHERE c.org_id = v_org AND r.builtin = 'root' AND c.status = 'active'
                      AND (u.id IS NULL OR (u.status = 'active' AND u.allow_login)))
       AND NOT um_internal.has_usable_root(v_org) THEN
      SELECT slug INTO v_slug FROM um.organizations WHERE id = v_org;
      RAISE EXCEPTION 'organization "%" would be left without a Root who can log in', v_slug
        USING ERRCODE = 'UM044',
              DETAIL = 'Its other Roots are suspended or may not log in.',
              HINT = 'Make an active member who can log in Root first, or enable the login of another Root.';
    END IF;
  END LOOP;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION um_internal.memberships_keep_root() IS 'statement trigger on um.memberships: an organization with members keeps a Root, and a Root who can log in (UM044)';
CREATE TRIGGER memberships_keep_root_ins AFTER INSERT ON um.memberships
  REFERENCING NEW TABLE AS changed_rows
  FOR EACH STATEMENT EXECUTE FUNCTION um_internal.memberships_keep_root();
CREATE TRIGGER memberships_keep_root_upd AFTER UPDATE ON um.memberships
  REFERENCING OLD TABLE AS changed_rows
  FOR EACH STATEMENT EXECUTE FUNCTION um_internal.memberships_keep_root();
CREATE TRIGGER memberships_keep_root_del AFTER DELETE ON um.memberships
  REFERENCING OLD TABLE AS changed_rows
  FOR EACH STATEMENT EXECUTE FUNCTION um_internal.memberships_keep_root();


-- teams -----------------------------------------------------------------------
CREATE FUNCTION um_internal.teams_before_write()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.org_id <> OLD.org_id THEN
    RAISE EXCEPTION 'a team cannot move to another organization'
      USING ERRCODE = 'UM046',
            HINT = 'Create a team in the other organization instead.';
  END IF;
  IF NOT um_internal.display_name_is_valid(NEW.name, 100) THEN
    RAISE EXCEPTION 'invalid team name "%"', NEW.name
      USING ERRCODE = 'UM003',
            DETAIL = 'A name has 1 to 100 characters, no leading or trailing blanks and no control characters.',
            HINT = 'Trim the name.';
  END IF;
  IF TG_OP = 'INSERT' AND NEW.scope_id IS NULL THEN
    -- the team space: a top-level scope node of kind "team"
    INSERT INTO um.scopes (org_id, kind, name) VALUES (NEW.org_id, 'team', NEW.name)
      RETURNING id INTO NEW.scope_id;
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION um_internal.teams_before_write() IS 'trigger on um.teams: validates the name, keeps the team in its organization, and creates its team space (a scope node of kind "team") when none is given';
CREATE TRIGGER teams_before_write BEFORE INSERT OR UPDATE ON um.teams
  FOR EACH ROW EXECUTE FUNCTION um_internal.teams_before_write();

-- A deleted team takes its team space (and the grants on it) along, unless
-- another team still uses that node.
CREATE FUNCTION um_internal.teams_after_delete()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  DELETE FROM um.scopes s
   WHERE s.id = OLD.scope_id AND s.kind = 'team'
     AND NOT EXISTS (SELECT 1 FROM um.teams t WHERE t.scope_id = s.id);
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION um_internal.teams_after_delete() IS 'statement trigger on um.teams: a deleted team takes its team space (and the grants on it) along, unless another team uses that node';
CREATE TRIGGER teams_after_delete AFTER DELETE ON um.teams
  FOR EACH ROW EXECUTE FUNCTION um_internal.teams_after_delete();

CREATE FUNCTION um_internal.team_members_keep_owner()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_team record;
BEGIN
  FOR v_team IN
    SELECT t.id, t.name, c.user_id
      FROM changed_rows c
      JOIN um.teams t ON t.id = c.team_id
      JOIN um.organizations o ON o.id = t.org_id     -- not when the organization goes
     WHERE c.is_owner
       AND NOT EXISTS (SELECT 1 FROM um.team_members tm WHERE tm.team_id = t.id AND tm.is_owner)
  LOOP
    RAISE EXCEPTION 'the owner of team "%" cannot be removed', v_team.name
      USING ERRCODE = 'UM043',
            DETAIL = format('User %s owns the team.', v_team.user_id),
            HINT = 'Transfer ownership of the team to another member first, or delete the team.';
  END LOOP;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION um_internal.team_members_keep_owner() IS 'statement trigger on um.team_members: a team''s owner cannot be removed or lose ownership without a successor (UM043); not when the team or organization goes';
CREATE TRIGGER team_members_keep_owner_upd AFTER UPDATE ON um.team_members
  REFERENCING OLD TABLE AS changed_rows
  FOR EACH STATEMENT EXECUTE FUNCTION um_internal.team_members_keep_owner();
CREATE TRIGGER team_members_keep_owner_del AFTER DELETE ON um.team_members
  REFERENCING OLD TABLE AS changed_rows
  FOR EACH STATEMENT EXECUTE FUNCTION um_internal.team_members_keep_owner();

CREATE FUNCTION um_internal.team_members_before_update()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF NEW.org_id <> OLD.org_id OR NEW.team_id <> OLD.team_id OR NEW.user_id <> OLD.user_id THEN
    RAISE EXCEPTION 'a team membership cannot move to another team or user'
      USING ERRCODE = 'UM046',
            HINT = 'Remove the team member and add the new one.';
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION um_internal.team_members_before_update() IS 'trigger on um.team_members: a team membership never moves to another team or user (UM046)';
CREATE TRIGGER team_members_before_update BEFORE UPDATE ON um.team_members
  FOR EACH ROW EXECUTE FUNCTION um_internal.team_members_before_update();

-- invitations -----------------------------------------------------------------
CREATE FUNCTION um_internal.invitations_before_write()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM um_internal.assert_email(NEW.email);
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION um_internal.invitations_before_write() IS 'trigger on um.invitations: validates the address with an explanation (UM001)';
CREATE TRIGGER invitations_before_write BEFORE INSERT OR UPDATE ON um.invitations
  FOR EACH ROW EXECUTE FUNCTION um_internal.invitations_before_write();

-- audit -----------------------------------------------------------------------
CREATE FUNCTION um_internal.audit_events_append_only()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RAISE EXCEPTION 'the audit trail is append-only'
    USING ERRCODE = 'UM047',
          DETAIL = format('%s on um.audit_events is not allowed.', TG_OP),
          HINT = 'Audit events are never changed; to prune old events, a superuser disables trigger audit_events_append_only for that one transaction.';
END
$$;
COMMENT ON FUNCTION um_internal.audit_events_append_only() IS 'trigger on um.audit_events: refuses UPDATE, DELETE and TRUNCATE (UM047); a superuser disables it for one transaction to prune old events';
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON um.audit_events
  FOR EACH ROW EXECUTE FUNCTION um_internal.audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON um.audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION um_internal.audit_events_append_only();
