-- um's own tables under row-level security.
--
-- Application roles may read um's tables, but only the rows of the
-- organizations where the acting user holds the matching permission (and
-- their own user row and memberships); with nobody acting they read nothing.
-- They cannot write any of them: changes go through the um_* functions.
-- Secrets are not readable at all: password hashes and login counters
-- (column privileges), sessions, identity-provider links.
--
-- Who bypasses: superusers (and so um's SECURITY DEFINER functions, owned by
-- the superuser who created the extension, and the permission cache's
-- loader); um administrators, the roles with the privileges of the
-- extension's owner, through the um_administrators policy.

-- um_internal.administers_um: does the current role administer um?  (EXECUTE stays
-- granted to PUBLIC: every policy below calls it for whoever reads.)
CREATE FUNCTION um_internal.administers_um()
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce((SELECT pg_catalog.pg_has_role(current_user, e.extowner, 'USAGE')
                     FROM pg_catalog.pg_extension e WHERE e.extname = 'um'), false);
$$;
COMMENT ON FUNCTION um_internal.administers_um() IS
  'does the current role administer um (with the privileges of the extension''s owner)? Called by the um_administrators policies; EXECUTE granted to PUBLIC';

-- Each table as um.state_tables says: tenant tables show application roles
-- the rows of read_rule (and only readable_columns, when given); secret ones
-- only um administrators; catalogs hold no tenant data and everybody reads them.
DO $$
DECLARE
  t record;
BEGIN
  FOR t IN SELECT * FROM um.state_tables s ORDER BY s.relname LOOP
    IF t.access IN ('tenant', 'secret') THEN
      EXECUTE format('ALTER TABLE um.%I ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY', t.relname);
      EXECUTE format('CREATE POLICY um_administrators ON um.%I USING (um_internal.administers_um()) WITH CHECK (um_internal.administers_um())', t.relname);
    END IF;
    IF t.access = 'tenant' THEN
      EXECUTE format('CREATE POLICY um_read ON um.%I FOR SELECT USING (%s)', t.relname, format(t.read_rule, '@extschema@'));
    END IF;
    IF t.access IN ('tenant', 'catalog') THEN
      EXECUTE format('GRANT SELECT %s ON um.%I TO PUBLIC',
                     (SELECT '(' || string_agg(quote_ident(c), ', ') || ')' FROM unnest(t.readable_columns) c), t.relname);
    END IF;
  END LOOP;
END
$$;
COMMENT ON POLICY um_read ON um.organizations IS 'application roles read the organizations where the acting user holds org:read';
COMMENT ON POLICY um_read ON um.users IS
  'application roles read the acting user''s own row and the members of organizations where the acting user holds member:read (never the password hash or login counters)';
COMMENT ON POLICY um_read ON um.memberships IS
  'application roles read the memberships of organizations where the acting user holds member:read, and the acting user''s own';
COMMENT ON POLICY um_read ON um.roles IS 'application roles read the roles of organizations where the acting user holds role:read, or member:read (a member list names each member''s role)';
COMMENT ON POLICY um_read ON um.role_inclusions IS 'application roles read the role inclusions of organizations where the acting user holds role:read';
COMMENT ON POLICY um_read ON um.role_permissions IS 'application roles read the role permissions of organizations where the acting user holds role:read';
COMMENT ON POLICY um_read ON um.grants IS 'application roles read the grants of organizations where the acting user holds role:read';
COMMENT ON POLICY um_read ON um.scopes IS 'application roles read the scope nodes of organizations where the acting user holds scope:read';
COMMENT ON POLICY um_read ON um.teams IS 'application roles read the teams of organizations where the acting user holds team:read';
COMMENT ON POLICY um_read ON um.team_members IS 'application roles read the team members of organizations where the acting user holds team:read';
COMMENT ON POLICY um_read ON um.team_member_roles IS 'application roles read the team roles of organizations where the acting user holds team:read';
COMMENT ON POLICY um_read ON um.invitations IS 'application roles read the invitations of organizations where the acting user holds member:invite';
COMMENT ON POLICY um_read ON um.organization_domains IS 'application roles read the domains of organizations where the acting user holds org:read';
COMMENT ON POLICY um_read ON um.audit_events IS
  'application roles read the events of organizations where the acting user holds audit:read, and the events about the acting user (in an organization only where their identity reaches it)';
COMMENT ON POLICY um_administrators ON um.organizations IS 'um administrators (roles with the privileges of the extension''s owner) read and write every row';
COMMENT ON POLICY um_administrators ON um.users IS 'um administrators (roles with the privileges of the extension''s owner) read and write every row';
COMMENT ON POLICY um_administrators ON um.memberships IS 'um administrators (roles with the privileges of the extension''s owner) read and write every row';
COMMENT ON POLICY um_administrators ON um.roles IS 'um administrators (roles with the privileges of the extension''s owner) read and write every row';
COMMENT ON POLICY um_administrators ON um.role_inclusions IS 'um administrators (roles with the privileges of the extension''s owner) read and write every row';
COMMENT ON POLICY um_administrators ON um.role_permissions IS
  'um administrators (roles with the privileges of the extension''s owner) read and write every row';
COMMENT ON POLICY um_administrators ON um.grants IS 'um administrators (roles with the privileges of the extension''s owner) read and write every row';
COMMENT ON POLICY um_administrators ON um.scopes IS 'um administrators (roles with the privileges of the extension''s owner) read and write every row';
COMMENT ON POLICY um_administrators ON um.teams IS 'um administrators (roles with the privileges of the extension''s owner) read and write every row';
COMMENT ON POLICY um_administrators ON um.team_members IS 'um administrators (roles with the privileges of the extension''s owner) read and write every row';
COMMENT ON POLICY um_administrators ON um.team_member_roles IS
  'um administrators (roles with the privileges of the extension''s owner) read and write every row';
COMMENT ON POLICY um_administrators ON um.invitations IS 'um administrators (roles with the privileges of the extension''s owner) read and write every row';
COMMENT ON POLICY um_administrators ON um.audit_events IS 'um administrators (roles with the privileges of the extension''s owner) read and write every row';
COMMENT ON POLICY um_administrators ON um.sessions IS 'um administrators (roles with the privileges of the extension''s owner) read and write every row';
COMMENT ON POLICY um_administrators ON um.identity_providers IS
  'um administrators (roles with the privileges of the extension''s owner) read and write every row';
COMMENT ON POLICY um_administrators ON um.user_identities IS 'um administrators (roles with the privileges of the extension''s owner) read and write every row';
COMMENT ON POLICY um_administrators ON um.cache_sentinel IS 'um administrators (roles with the privileges of the extension''s owner) read and write every row';
COMMENT ON POLICY um_administrators ON um.verification_tokens IS
  'um administrators (roles with the privileges of the extension''s owner) read and write every row';
COMMENT ON POLICY um_administrators ON um.password_resets IS
  'um administrators (roles with the privileges of the extension''s owner) read and write every row';
COMMENT ON POLICY um_administrators ON um.email_changes IS
  'um administrators (roles with the privileges of the extension''s owner) read and write every row';
COMMENT ON POLICY um_administrators ON um.mfa_factors IS
  'um administrators (roles with the privileges of the extension''s owner) read and write every row';
COMMENT ON POLICY um_administrators ON um.mfa_recovery_codes IS
  'um administrators (roles with the privileges of the extension''s owner) read and write every row';
COMMENT ON POLICY um_administrators ON um.login_challenges IS
  'um administrators (roles with the privileges of the extension''s owner) read and write every row';
COMMENT ON POLICY um_administrators ON um.session_activity IS
  'um administrators (roles with the privileges of the extension''s owner) read and write every row';
COMMENT ON POLICY um_administrators ON um.organization_domains IS
  'um administrators (roles with the privileges of the extension''s owner) read and write every row';

-- the views read as their caller, so they show what the caller may see
ALTER VIEW um.member_list SET (security_invoker = true);
ALTER VIEW um.role_permission_list SET (security_invoker = true);
ALTER VIEW um.organization_list SET (security_invoker = true);
ALTER VIEW um.error_codes SET (security_invoker = true);
ALTER VIEW um.role_template_list SET (security_invoker = true);
GRANT SELECT ON um.member_list, um.role_permission_list, um.organization_list, um.error_codes, um.role_template_list TO PUBLIC;
GRANT USAGE ON SCHEMA um TO PUBLIC;
-- um_protect_table and the other invoker-rights functions name internals
-- with their caller's rights, so the schema is usable ...
GRANT USAGE ON SCHEMA um_internal TO PUBLIC;

-- ... but no internal function is: EXECUTE on every function in
-- um_internal is revoked from PUBLIC, except the one the policies call.
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA um_internal FROM PUBLIC;
GRANT EXECUTE ON FUNCTION um_internal.administers_um() TO PUBLIC;
-- and um_lint's look at second factors (nothing for anybody but um administrators)
GRANT EXECUTE ON FUNCTION um_internal.mfa_gaps() TO PUBLIC;
-- and the ones um_protect_table / um_unprotect_table call with their caller's rights
GRANT EXECUTE ON FUNCTION um_internal.protection_note(regclass, text, text), um_internal.protection_tree(regclass), um_internal.protection_state(regclass[]),
  um_internal.policy_check(text, name, name),
  um_internal.drop_um_policies(regclass), um_internal.check_column(regclass, name, text), um_internal.assert_permission_name(text, boolean)
  TO PUBLIC;
-- No foreign keys into um's tables: PostgreSQL would check them as um's
-- owner, running the referencing column's casts (um_add_user_reference).
REVOKE REFERENCES ON ALL TABLES IN SCHEMA um FROM PUBLIC;
