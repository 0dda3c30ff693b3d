-- pg_dump keeps the rows of these tables (and the state of their id
-- sequences): they hold user data, not objects the extension script makes.
-- Built-in permissions are made by this script, so only the application's are dumped.
-- The tables are those of um.state_tables with a dump_filter.
DO $$
DECLARE
  t record;
  seq text;
BEGIN
  FOR t IN SELECT s.relname, s.dump_filter FROM um.state_tables s WHERE s.dump_filter IS NOT NULL ORDER BY s.relname LOOP
    -- one call per statement: each call updates pg_extension's row
    PERFORM pg_catalog.pg_extension_config_dump(format('um.%I', t.relname)::regclass, t.dump_filter);
    FOR seq IN SELECT pg_catalog.pg_get_serial_sequence(format('um.%I', t.relname), a.attname)
                 FROM pg_catalog.pg_attribute a
                WHERE a.attrelid = format('um.%I', t.relname)::regclass AND a.attidentity <> '' AND NOT a.attisdropped LOOP
      PERFORM pg_catalog.pg_extension_config_dump(seq::regclass, '');
    END LOOP;
  END LOOP;
END
$$;
