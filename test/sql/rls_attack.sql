-- An application role acting as a user of acme (organization 1) tries to
-- read or change globex's rows (organization 2) of a protected table through
-- COPY, a leaky function and EXPLAIN ANALYZE.  (test/pgtap/90_rls.sql has
-- the other attacks; this file shows what psql prints.)
\set VERBOSITY terse
SET client_min_messages = warning;
CREATE EXTENSION um CASCADE;
SELECT um_create_user('erin@example.com') AS erin, um_create_user('gina@example.com') AS gina \gset
SELECT um_create_organization('acme', 'Acme', :erin) AS acme, um_create_organization('globex', 'Globex', :gina) AS globex \gset
CREATE TABLE invoices (id bigint PRIMARY KEY, org_id bigint NOT NULL, amount numeric NOT NULL);
CREATE INDEX ON invoices (org_id);
INSERT INTO invoices SELECT g, CASE WHEN g % 100 < 2 THEN :acme ELSE :globex END, g FROM generate_series(1, 2000) g;
ANALYZE invoices;
SELECT um_protect_table('invoices', 'org_id', 'invoice');
-- Root has every permission of a resource only when granted; give Roots invoice:*
INSERT INTO um.role_permissions (org_id, role_id, permission) SELECT org_id, id, 'invoice:*' FROM um.roles WHERE builtin = 'root';
CREATE ROLE regress_um_attacker;
GRANT SELECT, INSERT, UPDATE, DELETE ON invoices TO regress_um_attacker;
GRANT EXECUTE ON FUNCTION um_act_as(bigint) TO regress_um_attacker;
RESET client_min_messages;

SET ROLE regress_um_attacker;
BEGIN;
SELECT um_act_as(:erin);
-- COPY out: only acme's rows (40 of 2,000)
COPY (SELECT count(*), min(org_id), max(org_id) FROM invoices) TO STDOUT;
COPY (SELECT * FROM invoices WHERE org_id = :globex) TO STDOUT;
SELECT count(*) FROM invoices WHERE org_id = :globex;
-- COPY in is refused on a table whose policies apply to the caller
COPY invoices FROM STDIN;
5000	2	1
\.
ROLLBACK;

BEGIN;
SELECT um_act_as(:erin);
-- a leaky function in WHERE: it runs after the policy, so it reports acme's rows only
CREATE FUNCTION pg_temp.leak(bigint, bigint) RETURNS boolean LANGUAGE plpgsql COST 0.0001 AS
  $$ BEGIN IF $2 <> 1 THEN RAISE NOTICE 'leaked invoice % of organization %', $1, $2; END IF; RETURN true; END $$;
SELECT count(*) FROM invoices WHERE pg_temp.leak(id, org_id);
-- EXPLAIN ANALYZE: the policy became an exact index condition; only acme's rows are ever fetched
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT sum(amount) FROM invoices;
-- forcing a sequential scan shows how many rows the policy removed: a count,
-- never their contents, and the same figure the statistics give anyone
SET LOCAL enable_indexscan = off;
SET LOCAL enable_bitmapscan = off;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT sum(amount) FROM invoices;
SELECT reltuples FROM pg_class WHERE relname = 'invoices';
ROLLBACK;
RESET ROLE;

DROP TABLE invoices;
DROP OWNED BY regress_um_attacker;
DROP ROLE regress_um_attacker;
DROP EXTENSION um;
