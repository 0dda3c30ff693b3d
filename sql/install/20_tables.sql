-- The data model.  Organization-scoped tables carry org_id and reference
-- each other through (org_id, id) pairs, so a row can never point at a role,
-- team, scope or member of another organization: the foreign keys say so.
-- Their primary keys and unique constraints all lead with org_id, so they can
-- be sharded by organization (users, permissions and the built-in role
-- template are global: reference tables).  Unique indexes on the ids alone
-- (the identity values are unique anyway) tell the planner that a lookup by
-- id finds one row, even before a bulk-loaded table is analyzed; a sharded
-- deployment drops them (see doc/operations.md, Scaling out).

CREATE TABLE um.organizations (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  slug text NOT NULL CONSTRAINT organizations_slug_check CHECK (um_internal.slug_is_valid(slug)),
  name text NOT NULL CONSTRAINT organizations_name_check CHECK (um_internal.display_name_is_valid(name)),
  allow_invite_requests boolean NOT NULL DEFAULT false,
  password_login_disabled boolean NOT NULL DEFAULT false,
  settings jsonb NOT NULL DEFAULT '{}'
    CONSTRAINT organizations_settings_check CHECK (jsonb_typeof(settings) = 'object'),
  -- bumped by every check of an organization-wide invariant (it keeps a
  -- Root; its role graph and scope tree have no cycles), so that concurrent
  -- changes to the same organization serialize on this row, also under
  -- REPEATABLE READ, where the loser gets a serialization failure
  revision bigint NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now(),
  require_mfa boolean NOT NULL DEFAULT false,
  CONSTRAINT organizations_slug_key UNIQUE (slug)
);
COMMENT ON TABLE um.organizations IS 'tenants; every other organization-scoped row belongs to one';
COMMENT ON COLUMN um.organizations.slug IS 'unique short name for URLs: lowercase letters, digits, inner hyphens';
COMMENT ON COLUMN um.organizations.allow_invite_requests IS 'people may request an invitation from the login page';
COMMENT ON COLUMN um.organizations.require_mfa IS 'a session at assurance level 1 (one factor) may do nothing here: every check and lifecycle call is refused (UM092) until the user proves a second factor';
COMMENT ON COLUMN um.organizations.password_login_disabled IS 'members must sign in through an identity provider; needs one in um.identity_providers';
COMMENT ON COLUMN um.organizations.settings IS 'further settings of the application, a JSON object';
COMMENT ON COLUMN um.organizations.id IS 'the organization''s id; every organization-scoped row carries it as org_id';
COMMENT ON COLUMN um.organizations.name IS 'display name';
COMMENT ON COLUMN um.organizations.revision IS
  'bumped by every check of an organization-wide invariant (Root kept, no cycles), so concurrent changes to one organization serialize on this row; internal';
COMMENT ON COLUMN um.organizations.created_at IS 'when the organization was created';

CREATE TABLE um.users (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  email text NOT NULL CONSTRAINT users_email_check CHECK (um_internal.email_is_valid(email)),
  name text CONSTRAINT users_name_check CHECK (um_internal.display_name_is_valid(name)),
  timezone text NOT NULL DEFAULT 'UTC',
  locale text NOT NULL DEFAULT 'en' CONSTRAINT users_locale_check CHECK (um_internal.locale_is_valid(locale)),
  mobile text CONSTRAINT users_mobile_check CHECK (um_internal.mobile_is_valid(mobile)),
  allow_login boolean NOT NULL DEFAULT true,
  status text NOT NULL DEFAULT 'active'
    CONSTRAINT users_status_check CHECK (status IN ('active', 'suspended')),
  suspended_at timestamptz,
  email_verified_at timestamptz,
  password_hash text CONSTRAINT users_password_hash_check
    CHECK (password_hash ~ '^\$2[abxy]\$[0-9]{2}\$[./A-Za-z0-9]{53}$'),
  must_change_password boolean NOT NULL DEFAULT false,
  password_changed_at timestamptz,
  failed_login_count integer NOT NULL DEFAULT 0
    CONSTRAINT users_failed_login_count_check CHECK (failed_login_count >= 0),
  locked_until timestamptz,
  attributes jsonb NOT NULL DEFAULT '{}'
    CONSTRAINT users_attributes_check CHECK (jsonb_typeof(attributes) = 'object'),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT users_suspended_at_check CHECK ((status = 'suspended') = (suspended_at IS NOT NULL)),
  suspended_until timestamptz,
  CONSTRAINT users_suspended_until_check CHECK (suspended_until IS NULL OR status = 'suspended'),
  mfa_failed_count integer NOT NULL DEFAULT 0 CONSTRAINT users_mfa_failed_count_check CHECK (mfa_failed_count >= 0),
  mfa_locked_until timestamptz
);
CREATE UNIQUE INDEX users_email_key ON um.users (lower(email));
COMMENT ON TABLE um.users IS 'people; a user belongs to organizations through um.memberships';
COMMENT ON COLUMN um.users.email IS 'unique regardless of letter case';
COMMENT ON COLUMN um.users.allow_login IS 'false: a notification-only user, who cannot log in and holds no permissions';
COMMENT ON COLUMN um.users.status IS 'active or suspended; suspension keeps everything and blocks all access';
COMMENT ON COLUMN um.users.password_hash IS 'bcrypt hash; NULL for users who sign in only through an identity provider';
COMMENT ON COLUMN um.users.attributes IS 'key/value attributes of the user for the application, a JSON object';
COMMENT ON COLUMN um.users.id IS 'the user''s id: what um_act_as takes and um_current_user_id returns';
COMMENT ON COLUMN um.users.name IS 'display name, optional';
COMMENT ON COLUMN um.users.timezone IS 'IANA time zone name, e.g. Europe/Paris';
COMMENT ON COLUMN um.users.locale IS 'language tag, e.g. en or pt-BR';
COMMENT ON COLUMN um.users.mobile IS 'mobile number in E.164 form (+ and digits), optional';
COMMENT ON COLUMN um.users.suspended_at IS 'when the user was suspended; set exactly while status is suspended';
COMMENT ON COLUMN um.users.mfa_failed_count IS 'wrong second-factor codes in a row (counted apart from passwords: a right password clears nothing of it); not readable by application roles';
COMMENT ON COLUMN um.users.mfa_locked_until IS 'second-factor codes are refused until then, after um.login_max_failures wrong ones; not readable by application roles';
COMMENT ON COLUMN um.users.suspended_until IS 'when a timed suspension ends by itself (NULL: it lasts until a reactivation); from then on it has no effect, and um_end_suspensions() records it as over';
COMMENT ON COLUMN um.users.email_verified_at IS
  'when the user proved control of the address (um_verify_email, um_mark_verified); cleared when the address changes';
COMMENT ON COLUMN um.users.must_change_password IS 'the password is temporary: login is refused until um_change_password sets a new one';
COMMENT ON COLUMN um.users.password_changed_at IS 'when the password was last set; not readable by application roles';
COMMENT ON COLUMN um.users.failed_login_count IS
  'wrong passwords since the last successful login; um.login_max_failures of them lock the account; not readable by application roles';
COMMENT ON COLUMN um.users.locked_until IS 'logins are refused until then after too many wrong passwords (um.login_lockout); not readable by application roles';
COMMENT ON COLUMN um.users.created_at IS 'when the user was created';
COMMENT ON COLUMN um.users.updated_at IS 'when the row last changed (set by its trigger)';

-- Built-in roles: the template every organization's built-in roles follow.
-- um's script seeds the default (source 'um'); the first change through the
-- template functions makes the whole template the application's (source
-- 'application'), which pg_dump keeps and a restore puts back in place of
-- the default (um.builtin_roles_before_insert).
CREATE TABLE um.builtin_roles (
  key text PRIMARY KEY CONSTRAINT builtin_roles_key_check CHECK (key ~ '^[a-z][a-z0-9_]{0,62}$'),
  name text NOT NULL UNIQUE,
  description text,
  position integer NOT NULL,
  renamable boolean NOT NULL DEFAULT false,
  source text NOT NULL CONSTRAINT builtin_roles_source_check CHECK (source IN ('um', 'application'))
);
COMMENT ON TABLE um.builtin_roles IS
  'the template of built-in roles every organization has (um_set_role_template); the role with key root is the root role';
COMMENT ON COLUMN um.builtin_roles.key IS
  'stable identifier of the built-in role (lower case, digits, _); um.roles.builtin refers to it; root is the root role, which holds every permission';
COMMENT ON COLUMN um.builtin_roles.name IS 'the display name the role gets in every organization';
COMMENT ON COLUMN um.builtin_roles.description IS 'what the role is for';
COMMENT ON COLUMN um.builtin_roles.position IS 'display order, Root first';
COMMENT ON COLUMN um.builtin_roles.renamable IS 'organizations may give the role a display name of their own (um_rename_role)';
COMMENT ON COLUMN um.builtin_roles.source IS
  'um: the default template of um''s script (not dumped); application: the template the application made (dumped)';

CREATE TABLE um.roles (
  id bigint GENERATED ALWAYS AS IDENTITY,
  org_id bigint NOT NULL REFERENCES um.organizations ON DELETE CASCADE,
  name text NOT NULL CONSTRAINT roles_name_check CHECK (um_internal.display_name_is_valid(name, 100)),
  description text,
  builtin text REFERENCES um.builtin_roles (key) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT roles_pkey PRIMARY KEY (org_id, id),
  CONSTRAINT roles_org_id_builtin_key UNIQUE (org_id, builtin)
);
CREATE UNIQUE INDEX roles_id_key ON um.roles (id);
CREATE UNIQUE INDEX roles_org_id_name_key ON um.roles (org_id, lower(name));
COMMENT ON TABLE um.roles IS 'roles of an organization: built-in (builtin is set: made from the template, not deletable, renamable only if the template allows, permissions editable except the root role''s) or custom';
COMMENT ON COLUMN um.roles.id IS 'the role''s id, unique across organizations';
COMMENT ON COLUMN um.roles.org_id IS 'the organization the role belongs to';
COMMENT ON COLUMN um.roles.name IS 'name, unique in the organization regardless of letter case';
COMMENT ON COLUMN um.roles.description IS 'free text, optional';
COMMENT ON COLUMN um.roles.builtin IS 'key of the built-in role this is (um.builtin_roles); NULL for a custom role (and for a built-in role the template no longer has)';
COMMENT ON COLUMN um.roles.created_at IS 'when the role was created';

CREATE TABLE um.role_inclusions (
  org_id bigint NOT NULL,
  role_id bigint NOT NULL,
  included_role_id bigint NOT NULL,
  PRIMARY KEY (org_id, role_id, included_role_id),
  FOREIGN KEY (org_id, role_id) REFERENCES um.roles (org_id, id) ON DELETE CASCADE,
  FOREIGN KEY (org_id, included_role_id) REFERENCES um.roles (org_id, id) ON DELETE CASCADE,
  CONSTRAINT role_inclusions_not_self CHECK (role_id <> included_role_id)
);
CREATE UNIQUE INDEX role_inclusions_role_id_included_role_id_key ON um.role_inclusions (role_id, included_role_id);
CREATE INDEX role_inclusions_included_role_id_idx ON um.role_inclusions (included_role_id);
COMMENT ON TABLE um.role_inclusions IS 'composite roles: role_id also grants everything included_role_id grants; cycles are rejected';
COMMENT ON COLUMN um.role_inclusions.org_id IS 'the organization of both roles';
COMMENT ON COLUMN um.role_inclusions.role_id IS 'the including role';
COMMENT ON COLUMN um.role_inclusions.included_role_id IS 'the role whose permissions role_id also grants';

CREATE TABLE um.permissions (
  name text PRIMARY KEY CONSTRAINT permissions_name_check CHECK (um_internal.permission_name_is_valid(name, false)),
  resource text GENERATED ALWAYS AS (split_part(name, ':', 1)) STORED,
  action text GENERATED ALWAYS AS (split_part(name, ':', 2)) STORED,
  description text,
  builtin boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE um.permissions IS 'the permission catalog: every "resource:action" um or the application knows; checks of other names are errors';
COMMENT ON COLUMN um.permissions.name IS 'resource:action, lowercase identifiers, e.g. billing:read';
COMMENT ON COLUMN um.permissions.resource IS 'the part before the colon (generated)';
COMMENT ON COLUMN um.permissions.action IS 'the part after the colon (generated)';
COMMENT ON COLUMN um.permissions.description IS 'what the permission allows, optional';
COMMENT ON COLUMN um.permissions.builtin IS
  'installed by um (not dumped, cannot be changed or deleted); false for the application''s own, registered with um_register_permission';
COMMENT ON COLUMN um.permissions.created_at IS 'when the permission was registered';

CREATE TABLE um.role_permissions (
  org_id bigint NOT NULL,
  role_id bigint NOT NULL,
  permission text NOT NULL
    CONSTRAINT role_permissions_permission_check CHECK (um_internal.permission_name_is_valid(permission, true)),
  PRIMARY KEY (org_id, role_id, permission),
  FOREIGN KEY (org_id, role_id) REFERENCES um.roles (org_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX role_permissions_role_id_permission_key ON um.role_permissions (role_id, permission);
COMMENT ON TABLE um.role_permissions IS 'what a role grants: permission names or patterns with "*" for a whole part (service:*, *:read, *)';
COMMENT ON COLUMN um.role_permissions.org_id IS 'the organization of the role';
COMMENT ON COLUMN um.role_permissions.role_id IS 'the role that grants it';
COMMENT ON COLUMN um.role_permissions.permission IS 'a catalog permission, or a pattern with * for a whole part (service:*, *:read, *)';

CREATE TABLE um.scopes (
  id bigint GENERATED ALWAYS AS IDENTITY,
  org_id bigint NOT NULL REFERENCES um.organizations ON DELETE CASCADE,
  parent_id bigint,
  kind text NOT NULL CONSTRAINT scopes_kind_check CHECK (um_internal.identifier_is_valid(kind)),
  name text NOT NULL CONSTRAINT scopes_name_check CHECK (um_internal.display_name_is_valid(name)),
  ref text CONSTRAINT scopes_ref_check CHECK (length(ref) BETWEEN 1 AND 200),
  inherit boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT scopes_pkey PRIMARY KEY (org_id, id),
  CONSTRAINT scopes_not_own_parent CHECK (parent_id <> id)
);
CREATE UNIQUE INDEX scopes_id_key ON um.scopes (id);
CREATE INDEX scopes_parent_id_idx ON um.scopes (parent_id);
CREATE UNIQUE INDEX scopes_sibling_name_key ON um.scopes (org_id, coalesce(parent_id, 0), kind, lower(name));
CREATE UNIQUE INDEX scopes_ref_key ON um.scopes (org_id, kind, ref) WHERE ref IS NOT NULL;
COMMENT ON TABLE um.scopes IS 'the tree of resources of an organization (project, environment, application, dashboard group, team space, ...)';
COMMENT ON COLUMN um.scopes.ref IS 'the application''s own key for the resource this node stands for';
COMMENT ON COLUMN um.scopes.inherit IS 'false: the node breaks inheritance and uses only grants made on it, instead of those of its ancestors';
COMMENT ON COLUMN um.scopes.id IS 'the node''s id, unique across organizations';
COMMENT ON COLUMN um.scopes.org_id IS 'the organization the node belongs to';
COMMENT ON COLUMN um.scopes.parent_id IS 'the parent node, of the same organization (kept by triggers: deleting a node deletes its subtree); NULL for a top-level node';
COMMENT ON COLUMN um.scopes.kind IS 'the application''s type of resource (project, environment, team, ...), a lowercase identifier';
COMMENT ON COLUMN um.scopes.name IS 'display name, unique among siblings of the same kind regardless of letter case';
COMMENT ON COLUMN um.scopes.created_at IS 'when the node was created';

CREATE TABLE um.memberships (
  id bigint GENERATED ALWAYS AS IDENTITY,
  org_id bigint NOT NULL REFERENCES um.organizations ON DELETE CASCADE,
  user_id bigint NOT NULL REFERENCES um.users ON DELETE CASCADE,
  role_id bigint NOT NULL,
  status text NOT NULL DEFAULT 'active'
    CONSTRAINT memberships_status_check CHECK (status IN ('active', 'suspended')),
  invited_by bigint REFERENCES um.users ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  suspended_until timestamptz,
  CONSTRAINT memberships_pkey PRIMARY KEY (org_id, id),
  CONSTRAINT memberships_org_id_user_id_key UNIQUE (org_id, user_id),
  CONSTRAINT memberships_role_fkey FOREIGN KEY (org_id, role_id) REFERENCES um.roles (org_id, id),
  CONSTRAINT memberships_suspended_until_check CHECK (suspended_until IS NULL OR status = 'suspended')
);
CREATE UNIQUE INDEX memberships_id_key ON um.memberships (id);
CREATE INDEX memberships_user_id_idx ON um.memberships (user_id);
CREATE INDEX memberships_role_id_idx ON um.memberships (role_id);
CREATE INDEX memberships_invited_by_idx ON um.memberships (invited_by) WHERE invited_by IS NOT NULL;
COMMENT ON TABLE um.memberships IS 'a user in an organization, with exactly one organization role; removal deletes the row, so re-adding starts afresh';
COMMENT ON COLUMN um.memberships.id IS 'the membership''s id';
COMMENT ON COLUMN um.memberships.org_id IS 'the organization';
COMMENT ON COLUMN um.memberships.user_id IS 'the member';
COMMENT ON COLUMN um.memberships.role_id IS 'the member''s one organization role; changed in place by um_set_org_role';
COMMENT ON COLUMN um.memberships.status IS
  'active or suspended (in this organization only: um_suspend_user with an organization); a suspended member holds no permissions there';
COMMENT ON COLUMN um.memberships.invited_by IS 'the user who invited or added the member, if known';
COMMENT ON COLUMN um.memberships.created_at IS 'when the user joined';
COMMENT ON COLUMN um.memberships.suspended_until IS 'when a timed suspension in this organization ends by itself (NULL: it lasts until a reactivation)';

CREATE TABLE um.teams (
  id bigint GENERATED ALWAYS AS IDENTITY,
  org_id bigint NOT NULL REFERENCES um.organizations ON DELETE CASCADE,
  name text NOT NULL CONSTRAINT teams_name_check CHECK (um_internal.display_name_is_valid(name, 100)),
  description text,
  scope_id bigint NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT teams_pkey PRIMARY KEY (org_id, id),
  CONSTRAINT teams_scope_fkey FOREIGN KEY (org_id, scope_id) REFERENCES um.scopes (org_id, id)
);
CREATE UNIQUE INDEX teams_org_id_name_key ON um.teams (org_id, lower(name));
CREATE UNIQUE INDEX teams_id_key ON um.teams (id);
CREATE INDEX teams_scope_id_idx ON um.teams (scope_id);
COMMENT ON TABLE um.teams IS 'teams of an organization; roles given within a team apply to the team''s scope node and below';
COMMENT ON COLUMN um.teams.scope_id IS 'the team space; created (kind "team") when not given';
COMMENT ON COLUMN um.teams.id IS 'the team''s id, unique across organizations';
COMMENT ON COLUMN um.teams.org_id IS 'the organization the team belongs to';
COMMENT ON COLUMN um.teams.name IS 'name, unique in the organization regardless of letter case';
COMMENT ON COLUMN um.teams.description IS 'free text, optional';
COMMENT ON COLUMN um.teams.created_at IS 'when the team was created';

CREATE TABLE um.team_members (
  org_id bigint NOT NULL,
  team_id bigint NOT NULL,
  user_id bigint NOT NULL,
  is_owner boolean NOT NULL DEFAULT false,
  added_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, team_id, user_id),
  CONSTRAINT team_members_team_fkey FOREIGN KEY (org_id, team_id) REFERENCES um.teams (org_id, id) ON DELETE CASCADE,
  CONSTRAINT team_members_membership_fkey FOREIGN KEY (org_id, user_id) REFERENCES um.memberships (org_id, user_id) ON DELETE CASCADE,
  CONSTRAINT team_members_one_owner EXCLUDE USING btree (org_id WITH =, team_id WITH =) WHERE (is_owner) DEFERRABLE INITIALLY IMMEDIATE
);
CREATE UNIQUE INDEX team_members_team_id_user_id_key ON um.team_members (team_id, user_id);
CREATE INDEX team_members_org_id_user_id_idx ON um.team_members (org_id, user_id);
-- the cache's user load: in which organizations a user is in a team
CREATE INDEX team_members_user_id_idx ON um.team_members (user_id);
COMMENT ON TABLE um.team_members IS 'members of a team (each must be a member of the organization); one of them is the owner, who cannot be removed';
COMMENT ON COLUMN um.team_members.org_id IS 'the organization of the team';
COMMENT ON COLUMN um.team_members.team_id IS 'the team';
COMMENT ON COLUMN um.team_members.user_id IS 'the member (a member of the organization)';
COMMENT ON COLUMN um.team_members.is_owner IS 'the team''s owner: exactly one per team, who cannot be removed (um_transfer_team_ownership moves it)';
COMMENT ON COLUMN um.team_members.added_at IS 'when the user joined the team';

CREATE TABLE um.team_member_roles (
  org_id bigint NOT NULL,
  team_id bigint NOT NULL,
  user_id bigint NOT NULL,
  role_id bigint NOT NULL,
  PRIMARY KEY (org_id, team_id, user_id, role_id),
  CONSTRAINT team_member_roles_member_fkey FOREIGN KEY (org_id, team_id, user_id)
    REFERENCES um.team_members (org_id, team_id, user_id) ON DELETE CASCADE,
  CONSTRAINT team_member_roles_role_fkey FOREIGN KEY (org_id, role_id) REFERENCES um.roles (org_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX team_member_roles_team_id_user_id_role_id_key ON um.team_member_roles (team_id, user_id, role_id);
CREATE INDEX team_member_roles_role_id_idx ON um.team_member_roles (role_id);
CREATE INDEX team_member_roles_org_id_user_id_idx ON um.team_member_roles (org_id, user_id);
COMMENT ON TABLE um.team_member_roles IS 'roles a member holds within a team: they apply only to the team''s scope';
COMMENT ON COLUMN um.team_member_roles.org_id IS 'the organization of the team';
COMMENT ON COLUMN um.team_member_roles.team_id IS 'the team';
COMMENT ON COLUMN um.team_member_roles.user_id IS 'the team member';
COMMENT ON COLUMN um.team_member_roles.role_id IS 'the role held within the team';

CREATE TABLE um.grants (
  id bigint GENERATED ALWAYS AS IDENTITY,
  org_id bigint NOT NULL,
  role_id bigint NOT NULL,
  user_id bigint,
  team_id bigint,
  scope_id bigint,
  scope_kind text CONSTRAINT grants_scope_kind_check CHECK (um_internal.identifier_is_valid(scope_kind)),
  granted_by bigint REFERENCES um.users ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT grants_pkey PRIMARY KEY (org_id, id),
  CONSTRAINT grants_one_grantee CHECK (num_nonnulls(user_id, team_id) = 1),
  CONSTRAINT grants_one_target CHECK (scope_id IS NULL OR scope_kind IS NULL),
  CONSTRAINT grants_role_fkey FOREIGN KEY (org_id, role_id) REFERENCES um.roles (org_id, id) ON DELETE CASCADE,
  CONSTRAINT grants_member_fkey FOREIGN KEY (org_id, user_id) REFERENCES um.memberships (org_id, user_id) ON DELETE CASCADE,
  CONSTRAINT grants_team_fkey FOREIGN KEY (org_id, team_id) REFERENCES um.teams (org_id, id) ON DELETE CASCADE,
  CONSTRAINT grants_scope_fkey FOREIGN KEY (org_id, scope_id) REFERENCES um.scopes (org_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX grants_unique_key ON um.grants
  (org_id, role_id, coalesce(user_id, 0), coalesce(team_id, 0), coalesce(scope_id, 0), coalesce(scope_kind, ''));
CREATE UNIQUE INDEX grants_id_key ON um.grants (id);
CREATE INDEX grants_org_id_user_id_idx ON um.grants (org_id, user_id) WHERE user_id IS NOT NULL;
-- the cache's user load: in which organizations a user holds grants
CREATE INDEX grants_user_id_idx ON um.grants (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX grants_team_id_idx ON um.grants (team_id) WHERE team_id IS NOT NULL;
CREATE INDEX grants_scope_id_idx ON um.grants (scope_id) WHERE scope_id IS NOT NULL;
CREATE INDEX grants_role_id_idx ON um.grants (role_id);
COMMENT ON TABLE um.grants IS 'a role given to a member or a team on one scope node (scope_id), on every node of a kind (scope_kind), or organization-wide (neither)';
COMMENT ON COLUMN um.grants.id IS 'the grant''s id';
COMMENT ON COLUMN um.grants.org_id IS 'the organization';
COMMENT ON COLUMN um.grants.role_id IS 'the role given';
COMMENT ON COLUMN um.grants.user_id IS 'the member it is given to; NULL when given to a team';
COMMENT ON COLUMN um.grants.team_id IS 'the team it is given to (all its members); NULL when given to a member';
COMMENT ON COLUMN um.grants.scope_id IS 'the node it applies to, with its descendants unless one breaks inheritance; NULL: not one node';
COMMENT ON COLUMN um.grants.scope_kind IS 'every node of this kind; NULL: not a kind';
COMMENT ON COLUMN um.grants.granted_by IS 'the user who made the grant, if known';
COMMENT ON COLUMN um.grants.created_at IS 'when the grant was made';

CREATE TABLE um.invitations (
  id bigint GENERATED ALWAYS AS IDENTITY,
  org_id bigint NOT NULL REFERENCES um.organizations ON DELETE CASCADE,
  email text NOT NULL CONSTRAINT invitations_email_check CHECK (um_internal.email_is_valid(email)),
  role_id bigint NOT NULL,
  team_id bigint,
  state text NOT NULL DEFAULT 'pending'
    CONSTRAINT invitations_state_check CHECK (state IN ('requested', 'pending', 'accepted', 'revoked', 'expired')),
  token_hash bytea,
  invited_by bigint REFERENCES um.users ON DELETE SET NULL,
  accepted_by bigint REFERENCES um.users ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz,
  decided_at timestamptz,
  CONSTRAINT invitations_pkey PRIMARY KEY (org_id, id),
  CONSTRAINT invitations_org_id_token_hash_key UNIQUE (org_id, token_hash),
  CONSTRAINT invitations_role_fkey FOREIGN KEY (org_id, role_id) REFERENCES um.roles (org_id, id) ON DELETE CASCADE,
  CONSTRAINT invitations_team_fkey FOREIGN KEY (org_id, team_id) REFERENCES um.teams (org_id, id) ON DELETE CASCADE,
  CONSTRAINT invitations_pending_has_token CHECK (state <> 'pending' OR (token_hash IS NOT NULL AND expires_at IS NOT NULL))
);
CREATE UNIQUE INDEX invitations_open_key ON um.invitations (org_id, lower(email)) WHERE state IN ('requested', 'pending');
CREATE UNIQUE INDEX invitations_id_key ON um.invitations (id);
CREATE UNIQUE INDEX invitations_token_hash_key ON um.invitations (token_hash);
CREATE INDEX invitations_lower_email_idx ON um.invitations (lower(email));
COMMENT ON TABLE um.invitations IS 'invitations to join an organization with a preset role (and team); tokens are stored only as hashes';
COMMENT ON COLUMN um.invitations.id IS 'the invitation''s id';
COMMENT ON COLUMN um.invitations.org_id IS 'the organization invited to';
COMMENT ON COLUMN um.invitations.email IS 'the address invited; at most one open (requested or pending) invitation per address and organization';
COMMENT ON COLUMN um.invitations.role_id IS 'the organization role the invitee gets on accepting';
COMMENT ON COLUMN um.invitations.team_id IS 'a team the invitee joins on accepting, optional';
COMMENT ON COLUMN um.invitations.state IS
  'requested (asked for from the login page, awaiting an invitation), pending (sent, awaiting acceptance), accepted, revoked or expired';
COMMENT ON COLUMN um.invitations.token_hash IS 'SHA-256 of the token mailed to the invitee; set while pending, cleared once decided';
COMMENT ON COLUMN um.invitations.invited_by IS 'the user who sent the invitation, if known';
COMMENT ON COLUMN um.invitations.accepted_by IS 'the user who accepted it';
COMMENT ON COLUMN um.invitations.created_at IS 'when it was sent (or last renewed) or requested';
COMMENT ON COLUMN um.invitations.expires_at IS 'a pending invitation can be accepted until then';
COMMENT ON COLUMN um.invitations.decided_at IS 'when it was accepted, revoked or expired';

CREATE TABLE um.sessions (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id bigint NOT NULL REFERENCES um.users ON DELETE CASCADE,
  token_hash bytea NOT NULL CONSTRAINT sessions_token_hash_key UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  method text NOT NULL DEFAULT 'password'
    CONSTRAINT sessions_method_check CHECK (method IN ('password', 'reset', 'invitation', 'verification', 'sso', 'key')),
  revoked_at timestamptz,
  revoked_reason text,
  password_changed_at timestamptz,
  idle_timeout integer CONSTRAINT sessions_idle_timeout_check CHECK (idle_timeout > 0),
  client_addr inet,
  user_agent text CONSTRAINT sessions_user_agent_check CHECK (char_length(user_agent) <= 512),
  assurance_level smallint NOT NULL DEFAULT 1 CONSTRAINT sessions_assurance_level_check CHECK (assurance_level IN (1, 2)),
  previous_token_hash bytea,
  authenticated_at timestamptz,
  CONSTRAINT sessions_expiry_check CHECK (expires_at > created_at),
  CONSTRAINT sessions_revoked_check CHECK ((revoked_at IS NULL) = (revoked_reason IS NULL))
);
CREATE INDEX sessions_user_id_idx ON um.sessions (user_id);
CREATE INDEX sessions_previous_token_hash_idx ON um.sessions (previous_token_hash) WHERE previous_token_hash IS NOT NULL;
-- When a session was last used, apart from it: um_begin records it there
-- without taking a lock on the session, which logouts, revocations and
-- limits update (src/session.c, touch_session).
CREATE TABLE um.session_activity (
  session_id bigint PRIMARY KEY REFERENCES um.sessions ON DELETE CASCADE,
  last_seen_at timestamptz NOT NULL
);
COMMENT ON TABLE um.session_activity IS 'when each session was last used, coarsely (um_begin writes at most every 5 minutes, never on a hot standby or in a read-only transaction, and never waits for a lock)';
COMMENT ON COLUMN um.session_activity.session_id IS 'the session';
COMMENT ON COLUMN um.session_activity.last_seen_at IS 'when um_begin (or um_refresh_session) last recorded its use';
COMMENT ON TABLE um.sessions IS 'login sessions; the token itself is never stored, only its SHA-256';
COMMENT ON COLUMN um.sessions.revoked_reason IS 'why the session ended early: logout, logout of all sessions, password change, suspension, loss of login';
COMMENT ON COLUMN um.sessions.id IS 'the session''s id';
COMMENT ON COLUMN um.sessions.user_id IS 'whose session it is';
COMMENT ON COLUMN um.sessions.token_hash IS 'SHA-256 of the session token um_login returned; um_begin looks it up';
COMMENT ON COLUMN um.sessions.created_at IS 'when the user logged in';
COMMENT ON COLUMN um.sessions.expires_at IS 'the session ends then (um.session_lifetime after login)';
COMMENT ON COLUMN um.sessions.method IS 'how the session began: password (um_login, um_change_password), reset (um_reset_password_and_login), invitation (um_accept_invitation_and_login), verification (um_verify_email_and_login), sso or key (identity providers and API keys: no um function starts those yet)';
COMMENT ON COLUMN um.sessions.revoked_at IS 'when the session was ended early; NULL while it lasts';
COMMENT ON COLUMN um.sessions.idle_timeout IS 'seconds without use after which it ends (um.session_idle_timeout, or a stricter organization''s session_idle_timeout); NULL: none';
COMMENT ON COLUMN um.sessions.client_addr IS 'the client''s address, as the backend passed it at login (SET LOCAL um.client_addr)';
COMMENT ON COLUMN um.sessions.user_agent IS 'the client''s user agent, as the backend passed it at login (SET LOCAL um.client_user_agent), 512 characters at most';
COMMENT ON COLUMN um.sessions.assurance_level IS '1: one factor; 2: a second factor was proven';
COMMENT ON COLUMN um.sessions.authenticated_at IS 'when the user last proved who they are in this session (the login, a second factor, um_reauthenticate): sensitive calls need it within um.step_up_window';
COMMENT ON COLUMN um.sessions.previous_token_hash IS 'SHA-256 of the token um_refresh_session replaced: presented again, it ends the session (a stolen token in use)';
COMMENT ON COLUMN um.sessions.password_changed_at IS 'the user''s password_changed_at that the login saw: um_begin refuses the session once the password changed since, even if the login committed after the change';

CREATE TABLE um.identity_providers (
  id bigint GENERATED ALWAYS AS IDENTITY,
  org_id bigint NOT NULL REFERENCES um.organizations ON DELETE CASCADE,
  name text NOT NULL CONSTRAINT identity_providers_name_check CHECK (um_internal.display_name_is_valid(name, 100)),
  protocol text NOT NULL CONSTRAINT identity_providers_protocol_check CHECK (protocol IN ('oidc', 'saml')),
  issuer text NOT NULL CONSTRAINT identity_providers_issuer_check CHECK (issuer ~ '^https://[^[:space:]]+$'),
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT identity_providers_pkey PRIMARY KEY (org_id, id)
);
CREATE UNIQUE INDEX identity_providers_id_key ON um.identity_providers (id);
CREATE UNIQUE INDEX identity_providers_org_id_name_key ON um.identity_providers (org_id, lower(name));
COMMENT ON TABLE um.identity_providers IS 'single sign-on providers linked to an organization';
COMMENT ON COLUMN um.identity_providers.id IS 'the provider''s id, unique across organizations';
COMMENT ON COLUMN um.identity_providers.org_id IS 'the organization whose members sign in through it';
COMMENT ON COLUMN um.identity_providers.name IS 'display name, unique in the organization regardless of letter case';
COMMENT ON COLUMN um.identity_providers.protocol IS 'oidc or saml';
COMMENT ON COLUMN um.identity_providers.issuer IS 'the provider''s issuer (OIDC) or entity id (SAML), an https URL';
COMMENT ON COLUMN um.identity_providers.created_at IS 'when the provider was added';

CREATE TABLE um.user_identities (
  org_id bigint NOT NULL,
  provider_id bigint NOT NULL,
  subject text NOT NULL CONSTRAINT user_identities_subject_check CHECK (length(subject) BETWEEN 1 AND 255),
  user_id bigint NOT NULL REFERENCES um.users ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, provider_id, subject),
  CONSTRAINT user_identities_provider_fkey FOREIGN KEY (org_id, provider_id) REFERENCES um.identity_providers (org_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX user_identities_provider_id_subject_key ON um.user_identities (provider_id, subject);
CREATE INDEX user_identities_user_id_idx ON um.user_identities (user_id);
COMMENT ON TABLE um.user_identities IS 'which user an identity provider''s subject is';
COMMENT ON COLUMN um.user_identities.org_id IS 'the organization of the provider';
COMMENT ON COLUMN um.user_identities.provider_id IS 'the identity provider';
COMMENT ON COLUMN um.user_identities.subject IS 'the provider''s identifier of the person (OIDC sub, SAML NameID)';
COMMENT ON COLUMN um.user_identities.user_id IS 'the um user that subject is';
COMMENT ON COLUMN um.user_identities.created_at IS 'when the link was made';

CREATE TABLE um.audit_events (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT clock_timestamp(),
  actor_user_id bigint,
  impersonator_user_id bigint,
  db_role name NOT NULL DEFAULT current_user,
  action text NOT NULL CONSTRAINT audit_events_action_check CHECK (action ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$'),
  outcome text NOT NULL DEFAULT 'ok' CONSTRAINT audit_events_outcome_check CHECK (outcome IN ('ok', 'denied', 'failed')),
  org_id bigint,
  target_type text,
  target_id bigint,
  details jsonb NOT NULL DEFAULT '{}' CONSTRAINT audit_events_details_check CHECK (jsonb_typeof(details) = 'object')
);
CREATE INDEX audit_events_org_id_at_id_idx ON um.audit_events (org_id, at, id);   -- an organization's trail, paged by (at, id)
CREATE INDEX audit_events_actor_user_id_idx ON um.audit_events (actor_user_id) WHERE actor_user_id IS NOT NULL;
COMMENT ON TABLE um.audit_events IS 'append-only trail of every lifecycle change and denied call; holds ids, never personal data';
COMMENT ON COLUMN um.audit_events.id IS 'the event''s id, increasing in the order events were written';
COMMENT ON COLUMN um.audit_events.at IS 'when it happened (clock time, not transaction start)';
COMMENT ON COLUMN um.audit_events.actor_user_id IS 'the acting user (the impersonated user while impersonating); NULL with nobody acting';
COMMENT ON COLUMN um.audit_events.impersonator_user_id IS 'the real user when actor_user_id was being impersonated; else NULL';
COMMENT ON COLUMN um.audit_events.db_role IS 'the database role that made the call (a lifecycle function''s caller, not um''s owner)';
COMMENT ON COLUMN um.audit_events.action IS 'what was done or attempted, dotted lowercase words, e.g. member.add, user.login';
COMMENT ON COLUMN um.audit_events.outcome IS
  'ok (done) or denied (refused: a missing permission, a guard, a failed login); failed is allowed but um writes none';
COMMENT ON COLUMN um.audit_events.org_id IS 'the organization concerned; NULL for account-wide events';
COMMENT ON COLUMN um.audit_events.target_type IS
  'the kind of thing acted on: user, organization, organization_domain, role, team, scope, invitation, permission, identity_provider, table';
COMMENT ON COLUMN um.audit_events.target_id IS 'the id of the thing acted on, in the table target_type names';
COMMENT ON COLUMN um.audit_events.details IS 'further facts of the event as a JSON object: ids and names of um objects, never personal data';

-- Email verification tokens: random, stored hashed, single use, expiring.
CREATE TABLE um.verification_tokens (
  token_hash bytea PRIMARY KEY,
  user_id bigint NOT NULL REFERENCES um.users ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  sets_password boolean NOT NULL DEFAULT false,
  claim boolean NOT NULL DEFAULT false
);
CREATE INDEX verification_tokens_user_id_idx ON um.verification_tokens (user_id);
COMMENT ON TABLE um.verification_tokens IS 'email verification tokens (only their SHA-256), single use, valid 48 hours';
COMMENT ON COLUMN um.verification_tokens.sets_password IS
  'a claim: whoever redeems it proves the mailbox and chooses the password, so no password someone else set survives (um_resend_verification, every sign-up, an administrator''s new user)';
COMMENT ON COLUMN um.verification_tokens.claim IS
  'asked for by a sign-up: whoever redeems it gets the account without what others attached to it while its mailbox was unproven (memberships, teams, grants, identity links, mobile number, attributes); kept by every later token until the address is verified';

-- Domains an organization owns.  The backend proves ownership (a DNS TXT
-- record, say) and records it with um_add_org_domain; a tenant user creates
-- accounts only for addresses there (um_create_user), so nobody learns
-- through um_create_user whether an address of someone else's is registered.
CREATE TABLE um.organization_domains (
  id bigint GENERATED ALWAYS AS IDENTITY,
  org_id bigint NOT NULL REFERENCES um.organizations ON DELETE CASCADE,
  domain text NOT NULL CONSTRAINT organization_domains_domain_check CHECK (um_internal.domain_is_valid(domain)),
  verified_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT organization_domains_pkey PRIMARY KEY (org_id, id),
  CONSTRAINT organization_domains_org_id_domain_key UNIQUE (org_id, domain)
);
-- one organization owns a domain: um_add_org_domain checks it under a lock
-- (a unique key without org_id would not shard by organization)
CREATE INDEX organization_domains_domain_idx ON um.organization_domains (domain);
COMMENT ON TABLE um.organization_domains IS
  'domains an organization has proven it owns (recorded by a um administrator): its members create accounts only for addresses there';
COMMENT ON COLUMN um.organization_domains.id IS 'the record''s id (audit events name it)';
COMMENT ON COLUMN um.organization_domains.org_id IS 'the organization that owns it';
COMMENT ON COLUMN um.organization_domains.domain IS 'the domain, in lowercase (punycode for internationalized ones); one organization owns it';
COMMENT ON COLUMN um.organization_domains.verified_at IS 'when a um administrator recorded the proof';

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
  cache_key text CONSTRAINT state_tables_cache_key_check
    CHECK (cache_key ~ '^(user|org):[a-z_]+(\|(user|org):[a-z_]+)*$'),
  dump_filter text,
  CONSTRAINT state_tables_rule_check CHECK ((access = 'tenant') = (read_rule IS NOT NULL)),
  CONSTRAINT state_tables_invalidating_check CHECK (invalidating_columns IS NULL OR evaluator_input),
  CONSTRAINT state_tables_cache_key_input_check CHECK (cache_key IS NULL OR evaluator_input)
);
COMMENT ON TABLE um.state_tables IS 'the registry of um''s tables, which invalidation triggers, um''s own row-level security, pg_dump''s configuration and the integrity checks are made from (installed by um, not user data)';
COMMENT ON COLUMN um.state_tables.relname IS 'a table in schema um';
COMMENT ON COLUMN um.state_tables.access IS 'tenant: application roles read the rows read_rule allows; secret: um administrators only; catalog: everybody reads it, nobody but um writes it';
COMMENT ON COLUMN um.state_tables.read_rule IS 'for tenant tables, the policy expression of the rows an application role may read; %1$I stands for the extension''s schema';
COMMENT ON COLUMN um.state_tables.readable_columns IS 'the columns application roles may read, when not all (the rest hold secrets)';
COMMENT ON COLUMN um.state_tables.evaluator_input IS 'um_has_permission''s answers depend on its rows: a change drops the cache entries it touches in every backend';
COMMENT ON COLUMN um.state_tables.invalidating_columns IS 'the columns whose update invalidates, when not all';
COMMENT ON COLUMN um.state_tables.cache_key IS 'whose cache entries a changed row touches: user:<column> (that user''s) or org:<column> (that organization''s), alternatives after | (the first non-NULL column decides); NULL: every entry';
COMMENT ON COLUMN um.state_tables.dump_filter IS 'pg_dump keeps the rows this condition selects ('''' for all), with the table''s id sequence; NULL: made by um''s script, not dumped';

INSERT INTO um.state_tables (relname, access, read_rule, readable_columns, evaluator_input, invalidating_columns, cache_key, dump_filter) VALUES
  ('organizations',     'tenant', '%1$I.um_has_permission(''org:read'', id)', NULL, false, NULL, NULL, ''),
  ('organization_domains', 'tenant', '%1$I.um_has_permission(''org:read'', org_id)', NULL, false, NULL, NULL, ''),
  ('users',             'tenant', 'id = %1$I.um_current_user_id() OR EXISTS (SELECT 1 FROM um.memberships m WHERE m.user_id = users.id AND %1$I.um_has_permission(''member:read'', m.org_id))',
                        '{id,email,name,timezone,locale,mobile,allow_login,status,suspended_at,suspended_until,email_verified_at,attributes,created_at,updated_at}',
                        true, '{id,status,allow_login,suspended_until}', 'user:id', ''),
  ('builtin_roles',     'catalog', NULL, NULL, false, NULL, NULL, 'WHERE source = ''application'''),
  ('roles',             'tenant', '%1$I.um_has_permission(''role:read'', org_id) OR %1$I.um_has_permission(''member:read'', org_id)', NULL, true, NULL, 'org:org_id', ''),
  ('role_inclusions',   'tenant', '%1$I.um_has_permission(''role:read'', org_id)', NULL, true, NULL, 'org:org_id', ''),
  ('permissions',       'catalog', NULL, NULL, true, NULL, NULL, 'WHERE NOT builtin'),
  ('role_permissions',  'tenant', '%1$I.um_has_permission(''role:read'', org_id)', NULL, true, NULL, 'org:org_id', ''),
  ('scopes',            'tenant', '%1$I.um_has_permission(''scope:read'', org_id)', NULL, true, NULL, 'org:org_id', ''),
  ('memberships',       'tenant', '%1$I.um_has_permission(''member:read'', org_id) OR user_id = %1$I.um_current_user_id(org_id)', NULL, true, NULL, 'user:user_id', ''),
  ('teams',             'tenant', '%1$I.um_has_permission(''team:read'', org_id)', NULL, true, NULL, 'org:org_id', ''),
  ('team_members',      'tenant', '%1$I.um_has_permission(''team:read'', org_id)', NULL, true, NULL, 'user:user_id', ''),
  ('team_member_roles', 'tenant', '%1$I.um_has_permission(''team:read'', org_id)', NULL, true, NULL, 'user:user_id', ''),
  ('grants',            'tenant', '%1$I.um_has_permission(''role:read'', org_id)', NULL, true, NULL, 'user:user_id|org:org_id', ''),
  ('invitations',       'tenant', '%1$I.um_has_permission(''member:invite'', org_id)', NULL, false, NULL, NULL, ''),
  ('sessions',          'secret', NULL, NULL, false, NULL, NULL, ''),
  ('session_activity',  'secret', NULL, NULL, false, NULL, NULL, ''),
  ('identity_providers', 'secret', NULL, NULL, false, NULL, NULL, ''),
  ('user_identities',   'secret', NULL, NULL, false, NULL, NULL, ''),
  -- events about oneself: those of an organization only where the identity
  -- reaches it (an impersonator sees the target's events in the impersonated
  -- organizations only), those of none only as oneself
  ('audit_events',      'tenant', '%1$I.um_has_permission(''audit:read'', org_id) OR (target_type = ''user'' AND (target_id = %1$I.um_current_user_id(org_id) OR (org_id IS NULL AND target_id = %1$I.um_current_user_id() AND target_id = %1$I.um_real_user_id())))',
                        NULL, false, NULL, NULL, ''),
  ('builtin_role_permissions', 'catalog', NULL, NULL, false, NULL, NULL, 'WHERE source = ''application'''),
  ('cache_sentinel',    'secret', NULL, NULL, false, NULL, NULL, NULL),
  ('verification_tokens', 'secret', NULL, NULL, false, NULL, NULL, ''),
  ('password_resets',   'secret', NULL, NULL, false, NULL, NULL, NULL),   -- not dumped: a dump must not carry a code's hash (8 digits are searched in a second)
  ('email_changes',     'secret', NULL, NULL, false, NULL, NULL, ''),
  ('mfa_factors',       'secret', NULL, NULL, false, NULL, NULL, ''),
  ('mfa_recovery_codes', 'secret', NULL, NULL, false, NULL, NULL, ''),
  ('login_challenges',  'secret', NULL, NULL, false, NULL, NULL, NULL),   -- not dumped: 5 minutes long
  ('user_attribute_rules', 'catalog', NULL, NULL, false, NULL, NULL, ''),
  ('state_tables',      'catalog', NULL, NULL, false, NULL, NULL, NULL);
COMMENT ON COLUMN um.verification_tokens.token_hash IS 'SHA-256 of the token mailed to the user; the token itself is never stored';
COMMENT ON COLUMN um.verification_tokens.user_id IS 'whose address the token proves';
COMMENT ON COLUMN um.verification_tokens.created_at IS 'when it was issued';
COMMENT ON COLUMN um.verification_tokens.expires_at IS 'it can be redeemed until then (48 hours after issue)';
