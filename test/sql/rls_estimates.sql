-- The planner costs a protected scan with the organizations the acting user
-- holds the permission in now (src/planner.c), so the protected query gets
-- the plan the same filter written by hand gets, parallel where that one
-- is; the plan still computes the organizations when it runs.
\set VERBOSITY terse
SET client_min_messages = warning;
CREATE EXTENSION um CASCADE;
RESET client_min_messages;
SELECT um_create_user(format('user%s@example.com', g)) FROM generate_series(1, 3) g \gset
SELECT um_create_organization(format('org-%s', g), format('Org %s', g), 1) FROM generate_series(1, 100) g \gset
SELECT um_register_permission('invoice:read') \gset
INSERT INTO um.roles (org_id, name) SELECT id, 'Clerk' FROM um.organizations;
INSERT INTO um.role_permissions (org_id, role_id, permission) SELECT org_id, id, 'invoice:read' FROM um.roles WHERE name = 'Clerk';
-- user 2 reads organizations 1 (most rows) and 50 (few); user 3 reads 7 and 9
SELECT um_add_member(1, 2, 'Clerk'), um_add_member(50, 2, 'Clerk'), um_add_member(7, 3, 'Clerk'), um_add_member(9, 3, 'Clerk') \gset
-- rows stored by organization: 4,000 of 30,000 in organization 1 (a
-- table of at most 30,000 rows: ANALYZE reads every row, so the plans are
-- the same at every run)
CREATE TABLE invoices (id bigint GENERATED ALWAYS AS IDENTITY, org_id bigint NOT NULL, amount numeric NOT NULL);
INSERT INTO invoices (org_id, amount)
  SELECT o, g % 100 FROM (SELECT g, CASE WHEN g <= 4000 THEN 1 ELSE 2 + g % 99 END AS o FROM generate_series(1, 30000) g) s ORDER BY o, g;
CREATE INDEX invoices_org_id_idx ON invoices (org_id, id);
VACUUM ANALYZE invoices;
CREATE ROLE regress_um_est_reader;
GRANT SELECT ON invoices TO regress_um_est_reader;
GRANT EXECUTE ON FUNCTION um_act_as(bigint) TO regress_um_est_reader;
CREATE FUNCTION plan_text(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE line text; result text := '';
BEGIN
  FOR line IN EXECUTE 'EXPLAIN (VERBOSE, COSTS OFF) ' || q LOOP result := result || line || E'\n'; END LOOP;
  RETURN result;
END $$;
GRANT EXECUTE ON FUNCTION plan_text(text) TO regress_um_est_reader;
-- Parallel plans at this size, and only index scans: the question is
-- whether the index scan goes parallel.  PostgreSQL estimates the rows of
-- org_id = ANY (um_permitted_orgs(...)) from the array's value already,
-- but costs the btree scan for 10 elements (estimate_array_length), so the
-- index pages of each of its scans fall under min_parallel_index_scan_size.
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = '8kB';
SET min_parallel_index_scan_size = '32kB';
SET max_parallel_workers_per_gather = 2;
SET enable_seqscan = off;
SET enable_bitmapscan = off;

-- the filter written by hand, without RLS (the table's owner)
EXPLAIN (COSTS OFF) SELECT sum(amount) FROM invoices WHERE org_id IN (1, 50);
SELECT sum(amount) AS by_hand FROM invoices WHERE org_id IN (1, 50);

-- um_protect_table's policy
SELECT um_protect_table('invoices', 'org_id', 'invoice') \gset
SET ROLE regress_um_est_reader;
BEGIN;
SELECT um_act_as(2) \gset
EXPLAIN (COSTS OFF) SELECT sum(amount) FROM invoices;
SELECT sum(amount) AS protected FROM invoices;
-- the organizations are still computed when the plan runs (no constant in it)
SELECT plan_text('SELECT sum(amount) FROM invoices') ~ 'um_permitted_orgs' AS computed_at_run_time,
       plan_text('SELECT sum(amount) FROM invoices') ~ '\{1,50\}' AS constant_in_plan;
-- without the estimate: a serial scan
SET LOCAL um.planner_estimates = off;
EXPLAIN (COSTS OFF) SELECT sum(amount) FROM invoices;
COMMIT;

-- one prepared plan, made for user 2, runs right for user 3 and for nobody
SET plan_cache_mode = force_generic_plan;
BEGIN;
SELECT um_act_as(2) \gset
PREPARE report AS SELECT count(*), sum(amount) FROM invoices;
EXECUTE report;
COMMIT;
BEGIN;
SELECT um_act_as(3) \gset
EXECUTE report;
COMMIT;
EXECUTE report;
DEALLOCATE report;
RESET plan_cache_mode;
-- nobody acting: the planner's own estimate, nothing seen
EXPLAIN (COSTS OFF) SELECT sum(amount) FROM invoices;
SELECT count(*) FROM invoices;
RESET ROLE;

-- the natural per-row policy
SELECT um_unprotect_table('invoices') \gset
ALTER TABLE invoices ENABLE ROW LEVEL SECURITY;
CREATE POLICY read_n ON invoices FOR SELECT USING (um_has_permission('invoice:read', org_id));
SET ROLE regress_um_est_reader;
BEGIN;
SELECT um_act_as(2) \gset
EXPLAIN (COSTS OFF) SELECT sum(amount) FROM invoices;
SELECT sum(amount) AS natural_policy FROM invoices;
COMMIT;
RESET ROLE;
-- and for a given user, written as a filter
EXPLAIN (COSTS OFF) SELECT sum(amount) FROM invoices WHERE um_has_permission(2::bigint, 'invoice:read', org_id);
SELECT sum(amount) AS given_user FROM invoices WHERE um_has_permission(2::bigint, 'invoice:read', org_id);
-- an unknown permission is refused while planning, as before (PostgreSQL
-- evaluates the array for its row estimate)
EXPLAIN (COSTS OFF) SELECT count(*) FROM invoices WHERE org_id = ANY (um_permitted_orgs(2, 'nothing:here'));

-- a role that may not call um_has_permission(user, ...) learns nothing from
-- the plan: the planner looks at nobody's organizations for it (a fresh
-- backend's cache stays without user 2; a row estimate would have told
-- where user 2 reads invoices)
\c
SET ROLE regress_um_est_reader;
SELECT count(*) FROM invoices WHERE um_has_permission(2::bigint, 'invoice:read', org_id);
SELECT users AS users_loaded FROM um_cache_stats();
RESET ROLE;

DROP TABLE invoices;
DROP FUNCTION plan_text(text);
DROP OWNED BY regress_um_est_reader;
DROP ROLE regress_um_est_reader;
DROP EXTENSION um;
