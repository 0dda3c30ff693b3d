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
       AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'um', 'um_internal', 'pg_toast')
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
      FROM pg_catalog.pg_policy p GROUP BY p.polrelid),
  policy_columns AS (
    -- the columns um's read policy uses: the organization column (and a scope column)
    SELECT t.oid, a.attnum, a.attname
      FROM app_tables t JOIN pg_catalog.pg_policy pol ON pol.polrelid = t.oid AND pol.polname = 'um_read'
      JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_policy'::pg_catalog.regclass AND d.objid = pol.oid
                                 AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = t.oid
                                 AND d.refobjsubid > 0
      JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid),
  protected_columns AS (
    -- of those, the organization column: the one that looks like one, else all
    SELECT DISTINCT c.oid, c.attnum, c.attname FROM policy_columns c
     WHERE EXISTS (SELECT 1 FROM org_columns o WHERE o.oid = c.oid AND o.attname = c.attname)
        OR NOT EXISTS (SELECT 1 FROM policy_columns c2 JOIN org_columns o ON o.oid = c2.oid AND o.attname = c2.attname
                        WHERE c2.oid = c.oid))
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
    JOIN protected_columns o ON o.oid = t.oid
   WHERE t.relkind = 'r'
     AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                      WHERE i.indrelid = t.oid
                        AND i.indkey[0] = (SELECT a.attnum FROM pg_catalog.pg_attribute a
                                            WHERE a.attrelid = t.oid AND a.attname = o.attname))
  UNION ALL
  -- 8. protected tables with a unique key that leaves out the organization
  -- column: a unique index ignores row-level security, so a write that
  -- collides (a unique violation, INSERT ... ON CONFLICT DO NOTHING) tells
  -- one tenant that another tenant's row holds the value; and a
  -- tenant-sharded deployment (distributed by organization) needs the
  -- organization in each key
  SELECT 'warning', t.oid::pg_catalog.regclass::text,
         format('is protected on column %I, which its %s %I does not include: a colliding insert or update tells a tenant that another tenant''s row holds the value (unique indexes ignore row-level security), and the table cannot be distributed by organization',
                o.attname, CASE k.contype WHEN 'p' THEN 'primary key' WHEN 'u' THEN 'unique constraint' ELSE 'unique index' END,
                coalesce(k.conname, ic.relname)),
         CASE WHEN k.oid IS NOT NULL
              THEN format('Lead it with the organization (it then holds within each organization; foreign keys that reference it must be dropped first and re-created on the new key): ALTER TABLE %s DROP CONSTRAINT %I, ADD %s (%s);',
                          t.oid::pg_catalog.regclass, k.conname, CASE k.contype WHEN 'p' THEN 'PRIMARY KEY' ELSE 'UNIQUE' END,
                          (SELECT string_agg(quote_ident(x.name), ', ' ORDER BY x.ord)
                             FROM (SELECT o.attname::text AS name, 0::bigint AS ord
                                   UNION ALL
                                   SELECT a.attname::text, c.ord FROM unnest(k.conkey) WITH ORDINALITY AS c(attnum, ord)
                                     JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attnum = c.attnum) x))
              ELSE format('Re-create it with %I as its first column (it then holds within each organization): it is %s',
                          o.attname, pg_catalog.pg_get_indexdef(i.indexrelid)) END
    FROM app_tables t JOIN policies p ON p.polrelid = t.oid AND p.um > 0
    JOIN protected_columns o ON o.oid = t.oid
    JOIN pg_catalog.pg_index i ON i.indrelid = t.oid AND i.indisunique
    JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
    LEFT JOIN pg_catalog.pg_constraint k ON k.conrelid = t.oid AND k.conindid = i.indexrelid AND k.contype IN ('p', 'u')
   WHERE NOT t.relispartition
     AND NOT o.attnum = ANY ((i.indkey::pg_catalog.int2[])[0:i.indnkeyatts - 1])   -- key columns, not INCLUDE ones
  UNION ALL
  -- 9. foreign keys into um's tables: PostgreSQL checks each inserted row
  -- as the owner of the referenced table, with the referencing column's
  -- casts (code of the application's with um's rights when the types differ)
  -- A plain key (same types, no actions, not deferrable) into
  -- um.organizations or um.scopes runs no code of the application's and
  -- makes um's deletions wait for its rows (UM081): the supported way to
  -- keep a tenant's rows from being orphaned.  Keys with ON DELETE/UPDATE
  -- actions stop um's deleting calls (UM057); deferrable ones its deletions.
  SELECT CASE WHEN k.casts OR k.actions THEN 'critical'
              WHEN k.plain_org_key THEN 'info'
              ELSE 'warning' END,
         k.conrelid::pg_catalog.regclass::text,
         CASE WHEN k.plain_org_key
              THEN format('has foreign key %I into %s: um refuses to delete what its rows still reference (UM081)',
                          k.conname, k.confrelid::pg_catalog.regclass)
              WHEN k.actions AND NOT k.casts
              THEN format('has foreign key %I into %s with ON DELETE or ON UPDATE actions: they would run as um''s owner, so every lifecycle call that deletes refuses (UM057)',
                          k.conname, k.confrelid::pg_catalog.regclass)
              WHEN k.condeferrable AND NOT k.casts
              THEN format('has deferrable foreign key %I into %s: it would be checked only at COMMIT, so um refuses to delete organizations and scope nodes (UM081)',
                          k.conname, k.confrelid::pg_catalog.regclass)
              ELSE format('has foreign key %I into %s: PostgreSQL checks it as um''s owner, running the column''s casts with um''s rights',
                          k.conname, k.confrelid::pg_catalog.regclass) END,
         CASE WHEN k.plain_org_key
              THEN 'Nothing to do: delete or move those rows before deleting the organization or scope node.'
              WHEN k.condeferrable AND NOT k.casts AND NOT k.actions
              THEN format('ALTER TABLE %s ALTER CONSTRAINT %I NOT DEFERRABLE;', k.conrelid::pg_catalog.regclass, k.conname)
              WHEN k.confrelid = 'um.users'::pg_catalog.regclass AND cardinality(k.conkey) = 1
              THEN format('ALTER TABLE %s DROP CONSTRAINT %I; SELECT um_add_user_reference(%L, %L);',
                          k.conrelid::pg_catalog.regclass, k.conname, k.conrelid::pg_catalog.regclass::text,
                          (SELECT a.attname FROM pg_catalog.pg_attribute a WHERE a.attrelid = k.conrelid AND a.attnum = k.conkey[1]))
              ELSE format('ALTER TABLE %s DROP CONSTRAINT %I; keep the ids without a foreign key into um''s tables.',
                          k.conrelid::pg_catalog.regclass, k.conname) END
    FROM (SELECT k0.*, EXISTS (SELECT 1 FROM unnest(k0.conkey, k0.confkey) AS x(a, b)
                                 JOIN pg_catalog.pg_attribute fa ON fa.attrelid = k0.conrelid AND fa.attnum = x.a
                                 JOIN pg_catalog.pg_attribute pa ON pa.attrelid = k0.confrelid AND pa.attnum = x.b
                                WHERE fa.atttypid <> pa.atttypid) AS casts,
                 k0.confdeltype NOT IN ('a', 'r') OR k0.confupdtype NOT IN ('a', 'r') AS actions
            FROM pg_catalog.pg_constraint k0 WHERE k0.contype = 'f') AS k1
    CROSS JOIN LATERAL (SELECT k1.*, NOT k1.casts AND NOT k1.actions AND NOT k1.condeferrable
                               AND k1.confrelid IN ('um.organizations'::pg_catalog.regclass, 'um.scopes'::pg_catalog.regclass)
                               AS plain_org_key) AS k
    JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
   WHERE k.contype = 'f' AND c.relnamespace <> 'um'::pg_catalog.regnamespace
     AND (SELECT r.relnamespace FROM pg_catalog.pg_class r WHERE r.oid = k.confrelid) = 'um'::pg_catalog.regnamespace
     AND k.conparentid = 0
  UNION ALL
  -- 10. roles holding REFERENCES on um's tables: they can make such keys
  SELECT 'critical', 'role ' || a.grantee::pg_catalog.regrole::text,
         format('holds REFERENCES on %s: a foreign key it makes is checked with um''s rights, running its casts', c.oid::pg_catalog.regclass),
         format('REVOKE REFERENCES ON %s FROM %s; register columns of user ids with um_add_user_reference() instead.',
                c.oid::pg_catalog.regclass, a.grantee::pg_catalog.regrole)
    FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
   WHERE c.relnamespace = 'um'::pg_catalog.regnamespace AND a.privilege_type = 'REFERENCES'
     AND a.grantee <> c.relowner AND a.grantee <> 0
  UNION ALL
  SELECT 'critical', 'role ' || a.grantee::pg_catalog.regrole::text,
         format('holds REFERENCES on column %I of %s: a foreign key it makes is checked with um''s rights, running its casts',
                att.attname, c.oid::pg_catalog.regclass),
         format('REVOKE REFERENCES (%I) ON %s FROM %s; register columns of user ids with um_add_user_reference() instead.',
                att.attname, c.oid::pg_catalog.regclass, a.grantee::pg_catalog.regrole)
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_attribute att ON att.attrelid = c.oid, pg_catalog.aclexplode(att.attacl) a
   WHERE c.relnamespace = 'um'::pg_catalog.regnamespace AND a.privilege_type = 'REFERENCES'
     AND a.grantee <> c.relowner AND a.grantee <> 0
  UNION ALL
  -- 11. login roles whose settings write what they pass to um (passwords,
  -- tokens) into the server log: their effective settings in this database
  -- (role and database settings over the server's)
  SELECT 'critical', 'role ' || quote_ident(r.rolname),
         format('can log in and call um_login, and its settings log the statements it runs (%s): the passwords and tokens it passes to um reach the server log',
                l.why),
         l.fix || ' Statements logged by log_statement or for their duration, and the parameters of failing ones, are written before um can hide them.'
    FROM pg_catalog.pg_roles r
    CROSS JOIN LATERAL (
      SELECT string_agg(format('%s = %s', e.name, e.value), ', ' ORDER BY e.name) AS why,
             string_agg(format('ALTER ROLE %I IN DATABASE %I SET %s = %s;', r.rolname, pg_catalog.current_database(), e.name, e.safe),
                        ' ' ORDER BY e.name) AS fix
        FROM (SELECT g.name, g.safe,
                     coalesce((SELECT substr(c, length(g.name) + 2)
                                 FROM pg_catalog.pg_db_role_setting s, unnest(s.setconfig) c
                                WHERE s.setrole IN (r.oid, 0)
                                  AND s.setdatabase IN ((SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database()), 0)
                                  AND NOT (s.setrole = 0 AND s.setdatabase = 0)
                                  AND c LIKE g.name || '=%'
                                ORDER BY (s.setrole <> 0 AND s.setdatabase <> 0) DESC, (s.setrole <> 0) DESC
                                LIMIT 1),
                              (SELECT CASE WHEN p.source IN ('database', 'user', 'database user') THEN p.boot_val
                                           WHEN p.source IN ('session', 'client') THEN p.reset_val
                                           ELSE p.setting END
                                 FROM pg_catalog.pg_settings p WHERE p.name = g.name)) AS value
                FROM (VALUES ('log_statement', '''none'''),
                             ('log_min_duration_statement', '-1'),
                             ('log_min_duration_sample', '-1'),
                             ('log_transaction_sample_rate', '0'),
                             ('log_parameter_max_length_on_error', '0')) AS g (name, safe)) e
       WHERE CASE e.name
               WHEN 'log_statement' THEN btrim(e.value, '''"') = 'all'
               WHEN 'log_transaction_sample_rate' THEN btrim(e.value, '''"') !~ '^0*(\.0*)?$'
               WHEN 'log_parameter_max_length_on_error' THEN btrim(e.value, '''"') !~ '^0+[A-Za-z]*$'
               ELSE btrim(e.value, '''"') !~ '^-' END) l
   WHERE r.rolcanlogin AND l.why IS NOT NULL
     AND (pg_catalog.has_function_privilege(r.oid, '@extschema@.um_login(text, text)', 'EXECUTE')
          OR pg_catalog.has_function_privilege(r.oid, '@extschema@.um_begin(text)', 'EXECUTE'))
  UNION ALL
  -- 12. um not loaded at backend start: a statement that fails before um is
  -- loaded in its backend (a syntax error) is logged with its text, and
  -- logins have no audit writers of their own
  SELECT 'warning', 'server',
         'um is not preloaded: a statement that fails before a backend loads um (a syntax error in a call of um_login) is logged with its text, password included, and logins share background worker slots with parallel queries',
         format('ALTER SYSTEM SET shared_preload_libraries = %L; then restart the server (or, for this database only and without reserved audit writers: ALTER DATABASE %I SET session_preload_libraries = ''um'';)',
                CASE WHEN pg_catalog.current_setting('shared_preload_libraries') = '' THEN 'um'
                     ELSE pg_catalog.current_setting('shared_preload_libraries') || ',um' END,
                pg_catalog.current_database())
   WHERE NOT EXISTS (SELECT 1 FROM unnest(string_to_array(pg_catalog.current_setting('shared_preload_libraries') || ','
                                                          || pg_catalog.current_setting('session_preload_libraries') || ','
                                                          || pg_catalog.current_setting('local_preload_libraries'), ',')) l
                      WHERE btrim(l) IN ('um', '$libdir/um', '"um"'))
  UNION ALL
  -- 13. organizations that require a second factor from members without one
  SELECT 'warning', 'organization ' || g.org_slug,
         format('requires a second factor (require_mfa), and %s member(s) who can log in have none: they can do nothing there', g.members_without),
         'Have them enrol one (um_enroll_totp, then um_complete_login at their next login), or turn require_mfa off until they have.'
    FROM um_internal.mfa_gaps() g
  ) f
  ORDER BY array_position(ARRAY['critical', 'warning', 'info'], f.severity), f.object, f.finding
$$;
COMMENT ON FUNCTION @extschema@.um_lint() IS
  'a security advisor: tables with an organization column but no policies, RLS not forced, unprotected partitions, views and materialized views over protected tables, roles that bypass RLS, SECURITY DEFINER functions without a pinned search_path, unindexed organization columns, keys without the organization, login roles whose settings log the secrets they pass to um, um not preloaded, organizations requiring a second factor from members without one; each with a hint';
