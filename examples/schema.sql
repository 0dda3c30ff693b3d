-- examples/schema.sql: the example application's migration.
--
-- Run it once, as a um administrator (a superuser here), in a database where
-- um is installed (CREATE EXTENSION um CASCADE), with psql:
--
--     psql -X -v ON_ERROR_STOP=1 -d app -f examples/schema.sql
--
-- It creates the application's two roles, its one table (invoices, one row per
-- invoice of a tenant), protects the table with um's row-level security,
-- says which built-in roles of every organization hold the invoice
-- permissions, and grants the backend exactly what examples/python and
-- examples/node call.  Nothing here writes um's tables: only um's functions.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
BEGIN;

-- The owner of the application's tables (migrations run as it), and the
-- role the backend connects as: neither superuser nor BYPASSRLS, so every
-- policy applies to it.  In production give app_backend a password (or a
-- certificate); the test's throwaway cluster trusts local connections.
CREATE ROLE app_owner NOLOGIN;
CREATE ROLE app_backend LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
CREATE SCHEMA app AUTHORIZATION app_owner;
GRANT USAGE ON SCHEMA app TO app_backend;
-- app_owner registers the column of user ids below as a user reference
GRANT EXECUTE ON FUNCTION um_add_user_reference(regclass, name),
                          um_drop_user_reference(regclass, name) TO app_owner;

SET ROLE app_owner;
CREATE TABLE app.invoices (
  id         bigint GENERATED ALWAYS AS IDENTITY,
  org_id     bigint NOT NULL,              -- the tenant: um's policies check it (bigint, as um's ids)
  customer   text NOT NULL CHECK (length(customer) BETWEEN 1 AND 200),
  amount     numeric(12,2) NOT NULL CHECK (amount >= 0),
  approved   boolean NOT NULL DEFAULT false,
  created_by bigint DEFAULT um_current_user_id(),   -- who wrote it (a user reference, below)
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id)                 -- keys lead with the organization (um_lint checks it)
);
-- No foreign key into um.users: created_by is registered instead, so um
-- checks new values are users and refuses to delete an account whose
-- invoices still name it (UM052).  (A um administrator could add a key of
-- org_id into um.organizations, so that um_delete_organization waits for
-- the invoices; only um's owner holds REFERENCES on um's tables.)
SELECT um_add_user_reference('app.invoices', 'created_by');
GRANT SELECT, INSERT, UPDATE, DELETE ON app.invoices TO app_backend;
RESET ROLE;

-- Row-level security: SELECT, INSERT, UPDATE and DELETE need invoice:read,
-- invoice:create, invoice:update and invoice:delete in the row's
-- organization.  Run by a um administrator, it also registers those four
-- permissions in um's catalog.
SELECT um_protect_table('app.invoices', 'org_id', 'invoice');

-- Which roles hold them, in every organization, existing and future (the
-- role template; Root holds every permission already):
--   Member      reads and writes invoices, changes and deletes none;
--   Accountant  (a built-in role this application adds) also changes and
--               approves them, deletes none;
--   Admin       everything about invoices.
SELECT um_register_permission('invoice:approve', 'Approve invoices', roles => '{admin}');
SELECT um_grant_template_permission('admin', 'invoice:*');
SELECT um_grant_template_permission('member', 'invoice:read');
SELECT um_grant_template_permission('member', 'invoice:create');
SELECT um_set_role_template('accountant', 'Accountant', 'Keeps the books: reads, writes, changes and approves invoices',
                            '{invoice:read,invoice:create,invoice:update,invoice:approve}');

-- The backend's own grants.  Everything else it calls (um_begin, um_login,
-- um_logout, um_verify_email_and_login, um_create_organization, um_invite,
-- um_accept_invitation, um_set_org_role, um_suspend_user,
-- um_reactivate_user, um_impersonate, um_end_impersonation,
-- um_export_my_data, um_delete_my_account, um_my_organizations, ...) is
-- granted to PUBLIC and checks a password, a token or the acting user's
-- permissions itself.  Self-registration and password resets hand out
-- mailbox secrets, so EXECUTE on these three is revoked from PUBLIC and given to the backend:
GRANT EXECUTE ON FUNCTION um_sign_up(text, text, text, text, text),
                          um_resend_verification(text),
                          um_request_password_reset(text) TO app_backend;
-- Not granted: um_act_as (this backend authenticates users with um's
-- session tokens, never by user id) and um_set_password.

COMMIT;

-- What weakens tenant isolation now (a throwaway cluster: expect only the
-- "not preloaded" warning)
SELECT severity, object, finding FROM um_lint();
