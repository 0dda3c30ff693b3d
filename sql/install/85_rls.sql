-- Row-level security for application tables: um_protect_table() and
-- um_unprotect_table().
--
-- One call enables and forces RLS on a table and gives it four policies,
-- one per command (see um.policy_check for their expressions):
--   um_read    FOR SELECT  USING      <resource>:read
--   um_create  FOR INSERT  WITH CHECK <resource>:create
--   um_update  FOR UPDATE  USING and WITH CHECK <resource>:update
--   um_delete  FOR DELETE  USING      <resource>:delete
-- WITH CHECK on UPDATE means a row can neither be changed where the user may
-- not update nor be moved into such an organization.  A partitioned table's
-- partitions get the same policies (queries that name a partition directly
-- would otherwise skip the parent's).  The policies themselves are the
-- record of what is protected (pg_dump keeps them with the table).

-- um.protection_note (src/protect.c): the privileged part, done as the
-- owner of um's tables once the current role is found to own the table.
CREATE FUNCTION um.protection_note(p_table regclass, p_action text, p_resource text, p_details jsonb)
RETURNS void
AS 'MODULE_PATHNAME', 'um_protection_note'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- um.protection_tree: the table and every table that inherits from it
-- (partitions, sub-partitions and INHERITS children alike).
CREATE FUNCTION um.protection_tree(p_table regclass)
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

-- um.check_column: the column exists and is a bigint, or raise UM080.
CREATE FUNCTION um.check_column(p_rel regclass, p_column name, p_role text)
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

-- um.policy_check: the expression of one um policy.  Organization-level:
--   org_id = ANY (um_permitted_orgs('invoice:read'))
-- the organizations where the acting user holds the permission: exactly
-- what um_has_permission('invoice:read', org_id) says for each row.  As an
-- index condition it is computed once per scan and leaves nothing to run
-- per row (the per-row form keeps a recheck in bitmap scans); in a filter
-- each call site remembers its last answer.  With a scope column, the
-- per-row um_has_permission(permission, org, scope).
CREATE FUNCTION um.policy_check(p_permission text, p_org_column name, p_scope_column name)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE WHEN p_scope_column IS NULL
              THEN format('%I = ANY (%I.um_permitted_orgs(%L))', p_org_column, '@extschema@', p_permission)
              ELSE format('%I.um_has_permission(%L, %I, %I)', '@extschema@', p_permission, p_org_column, p_scope_column) END;
$$;

-- um.drop_um_policies: drop the um_* policies a relation has.
CREATE FUNCTION um.drop_um_policies(p_rel regclass)
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
  IF NOT pg_has_role(current_user, (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = tbl), 'USAGE') THEN
    RAISE EXCEPTION 'must be the owner of table % to protect it', tbl
      USING ERRCODE = 'insufficient_privilege', HINT = 'Run it as the table''s owner (or a member of the owning role).';
  END IF;
  PERFORM um.check_column(tbl, org_column, 'organization');
  IF scope_column IS NOT NULL THEN
    PERFORM um.check_column(tbl, scope_column, 'scope node');
  END IF;
  -- the four permissions must be valid names (unknown ones are registered below)
  FOREACH v_action IN ARRAY ARRAY['read', 'create', 'update', 'delete'] LOOP
    PERFORM um.assert_permission_name(resource || ':' || v_action, false);
  END LOOP;

  -- PostgreSQL checks that the caller owns each relation (this function
  -- runs with the caller's rights)
  SELECT array_agg(t) INTO v_parts FROM um.protection_tree(tbl) t;
  FOREACH v_rel IN ARRAY v_parts LOOP
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY', v_rel);
    PERFORM um.drop_um_policies(v_rel);
    EXECUTE format('CREATE POLICY um_read ON %s FOR SELECT USING (%s)', v_rel, um.policy_check(resource || ':read', org_column, scope_column));
    EXECUTE format('CREATE POLICY um_create ON %s FOR INSERT WITH CHECK (%s)', v_rel, um.policy_check(resource || ':create', org_column, scope_column));
    EXECUTE format('CREATE POLICY um_update ON %1$s FOR UPDATE USING (%2$s) WITH CHECK (%2$s)', v_rel, um.policy_check(resource || ':update', org_column, scope_column));
    EXECUTE format('CREATE POLICY um_delete ON %s FOR DELETE USING (%s)', v_rel, um.policy_check(resource || ':delete', org_column, scope_column));
  END LOOP;
  PERFORM um.protection_note(tbl, 'table.protect', resource,
                             jsonb_build_object('table', tbl::text, 'org_column', org_column, 'resource', resource,
                                                'scope_column', scope_column, 'relations', cardinality(v_parts)));
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
  FOR v_rel IN SELECT t FROM um.protection_tree(tbl) t
                WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_policy p
                               WHERE p.polrelid = t AND p.polname IN ('um_read', 'um_create', 'um_update', 'um_delete')) LOOP
    v_found := true;
    PERFORM um.drop_um_policies(v_rel);
    -- Row-level security stays on (with no policy it denies everything)
    -- unless asked otherwise, and then only where no other policy remains.
    IF disable_rls AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_policy p WHERE p.polrelid = v_rel) THEN
      EXECUTE format('ALTER TABLE %s DISABLE ROW LEVEL SECURITY, NO FORCE ROW LEVEL SECURITY', v_rel);
    END IF;
  END LOOP;
  IF v_found THEN
    PERFORM um.protection_note(tbl, 'table.unprotect', NULL,
                               jsonb_build_object('table', tbl::text, 'disable_rls', disable_rls));
  END IF;
  RETURN v_found;
END
$$;
COMMENT ON FUNCTION @extschema@.um_unprotect_table(regclass, boolean) IS
  'drop um''s policies from a table and the tables inheriting from it; row-level security stays on (denying all) unless disable_rls, where no other policy remains; returns whether it was protected';

-- um_protect_table and um_unprotect_table run with their caller's rights and
-- call these; each is harmless alone (um.protection_note checks ownership).
-- (88_own_rls.sql revokes EXECUTE on every function in um; these get it back
-- there.)

-- um_lint(): what weakens tenant isolation in this database, each finding
-- with what to do about it.  Reads only the catalogs.
CREATE FUNCTION @extschema@.um_lint()
RETURNS TABLE (severity text, object text, finding text, hint text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT f.* FROM (
  WITH app_tables AS (
    SELECT c.oid, c.relkind, c.relrowsecurity, c.relforcerowsecurity, c.relispartition
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p')
       AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'um', 'pg_toast')
       AND n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast_temp%'),
  org_columns AS (
    -- a column that references um.organizations, or is called org_id / organization_id
    SELECT t.oid, a.attname
      FROM app_tables t JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
     WHERE a.attname IN ('org_id', 'organization_id')
        OR EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k
                    WHERE k.conrelid = t.oid AND k.contype = 'f' AND k.confrelid = 'um.organizations'::pg_catalog.regclass
                      AND a.attnum = ANY (k.conkey))),
  policies AS (
    SELECT p.polrelid, count(*) AS n, count(*) FILTER (WHERE p.polname IN ('um_read', 'um_create', 'um_update', 'um_delete')) AS um
      FROM pg_catalog.pg_policy p GROUP BY p.polrelid)
  -- 1. an organization column and no policy at all
  SELECT 'critical' AS severity, t.oid::pg_catalog.regclass::text AS object,
         format('has an organization column (%s) but no row-level security policy: every role with SELECT sees every tenant''s rows',
                (SELECT string_agg(DISTINCT o.attname::text, ', ') FROM org_columns o WHERE o.oid = t.oid)) AS finding,
         format('SELECT um_protect_table(%L, %L, ''<resource>'');', t.oid::pg_catalog.regclass::text,
                (SELECT min(o.attname::text) FROM org_columns o WHERE o.oid = t.oid)) AS hint
    FROM app_tables t
   WHERE EXISTS (SELECT 1 FROM org_columns o WHERE o.oid = t.oid)
     AND NOT EXISTS (SELECT 1 FROM policies p WHERE p.polrelid = t.oid)
     AND NOT (t.relispartition AND EXISTS (SELECT 1 FROM pg_catalog.pg_partition_ancestors(t.oid) a
                                            JOIN policies p ON p.polrelid = a.relid WHERE a.relid <> t.oid))
  UNION ALL
  -- 2. a partition of a protected table without the policies (queries naming it skip the parent's)
  SELECT 'critical', t.oid::pg_catalog.regclass::text,
         'is a partition of a protected table but has no policies of its own: a query that names the partition sees every tenant''s rows',
         format('SELECT um_protect_table(%L, ...) again on the parent table protects its partitions too.',
                (SELECT a.relid::pg_catalog.regclass::text FROM pg_catalog.pg_partition_ancestors(t.oid) a
                  WHERE a.relid <> t.oid ORDER BY a.relid LIMIT 1))
    FROM app_tables t
   WHERE t.relispartition AND NOT EXISTS (SELECT 1 FROM policies p WHERE p.polrelid = t.oid)
     AND EXISTS (SELECT 1 FROM pg_catalog.pg_partition_ancestors(t.oid) a JOIN policies p ON p.polrelid = a.relid
                  WHERE a.relid <> t.oid)
  UNION ALL
  -- 2b. another permissive policy beside um's: permissive policies are OR'ed,
  -- so it widens what um's policy allows
  SELECT 'critical', t.oid::pg_catalog.regclass::text,
         format('has permissive policy %I beside um''s policies: permissive policies add up, so it lets through whatever it allows', p.polname),
         format('Make it restrictive (CREATE POLICY ... AS RESTRICTIVE) to narrow um''s policies, or drop it: DROP POLICY %I ON %s;',
                p.polname, t.oid::pg_catalog.regclass)
    FROM app_tables t JOIN pg_catalog.pg_policy p ON p.polrelid = t.oid
   WHERE p.polpermissive AND p.polname NOT IN ('um_read', 'um_create', 'um_update', 'um_delete')
     AND EXISTS (SELECT 1 FROM policies q WHERE q.polrelid = t.oid AND q.um > 0)
  UNION ALL
  -- 3. policies that are not enforced
  SELECT 'critical', t.oid::pg_catalog.regclass::text,
         'has policies but row-level security is not enabled: they are ignored',
         format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;', t.oid::pg_catalog.regclass)
    FROM app_tables t JOIN policies p ON p.polrelid = t.oid
   WHERE NOT t.relrowsecurity
  UNION ALL
  SELECT 'warning', t.oid::pg_catalog.regclass::text,
         'enables row-level security without forcing it: the table''s owner (and views it owns) bypass the policies',
         format('ALTER TABLE %s FORCE ROW LEVEL SECURITY;', t.oid::pg_catalog.regclass)
    FROM app_tables t
   WHERE t.relrowsecurity AND NOT t.relforcerowsecurity
  UNION ALL
  -- 4. views over protected tables that do not run as their caller
  SELECT CASE WHEN v.relkind = 'm' OR r.rolsuper OR r.rolbypassrls THEN 'critical' ELSE 'warning' END,
         v.oid::pg_catalog.regclass::text,
         CASE WHEN v.relkind = 'm'
              THEN format('is a materialized view over protected table %s: it stores rows as its owner saw them, and its readers are not filtered', t.oid::pg_catalog.regclass)
              WHEN r.rolsuper OR r.rolbypassrls
              THEN format('reads protected table %s as its owner %I, who bypasses row-level security: its readers see every tenant''s rows', t.oid::pg_catalog.regclass, r.rolname)
              ELSE format('reads protected table %s with its owner''s privileges, not its caller''s (security_invoker is off)', t.oid::pg_catalog.regclass) END,
         CASE WHEN v.relkind = 'm'
              THEN format('Replace it with a view, or protect it: SELECT um_protect_table(%L, ...).', v.oid::pg_catalog.regclass::text)
              ELSE format('ALTER VIEW %s SET (security_invoker = true);', v.oid::pg_catalog.regclass) END
    FROM pg_catalog.pg_rewrite rw
    JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = rw.oid
                               AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
    JOIN pg_catalog.pg_class v ON v.oid = rw.ev_class
    JOIN pg_catalog.pg_class t ON t.oid = d.refobjid
    JOIN pg_catalog.pg_roles r ON r.oid = v.relowner
   WHERE v.relkind IN ('v', 'm') AND t.oid <> v.oid AND t.relrowsecurity
     AND (v.relkind = 'm'
          OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_options_to_table(v.reloptions) o
                          WHERE o.option_name = 'security_invoker'
                            AND lower(o.option_value) IN ('true', 'on', 'yes', '1', 't', 'y')))
   GROUP BY v.oid, v.relkind, t.oid, r.rolsuper, r.rolbypassrls, r.rolname
  UNION ALL
  -- 5. roles that log in and bypass row-level security
  SELECT CASE WHEN r.rolsuper THEN 'warning' ELSE 'critical' END, 'role ' || quote_ident(r.rolname),
         CASE WHEN r.rolsuper THEN 'is a superuser that can log in: if an application connects as it, no policy applies'
              ELSE 'can log in and has BYPASSRLS: no policy applies to it' END,
         CASE WHEN r.rolsuper THEN 'Connect applications with a role that is neither superuser nor BYPASSRLS; keep this one for administration.'
              ELSE format('ALTER ROLE %I NOBYPASSRLS;', r.rolname) END
    FROM pg_catalog.pg_roles r
   WHERE r.rolcanlogin AND (r.rolbypassrls OR r.rolsuper) AND r.oid <> 10
  UNION ALL
  -- 6. SECURITY DEFINER functions whose search_path the caller chooses
  SELECT 'warning', 'function ' || p.oid::pg_catalog.regprocedure::text,
         'is SECURITY DEFINER without a pinned search_path: a caller can put objects of its own in the way',
         format('ALTER FUNCTION %s SET search_path = pg_catalog, pg_temp;', p.oid::pg_catalog.regprocedure)
    FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
   WHERE p.prosecdef AND n.nspname NOT IN ('pg_catalog', 'information_schema')
     AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search\_path=%')
  UNION ALL
  -- 7. protected tables whose organization column has no index
  SELECT 'info', t.oid::pg_catalog.regclass::text,
         format('is protected on column %s, which no index leads with: every query reads the whole table', o.attname),
         format('CREATE INDEX ON %s (%I);', t.oid::pg_catalog.regclass, o.attname)
    FROM app_tables t JOIN policies p ON p.polrelid = t.oid AND p.um > 0
    JOIN org_columns o ON o.oid = t.oid
   WHERE t.relkind = 'r'
     AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                      WHERE i.indrelid = t.oid
                        AND i.indkey[0] = (SELECT a.attnum FROM pg_catalog.pg_attribute a
                                            WHERE a.attrelid = t.oid AND a.attname = o.attname))
  ) f
  ORDER BY array_position(ARRAY['critical', 'warning', 'info'], f.severity), f.object, f.finding
$$;
COMMENT ON FUNCTION @extschema@.um_lint() IS
  'a security advisor: tables with an organization column but no policies, RLS not forced, unprotected partitions, views and materialized views over protected tables, roles that bypass RLS, SECURITY DEFINER functions without a pinned search_path; each with a hint';
