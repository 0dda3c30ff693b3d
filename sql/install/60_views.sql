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
COMMENT ON COLUMN um.member_list.org IS 'the organization''s slug';
COMMENT ON COLUMN um.member_list.user_id IS 'the member''s user id';
COMMENT ON COLUMN um.member_list.email IS 'the member''s address';
COMMENT ON COLUMN um.member_list.name IS 'the member''s display name';
COMMENT ON COLUMN um.member_list.role IS 'name of the member''s organization role';
COMMENT ON COLUMN um.member_list.membership IS 'status of the membership in this organization: active or suspended';
COMMENT ON COLUMN um.member_list.user_status IS 'status of the user account: active or suspended';
COMMENT ON COLUMN um.member_list.allow_login IS 'false for a notification-only user';
COMMENT ON COLUMN um.member_list.email_verified IS 'the user has proved control of the address';
COMMENT ON COLUMN um.member_list.member_since IS 'when the user joined the organization';

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
COMMENT ON COLUMN um.role_permission_list.org IS 'the organization''s slug';
COMMENT ON COLUMN um.role_permission_list.role IS 'the role''s name';
COMMENT ON COLUMN um.role_permission_list.builtin IS 'a built-in role';
COMMENT ON COLUMN um.role_permission_list.includes IS 'names of the roles it includes directly, comma-separated';
COMMENT ON COLUMN um.role_permission_list.permissions IS 'the permissions and patterns it grants directly, space-separated';

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
COMMENT ON COLUMN um.organization_list.id IS 'the organization''s id';
COMMENT ON COLUMN um.organization_list.slug IS 'unique short name';
COMMENT ON COLUMN um.organization_list.name IS 'display name';
COMMENT ON COLUMN um.organization_list.members IS 'number of memberships, suspended ones included';
COMMENT ON COLUMN um.organization_list.roots IS 'addresses of the members holding the Root role, comma-separated';
COMMENT ON COLUMN um.organization_list.teams IS 'number of teams';
COMMENT ON COLUMN um.organization_list.custom_roles IS 'number of roles that are not built-in';
COMMENT ON COLUMN um.organization_list.password_login_disabled IS 'members must sign in through an identity provider';
COMMENT ON COLUMN um.organization_list.created_at IS 'when the organization was created';
