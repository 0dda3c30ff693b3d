-- The natural per-row policy uses the tenant index: um_has_permission()'s
-- planner support function turns it into org_id = ANY (um_permitted_orgs(...)),
-- evaluated once per execution, so one prepared plan serves every acting user.
\set VERBOSITY terse
SET client_min_messages = warning;
SET client_min_messages = warning;   -- CASCADE's notice depends on whether pgcrypto is already there
CREATE EXTENSION um CASCADE;
RESET client_min_messages;
SELECT um_create_user(format('user%s@example.com', g)) FROM generate_series(1, 3) g \gset
SELECT um_create_organization(format('org-%s', g), format('Org %s', g), 1) FROM generate_series(1, 50) g \gset
SELECT um_register_permission('invoice:read') \gset
INSERT INTO um.roles (org_id, name) SELECT id, 'Clerk' FROM um.organizations;
INSERT INTO um.role_permissions (org_id, role_id, permission) SELECT org_id, id, 'invoice:read' FROM um.roles WHERE name = 'Clerk';
-- user 2 reads invoices in org 7; user 3 in orgs 7 and 9 (and is a plain member of 11)
SELECT um_add_member(7, 2, 'Clerk'), um_add_member(7, 3, 'Clerk'), um_add_member(9, 3, 'Clerk'), um_add_member(11, 3, 'Member') \gset
CREATE TABLE invoices (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, org_id bigint NOT NULL, amount numeric NOT NULL);
CREATE INDEX invoices_org_id_idx ON invoices (org_id);
INSERT INTO invoices (org_id, amount) SELECT 1 + g % 50, g % 100 FROM generate_series(1, 20000) g;
ANALYZE invoices;
ALTER TABLE invoices ENABLE ROW LEVEL SECURITY;
CREATE POLICY invoices_read ON invoices FOR SELECT USING (um_has_permission('invoice:read', org_id));
CREATE ROLE regress_um_reader;
GRANT SELECT ON invoices TO regress_um_reader;
GRANT EXECUTE ON FUNCTION um_act_as(bigint) TO regress_um_reader;
RESET client_min_messages;

SET ROLE regress_um_reader;
SET plan_cache_mode = force_generic_plan;
PREPARE report AS SELECT count(*), sum(amount) FROM invoices;

BEGIN;
SELECT um_act_as(2);
EXPLAIN (COSTS OFF) EXECUTE report;
EXECUTE report;
COMMIT;

BEGIN;
SELECT um_act_as(3);
EXPLAIN (COSTS OFF) EXECUTE report;
EXECUTE report;
COMMIT;

-- nobody acting: nothing
EXECUTE report;

-- the same without a policy, as a hand-written filter
RESET ROLE;
BEGIN;
SELECT um_act_as(3);
EXPLAIN (COSTS OFF) SELECT count(*) FROM invoices WHERE um_has_permission('invoice:read', org_id);
SELECT count(*) FROM invoices WHERE um_has_permission('invoice:read', org_id);
-- and for a given user
EXPLAIN (COSTS OFF) SELECT count(*) FROM invoices WHERE um_has_permission(3::bigint, 'invoice:read', org_id);
-- a per-row user argument cannot become an index condition: the check runs on every row
EXPLAIN (COSTS OFF) SELECT count(*) FROM invoices i WHERE um_has_permission(i.id, 'invoice:read', org_id);
COMMIT;

DEALLOCATE report;
DROP TABLE invoices;
DROP OWNED BY regress_um_reader;
DROP ROLE regress_um_reader;
DROP EXTENSION um;
