-- pg_dump keeps the rows of these tables (and the state of their id
-- sequences): they hold user data, not objects the extension script makes.
-- Built-in permissions are made by this script, so only the application's are dumped.
SELECT pg_catalog.pg_extension_config_dump('um.organizations', '');
SELECT pg_catalog.pg_extension_config_dump('um.users', '');
SELECT pg_catalog.pg_extension_config_dump('um.roles', '');
SELECT pg_catalog.pg_extension_config_dump('um.role_inclusions', '');
SELECT pg_catalog.pg_extension_config_dump('um.permissions', 'WHERE NOT builtin');
SELECT pg_catalog.pg_extension_config_dump('um.role_permissions', '');
SELECT pg_catalog.pg_extension_config_dump('um.scopes', '');
SELECT pg_catalog.pg_extension_config_dump('um.memberships', '');
SELECT pg_catalog.pg_extension_config_dump('um.teams', '');
SELECT pg_catalog.pg_extension_config_dump('um.team_members', '');
SELECT pg_catalog.pg_extension_config_dump('um.team_member_roles', '');
SELECT pg_catalog.pg_extension_config_dump('um.grants', '');
SELECT pg_catalog.pg_extension_config_dump('um.invitations', '');
SELECT pg_catalog.pg_extension_config_dump('um.sessions', '');
SELECT pg_catalog.pg_extension_config_dump('um.identity_providers', '');
SELECT pg_catalog.pg_extension_config_dump('um.user_identities', '');
SELECT pg_catalog.pg_extension_config_dump('um.audit_events', '');
SELECT pg_catalog.pg_extension_config_dump('um.verification_tokens', '');

-- and their id sequences (one call per statement: each call updates pg_extension)
SELECT pg_catalog.pg_extension_config_dump('um.organizations_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('um.users_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('um.roles_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('um.scopes_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('um.memberships_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('um.teams_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('um.grants_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('um.invitations_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('um.sessions_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('um.identity_providers_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('um.audit_events_id_seq', '');
