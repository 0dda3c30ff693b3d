
-- ---------------------------------------------------------------------------
-- 0.1 -> 0.2, continued (after 86_lifecycle.sql, 85_rls_lint.sql and 89_integrity.sql)

-- the new table of secrets is for um administrators only, and dumped
ALTER TABLE um.verification_tokens ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY um_administrators ON um.verification_tokens USING (um.administers_um()) WITH CHECK (um.administers_um());
SELECT pg_catalog.pg_extension_config_dump('um.verification_tokens', '');

-- no internal function may be executed by PUBLIC (as 88_own_rls.sql)
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA um FROM PUBLIC;
GRANT EXECUTE ON FUNCTION um.administers_um() TO PUBLIC;
-- and the ones um_protect_table / um_unprotect_table call with their caller's rights
GRANT EXECUTE ON FUNCTION um.protection_note(regclass, text, text), um.protection_tree(regclass), um.protection_state(regclass[]),
  um.policy_check(text, name, name),
  um.drop_um_policies(regclass), um.check_column(regclass, name, text), um.assert_permission_name(text, boolean)
  TO PUBLIC;

-- ---------------------------------------------------------------------------
-- Security fixes of 0.2 in parts that are not assembled into this script

-- an impersonator reads the target's audit events only in the impersonated
-- organizations, and events of no organization only as themself (88_own_rls.sql)
ALTER POLICY um_read ON um.audit_events USING (
  @extschema@.um_has_permission('audit:read', org_id)
  OR (target_type = 'user' AND (target_id = @extschema@.um_current_user_id(org_id)
      OR (org_id IS NULL AND target_id = @extschema@.um_current_user_id() AND target_id = @extschema@.um_real_user_id()))));

-- um_add_user_reference (87_references.sql) replaces foreign keys into um's
-- tables, which PostgreSQL checks as um's owner with the referencing column's
-- casts: its functions are callable, and nobody but um's owner keeps
-- REFERENCES on um's tables (um_lint reports the foreign keys left).
GRANT EXECUTE ON FUNCTION um.user_reference_check(), um.user_reference_validate(regclass, name) TO PUBLIC;
REVOKE REFERENCES ON ALL TABLES IN SCHEMA um FROM PUBLIC;
DO $$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT DISTINCT c.oid::regclass AS tbl, a.grantee::regrole AS grantee, NULL::name AS col
             FROM pg_catalog.pg_class c, aclexplode(c.relacl) a
            WHERE c.relnamespace = 'um'::regnamespace AND a.privilege_type = 'REFERENCES' AND a.grantee <> c.relowner
              AND a.grantee <> 0
           UNION ALL
           SELECT DISTINCT c.oid::regclass, a.grantee::regrole, att.attname
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_attribute att ON att.attrelid = c.oid, aclexplode(att.attacl) a
            WHERE c.relnamespace = 'um'::regnamespace AND a.privilege_type = 'REFERENCES' AND a.grantee <> c.relowner
  LOOP
    IF r.col IS NULL THEN
      EXECUTE format('REVOKE REFERENCES ON %s FROM %s', r.tbl, r.grantee);
    ELSE
      EXECUTE format('REVOKE REFERENCES (%I) ON %s FROM %s', r.col, r.tbl,
                     CASE WHEN r.grantee::oid = 0 THEN 'PUBLIC' ELSE r.grantee::text END);
    END IF;
  END LOOP;
END
$$;

-- a refused login takes the same time for an account hashed at an older
-- cost as for an unknown address (80_identity.sql)
CREATE OR REPLACE FUNCTION um.password_matches(p_password text, p_hash text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_schema text := um.pgcrypto_schema();
  v text;
BEGIN
  IF p_hash IS NULL OR p_password IS NULL OR octet_length(p_password) > 72 THEN
    EXECUTE format('SELECT %1$I.crypt($1, %1$I.gen_salt(''bf'', $2))', v_schema)
       INTO v USING coalesce(p_password, ''), (um.login_settings()).password_hash_cost;
    RETURN false;
  END IF;
  EXECUTE format('SELECT %I.crypt($1, $2)', v_schema) INTO v USING p_password, p_hash;
  -- a hash made at a lower cost than today's is quicker to check than an
  -- unknown address (hashed at today's cost): spend today's cost as well,
  -- so that the time of a refusal does not tell which addresses exist
  IF um.hash_cost(p_hash) < (um.login_settings()).password_hash_cost THEN
    PERFORM um.password_matches(p_password, NULL);
  END IF;
  RETURN v = p_hash;
END
$$;

-- um.hash_cost: the bcrypt cost a hash was made with ($2a$NN$...); 0 when
-- it is not a bcrypt hash.
CREATE FUNCTION um.hash_cost(p_hash text)
RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN CASE WHEN p_hash ~ '^\$2[abxy]?\$[0-9][0-9]\$' THEN substr(p_hash, 5, 2)::integer ELSE 0 END;
REVOKE EXECUTE ON FUNCTION um.hash_cost(text) FROM PUBLIC;
