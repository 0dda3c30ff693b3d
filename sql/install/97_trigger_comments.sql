-- A comment on every trigger of um's tables: a trigger not commented where
-- it is made says which function it runs and what that function does (its
-- own comment), so \d+ explains every one.  The cache's triggers
-- (70_evaluator.sql) have comments of their own.
DO $$
DECLARE
  t record;
BEGIN
  FOR t IN SELECT tg.tgname, tg.tgrelid::regclass AS rel, tg.tgfoid::regprocedure AS fn,
                  obj_description(tg.tgfoid, 'pg_proc') AS what
             FROM pg_catalog.pg_trigger tg JOIN pg_catalog.pg_class c ON c.oid = tg.tgrelid
            WHERE c.relnamespace = 'um'::regnamespace AND NOT tg.tgisinternal
              AND obj_description(tg.oid, 'pg_trigger') IS NULL
            ORDER BY 1, 2 LOOP
    EXECUTE format('COMMENT ON TRIGGER %I ON %s IS %L', t.tgname, t.rel,
                   format('runs %s: %s', t.fn, coalesce(t.what, 'see its definition')));
  END LOOP;
END
$$;
