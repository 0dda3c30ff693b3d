-- The permission evaluator (src/evaluator.c, src/cache.c) and how its
-- cache learns about changes.

-- The addresses of the cache's invalidation messages (see src/cache.c).
-- Nothing is ever stored in them.  A change to the permission catalog (or
-- a TRUNCATE) invalidates the sentinel, and every backend empties its
-- cache; any other change invalidates the buckets of the users and
-- organizations it touches, and every backend drops those entries only.
CREATE TABLE um.cache_sentinel ();
COMMENT ON TABLE um.cache_sentinel IS 'never holds rows: invalidating it tells every backend to empty its permission cache';
REVOKE ALL ON um.cache_sentinel FROM PUBLIC;

-- 1,024 buckets (UM_CACHE_BUCKETS in src/cache.c): composite types, the
-- lightest relations, with no storage.
DO $$
BEGIN
  FOR b IN 0..1023 LOOP
    EXECUTE format('CREATE TYPE um.%I AS ()', 'cache_bucket_' || b);
    EXECUTE format('COMMENT ON TYPE um.%I IS %L', 'cache_bucket_' || b,
                   'never holds anything: invalidating it tells every backend to drop the cache entries of the users and organizations of bucket ' || b);
    EXECUTE format('REVOKE ALL ON TYPE um.%I FROM PUBLIC', 'cache_bucket_' || b);
  END LOOP;
END
$$;

CREATE FUNCTION um_internal.cache_invalidate()
RETURNS trigger
AS 'MODULE_PATHNAME', 'um_cache_invalidate_trigger'
LANGUAGE C;
COMMENT ON FUNCTION um_internal.cache_invalidate() IS 'trigger: every backend drops the permission cache entries of the users and organizations a changed row names (its arguments: the table''s cache_key), or its whole cache (no arguments, or TRUNCATE), once the change is visible to it';

-- Row triggers, ENABLE ALWAYS: they also fire under
-- session_replication_role = replica, so changes a logical replication
-- subscription applies reach the subscriber's caches.  (Invalidations of
-- one relation within a command are merged, so a row costs little.)
-- TRUNCATE has no rows: a statement trigger empties every cache.  The
-- tables are those um.state_tables marks evaluator_input, the arguments
-- their cache_key; for um.users only the columns an answer depends on, so
-- that logins (which count failures and reset the count) never drop
-- anybody's entries.
DO $$
DECLARE
  t record;
BEGIN
  FOR t IN SELECT s.relname, s.invalidating_columns, s.cache_key FROM um.state_tables s WHERE s.evaluator_input ORDER BY s.relname LOOP
    EXECUTE format('CREATE TRIGGER cache_invalidate AFTER INSERT OR UPDATE%s OR DELETE ON um.%I '
                   'FOR EACH ROW EXECUTE FUNCTION um_internal.cache_invalidate(%s)',
                   CASE WHEN t.invalidating_columns IS NOT NULL
                        THEN ' OF ' || (SELECT string_agg(quote_ident(c), ', ') FROM unnest(t.invalidating_columns) c) END,
                   t.relname, coalesce(quote_literal(t.cache_key), ''));
    EXECUTE format('CREATE TRIGGER cache_invalidate_truncate AFTER TRUNCATE ON um.%I '
                   'FOR EACH STATEMENT EXECUTE FUNCTION um_internal.cache_invalidate()', t.relname);
    EXECUTE format('COMMENT ON TRIGGER cache_invalidate ON um.%I IS %L', t.relname,
                   format('every backend drops the permission cache entries %s once %s is visible to it (row trigger, enabled always)',
                          CASE WHEN t.cache_key IS NULL THEN 'it holds'
                               WHEN t.cache_key LIKE '%|%' THEN 'of the user the row names, or else of its organization'
                               WHEN t.cache_key LIKE 'user:%' THEN 'of the user the row names'
                               ELSE 'of the organization the row names' END,
                          CASE WHEN t.invalidating_columns IS NULL THEN 'the change'
                               ELSE 'a change of ' || array_to_string(t.invalidating_columns[1:cardinality(t.invalidating_columns) - 1], ', ')
                                    || ' or ' || t.invalidating_columns[cardinality(t.invalidating_columns)] END));
    EXECUTE format('COMMENT ON TRIGGER cache_invalidate_truncate ON um.%I IS %L', t.relname,
                   'every backend empties its permission cache once the TRUNCATE is visible to it (statement trigger, enabled always)');
    EXECUTE format('ALTER TABLE um.%I ENABLE ALWAYS TRIGGER cache_invalidate', t.relname);
    EXECUTE format('ALTER TABLE um.%I ENABLE ALWAYS TRIGGER cache_invalidate_truncate', t.relname);
  END LOOP;
END
$$;

-- The acting user (src/identity.c).  um_act_as is for backends that
-- authenticate users themselves: only roles the DBA grants it may call it.
CREATE FUNCTION @extschema@.um_act_as(user_id bigint)
RETURNS void
AS 'MODULE_PATHNAME', 'um_act_as'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_act_as(bigint) IS
  'make user_id the acting user until the end of the current transaction (EXECUTE is granted by the DBA, never to PUBLIC)';
REVOKE EXECUTE ON FUNCTION @extschema@.um_act_as(bigint) FROM PUBLIC;

CREATE FUNCTION @extschema@.um_current_user_id()
RETURNS bigint
AS 'MODULE_PATHNAME', 'um_current_user_id'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.um_current_user_id() IS 'the acting user of this transaction, or NULL';

-- The checks.  STABLE (reads, never writes; like has_table_privilege()),
-- not STRICT (a NULL user, organization or scope is a deny: false, never
-- NULL), PARALLEL SAFE (each process keeps its own cache, and the acting
-- user reaches parallel workers in the setting um.acting_identity, which
-- only um can write: src/identity.c), not LEAKPROOF (an invalid name is an
-- error that quotes it).
CREATE FUNCTION @extschema@.um_has_permission(permission text, org_id bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'um_has_permission_acting'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.um_has_permission(text, bigint) IS
  'may the acting user do permission in the organization?  e.g. USING (um_has_permission(''invoice:read'', org_id))';

CREATE FUNCTION @extschema@.um_has_permission(permission text, org_id bigint, scope_id bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'um_has_permission_acting'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.um_has_permission(text, bigint, bigint) IS
  'may the acting user do permission on a scope node of the organization?';

CREATE FUNCTION @extschema@.um_has_permission(user_id bigint, permission text, org_id bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'um_has_permission_user'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.um_has_permission(bigint, text, bigint) IS
  'may user_id do permission in the organization?  (for administrators and reports)';

CREATE FUNCTION @extschema@.um_has_permission(user_id bigint, permission text, org_id bigint, scope_id bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'um_has_permission_user'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.um_has_permission(bigint, text, bigint, bigint) IS
  'may user_id do permission on a scope node of the organization?  (for administrators and reports)';

-- The planner support function (src/support.c): a call whose organization
-- (or scope) argument is an indexed column becomes an index condition
-- org_id = ANY (um_permitted_orgs(...)), evaluated once per scan.
CREATE FUNCTION um_internal.has_permission_support(internal)
RETURNS internal
AS 'MODULE_PATHNAME', 'um_has_permission_support'
LANGUAGE C STRICT;
COMMENT ON FUNCTION um_internal.has_permission_support(internal) IS
  'planner support function of um_has_permission: turns a check on an indexed organization (or scope) column into an index condition over um_permitted_orgs (or um_permitted_scopes)';
ALTER FUNCTION @extschema@.um_has_permission(text, bigint) SUPPORT um_internal.has_permission_support;
ALTER FUNCTION @extschema@.um_has_permission(text, bigint, bigint) SUPPORT um_internal.has_permission_support;
ALTER FUNCTION @extschema@.um_has_permission(bigint, text, bigint) SUPPORT um_internal.has_permission_support;
ALTER FUNCTION @extschema@.um_has_permission(bigint, text, bigint, bigint) SUPPORT um_internal.has_permission_support;

-- Companions for policies that should use an index: org_id = ANY (um_permitted_orgs('invoice:read')).
CREATE FUNCTION @extschema@.um_permitted_orgs(permission text)
RETURNS bigint[]
AS 'MODULE_PATHNAME', 'um_permitted_orgs_acting'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.um_permitted_orgs(text) IS
  'the organizations where the acting user holds permission organization-wide, sorted; for org_id = ANY (...)';

CREATE FUNCTION @extschema@.um_permitted_orgs(user_id bigint, permission text)
RETURNS bigint[]
AS 'MODULE_PATHNAME', 'um_permitted_orgs_user'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.um_permitted_orgs(bigint, text) IS
  'the organizations where user_id holds permission organization-wide, sorted';

CREATE FUNCTION @extschema@.um_permitted_scopes(permission text, org_id bigint)
RETURNS bigint[]
AS 'MODULE_PATHNAME', 'um_permitted_scopes_acting'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.um_permitted_scopes(text, bigint) IS
  'the scope nodes of the organization where the acting user holds permission, sorted; for scope_id = ANY (...)';

CREATE FUNCTION @extschema@.um_permitted_scopes(user_id bigint, permission text, org_id bigint)
RETURNS bigint[]
AS 'MODULE_PATHNAME', 'um_permitted_scopes_user'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.um_permitted_scopes(bigint, text, bigint) IS
  'the scope nodes of the organization where user_id holds permission, sorted';

-- Every permission of the catalog the acting user holds in the
-- organization (on the scope node, when given): a user interface asks once
-- instead of once per button.  As the checks do, it answers for the acting
-- user only, and empty with nobody acting.
CREATE FUNCTION @extschema@.um_my_permissions(org_id bigint, scope_id bigint DEFAULT NULL)
RETURNS SETOF text
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT p.name FROM um.permissions p
   WHERE CASE WHEN scope_id IS NULL THEN @extschema@.um_has_permission(p.name, org_id)
              ELSE @extschema@.um_has_permission(p.name, org_id, scope_id) END
   ORDER BY p.name;
$$;
COMMENT ON FUNCTION @extschema@.um_my_permissions(bigint, bigint) IS
  'the permissions of the catalog the acting user holds in the organization (on the scope node, when given), by name; none with nobody acting';

-- Checking for someone else says who may do what: for administrators and
-- reporting roles the DBA chooses.
REVOKE EXECUTE ON FUNCTION
  @extschema@.um_has_permission(bigint, text, bigint),
  @extschema@.um_has_permission(bigint, text, bigint, bigint),
  @extschema@.um_permitted_orgs(bigint, text),
  @extschema@.um_permitted_scopes(bigint, text, bigint)
FROM PUBLIC;

CREATE FUNCTION @extschema@.um_cache_stats(
  OUT hits bigint, OUT misses bigint, OUT queries bigint, OUT invalidations bigint,
  OUT resets bigint, OUT evictions bigint, OUT retries bigint,
  OUT memory_bytes bigint, OUT memory_limit_bytes bigint,
  OUT users bigint, OUT members bigint, OUT organizations bigint,
  OUT scope_memos bigint, OUT permissions bigint)
RETURNS record
AS 'MODULE_PATHNAME', 'um_cache_stats'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION @extschema@.um_cache_stats() IS
  'this backend''s permission cache: hits, misses, loader queries, invalidations, resets, evictions, retries, memory and entries';

CREATE FUNCTION @extschema@.um_cache_reset()
RETURNS void
AS 'MODULE_PATHNAME', 'um_cache_reset'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION @extschema@.um_cache_reset() IS 'empty this backend''s permission cache (it refills on demand)';
