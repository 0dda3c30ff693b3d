-- The rules of the evaluator in plain SQL: the oracle the tests compare the
-- C evaluator with, and the basis of um_explain_permission().  Keep the two
-- in step: a change of rules changes both, and the randomized differential
-- tests (test/pgtap/80_differential_seed_a.sql, 81_..._seed_b.sql, 82_..._random.sql) catch any disagreement.
--
-- Rules:
--  1. The permission name must be valid (UM010) and in the catalog (UM011).
--  2. Denied: no user or organization; an unknown user; a user who is not
--     active or not allowed to log in; a user who is not an active member of
--     the organization; a scope node that is not in the organization.
--  3. Otherwise granted when a role that applies, or a role it includes
--     (transitively), grants a pattern covering the permission ("*" stands
--     for a whole part).  Roles that apply:
--       - the membership's organization role;
--       - organization-wide grants (no node, no kind) to the user or to a
--         team the user is in;
--     and, when a scope node is given, for each node of its chain (the node,
--     then its ancestors, stopping after the first node that breaks
--     inheritance):
--       - grants on that node to the user or to a team the user is in;
--       - grants on that node's kind to the user or to a team the user is in;
--       - the user's team roles in a team whose space is that node.

-- um_internal.ref_pattern_covers: wildcard matching, written independently of the C.
CREATE FUNCTION um_internal.ref_pattern_covers(pattern text, permission text)
RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN pattern = '*'
    OR (split_part(pattern, ':', 1) IN ('*', split_part(permission, ':', 1))
        AND split_part(pattern, ':', 2) IN ('*', split_part(permission, ':', 2)));
COMMENT ON FUNCTION um_internal.ref_pattern_covers(text, text) IS
  'reference evaluator: does a permission pattern ("*" for a whole part) cover the permission? Written independently of the C, for the differential tests';

-- um_internal.ref_applicable_roles: the roles that apply directly (before inclusions), with where they come from.
CREATE FUNCTION um_internal.ref_applicable_roles(p_user_id bigint, p_org_id bigint, p_scope_id bigint)
RETURNS TABLE (role_id bigint, source text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  WITH RECURSIVE chain(id, parent_id, kind, name, inherit, depth) AS (
      SELECT s.id, s.parent_id, s.kind, s.name, s.inherit, 0
        FROM um.scopes s WHERE s.id = p_scope_id AND s.org_id = p_org_id
    UNION ALL
      SELECT p.id, p.parent_id, p.kind, p.name, p.inherit, c.depth + 1
        FROM um.scopes p JOIN chain c ON p.id = c.parent_id
       WHERE c.inherit),
  my_teams AS (
      SELECT t.id, t.name, t.scope_id FROM um.team_members tm JOIN um.teams t ON t.id = tm.team_id
       WHERE tm.org_id = p_org_id AND tm.user_id = p_user_id),
  my_grants AS (
      SELECT g.id, g.role_id, g.scope_id, g.scope_kind, 'the user'::text AS grantee
        FROM um.grants g WHERE g.org_id = p_org_id AND g.user_id = p_user_id
    UNION ALL
      SELECT g.id, g.role_id, g.scope_id, g.scope_kind, format('team "%s"', t.name)
        FROM um.grants g JOIN my_teams t ON t.id = g.team_id)
  SELECT m.role_id, 'the organization role' FROM um.memberships m
   WHERE m.org_id = p_org_id AND m.user_id = p_user_id
  UNION ALL
  SELECT g.role_id, format('organization-wide grant %s to %s', g.id, g.grantee)
    FROM my_grants g WHERE g.scope_id IS NULL AND g.scope_kind IS NULL
  UNION ALL
  SELECT g.role_id, format('grant %s on %s "%s" to %s', g.id, c.kind, c.name, g.grantee)
    FROM my_grants g JOIN chain c ON c.id = g.scope_id
  UNION ALL
  SELECT g.role_id, format('grant %s on every %s (here %s "%s") to %s', g.id, g.scope_kind, c.kind, c.name, g.grantee)
    FROM my_grants g JOIN chain c ON c.kind = g.scope_kind
  UNION ALL
  SELECT r.role_id, format('team role in team "%s", whose space is %s "%s"', t.name, c.kind, c.name)
    FROM um.team_member_roles r JOIN my_teams t ON t.id = r.team_id JOIN chain c ON c.id = t.scope_id
   WHERE r.user_id = p_user_id
$$;
COMMENT ON FUNCTION um_internal.ref_applicable_roles(bigint, bigint, bigint) IS
  'reference evaluator: the roles that apply directly to the user in the organization (and scope node), before inclusions, with where each comes from';

-- um_internal.ref_denial: why the user cannot act here at all, or NULL when they can.
CREATE FUNCTION um_internal.ref_denial(p_user_id bigint, p_org_id bigint, p_scope_id bigint, p_has_scope boolean)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE
    WHEN p_user_id IS NULL THEN 'nobody is acting'
    WHEN p_org_id IS NULL THEN 'no organization was given'
    WHEN p_has_scope AND p_scope_id IS NULL THEN 'no scope node was given'
    WHEN u.id IS NULL THEN format('user %s does not exist', p_user_id)
    WHEN um_internal.suspended(u.status, u.suspended_until) THEN format('user %s is %s', p_user_id, u.status)
    WHEN NOT u.allow_login THEN format('user %s is notification-only (allow_login is false)', p_user_id)
    WHEN m.id IS NULL THEN format('user %s is not a member of organization %s', p_user_id, p_org_id)
    WHEN um_internal.suspended(m.status, m.suspended_until) THEN format('the membership of user %s in organization %s is %s', p_user_id, p_org_id, m.status)
    WHEN p_scope_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM um.scopes s WHERE s.id = p_scope_id AND s.org_id = p_org_id)
      THEN format('scope node %s is not in organization %s', p_scope_id, p_org_id)
  END
    FROM (SELECT 1) one
    LEFT JOIN um.users u ON u.id = p_user_id
    LEFT JOIN um.memberships m ON m.org_id = p_org_id AND m.user_id = p_user_id
$$;
COMMENT ON FUNCTION um_internal.ref_denial(bigint, bigint, bigint, boolean) IS
  'reference evaluator: why the user cannot act in the organization (or on the node) at all, or NULL when they can';

CREATE FUNCTION um_internal.ref_check_permission_name(p_permission text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM um_internal.assert_permission_name(p_permission, false);
  IF NOT EXISTS (SELECT 1 FROM um.permissions p WHERE p.name = p_permission) THEN
    RAISE EXCEPTION 'unknown permission "%"', p_permission
      USING ERRCODE = 'UM011',
            DETAIL = 'It is not in the permission catalog um.permissions.',
            HINT = 'Check the spelling, or register it first with um_register_permission().';
  END IF;
END
$$;
COMMENT ON FUNCTION um_internal.ref_check_permission_name(text) IS 'reference evaluator: raises unless the name is a valid catalog permission (UM010, UM011)';

-- um_internal.ref_has_permission: the plain-SQL reference for um_has_permission(user_id, ...).
CREATE FUNCTION um_internal.ref_has_permission(p_user_id bigint, p_permission text, p_org_id bigint,
                                      p_scope_id bigint DEFAULT NULL, p_has_scope boolean DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF p_permission IS NULL THEN
    RETURN false;
  END IF;
  PERFORM um_internal.ref_check_permission_name(p_permission);
  IF um_internal.ref_denial(p_user_id, p_org_id, p_scope_id, coalesce(p_has_scope, p_scope_id IS NOT NULL)) IS NOT NULL THEN
    RETURN false;
  END IF;
  RETURN EXISTS (
    WITH RECURSIVE closure(role_id) AS (
        SELECT a.role_id FROM um_internal.ref_applicable_roles(p_user_id, p_org_id, p_scope_id) a
      UNION
        SELECT ri.included_role_id FROM um.role_inclusions ri JOIN closure c ON ri.role_id = c.role_id)
    SELECT 1 FROM closure c JOIN um.role_permissions rp ON rp.role_id = c.role_id
     WHERE um_internal.ref_pattern_covers(rp.permission, p_permission));
END
$$;
COMMENT ON FUNCTION um_internal.ref_has_permission(bigint, text, bigint, bigint, boolean) IS
  'the evaluator''s rules in plain SQL: the oracle the C um_has_permission() is tested against';

-- um_explain_permission: why access is granted or denied, readable in psql.
CREATE FUNCTION @extschema@.um_explain_permission(user_id bigint, permission text, org_id bigint,
                                                  scope_id bigint DEFAULT NULL)
RETURNS TABLE (step text, outcome text, detail text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_denial text;
  v_granted boolean := false;
  r record;
BEGIN
  PERFORM um_internal.ref_check_permission_name(permission);
  step := 'permission'; outcome := 'known'; detail := format('"%s" is in the catalog', permission);
  RETURN NEXT;

  v_denial := um_internal.ref_denial(user_id, org_id, scope_id, scope_id IS NOT NULL);
  IF v_denial IS NOT NULL THEN
    step := 'verdict'; outcome := 'denied'; detail := v_denial;
    RETURN NEXT;
    RETURN;
  END IF;
  SELECT format('%s (user %s): active, may log in', u.email, u.id) INTO detail FROM um.users u WHERE u.id = um_explain_permission.user_id;
  step := 'user'; outcome := 'ok'; RETURN NEXT;
  SELECT format('member of "%s" as "%s" (membership %s, since %s)', o.slug, r2.name, m.id, m.created_at::date)
    INTO detail
    FROM um.memberships m JOIN um.organizations o ON o.id = m.org_id JOIN um.roles r2 ON r2.id = m.role_id
   WHERE m.org_id = um_explain_permission.org_id AND m.user_id = um_explain_permission.user_id;
  step := 'membership'; outcome := 'ok'; RETURN NEXT;

  IF scope_id IS NOT NULL THEN
    WITH RECURSIVE chain(id, parent_id, kind, name, inherit, depth) AS (
        SELECT s.id, s.parent_id, s.kind, s.name, s.inherit, 0 FROM um.scopes s WHERE s.id = um_explain_permission.scope_id
      UNION ALL
        SELECT p.id, p.parent_id, p.kind, p.name, p.inherit, c.depth + 1
          FROM um.scopes p JOIN chain c ON p.id = c.parent_id WHERE c.inherit)
    SELECT string_agg(format('%s "%s"%s', c.kind, c.name,
                             CASE WHEN NOT c.inherit THEN ' (breaks inheritance: nothing above applies)' ELSE '' END),
                      ' <- ' ORDER BY c.depth)
      INTO detail FROM chain c;
    step := 'scope path'; outcome := 'ok'; RETURN NEXT;
  END IF;

  FOR r IN
    WITH RECURSIVE paths(source, role_id, path) AS (
        SELECT a.source, a.role_id, ARRAY[a.role_id]
          FROM um_internal.ref_applicable_roles(um_explain_permission.user_id, um_explain_permission.org_id,
                                       um_explain_permission.scope_id) a
      UNION ALL
        SELECT p.source, ri.included_role_id, p.path || ri.included_role_id
          FROM paths p JOIN um.role_inclusions ri ON ri.role_id = p.role_id
         WHERE NOT ri.included_role_id = ANY (p.path))
    SELECT p.source,
           (SELECT string_agg(format('"%s"', ro.name), ' includes ' ORDER BY x.n)
              FROM unnest(p.path) WITH ORDINALITY AS x(id, n) JOIN um.roles ro ON ro.id = x.id) AS roles,
           rp.permission AS pattern
      FROM paths p JOIN um.role_permissions rp ON rp.role_id = p.role_id
     WHERE um_internal.ref_pattern_covers(rp.permission, um_explain_permission.permission)
     ORDER BY 1, 2, 3
  LOOP
    v_granted := true;
    step := 'grant'; outcome := 'grants';
    detail := format('%s: role %s grants "%s"', r.source, r.roles, r.pattern);
    RETURN NEXT;
  END LOOP;

  step := 'verdict';
  IF v_granted THEN
    outcome := 'granted'; detail := 'at least one grant above covers the permission';
  ELSE
    outcome := 'denied';
    detail := 'no role that applies here grants it'
              || CASE WHEN scope_id IS NULL THEN ' organization-wide (roles given on scope nodes count only in a check on a node)' ELSE '' END;
  END IF;
  RETURN NEXT;
END
$$;
COMMENT ON FUNCTION @extschema@.um_explain_permission(bigint, text, bigint, bigint) IS
  'why user_id may or may not do permission in the organization (or on a scope node): membership, roles, teams, grants and scope path';
REVOKE EXECUTE ON FUNCTION @extschema@.um_explain_permission(bigint, text, bigint, bigint) FROM PUBLIC;
