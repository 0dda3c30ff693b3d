-- Views for administrators in psql.

CREATE VIEW um.member_list AS
SELECT o.slug AS org, u.id AS user_id, u.email, u.name,
       r.name AS role,
       -- a timed suspension whose end has passed is over (um_internal.suspended)
       CASE WHEN m.status = 'suspended' AND (m.suspended_until IS NULL OR m.suspended_until > statement_timestamp())
            THEN 'suspended' ELSE 'active' END AS membership,
       CASE WHEN u.status = 'suspended' AND (u.suspended_until IS NULL OR u.suspended_until > statement_timestamp())
            THEN 'suspended' ELSE 'active' END AS user_status,
       u.allow_login,
       u.email_verified_at IS NOT NULL AS email_verified,
       m.created_at AS member_since,
       m.org_id, m.id AS membership_id, m.role_id
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
COMMENT ON COLUMN um.member_list.membership IS 'status of the membership in this organization: active or suspended (a timed suspension ends by itself)';
COMMENT ON COLUMN um.member_list.user_status IS 'status of the user account: active or suspended (a timed suspension ends by itself)';
COMMENT ON COLUMN um.member_list.allow_login IS 'false for a notification-only user';
COMMENT ON COLUMN um.member_list.email_verified IS 'the user has proved control of the address';
COMMENT ON COLUMN um.member_list.member_since IS 'when the user joined the organization';
COMMENT ON COLUMN um.member_list.org_id IS 'the organization''s id';
COMMENT ON COLUMN um.member_list.membership_id IS 'the membership''s id: page an organization''s members by it (WHERE org_id = $1 AND membership_id > $2 ORDER BY membership_id)';
COMMENT ON COLUMN um.member_list.role_id IS 'the id of the member''s organization role';

CREATE VIEW um.role_permission_list AS
SELECT o.slug AS org, r.name AS role, r.builtin IS NOT NULL AS builtin,
       (SELECT string_agg(ir.name, ', ' ORDER BY ir.name)
          FROM um.role_inclusions ri JOIN um.roles ir ON ir.id = ri.included_role_id
         WHERE ri.role_id = r.id) AS includes,
       (SELECT string_agg(rp.permission, ' ' ORDER BY rp.permission)
          FROM um.role_permissions rp WHERE rp.role_id = r.id) AS permissions,
       r.org_id, r.id AS role_id
  FROM um.roles r
  JOIN um.organizations o ON o.id = r.org_id
  LEFT JOIN um.builtin_roles b ON b.key = r.builtin;
COMMENT ON VIEW um.role_permission_list IS 'each role of each organization with the roles it includes and the permissions it grants directly';
COMMENT ON COLUMN um.role_permission_list.org IS 'the organization''s slug';
COMMENT ON COLUMN um.role_permission_list.role IS 'the role''s name';
COMMENT ON COLUMN um.role_permission_list.builtin IS 'a built-in role';
COMMENT ON COLUMN um.role_permission_list.includes IS 'names of the roles it includes directly, comma-separated';
COMMENT ON COLUMN um.role_permission_list.permissions IS 'the permissions and patterns it grants directly, space-separated';
COMMENT ON COLUMN um.role_permission_list.org_id IS 'the organization''s id';
COMMENT ON COLUMN um.role_permission_list.role_id IS 'the role''s id';

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

-- um's SQLSTATEs for an application to load: each code's name, what it
-- means (as doc/errors.md says) and the HTTP status an API would answer
-- with (doc/integration.md).
CREATE VIEW um.error_codes AS
SELECT v.sqlstate, v.name, v.http_status, v.meaning
  FROM (VALUES
  ('UM001', 'invalid_email', 400, 'invalid email address'),
  ('UM002', 'invalid_slug', 400, 'invalid organization slug'),
  ('UM003', 'invalid_name', 400, 'invalid name (organization, user, role, team, scope node)'),
  ('UM004', 'unknown_time_zone', 400, 'unknown time zone'),
  ('UM005', 'invalid_locale', 400, 'invalid locale'),
  ('UM006', 'invalid_mobile', 400, 'invalid mobile number'),
  ('UM007', 'invalid_attributes', 400, 'user attributes are not a JSON object'),
  ('UM008', 'invalid_scope_kind', 400, 'invalid scope kind'),
  ('UM009', 'invalid_argument', 400, 'invalid argument (a setting of the wrong type, two grantees, a validity out of range, ...)'),
  ('UM010', 'invalid_permission_name', 400, 'invalid permission name or pattern'),
  ('UM011', 'unknown_permission', 400, 'unknown permission'),
  ('UM012', 'invalid_domain', 400, 'invalid domain'),
  ('UM013', 'unknown_attribute', 400, 'unknown or invalid user attribute key'),
  ('UM020', 'email_taken', 409, 'email address already registered'),
  ('UM021', 'slug_taken', 409, 'organization slug already taken'),
  ('UM022', 'already_member', 409, 'already a member'),
  ('UM023', 'scope_node_exists', 409, 'scope node name or ref taken'),
  ('UM024', 'already_team_member', 409, 'already a member of the team'),
  ('UM025', 'team_name_taken', 409, 'team name already taken in the organization'),
  ('UM026', 'role_name_taken', 409, 'role name already taken in the organization'),
  ('UM027', 'identity_taken', 409, 'identity provider name taken, or the subject already linked'),
  ('UM028', 'domain_taken', 409, 'the domain belongs to another organization'),
  ('UM030', 'unknown_organization', 404, 'unknown organization'),
  ('UM031', 'unknown_user', 404, 'unknown user (or a NULL acting user)'),
  ('UM032', 'unknown_role', 404, 'unknown role'),
  ('UM033', 'unknown_team', 404, 'unknown team'),
  ('UM034', 'unknown_invitation', 404, 'unknown invitation'),
  ('UM035', 'not_member', 404, 'not a member of the organization'),
  ('UM036', 'unknown_scope', 404, 'unknown scope node'),
  ('UM037', 'unknown_identity_provider', 404, 'unknown identity provider'),
  ('UM038', 'not_team_member', 404, 'not a member of the team'),
  ('UM039', 'unknown_role_template', 404, 'unknown role template'),
  ('UM040', 'role_cycle', 409, 'role inclusion would make a cycle'),
  ('UM041', 'scope_tree_shape', 409, 'scope node would make a cycle, or a branch deeper than 64 levels'),
  ('UM042', 'builtin_role', 409, 'built-in role cannot be renamed, deleted or made; the root role holds every permission'),
  ('UM043', 'team_owner', 409, 'team owner cannot be removed'),
  ('UM044', 'last_root', 409, 'organization would be left without a Root'),
  ('UM045', 'sso_required_for_setting', 409, 'password login needs an identity provider'),
  ('UM046', 'cross_organization', 409, 'cross-organization reference or move'),
  ('UM047', 'audit_append_only', 409, 'the audit trail is append-only'),
  ('UM048', 'permission_in_use', 409, 'permission is built in or still granted'),
  ('UM049', 'role_in_use', 409, 'role is still some member''s organization role'),
  ('UM050', 'user_cannot_hold', 409, 'user cannot be the Root of an organization (or own a team): suspended or notification-only'),
  ('UM051', 'suspension_state', 409, 'already suspended / not suspended; nobody suspends themself'),
  ('UM052', 'deletion_blocked', 409, 'the user cannot be deleted yet (sole Root, team owner, application rows)'),
  ('UM053', 'token_not_valid', 410, 'token or invitation not valid (unknown, used, revoked, expired)'),
  ('UM054', 'invalid_batch', 422, 'invitation batch with invalid addresses (all listed), or empty'),
  ('UM055', 'requests_closed', 403, 'organization takes no invitation requests'),
  ('UM056', 'invitation_other_account', 403, 'invitation for another account, or for an existing account while logged out'),
  ('UM057', 'cascading_foreign_key', 500, 'an application table''s foreign key into um cascades: um would change application rows'),
  ('UM058', 'secret_with_actor', 500, 'a mailbox secret (verification token) is only issued with nobody acting'),
  ('UM059', 'password_required', 422, 'verifying an address needs the password (the one typed at the sign-up, or a new one, which claims the account)'),
  ('UM060', 'invalid_credentials', 401, 'invalid email or password (also: unknown email)'),
  ('UM061', 'user_suspended', 403, 'login refused: the user is suspended'),
  ('UM062', 'login_not_allowed', 403, 'login refused: the user may not log in (allow_login is false)'),
  ('UM063', 'email_not_verified', 403, 'login refused: the email address is not verified'),
  ('UM064', 'password_change_required', 403, 'login refused: a temporary password must be changed first'),
  ('UM065', 'sso_required', 403, 'login refused: an organization of the user requires single sign-on'),
  ('UM066', 'read_committed_required', 500, 'a password reset redeemed in a REPEATABLE READ or SERIALIZABLE transaction'),
  ('UM067', 'session_not_valid', 401, 'session token is not valid (unknown, expired, ended)'),
  ('UM068', 'password_not_acceptable', 422, 'the new password is not acceptable'),
  ('UM069', 'not_recorded', 503, 'a login attempt or refusal could not be recorded (no background worker, a long row lock), or pgcrypto is missing'),
  ('UM070', 'permission_denied', 403, 'permission denied'),
  ('UM071', 'impersonation_refused', 403, 'impersonation refused (an Admin or Root, oneself, nested, a suspended user)'),
  ('UM072', 'nobody_acting', 401, 'nobody is acting in this transaction'),
  ('UM073', 'escalation_refused', 403, 'escalation refused: a role with permissions you lack, or a Root acted on by a non-Root'),
  ('UM074', 'outside_domains', 403, 'an account for an address outside the organization''s domains'),
  ('UM075', 'attribute_not_editable', 403, 'a user attribute the caller may not change (admin-only for its own user, read-only for tenants)'),
  ('UM080', 'cannot_protect', 500, 'cannot protect the table (no such column, not bigint, not a table), or register a user reference'),
  ('UM081', 'still_referenced', 409, 'the organization or scope node is still referenced'),
  ('UM090', 'factor_code_not_valid', 401, 'the second-factor code is not valid (not the current code of a confirmed factor, used already, no recovery code of the user''s, or the account is locked)'),
  ('UM091', 'unknown_factor', 404, 'unknown factor, or no pending enrolment of the acting user''s'),
  ('UM092', 'second_factor_required', 403, 'the organization requires a second factor and the session is at assurance level 1 (every check and lifecycle call there is refused); or turning require_mfa on from such a session'),
  ('UM093', 'recent_authentication_required', 403, 'a sensitive call needs a recent authentication (transferring an organization, deleting one''s account, changing one''s address, adding or removing a factor), or a proven factor (adding a factor to, or changing the password of, an account that has one)')
  ) AS v (sqlstate, name, http_status, meaning);
COMMENT ON VIEW um.error_codes IS 'um''s error codes (class UM): name, HTTP status and meaning, for an application to map errors';
COMMENT ON COLUMN um.error_codes.sqlstate IS 'the SQLSTATE, e.g. UM060';
COMMENT ON COLUMN um.error_codes.name IS 'a stable snake_case name for code, e.g. invalid_credentials';
COMMENT ON COLUMN um.error_codes.http_status IS 'the HTTP status an API answers with';
COMMENT ON COLUMN um.error_codes.meaning IS 'what went wrong, as doc/errors.md says';
