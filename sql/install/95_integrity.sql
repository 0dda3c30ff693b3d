-- um_check_integrity(): every invariant um keeps, checked against the
-- tables as they are, for after a crash, a restore, a bulk load with
-- triggers disabled or replication trouble.  Returns one row per violation
-- (none when all is well).  The constraints and triggers keep these true
-- for every change made through SQL; this looks at the result instead.

CREATE FUNCTION @extschema@.um_check_integrity()
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
     AND NOT um_internal.has_usable_root(o.id)
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
                CASE WHEN u.id IS NULL THEN 'missing' WHEN um_internal.suspended(u.status, u.suspended_until) THEN 'suspended'
                     ELSE 'not allowed to log in' END)
    FROM um.sessions s LEFT JOIN um.users u ON u.id = s.user_id
   WHERE s.revoked_at IS NULL AND s.expires_at > now()
     AND (u.id IS NULL OR um_internal.suspended(u.status, u.suspended_until) OR NOT u.allow_login)
  UNION ALL
  -- a mailbox or login secret outstanding for a user who may not log in (the
  -- trigger users_void_password_resets ends resets and email changes; a
  -- challenge's completion would be refused, but it should not be there);
  -- a notification-only user's address may change, not a suspended one's
  SELECT 'secrets of blocked users are void', format('%s of user %s', x.what, x.user_id),
         'the user is suspended or may not log in, and it is still outstanding'
    FROM (SELECT 'password reset' AS what, r.user_id, true AS login FROM um.password_resets r
          UNION ALL SELECT 'email change', c.user_id, false FROM um.email_changes c
          UNION ALL SELECT 'login challenge', l.user_id, true FROM um.login_challenges l WHERE l.expires_at > now()) x
    JOIN um.users u ON u.id = x.user_id
   WHERE um_internal.suspended(u.status, u.suspended_until) OR (x.login AND NOT u.allow_login)
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
         format('trigger %s is missing, not enabled ALWAYS or not %s', x.tgname, x.what)
    FROM um.state_tables s
   CROSS JOIN (VALUES ('cache_invalidate', 'a row trigger with the table''s cache_key', 'R'),
                      ('cache_invalidate_truncate', 'a TRUNCATE trigger', 'T')) AS x(tgname, what, kind)
   WHERE s.evaluator_input
     AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
                      WHERE c.relnamespace = 'um'::regnamespace AND c.relname = s.relname
                        AND t.tgname = x.tgname AND t.tgenabled = 'A' AND (t.tgtype & 66) = 0
                        AND t.tgfoid = 'um_internal.cache_invalidate()'::pg_catalog.regprocedure
                        AND CASE x.kind
                              WHEN 'R' THEN (t.tgtype & 1) = 1 AND (t.tgtype & 28) = 28
                                            AND t.tgargs = CASE WHEN s.cache_key IS NULL THEN ''::bytea
                                                                ELSE pg_catalog.convert_to(s.cache_key, 'UTF8') || '\x00'::bytea END
                              ELSE (t.tgtype & 32) = 32 END)
  ORDER BY 1, 2
$$;
COMMENT ON FUNCTION @extschema@.um_check_integrity() IS
  'every invariant um keeps (Roots, built-in roles, same-organization references, existing users, team owners, no cycles, suspensions, sessions, the protection and cache triggers of um''s own tables), checked on the tables as they are; one row per violation';
REVOKE EXECUTE ON FUNCTION @extschema@.um_check_integrity() FROM PUBLIC;
