-- um 0.2 -> 0.3
--
-- Written by hand.  Every change made in sql/install/ for 0.3 is also made
-- here, so that ALTER EXTENSION um UPDATE from 0.2 gives exactly what a fresh
-- CREATE EXTENSION um gives (test/shell/upgrade.sh walks 0.1 -> 0.2 -> 0.3
-- and compares the result with a fresh install).

\echo Use "ALTER EXTENSION um UPDATE TO '0.3'" to load this file. \quit

-- The comment of um_accept_invitation said an existing user could accept
-- logged out; 0.2 refuses that (UM056).
COMMENT ON FUNCTION @extschema@.um_accept_invitation(text, text, text) IS
  'join with an invitation token: logged out, a new address gets an account with the password given (unverified until its mailbox is proven); an existing account accepts only logged in as itself; returns the user id';

-- The registry of um's tables: what each holds for the rest of um.  The
-- cache's invalidation triggers (70_evaluator.sql), the row-level security
-- of um's own tables (94_own_rls.sql), pg_dump's configuration
-- (99_dump.sql), um_check_integrity() and the tests read it; a table added
-- to um gets its row here and nothing else to remember.
CREATE TABLE um.state_tables (
  relname name PRIMARY KEY,
  access text NOT NULL CONSTRAINT state_tables_access_check CHECK (access IN ('tenant', 'secret', 'catalog')),
  read_rule text,
  readable_columns name[],
  evaluator_input boolean NOT NULL DEFAULT false,
  invalidating_columns name[],
  dump_filter text,
  CONSTRAINT state_tables_rule_check CHECK ((access = 'tenant') = (read_rule IS NOT NULL)),
  CONSTRAINT state_tables_invalidating_check CHECK (invalidating_columns IS NULL OR evaluator_input)
);
COMMENT ON TABLE um.state_tables IS 'the registry of um''s tables, which invalidation triggers, um''s own row-level security, pg_dump''s configuration and the integrity checks are made from (installed by um, not user data)';
COMMENT ON COLUMN um.state_tables.relname IS 'a table in schema um';
COMMENT ON COLUMN um.state_tables.access IS 'tenant: application roles read the rows read_rule allows; secret: um administrators only; catalog: everybody reads it, nobody but um writes it';
COMMENT ON COLUMN um.state_tables.read_rule IS 'for tenant tables, the policy expression of the rows an application role may read; %1$I stands for the extension''s schema';
COMMENT ON COLUMN um.state_tables.readable_columns IS 'the columns application roles may read, when not all (the rest hold secrets)';
COMMENT ON COLUMN um.state_tables.evaluator_input IS 'um_has_permission''s answers depend on its rows: a change empties every backend''s permission cache';
COMMENT ON COLUMN um.state_tables.invalidating_columns IS 'the columns whose update invalidates, when not all';
COMMENT ON COLUMN um.state_tables.dump_filter IS 'pg_dump keeps the rows this condition selects ('''' for all), with the table''s id sequence; NULL: made by um''s script, not dumped';

INSERT INTO um.state_tables (relname, access, read_rule, readable_columns, evaluator_input, invalidating_columns, dump_filter) VALUES
  ('organizations',     'tenant', '%1$I.um_has_permission(''org:read'', id)', NULL, false, NULL, ''),
  ('users',             'tenant', 'id = %1$I.um_current_user_id() OR EXISTS (SELECT 1 FROM um.memberships m WHERE m.user_id = users.id AND %1$I.um_has_permission(''member:read'', m.org_id))',
                        '{id,email,name,timezone,locale,mobile,allow_login,status,suspended_at,email_verified_at,attributes,created_at,updated_at}',
                        true, '{id,status,allow_login}', ''),
  ('builtin_roles',     'catalog', NULL, NULL, false, NULL, NULL),
  ('roles',             'tenant', '%1$I.um_has_permission(''role:read'', org_id)', NULL, true, NULL, ''),
  ('role_inclusions',   'tenant', '%1$I.um_has_permission(''role:read'', org_id)', NULL, true, NULL, ''),
  ('permissions',       'catalog', NULL, NULL, true, NULL, 'WHERE NOT builtin'),
  ('role_permissions',  'tenant', '%1$I.um_has_permission(''role:read'', org_id)', NULL, true, NULL, ''),
  ('scopes',            'tenant', '%1$I.um_has_permission(''scope:read'', org_id)', NULL, true, NULL, ''),
  ('memberships',       'tenant', '%1$I.um_has_permission(''member:read'', org_id) OR user_id = %1$I.um_current_user_id(org_id)', NULL, true, NULL, ''),
  ('teams',             'tenant', '%1$I.um_has_permission(''team:read'', org_id)', NULL, true, NULL, ''),
  ('team_members',      'tenant', '%1$I.um_has_permission(''team:read'', org_id)', NULL, true, NULL, ''),
  ('team_member_roles', 'tenant', '%1$I.um_has_permission(''team:read'', org_id)', NULL, true, NULL, ''),
  ('grants',            'tenant', '%1$I.um_has_permission(''role:read'', org_id)', NULL, true, NULL, ''),
  ('invitations',       'tenant', '%1$I.um_has_permission(''member:invite'', org_id)', NULL, false, NULL, ''),
  ('sessions',          'secret', NULL, NULL, false, NULL, ''),
  ('identity_providers', 'secret', NULL, NULL, false, NULL, ''),
  ('user_identities',   'secret', NULL, NULL, false, NULL, ''),
  -- events about oneself: those of an organization only where the identity
  -- reaches it (an impersonator sees the target's events in the impersonated
  -- organizations only), those of none only as oneself
  ('audit_events',      'tenant', '%1$I.um_has_permission(''audit:read'', org_id) OR (target_type = ''user'' AND (target_id = %1$I.um_current_user_id(org_id) OR (org_id IS NULL AND target_id = %1$I.um_current_user_id() AND target_id = %1$I.um_real_user_id())))',
                        NULL, false, NULL, ''),
  ('builtin_role_permissions', 'catalog', NULL, NULL, false, NULL, NULL),
  ('cache_sentinel',    'secret', NULL, NULL, false, NULL, NULL),
  ('verification_tokens', 'secret', NULL, NULL, false, NULL, ''),
  ('state_tables',      'catalog', NULL, NULL, false, NULL, NULL);
GRANT SELECT ON um.state_tables TO PUBLIC;

-- um_check_integrity() also checks um's own tables against the registry
CREATE OR REPLACE FUNCTION @extschema@.um_check_integrity()
RETURNS TABLE (invariant text, object text, detail text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  -- an organization with members keeps a Root
  SELECT 'organization has a Root', format('organization %s (%s)', o.id, o.slug),
         format('%s members, none of them Root', (SELECT count(*) FROM um.memberships m WHERE m.org_id = o.id))
    FROM um.organizations o
   WHERE EXISTS (SELECT 1 FROM um.memberships m WHERE m.org_id = o.id)
     AND NOT EXISTS (SELECT 1 FROM um.memberships m JOIN um.roles r ON r.id = m.role_id
                      WHERE m.org_id = o.id AND r.builtin = 'root')
  UNION ALL
  -- ... and a Root who can log in
  SELECT 'organization has a Root who can log in', format('organization %s (%s)', o.id, o.slug),
         'every Root is suspended (in the organization or everywhere) or may not log in'
    FROM um.organizations o
   WHERE EXISTS (SELECT 1 FROM um.memberships m JOIN um.roles r ON r.id = m.role_id
                  WHERE m.org_id = o.id AND r.builtin = 'root')
     AND NOT um.has_usable_root(o.id)
  UNION ALL
  -- every organization has each built-in role
  SELECT 'organization has its built-in roles', format('organization %s (%s)', o.id, o.slug),
         'missing: ' || string_agg(b.key, ', ' ORDER BY b.position)
    FROM um.organizations o CROSS JOIN um.builtin_roles b
   WHERE NOT EXISTS (SELECT 1 FROM um.roles r WHERE r.org_id = o.id AND r.builtin = b.key)
   GROUP BY o.id, o.slug
  UNION ALL
  -- assignments point at roles, scopes, teams and members of their own organization
  SELECT 'membership role in the same organization', format('membership %s', m.id),
         format('role %s belongs to %s, the membership to organization %s', m.role_id,
                coalesce((SELECT 'organization ' || r.org_id FROM um.roles r WHERE r.id = m.role_id), 'no organization (missing)'), m.org_id)
    FROM um.memberships m
   WHERE NOT EXISTS (SELECT 1 FROM um.roles r WHERE r.id = m.role_id AND r.org_id = m.org_id)
  UNION ALL
  SELECT 'grant targets in the same organization', format('grant %s', g.id),
         concat_ws('; ',
           CASE WHEN NOT EXISTS (SELECT 1 FROM um.roles r WHERE r.id = g.role_id AND r.org_id = g.org_id)
                THEN format('role %s is missing or of another organization', g.role_id) END,
           CASE WHEN g.scope_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM um.scopes s WHERE s.id = g.scope_id AND s.org_id = g.org_id)
                THEN format('scope node %s is missing or of another organization', g.scope_id) END,
           CASE WHEN g.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM um.memberships m WHERE m.user_id = g.user_id AND m.org_id = g.org_id)
                THEN format('user %s is not a member', g.user_id) END,
           CASE WHEN g.team_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM um.teams t WHERE t.id = g.team_id AND t.org_id = g.org_id)
                THEN format('team %s is missing or of another organization', g.team_id) END)
    FROM um.grants g
   WHERE NOT EXISTS (SELECT 1 FROM um.roles r WHERE r.id = g.role_id AND r.org_id = g.org_id)
      OR (g.scope_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM um.scopes s WHERE s.id = g.scope_id AND s.org_id = g.org_id))
      OR (g.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM um.memberships m WHERE m.user_id = g.user_id AND m.org_id = g.org_id))
      OR (g.team_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM um.teams t WHERE t.id = g.team_id AND t.org_id = g.org_id))
  UNION ALL
  SELECT 'role permission of an existing role', format('role %s', rp.role_id),
         format('the role is missing from organization %s; %s permission rows remain', rp.org_id, count(*))
    FROM um.role_permissions rp
   WHERE NOT EXISTS (SELECT 1 FROM um.roles r WHERE r.id = rp.role_id AND r.org_id = rp.org_id)
   GROUP BY rp.org_id, rp.role_id
  UNION ALL
  SELECT 'role inclusion in the same organization', format('role %s', ri.role_id),
         format('includes role %s; one of them is missing or of another organization than %s', ri.included_role_id, ri.org_id)
    FROM um.role_inclusions ri
   WHERE NOT EXISTS (SELECT 1 FROM um.roles r WHERE r.id = ri.role_id AND r.org_id = ri.org_id)
      OR NOT EXISTS (SELECT 1 FROM um.roles r WHERE r.id = ri.included_role_id AND r.org_id = ri.org_id)
  UNION ALL
  SELECT 'membership of an existing user', format('membership %s', m.id),
         format('user %s is missing', m.user_id)
    FROM um.memberships m
   WHERE NOT EXISTS (SELECT 1 FROM um.users u WHERE u.id = m.user_id)
  UNION ALL
  SELECT 'invitation targets in the same organization', format('invitation %s', i.id),
         concat_ws('; ',
           CASE WHEN NOT EXISTS (SELECT 1 FROM um.roles r WHERE r.id = i.role_id AND r.org_id = i.org_id)
                THEN format('role %s is missing or of another organization', i.role_id) END,
           CASE WHEN i.team_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM um.teams t WHERE t.id = i.team_id AND t.org_id = i.org_id)
                THEN format('team %s is missing or of another organization', i.team_id) END)
    FROM um.invitations i
   WHERE NOT EXISTS (SELECT 1 FROM um.roles r WHERE r.id = i.role_id AND r.org_id = i.org_id)
      OR (i.team_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM um.teams t WHERE t.id = i.team_id AND t.org_id = i.org_id))
  UNION ALL
  SELECT 'identity link to a provider of the organization and an existing user',
         format('provider %s, subject %s', ui.provider_id, ui.subject),
         concat_ws('; ',
           CASE WHEN NOT EXISTS (SELECT 1 FROM um.identity_providers p WHERE p.id = ui.provider_id AND p.org_id = ui.org_id)
                THEN format('provider %s is missing or of another organization', ui.provider_id) END,
           CASE WHEN NOT EXISTS (SELECT 1 FROM um.users u WHERE u.id = ui.user_id)
                THEN format('user %s is missing', ui.user_id) END)
    FROM um.user_identities ui
   WHERE NOT EXISTS (SELECT 1 FROM um.identity_providers p WHERE p.id = ui.provider_id AND p.org_id = ui.org_id)
      OR NOT EXISTS (SELECT 1 FROM um.users u WHERE u.id = ui.user_id)
  UNION ALL
  SELECT 'team role in the same organization', format('team %s, user %s', tr.team_id, tr.user_id),
         format('role %s is missing or of another organization', tr.role_id)
    FROM um.team_member_roles tr
   WHERE NOT EXISTS (SELECT 1 FROM um.roles r WHERE r.id = tr.role_id AND r.org_id = tr.org_id)
  UNION ALL
  -- teams: members are members of the organization; a team with members has one owner
  SELECT 'team members belong to the organization', format('team %s', tm.team_id),
         format('user %s is not a member of organization %s', tm.user_id, tm.org_id)
    FROM um.team_members tm
   WHERE NOT EXISTS (SELECT 1 FROM um.memberships m WHERE m.org_id = tm.org_id AND m.user_id = tm.user_id)
  UNION ALL
  SELECT 'team has an owner', format('team %s (%s)', t.id, t.name),
         format('%s members, %s owners', count(tm.user_id), count(tm.user_id) FILTER (WHERE tm.is_owner))
    FROM um.teams t JOIN um.team_members tm ON tm.team_id = t.id
   GROUP BY t.id, t.name
  HAVING count(tm.user_id) FILTER (WHERE tm.is_owner) <> 1
  UNION ALL
  -- scope trees and role inclusions have no cycles, and stay in their organization
  SELECT 'scope tree has no cycle', format('scope node %s', c.id), 'it is its own ancestor'
    FROM (WITH RECURSIVE walk(start, node, depth) AS (
            SELECT s.id, s.parent_id, 1 FROM um.scopes s WHERE s.parent_id IS NOT NULL
            UNION ALL
            SELECT w.start, s.parent_id, w.depth + 1 FROM walk w JOIN um.scopes s ON s.id = w.node
             WHERE s.parent_id IS NOT NULL AND w.node <> w.start AND w.depth < 10000)
          SELECT DISTINCT start AS id FROM walk WHERE node = start) c
  UNION ALL
  SELECT 'scope parent in the same organization', format('scope node %s', s.id),
         format('parent %s is missing or of another organization', s.parent_id)
    FROM um.scopes s
   WHERE s.parent_id IS NOT NULL
     AND NOT EXISTS (SELECT 1 FROM um.scopes p WHERE p.id = s.parent_id AND p.org_id = s.org_id)
  UNION ALL
  SELECT 'role inclusions have no cycle', format('role %s', c.id), 'it includes itself'
    FROM (WITH RECURSIVE walk(start, node, depth) AS (
            SELECT ri.role_id, ri.included_role_id, 1 FROM um.role_inclusions ri
            UNION ALL
            SELECT w.start, ri.included_role_id, w.depth + 1 FROM walk w JOIN um.role_inclusions ri ON ri.role_id = w.node
             WHERE w.node <> w.start AND w.depth < 10000)
          SELECT DISTINCT start AS id FROM walk WHERE node = start) c
  UNION ALL
  -- users: a suspension has its time
  SELECT 'suspension is recorded', format('user %s', u.id), 'status and suspended_at disagree'
    FROM um.users u
   WHERE (u.status = 'suspended') <> (u.suspended_at IS NOT NULL)
  UNION ALL
  -- sessions belong to users who may log in (um_begin refuses the others; they should be ended)
  SELECT 'sessions of blocked users are ended', format('session %s', s.id),
         format('user %s is %s, and the session is still open', s.user_id,
                CASE WHEN u.id IS NULL THEN 'missing' WHEN u.status <> 'active' THEN 'suspended' ELSE 'not allowed to log in' END)
    FROM um.sessions s LEFT JOIN um.users u ON u.id = s.user_id
   WHERE s.revoked_at IS NULL AND s.expires_at > now()
     AND (u.id IS NULL OR u.status <> 'active' OR NOT u.allow_login)
  UNION ALL
  -- um's tables have what um.state_tables says: every one registered, row
  -- level security forced on those holding tenant data or secrets, the
  -- permission cache told of every change to what its answers depend on
  SELECT 'um table is registered', format('table um.%s', c.relname), 'not in um.state_tables: nothing protects or dumps it'
    FROM pg_catalog.pg_class c
   WHERE c.relnamespace = 'um'::regnamespace AND c.relkind IN ('r', 'p')
     AND NOT EXISTS (SELECT 1 FROM um.state_tables s WHERE s.relname = c.relname)
  UNION ALL
  SELECT 'um table keeps forced row-level security', format('table um.%s', s.relname),
         CASE WHEN c.oid IS NULL THEN 'the table is missing' ELSE 'row-level security is off or not forced' END
    FROM um.state_tables s
    LEFT JOIN pg_catalog.pg_class c ON c.relname = s.relname AND c.relnamespace = 'um'::regnamespace
   WHERE s.access <> 'catalog' AND NOT coalesce(c.relrowsecurity AND c.relforcerowsecurity, false)
  UNION ALL
  SELECT 'permission cache learns of every change', format('table um.%s', s.relname),
         format('trigger %s is missing or not enabled %s', x.tgname, x.how)
    FROM um.state_tables s
   CROSS JOIN (VALUES ('cache_invalidate', 'A', 'ALWAYS'), ('cache_invalidate_replica', 'R', 'REPLICA')) AS x(tgname, mode, how)
   WHERE s.evaluator_input
     AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
                      WHERE c.relnamespace = 'um'::regnamespace AND c.relname = s.relname
                        AND t.tgname = x.tgname AND t.tgenabled = x.mode)
  ORDER BY 1, 2
$$;
COMMENT ON FUNCTION @extschema@.um_check_integrity() IS
  'every invariant um keeps (Roots, built-in roles, same-organization references, existing users, team owners, no cycles, suspensions, sessions, the protection and cache triggers of um''s own tables), checked on the tables as they are; one row per violation';
