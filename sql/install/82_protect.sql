-- Row-level security for application tables: um_protect_table() and
-- um_unprotect_table().
--
-- One call enables and forces RLS on a table and gives it four policies,
-- one per command (see um_internal.policy_check for their expressions):
--   um_read    FOR SELECT  USING      <resource>:read
--   um_create  FOR INSERT  WITH CHECK <resource>:create
--   um_update  FOR UPDATE  USING and WITH CHECK <resource>:update
--   um_delete  FOR DELETE  USING      <resource>:delete
-- WITH CHECK on UPDATE means a row can neither be changed where the user may
-- not update nor be moved into such an organization.  A partitioned table's
-- partitions get the same policies (queries that name a partition directly
-- would otherwise skip the parent's).  The policies themselves are the
-- record of what is protected (pg_dump keeps them with the table).

-- um_internal.protection_note (src/protect.c): the privileged part, done as the
-- owner of um's tables once the current role is found to own the table:
-- the audit event (details of its own making) and, for a um administrator
-- only, the resource's permissions when the catalog lacks them.
CREATE FUNCTION um_internal.protection_note(p_table regclass, p_action text, p_resource text)
RETURNS void
AS 'MODULE_PATHNAME', 'um_protection_note'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION um_internal.protection_note(regclass, text, text) IS
  'part of um_protect_table and um_unprotect_table (src/protect.c): once the caller is found to own the table, audits the change and, for a um administrator, registers the resource''s permissions';

-- um_internal.protection_tree: the table and every table that inherits from it
-- (partitions, sub-partitions and INHERITS children alike).
CREATE FUNCTION um_internal.protection_tree(p_table regclass)
RETURNS SETOF regclass
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  WITH RECURSIVE t(relid, depth) AS (
    SELECT p_table::oid, 0
    UNION ALL
    SELECT i.inhrelid, t.depth + 1 FROM pg_catalog.pg_inherits i JOIN t ON i.inhparent = t.relid WHERE t.depth < 100)
  SELECT t.relid::pg_catalog.regclass FROM t JOIN pg_catalog.pg_class c ON c.oid = t.relid
   WHERE c.relkind IN ('r', 'p') ORDER BY t.depth, t.relid;
$$;
COMMENT ON FUNCTION um_internal.protection_tree(regclass) IS
  'part of um_protect_table: the table and every table that inherits from it (partitions, sub-partitions, INHERITS children)';

-- um_internal.protection_state: um's policies and the RLS switches of these
-- relations, as text (um_protect_table audits only what it changed).
CREATE FUNCTION um_internal.protection_state(p_rels regclass[])
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT string_agg(format('%s %s%s %s %s %s', c.oid, c.relrowsecurity, c.relforcerowsecurity, p.polname,
                           pg_catalog.pg_get_expr(p.polqual, p.polrelid), pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid)),
                    '; ' ORDER BY c.oid, p.polname)
    FROM pg_catalog.pg_class c
    LEFT JOIN pg_catalog.pg_policy p ON p.polrelid = c.oid AND p.polname IN ('um_read', 'um_create', 'um_update', 'um_delete')
   WHERE c.oid = ANY (p_rels::oid[]);
$$;
COMMENT ON FUNCTION um_internal.protection_state(regclass[]) IS
  'part of um_protect_table: um''s policies and the RLS switches of these relations as text, to audit only what changed';

-- um_internal.check_column: the column exists and is a bigint, or raise UM080.
CREATE FUNCTION um_internal.check_column(p_rel regclass, p_column name, p_role text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_type regtype;
BEGIN
  SELECT a.atttypid::regtype INTO v_type
    FROM pg_catalog.pg_attribute a
   WHERE a.attrelid = p_rel AND a.attname = p_column AND a.attnum > 0 AND NOT a.attisdropped;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'table % has no column "%"', p_rel, p_column
      USING ERRCODE = 'UM080',
            HINT = format('Pass the name of the column that holds the %s id (names are case-sensitive, as in the catalog).', p_role);
  END IF;
  IF v_type <> 'bigint'::regtype THEN
    RAISE EXCEPTION 'column "%" of table % is of type %, not bigint', p_column, p_rel, v_type
      USING ERRCODE = 'UM080',
            DETAIL = format('um''s %s ids are bigint; a cast in the policy would keep the planner from using an index on the column.', p_role),
            HINT = format('ALTER TABLE %s ALTER COLUMN %I TYPE bigint;', p_rel, p_column);
  END IF;
END
$$;
COMMENT ON FUNCTION um_internal.check_column(regclass, name, text) IS 'part of um_protect_table: raises UM080 unless the column exists and is a bigint';

-- um_internal.policy_check: the expression of one um policy.  Organization-level:
--   org_id = ANY (um_permitted_orgs('invoice:read'))
-- the organizations where the acting user holds the permission: exactly
-- what um_has_permission('invoice:read', org_id) says for each row.  As an
-- index condition it is computed once per scan and leaves nothing to run
-- per row (the per-row form keeps a recheck in bitmap scans); in a filter
-- each call site remembers its last answer.  With a scope column, the
-- per-row um_has_permission(permission, org, scope).
CREATE FUNCTION um_internal.policy_check(p_permission text, p_org_column name, p_scope_column name)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE WHEN p_scope_column IS NULL
              THEN format('%I = ANY (%I.um_permitted_orgs(%L))', p_org_column, '@extschema@', p_permission)
              ELSE format('%I.um_has_permission(%L, %I, %I)', '@extschema@', p_permission, p_org_column, p_scope_column) END;
$$;
COMMENT ON FUNCTION um_internal.policy_check(text, name, name) IS
  'part of um_protect_table: the expression of one um policy (org_id = ANY (um_permitted_orgs(...)), or per row with a scope column)';

-- um_internal.drop_um_policies: drop the um_* policies a relation has.
CREATE FUNCTION um_internal.drop_um_policies(p_rel regclass)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v name;
BEGIN
  FOR v IN SELECT p.polname FROM pg_catalog.pg_policy p
            WHERE p.polrelid = p_rel AND p.polname IN ('um_read', 'um_create', 'um_update', 'um_delete') LOOP
    EXECUTE format('DROP POLICY %I ON %s', v, p_rel);
  END LOOP;
END
$$;
COMMENT ON FUNCTION um_internal.drop_um_policies(regclass) IS 'part of um_protect_table and um_unprotect_table: drops the um_* policies of a relation';

CREATE FUNCTION @extschema@.um_protect_table(tbl regclass, org_column name, resource text,
                                             scope_column name DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_kind "char";
  v_rel regclass;
  v_action text;
  v_parts regclass[];
  v_before text;
BEGIN
  IF tbl IS NULL OR org_column IS NULL OR resource IS NULL THEN
    RAISE EXCEPTION 'um_protect_table needs a table, its organization column and a resource'
      USING ERRCODE = 'UM080', HINT = 'For example: SELECT um_protect_table(''invoices'', ''org_id'', ''invoice'');';
  END IF;
  SELECT c.relkind INTO v_kind FROM pg_catalog.pg_class c WHERE c.oid = tbl;
  IF v_kind NOT IN ('r', 'p') THEN
    RAISE EXCEPTION '% is not a table', tbl
      USING ERRCODE = 'UM080', HINT = 'Protect the tables a view reads; make the view security_invoker.';
  END IF;
  IF (SELECT c.relpersistence FROM pg_catalog.pg_class c WHERE c.oid = tbl) = 't' THEN
    RAISE EXCEPTION 'cannot protect temporary table %', tbl
      USING ERRCODE = 'UM080', HINT = 'Protect permanent tables: a temporary one is its session''s alone.';
  END IF;
  IF NOT pg_has_role(current_user, (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = tbl), 'USAGE') THEN
    RAISE EXCEPTION 'must be the owner of table % to protect it', tbl
      USING ERRCODE = 'insufficient_privilege', HINT = 'Run it as the table''s owner (or a member of the owning role).';
  END IF;
  PERFORM um_internal.check_column(tbl, org_column, 'organization');
  IF scope_column IS NOT NULL THEN
    PERFORM um_internal.check_column(tbl, scope_column, 'scope node');
  END IF;
  -- the four permissions must be valid names (unknown ones are registered below)
  FOREACH v_action IN ARRAY ARRAY['read', 'create', 'update', 'delete'] LOOP
    PERFORM um_internal.assert_permission_name(resource || ':' || v_action, false);
  END LOOP;

  -- PostgreSQL checks that the caller owns each relation (this function
  -- runs with the caller's rights)
  SELECT array_agg(t) INTO v_parts FROM um_internal.protection_tree(tbl) t;
  v_before := um_internal.protection_state(v_parts);
  FOREACH v_rel IN ARRAY v_parts LOOP
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY', v_rel);
    PERFORM um_internal.drop_um_policies(v_rel);
    EXECUTE format('CREATE POLICY um_read ON %s FOR SELECT USING (%s)', v_rel, um_internal.policy_check(resource || ':read', org_column, scope_column));
    EXECUTE format('CREATE POLICY um_create ON %s FOR INSERT WITH CHECK (%s)', v_rel, um_internal.policy_check(resource || ':create', org_column, scope_column));
    EXECUTE format('CREATE POLICY um_update ON %1$s FOR UPDATE USING (%2$s) WITH CHECK (%2$s)', v_rel, um_internal.policy_check(resource || ':update', org_column, scope_column));
    EXECUTE format('CREATE POLICY um_delete ON %s FOR DELETE USING (%s)', v_rel, um_internal.policy_check(resource || ':delete', org_column, scope_column));
  END LOOP;
  -- the catalog check (and registration) always; the audit event only for a change
  IF um_internal.protection_state(v_parts) IS DISTINCT FROM v_before
     OR EXISTS (SELECT 1 FROM unnest(ARRAY['read', 'create', 'update', 'delete']) a
                 WHERE NOT EXISTS (SELECT 1 FROM um.permissions p WHERE p.name = um_protect_table.resource || ':' || a)) THEN
    PERFORM um_internal.protection_note(tbl, 'table.protect', resource);
  END IF;
END
$$;
COMMENT ON FUNCTION @extschema@.um_protect_table(regclass, name, text, name) IS
  'enable and force RLS on a table (and the tables inheriting from it) with um policies mapping SELECT/INSERT/UPDATE/DELETE to <resource>:read/create/update/delete; idempotent';

CREATE FUNCTION @extschema@.um_unprotect_table(tbl regclass, disable_rls boolean DEFAULT false)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_rel regclass;
  v_found boolean := false;
BEGIN
  IF tbl IS NULL THEN
    RETURN false;
  END IF;
  IF NOT pg_has_role(current_user, (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = tbl), 'USAGE') THEN
    RAISE EXCEPTION 'must be the owner of table % to unprotect it', tbl
      USING ERRCODE = 'insufficient_privilege', HINT = 'Run it as the table''s owner (or a member of the owning role).';
  END IF;
  FOR v_rel IN SELECT t FROM um_internal.protection_tree(tbl) t
                WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_policy p
                               WHERE p.polrelid = t AND p.polname IN ('um_read', 'um_create', 'um_update', 'um_delete')) LOOP
    v_found := true;
    PERFORM um_internal.drop_um_policies(v_rel);
    -- Row-level security stays on (with no policy it denies everything)
    -- unless asked otherwise, and then only where no other policy remains.
    IF disable_rls AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_policy p WHERE p.polrelid = v_rel) THEN
      EXECUTE format('ALTER TABLE %s DISABLE ROW LEVEL SECURITY, NO FORCE ROW LEVEL SECURITY', v_rel);
    END IF;
  END LOOP;
  IF v_found THEN
    PERFORM um_internal.protection_note(tbl, 'table.unprotect', NULL);
  END IF;
  RETURN v_found;
END
$$;
COMMENT ON FUNCTION @extschema@.um_unprotect_table(regclass, boolean) IS
  'drop um''s policies from a table and the tables inheriting from it; row-level security stays on (denying all) unless disable_rls, where no other policy remains; returns whether it was protected';

-- um_protect_table and um_unprotect_table run with their caller's rights and
-- call these; each is harmless alone (um_internal.protection_note checks ownership).
-- (94_own_rls.sql revokes EXECUTE on every function in um; these get it back
-- there.)
