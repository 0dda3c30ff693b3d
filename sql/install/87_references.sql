-- Application columns that hold user ids: um_add_user_reference() instead
-- of a foreign key into um.users (src/reference.c says why: a foreign-key
-- check runs as the owner of the referenced table, with the referencing
-- column's casts).  Nobody but um's owner holds REFERENCES on um's tables.

CREATE FUNCTION um.user_reference_check()
RETURNS trigger
AS 'MODULE_PATHNAME', 'um_user_reference_check'
LANGUAGE C;
COMMENT ON FUNCTION um.user_reference_check() IS
  'trigger of um_add_user_reference(): the new value of the column it names is an existing user''s id (locked FOR KEY SHARE, as a foreign key would)';

CREATE FUNCTION um.user_reference_probe(p_user_id bigint, OUT tbl regclass, OUT col name)
RETURNS record
AS 'MODULE_PATHNAME', 'um_user_reference_probe'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION um.user_reference_probe(bigint) IS
  'internal to account deletion: the first registered column (or foreign key into um.users) still holding the user, each table read as its own owner';

CREATE FUNCTION um.user_reference_validate(p_table regclass, p_column name)
RETURNS void
AS 'MODULE_PATHNAME', 'um_user_reference_validate'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION um.user_reference_validate(regclass, name) IS
  'internal to um_add_user_reference(): every value already in the column is a user''s id (the table''s owner only)';

CREATE FUNCTION @extschema@.um_add_user_reference(tbl regclass, user_column name)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_rel regclass;
BEGIN
  IF tbl IS NULL OR user_column IS NULL THEN
    RAISE EXCEPTION 'um_add_user_reference needs a table and its column of user ids'
      USING ERRCODE = 'UM080', HINT = 'For example: SELECT um_add_user_reference(''invoices'', ''created_by'');';
  END IF;
  IF (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = tbl) NOT IN ('r', 'p')
     OR (SELECT c.relpersistence FROM pg_catalog.pg_class c WHERE c.oid = tbl) = 't' THEN
    RAISE EXCEPTION '% is not a permanent table', tbl
      USING ERRCODE = 'UM080', HINT = 'Register the column of a regular or partitioned table.';
  END IF;
  IF NOT pg_has_role(current_user, (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = tbl), 'USAGE') THEN
    RAISE EXCEPTION 'must be the owner of table % to register its references', tbl
      USING ERRCODE = 'insufficient_privilege', HINT = 'Run it as the table''s owner (or a member of the owning role).';
  END IF;
  PERFORM um.check_column(tbl, user_column, 'user');
  -- (PostgreSQL checks the caller's right to create the trigger)
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t WHERE t.tgrelid = tbl AND t.tgname = left('um_user_ref_' || user_column, 63)) THEN
    EXECUTE format('DROP TRIGGER %I ON %s', left('um_user_ref_' || user_column, 63), tbl);
  END IF;
  EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OF %I ON %s FOR EACH ROW EXECUTE FUNCTION um.user_reference_check(%L)',
                 left('um_user_ref_' || user_column, 63), user_column, tbl, user_column);
  FOR v_rel IN SELECT t FROM um.protection_tree(tbl) t LOOP
    IF (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = v_rel) = 'r' THEN
      PERFORM um.user_reference_validate(v_rel, user_column);
    END IF;
  END LOOP;
END
$$;
COMMENT ON FUNCTION @extschema@.um_add_user_reference(regclass, name) IS
  'register a bigint column of user ids, as a foreign key into um.users would: new and changed values must be users'' ids, existing ones are checked now, and account deletion is refused while a row holds the user (UM052); idempotent';

CREATE FUNCTION @extschema@.um_drop_user_reference(tbl regclass, user_column name)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                  WHERE t.tgrelid = tbl AND t.tgname = left('um_user_ref_' || user_column, 63)
                    AND t.tgfoid = 'um.user_reference_check()'::pg_catalog.regprocedure) THEN
    RETURN false;
  END IF;
  EXECUTE format('DROP TRIGGER %I ON %s', left('um_user_ref_' || user_column, 63), tbl);
  RETURN true;
END
$$;
COMMENT ON FUNCTION @extschema@.um_drop_user_reference(regclass, name) IS
  'stop treating a column as a reference to um''s users; returns whether it was registered';
