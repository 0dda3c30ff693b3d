
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
GRANT EXECUTE ON FUNCTION um.protection_note(regclass, text, text, jsonb), um.protection_tree(regclass),
  um.policy_check(text, name, name),
  um.drop_um_policies(regclass), um.check_column(regclass, name, text), um.assert_permission_name(text, boolean)
  TO PUBLIC;
