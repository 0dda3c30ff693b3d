-- Application columns that hold user ids: um_add_user_reference() instead
-- of a foreign key into um.users (src/reference.c says why: a foreign-key
-- check runs as the owner of the referenced table, with the referencing
-- column's casts).  Nobody but um's owner holds REFERENCES on um's tables.

CREATE FUNCTION um_internal.user_reference_check()
RETURNS trigger
AS 'MODULE_PATHNAME', 'um_user_reference_check'
LANGUAGE C;
COMMENT ON FUNCTION um_internal.user_reference_check() IS
  'trigger of um_add_user_reference(): the new value of the column it names is an existing user''s id (locked FOR KEY SHARE, as a foreign key would)';

CREATE FUNCTION um_internal.user_reference_probe(p_user_id bigint, OUT tbl regclass, OUT col name, OUT unsafe boolean)
RETURNS record
AS 'MODULE_PATHNAME', 'um_user_reference_probe'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION um_internal.user_reference_probe(bigint) IS
  'internal to account deletion: the first registered column (or foreign key into um.users) still holding the user, each table read as its own owner; unsafe: a foreign key whose column is not bigint';

-- Registering takes part in every account deletion: EXECUTE only for the
-- roles the DBA grants it to (as REFERENCES was), e.g.
--   GRANT EXECUTE ON FUNCTION um_add_user_reference(regclass, name), um_drop_user_reference(regclass, name) TO app_owner;
CREATE FUNCTION @extschema@.um_add_user_reference(tbl regclass, user_column name)
RETURNS void
AS 'MODULE_PATHNAME', 'um_add_user_reference'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_add_user_reference(regclass, name) IS
  'register a bigint column of user ids, as a foreign key into um.users would: new and changed values must be users'' ids, existing ones are checked now, and account deletion is refused while a row holds the user (UM052); table owners granted EXECUTE only; idempotent';

CREATE FUNCTION @extschema@.um_drop_user_reference(tbl regclass, user_column name)
RETURNS boolean
AS 'MODULE_PATHNAME', 'um_drop_user_reference'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_drop_user_reference(regclass, name) IS
  'stop treating a column as a reference to um''s users; returns whether it was registered';

REVOKE EXECUTE ON FUNCTION @extschema@.um_add_user_reference(regclass, name),
  @extschema@.um_drop_user_reference(regclass, name) FROM PUBLIC;
