-- Export of users and of one's own data; then their public declarations.

-- ---------------------------------------------------------------------------
-- Export

CREATE FUNCTION um_internal.do_export_users(p_org_id bigint)
RETURNS TABLE (user_id bigint, email text, name text, user_status text, allow_login boolean,
               email_verified boolean, org_role text, membership_status text, member_since timestamptz,
               teams text, team_roles text, scope_roles text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM um_internal.authorize('organization.export_users', format('export the users of organization %s', p_org_id),
                       'user:read', p_org_id, 'organization', p_org_id);
  PERFORM um_internal.audit('organization.export_users', p_org_id, 'organization', p_org_id, '{}');
  RETURN QUERY
  SELECT u.id, u.email, u.name, u.status, u.allow_login, u.email_verified_at IS NOT NULL,
         r.name, m.status, m.created_at,
         (SELECT string_agg(t.name || CASE WHEN tm.is_owner THEN ' (owner)' ELSE '' END, '; ' ORDER BY t.name)
            FROM um.team_members tm JOIN um.teams t ON t.id = tm.team_id
           WHERE tm.org_id = m.org_id AND tm.user_id = u.id),
         (SELECT string_agg(t.name || ': ' || tr.name, '; ' ORDER BY t.name, tr.name)
            FROM um.team_member_roles tmr JOIN um.teams t ON t.id = tmr.team_id JOIN um.roles tr ON tr.id = tmr.role_id
           WHERE tmr.org_id = m.org_id AND tmr.user_id = u.id),
         (SELECT string_agg(gr.name || ' on ' || coalesce(s.kind || ' ' || s.name, 'every ' || g.scope_kind, 'the organization'),
                            '; ' ORDER BY gr.name, s.name)
            FROM um.grants g JOIN um.roles gr ON gr.id = g.role_id LEFT JOIN um.scopes s ON s.id = g.scope_id
           WHERE g.org_id = m.org_id AND g.user_id = u.id)
    FROM um.memberships m JOIN um.users u ON u.id = m.user_id JOIN um.roles r ON r.id = m.role_id
   WHERE m.org_id = p_org_id
   ORDER BY u.id;
END
$$;
COMMENT ON FUNCTION um_internal.do_export_users(bigint) IS
  'body of um_export_users: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_export_users (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_export_users_json(p_org_id bigint)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v jsonb;
BEGIN
  PERFORM um_internal.authorize('organization.export_users', format('export the users of organization %s', p_org_id),
                       'user:read', p_org_id, 'organization', p_org_id);
  SELECT jsonb_build_object(
           'organization', jsonb_build_object('id', o.id, 'slug', o.slug, 'name', o.name),
           'exported_at', now(),
           'users', coalesce((
             SELECT jsonb_agg(jsonb_build_object(
                      'id', u.id, 'email', u.email, 'name', u.name, 'status', u.status,
                      'allow_login', u.allow_login, 'email_verified', u.email_verified_at IS NOT NULL,
                      'timezone', u.timezone, 'locale', u.locale,
                      'role', r.name, 'membership_status', m.status, 'member_since', m.created_at,
                      'teams', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                                  'team', t.name, 'owner', tm.is_owner,
                                  'roles', (SELECT coalesce(jsonb_agg(tr.name ORDER BY tr.name), '[]')
                                              FROM um.team_member_roles tmr JOIN um.roles tr ON tr.id = tmr.role_id
                                             WHERE tmr.team_id = tm.team_id AND tmr.user_id = u.id)) ORDER BY t.name), '[]')
                                  FROM um.team_members tm JOIN um.teams t ON t.id = tm.team_id
                                 WHERE tm.org_id = m.org_id AND tm.user_id = u.id),
                      'grants', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                                   'role', gr.name, 'scope_id', g.scope_id,
                                   'scope', coalesce(s.kind || ' ' || s.name, 'every ' || g.scope_kind, 'the organization'))
                                   ORDER BY g.id), '[]')
                                   FROM um.grants g JOIN um.roles gr ON gr.id = g.role_id LEFT JOIN um.scopes s ON s.id = g.scope_id
                                  WHERE g.org_id = m.org_id AND g.user_id = u.id))
                    ORDER BY u.id)
               FROM um.memberships m JOIN um.users u ON u.id = m.user_id JOIN um.roles r ON r.id = m.role_id
              WHERE m.org_id = o.id), '[]'))
    INTO v
    FROM um.organizations o WHERE o.id = p_org_id;
  PERFORM um_internal.audit('organization.export_users', p_org_id, 'organization', p_org_id, jsonb_build_object('format', 'json'));
  RETURN v;
END
$$;
COMMENT ON FUNCTION um_internal.do_export_users_json(bigint) IS
  'body of um_export_users_json: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_export_users_json (EXECUTE held by nobody)';

CREATE FUNCTION um_internal.do_export_my_data()
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um_internal.require_actor('Call um_begin(token) first: users export their own data.');
  v jsonb;
BEGIN
  IF v_actor IS DISTINCT FROM @extschema@.um_real_user_id() THEN
    PERFORM um_internal.deny('user.export_self', NULL, 'user', v_actor, 'UM071',
      'cannot export a user''s data while impersonating them', NULL, 'Call um_end_impersonation() first.');
  END IF;
  SELECT jsonb_build_object(
           'exported_at', now(),
           'profile', jsonb_build_object('id', u.id, 'email', u.email, 'name', u.name, 'timezone', u.timezone,
                                         'locale', u.locale, 'mobile', u.mobile, 'allow_login', u.allow_login,
                                         'status', u.status, 'email_verified_at', u.email_verified_at,
                                         'password_changed_at', u.password_changed_at,
                                         'attributes', u.attributes, 'created_at', u.created_at),
           'memberships', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                             'org_id', o.id, 'organization', o.name, 'role', r.name, 'status', m.status,
                             'member_since', m.created_at) ORDER BY o.id), '[]')
                             FROM um.memberships m JOIN um.organizations o ON o.id = m.org_id JOIN um.roles r ON r.id = m.role_id
                            WHERE m.user_id = u.id),
           'teams', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                       'org_id', t.org_id, 'team', t.name, 'owner', tm.is_owner, 'added_at', tm.added_at,
                       'roles', (SELECT coalesce(jsonb_agg(tr.name ORDER BY tr.name), '[]')
                                   FROM um.team_member_roles tmr JOIN um.roles tr ON tr.id = tmr.role_id
                                  WHERE tmr.team_id = tm.team_id AND tmr.user_id = u.id)) ORDER BY t.id), '[]')
                       FROM um.team_members tm JOIN um.teams t ON t.id = tm.team_id WHERE tm.user_id = u.id),
           'grants', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                        'org_id', g.org_id, 'role', gr.name, 'scope_id', g.scope_id, 'scope_kind', g.scope_kind,
                        'granted_at', g.created_at) ORDER BY g.id), '[]')
                        FROM um.grants g JOIN um.roles gr ON gr.id = g.role_id WHERE g.user_id = u.id),
           'sessions', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                          'created_at', s.created_at, 'expires_at', s.expires_at, 'method', s.method,
                          'last_seen_at', (SELECT a.last_seen_at FROM um.session_activity a WHERE a.session_id = s.id),
                          'client_addr', s.client_addr, 'user_agent', s.user_agent,
                          'ended_at', s.revoked_at) ORDER BY s.id), '[]')
                          FROM um.sessions s WHERE s.user_id = u.id),
           'password_reset', (SELECT jsonb_build_object('requested_at', r.created_at, 'expires_at', r.expires_at)
                                FROM um.password_resets r WHERE r.user_id = u.id),
           'email_change', (SELECT jsonb_build_object('new_email', c.new_email, 'requested_at', c.created_at,
                                                      'expires_at', c.expires_at)
                              FROM um.email_changes c WHERE c.user_id = u.id),
           'second_factors', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                                'kind', f.kind, 'name', f.name, 'enrolled_at', f.created_at, 'confirmed_at', f.confirmed_at,
                                'last_used_at', f.last_used_at) ORDER BY f.id), '[]')
                                FROM um.mfa_factors f WHERE f.user_id = u.id),
           'recovery_codes_left', (SELECT count(*) FROM um.mfa_recovery_codes r WHERE r.user_id = u.id),
           'identities', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                            'provider', p.name, 'subject', i.subject, 'linked_at', i.created_at) ORDER BY p.id), '[]')
                            FROM um.user_identities i JOIN um.identity_providers p ON p.id = i.provider_id
                           WHERE i.user_id = u.id),
           'audit_events', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                              'at', a.at, 'action', a.action, 'outcome', a.outcome, 'org_id', a.org_id,
                              'target_type', a.target_type, 'target_id', a.target_id,
                              'by_me', a.actor_user_id = u.id) ORDER BY a.id), '[]')
                              FROM um.audit_events a
                             WHERE a.actor_user_id = u.id OR (a.target_type = 'user' AND a.target_id = u.id)))
    INTO v
    FROM um.users u WHERE u.id = v_actor;
  PERFORM um_internal.audit('user.export_self', NULL, 'user', v_actor, '{}');
  RETURN v;
END
$$;
COMMENT ON FUNCTION um_internal.do_export_my_data() IS
  'body of um_export_my_data: runs as um''s owner, the calling role named by um_internal.caller_role(); called only through um_export_my_data (EXECUTE held by nobody)';

-- ---------------------------------------------------------------------------
-- The public functions: each is src/lifecycle.c's entry point, which calls
-- um_internal.do_<name> with the calling role.  None is STRICT: a NULL argument gets
-- the error that names it.

CREATE FUNCTION @extschema@.um_export_users(org_id bigint)
RETURNS TABLE (user_id bigint, email text, name text, user_status text, allow_login boolean,
               email_verified boolean, org_role text, membership_status text, member_since timestamptz,
               teams text, team_roles text, scope_roles text)
AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_export_users(bigint) IS
  'every member of the organization with role, teams and grants, as rows for COPY (SELECT * FROM um_export_users(..)) TO STDOUT (FORMAT csv, HEADER); user:read';

CREATE FUNCTION @extschema@.um_export_users_json(org_id bigint)
RETURNS jsonb AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_export_users_json(bigint) IS 'the same export as one JSON document';

CREATE FUNCTION @extschema@.um_export_my_data()
RETURNS jsonb AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_export_my_data() IS 'data portability: everything um holds about the acting user, as JSON';
