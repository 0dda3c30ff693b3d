BEGIN;
\ir fixture.psql
SELECT plan(31);

INSERT INTO um.roles (org_id, name) VALUES (pg_temp.org('acme'), 'Billing Clerk'), (pg_temp.org('acme'), 'Auditor'),
                                           (pg_temp.org('acme'), 'Lead'), (pg_temp.org('globex'), 'Auditor');

-- built-in roles: not renamable, not deletable
SELECT pg_temp.counts() AS before \gset
SELECT throws_ok($$ DELETE FROM um.roles WHERE id = pg_temp.role('acme', 'admin') $$, 'UM042',
                 'built-in role "Admin" cannot be deleted', 'a built-in role cannot be deleted');
SELECT throws_ok($$ DELETE FROM um.roles WHERE org_id = pg_temp.org('acme') $$, 'UM042', NULL,
                 'nor as part of a bulk delete');
SELECT throws_ok($$ UPDATE um.roles SET name = 'Superuser' WHERE id = pg_temp.role('acme', 'root') $$, 'UM042', NULL,
                 'a built-in role cannot be renamed');
SELECT throws_ok($$ UPDATE um.roles SET builtin = NULL WHERE id = pg_temp.role('acme', 'member') $$, 'UM042', NULL,
                 'a built-in role cannot stop being built-in');
SELECT throws_ok($$ UPDATE um.roles SET builtin = 'admin' WHERE id = pg_temp.role('acme', 'auditor') $$, 'UM042', NULL,
                 'a custom role cannot become built-in');
SELECT throws_ok($$ INSERT INTO um.roles (org_id, name, builtin) VALUES (pg_temp.org('acme'), 'Second Root', 'root') $$, '23505', NULL,
                 'an organization has each built-in role once');
SELECT throws_ok($$ UPDATE um.roles SET org_id = pg_temp.org('globex') WHERE id = pg_temp.role('acme', 'lead') $$, 'UM046', NULL,
                 'a role cannot move to another organization');
SELECT throws_ok($$ INSERT INTO um.roles (org_id, name) VALUES (pg_temp.org('acme'), 'AUDITOR') $$, '23505', NULL,
                 'role names are unique per organization regardless of case');
SELECT throws_ok($$ INSERT INTO um.roles (org_id, name) VALUES (pg_temp.org('acme'), ' Padded') $$, 'UM003', NULL, 'role names are trimmed');
SELECT is(pg_temp.counts(), :'before', 'rejected role changes changed nothing');
SELECT lives_ok($$ UPDATE um.roles SET description = 'Keeps the lights on' WHERE id = pg_temp.role('acme', 'admin') $$,
                'a built-in role''s description can change');
SELECT lives_ok($$ UPDATE um.roles SET name = 'Auditors' WHERE id = pg_temp.role('acme', 'auditor') $$, 'a custom role can be renamed');

-- composite roles: inclusions within one organization, no cycles
SELECT lives_ok($$ INSERT INTO um.role_inclusions (org_id, role_id, included_role_id)
                   VALUES (pg_temp.org('acme'), pg_temp.role('acme', 'lead'), pg_temp.role('acme', 'auditors')),
                          (pg_temp.org('acme'), pg_temp.role('acme', 'auditors'), pg_temp.role('acme', 'billing clerk')),
                          (pg_temp.org('acme'), pg_temp.role('acme', 'lead'), pg_temp.role('acme', 'service_reader')) $$,
                'Lead includes Auditors, which includes Billing Clerk; Lead also includes a built-in role');
SELECT pg_temp.counts() AS before \gset
SELECT throws_ok($$ INSERT INTO um.role_inclusions (org_id, role_id, included_role_id)
                   VALUES (pg_temp.org('acme'), pg_temp.role('acme', 'lead'), pg_temp.role('acme', 'lead')) $$, '23514', NULL,
                 'a role cannot include itself');
SELECT throws_ok($$ INSERT INTO um.role_inclusions (org_id, role_id, included_role_id)
                   VALUES (pg_temp.org('acme'), pg_temp.role('acme', 'auditors'), pg_temp.role('acme', 'lead')) $$, 'UM040',
                 'role "Auditors" cannot include role "Lead": that would make a cycle', 'a two-role cycle is rejected');
SELECT throws_ok($$ INSERT INTO um.role_inclusions (org_id, role_id, included_role_id)
                   VALUES (pg_temp.org('acme'), pg_temp.role('acme', 'billing clerk'), pg_temp.role('acme', 'lead')) $$, 'UM040', NULL,
                 'a three-role cycle is rejected');
SELECT throws_ok($$ UPDATE um.role_inclusions SET included_role_id = pg_temp.role('acme', 'lead')
                    WHERE role_id = pg_temp.role('acme', 'auditors') $$, 'UM040', NULL,
                 'an update cannot close a cycle either');
SELECT throws_ok($$ INSERT INTO um.role_inclusions (org_id, role_id, included_role_id)
                   VALUES (pg_temp.org('acme'), pg_temp.role('acme', 'lead'), pg_temp.role('globex', 'auditor')) $$, '23503', NULL,
                 'a role cannot include another organization''s role');
SELECT throws_ok($$ INSERT INTO um.role_inclusions (org_id, role_id, included_role_id)
                   VALUES (pg_temp.org('globex'), pg_temp.role('acme', 'lead'), pg_temp.role('globex', 'auditor')) $$, '23503', NULL,
                 'not even by lying about the organization');
SELECT is(pg_temp.counts(), :'before', 'rejected inclusions changed nothing');

-- role permissions: names or whole-part wildcards that match the catalog
SELECT um_register_permission('invoice:read', 'Read invoices');
SELECT um_register_permission('invoice:approve');
SELECT pg_temp.counts() AS before \gset
SELECT throws_ok($$ INSERT INTO um.role_permissions (org_id, role_id, permission) VALUES (pg_temp.org('acme'), pg_temp.role('acme', 'lead'), 'invoice:Read') $$,
                 'UM010', NULL, 'capital letters are invalid');
SELECT throws_ok($$ INSERT INTO um.role_permissions (org_id, role_id, permission) VALUES (pg_temp.org('acme'), pg_temp.role('acme', 'lead'), 'invoice:re*') $$,
                 'UM010', NULL, 'a wildcard must be a whole part');
SELECT throws_ok($$ INSERT INTO um.role_permissions (org_id, role_id, permission) VALUES (pg_temp.org('acme'), pg_temp.role('acme', 'lead'), 'invoice:pay') $$,
                 'UM011', 'unknown permission "invoice:pay"', 'a permission outside the catalog is unknown');
SELECT throws_ok($$ INSERT INTO um.role_permissions (org_id, role_id, permission) VALUES (pg_temp.org('acme'), pg_temp.role('acme', 'lead'), 'invoices:*') $$,
                 'UM011', NULL, 'a pattern must match something in the catalog');
SELECT throws_ok($$ INSERT INTO um.role_permissions (org_id, role_id, permission) VALUES (pg_temp.org('globex'), pg_temp.role('acme', 'lead'), 'invoice:read') $$,
                 '23503', NULL, 'a role''s permissions belong to its own organization');
SELECT throws_ok($$ SELECT um_register_permission('Invoice:Read') $$, 'UM010', NULL, 'the catalog only takes valid names');
SELECT throws_ok($$ DELETE FROM um.permissions WHERE name = 'member:invite' $$, 'UM048', NULL, 'built-in permissions stay');
SELECT is(pg_temp.counts(), :'before', 'rejected permissions changed nothing');
SELECT lives_ok($$ INSERT INTO um.role_permissions (org_id, role_id, permission)
                   VALUES (pg_temp.org('acme'), pg_temp.role('acme', 'billing clerk'), 'invoice:*'),
                          (pg_temp.org('acme'), pg_temp.role('acme', 'auditors'), '*:read'),
                          (pg_temp.org('acme'), pg_temp.role('acme', 'lead'), '*') $$,
                'wildcards: a whole resource, an action everywhere, everything');
SELECT lives_ok($$ DELETE FROM um.permissions WHERE name = 'invoice:approve' $$,
                'a permission granted only through wildcards can leave the catalog');
INSERT INTO um.role_permissions (org_id, role_id, permission) VALUES (pg_temp.org('acme'), pg_temp.role('acme', 'member'), 'invoice:read');
SELECT throws_ok($$ DELETE FROM um.permissions WHERE name = 'invoice:read' $$, 'UM048',
                 'permission "invoice:read" is still granted by 1 role(s)', 'a permission granted by name stays until no role grants it');
SELECT * FROM finish();
ROLLBACK;
