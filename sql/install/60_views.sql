-- Views for administrators in psql.

CREATE VIEW um.member_list AS
SELECT o.slug AS org, u.id AS user_id, u.email, u.name,
       r.name AS role, m.status AS membership,
       u.status AS user_status, u.allow_login,
       u.email_verified_at IS NOT NULL AS email_verified,
       m.created_at AS member_since
  FROM um.memberships m
  JOIN um.organizations o ON o.id = m.org_id
  JOIN um.users u ON u.id = m.user_id
  JOIN um.roles r ON r.id = m.role_id;
COMMENT ON VIEW um.member_list IS 'who belongs to which organization, with which role';

CREATE VIEW um.role_permission_list AS
SELECT o.slug AS org, r.name AS role, r.builtin IS NOT NULL AS builtin,
       (SELECT string_agg(ir.name, ', ' ORDER BY ir.name)
          FROM um.role_inclusions ri JOIN um.roles ir ON ir.id = ri.included_role_id
         WHERE ri.role_id = r.id) AS includes,
       (SELECT string_agg(rp.permission, ' ' ORDER BY rp.permission)
          FROM um.role_permissions rp WHERE rp.role_id = r.id) AS permissions
  FROM um.roles r
  JOIN um.organizations o ON o.id = r.org_id
  LEFT JOIN um.builtin_roles b ON b.key = r.builtin;
COMMENT ON VIEW um.role_permission_list IS 'each role of each organization with the roles it includes and the permissions it grants directly';

CREATE VIEW um.organization_list AS
SELECT o.id, o.slug, o.name,
       (SELECT count(*) FROM um.memberships m WHERE m.org_id = o.id) AS members,
       (SELECT string_agg(u.email, ', ' ORDER BY u.email)
          FROM um.memberships m JOIN um.roles r ON r.id = m.role_id JOIN um.users u ON u.id = m.user_id
         WHERE m.org_id = o.id AND r.builtin = 'root') AS roots,
       (SELECT count(*) FROM um.teams t WHERE t.org_id = o.id) AS teams,
       (SELECT count(*) FROM um.roles r WHERE r.org_id = o.id AND r.builtin IS NULL) AS custom_roles,
       o.password_login_disabled, o.created_at
  FROM um.organizations o;
COMMENT ON VIEW um.organization_list IS 'organizations with their member count, Roots, teams and custom roles';
