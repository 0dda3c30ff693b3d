-- um: multi-tenant user management enforced by PostgreSQL.
--
-- This install script is assembled by the Makefile from sql/install/*.sql,
-- in file-name order.  Tables live in schema "um"; the functions meant for
-- applications and administrators are named um_* and live in the schema the
-- extension is created in (public by default), so that a policy reads
-- um_has_permission('invoice:read', org_id).  Internal functions (lifecycle
-- bodies, helpers, triggers) live in "um_internal", so that \df and \dx+
-- tell them apart from the API; nobody but um's owner may call them.
--
-- Every function pins its search_path and names what it uses with a schema,
-- so a caller's search_path can never substitute an object of its own.

\echo Use "CREATE EXTENSION um" to load this file. \quit

CREATE SCHEMA um;
COMMENT ON SCHEMA um IS 'um: users, organizations, memberships, teams, roles, scopes, grants, invitations, sessions and audit events';
REVOKE ALL ON SCHEMA um FROM PUBLIC;
CREATE SCHEMA um_internal;
COMMENT ON SCHEMA um_internal IS 'um''s internal functions (lifecycle bodies, helpers, trigger functions): not an interface, called only by um itself; applications use the um_* functions';
REVOKE ALL ON SCHEMA um_internal FROM PUBLIC;
