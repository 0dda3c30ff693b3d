-- Row-level security: um_protect_table(), and an application role acting as
-- a user of acme (organization A) that tries to reach globex's rows (B).
-- The fixture is committed first: impersonations are recorded by the audit
-- writer, a background worker that sees only committed tables.  The rest
-- runs in one transaction (so the acting user lasts), committed at the end;
-- the roles it made are dropped.
\ir fixture.psql
BEGIN;
SELECT plan(93);
CREATE FUNCTION pg_temp.explain_lines(q text) RETURNS SETOF text LANGUAGE plpgsql AS
  $$ DECLARE l text; BEGIN FOR l IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP RETURN NEXT l; END LOOP; END $$;

SELECT um_create_user('erin@example.com', 'Erin') AS erin, um_create_user('frank@example.com', 'Frank') AS frank \gset
SELECT pg_temp.org('acme') AS acme, pg_temp.org('globex') AS globex, pg_temp.usr('dave') AS dave,
       pg_temp.usr('carol') AS carol \gset
SELECT um_add_member(:acme, :erin) AS m1, um_add_member(:globex, :frank) AS m2 \gset
-- Invoice Clerk: read, create, update (not delete) invoices; erin holds it in acme, frank in globex
INSERT INTO um.permissions (name) VALUES ('invoice:read'), ('invoice:create'), ('invoice:update'), ('invoice:delete');
INSERT INTO um.roles (org_id, name) VALUES (:acme, 'Invoice Clerk'), (:globex, 'Invoice Clerk');
INSERT INTO um.role_permissions (org_id, role_id, permission)
  SELECT r.org_id, r.id, p FROM um.roles r, unnest(ARRAY['invoice:read', 'invoice:create', 'invoice:update']) p
   WHERE r.name = 'Invoice Clerk';
INSERT INTO um.grants (org_id, role_id, user_id) VALUES
  (:acme, pg_temp.role('acme', 'Invoice Clerk'), :erin), (:globex, pg_temp.role('globex', 'Invoice Clerk'), :frank),
  (:acme, pg_temp.role('acme', 'Invoice Clerk'), :carol);
-- Invoice Reader: dave, in acme
INSERT INTO um.roles (org_id, name) VALUES (:acme, 'Invoice Reader');
INSERT INTO um.role_permissions (org_id, role_id, permission) VALUES (:acme, pg_temp.role('acme', 'Invoice Reader'), 'invoice:read');
INSERT INTO um.grants (org_id, role_id, user_id) VALUES (:acme, pg_temp.role('acme', 'Invoice Reader'), :dave);

-- the application: its own schema and role, names that need quoting
CREATE ROLE regress_um_owner NOLOGIN;
CREATE ROLE regress_um_app NOLOGIN;
GRANT regress_um_app TO regress_um_owner;
GRANT EXECUTE ON FUNCTION um_act_as(bigint) TO regress_um_app;
CREATE SCHEMA "Billing Dept" AUTHORIZATION regress_um_owner;
GRANT USAGE ON SCHEMA "Billing Dept" TO regress_um_app;
SET ROLE regress_um_owner;
CREATE TABLE "Billing Dept"."Invoices 2026" (
  id bigint PRIMARY KEY, "Org Id" bigint NOT NULL, amount numeric NOT NULL, note text,
  UNIQUE ("Org Id", id));
CREATE INDEX ON "Billing Dept"."Invoices 2026" ("Org Id");
INSERT INTO "Billing Dept"."Invoices 2026" SELECT g, CASE WHEN g % 3 = 0 THEN :globex ELSE :acme END, g, 'n' || g
  FROM generate_series(1, 300) g;
-- lines reference invoices with the organization in the key: no cross-tenant reference can exist
CREATE TABLE "Billing Dept".lines (org_id bigint NOT NULL, invoice_id bigint NOT NULL, qty int,
  FOREIGN KEY (org_id, invoice_id) REFERENCES "Billing Dept"."Invoices 2026" ("Org Id", id));
CREATE TABLE "Billing Dept".narrow (org_id integer, x int);
CREATE VIEW "Billing Dept".totals AS SELECT "Org Id", sum(amount) AS total FROM "Billing Dept"."Invoices 2026" GROUP BY 1;
CREATE TABLE "Billing Dept".events (org_id bigint NOT NULL, at date NOT NULL, what text) PARTITION BY RANGE (at);
CREATE TABLE "Billing Dept".events_2025 PARTITION OF "Billing Dept".events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE "Billing Dept".events_2026 PARTITION OF "Billing Dept".events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO "Billing Dept".events VALUES (:acme, '2025-06-01', 'a'), (:globex, '2025-07-01', 'b'), (:acme, '2026-02-01', 'c'), (:globex, '2026-03-01', 'd');
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "Billing Dept" TO regress_um_app;
RESET ROLE;

-- 1. um_protect_table
SET ROLE regress_um_app;
SELECT throws_ok($$ SELECT um_protect_table('"Billing Dept"."Invoices 2026"', 'Org Id', 'invoice') $$, '42501', NULL,
                 'only the table''s owner may protect it');
RESET ROLE;
SET ROLE regress_um_owner;
SELECT lives_ok($$ SELECT um_protect_table('"Billing Dept"."Invoices 2026"', 'Org Id', 'invoice') $$,
                'the owner protects a table in any schema, with any quoting, in one call');
SELECT lives_ok($$ SELECT um_protect_table('"Billing Dept"."Invoices 2026"', 'Org Id', 'invoice') $$, 'twice: idempotent');
SELECT throws_ok($$ SELECT um_protect_table('"Billing Dept".lines', 'org', 'line') $$, 'UM080', NULL, 'an unknown column (UM080)');
SELECT throws_ok($$ SELECT um_protect_table('"Billing Dept".narrow', 'org_id', 'narrow') $$, 'UM080', NULL,
                 'an integer organization column (UM080: it would need a cast, which defeats the index)');
SELECT throws_ok($$ SELECT um_protect_table('"Billing Dept".totals', 'Org Id', 'invoice') $$, 'UM080', NULL, 'a view (UM080)');
SELECT throws_ok($$ SELECT um_protect_table('"Billing Dept".lines', 'org_id', 'Line Items') $$, 'UM010', NULL,
                 'an invalid resource name (UM010)');
SELECT lives_ok($$ SELECT um_protect_table('"Billing Dept".lines', 'org_id', 'invoice') $$, 'lines are protected as invoices');
SELECT throws_ok($$ SELECT um_protect_table('"Billing Dept".events', 'org_id', 'event') $$, 'UM011', NULL,
                 'a table owner who is no um administrator cannot grow the global catalog with a new resource (UM011)');
SELECT is((SELECT count(*) FROM pg_policy WHERE polrelid = '"Billing Dept".events'::regclass), 0::bigint, 'and nothing changed');
RESET ROLE;
SELECT lives_ok($$ SELECT um_protect_table('"Billing Dept".events', 'org_id', 'event') $$,
                'a partitioned table, protected with a new resource by a um administrator');
SELECT is((SELECT ARRAY[relrowsecurity, relforcerowsecurity] FROM pg_class WHERE oid = '"Billing Dept"."Invoices 2026"'::regclass),
          ARRAY[true, true], 'RLS is enabled and forced (the owner is filtered too)');
SELECT is((SELECT array_agg(polname::text || ':' || polcmd::text ORDER BY polname) FROM pg_policy WHERE polrelid = '"Billing Dept"."Invoices 2026"'::regclass),
          ARRAY['um_create:a', 'um_delete:d', 'um_read:r', 'um_update:w'], 'four policies, one per command, after two calls');
SELECT is((SELECT count(*) FROM pg_policy WHERE polrelid IN ('"Billing Dept".events_2025'::regclass, '"Billing Dept".events_2026'::regclass)),
          8::bigint, 'the partitions get the policies too');
SELECT is((SELECT count(*) FROM um.audit_events WHERE action = 'table.protect' AND details->>'resource' = 'invoice'), 2::bigint,
          'each table''s protection is audited once: the idempotent second call changed nothing and wrote nothing');
SELECT is((SELECT count(*) FROM um.permissions WHERE name LIKE 'event:%'), 4::bigint, 'and the resource''s permissions are registered');
INSERT INTO um.role_permissions (org_id, role_id, permission) VALUES (:acme, pg_temp.role('acme', 'Invoice Clerk'), 'event:read');
-- the owner is filtered too (FORCE), and a superuser is not
SET ROLE regress_um_owner;
SELECT is((SELECT count(*) FROM "Billing Dept"."Invoices 2026"), 0::bigint, 'the table owner, with nobody acting, sees nothing');
RESET ROLE;
SELECT is((SELECT count(*) FROM "Billing Dept"."Invoices 2026"), 300::bigint, 'a superuser sees everything (as with any RLS)');
SELECT is((SELECT pg_get_expr(polqual, polrelid) FROM pg_policy WHERE polrelid = '"Billing Dept"."Invoices 2026"'::regclass AND polname = 'um_read'),
          '("Org Id" = ANY (um_permitted_orgs(''invoice:read''::text)))',
          'the read policy: the organizations where the acting user may read (an index condition)');
SELECT ok((SELECT polwithcheck IS NOT NULL AND polqual IS NOT NULL FROM pg_policy
            WHERE polrelid = '"Billing Dept"."Invoices 2026"'::regclass AND polname = 'um_update'), 'UPDATE checks old and new rows');

-- 2. behaviour, as the application acting for erin (acme)
SET ROLE regress_um_app;
SELECT is((SELECT count(*) FROM "Billing Dept"."Invoices 2026"), 0::bigint, 'nobody acting: no rows');
SELECT throws_ok($$ INSERT INTO "Billing Dept"."Invoices 2026" VALUES (1001, 1, 1) $$, '42501', NULL, 'and no inserts');
SELECT um_act_as(:erin) AS a \gset
SELECT is((SELECT count(*) FROM "Billing Dept"."Invoices 2026"), 200::bigint, 'erin sees acme''s 200 invoices ...');
SELECT is((SELECT count(*) FROM "Billing Dept"."Invoices 2026" WHERE "Org Id" = :globex), 0::bigint, '... and none of globex''s, even asked directly');
SELECT lives_ok(format($$ INSERT INTO "Billing Dept"."Invoices 2026" VALUES (1001, %s, 10) $$, :acme), 'she creates invoices in acme');
SELECT throws_ok(format($$ INSERT INTO "Billing Dept"."Invoices 2026" VALUES (1002, %s, 10) $$, :globex), '42501', NULL,
                 'but not in globex');
SELECT throws_ok(format($$ UPDATE "Billing Dept"."Invoices 2026" SET "Org Id" = %s WHERE id = 1 $$, :globex), '42501', NULL,
                 'nor can she move an invoice into globex');
SELECT is((SELECT count(*) FROM (SELECT 1 FROM "Billing Dept"."Invoices 2026" WHERE id = 3) x), 0::bigint, 'invoice 3 (globex) is invisible');
UPDATE "Billing Dept"."Invoices 2026" SET note = 'mine' WHERE id = 3;
DELETE FROM "Billing Dept"."Invoices 2026" WHERE id IN (1, 3);
RESET ROLE;
SELECT is((SELECT note FROM "Billing Dept"."Invoices 2026" WHERE id = 3), 'n3', 'her UPDATE of a globex invoice changed nothing');
SELECT is((SELECT count(*) FROM "Billing Dept"."Invoices 2026" WHERE id IN (1, 3)), 2::bigint,
          'her DELETE changed nothing (she lacks invoice:delete; globex''s is invisible)');
SET ROLE regress_um_app;
SELECT um_act_as(:erin) AS a \gset
WITH x AS (SELECT * FROM "Billing Dept"."Invoices 2026")
SELECT is((SELECT count(*) FROM x WHERE "Org Id" = :globex), 0::bigint, 'a CTE sees no more');
SELECT is((SELECT sum(total) FROM "Billing Dept".totals WHERE "Org Id" = :globex), NULL, 'nor does a view (its owner is filtered too: FORCE)');
SELECT is((SELECT count(*) FROM "Billing Dept".events), 2::bigint, 'a partitioned table shows acme''s events');
SELECT is((SELECT count(*) FROM "Billing Dept".events_2025), 1::bigint, 'and so does a partition named directly');
SELECT throws_ok(format($$ INSERT INTO "Billing Dept".lines VALUES (%s, 3, 1) $$, :acme), '23503', NULL,
                 'a line in acme cannot reference globex''s invoice 3: the key includes the organization ...');
SELECT throws_ok(format($$ INSERT INTO "Billing Dept".lines VALUES (%s, 999999, 1) $$, :acme), '23503', NULL,
                 '... and the error is the one for a missing invoice: the probe learns nothing');
SELECT throws_ok(format($$ INSERT INTO "Billing Dept".lines VALUES (%s, 3, 1) $$, :globex), '42501', NULL,
                 'a line in globex is refused by the policy');
-- a leaky function sees only the rows the policy passes (um_has_permission is not LEAKPROOF, so it runs first)
CREATE TEMP TABLE seen (id bigint);
CREATE FUNCTION pg_temp.leak(bigint) RETURNS boolean LANGUAGE plpgsql COST 0.0001 AS
  $$ BEGIN INSERT INTO seen VALUES ($1); RETURN true; END $$;
SELECT count(*) AS n FROM "Billing Dept"."Invoices 2026" WHERE pg_temp.leak(id) \gset
SELECT is((SELECT count(*) FROM seen s WHERE s.id % 3 = 0 AND s.id <= 300), 0::bigint,
          'a cheap leaky function in WHERE never sees a globex row');
-- shadowing um's function through search_path: policies are stored resolved, not as text
CREATE FUNCTION pg_temp.um_has_permission(text, bigint) RETURNS boolean LANGUAGE sql AS 'SELECT true';
SET LOCAL search_path = pg_temp, "Billing Dept", public;
SELECT is((SELECT count(*) FROM "Invoices 2026" WHERE "Org Id" = :globex), 0::bigint, 'a rogue um_has_permission on the search_path changes nothing');
RESET search_path;
SELECT throws_ok($$ SELECT um_unprotect_table('"Billing Dept"."Invoices 2026"') $$, '42501', NULL,
                 'the application cannot unprotect the table');
SELECT throws_ok($$ ALTER TABLE "Billing Dept"."Invoices 2026" DISABLE ROW LEVEL SECURITY $$, '42501', NULL, 'nor turn RLS off');
SELECT throws_ok($$ SELECT um_protect_table('"Billing Dept"."Invoices 2026"', 'Org Id', 'x'', ''1''); --') $$, '42501', NULL,
                 'nor re-protect it with a crafted resource');
RESET ROLE;

-- 3. impersonation reaches protected tables
SET ROLE regress_um_app;
SELECT um_act_as(:carol) AS a \gset
SELECT is(um_impersonate(:dave), ARRAY[:acme]::bigint[], 'carol (Admin, Invoice Clerk) impersonates dave (Invoice Reader)');
SELECT is((SELECT count(*) FROM "Billing Dept"."Invoices 2026"), 201::bigint, 'she sees what dave sees');
UPDATE "Billing Dept"."Invoices 2026" SET note = 'as dave' WHERE id = 2;
SELECT um_end_impersonation() AS e \gset
UPDATE "Billing Dept"."Invoices 2026" SET note = 'as carol' WHERE id = 4;
RESET ROLE;
SELECT is((SELECT array_agg(note ORDER BY id) FROM "Billing Dept"."Invoices 2026" WHERE id IN (2, 4)), ARRAY['n2', 'as carol'],
          'and may do only what dave may (no invoice:update): her update as dave changed nothing, as herself it did');
SET ROLE regress_um_app;
RESET ROLE;

-- 4. parallel queries: workers know who is acting
SET LOCAL parallel_setup_cost = 0;
SET LOCAL parallel_tuple_cost = 0;
SET LOCAL min_parallel_table_scan_size = 0;
SET LOCAL max_parallel_workers_per_gather = 2;
SET ROLE regress_um_owner;
CREATE TABLE "Billing Dept".big (id bigint, org_id bigint NOT NULL);
INSERT INTO "Billing Dept".big SELECT g, CASE WHEN g % 4 = 0 THEN :globex ELSE :acme END FROM generate_series(1, 100000) g;
ANALYZE "Billing Dept".big;
SELECT um_protect_table('"Billing Dept".big', 'org_id', 'invoice') AS p \gset
GRANT SELECT ON "Billing Dept".big TO regress_um_app;
RESET ROLE;
SET ROLE regress_um_app;
SELECT um_act_as(:erin) AS a \gset
SELECT ok((SELECT bool_or(l ~ 'Gather') FROM (SELECT * FROM pg_temp.explain_lines('SELECT count(*) FROM "Billing Dept".big')) e(l)),
          'the protected scan runs in parallel workers');
SELECT is((SELECT count(*) FROM "Billing Dept".big), 75000::bigint, 'and counts exactly erin''s rows');
SELECT um_act_as(:frank) AS a \gset
SELECT is((SELECT count(*) FROM "Billing Dept".big), 25000::bigint, 'then frank''s, in the same transaction');
SELECT um_act_as(:carol) AS a \gset
SELECT um_impersonate(:dave) AS i \gset
SELECT is((SELECT count(*) FROM "Billing Dept".big), 75000::bigint, 'an impersonation reaches the workers too');
SELECT um_end_impersonation() AS e \gset
SELECT um_act_as(:erin) AS a \gset
SAVEPOINT s;
SELECT um_act_as(:frank) AS a \gset
ROLLBACK TO SAVEPOINT s;
SELECT is((SELECT count(*) FROM "Billing Dept".big), 75000::bigint,
          'a change of identity rolled back with a savepoint is rolled back in the workers too');
SELECT throws_ok($$ SET um.acting_identity = '1' $$, '42501', NULL,
                 'the setting that carries the identity to workers cannot be SET ...');
SELECT throws_ok($$ SELECT set_config('um.acting_identity', '1', true) $$, '42501', NULL, '... nor set_config()');
SELECT throws_ok($$ CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql SET um.acting_identity = '1' AS 'SELECT 1' $$, '42501', NULL,
                 '... nor be a function''s SET clause');
RESET ROLE;
SELECT throws_ok($$ SET um.acting_identity = '1' $$, '42501', NULL, '... not even by a superuser');
SELECT throws_ok($$ ALTER ROLE regress_um_app SET um.acting_identity = '1' $$, '42501', NULL, 'nor stored with ALTER ROLE');

-- 5. um_unprotect_table
SET ROLE regress_um_owner;
SELECT is(um_unprotect_table('"Billing Dept".events'), true, 'um_unprotect_table removes the protection');
SELECT is(um_unprotect_table('"Billing Dept".events'), false, 'and says when there was none');
SELECT is(um_unprotect_table('"Billing Dept".big', disable_rls => true), true, 'a plain table too');
RESET ROLE;
SELECT is((SELECT count(*) FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid WHERE c.relname LIKE 'events%'), 0::bigint,
          'from the partitions too');
SELECT is((SELECT bool_and(relrowsecurity) FROM pg_class WHERE relname LIKE 'events%' AND relnamespace = '"Billing Dept"'::regnamespace),
          true, 'row-level security stays on, denying everything, unless asked otherwise ...');
SELECT is((SELECT relrowsecurity FROM pg_class WHERE oid = '"Billing Dept".big'::regclass), false,
          '... with disable_rls => true');
SELECT is((SELECT count(*) FROM um.audit_events WHERE action IN ('table.protect', 'table.unprotect')), 6::bigint,
          'protecting and unprotecting are audited (each change once; a repeated call that changes nothing is not)');

-- inheritance children are protected with their parent
SET ROLE regress_um_owner;
CREATE TABLE "Billing Dept".notes (org_id bigint NOT NULL, body text);
CREATE TABLE "Billing Dept".notes_archive () INHERITS ("Billing Dept".notes);
SELECT um_protect_table('"Billing Dept".notes', 'org_id', 'invoice') AS p \gset
RESET ROLE;
SELECT is((SELECT count(*) FROM pg_policy WHERE polrelid = '"Billing Dept".notes_archive'::regclass), 4::bigint,
          'an INHERITS child gets the policies too (a query naming it would skip its parent''s)');

-- maintenance code cannot borrow a superuser's identity: mallory's index
-- expression runs as mallory when a superuser ANALYZEs her table
CREATE ROLE regress_um_mallory NOLOGIN;
GRANT USAGE, CREATE ON SCHEMA "Billing Dept" TO regress_um_mallory;
SET ROLE regress_um_mallory;
CREATE TABLE "Billing Dept".trap (x int);
INSERT INTO "Billing Dept".trap VALUES (1);
CREATE FUNCTION "Billing Dept".sneaky(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN RETURN $1; END $$;
CREATE INDEX ON "Billing Dept".trap ("Billing Dept".sneaky(x));
CREATE OR REPLACE FUNCTION "Billing Dept".sneaky(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS
  $$ BEGIN PERFORM public.um_unprotect_table('"Billing Dept"."Invoices 2026"', disable_rls => true); RETURN $1; END $$;
RESET ROLE;
SELECT throws_ok($$ ANALYZE "Billing Dept".trap $$, '42501', NULL,
                 'a superuser''s ANALYZE runs mallory''s index expression as mallory, who may not unprotect others'' tables');
SELECT is((SELECT count(*) FROM pg_policy WHERE polrelid = '"Billing Dept"."Invoices 2026"'::regclass), 4::bigint,
          'the invoices keep their policies');
DROP TABLE "Billing Dept".trap;
DROP FUNCTION "Billing Dept".sneaky(int);


-- 6. um_lint
CREATE TABLE "Billing Dept".open_data (id bigint, org_id bigint);
CREATE TABLE "Billing Dept".half (id bigint, org_id bigint);
ALTER TABLE "Billing Dept".half ENABLE ROW LEVEL SECURITY;
CREATE POLICY own ON "Billing Dept".half USING (um_has_permission('invoice:read', org_id));
CREATE VIEW "Billing Dept".everything AS SELECT * FROM "Billing Dept"."Invoices 2026";
CREATE VIEW "Billing Dept".careful WITH (security_invoker = true) AS SELECT * FROM "Billing Dept"."Invoices 2026";
CREATE MATERIALIZED VIEW "Billing Dept".snapshot AS SELECT * FROM "Billing Dept"."Invoices 2026";
SELECT um_protect_table('"Billing Dept".events', 'org_id', 'event') AS p \gset
CREATE TABLE "Billing Dept".events_2027 (org_id bigint NOT NULL, at date NOT NULL, what text);
ALTER TABLE "Billing Dept".events ATTACH PARTITION "Billing Dept".events_2027 FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');
CREATE ROLE regress_um_bypass LOGIN BYPASSRLS;
CREATE FUNCTION "Billing Dept".unsafe() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1';
CREATE VIEW "Billing Dept".careful_too WITH (security_invoker = 1) AS SELECT * FROM "Billing Dept"."Invoices 2026";
CREATE POLICY open_read ON "Billing Dept".lines FOR SELECT USING (true);
CREATE TABLE "Billing Dept".unindexed (org_id bigint NOT NULL);
SELECT um_protect_table('"Billing Dept".unindexed', 'org_id', 'invoice') AS p \gset
CREATE TABLE "Billing Dept".keyed_by_id (id bigint PRIMARY KEY, org_id bigint NOT NULL, "Ref" text, UNIQUE ("Ref"));
CREATE INDEX ON "Billing Dept".keyed_by_id (org_id);
SELECT um_protect_table('"Billing Dept".keyed_by_id', 'org_id', 'invoice') AS p \gset
CREATE TABLE "Billing Dept".keyed_by_org (org_id bigint NOT NULL, id bigint, PRIMARY KEY (org_id, id),
  vendor_org bigint REFERENCES um.organizations);   -- another column that looks like an organization's
SELECT um_protect_table('"Billing Dept".keyed_by_org', 'org_id', 'invoice') AS p \gset
CREATE TABLE "Billing Dept".unique_index (org_id bigint NOT NULL, email text, PRIMARY KEY (org_id, email));
CREATE UNIQUE INDEX unique_index_lower_email ON "Billing Dept".unique_index (lower(email)) INCLUDE (org_id);   -- included, not a key column
SELECT um_protect_table('"Billing Dept".unique_index', 'org_id', 'invoice') AS p \gset
-- a backend role whose settings log its statements (so the passwords it passes to um_login)
CREATE ROLE regress_um_logger LOGIN;
ALTER ROLE regress_um_logger SET log_statement = 'all';
SELECT format('ALTER ROLE regress_um_logger IN DATABASE %I SET log_min_duration_statement = %L', current_database(), '250ms') \gexec
SELECT format('ALTER ROLE regress_um_logger IN DATABASE %I SET log_parameter_max_length_on_error = 0', current_database()) \gexec
CREATE ROLE regress_um_quiet LOGIN;
CREATE ROLE regress_um_mute NOLOGIN;
ALTER ROLE regress_um_mute SET log_statement = 'all';
CREATE ROLE regress_um_sampled LOGIN;
ALTER ROLE regress_um_sampled SET log_transaction_sample_rate = 0.01;
CREATE TEMP TABLE lint AS SELECT * FROM um_lint();
SELECT is((SELECT severity FROM lint WHERE object = '"Billing Dept".open_data'), 'critical',
          'um_lint: a table with an organization column and no policies is critical');
SELECT ok((SELECT hint FROM lint WHERE object = '"Billing Dept".open_data') LIKE 'SELECT um_protect_table(%',
          '... and the hint is the call that fixes it');
SELECT is((SELECT severity FROM lint WHERE object = '"Billing Dept".half'), 'warning', 'RLS enabled but not forced');
SELECT is((SELECT severity FROM lint WHERE object = '"Billing Dept".everything'), 'critical',
          'a view over a protected table, owned by a superuser, without security_invoker');
SELECT is((SELECT count(*) FROM lint WHERE object IN ('"Billing Dept".careful', '"Billing Dept".careful_too')), 0::bigint,
          'not a security_invoker view, however the option is spelt');
SELECT is((SELECT severity FROM lint WHERE object = '"Billing Dept".lines' AND finding LIKE '%open_read%'), 'critical',
          'another permissive policy beside um''s, which widens it');
SELECT is((SELECT severity FROM lint WHERE object = '"Billing Dept".snapshot'), 'critical', 'a materialized view over a protected table');
SELECT is((SELECT severity FROM lint WHERE object = '"Billing Dept".events_2027'), 'critical',
          'a partition attached after protection, without policies');
SELECT is((SELECT severity FROM lint WHERE object = 'role regress_um_bypass'), 'critical', 'a login role with BYPASSRLS');
SELECT is((SELECT severity FROM lint WHERE object = 'function "Billing Dept".unsafe()'), 'warning',
          'a SECURITY DEFINER function without a pinned search_path');
SELECT is((SELECT severity FROM lint WHERE object = '"Billing Dept".unindexed'), 'info', 'a protected table without an index on its organization column');
SELECT is((SELECT array_agg(severity || ': ' || hint ORDER BY hint) FROM lint WHERE object = '"Billing Dept".keyed_by_id'),
          ARRAY['warning: Lead it with the organization (it then holds within each organization; foreign keys that reference it must be dropped first and re-created on the new key): ALTER TABLE "Billing Dept".keyed_by_id DROP CONSTRAINT "keyed_by_id_Ref_key", ADD UNIQUE (org_id, "Ref");',
                'warning: Lead it with the organization (it then holds within each organization; foreign keys that reference it must be dropped first and re-created on the new key): ALTER TABLE "Billing Dept".keyed_by_id DROP CONSTRAINT keyed_by_id_pkey, ADD PRIMARY KEY (org_id, id);'],
          'a protected table whose primary key and unique constraint leave out the organization (it cannot be sharded by tenant), with the fix');
SELECT ok((SELECT finding FROM lint WHERE object = '"Billing Dept".keyed_by_id' AND hint LIKE '%PRIMARY KEY%') LIKE '%primary key keyed_by_id_pkey does not include%',
          '... saying which key');
SELECT is((SELECT count(*) FROM lint WHERE object = '"Billing Dept".keyed_by_org' AND finding NOT LIKE 'has foreign key %'), 0::bigint,
          'none when the key leads with the column the table is protected on (another organization column aside)');
SELECT is((SELECT severity || ': ' || finding FROM lint WHERE object = '"Billing Dept".keyed_by_org' AND finding LIKE 'has foreign key %'),
          'info: has foreign key keyed_by_org_vendor_org_fkey into um.organizations: um refuses to delete what its rows still reference (UM081)',
          'its foreign key of the same type into um.organizations runs no code of the application''s: information only');
SELECT is((SELECT finding FROM lint WHERE object = '"Billing Dept".unique_index'),
          'is protected on column org_id, which its unique index unique_index_lower_email does not include: a colliding insert or update tells a tenant that another tenant''s row holds the value (unique indexes ignore row-level security), and the table cannot be distributed by organization',
          'a unique index that is not a constraint (here on an expression) counts too');
SELECT ok((SELECT hint FROM lint WHERE object = '"Billing Dept".unique_index') LIKE 'Re-create it with org_id as its first column%CREATE UNIQUE INDEX unique_index_lower_email%lower(email)) INCLUDE (org_id)',
          '... with its definition in the hint');
SELECT is((SELECT array_agg(object || ': ' || finding) FROM lint WHERE object IN ('"Billing Dept"."Invoices 2026"', '"Billing Dept".events')),
          ARRAY['"Billing Dept"."Invoices 2026": is protected on column "Org Id", which its primary key "Invoices 2026_pkey" does not include: a colliding insert or update tells a tenant that another tenant''s row holds the value (unique indexes ignore row-level security), and the table cannot be distributed by organization'],
          'protected tables with an index have no other findings (the quoted organization column is found through the policy)');
SELECT is((SELECT count(*) FROM lint WHERE object LIKE 'function %um%' OR object LIKE 'um.%'), 0::bigint,
          'nor does um itself');
SELECT is((SELECT severity || ': ' || finding FROM lint WHERE object = 'role regress_um_logger'),
          'critical: can log in and call um_login, and its settings log the statements it runs (log_min_duration_statement = 250ms, log_statement = all): the passwords and tokens it passes to um reach the server log',
          'um_lint: a login role whose settings log its statements (its own, and its own in this database) is critical');
SELECT ok((SELECT hint FROM lint WHERE object = 'role regress_um_logger')
            LIKE format('ALTER ROLE regress_um_logger IN DATABASE %I SET log_min_duration_statement = -1; ALTER ROLE regress_um_logger IN DATABASE %I SET log_statement = ''none'';%%',
                        current_database(), current_database()),
          '... with the ALTER ROLE that fixes it (in this database, where it outranks every other setting)');
SELECT is((SELECT finding FROM lint WHERE object = 'role regress_um_sampled') LIKE '%(log_transaction_sample_rate = 0.01)%', true,
          'sampled transactions log every statement too');
SELECT is((SELECT count(*) FROM lint WHERE object IN ('role regress_um_quiet', 'role regress_um_mute')), 0::bigint,
          'not a role at the default settings, nor one that cannot log in');
SELECT string_agg(m[1], E'\n') AS fix FROM lint, regexp_matches(lint.hint, '(ALTER ROLE[^;]*;)', 'g') m
 WHERE lint.object = 'role regress_um_logger' \gset
:fix
SELECT is((SELECT count(*) FROM um_lint() WHERE object = 'role regress_um_logger'), 0::bigint, 'once the hint is run, the finding is gone');
SELECT is((SELECT count(*) FROM lint WHERE object = 'server'),
          CASE WHEN current_setting('shared_preload_libraries') ~ '(^|,)\s*um\s*(,|$)' THEN 0 ELSE 1 END::bigint,
          'um not preloaded is a finding (statements that fail before um loads are logged as they came)');
SELECT set_config('session_preload_libraries', 'um', true) AS s \gset
SELECT is((SELECT count(*) FROM um_lint() WHERE object = 'server'), 0::bigint, '... and none once um is loaded at backend start');
DROP ROLE regress_um_bypass, regress_um_logger, regress_um_quiet, regress_um_mute, regress_um_sampled;
COMMIT;

-- REPEATABLE READ: a parallel plan would check with the transaction's
-- snapshot, older than revocations since; um refuses rather than answer from the past
BEGIN ISOLATION LEVEL REPEATABLE READ;
SET LOCAL enable_indexscan = off;
SET LOCAL enable_bitmapscan = off;
-- run the whole plan in one worker, without the leader (force_parallel_mode; debug_parallel_query from 16)
SELECT set_config(CASE WHEN current_setting('server_version_num')::int >= 160000 THEN 'debug_parallel_query'
                       ELSE 'force_parallel_mode' END, 'on', true) AS p \gset
SET LOCAL ROLE regress_um_app;
SELECT um_act_as(:erin) AS a \gset
-- (run from psql, not inside a function: queries run by functions such as throws_ok are not parallel)
SAVEPOINT parallel;
\set ON_ERROR_STOP 0
SELECT count(*) FROM "Billing Dept"."Invoices 2026";
\set ON_ERROR_STOP 1
ROLLBACK TO SAVEPOINT parallel;
SELECT is(:'LAST_ERROR_SQLSTATE'::text, '0A000',
          'a parallel query under REPEATABLE READ is refused, not answered from the transaction''s snapshot');
SET LOCAL max_parallel_workers_per_gather = 0;
SELECT set_config(CASE WHEN current_setting('server_version_num')::int >= 160000 THEN 'debug_parallel_query'
                       ELSE 'force_parallel_mode' END, 'off', true) AS p \gset
SELECT is((SELECT count(*) FROM "Billing Dept"."Invoices 2026"), 201::bigint, 'the same query without workers answers');
COMMIT;
SELECT * FROM finish();
SET client_min_messages = warning;
DROP SCHEMA "Billing Dept" CASCADE;
DROP OWNED BY regress_um_owner, regress_um_app, regress_um_mallory;
DROP ROLE regress_um_owner, regress_um_app, regress_um_mallory;
