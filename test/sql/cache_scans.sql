-- The cache reads users and organizations by direct index scans, index-only
-- where the index holds every column it reads (visiting the table only for
-- pages not all-visible).  Both paths must see exactly what a query sees:
-- after VACUUM (pages all-visible) and after changes (pages not), across a
-- REINDEX CONCURRENTLY (a new index under the old name) and a column added
-- to a table it reads.
\set VERBOSITY terse
SET client_min_messages = warning;
CREATE EXTENSION um CASCADE;
RESET client_min_messages;
SELECT um_create_user(format('user%s@example.com', g)) FROM generate_series(1, 4) g \gset
SELECT um_create_organization('acme', 'Acme', 1) AS org \gset
SELECT um_register_permission(p) FROM unnest(ARRAY['invoice:read', 'invoice:approve', 'report:read']) p \gset
INSERT INTO um.roles (org_id, name) VALUES (:org, 'Clerk'), (:org, 'Approver'), (:org, 'Nothing') ;
INSERT INTO um.role_permissions (org_id, role_id, permission)
  SELECT :org, id, 'invoice:read' FROM um.roles WHERE name = 'Clerk'
  UNION ALL SELECT :org, id, 'invoice:approve' FROM um.roles WHERE name = 'Approver';
-- Approver includes Clerk
INSERT INTO um.role_inclusions (org_id, role_id, included_role_id)
  SELECT :org, a.id, c.id FROM um.roles a, um.roles c WHERE a.name = 'Approver' AND c.name = 'Clerk';
SELECT um_add_member(:org, 2, 'Clerk'), um_add_member(:org, 3, 'Approver'), um_add_member(:org, 4, 'Nothing') \gset

-- pages all-visible: the role loads read the index alone
VACUUM (FREEZE) um.role_permissions, um.role_inclusions, um.users, um.memberships;
SELECT relname, relallvisible > 0 AS all_visible FROM pg_class
 WHERE oid IN ('um.role_permissions'::regclass, 'um.role_inclusions'::regclass) ORDER BY 1;
SELECT um_cache_reset();
SELECT u, um_has_permission(u, 'invoice:read', :org) AS read, um_has_permission(u, 'invoice:approve', :org) AS approve
  FROM generate_series(2, 4) u ORDER BY u;

-- a revoked permission and a removed inclusion: their index entries stay
-- until VACUUM, their pages are no longer all-visible, and the rows are dead
DELETE FROM um.role_permissions WHERE role_id = (SELECT id FROM um.roles WHERE name = 'Clerk' AND org_id = :org);
SELECT u, um_has_permission(u, 'invoice:read', :org) AS read, um_has_permission(u, 'invoice:approve', :org) AS approve
  FROM generate_series(2, 4) u ORDER BY u;
INSERT INTO um.role_permissions (org_id, role_id, permission)
  SELECT :org, id, 'invoice:read' FROM um.roles WHERE name = 'Clerk';
DELETE FROM um.role_inclusions WHERE org_id = :org;
SELECT u, um_has_permission(u, 'invoice:read', :org) AS read, um_has_permission(u, 'invoice:approve', :org) AS approve
  FROM generate_series(2, 4) u ORDER BY u;
-- the same from a cold cache
SELECT um_cache_reset();
SELECT u, um_has_permission(u, 'invoice:read', :org) AS read, um_has_permission(u, 'invoice:approve', :org) AS approve
  FROM generate_series(2, 4) u ORDER BY u;

-- a suspended membership and a user who may not log in: the user load
UPDATE um.memberships SET status = 'suspended' WHERE user_id = 2;
UPDATE um.users SET allow_login = false WHERE id = 3;
SELECT u, um_has_permission(u, 'invoice:read', :org) AS read, cardinality(um_permitted_orgs(u, 'invoice:read')) AS orgs
  FROM generate_series(2, 4) u ORDER BY u;
UPDATE um.memberships SET status = 'active' WHERE user_id = 2;
UPDATE um.users SET allow_login = true WHERE id = 3;
VACUUM um.memberships, um.users;

-- a new index under the old name, and a column added to a table read
REINDEX INDEX CONCURRENTLY um.role_permissions_pkey;
REINDEX INDEX CONCURRENTLY um.memberships_user_id_idx;
ALTER TABLE um.users ADD COLUMN regress_extra int;
SELECT um_cache_reset();
SELECT u, um_has_permission(u, 'invoice:read', :org) AS read, um_has_permission(u, 'invoice:approve', :org) AS approve
  FROM generate_series(2, 4) u ORDER BY u;
ALTER TABLE um.users DROP COLUMN regress_extra;
SELECT um_has_permission(2, 'invoice:read', :org) AS read_after_drop;
SELECT queries > 0 AS loaded FROM um_cache_stats();
DROP EXTENSION um;
