-- um: multi-tenant user management enforced by PostgreSQL.
--
-- This install script is assembled by the Makefile from sql/install/*.sql,
-- in file-name order.  Tables live in schema "um"; the functions meant for
-- applications and administrators are named um_* and live in the schema the
-- extension is created in (public by default), so that a policy reads
-- um_has_permission('invoice:read', org_id).  Internal helpers live in "um".
--
-- Every function pins its search_path and names what it uses with a schema,
-- so a caller's search_path can never substitute an object of its own.

\echo Use "CREATE EXTENSION um" to load this file. \quit

CREATE SCHEMA um;
COMMENT ON SCHEMA um IS 'um: users, organizations, memberships, teams, roles, scopes, grants, invitations, sessions and audit events';
REVOKE ALL ON SCHEMA um FROM PUBLIC;
-- Validators: the rules for names, addresses and permission names, as
-- IMMUTABLE functions shared by CHECK constraints (the last line of defence)
-- and by the triggers and API functions that explain a rejection with a
-- um-specific SQLSTATE and a hint.

CREATE FUNCTION um.permission_name_is_valid(name text, allow_wildcards boolean DEFAULT false)
RETURNS boolean
AS 'MODULE_PATHNAME', 'um_permission_name_is_valid'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION um.permission_name_is_valid(text, boolean) IS
  'true when name is "resource:action" (lowercase ASCII letters, digits, "_" and "-"); with allow_wildcards "*" may stand for a whole part';

CREATE FUNCTION um.assert_permission_name(name text, allow_wildcards boolean DEFAULT false)
RETURNS text
AS 'MODULE_PATHNAME', 'um_assert_permission_name'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION um.assert_permission_name(text, boolean) IS
  'returns name, or raises SQLSTATE UM010 saying what is wrong with it';

CREATE FUNCTION @extschema@.um_permission_matches(pattern text, permission text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'um_permission_matches'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.um_permission_matches(text, text) IS
  'does a grant of pattern (which may use "*" for a whole part) cover permission?  e.g. um_permission_matches(''service:*'', ''service:read'')';

-- Pragmatic RFC 5321 shape: ASCII local part of at most 64 bytes (dot-atom),
-- a domain of at least two DNS labels with an alphabetic top-level label,
-- at most 254 bytes in all.  Internationalized domains are accepted in their
-- punycode (xn--) form.
CREATE FUNCTION um.email_is_valid(email text)
RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN octet_length(email) <= 254
   AND octet_length(split_part(email, '@', 1)) <= 64
   AND email ~ '^[A-Za-z0-9!#$%&''*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&''*+/=?^_`{|}~-]+)*@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+([A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59})$';
COMMENT ON FUNCTION um.email_is_valid(text) IS 'true when email is a plausible ASCII e-mail address (IDN domains in punycode)';

-- Display names (organizations, users, roles, teams, scope nodes): no
-- surrounding blanks, no control characters, 1 to max_len characters.
CREATE FUNCTION um.display_name_is_valid(name text, max_len integer DEFAULT 200)
RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN name = btrim(name, E' \t\r\n') AND length(name) BETWEEN 1 AND max_len AND name !~ '[[:cntrl:]]';
COMMENT ON FUNCTION um.display_name_is_valid(text, integer) IS 'true when name has 1 to max_len characters, no surrounding blanks and no control characters';

CREATE FUNCTION um.slug_is_valid(slug text)
RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN slug ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$';
COMMENT ON FUNCTION um.slug_is_valid(text) IS 'true when slug is 1 to 63 lowercase letters, digits and inner hyphens (usable in a URL or host name)';

-- BCP 47 subset: language, optional script, optional region ("en", "pt-BR", "zh-Hant-TW", "es-419").
CREATE FUNCTION um.locale_is_valid(locale text)
RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN locale ~ '^[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?$';
COMMENT ON FUNCTION um.locale_is_valid(text) IS 'true when locale is a BCP 47 language tag such as en, pt-BR, zh-Hant-TW or es-419';

-- E.164: "+", country code, subscriber number; 8 to 15 digits in all.
CREATE FUNCTION um.mobile_is_valid(mobile text)
RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN mobile ~ '^\+[1-9][0-9]{6,14}$';
COMMENT ON FUNCTION um.mobile_is_valid(text) IS 'true when mobile is an E.164 number such as +14155550123';

-- Identifiers chosen by applications: scope kinds, audit actions.
CREATE FUNCTION um.identifier_is_valid(ident text)
RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN ident ~ '^[a-z][a-z0-9_]{0,62}$';
COMMENT ON FUNCTION um.identifier_is_valid(text) IS 'true when ident is a lowercase identifier of at most 63 bytes';

-- A time zone is valid when it has the shape of an IANA name and PostgreSQL
-- knows it.  STABLE, not IMMUTABLE: the time zone database may change.
CREATE FUNCTION um.timezone_is_valid(tz text)
RETURNS boolean
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF tz !~ '^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$' OR length(tz) > 64 THEN
    RETURN false;
  END IF;
  PERFORM pg_catalog.now() AT TIME ZONE tz;
  RETURN true;
EXCEPTION WHEN invalid_parameter_value OR feature_not_supported THEN
  RETURN false;
END
$$;
COMMENT ON FUNCTION um.timezone_is_valid(text) IS 'true when tz is an IANA time zone name PostgreSQL knows, such as Europe/Paris';
-- The data model.  Organization-scoped tables carry org_id and reference
-- each other through (org_id, id) pairs, so a row can never point at a role,
-- team, scope or member of another organization: the foreign keys say so.
-- Their primary keys and unique constraints all lead with org_id, so they can
-- be sharded by organization (users, permissions and the built-in role
-- template are global: reference tables).  Unique indexes on the ids alone
-- (the identity values are unique anyway) tell the planner that a lookup by
-- id finds one row, even before a bulk-loaded table is analyzed; a sharded
-- deployment drops them (see README, Scaling out).

CREATE TABLE um.organizations (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  slug text NOT NULL CONSTRAINT organizations_slug_check CHECK (um.slug_is_valid(slug)),
  name text NOT NULL CONSTRAINT organizations_name_check CHECK (um.display_name_is_valid(name)),
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
  CONSTRAINT organizations_slug_key UNIQUE (slug)
);
COMMENT ON TABLE um.organizations IS 'tenants; every other organization-scoped row belongs to one';
COMMENT ON COLUMN um.organizations.slug IS 'unique short name for URLs: lowercase letters, digits, inner hyphens';
COMMENT ON COLUMN um.organizations.allow_invite_requests IS 'people may request an invitation from the login page';
COMMENT ON COLUMN um.organizations.password_login_disabled IS 'members must sign in through an identity provider; needs one in um.identity_providers';
COMMENT ON COLUMN um.organizations.settings IS 'further settings of the application, a JSON object';

CREATE TABLE um.users (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  email text NOT NULL CONSTRAINT users_email_check CHECK (um.email_is_valid(email)),
  name text CONSTRAINT users_name_check CHECK (um.display_name_is_valid(name)),
  timezone text NOT NULL DEFAULT 'UTC',
  locale text NOT NULL DEFAULT 'en' CONSTRAINT users_locale_check CHECK (um.locale_is_valid(locale)),
  mobile text CONSTRAINT users_mobile_check CHECK (um.mobile_is_valid(mobile)),
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
  CONSTRAINT users_suspended_at_check CHECK ((status = 'suspended') = (suspended_at IS NOT NULL))
);
CREATE UNIQUE INDEX users_email_key ON um.users (lower(email));
COMMENT ON TABLE um.users IS 'people; a user belongs to organizations through um.memberships';
COMMENT ON COLUMN um.users.email IS 'unique regardless of letter case';
COMMENT ON COLUMN um.users.allow_login IS 'false: a notification-only user, who cannot log in and holds no permissions';
COMMENT ON COLUMN um.users.status IS 'active or suspended; suspension keeps everything and blocks all access';
COMMENT ON COLUMN um.users.password_hash IS 'bcrypt hash; NULL for users who sign in only through an identity provider';
COMMENT ON COLUMN um.users.attributes IS 'key/value attributes of the user for the application, a JSON object';

-- Built-in roles: the template every new organization is seeded from.
CREATE TABLE um.builtin_roles (
  key text PRIMARY KEY,
  name text NOT NULL UNIQUE,
  description text NOT NULL,
  position integer NOT NULL UNIQUE
);
COMMENT ON TABLE um.builtin_roles IS 'the built-in organization roles seeded in every organization (installed by um, not user data)';

CREATE TABLE um.roles (
  id bigint GENERATED ALWAYS AS IDENTITY,
  org_id bigint NOT NULL REFERENCES um.organizations ON DELETE CASCADE,
  name text NOT NULL CONSTRAINT roles_name_check CHECK (um.display_name_is_valid(name, 100)),
  description text,
  builtin text REFERENCES um.builtin_roles (key),
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT roles_pkey PRIMARY KEY (org_id, id),
  CONSTRAINT roles_org_id_builtin_key UNIQUE (org_id, builtin)
);
CREATE UNIQUE INDEX roles_id_key ON um.roles (id);
CREATE UNIQUE INDEX roles_org_id_name_key ON um.roles (org_id, lower(name));
COMMENT ON TABLE um.roles IS 'roles of an organization: built-in (builtin is set; not renamable or deletable, permissions editable) or custom';

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

CREATE TABLE um.permissions (
  name text PRIMARY KEY CONSTRAINT permissions_name_check CHECK (um.permission_name_is_valid(name, false)),
  resource text GENERATED ALWAYS AS (split_part(name, ':', 1)) STORED,
  action text GENERATED ALWAYS AS (split_part(name, ':', 2)) STORED,
  description text,
  builtin boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE um.permissions IS 'the permission catalog: every "resource:action" um or the application knows; checks of other names are errors';

CREATE TABLE um.role_permissions (
  org_id bigint NOT NULL,
  role_id bigint NOT NULL,
  permission text NOT NULL
    CONSTRAINT role_permissions_permission_check CHECK (um.permission_name_is_valid(permission, true)),
  PRIMARY KEY (org_id, role_id, permission),
  FOREIGN KEY (org_id, role_id) REFERENCES um.roles (org_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX role_permissions_role_id_permission_key ON um.role_permissions (role_id, permission);
COMMENT ON TABLE um.role_permissions IS 'what a role grants: permission names or patterns with "*" for a whole part (service:*, *:read, *)';

CREATE TABLE um.scopes (
  id bigint GENERATED ALWAYS AS IDENTITY,
  org_id bigint NOT NULL REFERENCES um.organizations ON DELETE CASCADE,
  parent_id bigint,
  kind text NOT NULL CONSTRAINT scopes_kind_check CHECK (um.identifier_is_valid(kind)),
  name text NOT NULL CONSTRAINT scopes_name_check CHECK (um.display_name_is_valid(name)),
  ref text CONSTRAINT scopes_ref_check CHECK (length(ref) BETWEEN 1 AND 200),
  inherit boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT scopes_pkey PRIMARY KEY (org_id, id),
  CONSTRAINT scopes_parent_fkey FOREIGN KEY (org_id, parent_id) REFERENCES um.scopes (org_id, id) ON DELETE CASCADE,
  CONSTRAINT scopes_not_own_parent CHECK (parent_id <> id)
);
CREATE UNIQUE INDEX scopes_id_key ON um.scopes (id);
CREATE INDEX scopes_parent_id_idx ON um.scopes (parent_id);
CREATE UNIQUE INDEX scopes_sibling_name_key ON um.scopes (org_id, coalesce(parent_id, 0), kind, lower(name));
CREATE UNIQUE INDEX scopes_ref_key ON um.scopes (org_id, kind, ref) WHERE ref IS NOT NULL;
COMMENT ON TABLE um.scopes IS 'the tree of resources of an organization (project, environment, application, dashboard group, team space, ...)';
COMMENT ON COLUMN um.scopes.ref IS 'the application''s own key for the resource this node stands for';
COMMENT ON COLUMN um.scopes.inherit IS 'false: the node breaks inheritance and uses only grants made on it, instead of those of its ancestors';

CREATE TABLE um.memberships (
  id bigint GENERATED ALWAYS AS IDENTITY,
  org_id bigint NOT NULL REFERENCES um.organizations ON DELETE CASCADE,
  user_id bigint NOT NULL REFERENCES um.users ON DELETE CASCADE,
  role_id bigint NOT NULL,
  status text NOT NULL DEFAULT 'active'
    CONSTRAINT memberships_status_check CHECK (status IN ('active', 'suspended')),
  invited_by bigint REFERENCES um.users ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT memberships_pkey PRIMARY KEY (org_id, id),
  CONSTRAINT memberships_org_id_user_id_key UNIQUE (org_id, user_id),
  CONSTRAINT memberships_role_fkey FOREIGN KEY (org_id, role_id) REFERENCES um.roles (org_id, id)
);
CREATE UNIQUE INDEX memberships_id_key ON um.memberships (id);
CREATE INDEX memberships_user_id_idx ON um.memberships (user_id);
CREATE INDEX memberships_role_id_idx ON um.memberships (role_id);
CREATE INDEX memberships_invited_by_idx ON um.memberships (invited_by) WHERE invited_by IS NOT NULL;
COMMENT ON TABLE um.memberships IS 'a user in an organization, with exactly one organization role; removal deletes the row, so re-adding starts afresh';

CREATE TABLE um.teams (
  id bigint GENERATED ALWAYS AS IDENTITY,
  org_id bigint NOT NULL REFERENCES um.organizations ON DELETE CASCADE,
  name text NOT NULL CONSTRAINT teams_name_check CHECK (um.display_name_is_valid(name, 100)),
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
COMMENT ON TABLE um.team_members IS 'members of a team (each must be a member of the organization); one of them is the owner, who cannot be removed';

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

CREATE TABLE um.grants (
  id bigint GENERATED ALWAYS AS IDENTITY,
  org_id bigint NOT NULL,
  role_id bigint NOT NULL,
  user_id bigint,
  team_id bigint,
  scope_id bigint,
  scope_kind text CONSTRAINT grants_scope_kind_check CHECK (um.identifier_is_valid(scope_kind)),
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
CREATE INDEX grants_team_id_idx ON um.grants (team_id) WHERE team_id IS NOT NULL;
CREATE INDEX grants_scope_id_idx ON um.grants (scope_id) WHERE scope_id IS NOT NULL;
CREATE INDEX grants_role_id_idx ON um.grants (role_id);
COMMENT ON TABLE um.grants IS 'a role given to a member or a team on one scope node (scope_id), on every node of a kind (scope_kind), or organization-wide (neither)';

CREATE TABLE um.invitations (
  id bigint GENERATED ALWAYS AS IDENTITY,
  org_id bigint NOT NULL REFERENCES um.organizations ON DELETE CASCADE,
  email text NOT NULL CONSTRAINT invitations_email_check CHECK (um.email_is_valid(email)),
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

CREATE TABLE um.sessions (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id bigint NOT NULL REFERENCES um.users ON DELETE CASCADE,
  token_hash bytea NOT NULL CONSTRAINT sessions_token_hash_key UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  method text NOT NULL DEFAULT 'password' CONSTRAINT sessions_method_check CHECK (method IN ('password', 'sso')),
  revoked_at timestamptz,
  revoked_reason text,
  CONSTRAINT sessions_expiry_check CHECK (expires_at > created_at),
  CONSTRAINT sessions_revoked_check CHECK ((revoked_at IS NULL) = (revoked_reason IS NULL))
);
CREATE INDEX sessions_user_id_idx ON um.sessions (user_id);
COMMENT ON TABLE um.sessions IS 'login sessions; the token itself is never stored, only its SHA-256';
COMMENT ON COLUMN um.sessions.revoked_reason IS 'why the session ended early: logout, logout of all sessions, password change, suspension, loss of login';

CREATE TABLE um.identity_providers (
  id bigint GENERATED ALWAYS AS IDENTITY,
  org_id bigint NOT NULL REFERENCES um.organizations ON DELETE CASCADE,
  name text NOT NULL CONSTRAINT identity_providers_name_check CHECK (um.display_name_is_valid(name, 100)),
  protocol text NOT NULL CONSTRAINT identity_providers_protocol_check CHECK (protocol IN ('oidc', 'saml')),
  issuer text NOT NULL CONSTRAINT identity_providers_issuer_check CHECK (issuer ~ '^https://[^[:space:]]+$'),
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT identity_providers_pkey PRIMARY KEY (org_id, id)
);
CREATE UNIQUE INDEX identity_providers_id_key ON um.identity_providers (id);
CREATE UNIQUE INDEX identity_providers_org_id_name_key ON um.identity_providers (org_id, lower(name));
COMMENT ON TABLE um.identity_providers IS 'single sign-on providers linked to an organization';

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
CREATE INDEX audit_events_org_id_at_idx ON um.audit_events (org_id, at);
CREATE INDEX audit_events_actor_user_id_idx ON um.audit_events (actor_user_id) WHERE actor_user_id IS NOT NULL;
COMMENT ON TABLE um.audit_events IS 'append-only trail of every lifecycle change and denied call; holds ids, never personal data';
-- Rules the foreign keys and CHECK constraints cannot say: validation with
-- explanations, cycles, protected built-in roles, the Root an organization
-- must keep, the owner a team must keep, the append-only audit trail.
-- Each raises a um SQLSTATE (class UM, listed in README.md) with a hint.
-- Row-level rules that only validate are BEFORE triggers; rules over a whole
-- organization are AFTER ... FOR EACH STATEMENT triggers over the transition
-- table, so a bulk change is checked once per organization, after all its
-- rows are in place.

-- um.lock_organization: serialize changes to one organization's invariants.
-- Updating (not just locking) the row makes a concurrent REPEATABLE READ
-- transaction fail with a serialization error instead of deciding on a stale
-- snapshot; under READ COMMITTED the second transaction waits and the checks
-- after this call see what the first one committed.  Returns false when the
-- organization no longer exists (it is being deleted).
CREATE FUNCTION um.lock_organization(p_org_id bigint)
RETURNS boolean
LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  UPDATE um.organizations SET revision = revision + 1 WHERE id = p_org_id;
  RETURN FOUND;
END
$$;

-- users ---------------------------------------------------------------------
CREATE FUNCTION um.users_before_write()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF NOT um.email_is_valid(NEW.email) THEN
    RAISE EXCEPTION 'invalid email address "%"', NEW.email
      USING ERRCODE = 'UM001',
            DETAIL = 'An address is local-part@domain, in ASCII, at most 254 bytes, with a domain of at least two labels.',
            HINT = 'Check the address for typos; write internationalized domains in their xn-- (punycode) form.';
  END IF;
  IF NEW.name IS NOT NULL AND NOT um.display_name_is_valid(NEW.name) THEN
    RAISE EXCEPTION 'invalid user name "%"', NEW.name
      USING ERRCODE = 'UM003',
            DETAIL = 'A name has 1 to 200 characters, no leading or trailing blanks and no control characters.',
            HINT = 'Trim the name, or pass NULL for a user without a name.';
  END IF;
  IF (TG_OP = 'INSERT' OR NEW.timezone IS DISTINCT FROM OLD.timezone)
     AND NOT um.timezone_is_valid(NEW.timezone) THEN
    RAISE EXCEPTION 'unknown time zone "%"', NEW.timezone
      USING ERRCODE = 'UM004',
            HINT = 'Use an IANA time zone name such as UTC, Europe/Paris or America/New_York (see pg_timezone_names).';
  END IF;
  IF NOT um.locale_is_valid(NEW.locale) THEN
    RAISE EXCEPTION 'invalid locale "%"', NEW.locale
      USING ERRCODE = 'UM005',
            HINT = 'Use a BCP 47 language tag such as en, en-GB, pt-BR or zh-Hant-TW.';
  END IF;
  IF NEW.mobile IS NOT NULL AND NOT um.mobile_is_valid(NEW.mobile) THEN
    RAISE EXCEPTION 'invalid mobile number "%"', NEW.mobile
      USING ERRCODE = 'UM006',
            HINT = 'Use the E.164 form: "+", country code and number, digits only, e.g. +14155550123.';
  END IF;
  IF jsonb_typeof(NEW.attributes) IS DISTINCT FROM 'object' THEN
    RAISE EXCEPTION 'user attributes must be a JSON object'
      USING ERRCODE = 'UM007',
            DETAIL = format('The value given is a JSON %s.', coalesce(jsonb_typeof(NEW.attributes), 'null')),
            HINT = 'Pass key/value pairs, e.g. ''{"department": "finance"}''.';
  END IF;

  IF TG_OP = 'UPDATE' THEN
    NEW.updated_at := now();
    IF lower(NEW.email) <> lower(OLD.email) THEN
      NEW.email_verified_at := NULL;      -- a new address must be verified again
    END IF;
  END IF;
  -- a change of status records (or clears) when the user was suspended
  IF TG_OP = 'INSERT' OR NEW.status <> OLD.status THEN
    NEW.suspended_at := CASE WHEN NEW.status = 'suspended' THEN coalesce(NEW.suspended_at, now()) END;
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER users_before_write BEFORE INSERT OR UPDATE ON um.users
  FOR EACH ROW EXECUTE FUNCTION um.users_before_write();

-- organizations ---------------------------------------------------------------
CREATE FUNCTION um.organizations_before_write()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.slug = OLD.slug AND NEW.name = OLD.name
     AND NEW.password_login_disabled = OLD.password_login_disabled THEN
    RETURN NEW;                           -- e.g. um.lock_organization
  END IF;
  IF NOT um.slug_is_valid(NEW.slug) THEN
    RAISE EXCEPTION 'invalid organization slug "%"', NEW.slug
      USING ERRCODE = 'UM002',
            DETAIL = 'A slug has 1 to 63 lowercase ASCII letters, digits and hyphens, and starts and ends with a letter or digit.',
            HINT = 'Use something like "acme" or "acme-eu".';
  END IF;
  IF NOT um.display_name_is_valid(NEW.name) THEN
    RAISE EXCEPTION 'invalid organization name "%"', NEW.name
      USING ERRCODE = 'UM003',
            DETAIL = 'A name has 1 to 200 characters, no leading or trailing blanks and no control characters.',
            HINT = 'Trim the name.';
  END IF;
  -- Checked when the setting is switched on.  (A new row cannot have an
  -- identity provider yet; rows that arrive with it on come from pg_restore,
  -- whose providers follow.)
  IF TG_OP = 'UPDATE' AND NEW.password_login_disabled AND NOT OLD.password_login_disabled
     AND NOT EXISTS (SELECT 1 FROM um.identity_providers p WHERE p.org_id = NEW.id) THEN
    RAISE EXCEPTION 'organization "%" has no identity provider', NEW.slug
      USING ERRCODE = 'UM045',
            DETAIL = 'Disabling password login without an identity provider would lock every member out.',
            HINT = 'Link and test an identity provider for the organization first, then disable password login.';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER organizations_before_write BEFORE INSERT OR UPDATE ON um.organizations
  FOR EACH ROW EXECUTE FUNCTION um.organizations_before_write();

CREATE FUNCTION um.identity_providers_before_delete()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_slug text;
BEGIN
  SELECT o.slug INTO v_slug FROM um.organizations o
   WHERE o.id = OLD.org_id AND o.password_login_disabled;
  IF FOUND AND NOT EXISTS (SELECT 1 FROM um.identity_providers p
                            WHERE p.org_id = OLD.org_id AND p.id <> OLD.id) THEN
    RAISE EXCEPTION 'cannot remove the last identity provider of organization "%"', v_slug
      USING ERRCODE = 'UM045',
            DETAIL = 'Password login is disabled there, so members could no longer sign in.',
            HINT = 'Enable password login for the organization first, or link another identity provider.';
  END IF;
  RETURN OLD;
END
$$;
CREATE TRIGGER identity_providers_before_delete BEFORE DELETE ON um.identity_providers
  FOR EACH ROW EXECUTE FUNCTION um.identity_providers_before_delete();

-- roles -----------------------------------------------------------------------
CREATE FUNCTION um.roles_before_write()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    IF OLD.builtin IS NOT NULL
       AND EXISTS (SELECT 1 FROM um.organizations o WHERE o.id = OLD.org_id) THEN
      RAISE EXCEPTION 'built-in role "%" cannot be deleted', OLD.name
        USING ERRCODE = 'UM042',
              DETAIL = 'Every organization keeps its built-in roles; their permissions can be edited.',
              HINT = 'Edit the role''s permissions instead, or create a custom role.';
    END IF;
    RETURN OLD;
  END IF;
  IF TG_OP = 'UPDATE' THEN
    IF NEW.org_id <> OLD.org_id THEN
      RAISE EXCEPTION 'a role cannot move to another organization'
        USING ERRCODE = 'UM046',
              HINT = 'Create a role of the same name in the other organization.';
    END IF;
    IF OLD.builtin IS NOT NULL AND (NEW.name <> OLD.name OR NEW.builtin IS DISTINCT FROM OLD.builtin) THEN
      RAISE EXCEPTION 'built-in role "%" cannot be renamed', OLD.name
        USING ERRCODE = 'UM042',
              DETAIL = 'Built-in roles keep their names in every organization so that everyone means the same role by them.',
              HINT = 'Create a custom role with the name you want, including the built-in role if it should grant the same.';
    END IF;
    IF OLD.builtin IS NULL AND NEW.builtin IS NOT NULL THEN
      RAISE EXCEPTION 'custom role "%" cannot become a built-in role', OLD.name
        USING ERRCODE = 'UM042',
              HINT = 'Built-in roles are created with the organization.';
    END IF;
  END IF;
  IF NOT um.display_name_is_valid(NEW.name, 100) THEN
    RAISE EXCEPTION 'invalid role name "%"', NEW.name
      USING ERRCODE = 'UM003',
            DETAIL = 'A name has 1 to 100 characters, no leading or trailing blanks and no control characters.',
            HINT = 'Trim the name.';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER roles_before_write BEFORE INSERT OR UPDATE OR DELETE ON um.roles
  FOR EACH ROW EXECUTE FUNCTION um.roles_before_write();

CREATE FUNCTION um.role_inclusions_check_cycle()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_role text;
  v_included text;
BEGIN
  PERFORM um.lock_organization(NEW.org_id);
  IF EXISTS (
      WITH RECURSIVE reach(role_id) AS (
        SELECT NEW.included_role_id
        UNION
        SELECT ri.included_role_id
          FROM um.role_inclusions ri JOIN reach ON ri.role_id = reach.role_id)
      SELECT 1 FROM reach WHERE reach.role_id = NEW.role_id) THEN
    SELECT name INTO v_role FROM um.roles WHERE id = NEW.role_id;
    SELECT name INTO v_included FROM um.roles WHERE id = NEW.included_role_id;
    RAISE EXCEPTION 'role "%" cannot include role "%": that would make a cycle', v_role, v_included
      USING ERRCODE = 'UM040',
            DETAIL = format('Role "%s" already includes role "%s", directly or through other roles.', v_included, v_role),
            HINT = 'Include the roles in one direction only; a composite role includes smaller ones.';
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER role_inclusions_check_cycle AFTER INSERT OR UPDATE ON um.role_inclusions
  FOR EACH ROW EXECUTE FUNCTION um.role_inclusions_check_cycle();

-- permissions -----------------------------------------------------------------
CREATE FUNCTION um.role_permissions_before_write()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM um.assert_permission_name(NEW.permission, true);
  IF NOT EXISTS (SELECT 1 FROM um.permissions p
                  WHERE @extschema@.um_permission_matches(NEW.permission, p.name)) THEN
    RAISE EXCEPTION 'unknown permission "%"', NEW.permission
      USING ERRCODE = 'UM011',
            DETAIL = 'No permission in the catalog (um.permissions) matches it.',
            HINT = 'Check the spelling, or register the permission first with um_register_permission().';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER role_permissions_before_write BEFORE INSERT OR UPDATE ON um.role_permissions
  FOR EACH ROW EXECUTE FUNCTION um.role_permissions_before_write();

CREATE FUNCTION um.permissions_before_write()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_roles bigint;
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM um.assert_permission_name(NEW.name, false);
    RETURN NEW;
  END IF;
  IF OLD.builtin THEN
    RAISE EXCEPTION 'built-in permission "%" cannot be %', OLD.name,
                    CASE TG_OP WHEN 'DELETE' THEN 'removed' ELSE 'changed' END
      USING ERRCODE = 'UM048',
            HINT = 'um itself checks built-in permissions; remove them from roles instead.';
  END IF;
  IF TG_OP = 'UPDATE' THEN
    IF NEW.name <> OLD.name THEN
      RAISE EXCEPTION 'permission "%" cannot be renamed', OLD.name
        USING ERRCODE = 'UM048',
              HINT = 'Register the new name, move the grants, then remove the old one.';
    END IF;
    RETURN NEW;
  END IF;
  SELECT count(*) INTO v_roles FROM um.role_permissions rp WHERE rp.permission = OLD.name;
  IF v_roles > 0 THEN
    RAISE EXCEPTION 'permission "%" is still granted by % role(s)', OLD.name, v_roles
      USING ERRCODE = 'UM048',
            HINT = 'Remove it from those roles first (see um.role_permissions).';
  END IF;
  RETURN OLD;
END
$$;
CREATE TRIGGER permissions_before_write BEFORE INSERT OR UPDATE OR DELETE ON um.permissions
  FOR EACH ROW EXECUTE FUNCTION um.permissions_before_write();

-- scopes ----------------------------------------------------------------------
CREATE FUNCTION um.scopes_before_write()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_parent_org bigint;
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.org_id <> OLD.org_id THEN
    RAISE EXCEPTION 'a scope node cannot move to another organization'
      USING ERRCODE = 'UM046',
            HINT = 'Create the node in the other organization instead.';
  END IF;
  IF NOT um.identifier_is_valid(NEW.kind) THEN
    RAISE EXCEPTION 'invalid scope kind "%"', NEW.kind
      USING ERRCODE = 'UM008',
            HINT = 'A kind is a lowercase identifier such as project, environment or dashboard_group.';
  END IF;
  IF NOT um.display_name_is_valid(NEW.name) THEN
    RAISE EXCEPTION 'invalid scope name "%"', NEW.name
      USING ERRCODE = 'UM003',
            DETAIL = 'A name has 1 to 200 characters, no leading or trailing blanks and no control characters.',
            HINT = 'Trim the name.';
  END IF;
  IF NEW.parent_id = NEW.id THEN
    RAISE EXCEPTION 'scope node % cannot be its own parent', NEW.id
      USING ERRCODE = 'UM041',
            HINT = 'Pick another node as the parent, or NULL for a top-level node.';
  END IF;
  -- A parent that does not exist (yet) is left to the foreign key, which is
  -- checked at the end of the statement: a bulk load (pg_restore's COPY) may
  -- bring a child before its parent.
  IF NEW.parent_id IS NOT NULL
     AND (TG_OP = 'INSERT' OR NEW.parent_id IS DISTINCT FROM OLD.parent_id) THEN
    SELECT s.org_id INTO v_parent_org FROM um.scopes s WHERE s.id = NEW.parent_id;
    IF FOUND AND v_parent_org <> NEW.org_id THEN
      RAISE EXCEPTION 'scope node % belongs to another organization', NEW.parent_id
        USING ERRCODE = 'UM046',
              DETAIL = 'A node''s parent must be in the same organization as the node.',
              HINT = 'Pick a parent from the same organization (um.scopes.org_id).';
    END IF;
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER scopes_before_write BEFORE INSERT OR UPDATE ON um.scopes
  FOR EACH ROW EXECUTE FUNCTION um.scopes_before_write();

-- A new node with an existing parent cannot close a cycle; only re-parenting
-- can, or rows inserted together with explicit ids.  Checked after the
-- statement, when all its rows are visible.
CREATE FUNCTION um.scopes_check_cycle()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF NEW.parent_id IS NULL THEN
    RETURN NULL;
  END IF;
  IF TG_OP = 'UPDATE' THEN
    PERFORM um.lock_organization(NEW.org_id);
  END IF;
  IF EXISTS (
      WITH RECURSIVE up(id) AS (
        SELECT NEW.parent_id
        UNION
        SELECT s.parent_id FROM um.scopes s JOIN up ON s.id = up.id
         WHERE s.parent_id IS NOT NULL)
      SELECT 1 FROM up WHERE up.id = NEW.id) THEN
    RAISE EXCEPTION 'scope node % cannot be placed under node %: that would make a cycle', NEW.id, NEW.parent_id
      USING ERRCODE = 'UM041',
            DETAIL = format('Node %s is node %s itself or one of its descendants.', NEW.parent_id, NEW.id),
            HINT = 'Move the node under a node outside its own subtree.';
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER scopes_check_cycle AFTER INSERT OR UPDATE OF parent_id ON um.scopes
  FOR EACH ROW EXECUTE FUNCTION um.scopes_check_cycle();

-- memberships -----------------------------------------------------------------
CREATE FUNCTION um.memberships_before_update()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF NEW.org_id <> OLD.org_id OR NEW.user_id <> OLD.user_id THEN
    RAISE EXCEPTION 'a membership cannot move to another organization or user'
      USING ERRCODE = 'UM046',
            HINT = 'Remove the membership and add a new one.';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER memberships_before_update BEFORE UPDATE ON um.memberships
  FOR EACH ROW EXECUTE FUNCTION um.memberships_before_update();

-- um.has_usable_root: does the organization have a Root who can act (an
-- active membership of an active user who may log in)?
CREATE FUNCTION um.has_usable_root(p_org_id bigint)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT EXISTS (SELECT 1 FROM um.memberships m JOIN um.roles r ON r.id = m.role_id JOIN um.users u ON u.id = m.user_id
                  WHERE m.org_id = p_org_id AND r.builtin = 'root' AND m.status = 'active'
                    AND u.status = 'active' AND u.allow_login);
$$;

-- An organization with members always has a Root among them, and no change
-- of memberships takes away its last Root who can log in (a Root leaving,
-- demoted, removed, suspended in it or deleted while the other Roots cannot
-- log in).  A membership whose user is gone (an account being deleted)
-- counts as one that could log in.  Suspending a user or taking their login
-- is guarded by the lifecycle functions (um.guard_last_active_root); a direct
-- UPDATE of um.users by an administrator is not, and um_check_integrity()
-- reports what it leaves.
CREATE FUNCTION um.memberships_keep_root()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_org bigint;
  v_slug text;
BEGIN
  FOR v_org IN SELECT DISTINCT c.org_id FROM changed_rows c ORDER BY 1 LOOP
    CONTINUE WHEN NOT um.lock_organization(v_org);   -- organization being deleted
    CONTINUE WHEN NOT EXISTS (SELECT 1 FROM um.memberships m WHERE m.org_id = v_org);
    IF NOT EXISTS (SELECT 1 FROM um.memberships m JOIN um.roles r ON r.id = m.role_id
                    WHERE m.org_id = v_org AND r.builtin = 'root') THEN
      SELECT slug INTO v_slug FROM um.organizations WHERE id = v_org;
      RAISE EXCEPTION 'organization "%" would be left without a Root', v_slug
        USING ERRCODE = 'UM044',
              DETAIL = 'An organization with members always has at least one member with the built-in Root role.',
              HINT = 'Make another member Root first, or transfer ownership of the organization.';
    END IF;
    IF TG_OP <> 'INSERT'
       AND EXISTS (SELECT 1 FROM changed_rows c JOIN um.roles r ON r.id = c.role_id
                     LEFT JOIN um.users u ON u.id = c.user_id
                    WHERE c.org_id = v_org AND r.builtin = 'root' AND c.status = 'active'
                      AND (u.id IS NULL OR (u.status = 'active' AND u.allow_login)))
       AND NOT um.has_usable_root(v_org) THEN
      SELECT slug INTO v_slug FROM um.organizations WHERE id = v_org;
      RAISE EXCEPTION 'organization "%" would be left without a Root who can log in', v_slug
        USING ERRCODE = 'UM044',
              DETAIL = 'Its other Roots are suspended or may not log in.',
              HINT = 'Make an active member who can log in Root first, or enable the login of another Root.';
    END IF;
  END LOOP;
  RETURN NULL;
END
$$;
CREATE TRIGGER memberships_keep_root_ins AFTER INSERT ON um.memberships
  REFERENCING NEW TABLE AS changed_rows
  FOR EACH STATEMENT EXECUTE FUNCTION um.memberships_keep_root();
CREATE TRIGGER memberships_keep_root_upd AFTER UPDATE ON um.memberships
  REFERENCING OLD TABLE AS changed_rows
  FOR EACH STATEMENT EXECUTE FUNCTION um.memberships_keep_root();
CREATE TRIGGER memberships_keep_root_del AFTER DELETE ON um.memberships
  REFERENCING OLD TABLE AS changed_rows
  FOR EACH STATEMENT EXECUTE FUNCTION um.memberships_keep_root();


-- teams -----------------------------------------------------------------------
CREATE FUNCTION um.teams_before_write()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.org_id <> OLD.org_id THEN
    RAISE EXCEPTION 'a team cannot move to another organization'
      USING ERRCODE = 'UM046',
            HINT = 'Create a team in the other organization instead.';
  END IF;
  IF NOT um.display_name_is_valid(NEW.name, 100) THEN
    RAISE EXCEPTION 'invalid team name "%"', NEW.name
      USING ERRCODE = 'UM003',
            DETAIL = 'A name has 1 to 100 characters, no leading or trailing blanks and no control characters.',
            HINT = 'Trim the name.';
  END IF;
  IF TG_OP = 'INSERT' AND NEW.scope_id IS NULL THEN
    -- the team space: a top-level scope node of kind "team"
    INSERT INTO um.scopes (org_id, kind, name) VALUES (NEW.org_id, 'team', NEW.name)
      RETURNING id INTO NEW.scope_id;
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER teams_before_write BEFORE INSERT OR UPDATE ON um.teams
  FOR EACH ROW EXECUTE FUNCTION um.teams_before_write();

-- A deleted team takes its team space (and the grants on it) along, unless
-- another team still uses that node.
CREATE FUNCTION um.teams_after_delete()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  DELETE FROM um.scopes s
   WHERE s.id = OLD.scope_id AND s.kind = 'team'
     AND NOT EXISTS (SELECT 1 FROM um.teams t WHERE t.scope_id = s.id);
  RETURN NULL;
END
$$;
CREATE TRIGGER teams_after_delete AFTER DELETE ON um.teams
  FOR EACH ROW EXECUTE FUNCTION um.teams_after_delete();

CREATE FUNCTION um.team_members_keep_owner()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_team record;
BEGIN
  FOR v_team IN
    SELECT t.id, t.name, c.user_id
      FROM changed_rows c
      JOIN um.teams t ON t.id = c.team_id
      JOIN um.organizations o ON o.id = t.org_id     -- not when the organization goes
     WHERE c.is_owner
       AND NOT EXISTS (SELECT 1 FROM um.team_members tm WHERE tm.team_id = t.id AND tm.is_owner)
  LOOP
    RAISE EXCEPTION 'the owner of team "%" cannot be removed', v_team.name
      USING ERRCODE = 'UM043',
            DETAIL = format('User %s owns the team.', v_team.user_id),
            HINT = 'Transfer ownership of the team to another member first, or delete the team.';
  END LOOP;
  RETURN NULL;
END
$$;
CREATE TRIGGER team_members_keep_owner_upd AFTER UPDATE ON um.team_members
  REFERENCING OLD TABLE AS changed_rows
  FOR EACH STATEMENT EXECUTE FUNCTION um.team_members_keep_owner();
CREATE TRIGGER team_members_keep_owner_del AFTER DELETE ON um.team_members
  REFERENCING OLD TABLE AS changed_rows
  FOR EACH STATEMENT EXECUTE FUNCTION um.team_members_keep_owner();

CREATE FUNCTION um.team_members_before_update()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF NEW.org_id <> OLD.org_id OR NEW.team_id <> OLD.team_id OR NEW.user_id <> OLD.user_id THEN
    RAISE EXCEPTION 'a team membership cannot move to another team or user'
      USING ERRCODE = 'UM046',
            HINT = 'Remove the team member and add the new one.';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER team_members_before_update BEFORE UPDATE ON um.team_members
  FOR EACH ROW EXECUTE FUNCTION um.team_members_before_update();

-- invitations -----------------------------------------------------------------
CREATE FUNCTION um.invitations_before_write()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF NOT um.email_is_valid(NEW.email) THEN
    RAISE EXCEPTION 'invalid email address "%"', NEW.email
      USING ERRCODE = 'UM001',
            DETAIL = 'An address is local-part@domain, in ASCII, at most 254 bytes, with a domain of at least two labels.',
            HINT = 'Check the address for typos; write internationalized domains in their xn-- (punycode) form.';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER invitations_before_write BEFORE INSERT OR UPDATE ON um.invitations
  FOR EACH ROW EXECUTE FUNCTION um.invitations_before_write();

-- audit -----------------------------------------------------------------------
CREATE FUNCTION um.audit_events_append_only()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RAISE EXCEPTION 'the audit trail is append-only'
    USING ERRCODE = 'UM047',
          DETAIL = format('%s on um.audit_events is not allowed.', TG_OP),
          HINT = 'Audit events are never changed; to prune old events, a superuser disables trigger audit_events_append_only for that one transaction.';
END
$$;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON um.audit_events
  FOR EACH ROW EXECUTE FUNCTION um.audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON um.audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION um.audit_events_append_only();
-- The built-in permission catalog and built-in roles.
--
-- Resources of seeds/001 (the organization role matrix):
--   service   build side: pipelines, service definitions, product tiers
--   fleet     operate/fleet side
--   account   account configuration (cloud accounts)
--   member    user invite access (access control)
--   billing   billing
--   plan      service plans
--   instance  resource instances
--   template  templates, deployment configuration, image registry
-- and the resources um itself checks: org, role, team, user, scope, audit.

CREATE TABLE um.builtin_role_permissions (
  role_key text NOT NULL REFERENCES um.builtin_roles (key),
  permission text NOT NULL REFERENCES um.permissions (name),
  PRIMARY KEY (role_key, permission)
);
COMMENT ON TABLE um.builtin_role_permissions IS 'the permissions each built-in role starts with in a new organization (installed by um, not user data)';

INSERT INTO um.builtin_roles (key, name, description, position) VALUES
  ('root',             'Root',             'Owns the organization: everything, including account configuration and billing.', 1),
  ('admin',            'Admin',            'Manages the organization''s members, teams and roles (never a Root), builds and operates services.', 2),
  ('service_editor',   'Service Editor',   'Builds and releases: service definitions, plans, pipelines and registries.', 3),
  ('service_operator', 'Service Operator', 'Day-2 operations on existing instances and deployment cells.', 4),
  ('service_reader',   'Service Reader',   'Reads services and the fleet; manages resource instances.', 5),
  ('member',           'Member',           'Belongs to the organization: sees it, its members and its teams.', 6);

-- CRUDL letters as in the seed's legend, expanded into actions.
CREATE FUNCTION um.crudl_actions(letters text)
RETURNS SETOF text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT a.action
    FROM (VALUES ('c', 'create', 1), ('r', 'read', 2), ('u', 'update', 3),
                 ('d', 'delete', 4), ('l', 'list', 5)) AS a(letter, action, n)
   WHERE strpos(letters, a.letter) > 0
   ORDER BY a.n
$$;

INSERT INTO um.permissions (name, description, builtin)
SELECT r.resource || ':' || a.action,
       initcap(a.action) || ' ' || r.what,
       true
  FROM (VALUES
    ('service',  'build-side services: pipelines, service definitions, product tiers'),
    ('fleet',    'the operate/fleet side'),
    ('account',  'account configuration (cloud accounts)'),
    ('billing',  'billing'),
    ('plan',     'service plans'),
    ('instance', 'resource instances'),
    ('template', 'templates, deployment configuration and image registries'),
    ('member',   'the organization''s members'),
    ('role',     'the organization''s roles'),
    ('team',     'the organization''s teams'),
    ('user',     'the users of the organization'),
    ('scope',    'the organization''s scope tree'),
    ('org',      'the organization and its settings'),
    ('audit',    'the organization''s audit trail')) AS r(resource, what)
  CROSS JOIN um.crudl_actions('crudl') AS a(action)
UNION ALL
SELECT v.name, v.description, true
  FROM (VALUES
    ('member:invite',     'Invite people to the organization'),
    ('member:remove',     'Remove members from the organization'),
    ('role:grant',        'Give roles to members and teams'),
    ('team:manage',       'Add and remove team members and their team roles'),
    ('user:suspend',      'Suspend and reactivate users'),
    ('user:impersonate',  'Act as another (non-admin) member')) AS v(name, description);

-- The matrix of seeds/001, one row per role and resource, plus um's own
-- resources.  'Invite/Uninvite except root' is member:invite + member:remove;
-- the "except root" part is enforced by the lifecycle functions.
INSERT INTO um.builtin_role_permissions (role_key, permission)
SELECT m.role_key, m.resource || ':' || a.action
  FROM (VALUES
    ('root', 'service', 'crudl'), ('root', 'fleet', 'crul'), ('root', 'account', 'crudl'),
    ('root', 'billing', 'crudl'), ('root', 'plan', 'rl'), ('root', 'instance', 'crudl'),
    ('root', 'template', 'crudl'), ('root', 'member', 'crudl'), ('root', 'role', 'crudl'),
    ('root', 'team', 'crudl'), ('root', 'user', 'crudl'), ('root', 'scope', 'crudl'),
    ('root', 'org', 'rudl'), ('root', 'audit', 'rl'),

    ('admin', 'service', 'crudl'), ('admin', 'fleet', 'crul'), ('admin', 'account', 'rl'),
    ('admin', 'billing', 'rl'), ('admin', 'plan', 'rl'), ('admin', 'instance', 'crudl'),
    ('admin', 'template', 'crudl'), ('admin', 'member', 'crudl'), ('admin', 'role', 'crudl'),
    ('admin', 'team', 'crudl'), ('admin', 'user', 'crudl'), ('admin', 'scope', 'crudl'),
    ('admin', 'org', 'rl'), ('admin', 'audit', 'rl'),

    ('service_editor', 'service', 'crudl'), ('service_editor', 'fleet', 'rl'),
    ('service_editor', 'plan', 'rl'), ('service_editor', 'instance', 'crudl'),
    ('service_editor', 'template', 'crudl'),

    ('service_operator', 'service', 'rl'), ('service_operator', 'fleet', 'crul'),
    ('service_operator', 'plan', 'rl'), ('service_operator', 'instance', 'crudl'),
    ('service_operator', 'template', 'rl'),

    ('service_reader', 'service', 'rl'), ('service_reader', 'fleet', 'rl'),
    ('service_reader', 'plan', 'rl'), ('service_reader', 'instance', 'crudl'),
    ('service_reader', 'template', 'rl')) AS m(role_key, resource, letters)
  CROSS JOIN LATERAL um.crudl_actions(m.letters) AS a(action)
UNION ALL
-- named actions
SELECT r.role_key, p.permission
  FROM (VALUES ('root'), ('admin')) AS r(role_key)
  CROSS JOIN (VALUES ('member:invite'), ('member:remove'), ('role:grant'), ('team:manage'),
                     ('user:suspend'), ('user:impersonate')) AS p(permission)
UNION ALL
-- what every member of an organization may see
SELECT r.role_key, p.permission
  FROM (VALUES ('service_editor'), ('service_operator'), ('service_reader'), ('member')) AS r(role_key)
  CROSS JOIN (VALUES ('org:read'), ('member:read'), ('member:list'), ('team:read'), ('team:list')) AS p(permission);

-- um.seed_builtin_roles: give an organization its built-in roles, each with
-- the template's permissions.  Returns the id of its Root role.
CREATE FUNCTION um.seed_builtin_roles(p_org_id bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_root bigint;
BEGIN
  INSERT INTO um.roles (org_id, name, description, builtin)
  SELECT p_org_id, b.name, b.description, b.key
    FROM um.builtin_roles b ORDER BY b.position;
  INSERT INTO um.role_permissions (org_id, role_id, permission)
  SELECT p_org_id, r.id, t.permission
    FROM um.roles r JOIN um.builtin_role_permissions t ON t.role_key = r.builtin
   WHERE r.org_id = p_org_id;
  SELECT r.id INTO STRICT v_root FROM um.roles r WHERE r.org_id = p_org_id AND r.builtin = 'root';
  RETURN v_root;
END
$$;
-- Helpers of the lifecycle functions (86_lifecycle.sql): the audit trail
-- and lookups that name what is missing.

-- um.audit: append one audit event.  The actor columns are filled in by the
-- identity module once it exists; the database role is always recorded.
CREATE FUNCTION um.audit(p_action text, p_org_id bigint, p_target_type text,
                         p_target_id bigint, p_details jsonb DEFAULT '{}',
                         p_outcome text DEFAULT 'ok')
RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
  INSERT INTO um.audit_events (action, outcome, org_id, target_type, target_id, details)
  VALUES (p_action, p_outcome, p_org_id, p_target_type, p_target_id, coalesce(p_details, '{}'));
$$;

-- um.require_*: look a thing up or raise the error that names it.
CREATE FUNCTION um.require_organization(p_org_id bigint)
RETURNS um.organizations
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.organizations;
BEGIN
  SELECT * INTO v FROM um.organizations o WHERE o.id = p_org_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'organization % does not exist', coalesce(p_org_id::text, 'NULL')
      USING ERRCODE = 'UM030',
            HINT = 'Look the organization up in um.organizations, or create it with um_create_organization().';
  END IF;
  RETURN v;
END
$$;

CREATE FUNCTION um.require_user(p_user_id bigint)
RETURNS um.users
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.users;
BEGIN
  SELECT * INTO v FROM um.users u WHERE u.id = p_user_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'user % does not exist', coalesce(p_user_id::text, 'NULL')
      USING ERRCODE = 'UM031',
            HINT = 'Look the user up in um.users, or create them with um_create_user().';
  END IF;
  RETURN v;
END
$$;

-- A role of an organization by name (any letter case) or built-in key.
CREATE FUNCTION um.require_role(p_org_id bigint, p_role text)
RETURNS um.roles
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.roles;
BEGIN
  SELECT * INTO v FROM um.roles r
   WHERE r.org_id = p_org_id AND (lower(r.name) = lower(p_role) OR r.builtin = p_role);
  IF NOT FOUND THEN
    RAISE EXCEPTION 'organization % has no role "%"', p_org_id, p_role
      USING ERRCODE = 'UM032',
            HINT = 'See the organization''s roles in um.roles; built-in roles are Root, Admin, Service Editor, Service Operator, Service Reader and Member.';
  END IF;
  RETURN v;
END
$$;
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
-- The permission evaluator (src/evaluator.c, src/cache.c) and how its
-- cache learns about changes.

-- The address of the cache's invalidation messages: a statement that
-- changes any table an answer depends on queues a relcache invalidation of
-- this relation (see src/cache.c).  Nothing is ever stored in it.
CREATE TABLE um.cache_sentinel ();
COMMENT ON TABLE um.cache_sentinel IS 'never holds rows: invalidating it tells every backend to empty its permission cache';
REVOKE ALL ON um.cache_sentinel FROM PUBLIC;

CREATE FUNCTION um.cache_invalidate()
RETURNS trigger
AS 'MODULE_PATHNAME', 'um_cache_invalidate_trigger'
LANGUAGE C;
COMMENT ON FUNCTION um.cache_invalidate() IS 'statement trigger: every backend empties its permission cache once this change is visible to it';

-- Statement triggers, ENABLE ALWAYS: once per statement, also under
-- session_replication_role = replica.  Logical replication's apply worker
-- fires only row triggers, so row triggers enabled for replica mode only
-- cover changes that arrive on a subscriber.  (Invalidations of one
-- relation within a command are merged, so a row trigger costs little.)
-- um.users: only the columns an answer depends on, so that logins (which
-- count failures and reset the count) never empty anybody's cache.
CREATE TRIGGER cache_invalidate AFTER INSERT OR UPDATE OF id, status, allow_login OR DELETE OR TRUNCATE ON um.users
  FOR EACH STATEMENT EXECUTE FUNCTION um.cache_invalidate();
CREATE TRIGGER cache_invalidate_replica AFTER INSERT OR UPDATE OR DELETE ON um.users
  FOR EACH ROW EXECUTE FUNCTION um.cache_invalidate();
CREATE TRIGGER cache_invalidate AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON um.memberships
  FOR EACH STATEMENT EXECUTE FUNCTION um.cache_invalidate();
CREATE TRIGGER cache_invalidate_replica AFTER INSERT OR UPDATE OR DELETE ON um.memberships
  FOR EACH ROW EXECUTE FUNCTION um.cache_invalidate();
CREATE TRIGGER cache_invalidate AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON um.roles
  FOR EACH STATEMENT EXECUTE FUNCTION um.cache_invalidate();
CREATE TRIGGER cache_invalidate_replica AFTER INSERT OR UPDATE OR DELETE ON um.roles
  FOR EACH ROW EXECUTE FUNCTION um.cache_invalidate();
CREATE TRIGGER cache_invalidate AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON um.role_inclusions
  FOR EACH STATEMENT EXECUTE FUNCTION um.cache_invalidate();
CREATE TRIGGER cache_invalidate_replica AFTER INSERT OR UPDATE OR DELETE ON um.role_inclusions
  FOR EACH ROW EXECUTE FUNCTION um.cache_invalidate();
CREATE TRIGGER cache_invalidate AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON um.role_permissions
  FOR EACH STATEMENT EXECUTE FUNCTION um.cache_invalidate();
CREATE TRIGGER cache_invalidate_replica AFTER INSERT OR UPDATE OR DELETE ON um.role_permissions
  FOR EACH ROW EXECUTE FUNCTION um.cache_invalidate();
CREATE TRIGGER cache_invalidate AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON um.permissions
  FOR EACH STATEMENT EXECUTE FUNCTION um.cache_invalidate();
CREATE TRIGGER cache_invalidate_replica AFTER INSERT OR UPDATE OR DELETE ON um.permissions
  FOR EACH ROW EXECUTE FUNCTION um.cache_invalidate();
CREATE TRIGGER cache_invalidate AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON um.scopes
  FOR EACH STATEMENT EXECUTE FUNCTION um.cache_invalidate();
CREATE TRIGGER cache_invalidate_replica AFTER INSERT OR UPDATE OR DELETE ON um.scopes
  FOR EACH ROW EXECUTE FUNCTION um.cache_invalidate();
CREATE TRIGGER cache_invalidate AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON um.teams
  FOR EACH STATEMENT EXECUTE FUNCTION um.cache_invalidate();
CREATE TRIGGER cache_invalidate_replica AFTER INSERT OR UPDATE OR DELETE ON um.teams
  FOR EACH ROW EXECUTE FUNCTION um.cache_invalidate();
CREATE TRIGGER cache_invalidate AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON um.team_members
  FOR EACH STATEMENT EXECUTE FUNCTION um.cache_invalidate();
CREATE TRIGGER cache_invalidate_replica AFTER INSERT OR UPDATE OR DELETE ON um.team_members
  FOR EACH ROW EXECUTE FUNCTION um.cache_invalidate();
CREATE TRIGGER cache_invalidate AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON um.team_member_roles
  FOR EACH STATEMENT EXECUTE FUNCTION um.cache_invalidate();
CREATE TRIGGER cache_invalidate_replica AFTER INSERT OR UPDATE OR DELETE ON um.team_member_roles
  FOR EACH ROW EXECUTE FUNCTION um.cache_invalidate();
CREATE TRIGGER cache_invalidate AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON um.grants
  FOR EACH STATEMENT EXECUTE FUNCTION um.cache_invalidate();
CREATE TRIGGER cache_invalidate_replica AFTER INSERT OR UPDATE OR DELETE ON um.grants
  FOR EACH ROW EXECUTE FUNCTION um.cache_invalidate();
ALTER TABLE um.users ENABLE ALWAYS TRIGGER cache_invalidate;
ALTER TABLE um.memberships ENABLE ALWAYS TRIGGER cache_invalidate;
ALTER TABLE um.roles ENABLE ALWAYS TRIGGER cache_invalidate;
ALTER TABLE um.role_inclusions ENABLE ALWAYS TRIGGER cache_invalidate;
ALTER TABLE um.role_permissions ENABLE ALWAYS TRIGGER cache_invalidate;
ALTER TABLE um.permissions ENABLE ALWAYS TRIGGER cache_invalidate;
ALTER TABLE um.scopes ENABLE ALWAYS TRIGGER cache_invalidate;
ALTER TABLE um.teams ENABLE ALWAYS TRIGGER cache_invalidate;
ALTER TABLE um.team_members ENABLE ALWAYS TRIGGER cache_invalidate;
ALTER TABLE um.team_member_roles ENABLE ALWAYS TRIGGER cache_invalidate;
ALTER TABLE um.grants ENABLE ALWAYS TRIGGER cache_invalidate;
ALTER TABLE um.users ENABLE REPLICA TRIGGER cache_invalidate_replica;
ALTER TABLE um.memberships ENABLE REPLICA TRIGGER cache_invalidate_replica;
ALTER TABLE um.roles ENABLE REPLICA TRIGGER cache_invalidate_replica;
ALTER TABLE um.role_inclusions ENABLE REPLICA TRIGGER cache_invalidate_replica;
ALTER TABLE um.role_permissions ENABLE REPLICA TRIGGER cache_invalidate_replica;
ALTER TABLE um.permissions ENABLE REPLICA TRIGGER cache_invalidate_replica;
ALTER TABLE um.scopes ENABLE REPLICA TRIGGER cache_invalidate_replica;
ALTER TABLE um.teams ENABLE REPLICA TRIGGER cache_invalidate_replica;
ALTER TABLE um.team_members ENABLE REPLICA TRIGGER cache_invalidate_replica;
ALTER TABLE um.team_member_roles ENABLE REPLICA TRIGGER cache_invalidate_replica;
ALTER TABLE um.grants ENABLE REPLICA TRIGGER cache_invalidate_replica;

-- The acting user (src/identity.c).  um_act_as is for backends that
-- authenticate users themselves: only roles the DBA grants it may call it.
CREATE FUNCTION @extschema@.um_act_as(user_id bigint)
RETURNS void
AS 'MODULE_PATHNAME', 'um_act_as'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_act_as(bigint) IS
  'make user_id the acting user until the end of the current transaction (EXECUTE is granted by the DBA, never to PUBLIC)';
REVOKE EXECUTE ON FUNCTION @extschema@.um_act_as(bigint) FROM PUBLIC;

CREATE FUNCTION @extschema@.um_current_user_id()
RETURNS bigint
AS 'MODULE_PATHNAME', 'um_current_user_id'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.um_current_user_id() IS 'the acting user of this transaction, or NULL';

-- The checks.  STABLE (reads, never writes; like has_table_privilege()),
-- not STRICT (a NULL user, organization or scope is a deny: false, never
-- NULL), PARALLEL SAFE (each process keeps its own cache, and the acting
-- user reaches parallel workers in the setting um.acting_identity, which
-- only um can write: src/identity.c), not LEAKPROOF (an invalid name is an
-- error that quotes it).
CREATE FUNCTION @extschema@.um_has_permission(permission text, org_id bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'um_has_permission_acting'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.um_has_permission(text, bigint) IS
  'may the acting user do permission in the organization?  e.g. USING (um_has_permission(''invoice:read'', org_id))';

CREATE FUNCTION @extschema@.um_has_permission(permission text, org_id bigint, scope_id bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'um_has_permission_acting'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.um_has_permission(text, bigint, bigint) IS
  'may the acting user do permission on a scope node of the organization?';

CREATE FUNCTION @extschema@.um_has_permission(user_id bigint, permission text, org_id bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'um_has_permission_user'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.um_has_permission(bigint, text, bigint) IS
  'may user_id do permission in the organization?  (for administrators and reports)';

CREATE FUNCTION @extschema@.um_has_permission(user_id bigint, permission text, org_id bigint, scope_id bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'um_has_permission_user'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.um_has_permission(bigint, text, bigint, bigint) IS
  'may user_id do permission on a scope node of the organization?  (for administrators and reports)';

-- The planner support function (src/support.c): a call whose organization
-- (or scope) argument is an indexed column becomes an index condition
-- org_id = ANY (um_permitted_orgs(...)), evaluated once per scan.
CREATE FUNCTION um.has_permission_support(internal)
RETURNS internal
AS 'MODULE_PATHNAME', 'um_has_permission_support'
LANGUAGE C STRICT;
ALTER FUNCTION @extschema@.um_has_permission(text, bigint) SUPPORT um.has_permission_support;
ALTER FUNCTION @extschema@.um_has_permission(text, bigint, bigint) SUPPORT um.has_permission_support;
ALTER FUNCTION @extschema@.um_has_permission(bigint, text, bigint) SUPPORT um.has_permission_support;
ALTER FUNCTION @extschema@.um_has_permission(bigint, text, bigint, bigint) SUPPORT um.has_permission_support;

-- Companions for policies that should use an index: org_id = ANY (um_permitted_orgs('invoice:read')).
CREATE FUNCTION @extschema@.um_permitted_orgs(permission text)
RETURNS bigint[]
AS 'MODULE_PATHNAME', 'um_permitted_orgs_acting'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.um_permitted_orgs(text) IS
  'the organizations where the acting user holds permission organization-wide, sorted; for org_id = ANY (...)';

CREATE FUNCTION @extschema@.um_permitted_orgs(user_id bigint, permission text)
RETURNS bigint[]
AS 'MODULE_PATHNAME', 'um_permitted_orgs_user'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.um_permitted_orgs(bigint, text) IS
  'the organizations where user_id holds permission organization-wide, sorted';

CREATE FUNCTION @extschema@.um_permitted_scopes(permission text, org_id bigint)
RETURNS bigint[]
AS 'MODULE_PATHNAME', 'um_permitted_scopes_acting'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.um_permitted_scopes(text, bigint) IS
  'the scope nodes of the organization where the acting user holds permission, sorted; for scope_id = ANY (...)';

CREATE FUNCTION @extschema@.um_permitted_scopes(user_id bigint, permission text, org_id bigint)
RETURNS bigint[]
AS 'MODULE_PATHNAME', 'um_permitted_scopes_user'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.um_permitted_scopes(bigint, text, bigint) IS
  'the scope nodes of the organization where user_id holds permission, sorted';

-- Checking for someone else says who may do what: for administrators and
-- reporting roles the DBA chooses.
REVOKE EXECUTE ON FUNCTION
  @extschema@.um_has_permission(bigint, text, bigint),
  @extschema@.um_has_permission(bigint, text, bigint, bigint),
  @extschema@.um_permitted_orgs(bigint, text),
  @extschema@.um_permitted_scopes(bigint, text, bigint)
FROM PUBLIC;

CREATE FUNCTION @extschema@.um_cache_stats(
  OUT hits bigint, OUT misses bigint, OUT queries bigint, OUT invalidations bigint,
  OUT resets bigint, OUT evictions bigint, OUT retries bigint,
  OUT memory_bytes bigint, OUT memory_limit_bytes bigint,
  OUT users bigint, OUT members bigint, OUT organizations bigint,
  OUT scope_memos bigint, OUT permissions bigint)
RETURNS record
AS 'MODULE_PATHNAME', 'um_cache_stats'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION @extschema@.um_cache_stats() IS
  'this backend''s permission cache: hits, misses, loader queries, invalidations, resets, evictions, retries, memory and entries';

CREATE FUNCTION @extschema@.um_cache_reset()
RETURNS void
AS 'MODULE_PATHNAME', 'um_cache_reset'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION @extschema@.um_cache_reset() IS 'empty this backend''s permission cache (it refills on demand)';
-- Monitoring: every backend's permission cache (src/monitor.c).
--
-- With um in shared_preload_libraries each backend publishes its cache
-- statistics at the end of every transaction that changed them; without it
-- only the calling backend's are visible.  Monitoring roles get them through
-- pg_read_all_stats (pg_monitor includes it).

CREATE FUNCTION @extschema@.um_cache_stats_all(
  OUT pid integer, OUT database oid, OUT is_mine boolean, OUT published_at timestamptz,
  OUT hits bigint, OUT misses bigint, OUT queries bigint, OUT invalidations bigint,
  OUT resets bigint, OUT evictions bigint, OUT memory_bytes bigint, OUT entries bigint,
  OUT memory_limit_bytes bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'um_cache_stats_all'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION @extschema@.um_cache_stats_all() IS
  'every backend''s permission cache: this backend live, the others as of their last transaction (all of them when um is in shared_preload_libraries)';
REVOKE EXECUTE ON FUNCTION @extschema@.um_cache_stats_all() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.um_cache_stats_all() TO pg_read_all_stats;

CREATE VIEW um.cache_activity AS
SELECT s.pid, d.datname AS database, a.usename AS role, a.application_name, s.is_mine,
       s.published_at, s.hits, s.misses,
       round(s.hits::numeric / nullif(s.hits + s.misses, 0), 4) AS hit_ratio,
       s.queries, s.invalidations, s.resets, s.evictions, s.entries,
       s.memory_bytes, s.memory_limit_bytes
  FROM @extschema@.um_cache_stats_all() s
  LEFT JOIN pg_catalog.pg_database d ON d.oid = s.database
  LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = s.pid;
COMMENT ON VIEW um.cache_activity IS
  'each backend''s um permission cache: hits, misses, loader queries, invalidations, memory (all backends when um is preloaded)';
GRANT SELECT ON um.cache_activity TO pg_read_all_stats;
-- The rules of the evaluator in plain SQL: the oracle the tests compare the
-- C evaluator with, and the basis of um_explain_permission().  Keep the two
-- in step: a change of rules changes both, and the randomized differential
-- test (test/pgtap/80_differential.sql) catches any disagreement.
--
-- Rules:
--  1. The permission name must be valid (UM010) and in the catalog (UM011).
--  2. Denied: no user or organization; an unknown user; a user who is not
--     active or not allowed to log in; a user who is not an active member of
--     the organization; a scope node that is not in the organization.
--  3. Otherwise granted when a role that applies, or a role it includes
--     (transitively), grants a pattern covering the permission ("*" stands
--     for a whole part).  Roles that apply:
--       - the membership's organization role;
--       - organization-wide grants (no node, no kind) to the user or to a
--         team the user is in;
--     and, when a scope node is given, for each node of its chain (the node,
--     then its ancestors, stopping after the first node that breaks
--     inheritance):
--       - grants on that node to the user or to a team the user is in;
--       - grants on that node's kind to the user or to a team the user is in;
--       - the user's team roles in a team whose space is that node.

-- um.ref_pattern_covers: wildcard matching, written independently of the C.
CREATE FUNCTION um.ref_pattern_covers(pattern text, permission text)
RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN pattern = '*'
    OR (split_part(pattern, ':', 1) IN ('*', split_part(permission, ':', 1))
        AND split_part(pattern, ':', 2) IN ('*', split_part(permission, ':', 2)));

-- um.ref_applicable_roles: the roles that apply directly (before inclusions), with where they come from.
CREATE FUNCTION um.ref_applicable_roles(p_user_id bigint, p_org_id bigint, p_scope_id bigint)
RETURNS TABLE (role_id bigint, source text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  WITH RECURSIVE chain(id, parent_id, kind, name, inherit, depth) AS (
      SELECT s.id, s.parent_id, s.kind, s.name, s.inherit, 0
        FROM um.scopes s WHERE s.id = p_scope_id AND s.org_id = p_org_id
    UNION ALL
      SELECT p.id, p.parent_id, p.kind, p.name, p.inherit, c.depth + 1
        FROM um.scopes p JOIN chain c ON p.id = c.parent_id
       WHERE c.inherit),
  my_teams AS (
      SELECT t.id, t.name, t.scope_id FROM um.team_members tm JOIN um.teams t ON t.id = tm.team_id
       WHERE tm.org_id = p_org_id AND tm.user_id = p_user_id),
  my_grants AS (
      SELECT g.id, g.role_id, g.scope_id, g.scope_kind, 'the user'::text AS grantee
        FROM um.grants g WHERE g.org_id = p_org_id AND g.user_id = p_user_id
    UNION ALL
      SELECT g.id, g.role_id, g.scope_id, g.scope_kind, format('team "%s"', t.name)
        FROM um.grants g JOIN my_teams t ON t.id = g.team_id)
  SELECT m.role_id, 'the organization role' FROM um.memberships m
   WHERE m.org_id = p_org_id AND m.user_id = p_user_id
  UNION ALL
  SELECT g.role_id, format('organization-wide grant %s to %s', g.id, g.grantee)
    FROM my_grants g WHERE g.scope_id IS NULL AND g.scope_kind IS NULL
  UNION ALL
  SELECT g.role_id, format('grant %s on %s "%s" to %s', g.id, c.kind, c.name, g.grantee)
    FROM my_grants g JOIN chain c ON c.id = g.scope_id
  UNION ALL
  SELECT g.role_id, format('grant %s on every %s (here %s "%s") to %s', g.id, g.scope_kind, c.kind, c.name, g.grantee)
    FROM my_grants g JOIN chain c ON c.kind = g.scope_kind
  UNION ALL
  SELECT r.role_id, format('team role in team "%s", whose space is %s "%s"', t.name, c.kind, c.name)
    FROM um.team_member_roles r JOIN my_teams t ON t.id = r.team_id JOIN chain c ON c.id = t.scope_id
   WHERE r.user_id = p_user_id
$$;

-- um.ref_denial: why the user cannot act here at all, or NULL when they can.
CREATE FUNCTION um.ref_denial(p_user_id bigint, p_org_id bigint, p_scope_id bigint, p_has_scope boolean)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE
    WHEN p_user_id IS NULL THEN 'nobody is acting'
    WHEN p_org_id IS NULL THEN 'no organization was given'
    WHEN p_has_scope AND p_scope_id IS NULL THEN 'no scope node was given'
    WHEN u.id IS NULL THEN format('user %s does not exist', p_user_id)
    WHEN u.status <> 'active' THEN format('user %s is %s', p_user_id, u.status)
    WHEN NOT u.allow_login THEN format('user %s is notification-only (allow_login is false)', p_user_id)
    WHEN m.id IS NULL THEN format('user %s is not a member of organization %s', p_user_id, p_org_id)
    WHEN m.status <> 'active' THEN format('the membership of user %s in organization %s is %s', p_user_id, p_org_id, m.status)
    WHEN p_scope_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM um.scopes s WHERE s.id = p_scope_id AND s.org_id = p_org_id)
      THEN format('scope node %s is not in organization %s', p_scope_id, p_org_id)
  END
    FROM (SELECT 1) one
    LEFT JOIN um.users u ON u.id = p_user_id
    LEFT JOIN um.memberships m ON m.org_id = p_org_id AND m.user_id = p_user_id
$$;

CREATE FUNCTION um.ref_check_permission_name(p_permission text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM um.assert_permission_name(p_permission, false);
  IF NOT EXISTS (SELECT 1 FROM um.permissions p WHERE p.name = p_permission) THEN
    RAISE EXCEPTION 'unknown permission "%"', p_permission
      USING ERRCODE = 'UM011',
            DETAIL = 'It is not in the permission catalog um.permissions.',
            HINT = 'Check the spelling, or register it first with um_register_permission().';
  END IF;
END
$$;

-- um.ref_has_permission: the plain-SQL reference for um_has_permission(user_id, ...).
CREATE FUNCTION um.ref_has_permission(p_user_id bigint, p_permission text, p_org_id bigint,
                                      p_scope_id bigint DEFAULT NULL, p_has_scope boolean DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF p_permission IS NULL THEN
    RETURN false;
  END IF;
  PERFORM um.ref_check_permission_name(p_permission);
  IF um.ref_denial(p_user_id, p_org_id, p_scope_id, coalesce(p_has_scope, p_scope_id IS NOT NULL)) IS NOT NULL THEN
    RETURN false;
  END IF;
  RETURN EXISTS (
    WITH RECURSIVE closure(role_id) AS (
        SELECT a.role_id FROM um.ref_applicable_roles(p_user_id, p_org_id, p_scope_id) a
      UNION
        SELECT ri.included_role_id FROM um.role_inclusions ri JOIN closure c ON ri.role_id = c.role_id)
    SELECT 1 FROM closure c JOIN um.role_permissions rp ON rp.role_id = c.role_id
     WHERE um.ref_pattern_covers(rp.permission, p_permission));
END
$$;
COMMENT ON FUNCTION um.ref_has_permission(bigint, text, bigint, bigint, boolean) IS
  'the evaluator''s rules in plain SQL: the oracle the C um_has_permission() is tested against';

-- um_explain_permission: why access is granted or denied, readable in psql.
CREATE FUNCTION @extschema@.um_explain_permission(user_id bigint, permission text, org_id bigint,
                                                  scope_id bigint DEFAULT NULL)
RETURNS TABLE (step text, outcome text, detail text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_denial text;
  v_granted boolean := false;
  r record;
BEGIN
  PERFORM um.ref_check_permission_name(permission);
  step := 'permission'; outcome := 'known'; detail := format('"%s" is in the catalog', permission);
  RETURN NEXT;

  v_denial := um.ref_denial(user_id, org_id, scope_id, scope_id IS NOT NULL);
  IF v_denial IS NOT NULL THEN
    step := 'verdict'; outcome := 'denied'; detail := v_denial;
    RETURN NEXT;
    RETURN;
  END IF;
  SELECT format('%s (user %s): active, may log in', u.email, u.id) INTO detail FROM um.users u WHERE u.id = um_explain_permission.user_id;
  step := 'user'; outcome := 'ok'; RETURN NEXT;
  SELECT format('member of "%s" as "%s" (membership %s, since %s)', o.slug, r2.name, m.id, m.created_at::date)
    INTO detail
    FROM um.memberships m JOIN um.organizations o ON o.id = m.org_id JOIN um.roles r2 ON r2.id = m.role_id
   WHERE m.org_id = um_explain_permission.org_id AND m.user_id = um_explain_permission.user_id;
  step := 'membership'; outcome := 'ok'; RETURN NEXT;

  IF scope_id IS NOT NULL THEN
    WITH RECURSIVE chain(id, parent_id, kind, name, inherit, depth) AS (
        SELECT s.id, s.parent_id, s.kind, s.name, s.inherit, 0 FROM um.scopes s WHERE s.id = um_explain_permission.scope_id
      UNION ALL
        SELECT p.id, p.parent_id, p.kind, p.name, p.inherit, c.depth + 1
          FROM um.scopes p JOIN chain c ON p.id = c.parent_id WHERE c.inherit)
    SELECT string_agg(format('%s "%s"%s', c.kind, c.name,
                             CASE WHEN NOT c.inherit THEN ' (breaks inheritance: nothing above applies)' ELSE '' END),
                      ' <- ' ORDER BY c.depth)
      INTO detail FROM chain c;
    step := 'scope path'; outcome := 'ok'; RETURN NEXT;
  END IF;

  FOR r IN
    WITH RECURSIVE paths(source, role_id, path) AS (
        SELECT a.source, a.role_id, ARRAY[a.role_id]
          FROM um.ref_applicable_roles(um_explain_permission.user_id, um_explain_permission.org_id,
                                       um_explain_permission.scope_id) a
      UNION ALL
        SELECT p.source, ri.included_role_id, p.path || ri.included_role_id
          FROM paths p JOIN um.role_inclusions ri ON ri.role_id = p.role_id
         WHERE NOT ri.included_role_id = ANY (p.path))
    SELECT p.source,
           (SELECT string_agg(format('"%s"', ro.name), ' includes ' ORDER BY x.n)
              FROM unnest(p.path) WITH ORDINALITY AS x(id, n) JOIN um.roles ro ON ro.id = x.id) AS roles,
           rp.permission AS pattern
      FROM paths p JOIN um.role_permissions rp ON rp.role_id = p.role_id
     WHERE um.ref_pattern_covers(rp.permission, um_explain_permission.permission)
     ORDER BY 1, 2, 3
  LOOP
    v_granted := true;
    step := 'grant'; outcome := 'grants';
    detail := format('%s: role %s grants "%s"', r.source, r.roles, r.pattern);
    RETURN NEXT;
  END LOOP;

  step := 'verdict';
  IF v_granted THEN
    outcome := 'granted'; detail := 'at least one grant above covers the permission';
  ELSE
    outcome := 'denied';
    detail := 'no role that applies here grants it'
              || CASE WHEN scope_id IS NULL THEN ' organization-wide (roles given on scope nodes count only in a check on a node)' ELSE '' END;
  END IF;
  RETURN NEXT;
END
$$;
COMMENT ON FUNCTION @extschema@.um_explain_permission(bigint, text, bigint, bigint) IS
  'why user_id may or may not do permission in the organization (or on a scope node): membership, roles, teams, grants and scope path';
REVOKE EXECUTE ON FUNCTION @extschema@.um_explain_permission(bigint, text, bigint, bigint) FROM PUBLIC;
-- Identity: login, sessions, the acting user and impersonation
-- (src/identity.c, src/session.c, src/autonomous.c).
--
-- Who may call what:
--   um_login, um_change_password, um_begin, um_logout     everyone (PUBLIC):
--       they demand a password or a token
--   um_impersonate, um_end_impersonation, um_logout_all   everyone, checked
--       against the acting user's permissions
--   um_act_as, um_set_password                            only roles the DBA
--       grants them (EXECUTE revoked from PUBLIC)
--   um.*                                                  internal: EXECUTE is
--       revoked from PUBLIC (88_own_rls.sql)

-- ---------------------------------------------------------------------------
-- C primitives

CREATE FUNCTION um.generate_token()
RETURNS text
AS 'MODULE_PATHNAME', 'um_generate_token'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION um.generate_token() IS 'a fresh token: "um_" and 256 bits from pg_strong_random() in base64url';

CREATE FUNCTION um.token_hash(p_token text)
RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN pg_catalog.sha256(pg_catalog.convert_to(p_token, 'UTF8'));
COMMENT ON FUNCTION um.token_hash(text) IS 'what um.sessions stores instead of a token (um_begin''s lookup uses it too)';

CREATE FUNCTION um.audit_autonomous(p_action text, p_outcome text, p_org_id bigint,
                                    p_target_type text, p_target_id bigint, p_details jsonb)
RETURNS void
AS 'MODULE_PATHNAME', 'um_audit_autonomous'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION um.audit_autonomous(text, text, bigint, text, bigint, jsonb) IS
  'commit an audit event in a transaction of its own (a background worker), which survives the caller''s error';

CREATE FUNCTION um.record_login(p_user_id bigint, p_action text, p_result text, p_reason text,
                                OUT was_locked boolean, OUT failed_logins integer, OUT locked boolean)
RETURNS record
AS 'MODULE_PATHNAME', 'um_record_login'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION um.record_login(bigint, text, text, text) IS
  'commit a login attempt (result unknown_email, wrong, refused or success) in a transaction of its own: count, lock, reset, audit; says whether the account was locked at the attempt';

CREATE FUNCTION um.login_settings(OUT max_failures integer, OUT lockout_seconds integer,
                                  OUT session_lifetime_seconds integer, OUT password_hash_cost integer)
RETURNS record
AS 'MODULE_PATHNAME', 'um_login_settings'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION um.login_settings() IS 'um.login_max_failures, um.login_lockout, um.session_lifetime and um.password_hash_cost, read by the module that defines them';

CREATE FUNCTION um.invoker_role()
RETURNS oid
AS 'MODULE_PATHNAME', 'um_invoker_role'
LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION um.invoker_role() IS 'inside a SECURITY DEFINER function: the role that called it (current_user outside the function)';

CREATE FUNCTION um.start_impersonation(p_target bigint, p_orgs bigint[])
RETURNS void
AS 'MODULE_PATHNAME', 'um_start_impersonation'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION um.start_impersonation(bigint, bigint[]) IS 'internal to um_impersonate(), which checks first';

CREATE FUNCTION @extschema@.um_begin(token text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'um_begin'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.um_begin(text) IS
  'make the session token''s user the acting user until the end of the current transaction; returns the user id';

CREATE FUNCTION @extschema@.um_current_user_id(org_id bigint)
RETURNS bigint
AS 'MODULE_PATHNAME', 'um_current_user_id_in'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.um_current_user_id(bigint) IS
  'the acting user for rows of this organization: NULL while impersonating someone outside the organizations the impersonation is for; for owner_id = um_current_user_id(org_id) policies';

CREATE FUNCTION @extschema@.um_real_user_id()
RETURNS bigint
AS 'MODULE_PATHNAME', 'um_real_user_id'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.um_real_user_id() IS
  'the person really acting: the impersonator while impersonating, else the acting user; NULL when nobody is acting';

CREATE FUNCTION @extschema@.um_end_impersonation()
RETURNS boolean
AS 'MODULE_PATHNAME', 'um_end_impersonation'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_end_impersonation() IS
  'act as oneself again; returns whether an impersonation ended';

CREATE FUNCTION @extschema@.um_impersonated_orgs()
RETURNS bigint[]
AS 'MODULE_PATHNAME', 'um_impersonated_orgs'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.um_impersonated_orgs() IS
  'the organizations the current impersonation applies to; NULL when not impersonating';

-- ---------------------------------------------------------------------------
-- Passwords: bcrypt from pgcrypto (a required extension).  bcrypt is salted
-- and slow by design, with a cost that can grow with hardware
-- (um.password_hash_cost); pgcrypto ships with PostgreSQL, so nothing
-- outside the server is trusted with passwords.  bcrypt reads at most 72
-- bytes, so longer passwords are refused rather than silently cut.
-- pgcrypto may live in any schema; PostgreSQL 15 cannot name it in an
-- install script, so its schema is looked up when a hash is computed.

CREATE FUNCTION um.pgcrypto_schema()
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v text;
BEGIN
  SELECT n.nspname INTO v
    FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
   WHERE e.extname = 'pgcrypto';
  IF v IS NULL THEN
    RAISE EXCEPTION 'extension "pgcrypto" is not installed'
      USING ERRCODE = 'UM069', HINT = 'um hashes passwords with pgcrypto: CREATE EXTENSION pgcrypto.';
  END IF;
  RETURN v;
END
$$;

CREATE FUNCTION um.hash_password(p_password text)
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_cost integer := (um.login_settings()).password_hash_cost;   -- first: keeps the statement out of the log
  v text;
BEGIN
  IF p_password IS NULL OR char_length(p_password) < 8 OR octet_length(p_password) > 72 THEN
    RAISE EXCEPTION 'the new password is not acceptable'
      USING ERRCODE = 'UM068',
            DETAIL = CASE WHEN p_password IS NULL THEN 'No password was given.'
                          WHEN char_length(p_password) < 8 THEN 'It has fewer than 8 characters.'
                          ELSE 'It is longer than 72 bytes, the most bcrypt reads.' END,
            HINT = 'Choose a password of 8 characters to 72 bytes.';
  END IF;
  EXECUTE format('SELECT %1$I.crypt($1, %1$I.gen_salt(''bf'', $2))', um.pgcrypto_schema())
     INTO v USING p_password, v_cost;
  RETURN v;
END
$$;

-- Does the password match the hash?  With no hash (an unknown user, or one
-- who signs in only through an identity provider) it still spends the time
-- of a hash, so timing does not tell which emails exist.
CREATE FUNCTION um.password_matches(p_password text, p_hash text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_schema text := um.pgcrypto_schema();
  v text;
BEGIN
  IF p_hash IS NULL OR p_password IS NULL OR octet_length(p_password) > 72 THEN
    EXECUTE format('SELECT %1$I.crypt($1, %1$I.gen_salt(''bf'', $2))', v_schema)
       INTO v USING coalesce(p_password, ''), (um.login_settings()).password_hash_cost;
    RETURN false;
  END IF;
  EXECUTE format('SELECT %I.crypt($1, $2)', v_schema) INTO v USING p_password, p_hash;
  -- a hash made at a lower cost than today's is quicker to check than an
  -- unknown address (hashed at today's cost): spend today's cost as well,
  -- so that the time of a refusal does not tell which addresses exist
  IF um.hash_cost(p_hash) < (um.login_settings()).password_hash_cost THEN
    PERFORM um.password_matches(p_password, NULL);
  END IF;
  RETURN v = p_hash;
END
$$;

-- um.hash_cost: the bcrypt cost a hash was made with ($2a$NN$...); 0 when
-- it is not a bcrypt hash.
CREATE FUNCTION um.hash_cost(p_hash text)
RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN CASE WHEN p_hash ~ '^\$2[abxy]?\$[0-9][0-9]\$' THEN substr(p_hash, 5, 2)::integer ELSE 0 END;

-- ---------------------------------------------------------------------------
-- Audit events name who acted: with an acting user, the actor columns are
-- always the identity module's (the target and the impersonator while
-- impersonating), whatever the insert said.  Without one (psql
-- administration, a restore, the audit writer, which passes the caller's)
-- they are kept as inserted.
CREATE FUNCTION um.audit_events_stamp()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := @extschema@.um_current_user_id();
BEGIN
  -- inside a lifecycle function the database role is its caller's, not um's owner's
  NEW.db_role := coalesce((SELECT r.rolname FROM pg_catalog.pg_roles r WHERE r.oid = um.caller_role()), NEW.db_role);
  IF v_actor IS NOT NULL THEN
    NEW.actor_user_id := v_actor;
    NEW.impersonator_user_id := nullif(@extschema@.um_real_user_id(), v_actor);
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER audit_events_stamp BEFORE INSERT ON um.audit_events
  FOR EACH ROW EXECUTE FUNCTION um.audit_events_stamp();

-- A password change, a suspension or the loss of login ends the user's
-- sessions (um_begin also checks the user's state on every call).
CREATE FUNCTION um.users_end_sessions()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  UPDATE um.sessions s
     SET revoked_at = now(),
         revoked_reason = CASE WHEN NEW.status <> 'active' AND OLD.status = 'active' THEN 'ended by a suspension'
                               WHEN OLD.allow_login AND NOT NEW.allow_login THEN 'ended by the loss of login'
                               ELSE 'ended by a password change' END
   WHERE s.user_id = NEW.id AND s.revoked_at IS NULL;
  RETURN NULL;
END
$$;
-- (A login that re-hashes the same password at today's higher cost, leaving
-- password_changed_at as it was, is no password change.)
CREATE TRIGGER users_end_sessions AFTER UPDATE OF password_hash, status, allow_login ON um.users
  FOR EACH ROW
  WHEN ((OLD.password_hash IS DISTINCT FROM NEW.password_hash
         AND NOT (OLD.password_changed_at IS NOT DISTINCT FROM NEW.password_changed_at
                  AND um.hash_cost(NEW.password_hash) > um.hash_cost(OLD.password_hash)))
        OR (OLD.status = 'active' AND NEW.status <> 'active')
        OR (OLD.allow_login AND NOT NEW.allow_login))
  EXECUTE FUNCTION um.users_end_sessions();

-- ---------------------------------------------------------------------------
-- Login

-- um.raise: raise an error with an optional detail and hint.
CREATE FUNCTION um.raise(p_sqlstate text, p_message text, p_detail text, p_hint text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF p_detail IS NOT NULL AND p_hint IS NOT NULL THEN
    RAISE EXCEPTION USING MESSAGE = p_message, ERRCODE = p_sqlstate, DETAIL = p_detail, HINT = p_hint;
  ELSIF p_detail IS NOT NULL THEN
    RAISE EXCEPTION USING MESSAGE = p_message, ERRCODE = p_sqlstate, DETAIL = p_detail;
  ELSIF p_hint IS NOT NULL THEN
    RAISE EXCEPTION USING MESSAGE = p_message, ERRCODE = p_sqlstate, HINT = p_hint;
  ELSE
    RAISE EXCEPTION USING MESSAGE = p_message, ERRCODE = p_sqlstate;
  END IF;
END
$$;

-- um.authenticate: the checks of um_login and um_change_password, in an
-- order that tells a stranger nothing.  Every attempt costs one bcrypt
-- (an unknown email hashes against nothing) and is recorded by the audit
-- writer before anything is revealed (src/autonomous.c): it counts a wrong
-- password under a row lock, says whether the account was locked at that
-- moment, and fails closed, so that a right and a wrong password are told
-- apart only once the attempt is counted.  An unknown email, a wrong
-- password and a locked account get the same error (UM060); only a right
-- password on an unlocked account learns why else the login is refused.
-- p_changing_password accepts a temporary password that must be changed.
CREATE FUNCTION um.authenticate(p_email text, p_password text, p_changing_password boolean)
RETURNS um.users
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.users;
  v_action text := CASE WHEN p_changing_password THEN 'user.change_password' ELSE 'user.login' END;
  v_settings record := um.login_settings();
  v_ok boolean;
  v_org text;
  v_reason text;
  v_rec record;
BEGIN
  IF pg_is_in_recovery() THEN
    RAISE EXCEPTION 'cannot log in on a hot standby'
      USING ERRCODE = 'read_only_sql_transaction',
            HINT = 'Log in on the primary server; um_begin() with the session token works on standbys.';
  END IF;
  SELECT * INTO v FROM um.users u
   WHERE lower(u.email) = lower(btrim(coalesce(p_email, ''), E' \t\r\n'));
  IF NOT FOUND THEN
    PERFORM um.password_matches(p_password, NULL);
    PERFORM um.record_login(NULL, v_action, 'unknown_email', 'unknown email');
    v_ok := false;
  ELSE
    v_ok := um.password_matches(p_password, v.password_hash);
    IF v_ok THEN
      SELECT o.slug INTO v_org
        FROM um.memberships m JOIN um.organizations o ON o.id = m.org_id
       WHERE m.user_id = v.id AND o.password_login_disabled
       ORDER BY o.id LIMIT 1;
      v_reason := CASE WHEN v.status <> 'active' THEN 'suspended'
                       WHEN NOT v.allow_login THEN 'login not allowed'
                       WHEN v.email_verified_at IS NULL THEN 'email not verified'
                       WHEN v_org IS NOT NULL THEN 'password login disabled'
                       WHEN v.must_change_password AND NOT p_changing_password THEN 'password must be changed' END;
    END IF;
    v_rec := um.record_login(v.id, v_action,
                             CASE WHEN NOT v_ok THEN 'wrong' WHEN v_reason IS NOT NULL THEN 'refused' ELSE 'success' END,
                             CASE WHEN NOT v_ok THEN (CASE WHEN v.password_hash IS NULL THEN 'no password' ELSE 'wrong password' END)
                                  ELSE v_reason END);
    IF v_rec.was_locked THEN
      v_ok := false;
    END IF;
  END IF;
  IF NOT v_ok THEN
    PERFORM um.raise('UM060', 'invalid email or password', NULL,
      format('Check both and try again; after %s failed attempts in a row the account is locked for %s.',
             v_settings.max_failures,
             CASE WHEN v_settings.lockout_seconds % 60 = 0 THEN (v_settings.lockout_seconds / 60) || ' minutes'
                  ELSE v_settings.lockout_seconds || ' seconds' END));
  END IF;
  CASE v_reason
    WHEN 'suspended' THEN
      PERFORM um.raise('UM061', 'the user is suspended', NULL, 'Ask an administrator of your organization to reactivate you.');
    WHEN 'login not allowed' THEN
      PERFORM um.raise('UM062', 'this user may not log in',
        'The user receives notifications only (allow_login is false).', 'Ask an administrator to enable login.');
    WHEN 'email not verified' THEN
      PERFORM um.raise('UM063', 'the email address is not verified', NULL,
        'Follow the link in the verification email, or ask an administrator to mark the address verified.');
    WHEN 'password login disabled' THEN
      PERFORM um.raise('UM065', 'password login is turned off for this user''s organization',
        format('Organization "%s" requires single sign-on.', v_org), 'Sign in through the organization''s identity provider.');
    WHEN 'password must be changed' THEN
      PERFORM um.raise('UM064', 'the password must be changed before logging in', 'It is a temporary password.',
        'Call um_change_password(email, temporary_password, new_password), which returns a session token.');
    ELSE
      NULL;
  END CASE;
  -- a hash made at a lower cost than today's is made again, now that the
  -- password is known to be right (after the attempt was recorded, whose
  -- writer locks the row); sessions go on
  IF um.hash_cost(v.password_hash) < v_settings.password_hash_cost AND NOT p_changing_password
     AND char_length(p_password) >= 8 AND octet_length(p_password) <= 72 THEN
    UPDATE um.users u SET password_hash = um.hash_password(p_password) WHERE u.id = v.id
    RETURNING * INTO v;
  END IF;
  RETURN v;
END
$$;

-- um.new_session: start a session for a user who just proved who they are.
CREATE FUNCTION um.new_session(p_user um.users, p_action text)
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_token text := um.generate_token();
  v_session bigint;
BEGIN
  -- housekeeping, unless an application table references sessions (um
  -- never changes application rows: see um.assert_no_app_cascades)
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c JOIN pg_catalog.pg_class r ON r.oid = c.conrelid
                  WHERE c.contype = 'f' AND c.confrelid = 'um.sessions'::regclass
                    AND r.relnamespace <> 'um'::regnamespace) THEN
    DELETE FROM um.sessions s WHERE s.user_id = p_user.id AND s.expires_at < now();
  END IF;
  INSERT INTO um.sessions (user_id, token_hash, expires_at)
  VALUES (p_user.id, um.token_hash(v_token), now() + make_interval(secs => (um.login_settings()).session_lifetime_seconds))
  RETURNING id INTO v_session;
  PERFORM um.audit(p_action, NULL, 'user', p_user.id, jsonb_build_object('session_id', v_session));
  RETURN v_token;
END
$$;

CREATE FUNCTION @extschema@.um_login(email text, password text)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN um.new_session(um.authenticate(um_login.email, um_login.password, false), 'user.login');
END
$$;
COMMENT ON FUNCTION @extschema@.um_login(text, text) IS
  'check an email and password and return a new session token for um_begin(); refusals raise UM060-UM065 (UM069 when the attempt cannot be recorded) and are audited';

CREATE FUNCTION @extschema@.um_change_password(email text, old_password text, new_password text)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.users;
  v_hash text;
BEGIN
  PERFORM um.login_settings();                      -- (src/session.c: keeps this statement out of the log)
  IF new_password IS NOT DISTINCT FROM old_password THEN
    RAISE EXCEPTION 'the new password is not acceptable'
      USING ERRCODE = 'UM068', DETAIL = 'It is the same as the old one.', HINT = 'Choose a different password.';
  END IF;
  v_hash := um.hash_password(new_password);       -- bad input is refused before anything else
  v := um.authenticate(email, old_password, true);
  UPDATE um.users u
     SET password_hash = v_hash, must_change_password = false, password_changed_at = now()
   WHERE u.id = v.id
  RETURNING * INTO v;                               -- ends the user's other sessions
  RETURN um.new_session(v, 'user.change_password');
END
$$;
COMMENT ON FUNCTION @extschema@.um_change_password(text, text, text) IS
  'change a password (also a temporary one that must be changed), end the user''s other sessions, and return a new session token';

CREATE FUNCTION @extschema@.um_set_password(user_id bigint, password text, must_change boolean DEFAULT true)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_hash text := um.hash_password(password);
BEGIN
  PERFORM um.require_user(um_set_password.user_id);
  UPDATE um.users u
     SET password_hash = v_hash, must_change_password = coalesce(must_change, true),
         password_changed_at = now(), failed_login_count = 0, locked_until = NULL
   WHERE u.id = um_set_password.user_id;
  PERFORM um.audit('user.set_password', NULL, 'user', um_set_password.user_id,
                   jsonb_build_object('must_change', coalesce(must_change, true)));
END
$$;
COMMENT ON FUNCTION @extschema@.um_set_password(bigint, text, boolean) IS
  'administrators: set a user''s password (by default a temporary one to be changed at the next login) and unlock the account';

CREATE FUNCTION @extschema@.um_logout(token text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_session um.sessions;
BEGIN
  UPDATE um.sessions s SET revoked_at = now(), revoked_reason = 'ended by a logout'
   WHERE s.token_hash = um.token_hash(token) AND s.revoked_at IS NULL AND s.expires_at > now()
  RETURNING * INTO v_session;
  IF NOT FOUND THEN
    RETURN false;                                   -- unknown, expired or already ended
  END IF;
  PERFORM um.audit('user.logout', NULL, 'user', v_session.user_id, jsonb_build_object('session_id', v_session.id));
  RETURN true;
END
$$;
COMMENT ON FUNCTION @extschema@.um_logout(text) IS
  'end the session of this token; returns false when it was not live';

-- um.deny: audit a refused call and raise the permission error.  With an
-- acting user the audit event is committed by the audit writer, whatever
-- happens next; without one (nobody logged in) the refusal goes to the
-- server log instead, so that unauthenticated callers cannot occupy
-- background workers or grow the audit trail.
CREATE FUNCTION um.deny(p_action text, p_org_id bigint, p_target_type text, p_target_id bigint,
                        p_sqlstate text, p_message text, p_detail text, p_hint text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF @extschema@.um_current_user_id() IS NULL THEN
    RAISE LOG 'um: refused % of % % by database role %: %',
      p_action, p_target_type, p_target_id, coalesce(um.caller_role(), um.invoker_role())::regrole, p_message;
  ELSE
    PERFORM um.audit_autonomous(p_action, 'denied', p_org_id, p_target_type, p_target_id,
                                jsonb_build_object('sqlstate', p_sqlstate, 'reason', p_message));
  END IF;
  PERFORM um.raise(p_sqlstate, p_message, p_detail, p_hint);
END
$$;

-- ---------------------------------------------------------------------------
-- Impersonation

-- Does the target hold anything in the organization that the impersonator
-- lacks (organization-wide or on any scope node)?  Then impersonating would
-- be an escalation.
CREATE FUNCTION um.impersonation_escalates(p_impersonator bigint, p_target bigint, p_org_id bigint)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT EXISTS (
    SELECT 1 FROM um.permissions p
     WHERE (@extschema@.um_has_permission(p_target, p.name, p_org_id)
            AND NOT @extschema@.um_has_permission(p_impersonator, p.name, p_org_id))
        OR NOT (@extschema@.um_permitted_scopes(p_target, p.name, p_org_id)
                <@ @extschema@.um_permitted_scopes(p_impersonator, p.name, p_org_id)));
$$;

CREATE FUNCTION @extschema@.um_impersonate(target_user_id bigint)
RETURNS bigint[]
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := @extschema@.um_current_user_id();
  v_target um.users;
  v_orgs bigint[];
BEGIN
  IF v_actor IS NULL THEN
    RAISE EXCEPTION 'nobody is acting in this transaction'
      USING ERRCODE = 'UM072', HINT = 'Call um_begin(token) first; impersonation starts from a logged-in user.';
  END IF;
  IF v_actor IS DISTINCT FROM @extschema@.um_real_user_id() THEN
    PERFORM um.deny('user.impersonate', NULL, 'user', target_user_id, 'UM071',
      'cannot impersonate while impersonating', NULL, 'Call um_end_impersonation() first.');
  END IF;
  IF target_user_id = v_actor THEN
    PERFORM um.deny('user.impersonate', NULL, 'user', target_user_id, 'UM071',
      'cannot impersonate oneself', NULL, 'Pass the id of another user.');
  END IF;
  -- first: may the actor impersonate anybody in an organization of the
  -- target's?  (Until then, say nothing about the target, not even whether
  -- it exists.)
  SELECT array_agg(m.org_id ORDER BY m.org_id) INTO v_orgs
    FROM um.memberships m
   WHERE m.user_id = target_user_id AND m.status = 'active'
     AND @extschema@.um_has_permission(v_actor, 'user:impersonate', m.org_id);
  IF v_orgs IS NULL THEN
    PERFORM um.deny('user.impersonate', NULL, 'user', target_user_id, 'UM070',
      format('permission denied to impersonate user %s', target_user_id),
      'Impersonation needs user:impersonate in an organization the target is an active member of.',
      'Ask an Admin of the target''s organization.');
  END IF;
  v_target := um.require_user(target_user_id);
  IF EXISTS (SELECT 1 FROM um.memberships m JOIN um.roles r ON r.id = m.role_id
              WHERE m.user_id = v_target.id AND r.builtin IN ('root', 'admin')) THEN
    PERFORM um.deny('user.impersonate', v_orgs[1], 'user', target_user_id, 'UM071',
      format('cannot impersonate user %s, an Admin or Root', target_user_id),
      'Admins and roots (of any organization) are never impersonated.',
      'Ask the user to act themselves.');
  END IF;
  IF v_target.status <> 'active' OR NOT v_target.allow_login THEN
    PERFORM um.deny('user.impersonate', v_orgs[1], 'user', target_user_id, 'UM071',
      format('cannot impersonate user %s', target_user_id),
      'The user is suspended or may not log in.', 'Reactivate the user first, or act yourself.');
  END IF;
  SELECT array_agg(o ORDER BY o) INTO v_orgs
    FROM unnest(v_orgs) AS o
   WHERE NOT um.impersonation_escalates(v_actor, v_target.id, o);
  IF v_orgs IS NULL THEN
    PERFORM um.deny('user.impersonate', NULL, 'user', target_user_id, 'UM070',
      format('permission denied to impersonate user %s', target_user_id),
      'The target holds a permission you lack; impersonating them would give it to you.',
      'Ask someone who holds every permission of the target''s.');
  END IF;
  PERFORM um.start_impersonation(v_target.id, v_orgs);
  -- committed at once: a transaction that reads as the target and then
  -- rolls back still leaves the impersonation on record
  PERFORM um.audit_autonomous('user.impersonate', 'ok', v_orgs[1], 'user', v_target.id,
                              jsonb_build_object('orgs', to_jsonb(v_orgs)));
  RETURN v_orgs;
END
$$;
COMMENT ON FUNCTION @extschema@.um_impersonate(bigint) IS
  'act as another (non-admin) member until the transaction ends or um_end_impersonation(); returns the organizations it applies to';

REVOKE EXECUTE ON FUNCTION
  um.generate_token(),
  um.token_hash(text),
  um.audit_autonomous(text, text, bigint, text, bigint, jsonb),
  um.record_login(bigint, text, text, text),
  um.invoker_role(),
  um.login_settings(),
  um.start_impersonation(bigint, bigint[]),
  um.pgcrypto_schema(),
  um.hash_password(text),
  um.password_matches(text, text),
  um.raise(text, text, text, text),
  um.authenticate(text, text, boolean),
  um.new_session(um.users, text),
  um.deny(text, bigint, text, bigint, text, text, text, text),
  um.impersonation_escalates(bigint, bigint, bigint),
  @extschema@.um_set_password(bigint, text, boolean)
FROM PUBLIC;
-- Row-level security for application tables: um_protect_table() and
-- um_unprotect_table().
--
-- One call enables and forces RLS on a table and gives it four policies,
-- one per command (see um.policy_check for their expressions):
--   um_read    FOR SELECT  USING      <resource>:read
--   um_create  FOR INSERT  WITH CHECK <resource>:create
--   um_update  FOR UPDATE  USING and WITH CHECK <resource>:update
--   um_delete  FOR DELETE  USING      <resource>:delete
-- WITH CHECK on UPDATE means a row can neither be changed where the user may
-- not update nor be moved into such an organization.  A partitioned table's
-- partitions get the same policies (queries that name a partition directly
-- would otherwise skip the parent's).  The policies themselves are the
-- record of what is protected (pg_dump keeps them with the table).

-- um.protection_note (src/protect.c): the privileged part, done as the
-- owner of um's tables once the current role is found to own the table:
-- the audit event (details of its own making) and, for a um administrator
-- only, the resource's permissions when the catalog lacks them.
CREATE OR REPLACE FUNCTION um.protection_note(p_table regclass, p_action text, p_resource text)
RETURNS void
AS 'MODULE_PATHNAME', 'um_protection_note'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- um.protection_tree: the table and every table that inherits from it
-- (partitions, sub-partitions and INHERITS children alike).
CREATE OR REPLACE FUNCTION um.protection_tree(p_table regclass)
RETURNS SETOF regclass
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  WITH RECURSIVE t(relid, depth) AS (
    SELECT p_table::oid, 0
    UNION ALL
    SELECT i.inhrelid, t.depth + 1 FROM pg_catalog.pg_inherits i JOIN t ON i.inhparent = t.relid WHERE t.depth < 100)
  SELECT t.relid::pg_catalog.regclass FROM t JOIN pg_catalog.pg_class c ON c.oid = t.relid
   WHERE c.relkind IN ('r', 'p') ORDER BY t.depth, t.relid;
$$;

-- um.protection_state: um's policies and the RLS switches of these
-- relations, as text (um_protect_table audits only what it changed).
CREATE OR REPLACE FUNCTION um.protection_state(p_rels regclass[])
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT string_agg(format('%s %s%s %s %s %s', c.oid, c.relrowsecurity, c.relforcerowsecurity, p.polname,
                           pg_catalog.pg_get_expr(p.polqual, p.polrelid), pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid)),
                    '; ' ORDER BY c.oid, p.polname)
    FROM pg_catalog.pg_class c
    LEFT JOIN pg_catalog.pg_policy p ON p.polrelid = c.oid AND p.polname IN ('um_read', 'um_create', 'um_update', 'um_delete')
   WHERE c.oid = ANY (p_rels::oid[]);
$$;

-- um.check_column: the column exists and is a bigint, or raise UM080.
CREATE OR REPLACE FUNCTION um.check_column(p_rel regclass, p_column name, p_role text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_type regtype;
BEGIN
  SELECT a.atttypid::regtype INTO v_type
    FROM pg_catalog.pg_attribute a
   WHERE a.attrelid = p_rel AND a.attname = p_column AND a.attnum > 0 AND NOT a.attisdropped;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'table % has no column "%"', p_rel, p_column
      USING ERRCODE = 'UM080',
            HINT = format('Pass the name of the column that holds the %s id (names are case-sensitive, as in the catalog).', p_role);
  END IF;
  IF v_type <> 'bigint'::regtype THEN
    RAISE EXCEPTION 'column "%" of table % is of type %, not bigint', p_column, p_rel, v_type
      USING ERRCODE = 'UM080',
            DETAIL = format('um''s %s ids are bigint; a cast in the policy would keep the planner from using an index on the column.', p_role),
            HINT = format('ALTER TABLE %s ALTER COLUMN %I TYPE bigint;', p_rel, p_column);
  END IF;
END
$$;

-- um.policy_check: the expression of one um policy.  Organization-level:
--   org_id = ANY (um_permitted_orgs('invoice:read'))
-- the organizations where the acting user holds the permission: exactly
-- what um_has_permission('invoice:read', org_id) says for each row.  As an
-- index condition it is computed once per scan and leaves nothing to run
-- per row (the per-row form keeps a recheck in bitmap scans); in a filter
-- each call site remembers its last answer.  With a scope column, the
-- per-row um_has_permission(permission, org, scope).
CREATE OR REPLACE FUNCTION um.policy_check(p_permission text, p_org_column name, p_scope_column name)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE WHEN p_scope_column IS NULL
              THEN format('%I = ANY (%I.um_permitted_orgs(%L))', p_org_column, '@extschema@', p_permission)
              ELSE format('%I.um_has_permission(%L, %I, %I)', '@extschema@', p_permission, p_org_column, p_scope_column) END;
$$;

-- um.drop_um_policies: drop the um_* policies a relation has.
CREATE OR REPLACE FUNCTION um.drop_um_policies(p_rel regclass)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v name;
BEGIN
  FOR v IN SELECT p.polname FROM pg_catalog.pg_policy p
            WHERE p.polrelid = p_rel AND p.polname IN ('um_read', 'um_create', 'um_update', 'um_delete') LOOP
    EXECUTE format('DROP POLICY %I ON %s', v, p_rel);
  END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION @extschema@.um_protect_table(tbl regclass, org_column name, resource text,
                                             scope_column name DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_kind "char";
  v_rel regclass;
  v_action text;
  v_parts regclass[];
  v_before text;
BEGIN
  IF tbl IS NULL OR org_column IS NULL OR resource IS NULL THEN
    RAISE EXCEPTION 'um_protect_table needs a table, its organization column and a resource'
      USING ERRCODE = 'UM080', HINT = 'For example: SELECT um_protect_table(''invoices'', ''org_id'', ''invoice'');';
  END IF;
  SELECT c.relkind INTO v_kind FROM pg_catalog.pg_class c WHERE c.oid = tbl;
  IF v_kind NOT IN ('r', 'p') THEN
    RAISE EXCEPTION '% is not a table', tbl
      USING ERRCODE = 'UM080', HINT = 'Protect the tables a view reads; make the view security_invoker.';
  END IF;
  IF (SELECT c.relpersistence FROM pg_catalog.pg_class c WHERE c.oid = tbl) = 't' THEN
    RAISE EXCEPTION 'cannot protect temporary table %', tbl
      USING ERRCODE = 'UM080', HINT = 'Protect permanent tables: a temporary one is its session''s alone.';
  END IF;
  IF NOT pg_has_role(current_user, (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = tbl), 'USAGE') THEN
    RAISE EXCEPTION 'must be the owner of table % to protect it', tbl
      USING ERRCODE = 'insufficient_privilege', HINT = 'Run it as the table''s owner (or a member of the owning role).';
  END IF;
  PERFORM um.check_column(tbl, org_column, 'organization');
  IF scope_column IS NOT NULL THEN
    PERFORM um.check_column(tbl, scope_column, 'scope node');
  END IF;
  -- the four permissions must be valid names (unknown ones are registered below)
  FOREACH v_action IN ARRAY ARRAY['read', 'create', 'update', 'delete'] LOOP
    PERFORM um.assert_permission_name(resource || ':' || v_action, false);
  END LOOP;

  -- PostgreSQL checks that the caller owns each relation (this function
  -- runs with the caller's rights)
  SELECT array_agg(t) INTO v_parts FROM um.protection_tree(tbl) t;
  v_before := um.protection_state(v_parts);
  FOREACH v_rel IN ARRAY v_parts LOOP
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY', v_rel);
    PERFORM um.drop_um_policies(v_rel);
    EXECUTE format('CREATE POLICY um_read ON %s FOR SELECT USING (%s)', v_rel, um.policy_check(resource || ':read', org_column, scope_column));
    EXECUTE format('CREATE POLICY um_create ON %s FOR INSERT WITH CHECK (%s)', v_rel, um.policy_check(resource || ':create', org_column, scope_column));
    EXECUTE format('CREATE POLICY um_update ON %1$s FOR UPDATE USING (%2$s) WITH CHECK (%2$s)', v_rel, um.policy_check(resource || ':update', org_column, scope_column));
    EXECUTE format('CREATE POLICY um_delete ON %s FOR DELETE USING (%s)', v_rel, um.policy_check(resource || ':delete', org_column, scope_column));
  END LOOP;
  -- the catalog check (and registration) always; the audit event only for a change
  IF um.protection_state(v_parts) IS DISTINCT FROM v_before
     OR EXISTS (SELECT 1 FROM unnest(ARRAY['read', 'create', 'update', 'delete']) a
                 WHERE NOT EXISTS (SELECT 1 FROM um.permissions p WHERE p.name = um_protect_table.resource || ':' || a)) THEN
    PERFORM um.protection_note(tbl, 'table.protect', resource);
  END IF;
END
$$;
COMMENT ON FUNCTION @extschema@.um_protect_table(regclass, name, text, name) IS
  'enable and force RLS on a table (and the tables inheriting from it) with um policies mapping SELECT/INSERT/UPDATE/DELETE to <resource>:read/create/update/delete; idempotent';

CREATE OR REPLACE FUNCTION @extschema@.um_unprotect_table(tbl regclass, disable_rls boolean DEFAULT false)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_rel regclass;
  v_found boolean := false;
BEGIN
  IF tbl IS NULL THEN
    RETURN false;
  END IF;
  IF NOT pg_has_role(current_user, (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = tbl), 'USAGE') THEN
    RAISE EXCEPTION 'must be the owner of table % to unprotect it', tbl
      USING ERRCODE = 'insufficient_privilege', HINT = 'Run it as the table''s owner (or a member of the owning role).';
  END IF;
  FOR v_rel IN SELECT t FROM um.protection_tree(tbl) t
                WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_policy p
                               WHERE p.polrelid = t AND p.polname IN ('um_read', 'um_create', 'um_update', 'um_delete')) LOOP
    v_found := true;
    PERFORM um.drop_um_policies(v_rel);
    -- Row-level security stays on (with no policy it denies everything)
    -- unless asked otherwise, and then only where no other policy remains.
    IF disable_rls AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_policy p WHERE p.polrelid = v_rel) THEN
      EXECUTE format('ALTER TABLE %s DISABLE ROW LEVEL SECURITY, NO FORCE ROW LEVEL SECURITY', v_rel);
    END IF;
  END LOOP;
  IF v_found THEN
    PERFORM um.protection_note(tbl, 'table.unprotect', NULL);
  END IF;
  RETURN v_found;
END
$$;
COMMENT ON FUNCTION @extschema@.um_unprotect_table(regclass, boolean) IS
  'drop um''s policies from a table and the tables inheriting from it; row-level security stays on (denying all) unless disable_rls, where no other policy remains; returns whether it was protected';

-- um_protect_table and um_unprotect_table run with their caller's rights and
-- call these; each is harmless alone (um.protection_note checks ownership).
-- (88_own_rls.sql revokes EXECUTE on every function in um; these get it back
-- there.)
-- um_lint(): what weakens tenant isolation in this database, each finding
-- with what to do about it.  Reads only the catalogs.
CREATE OR REPLACE FUNCTION @extschema@.um_lint()
RETURNS TABLE (severity text, object text, finding text, hint text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT f.* FROM (
  WITH app_tables AS (
    SELECT c.oid, c.relkind, c.relrowsecurity, c.relforcerowsecurity, c.relispartition
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p')
       AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'um', 'pg_toast')
       AND n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast_temp%'),
  org_columns AS (
    -- a column that references um.organizations, or is called org_id / organization_id
    SELECT t.oid, a.attname
      FROM app_tables t JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
     WHERE a.attname IN ('org_id', 'organization_id')
        OR EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k
                    WHERE k.conrelid = t.oid AND k.contype = 'f' AND k.confrelid = 'um.organizations'::pg_catalog.regclass
                      AND a.attnum = ANY (k.conkey))),
  policies AS (
    SELECT p.polrelid, count(*) AS n, count(*) FILTER (WHERE p.polname IN ('um_read', 'um_create', 'um_update', 'um_delete')) AS um
      FROM pg_catalog.pg_policy p GROUP BY p.polrelid),
  policy_columns AS (
    -- the columns um's read policy uses: the organization column (and a scope column)
    SELECT t.oid, a.attnum, a.attname
      FROM app_tables t JOIN pg_catalog.pg_policy pol ON pol.polrelid = t.oid AND pol.polname = 'um_read'
      JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_policy'::pg_catalog.regclass AND d.objid = pol.oid
                                 AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = t.oid
                                 AND d.refobjsubid > 0
      JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid),
  protected_columns AS (
    -- of those, the organization column: the one that looks like one, else all
    SELECT DISTINCT c.oid, c.attnum, c.attname FROM policy_columns c
     WHERE EXISTS (SELECT 1 FROM org_columns o WHERE o.oid = c.oid AND o.attname = c.attname)
        OR NOT EXISTS (SELECT 1 FROM policy_columns c2 JOIN org_columns o ON o.oid = c2.oid AND o.attname = c2.attname
                        WHERE c2.oid = c.oid))
  -- 1. an organization column and no policy at all
  SELECT 'critical' AS severity, t.oid::pg_catalog.regclass::text AS object,
         format('has an organization column (%s) but no row-level security policy: every role with SELECT sees every tenant''s rows',
                (SELECT string_agg(DISTINCT o.attname::text, ', ') FROM org_columns o WHERE o.oid = t.oid)) AS finding,
         format('SELECT um_protect_table(%L, %L, ''<resource>'');', t.oid::pg_catalog.regclass::text,
                (SELECT min(o.attname::text) FROM org_columns o WHERE o.oid = t.oid)) AS hint
    FROM app_tables t
   WHERE EXISTS (SELECT 1 FROM org_columns o WHERE o.oid = t.oid)
     AND NOT EXISTS (SELECT 1 FROM policies p WHERE p.polrelid = t.oid)
     AND NOT (t.relispartition AND EXISTS (SELECT 1 FROM pg_catalog.pg_partition_ancestors(t.oid) a
                                            JOIN policies p ON p.polrelid = a.relid WHERE a.relid <> t.oid))
  UNION ALL
  -- 2. a partition of a protected table without the policies (queries naming it skip the parent's)
  SELECT 'critical', t.oid::pg_catalog.regclass::text,
         'is a partition of a protected table but has no policies of its own: a query that names the partition sees every tenant''s rows',
         format('SELECT um_protect_table(%L, ...) again on the parent table protects its partitions too.',
                (SELECT a.relid::pg_catalog.regclass::text FROM pg_catalog.pg_partition_ancestors(t.oid) a
                  WHERE a.relid <> t.oid ORDER BY a.relid LIMIT 1))
    FROM app_tables t
   WHERE t.relispartition AND NOT EXISTS (SELECT 1 FROM policies p WHERE p.polrelid = t.oid)
     AND EXISTS (SELECT 1 FROM pg_catalog.pg_partition_ancestors(t.oid) a JOIN policies p ON p.polrelid = a.relid
                  WHERE a.relid <> t.oid)
  UNION ALL
  -- 2b. another permissive policy beside um's: permissive policies are OR'ed,
  -- so it widens what um's policy allows
  SELECT 'critical', t.oid::pg_catalog.regclass::text,
         format('has permissive policy %I beside um''s policies: permissive policies add up, so it lets through whatever it allows', p.polname),
         format('Make it restrictive (CREATE POLICY ... AS RESTRICTIVE) to narrow um''s policies, or drop it: DROP POLICY %I ON %s;',
                p.polname, t.oid::pg_catalog.regclass)
    FROM app_tables t JOIN pg_catalog.pg_policy p ON p.polrelid = t.oid
   WHERE p.polpermissive AND p.polname NOT IN ('um_read', 'um_create', 'um_update', 'um_delete')
     AND EXISTS (SELECT 1 FROM policies q WHERE q.polrelid = t.oid AND q.um > 0)
  UNION ALL
  -- 3. policies that are not enforced
  SELECT 'critical', t.oid::pg_catalog.regclass::text,
         'has policies but row-level security is not enabled: they are ignored',
         format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;', t.oid::pg_catalog.regclass)
    FROM app_tables t JOIN policies p ON p.polrelid = t.oid
   WHERE NOT t.relrowsecurity
  UNION ALL
  SELECT 'warning', t.oid::pg_catalog.regclass::text,
         'enables row-level security without forcing it: the table''s owner (and views it owns) bypass the policies',
         format('ALTER TABLE %s FORCE ROW LEVEL SECURITY;', t.oid::pg_catalog.regclass)
    FROM app_tables t
   WHERE t.relrowsecurity AND NOT t.relforcerowsecurity
  UNION ALL
  -- 4. views over protected tables that do not run as their caller
  SELECT CASE WHEN v.relkind = 'm' OR r.rolsuper OR r.rolbypassrls THEN 'critical' ELSE 'warning' END,
         v.oid::pg_catalog.regclass::text,
         CASE WHEN v.relkind = 'm'
              THEN format('is a materialized view over protected table %s: it stores rows as its owner saw them, and its readers are not filtered', t.oid::pg_catalog.regclass)
              WHEN r.rolsuper OR r.rolbypassrls
              THEN format('reads protected table %s as its owner %I, who bypasses row-level security: its readers see every tenant''s rows', t.oid::pg_catalog.regclass, r.rolname)
              ELSE format('reads protected table %s with its owner''s privileges, not its caller''s (security_invoker is off)', t.oid::pg_catalog.regclass) END,
         CASE WHEN v.relkind = 'm'
              THEN format('Replace it with a view, or protect it: SELECT um_protect_table(%L, ...).', v.oid::pg_catalog.regclass::text)
              ELSE format('ALTER VIEW %s SET (security_invoker = true);', v.oid::pg_catalog.regclass) END
    FROM pg_catalog.pg_rewrite rw
    JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = rw.oid
                               AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
    JOIN pg_catalog.pg_class v ON v.oid = rw.ev_class
    JOIN pg_catalog.pg_class t ON t.oid = d.refobjid
    JOIN pg_catalog.pg_roles r ON r.oid = v.relowner
   WHERE v.relkind IN ('v', 'm') AND t.oid <> v.oid AND t.relrowsecurity
     AND (v.relkind = 'm'
          OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_options_to_table(v.reloptions) o
                          WHERE o.option_name = 'security_invoker'
                            AND lower(o.option_value) IN ('true', 'on', 'yes', '1', 't', 'y')))
   GROUP BY v.oid, v.relkind, t.oid, r.rolsuper, r.rolbypassrls, r.rolname
  UNION ALL
  -- 5. roles that log in and bypass row-level security
  SELECT CASE WHEN r.rolsuper THEN 'warning' ELSE 'critical' END, 'role ' || quote_ident(r.rolname),
         CASE WHEN r.rolsuper THEN 'is a superuser that can log in: if an application connects as it, no policy applies'
              ELSE 'can log in and has BYPASSRLS: no policy applies to it' END,
         CASE WHEN r.rolsuper THEN 'Connect applications with a role that is neither superuser nor BYPASSRLS; keep this one for administration.'
              ELSE format('ALTER ROLE %I NOBYPASSRLS;', r.rolname) END
    FROM pg_catalog.pg_roles r
   WHERE r.rolcanlogin AND (r.rolbypassrls OR r.rolsuper) AND r.oid <> 10
  UNION ALL
  -- 6. SECURITY DEFINER functions whose search_path the caller chooses
  SELECT 'warning', 'function ' || p.oid::pg_catalog.regprocedure::text,
         'is SECURITY DEFINER without a pinned search_path: a caller can put objects of its own in the way',
         format('ALTER FUNCTION %s SET search_path = pg_catalog, pg_temp;', p.oid::pg_catalog.regprocedure)
    FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
   WHERE p.prosecdef AND n.nspname NOT IN ('pg_catalog', 'information_schema')
     AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search\_path=%')
  UNION ALL
  -- 7. protected tables whose organization column has no index
  SELECT 'info', t.oid::pg_catalog.regclass::text,
         format('is protected on column %s, which no index leads with: every query reads the whole table', o.attname),
         format('CREATE INDEX ON %s (%I);', t.oid::pg_catalog.regclass, o.attname)
    FROM app_tables t JOIN policies p ON p.polrelid = t.oid AND p.um > 0
    JOIN protected_columns o ON o.oid = t.oid
   WHERE t.relkind = 'r'
     AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                      WHERE i.indrelid = t.oid
                        AND i.indkey[0] = (SELECT a.attnum FROM pg_catalog.pg_attribute a
                                            WHERE a.attrelid = t.oid AND a.attname = o.attname))
  UNION ALL
  -- 8. protected tables with a unique key that leaves out the organization
  -- column: a unique index ignores row-level security, so a write that
  -- collides (a unique violation, INSERT ... ON CONFLICT DO NOTHING) tells
  -- one tenant that another tenant's row holds the value; and a
  -- tenant-sharded deployment (distributed by organization) needs the
  -- organization in each key
  SELECT 'warning', t.oid::pg_catalog.regclass::text,
         format('is protected on column %I, which its %s %I does not include: a colliding insert or update tells a tenant that another tenant''s row holds the value (unique indexes ignore row-level security), and the table cannot be distributed by organization',
                o.attname, CASE k.contype WHEN 'p' THEN 'primary key' WHEN 'u' THEN 'unique constraint' ELSE 'unique index' END,
                coalesce(k.conname, ic.relname)),
         CASE WHEN k.oid IS NOT NULL
              THEN format('Lead it with the organization (it then holds within each organization; foreign keys that reference it must be dropped first and re-created on the new key): ALTER TABLE %s DROP CONSTRAINT %I, ADD %s (%s);',
                          t.oid::pg_catalog.regclass, k.conname, CASE k.contype WHEN 'p' THEN 'PRIMARY KEY' ELSE 'UNIQUE' END,
                          (SELECT string_agg(quote_ident(x.name), ', ' ORDER BY x.ord)
                             FROM (SELECT o.attname::text AS name, 0::bigint AS ord
                                   UNION ALL
                                   SELECT a.attname::text, c.ord FROM unnest(k.conkey) WITH ORDINALITY AS c(attnum, ord)
                                     JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attnum = c.attnum) x))
              ELSE format('Re-create it with %I as its first column (it then holds within each organization): it is %s',
                          o.attname, pg_catalog.pg_get_indexdef(i.indexrelid)) END
    FROM app_tables t JOIN policies p ON p.polrelid = t.oid AND p.um > 0
    JOIN protected_columns o ON o.oid = t.oid
    JOIN pg_catalog.pg_index i ON i.indrelid = t.oid AND i.indisunique
    JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
    LEFT JOIN pg_catalog.pg_constraint k ON k.conrelid = t.oid AND k.conindid = i.indexrelid AND k.contype IN ('p', 'u')
   WHERE NOT t.relispartition
     AND NOT o.attnum = ANY ((i.indkey::pg_catalog.int2[])[0:i.indnkeyatts - 1])   -- key columns, not INCLUDE ones
  UNION ALL
  -- 9. foreign keys into um's tables: PostgreSQL checks each inserted row
  -- as the owner of the referenced table, with the referencing column's
  -- casts (code of the application's with um's rights when the types differ)
  SELECT CASE WHEN EXISTS (SELECT 1 FROM unnest(k.conkey, k.confkey) AS x(a, b)
                             JOIN pg_catalog.pg_attribute fa ON fa.attrelid = k.conrelid AND fa.attnum = x.a
                             JOIN pg_catalog.pg_attribute pa ON pa.attrelid = k.confrelid AND pa.attnum = x.b
                            WHERE fa.atttypid <> pa.atttypid)
              THEN 'critical' ELSE 'warning' END,
         k.conrelid::pg_catalog.regclass::text,
         format('has foreign key %I into %s: PostgreSQL checks it as um''s owner, running the column''s casts with um''s rights',
                k.conname, k.confrelid::pg_catalog.regclass),
         CASE WHEN k.confrelid = 'um.users'::pg_catalog.regclass AND cardinality(k.conkey) = 1
              THEN format('ALTER TABLE %s DROP CONSTRAINT %I; SELECT um_add_user_reference(%L, %L);',
                          k.conrelid::pg_catalog.regclass, k.conname, k.conrelid::pg_catalog.regclass::text,
                          (SELECT a.attname FROM pg_catalog.pg_attribute a WHERE a.attrelid = k.conrelid AND a.attnum = k.conkey[1]))
              ELSE format('ALTER TABLE %s DROP CONSTRAINT %I; keep the ids without a foreign key into um''s tables.',
                          k.conrelid::pg_catalog.regclass, k.conname) END
    FROM pg_catalog.pg_constraint k JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
   WHERE k.contype = 'f' AND c.relnamespace <> 'um'::pg_catalog.regnamespace
     AND (SELECT r.relnamespace FROM pg_catalog.pg_class r WHERE r.oid = k.confrelid) = 'um'::pg_catalog.regnamespace
     AND k.conparentid = 0
  UNION ALL
  -- 10. roles holding REFERENCES on um's tables: they can make such keys
  SELECT 'critical', 'role ' || a.grantee::pg_catalog.regrole::text,
         format('holds REFERENCES on %s: a foreign key it makes is checked with um''s rights, running its casts', c.oid::pg_catalog.regclass),
         format('REVOKE REFERENCES ON %s FROM %s; register columns of user ids with um_add_user_reference() instead.',
                c.oid::pg_catalog.regclass, a.grantee::pg_catalog.regrole)
    FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
   WHERE c.relnamespace = 'um'::pg_catalog.regnamespace AND a.privilege_type = 'REFERENCES'
     AND a.grantee <> c.relowner AND a.grantee <> 0
  UNION ALL
  SELECT 'critical', 'role ' || a.grantee::pg_catalog.regrole::text,
         format('holds REFERENCES on column %I of %s: a foreign key it makes is checked with um''s rights, running its casts',
                att.attname, c.oid::pg_catalog.regclass),
         format('REVOKE REFERENCES (%I) ON %s FROM %s; register columns of user ids with um_add_user_reference() instead.',
                att.attname, c.oid::pg_catalog.regclass, a.grantee::pg_catalog.regrole)
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_attribute att ON att.attrelid = c.oid, pg_catalog.aclexplode(att.attacl) a
   WHERE c.relnamespace = 'um'::pg_catalog.regnamespace AND a.privilege_type = 'REFERENCES'
     AND a.grantee <> c.relowner AND a.grantee <> 0
  ) f
  ORDER BY array_position(ARRAY['critical', 'warning', 'info'], f.severity), f.object, f.finding
$$;
COMMENT ON FUNCTION @extschema@.um_lint() IS
  'a security advisor: tables with an organization column but no policies, RLS not forced, unprotected partitions, views and materialized views over protected tables, roles that bypass RLS, SECURITY DEFINER functions without a pinned search_path, unindexed organization columns, keys without the organization; each with a hint';
-- Lifecycle functions: every change to users, organizations, teams, roles,
-- grants and invitations.
--
-- Each public function um_<name>(...) is the C entry point of
-- src/lifecycle.c, running with its caller's rights; it calls the body
-- um.do_<name>(the same arguments..., caller oid), which runs as um's owner
-- (SECURITY DEFINER, EXECUTE held by nobody) and receives the database role
-- that really called.  Every body:
--   1. authorizes first, before it says anything about its target: the
--      acting user needs the permission in the organization; with nobody
--      acting, the calling role must administer um (superuser, or member of
--      the extension's owner);
--   2. applies the escalation guards: nobody grants a role holding a
--      permission they lack; only a Root acts on a Root;
--   3. changes everything or nothing (one statement's transaction), with the
--      invariants of 30_rules.sql as the last line of defence;
--   4. writes an audit event (ids only, never personal data).
-- A refusal is audited by um.deny (committed even though the call fails).

-- ---------------------------------------------------------------------------
-- Who is calling

CREATE FUNCTION um.caller_role()
RETURNS oid
AS 'MODULE_PATHNAME', 'um_caller_role'
LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION um.caller_role() IS 'the database role that called the lifecycle function now running; NULL outside them';

CREATE FUNCTION um.role_administers_um(p_role oid)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = p_role), false)
      OR coalesce((SELECT pg_catalog.pg_has_role(p_role, e.extowner, 'USAGE')
                     FROM pg_catalog.pg_extension e WHERE e.extname = 'um'), false);
$$;
COMMENT ON FUNCTION um.role_administers_um(oid) IS 'is this database role a um administrator (superuser, or with the privileges of the extension''s owner)?';

-- ---------------------------------------------------------------------------
-- Lookups that name what is missing

CREATE FUNCTION um.require_member(p_org_id bigint, p_user_id bigint)
RETURNS um.memberships
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.memberships;
BEGIN
  SELECT * INTO v FROM um.memberships m WHERE m.org_id = p_org_id AND m.user_id = p_user_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'user % is not a member of organization %', coalesce(p_user_id::text, 'NULL'), p_org_id
      USING ERRCODE = 'UM035',
            HINT = 'Invite the user (um_invite) or add them (um_add_member) first.';
  END IF;
  RETURN v;
END
$$;

CREATE FUNCTION um.require_team(p_team_id bigint)
RETURNS um.teams
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.teams;
BEGIN
  SELECT * INTO v FROM um.teams t WHERE t.id = p_team_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'team % does not exist', coalesce(p_team_id::text, 'NULL')
      USING ERRCODE = 'UM033', HINT = 'Look the team up in um.teams.';
  END IF;
  RETURN v;
END
$$;

CREATE FUNCTION um.require_role_id(p_role_id bigint)
RETURNS um.roles
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.roles;
BEGIN
  SELECT * INTO v FROM um.roles r WHERE r.id = p_role_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'role % does not exist', coalesce(p_role_id::text, 'NULL')
      USING ERRCODE = 'UM032', HINT = 'Look the role up in um.roles.';
  END IF;
  RETURN v;
END
$$;

CREATE FUNCTION um.require_scope(p_scope_id bigint)
RETURNS um.scopes
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.scopes;
BEGIN
  SELECT * INTO v FROM um.scopes s WHERE s.id = p_scope_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'scope node % does not exist', coalesce(p_scope_id::text, 'NULL')
      USING ERRCODE = 'UM036', HINT = 'Look the node up in um.scopes.';
  END IF;
  RETURN v;
END
$$;

CREATE FUNCTION um.is_root(p_org_id bigint, p_user_id bigint)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT EXISTS (SELECT 1 FROM um.memberships m JOIN um.roles r ON r.id = m.role_id
                  WHERE m.org_id = p_org_id AND m.user_id = p_user_id AND r.builtin = 'root');
$$;

-- The catalog permissions a role grants, its included roles' too.  (PL/pgSQL
-- so that its plan is kept between calls; exact names join by equality and
-- only patterns are matched one by one.)
CREATE FUNCTION um.role_grants(p_role_id bigint)
RETURNS SETOF text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN QUERY
  WITH RECURSIVE r(id) AS (
    SELECT p_role_id
    UNION
    SELECT ri.included_role_id FROM um.role_inclusions ri JOIN r ON ri.role_id = r.id),
  granted AS (SELECT DISTINCT rp.permission FROM r JOIN um.role_permissions rp ON rp.role_id = r.id)
  SELECT p.name FROM granted g JOIN um.permissions p ON p.name = g.permission
  UNION
  SELECT p.name FROM granted g JOIN um.permissions p
      ON strpos(g.permission, '*') > 0 AND @extschema@.um_permission_matches(g.permission, p.name);
END
$$;

-- The catalog permissions a name or pattern stands for.
CREATE FUNCTION um.pattern_grants(p_pattern text)
RETURNS SETOF text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF strpos(p_pattern, '*') = 0 THEN
    RETURN QUERY SELECT p.name FROM um.permissions p WHERE p.name = p_pattern;
  ELSE
    RETURN QUERY SELECT p.name FROM um.permissions p
                  WHERE @extschema@.um_permission_matches(p_pattern, p.name) ORDER BY 1;
  END IF;
END
$$;

-- um never changes application rows.  A foreign key from an application
-- table into um's tables with a cascading action (CASCADE, SET NULL, SET
-- DEFAULT) would make a lifecycle function's DELETE change that table, and
-- PostgreSQL fires the table's AFTER triggers at the end of the function's
-- statement, with the function's rights (um's owner): the table's owner
-- could run code as um's owner.  So every lifecycle function that may delete
-- refuses while such a foreign key exists; with RESTRICT or NO ACTION the
-- application removes its own rows first (and deletion names the table).
CREATE FUNCTION um.assert_no_app_cascades()
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v record;
BEGIN
  SELECT c.conname, c.conrelid::regclass AS tbl, c.confrelid::regclass AS target INTO v
    FROM pg_catalog.pg_constraint c
    JOIN pg_catalog.pg_class t ON t.oid = c.confrelid
    JOIN pg_catalog.pg_class r ON r.oid = c.conrelid
   WHERE c.contype = 'f' AND t.relnamespace = 'um'::regnamespace AND r.relnamespace <> 'um'::regnamespace
     AND (c.confdeltype NOT IN ('a', 'r') OR c.confupdtype NOT IN ('a', 'r'))
   ORDER BY 2, 1 LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'foreign key "%" of table % would let um change application rows', v.conname, v.tbl
      USING ERRCODE = 'UM057',
            DETAIL = format('It references %s with a cascading action (CASCADE, SET NULL or SET DEFAULT).', v.target),
            HINT = 'Declare it ON DELETE RESTRICT (or NO ACTION) and ON UPDATE RESTRICT; the application removes its own rows first.';
  END IF;
END
$$;

-- ---------------------------------------------------------------------------
-- Authorization

-- um.authorize: may this call go ahead?  Returns the acting user (NULL for
-- a um administrator with nobody acting); refuses (UM070, audited) otherwise.
-- p_what completes "permission denied to ...".
CREATE FUNCTION um.authorize(p_caller oid, p_action text, p_what text, p_permission text,
                             p_org_id bigint, p_target_type text, p_target_id bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := @extschema@.um_current_user_id();
BEGIN
  PERFORM um.assert_no_app_cascades();
  IF v_actor IS NULL THEN
    IF NOT um.role_administers_um(p_caller) THEN
      PERFORM um.deny(p_action, p_org_id, p_target_type, p_target_id, 'UM070',
        'permission denied to ' || p_what,
        format('Nobody is acting in this transaction, and database role %s does not administer um.', p_caller::regrole),
        'Call um_begin(token) first to act as a logged-in user, or ask a um administrator.');
    END IF;
  ELSIF p_permission IS NOT NULL
        AND (p_org_id IS NULL OR NOT @extschema@.um_has_permission(p_permission, p_org_id)) THEN
    IF p_org_id IS NULL OR @extschema@.um_current_user_id(p_org_id) IS NULL
       OR NOT EXISTS (SELECT 1 FROM um.memberships m WHERE m.org_id = p_org_id AND m.user_id = v_actor) THEN
      -- not one of the actor's organizations: say nothing about it, and keep
      -- the refusal out of its audit trail
      PERFORM um.deny(p_action, NULL, p_target_type, p_target_id, 'UM070',
        'permission denied to ' || p_what,
        format('It needs %s in an organization you belong to.', p_permission),
        'Ask an Admin of the organization for that permission.');
    END IF;
    PERFORM um.deny(p_action, p_org_id, p_target_type, p_target_id, 'UM070',
      'permission denied to ' || p_what,
      format('It needs %s in organization %s.', p_permission, p_org_id),
      'Ask an Admin of the organization for that permission.');
  END IF;
  IF p_org_id IS NOT NULL THEN
    PERFORM um.require_organization(p_org_id);
  END IF;
  RETURN v_actor;
END
$$;

-- um.authorize_user: for changes to a user account itself (which every
-- organization of the user shares): the permission is needed in every
-- organization the user belongs to, and only a Root acts on a Root there.
-- A user in no organization is only a um administrator's.
CREATE FUNCTION um.authorize_user(p_caller oid, p_action text, p_what text, p_permission text,
                                  p_user_id bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := @extschema@.um_current_user_id();
  v_org bigint;
BEGIN
  IF v_actor IS NULL THEN
    PERFORM um.authorize(p_caller, p_action, p_what, NULL, NULL, 'user', p_user_id);
  ELSE
    -- A refusal is recorded in an organization's audit trail, and named,
    -- only when the actor is a member there (the identity reaching it):
    -- the user's other organizations are none of the actor's business.
    SELECT m.org_id INTO v_org FROM um.memberships m
     WHERE m.user_id = p_user_id AND NOT @extschema@.um_has_permission(p_permission, m.org_id)
     ORDER BY m.org_id LIMIT 1;
    IF FOUND OR NOT EXISTS (SELECT 1 FROM um.memberships m WHERE m.user_id = p_user_id) THEN
      PERFORM um.deny(p_action, um.actor_org(v_org), 'user', p_user_id, 'UM070',
        'permission denied to ' || p_what,
        format('It needs %s in every organization the user belongs to.', p_permission),
        'Ask an Admin of each of the user''s organizations, or a um administrator.');
    END IF;
    SELECT m.org_id INTO v_org FROM um.memberships m
     WHERE m.user_id = p_user_id AND um.is_root(m.org_id, p_user_id) AND NOT um.is_root(m.org_id, v_actor)
     ORDER BY m.org_id LIMIT 1;
    IF FOUND THEN
      PERFORM um.deny(p_action, v_org, 'user', p_user_id, 'UM073',
        format('only a Root may %s a Root', p_what),
        format('User %s is a Root of organization %s.', p_user_id, v_org),
        'Ask another Root of that organization.');
    END IF;
  END IF;
  PERFORM um.require_user(p_user_id);
  RETURN v_actor;
END
$$;

-- um.actor_org: the organization, if the acting user may be told about it
-- and it may carry their refusals (a member there, the identity reaching
-- it); else NULL.
CREATE FUNCTION um.actor_org(p_org_id bigint)
RETURNS bigint
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT p_org_id
   WHERE @extschema@.um_current_user_id(p_org_id) IS NOT NULL
     AND EXISTS (SELECT 1 FROM um.memberships m
                  WHERE m.org_id = p_org_id AND m.user_id = @extschema@.um_current_user_id(p_org_id));
$$;

-- Only a Root acts on a Root (an Admin never removes, demotes or suspends one).
CREATE FUNCTION um.guard_root_target(p_actor bigint, p_org_id bigint, p_user_id bigint,
                                     p_action text, p_what text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF p_actor IS NOT NULL
     AND (p_actor <> p_user_id OR p_actor IS DISTINCT FROM @extschema@.um_real_user_id())
     AND um.is_root(p_org_id, p_user_id) AND NOT um.is_root(p_org_id, p_actor) THEN
    PERFORM um.deny(p_action, p_org_id, 'user', p_user_id, 'UM073',
      format('only a Root may %s a Root', p_what),
      format('User %s is a Root of organization %s.', p_user_id, p_org_id),
      'Ask a Root of the organization.');
  END IF;
END
$$;

-- Nobody hands out a permission they do not hold (on the scope node, when
-- the grant is for one).  p_permissions are catalog names.
CREATE FUNCTION um.guard_escalation(p_actor bigint, p_org_id bigint, p_scope_id bigint,
                                    p_permissions text[], p_action text, p_what text,
                                    p_target_type text, p_target_id bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_missing text[];
BEGIN
  IF p_actor IS NULL THEN
    RETURN;                                         -- a um administrator
  END IF;
  SELECT array_agg(p ORDER BY p) INTO v_missing
    FROM unnest(p_permissions) AS p
   WHERE NOT CASE WHEN p_scope_id IS NULL THEN @extschema@.um_has_permission(p_actor, p, p_org_id)
                  ELSE @extschema@.um_has_permission(p_actor, p, p_org_id, p_scope_id) END;
  IF v_missing IS NOT NULL THEN
    PERFORM um.deny(p_action, p_org_id, p_target_type, p_target_id, 'UM073',
      format('cannot %s: it would hand out permissions you do not hold', p_what),
      format('You lack %s%s.', array_to_string(v_missing[1:8], ', '),
             CASE WHEN cardinality(v_missing) > 8 THEN format(' and %s more', cardinality(v_missing) - 8) ELSE '' END),
      'Ask someone who holds every permission of the role.');
  END IF;
END
$$;

-- An organization keeps an active Root who can log in: refuse to suspend,
-- or take login from, the last one.
CREATE FUNCTION um.guard_last_active_root(p_user_id bigint, p_org_id bigint, p_action text, p_what text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_org bigint;
BEGIN
  -- serialize with every other change to these organizations' Roots
  -- (two Roots disabling each other at once)
  PERFORM um.lock_organization(m.org_id)
     FROM um.memberships m JOIN um.roles r ON r.id = m.role_id
    WHERE m.user_id = p_user_id AND r.builtin = 'root' AND (p_org_id IS NULL OR m.org_id = p_org_id)
    ORDER BY m.org_id;
  SELECT m.org_id INTO v_org
    FROM um.memberships m JOIN um.roles r ON r.id = m.role_id
   WHERE m.user_id = p_user_id AND r.builtin = 'root' AND (p_org_id IS NULL OR m.org_id = p_org_id)
     AND NOT EXISTS (SELECT 1 FROM um.memberships m2 JOIN um.roles r2 ON r2.id = m2.role_id
                       JOIN um.users u2 ON u2.id = m2.user_id
                      WHERE m2.org_id = m.org_id AND r2.builtin = 'root' AND m2.user_id <> p_user_id
                        AND m2.status = 'active' AND u2.status = 'active' AND u2.allow_login)
   ORDER BY m.org_id LIMIT 1;
  IF FOUND THEN
    PERFORM um.deny(p_action, v_org, 'user', p_user_id, 'UM044',
      format('cannot %s the last active Root of organization %s', p_what, v_org),
      'An organization always keeps a Root who can log in.',
      'Make another member Root first (um_set_org_role or um_transfer_org_ownership).');
  END IF;
END
$$;

CREATE FUNCTION um.invalid_argument(p_message text, p_hint text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RAISE EXCEPTION USING MESSAGE = p_message, ERRCODE = 'UM009', HINT = p_hint;
END
$$;

-- ---------------------------------------------------------------------------
-- Users

-- Email verification tokens: random, stored hashed, single use, expiring.
CREATE TABLE um.verification_tokens (
  token_hash bytea PRIMARY KEY,
  user_id bigint NOT NULL REFERENCES um.users ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  sets_password boolean NOT NULL DEFAULT false
);
CREATE INDEX verification_tokens_user_id_idx ON um.verification_tokens (user_id);
COMMENT ON TABLE um.verification_tokens IS 'email verification tokens (only their SHA-256), single use, valid 48 hours';
COMMENT ON COLUMN um.verification_tokens.sets_password IS
  'a claim: whoever redeems it proves the mailbox and chooses the password, so no password someone else set survives (um_resend_verification, a sign-up for an unverified address, an administrator''s new user)';

-- A secret proves control of a mailbox only if no tenant user could have
-- seen it: one is returned only to a call with nobody acting (the backend,
-- which mails it), never to a call made for a logged-in user.
CREATE FUNCTION um.new_verification(p_user_id bigint, p_sets_password boolean)
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_token text := um.generate_token();
BEGIN
  PERFORM um.assert_no_app_cascades();
  IF @extschema@.um_current_user_id() IS NOT NULL THEN
    RAISE EXCEPTION 'a verification secret is only issued with nobody acting'
      USING ERRCODE = 'UM058',
            DETAIL = 'It proves control of the mailbox only if no logged-in user could have seen it.',
            HINT = 'Call it from the backend in a transaction where nobody is acting, and mail the result.';
  END IF;
  DELETE FROM um.verification_tokens t WHERE t.user_id = p_user_id;   -- one live token per user
  INSERT INTO um.verification_tokens (token_hash, user_id, expires_at, sets_password)
  VALUES (um.token_hash(v_token), p_user_id, now() + interval '48 hours', p_sets_password);
  RETURN v_token;
END
$$;

-- A temporary password: 120 random bits, which the user must change.
CREATE FUNCTION um.temporary_password()
RETURNS text
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
RETURN substr(um.generate_token(), 4, 20);

-- Insert a user, or say why not.
CREATE FUNCTION um.insert_user(p_email text, p_name text, p_allow_login boolean, p_timezone text,
                               p_locale text, p_mobile text, p_attributes jsonb)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_email text := btrim(p_email, E' \t\r\n');
  v_id bigint;
BEGIN
  IF p_email IS NULL THEN
    RAISE EXCEPTION 'an email address is required'
      USING ERRCODE = 'UM001', HINT = 'Pass the user''s email address.';
  END IF;
  IF EXISTS (SELECT 1 FROM um.users u WHERE lower(u.email) = lower(v_email)) THEN
    RAISE EXCEPTION 'email address "%" is already registered', v_email
      USING ERRCODE = 'UM020',
            DETAIL = 'Email addresses are unique regardless of letter case.',
            HINT = 'Use the existing user (um.users), or choose another address.';
  END IF;
  BEGIN
    INSERT INTO um.users (email, name, allow_login, timezone, locale, mobile, attributes)
    VALUES (v_email, p_name, coalesce(p_allow_login, true), coalesce(p_timezone, 'UTC'),
            coalesce(p_locale, 'en'), p_mobile, coalesce(p_attributes, '{}'))
    RETURNING id INTO v_id;
  EXCEPTION WHEN unique_violation THEN          -- lost a race for the address
    RAISE EXCEPTION 'email address "%" is already registered', v_email
      USING ERRCODE = 'UM020',
            DETAIL = 'Email addresses are unique regardless of letter case.',
            HINT = 'Use the existing user (um.users), or choose another address.';
  END;
  RETURN v_id;
END
$$;

-- psql administration: a user in no organization yet.
CREATE FUNCTION um.do_create_user(p_email text, p_name text, p_allow_login boolean, p_timezone text,
                                  p_locale text, p_mobile text, p_attributes jsonb, p_caller oid)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id bigint;
BEGIN
  IF @extschema@.um_current_user_id() IS NOT NULL THEN
    PERFORM um.deny('user.create', NULL, 'user', NULL, 'UM070',
      'permission denied to create a user outside an organization',
      'Only a um administrator, with nobody acting, creates users who belong to no organization.',
      'Create the user in your organization: um_create_user(org_id, email, ...).');
  END IF;
  PERFORM um.authorize(p_caller, 'user.create', 'create a user', NULL, NULL, 'user', NULL);
  v_id := um.insert_user(p_email, p_name, p_allow_login, p_timezone, p_locale, p_mobile, p_attributes);
  PERFORM um.audit('user.create', NULL, 'user', v_id,
                   jsonb_build_object('allow_login', coalesce(p_allow_login, true)));
  RETURN v_id;
END
$$;

-- An Admin creates a user in their organization.
CREATE FUNCTION um.do_create_user(p_org_id bigint, p_email text, p_role text, p_name text,
                                  p_allow_login boolean, p_timezone text, p_locale text, p_mobile text,
                                  p_caller oid,
                                  OUT user_id bigint, OUT temporary_password text, OUT verification_token text)
RETURNS record
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um.authorize(p_caller, 'user.create', format('create users in organization %s', p_org_id),
                                 'user:create', p_org_id, 'user', NULL);
  v_role um.roles := um.require_role(p_org_id, coalesce(p_role, 'member'));
BEGIN
  PERFORM um.guard_escalation(v_actor, p_org_id, NULL, ARRAY(SELECT um.role_grants(v_role.id)),
                              'user.create', format('create a user with role "%s"', v_role.name), 'user', NULL);
  user_id := um.insert_user(p_email, p_name, p_allow_login, p_timezone, p_locale, p_mobile, NULL);
  IF coalesce(p_allow_login, true) THEN
    temporary_password := um.temporary_password();
    UPDATE um.users u SET password_hash = um.hash_password(temporary_password),
                          must_change_password = true, password_changed_at = now()
     WHERE u.id = user_id;
    -- a tenant user must not hold the mailbox's secret (the backend sends
    -- one later with um_resend_verification, with nobody acting)
    IF v_actor IS NULL THEN
      verification_token := um.new_verification(user_id, true);
    END IF;
  END IF;
  INSERT INTO um.memberships (org_id, user_id, role_id, invited_by)
  VALUES (p_org_id, user_id, v_role.id, v_actor);
  PERFORM um.audit('user.create', p_org_id, 'user', user_id,
                   jsonb_build_object('allow_login', coalesce(p_allow_login, true), 'role_id', v_role.id));
END
$$;

CREATE FUNCTION um.do_sign_up(p_email text, p_password text, p_name text, p_timezone text, p_locale text,
                              p_caller oid)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_hash text := um.hash_password(p_password);     -- bad input is refused first
  v_id bigint;
BEGIN
  IF @extschema@.um_current_user_id() IS NOT NULL THEN
    PERFORM um.new_verification(NULL, false);      -- UM058: secrets only with nobody acting
  END IF;
  -- An unverified account with this address: whoever made it never proved
  -- the mailbox.  The answer looks like a sign-up's, and the secret goes to
  -- the mailbox only: redeeming it sets a new password there and then
  -- (um_verify_email(token, password)); this password is not used.
  SELECT u.id INTO v_id FROM um.users u
   WHERE lower(u.email) = lower(btrim(p_email, E' \t\r\n')) AND u.email_verified_at IS NULL AND u.allow_login;
  IF FOUND THEN
    PERFORM um.audit('user.sign_up', NULL, 'user', v_id, '{"claim": true}');
    RETURN um.new_verification(v_id, true);
  END IF;
  v_id := um.insert_user(p_email, p_name, true, p_timezone, p_locale, NULL, NULL);
  UPDATE um.users u SET password_hash = v_hash, password_changed_at = now() WHERE u.id = v_id;
  PERFORM um.audit('user.sign_up', NULL, 'user', v_id, '{}');
  RETURN um.new_verification(v_id, false);
END
$$;

CREATE FUNCTION um.do_resend_verification(p_email text, p_caller oid)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id bigint;
BEGIN
  IF @extschema@.um_current_user_id() IS NOT NULL THEN
    PERFORM um.new_verification(NULL, true);       -- UM058: secrets only with nobody acting
  END IF;
  SELECT u.id INTO v_id FROM um.users u
   WHERE lower(u.email) = lower(btrim(p_email, E' \t\r\n')) AND u.email_verified_at IS NULL AND u.allow_login;
  IF NOT FOUND THEN
    RETURN NULL;                       -- unknown or already verified: nothing to send
  END IF;
  PERFORM um.audit('user.resend_verification', NULL, 'user', v_id, '{}');
  RETURN um.new_verification(v_id, true);           -- whoever redeems it chooses the password
END
$$;

CREATE FUNCTION um.do_verify_email(p_token text, p_password text, p_caller oid)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_tok um.verification_tokens;
  v_hash text;
BEGIN
  PERFORM um.assert_no_app_cascades();
  SELECT * INTO v_tok FROM um.verification_tokens t
   WHERE t.token_hash = um.token_hash(coalesce(p_token, '')) AND t.expires_at > now()
     FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'the verification token is not valid'
      USING ERRCODE = 'UM053',
            DETAIL = 'It is unknown, was already used, or is more than 48 hours old.',
            HINT = 'Ask for a new verification email (um_resend_verification).';
  END IF;
  IF v_tok.sets_password AND p_password IS NULL THEN
    RAISE EXCEPTION 'choose a password to verify this address'
      USING ERRCODE = 'UM059',
            DETAIL = 'Whoever redeems this secret proves the mailbox and sets the account''s password; no password set before stays valid.',
            HINT = 'Ask for a new password and call um_verify_email(token, password).';
  END IF;
  IF p_password IS NOT NULL THEN
    v_hash := um.hash_password(p_password);         -- bad input changes nothing
  END IF;
  DELETE FROM um.verification_tokens t WHERE t.token_hash = v_tok.token_hash;
  UPDATE um.users u SET email_verified_at = coalesce(u.email_verified_at, now()) WHERE u.id = v_tok.user_id;
  IF v_hash IS NOT NULL THEN
    -- the mailbox's owner takes the account: every session ends (trigger)
    UPDATE um.users u SET password_hash = v_hash, password_changed_at = now(), must_change_password = false,
                          failed_login_count = 0, locked_until = NULL
     WHERE u.id = v_tok.user_id;
  END IF;
  PERFORM um.audit('user.verify_email', NULL, 'user', v_tok.user_id,
                   jsonb_build_object('password_set', v_hash IS NOT NULL));
  RETURN v_tok.user_id;
END
$$;

CREATE FUNCTION um.do_mark_verified(p_user_id bigint, p_caller oid)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  -- a tenant user vouching for an address would own it (and every
  -- invitation later sent to it): only a um administrator does
  IF @extschema@.um_current_user_id() IS NOT NULL THEN
    PERFORM um.deny('user.mark_verified', NULL, 'user', p_user_id, 'UM070',
      'permission denied to mark an email address verified',
      'Only a um administrator, with nobody acting, vouches for an address; a tenant user could claim someone else''s.',
      'Have the backend send a verification (um_resend_verification) to the address instead.');
  END IF;
  PERFORM um.authorize_user(p_caller, 'user.mark_verified', format('mark the email of user %s verified', p_user_id),
                            'user:update', p_user_id);
  UPDATE um.users u SET email_verified_at = now() WHERE u.id = p_user_id AND u.email_verified_at IS NULL;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  DELETE FROM um.verification_tokens t WHERE t.user_id = p_user_id;
  PERFORM um.audit('user.mark_verified', NULL, 'user', p_user_id, '{}');
  RETURN true;
END
$$;

CREATE FUNCTION um.do_disable_login(p_user_id bigint, p_caller oid)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM um.authorize_user(p_caller, 'user.disable_login', format('disable the login of user %s', p_user_id),
                            'user:update', p_user_id);
  PERFORM um.guard_last_active_root(p_user_id, NULL, 'user.disable_login', 'disable the login of');
  UPDATE um.users u SET allow_login = false, updated_at = now() WHERE u.id = p_user_id AND u.allow_login;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  PERFORM um.audit('user.disable_login', NULL, 'user', p_user_id, '{}');
  RETURN true;
END
$$;

-- Returns a temporary password when the user had none (and no identity link).
CREATE FUNCTION um.do_enable_login(p_user_id bigint, p_caller oid)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.users;
  v_password text;
BEGIN
  PERFORM um.authorize_user(p_caller, 'user.enable_login', format('enable the login of user %s', p_user_id),
                            'user:update', p_user_id);
  SELECT * INTO v FROM um.users u WHERE u.id = p_user_id FOR UPDATE;
  IF v.allow_login THEN
    RETURN NULL;
  END IF;
  IF v.password_hash IS NULL AND NOT EXISTS (SELECT 1 FROM um.user_identities i WHERE i.user_id = p_user_id) THEN
    v_password := um.temporary_password();
    UPDATE um.users u SET password_hash = um.hash_password(v_password), must_change_password = true,
                          password_changed_at = now()
     WHERE u.id = p_user_id;
  END IF;
  UPDATE um.users u SET allow_login = true, updated_at = now() WHERE u.id = p_user_id;
  PERFORM um.audit('user.enable_login', NULL, 'user', p_user_id,
                   jsonb_build_object('temporary_password', v_password IS NOT NULL));
  RETURN v_password;
END
$$;

-- Suspension: of the account (every organization), or of one membership.
-- It keeps everything and blocks all access; reactivation undoes exactly it.
CREATE FUNCTION um.do_suspend_user(p_user_id bigint, p_org_id bigint, p_caller oid)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint;
BEGIN
  IF p_org_id IS NULL THEN
    v_actor := um.authorize_user(p_caller, 'user.suspend', format('suspend user %s', p_user_id),
                                 'user:suspend', p_user_id);
  ELSE
    v_actor := um.authorize(p_caller, 'user.suspend', format('suspend members of organization %s', p_org_id),
                            'user:suspend', p_org_id, 'user', p_user_id);
    PERFORM um.require_member(p_org_id, p_user_id);
    PERFORM um.guard_root_target(v_actor, p_org_id, p_user_id, 'user.suspend', 'suspend');
  END IF;
  IF p_user_id = v_actor THEN
    PERFORM um.deny('user.suspend', p_org_id, 'user', p_user_id, 'UM051', 'cannot suspend yourself',
      NULL, 'Ask another administrator.');
  END IF;
  PERFORM um.guard_last_active_root(p_user_id, p_org_id, 'user.suspend', 'suspend');
  IF p_org_id IS NULL THEN
    UPDATE um.users u SET status = 'suspended', suspended_at = now(), updated_at = now()
     WHERE u.id = p_user_id AND u.status = 'active';
  ELSE
    UPDATE um.memberships m SET status = 'suspended'
     WHERE m.org_id = p_org_id AND m.user_id = p_user_id AND m.status = 'active';
  END IF;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'user % is already suspended%', p_user_id,
                    CASE WHEN p_org_id IS NULL THEN '' ELSE ' in organization ' || p_org_id END
      USING ERRCODE = 'UM051', HINT = 'Reactivate the user with um_reactivate_user().';
  END IF;
  PERFORM um.audit('user.suspend', p_org_id, 'user', p_user_id, '{}');
END
$$;

CREATE FUNCTION um.do_reactivate_user(p_user_id bigint, p_org_id bigint, p_caller oid)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint;
BEGIN
  IF p_org_id IS NULL THEN
    v_actor := um.authorize_user(p_caller, 'user.reactivate', format('reactivate user %s', p_user_id),
                                 'user:suspend', p_user_id);
    UPDATE um.users u SET status = 'active', suspended_at = NULL, updated_at = now()
     WHERE u.id = p_user_id AND u.status = 'suspended';
  ELSE
    v_actor := um.authorize(p_caller, 'user.reactivate', format('reactivate members of organization %s', p_org_id),
                            'user:suspend', p_org_id, 'user', p_user_id);
    PERFORM um.require_member(p_org_id, p_user_id);
    PERFORM um.guard_root_target(v_actor, p_org_id, p_user_id, 'user.reactivate', 'reactivate');
    UPDATE um.memberships m SET status = 'active'
     WHERE m.org_id = p_org_id AND m.user_id = p_user_id AND m.status = 'suspended';
  END IF;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'user % is not suspended%', p_user_id,
                    CASE WHEN p_org_id IS NULL THEN '' ELSE ' in organization ' || p_org_id END
      USING ERRCODE = 'UM051', HINT = 'Nothing to do; um.users.status and um.memberships.status show suspensions.';
  END IF;
  PERFORM um.audit('user.reactivate', p_org_id, 'user', p_user_id, '{}');
END
$$;

-- ---------------------------------------------------------------------------
-- Organizations and members

CREATE FUNCTION um.do_create_organization(p_slug text, p_name text, p_root_user_id bigint, p_caller oid)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := @extschema@.um_current_user_id();
  v_user um.users;
  v_org bigint;
  v_root bigint;
BEGIN
  IF v_actor IS NULL THEN
    PERFORM um.authorize(p_caller, 'organization.create', 'create an organization', NULL, NULL, 'organization', NULL);
  ELSIF p_root_user_id IS DISTINCT FROM v_actor OR v_actor IS DISTINCT FROM @extschema@.um_real_user_id() THEN
    PERFORM um.deny('organization.create', NULL, 'user', p_root_user_id, 'UM070',
      'permission denied to create an organization for another user',
      'A logged-in user creates organizations only with themself as the Root (and not while impersonating).',
      'Pass your own user id as root_user_id.');
  END IF;
  v_user := um.require_user(p_root_user_id);
  IF v_user.status <> 'active' OR NOT v_user.allow_login THEN
    RAISE EXCEPTION 'user % cannot be the Root of an organization', p_root_user_id
      USING ERRCODE = 'UM050',
            DETAIL = CASE WHEN v_user.status <> 'active' THEN 'The user is suspended.'
                          ELSE 'The user is notification-only (allow_login is false).' END,
            HINT = 'Choose an active user who can log in.';
  END IF;
  IF EXISTS (SELECT 1 FROM um.organizations o WHERE o.slug = p_slug) THEN
    RAISE EXCEPTION 'organization slug "%" is already taken', p_slug
      USING ERRCODE = 'UM021', HINT = 'Choose another slug.';
  END IF;
  BEGIN
    INSERT INTO um.organizations (slug, name) VALUES (p_slug, p_name) RETURNING id INTO v_org;
  EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'organization slug "%" is already taken', p_slug
      USING ERRCODE = 'UM021', HINT = 'Choose another slug.';
  END;
  v_root := um.seed_builtin_roles(v_org);
  INSERT INTO um.memberships (org_id, user_id, role_id) VALUES (v_org, p_root_user_id, v_root);
  PERFORM um.audit('organization.create', v_org, 'organization', v_org,
                   jsonb_build_object('root_user_id', p_root_user_id));
  RETURN v_org;
END
$$;

CREATE FUNCTION um.do_add_member(p_org_id bigint, p_user_id bigint, p_role text, p_caller oid)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um.authorize(p_caller, 'member.add', format('add members to organization %s', p_org_id),
                                 'member:create', p_org_id, 'user', p_user_id);
  v_org um.organizations;
  v_role um.roles := um.require_role(p_org_id, coalesce(p_role, 'member'));
  v_id bigint;
BEGIN
  -- An acting user never pulls an existing account into their organization
  -- (it would show them its data and put it under their control): people
  -- join through an invitation they accept.
  IF v_actor IS NOT NULL THEN
    PERFORM um.deny('member.add', p_org_id, 'user', p_user_id, 'UM070',
      'permission denied to add an existing user directly',
      'People join an organization by accepting an invitation; only a um administrator adds them directly.',
      'Invite the address with um_invite(), or create a new user with um_create_user(org_id, email, ...).');
  END IF;
  v_org := um.require_organization(p_org_id);
  PERFORM um.guard_escalation(v_actor, p_org_id, NULL, ARRAY(SELECT um.role_grants(v_role.id)),
                              'member.add', format('add a member with role "%s"', v_role.name), 'user', p_user_id);
  PERFORM um.require_user(p_user_id);
  IF EXISTS (SELECT 1 FROM um.memberships m WHERE m.org_id = p_org_id AND m.user_id = p_user_id) THEN
    RAISE EXCEPTION 'user % is already a member of organization "%"', p_user_id, v_org.slug
      USING ERRCODE = 'UM022',
            HINT = 'Change the member''s role instead; a user holds one organization role.';
  END IF;
  BEGIN
    INSERT INTO um.memberships (org_id, user_id, role_id, invited_by)
    VALUES (p_org_id, p_user_id, v_role.id, v_actor)
    RETURNING id INTO v_id;
  EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'user % is already a member of organization "%"', p_user_id, v_org.slug
      USING ERRCODE = 'UM022',
            HINT = 'Change the member''s role instead; a user holds one organization role.';
  END;
  PERFORM um.audit('member.add', p_org_id, 'user', p_user_id, jsonb_build_object('role_id', v_role.id));
  RETURN v_id;
END
$$;

CREATE FUNCTION um.do_set_org_role(p_org_id bigint, p_user_id bigint, p_role text, p_caller oid)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um.authorize(p_caller, 'member.set_role', format('change roles in organization %s', p_org_id),
                                 'role:grant', p_org_id, 'user', p_user_id);
  v_member um.memberships;
  v_role um.roles;
BEGIN
  v_member := um.require_member(p_org_id, p_user_id);
  v_role := um.require_role(p_org_id, p_role);
  PERFORM um.guard_root_target(v_actor, p_org_id, p_user_id, 'member.set_role', 'change the role of');
  PERFORM um.guard_escalation(v_actor, p_org_id, NULL, ARRAY(SELECT um.role_grants(v_role.id)),
                              'member.set_role', format('give role "%s"', v_role.name), 'user', p_user_id);
  IF v_member.role_id = v_role.id THEN
    RETURN;
  END IF;
  UPDATE um.memberships m SET role_id = v_role.id WHERE m.id = v_member.id;   -- keeps a Root (UM044)
  PERFORM um.audit('member.set_role', p_org_id, 'user', p_user_id,
                   jsonb_build_object('old_role_id', v_member.role_id, 'role_id', v_role.id));
END
$$;

CREATE FUNCTION um.do_transfer_org_ownership(p_org_id bigint, p_new_root_user_id bigint, p_demote_to text,
                                             p_caller oid)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um.authorize(p_caller, 'organization.transfer', format('transfer organization %s', p_org_id),
                                 'org:update', p_org_id, 'user', p_new_root_user_id);
  v_root bigint;
  v_demote um.roles;
  v_user um.users;
BEGIN
  IF v_actor IS NOT NULL AND NOT um.is_root(p_org_id, v_actor) THEN
    PERFORM um.deny('organization.transfer', p_org_id, 'user', p_new_root_user_id, 'UM073',
      'only a Root may transfer ownership of an organization', NULL, 'Ask a Root of the organization.');
  END IF;
  PERFORM um.require_member(p_org_id, p_new_root_user_id);
  v_user := um.require_user(p_new_root_user_id);
  IF v_user.status <> 'active' OR NOT v_user.allow_login
     OR EXISTS (SELECT 1 FROM um.memberships m WHERE m.org_id = p_org_id AND m.user_id = p_new_root_user_id
                                                  AND m.status <> 'active') THEN
    RAISE EXCEPTION 'user % cannot be the Root of an organization', p_new_root_user_id
      USING ERRCODE = 'UM050', DETAIL = 'The user is suspended or notification-only.',
            HINT = 'Choose an active member who can log in.';
  END IF;
  v_demote := um.require_role(p_org_id, coalesce(p_demote_to, 'admin'));
  IF v_demote.builtin = 'root' THEN
    PERFORM um.invalid_argument('demote_to must not be the Root role', 'Pass Admin or another role, or use um_set_org_role to add a Root.');
  END IF;
  SELECT r.id INTO v_root FROM um.roles r WHERE r.org_id = p_org_id AND r.builtin = 'root';
  -- one statement, so the organization is never without a Root
  UPDATE um.memberships m
     SET role_id = CASE WHEN m.user_id = p_new_root_user_id THEN v_root ELSE v_demote.id END
   WHERE m.org_id = p_org_id
     AND (m.user_id = p_new_root_user_id
          OR (m.role_id = v_root AND (v_actor IS NULL OR m.user_id = v_actor)));
  PERFORM um.audit('organization.transfer', p_org_id, 'user', p_new_root_user_id,
                   jsonb_build_object('demoted_to_role_id', v_demote.id));
END
$$;

CREATE FUNCTION um.do_remove_member(p_org_id bigint, p_user_id bigint, p_caller oid)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := @extschema@.um_current_user_id(p_org_id);
  v_team text;
BEGIN
  IF v_actor IS NOT NULL AND v_actor = p_user_id AND v_actor = @extschema@.um_real_user_id() THEN
    PERFORM um.require_organization(p_org_id);       -- leaving needs no permission
  ELSE
    v_actor := um.authorize(p_caller, 'member.remove', format('remove members of organization %s', p_org_id),
                            'member:remove', p_org_id, 'user', p_user_id);
    PERFORM um.guard_root_target(v_actor, p_org_id, p_user_id, 'member.remove', 'remove');
  END IF;
  PERFORM um.require_member(p_org_id, p_user_id);
  SELECT t.name INTO v_team FROM um.team_members tm JOIN um.teams t ON t.id = tm.team_id
   WHERE tm.org_id = p_org_id AND tm.user_id = p_user_id AND tm.is_owner
     AND EXISTS (SELECT 1 FROM um.team_members o WHERE o.team_id = tm.team_id AND o.user_id <> p_user_id)
   ORDER BY t.id LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'the owner of team "%" cannot be removed', v_team
      USING ERRCODE = 'UM043', DETAIL = format('User %s owns the team.', p_user_id),
            HINT = 'Transfer ownership of the team to another member first (um_transfer_team_ownership), or delete the team.';
  END IF;
  -- teams they own alone go with them
  DELETE FROM um.teams t
   WHERE t.org_id = p_org_id
     AND EXISTS (SELECT 1 FROM um.team_members tm WHERE tm.team_id = t.id AND tm.user_id = p_user_id AND tm.is_owner);
  DELETE FROM um.memberships m WHERE m.org_id = p_org_id AND m.user_id = p_user_id;   -- keeps a Root (UM044)
  PERFORM um.audit('member.remove', p_org_id, 'user', p_user_id, '{}');
END
$$;

CREATE FUNCTION um.do_set_org_setting(p_org_id bigint, p_setting text, p_value jsonb, p_caller oid)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um.authorize(p_caller, 'organization.set_setting',
                                 format('change settings of organization %s', p_org_id),
                                 'org:update', p_org_id, 'organization', p_org_id);
BEGIN
  IF p_setting IS NULL OR p_setting !~ '^[a-z][a-z0-9_]{0,62}$' THEN
    PERFORM um.invalid_argument(format('invalid setting name "%s"', p_setting),
      'A setting name is lowercase letters, digits and underscores, e.g. allow_invite_requests.');
  END IF;
  CASE p_setting
    WHEN 'name' THEN
      IF jsonb_typeof(p_value) IS DISTINCT FROM 'string' THEN
        PERFORM um.invalid_argument('setting "name" takes a JSON string', 'Pass e.g. ''"Acme Inc."''::jsonb.');
      END IF;
      UPDATE um.organizations o SET name = p_value #>> '{}' WHERE o.id = p_org_id;
    WHEN 'allow_invite_requests', 'password_login_disabled' THEN
      IF jsonb_typeof(p_value) IS DISTINCT FROM 'boolean' THEN
        PERFORM um.invalid_argument(format('setting "%s" takes true or false', p_setting), 'Pass ''true''::jsonb or ''false''::jsonb.');
      END IF;
      IF p_setting = 'allow_invite_requests' THEN
        UPDATE um.organizations o SET allow_invite_requests = p_value::boolean WHERE o.id = p_org_id;
      ELSE
        IF p_value::boolean AND NOT EXISTS (
             SELECT 1 FROM um.user_identities i
               JOIN um.memberships m ON m.user_id = i.user_id AND m.org_id = i.org_id
               JOIN um.roles r ON r.id = m.role_id
              WHERE i.org_id = p_org_id AND r.builtin = 'root' AND m.status = 'active')
           AND EXISTS (SELECT 1 FROM um.identity_providers p WHERE p.org_id = p_org_id) THEN
          RAISE EXCEPTION 'no Root of organization % has an identity-provider link', p_org_id
            USING ERRCODE = 'UM045',
                  DETAIL = 'Disabling password login now would lock the organization''s Roots out.',
                  HINT = 'Link a Root''s single sign-on identity first (um_link_identity).';
        END IF;
        UPDATE um.organizations o SET password_login_disabled = p_value::boolean WHERE o.id = p_org_id;  -- needs a provider (UM045)
      END IF;
    ELSE
      UPDATE um.organizations o
         SET settings = CASE WHEN p_value IS NULL OR p_value = 'null' THEN o.settings - p_setting
                             ELSE o.settings || jsonb_build_object(p_setting, p_value) END
       WHERE o.id = p_org_id;
  END CASE;
  PERFORM um.audit('organization.set_setting', p_org_id, 'organization', p_org_id,
                   jsonb_build_object('setting', p_setting));
END
$$;

CREATE FUNCTION um.do_add_identity_provider(p_org_id bigint, p_name text, p_protocol text, p_issuer text,
                                            p_caller oid)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id bigint;
BEGIN
  PERFORM um.authorize(p_caller, 'identity_provider.add', format('add identity providers to organization %s', p_org_id),
                       'org:update', p_org_id, 'organization', p_org_id);
  IF p_protocol IS NULL OR p_protocol NOT IN ('oidc', 'saml') THEN
    PERFORM um.invalid_argument(format('unknown protocol "%s"', p_protocol), 'Pass ''oidc'' or ''saml''.');
  END IF;
  IF p_issuer IS NULL OR p_issuer !~ '^https://[^[:space:]]+$' THEN
    PERFORM um.invalid_argument(format('invalid issuer "%s"', p_issuer), 'Pass the provider''s https:// issuer URL.');
  END IF;
  IF NOT um.display_name_is_valid(p_name, 100) THEN
    RAISE EXCEPTION 'invalid identity provider name "%"', p_name
      USING ERRCODE = 'UM003', HINT = 'Use 1 to 100 characters without surrounding blanks.';
  END IF;
  BEGIN
    INSERT INTO um.identity_providers (org_id, name, protocol, issuer)
    VALUES (p_org_id, p_name, p_protocol, p_issuer) RETURNING id INTO v_id;
  EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'organization % already has an identity provider named "%"', p_org_id, p_name
      USING ERRCODE = 'UM027', HINT = 'Choose another name, or use the existing provider.';
  END;
  PERFORM um.audit('identity_provider.add', p_org_id, 'identity_provider', v_id, '{}');
  RETURN v_id;
END
$$;

CREATE FUNCTION um.do_link_identity(p_org_id bigint, p_provider text, p_subject text, p_user_id bigint,
                                    p_caller oid)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um.authorize(p_caller, 'user.link_identity', format('link identities in organization %s', p_org_id),
                                 'user:update', p_org_id, 'user', p_user_id);
  v_provider bigint;
  v_user bigint := coalesce(p_user_id, v_actor);
BEGIN
  -- a sign-in method outlives the impersonation: never while impersonating
  IF v_actor IS DISTINCT FROM @extschema@.um_real_user_id() THEN
    PERFORM um.deny('user.link_identity', um.actor_org(p_org_id), 'user', v_user, 'UM070',
      'permission denied to link identities while impersonating',
      'A linked identity signs in as the account for good.', 'Call um_end_impersonation() first.');
  END IF;
  IF v_user IS NULL THEN
    PERFORM um.invalid_argument('a user is required', 'Pass user_id.');
  END IF;
  PERFORM um.require_member(p_org_id, v_user);
  PERFORM um.guard_root_target(v_actor, p_org_id, v_user, 'user.link_identity', 'link an identity to');
  -- a sign-in method on an account whose mailbox nobody proved would be
  -- waiting for its owner, who may not be who created it
  IF v_actor IS NOT NULL AND v_actor <> v_user
     AND (SELECT u.email_verified_at IS NULL FROM um.users u WHERE u.id = v_user) THEN
    PERFORM um.deny('user.link_identity', p_org_id, 'user', v_user, 'UM070',
      'permission denied to link an identity to an unverified account',
      'The address of the account was never proven; whoever claims it later must not find a sign-in method of someone else''s.',
      'Have the backend send a verification (um_resend_verification) first.');
  END IF;
  IF v_actor IS NOT NULL AND v_actor <> v_user THEN
    -- a sign-in method is the whole account's, in every organization of the user
    PERFORM um.authorize_user(p_caller, 'user.link_identity', format('link an identity to user %s', v_user),
                              'user:update', v_user);
  END IF;
  SELECT p.id INTO v_provider FROM um.identity_providers p
   WHERE p.org_id = p_org_id AND lower(p.name) = lower(p_provider);
  IF NOT FOUND THEN
    RAISE EXCEPTION 'organization % has no identity provider named "%"', p_org_id, p_provider
      USING ERRCODE = 'UM037', HINT = 'Add it with um_add_identity_provider(), or see um.identity_providers.';
  END IF;
  IF p_subject IS NULL OR length(p_subject) NOT BETWEEN 1 AND 255 THEN
    PERFORM um.invalid_argument('invalid subject', 'Pass the provider''s subject identifier (1 to 255 characters).');
  END IF;
  BEGIN
    INSERT INTO um.user_identities (org_id, provider_id, subject, user_id)
    VALUES (p_org_id, v_provider, p_subject, v_user);
  EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'that subject of provider "%" is already linked to a user', p_provider
      USING ERRCODE = 'UM027', HINT = 'A provider''s subject identifies one user; unlink it first.';
  END;
  PERFORM um.audit('user.link_identity', p_org_id, 'user', v_user, jsonb_build_object('provider_id', v_provider));
END
$$;

-- ---------------------------------------------------------------------------
-- Teams: team:create/update/delete in the organization; members and their
-- team roles are managed by holders of team:manage or by the team's owner.

CREATE FUNCTION um.authorize_team(p_caller oid, p_action text, p_what text, p_team_id bigint, p_target_id bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_team um.teams;
  v_org bigint;
  v_actor bigint;
BEGIN
  PERFORM um.assert_no_app_cascades();
  SELECT t.org_id INTO v_org FROM um.teams t WHERE t.id = p_team_id;
  v_actor := @extschema@.um_current_user_id(v_org);
  IF v_actor IS NOT NULL AND EXISTS (
       SELECT 1 FROM um.team_members tm JOIN um.memberships m ON m.org_id = tm.org_id AND m.user_id = tm.user_id
         JOIN um.users u ON u.id = m.user_id
        WHERE tm.team_id = p_team_id AND tm.user_id = v_actor AND tm.is_owner
          AND m.status = 'active' AND u.status = 'active' AND u.allow_login) THEN
    RETURN v_actor;                                  -- the team's owner
  END IF;
  v_actor := um.authorize(p_caller, p_action, p_what, 'team:manage', v_org, 'user', p_target_id);
  v_team := um.require_team(p_team_id);
  RETURN v_actor;
END
$$;

-- Joining a team gives the roles the team holds (its grants); nobody adds a
-- member to a team whose grants hold permissions they lack there.
CREATE FUNCTION um.guard_team_grants(p_actor bigint, p_team_id bigint, p_action text, p_target_id bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  g record;
BEGIN
  IF p_actor IS NULL THEN
    RETURN;
  END IF;
  FOR g IN SELECT gr.org_id, gr.role_id, gr.scope_id, r.name
             FROM um.grants gr JOIN um.roles r ON r.id = gr.role_id
            WHERE gr.team_id = p_team_id ORDER BY gr.id LOOP
    PERFORM um.guard_escalation(p_actor, g.org_id, g.scope_id, ARRAY(SELECT um.role_grants(g.role_id)),
                                p_action, format('add a member to a team that holds role "%s"', g.name), 'user', p_target_id);
  END LOOP;
END
$$;

CREATE FUNCTION um.do_create_team(p_org_id bigint, p_name text, p_description text, p_owner_user_id bigint,
                                  p_caller oid)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um.authorize(p_caller, 'team.create', format('create teams in organization %s', p_org_id),
                                 'team:create', p_org_id, 'team', NULL);
  v_owner bigint := coalesce(p_owner_user_id, v_actor);
  v_member um.memberships;
  v_id bigint;
BEGIN
  IF v_owner IS NULL THEN
    PERFORM um.invalid_argument('a team needs an owner', 'Pass owner_user_id, a member of the organization.');
  END IF;
  v_member := um.require_member(p_org_id, v_owner);
  IF v_member.status <> 'active' THEN
    RAISE EXCEPTION 'user % cannot own a team', v_owner
      USING ERRCODE = 'UM050', DETAIL = 'The membership is suspended.', HINT = 'Choose an active member.';
  END IF;
  BEGIN
    INSERT INTO um.teams (org_id, name, description) VALUES (p_org_id, p_name, p_description)
    RETURNING id INTO v_id;
  EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'organization % already has a team named "%"', p_org_id, p_name
      USING ERRCODE = 'UM025', HINT = 'Choose another name (team names are unique regardless of letter case).';
  END;
  INSERT INTO um.team_members (org_id, team_id, user_id, is_owner) VALUES (p_org_id, v_id, v_owner, true);
  PERFORM um.audit('team.create', p_org_id, 'team', v_id, jsonb_build_object('owner_user_id', v_owner));
  RETURN v_id;
END
$$;

CREATE FUNCTION um.do_rename_team(p_team_id bigint, p_name text, p_caller oid)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_team um.teams;
BEGIN
  SELECT * INTO v_team FROM um.teams t WHERE t.id = p_team_id;
  PERFORM um.authorize(p_caller, 'team.rename', format('rename team %s', p_team_id), 'team:update',
                       v_team.org_id, 'team', p_team_id);
  v_team := um.require_team(p_team_id);
  BEGIN
    UPDATE um.teams t SET name = p_name WHERE t.id = p_team_id;
  EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'organization % already has a team named "%"', v_team.org_id, p_name
      USING ERRCODE = 'UM025', HINT = 'Choose another name (team names are unique regardless of letter case).';
  END;
  PERFORM um.audit('team.rename', v_team.org_id, 'team', p_team_id, '{}');
END
$$;

CREATE FUNCTION um.do_delete_team(p_team_id bigint, p_caller oid)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_team um.teams;
  v_actor bigint;
  v_owner bigint;
BEGIN
  SELECT * INTO v_team FROM um.teams t WHERE t.id = p_team_id;
  v_actor := um.authorize(p_caller, 'team.delete', format('delete team %s', p_team_id), 'team:delete',
                          v_team.org_id, 'team', p_team_id);
  v_team := um.require_team(p_team_id);
  -- a Root's team is deleted only by a Root
  SELECT tm.user_id INTO v_owner FROM um.team_members tm WHERE tm.team_id = p_team_id AND tm.is_owner;
  IF v_owner IS NOT NULL THEN
    PERFORM um.guard_root_target(v_actor, v_team.org_id, v_owner, 'team.delete', 'delete the team of');
  END IF;
  DELETE FROM um.teams t WHERE t.id = p_team_id;      -- its members, their team roles, its space and grants
  PERFORM um.audit('team.delete', v_team.org_id, 'team', p_team_id, '{}');
END
$$;

CREATE FUNCTION um.do_add_team_member(p_team_id bigint, p_user_id bigint, p_roles text[], p_caller oid)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um.authorize_team(p_caller, 'team.add_member', format('add members to team %s', p_team_id),
                                      p_team_id, p_user_id);
  v_team um.teams := um.require_team(p_team_id);
  v_role um.roles;
  v_name text;
BEGIN
  -- the membership, locked against a concurrent removal or deletion
  PERFORM 1 FROM um.memberships m WHERE m.org_id = v_team.org_id AND m.user_id = p_user_id FOR KEY SHARE;
  IF NOT FOUND THEN
    PERFORM um.require_member(v_team.org_id, p_user_id);
  END IF;
  IF EXISTS (SELECT 1 FROM um.team_members tm WHERE tm.team_id = p_team_id AND tm.user_id = p_user_id) THEN
    RAISE EXCEPTION 'user % is already a member of team "%"', p_user_id, v_team.name
      USING ERRCODE = 'UM024', HINT = 'Give them team roles with um_grant_team_role().';
  END IF;
  PERFORM um.guard_team_grants(v_actor, p_team_id, 'team.add_member', p_user_id);
  INSERT INTO um.team_members (org_id, team_id, user_id) VALUES (v_team.org_id, p_team_id, p_user_id);
  FOREACH v_name IN ARRAY coalesce(p_roles, '{}') LOOP
    v_role := um.require_role(v_team.org_id, v_name);
    PERFORM um.guard_escalation(v_actor, v_team.org_id, v_team.scope_id, ARRAY(SELECT um.role_grants(v_role.id)),
                                'team.add_member', format('give team role "%s"', v_role.name), 'user', p_user_id);
    INSERT INTO um.team_member_roles (org_id, team_id, user_id, role_id)
    VALUES (v_team.org_id, p_team_id, p_user_id, v_role.id) ON CONFLICT DO NOTHING;
  END LOOP;
  PERFORM um.audit('team.add_member', v_team.org_id, 'user', p_user_id,
                   jsonb_build_object('team_id', p_team_id,
                                      'role_ids', (SELECT coalesce(jsonb_agg(r.role_id ORDER BY r.role_id), '[]')
                                                     FROM um.team_member_roles r
                                                    WHERE r.team_id = p_team_id AND r.user_id = p_user_id)));
END
$$;

CREATE FUNCTION um.do_remove_team_member(p_team_id bigint, p_user_id bigint, p_caller oid)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint;
  v_team um.teams;
  v_tm um.team_members;
BEGIN
  v_actor := um.authorize_team(p_caller, 'team.remove_member', format('remove members of team %s', p_team_id),
                               p_team_id, p_user_id);
  v_team := um.require_team(p_team_id);
  PERFORM um.guard_root_target(v_actor, v_team.org_id, p_user_id, 'team.remove_member', 'remove from a team');
  SELECT * INTO v_tm FROM um.team_members tm WHERE tm.team_id = p_team_id AND tm.user_id = p_user_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'user % is not a member of team "%"', p_user_id, v_team.name
      USING ERRCODE = 'UM038', HINT = 'See the team''s members in um.team_members.';
  END IF;
  IF v_tm.is_owner THEN
    RAISE EXCEPTION 'the owner of team "%" cannot be removed', v_team.name
      USING ERRCODE = 'UM043', DETAIL = format('User %s owns the team.', p_user_id),
            HINT = 'Transfer ownership of the team to another member first (um_transfer_team_ownership), or delete the team.';
  END IF;
  DELETE FROM um.team_members tm WHERE tm.team_id = p_team_id AND tm.user_id = p_user_id;
  PERFORM um.audit('team.remove_member', v_team.org_id, 'user', p_user_id, jsonb_build_object('team_id', p_team_id));
END
$$;

CREATE FUNCTION um.do_grant_team_role(p_team_id bigint, p_user_id bigint, p_role text, p_caller oid)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um.authorize_team(p_caller, 'team.grant_role', format('give roles in team %s', p_team_id),
                                      p_team_id, p_user_id);
  v_team um.teams := um.require_team(p_team_id);
  v_role um.roles := um.require_role(v_team.org_id, p_role);
BEGIN
  IF NOT EXISTS (SELECT 1 FROM um.team_members tm WHERE tm.team_id = p_team_id AND tm.user_id = p_user_id) THEN
    RAISE EXCEPTION 'user % is not a member of team "%"', p_user_id, v_team.name
      USING ERRCODE = 'UM038', HINT = 'Add them to the team first (um_add_team_member).';
  END IF;
  PERFORM um.guard_escalation(v_actor, v_team.org_id, v_team.scope_id, ARRAY(SELECT um.role_grants(v_role.id)),
                              'team.grant_role', format('give team role "%s"', v_role.name), 'user', p_user_id);
  INSERT INTO um.team_member_roles (org_id, team_id, user_id, role_id)
  VALUES (v_team.org_id, p_team_id, p_user_id, v_role.id) ON CONFLICT DO NOTHING;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  PERFORM um.audit('team.grant_role', v_team.org_id, 'user', p_user_id,
                   jsonb_build_object('team_id', p_team_id, 'role_id', v_role.id));
  RETURN true;
END
$$;

CREATE FUNCTION um.do_revoke_team_role(p_team_id bigint, p_user_id bigint, p_role text, p_caller oid)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint;
  v_team um.teams;
  v_role um.roles;
BEGIN
  v_actor := um.authorize_team(p_caller, 'team.revoke_role', format('take roles in team %s', p_team_id),
                               p_team_id, p_user_id);
  v_team := um.require_team(p_team_id);
  PERFORM um.guard_root_target(v_actor, v_team.org_id, p_user_id, 'team.revoke_role', 'take team roles from');
  v_role := um.require_role(v_team.org_id, p_role);
  DELETE FROM um.team_member_roles r
   WHERE r.team_id = p_team_id AND r.user_id = p_user_id AND r.role_id = v_role.id;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  PERFORM um.audit('team.revoke_role', v_team.org_id, 'user', p_user_id,
                   jsonb_build_object('team_id', p_team_id, 'role_id', v_role.id));
  RETURN true;
END
$$;

CREATE FUNCTION um.do_transfer_team_ownership(p_team_id bigint, p_new_owner_user_id bigint, p_caller oid)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint;
  v_owner bigint;
  v_team um.teams;
BEGIN
  v_actor := um.authorize_team(p_caller, 'team.transfer', format('transfer team %s', p_team_id),
                               p_team_id, p_new_owner_user_id);
  v_team := um.require_team(p_team_id);
  -- the owner loses the team: only a Root takes a team from a Root
  SELECT tm.user_id INTO v_owner FROM um.team_members tm WHERE tm.team_id = p_team_id AND tm.is_owner;
  IF v_owner IS NOT NULL THEN
    PERFORM um.guard_root_target(v_actor, v_team.org_id, v_owner, 'team.transfer', 'take a team from');
  END IF;
  IF NOT EXISTS (SELECT 1 FROM um.team_members tm JOIN um.memberships m ON m.org_id = tm.org_id AND m.user_id = tm.user_id
                  WHERE tm.team_id = p_team_id AND tm.user_id = p_new_owner_user_id) THEN
    RAISE EXCEPTION 'user % is not a member of team "%"', p_new_owner_user_id, v_team.name
      USING ERRCODE = 'UM038', HINT = 'Add them to the team first (um_add_team_member).';
  END IF;
  -- one statement: the team always has exactly one owner
  UPDATE um.team_members tm SET is_owner = (tm.user_id = p_new_owner_user_id)
   WHERE tm.team_id = p_team_id AND (tm.is_owner OR tm.user_id = p_new_owner_user_id);
  PERFORM um.audit('team.transfer', v_team.org_id, 'user', p_new_owner_user_id, jsonb_build_object('team_id', p_team_id));
END
$$;

-- ---------------------------------------------------------------------------
-- Roles and grants

CREATE FUNCTION um.do_create_role(p_org_id bigint, p_name text, p_permissions text[], p_description text,
                                  p_caller oid)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := um.authorize(p_caller, 'role.create', format('create roles in organization %s', p_org_id),
                                 'role:create', p_org_id, 'role', NULL);
  v_id bigint;
  v_p text;
BEGIN
  -- bad input first: the refusals below quote the name
  IF p_name IS NULL OR NOT um.display_name_is_valid(p_name, 100) THEN
    RAISE EXCEPTION 'invalid role name "%"', left(p_name, 100) || CASE WHEN length(p_name) > 100 THEN '...' ELSE '' END
      USING ERRCODE = 'UM003',
            DETAIL = 'A name has 1 to 100 characters, no leading or trailing blanks and no control characters.',
            HINT = 'Trim or shorten the name.';
  END IF;
  FOREACH v_p IN ARRAY coalesce(p_permissions, '{}') LOOP
    PERFORM um.assert_permission_name(v_p, true);
  END LOOP;
  PERFORM um.guard_escalation(v_actor, p_org_id, NULL,
                              ARRAY(SELECT DISTINCT g FROM unnest(coalesce(p_permissions, '{}')) AS p, um.pattern_grants(p) AS g),
                              'role.create', format('create role "%s"', p_name), 'role', NULL);
  BEGIN
    INSERT INTO um.roles (org_id, name, description) VALUES (p_org_id, p_name, p_description)
    RETURNING id INTO v_id;
  EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'organization % already has a role named "%"', p_org_id, p_name
      USING ERRCODE = 'UM026', HINT = 'Choose another name (role names are unique regardless of letter case).';
  END;
  -- an acting user's patterns become the permissions they stand for today:
  -- a pattern would also cover permissions registered later, which the
  -- grantor does not hold (a um administrator may store patterns)
  INSERT INTO um.role_permissions (org_id, role_id, permission)
  SELECT DISTINCT p_org_id, v_id, x
    FROM unnest(coalesce(p_permissions, '{}')) AS p,
         LATERAL (SELECT p WHERE v_actor IS NULL OR strpos(p, '*') = 0
                  UNION ALL
                  SELECT g FROM um.pattern_grants(p) AS g WHERE v_actor IS NOT NULL AND strpos(p, '*') > 0) AS e(x);   -- unknown names: UM011
  PERFORM um.audit('role.create', p_org_id, 'role', v_id, jsonb_build_object('permissions', to_jsonb(coalesce(p_permissions, '{}'))));
  RETURN v_id;
END
$$;

CREATE FUNCTION um.do_delete_role(p_role_id bigint, p_caller oid)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_role um.roles;
  v_n bigint;
BEGIN
  SELECT * INTO v_role FROM um.roles r WHERE r.id = p_role_id;
  PERFORM um.authorize(p_caller, 'role.delete', format('delete role %s', p_role_id), 'role:delete',
                       v_role.org_id, 'role', p_role_id);
  v_role := um.require_role_id(p_role_id);
  IF v_role.builtin IS NOT NULL THEN
    RAISE EXCEPTION 'built-in role "%" cannot be deleted', v_role.name
      USING ERRCODE = 'UM042', HINT = 'Edit its permissions instead (um_grant_permission, um_revoke_permission).';
  END IF;
  SELECT count(*) INTO v_n FROM um.memberships m WHERE m.role_id = p_role_id;
  IF v_n > 0 THEN
    RAISE EXCEPTION 'role "%" is still the organization role of % member(s)', v_role.name, v_n
      USING ERRCODE = 'UM049', HINT = 'Give them another role first (um_set_org_role).';
  END IF;
  DELETE FROM um.roles r WHERE r.id = p_role_id;      -- its grants, team roles and open invitations go too
  PERFORM um.audit('role.delete', v_role.org_id, 'role', p_role_id, '{}');
END
$$;

CREATE FUNCTION um.authorize_role_edit(p_caller oid, p_action text, p_role_id bigint, p_permission text)
RETURNS um.roles
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_role um.roles;
  v_actor bigint;
BEGIN
  SELECT * INTO v_role FROM um.roles r WHERE r.id = p_role_id;
  v_actor := um.authorize(p_caller, p_action, format('edit role %s', p_role_id), 'role:update',
                          v_role.org_id, 'role', p_role_id);
  v_role := um.require_role_id(p_role_id);
  IF v_actor IS NOT NULL AND v_role.builtin = 'root' AND NOT um.is_root(v_role.org_id, v_actor) THEN
    PERFORM um.deny(p_action, v_role.org_id, 'role', p_role_id, 'UM073',
      'only a Root may edit the Root role', NULL, 'Ask a Root of the organization.');
  END IF;
  IF p_permission IS NULL THEN
    PERFORM um.invalid_argument('a permission is required', 'Pass "resource:action", or a pattern with *.');
  END IF;
  PERFORM um.assert_permission_name(p_permission, true);
  RETURN v_role;
END
$$;

CREATE FUNCTION um.do_grant_permission(p_role_id bigint, p_permission text, p_caller oid)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_role um.roles := um.authorize_role_edit(p_caller, 'role.grant_permission', p_role_id, p_permission);
BEGIN
  PERFORM um.guard_escalation(@extschema@.um_current_user_id(), v_role.org_id, NULL,
                              ARRAY(SELECT um.pattern_grants(p_permission)),
                              'role.grant_permission', format('add %s to role "%s"', p_permission, v_role.name),
                              'role', p_role_id);
  -- as in um_create_role, an acting user's pattern is stored as the permissions it stands for today
  INSERT INTO um.role_permissions (org_id, role_id, permission)
  SELECT v_role.org_id, p_role_id, x
    FROM (SELECT p_permission WHERE @extschema@.um_current_user_id() IS NULL OR strpos(p_permission, '*') = 0
          UNION ALL
          SELECT g FROM um.pattern_grants(p_permission) AS g
           WHERE @extschema@.um_current_user_id() IS NOT NULL AND strpos(p_permission, '*') > 0) AS e(x)
  ON CONFLICT DO NOTHING;                                                          -- unknown names: UM011
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  PERFORM um.audit('role.grant_permission', v_role.org_id, 'role', p_role_id, jsonb_build_object('permission', p_permission));
  RETURN true;
END
$$;

CREATE FUNCTION um.do_revoke_permission(p_role_id bigint, p_permission text, p_caller oid)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_role um.roles := um.authorize_role_edit(p_caller, 'role.revoke_permission', p_role_id, p_permission);
BEGIN
  DELETE FROM um.role_permissions rp WHERE rp.role_id = p_role_id AND rp.permission = p_permission;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  PERFORM um.audit('role.revoke_permission', v_role.org_id, 'role', p_role_id, jsonb_build_object('permission', p_permission));
  RETURN true;
END
$$;

-- A role on one scope node (and what inherits from it), for a member or a team.
CREATE FUNCTION um.do_grant_scope_role(p_scope_id bigint, p_role text, p_user_id bigint, p_team_id bigint,
                                       p_caller oid)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_scope um.scopes;
  v_actor bigint;
  v_role um.roles;
  v_id bigint;
BEGIN
  SELECT * INTO v_scope FROM um.scopes s WHERE s.id = p_scope_id;
  v_actor := um.authorize(p_caller, 'grant.create', format('give roles on scope node %s', p_scope_id), 'role:grant',
                          v_scope.org_id, 'scope', p_scope_id);
  v_scope := um.require_scope(p_scope_id);
  IF num_nonnulls(p_user_id, p_team_id) <> 1 THEN
    PERFORM um.invalid_argument('name exactly one grantee', 'Pass user_id or team_id, not both.');
  END IF;
  v_role := um.require_role(v_scope.org_id, p_role);
  IF p_user_id IS NOT NULL THEN
    PERFORM um.require_member(v_scope.org_id, p_user_id);
  ELSIF NOT EXISTS (SELECT 1 FROM um.teams t WHERE t.id = p_team_id AND t.org_id = v_scope.org_id) THEN
    RAISE EXCEPTION 'team % does not exist in organization %', p_team_id, v_scope.org_id
      USING ERRCODE = 'UM033', HINT = 'Look the team up in um.teams.';
  END IF;
  PERFORM um.guard_escalation(v_actor, v_scope.org_id, p_scope_id, ARRAY(SELECT um.role_grants(v_role.id)),
                              'grant.create', format('give role "%s"', v_role.name), 'scope', p_scope_id);
  INSERT INTO um.grants (org_id, role_id, user_id, team_id, scope_id, granted_by)
  VALUES (v_scope.org_id, v_role.id, p_user_id, p_team_id, p_scope_id, v_actor)
  ON CONFLICT DO NOTHING
  RETURNING id INTO v_id;
  IF v_id IS NULL THEN
    SELECT g.id INTO v_id FROM um.grants g
     WHERE g.org_id = v_scope.org_id AND g.role_id = v_role.id AND g.scope_id = p_scope_id AND g.scope_kind IS NULL
       AND g.user_id IS NOT DISTINCT FROM p_user_id AND g.team_id IS NOT DISTINCT FROM p_team_id;
    RETURN v_id;
  END IF;
  PERFORM um.audit('grant.create', v_scope.org_id, 'scope', p_scope_id,
                   jsonb_build_object('grant_id', v_id, 'role_id', v_role.id, 'user_id', p_user_id, 'team_id', p_team_id));
  RETURN v_id;
END
$$;

CREATE FUNCTION um.do_revoke_scope_role(p_scope_id bigint, p_role text, p_user_id bigint, p_team_id bigint,
                                        p_caller oid)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_scope um.scopes;
  v_actor bigint;
  v_role um.roles;
  v_id bigint;
BEGIN
  SELECT * INTO v_scope FROM um.scopes s WHERE s.id = p_scope_id;
  v_actor := um.authorize(p_caller, 'grant.delete', format('take roles on scope node %s', p_scope_id), 'role:grant',
                          v_scope.org_id, 'scope', p_scope_id);
  v_scope := um.require_scope(p_scope_id);
  IF num_nonnulls(p_user_id, p_team_id) <> 1 THEN
    PERFORM um.invalid_argument('name exactly one grantee', 'Pass user_id or team_id, not both.');
  END IF;
  v_role := um.require_role(v_scope.org_id, p_role);
  IF p_user_id IS NOT NULL THEN
    PERFORM um.guard_root_target(v_actor, v_scope.org_id, p_user_id, 'grant.delete', 'take roles from');
  END IF;
  DELETE FROM um.grants g
   WHERE g.org_id = v_scope.org_id AND g.role_id = v_role.id AND g.scope_id = p_scope_id AND g.scope_kind IS NULL
     AND g.user_id IS NOT DISTINCT FROM p_user_id AND g.team_id IS NOT DISTINCT FROM p_team_id
  RETURNING g.id INTO v_id;
  IF v_id IS NULL THEN
    RETURN false;
  END IF;
  PERFORM um.audit('grant.delete', v_scope.org_id, 'scope', p_scope_id,
                   jsonb_build_object('grant_id', v_id, 'role_id', v_role.id, 'user_id', p_user_id, 'team_id', p_team_id));
  RETURN true;
END
$$;

CREATE FUNCTION um.do_register_permission(p_permission text, p_description text, p_caller oid)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF @extschema@.um_current_user_id() IS NOT NULL THEN
    PERFORM um.deny('permission.register', NULL, 'permission', NULL, 'UM070',
      'permission denied to change the permission catalog',
      'The catalog is shared by every organization; only a um administrator, with nobody acting, changes it.',
      'Register the application''s permissions from its migrations, as a um administrator.');
  END IF;
  PERFORM um.authorize(p_caller, 'permission.register', 'change the permission catalog', NULL, NULL, 'permission', NULL);
  IF p_permission IS NULL THEN
    RAISE EXCEPTION 'a permission name is required'
      USING ERRCODE = 'UM010', HINT = 'Pass "resource:action", e.g. ''invoice:read''.';
  END IF;
  PERFORM um.assert_permission_name(p_permission, false);
  INSERT INTO um.permissions AS p (name, description)
  VALUES (p_permission, p_description)
  ON CONFLICT (name) DO UPDATE
     SET description = coalesce(excluded.description, p.description)
   WHERE NOT p.builtin;
  PERFORM um.audit('permission.register', NULL, 'permission', NULL, jsonb_build_object('permission', p_permission));
END
$$;

-- ---------------------------------------------------------------------------
-- Invitations

-- A batch of addresses: split on commas, semicolons and line breaks,
-- trimmed, empty entries dropped, duplicates (in any letter case) dropped.
CREATE FUNCTION um.parse_email_batch(p_emails text)
RETURNS text[]
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce(array_agg(d.e ORDER BY d.n), '{}')
    FROM (SELECT DISTINCT ON (lower(t.e)) t.e, t.n
            FROM (SELECT btrim(x, E' \t\r\n\x0b\f') AS e, n
                    FROM regexp_split_to_table(coalesce(p_emails, ''), '[,;\r\n]+') WITH ORDINALITY AS s(x, n)) AS t
           WHERE t.e <> ''
           ORDER BY lower(t.e), t.n) AS d;
$$;

CREATE FUNCTION um.do_invite(p_org_id bigint, p_emails text, p_role text, p_team_id bigint, p_valid_for interval,
                             p_caller oid)
RETURNS TABLE (email text, status text, invitation_id bigint, token text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
  v_actor bigint := um.authorize(p_caller, 'invitation.create', format('invite people to organization %s', p_org_id),
                                 'member:invite', p_org_id, 'invitation', NULL);
  v_role um.roles := um.require_role(p_org_id, coalesce(p_role, 'member'));
  v_emails text[] := um.parse_email_batch(p_emails);
  v_bad text[];
  v_email text;
  v_token text;
  v_id bigint;
  v_expires timestamptz;
BEGIN
  IF v_role.builtin = 'root' AND v_actor IS NOT NULL AND NOT um.is_root(p_org_id, v_actor) THEN
    PERFORM um.deny('invitation.create', p_org_id, 'invitation', NULL, 'UM073',
      'only a Root may invite a Root', NULL, 'Invite with another role; a Root can promote the member later.');
  END IF;
  PERFORM um.guard_escalation(v_actor, p_org_id, NULL, ARRAY(SELECT um.role_grants(v_role.id)),
                              'invitation.create', format('invite with role "%s"', v_role.name), 'invitation', NULL);
  IF p_team_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM um.teams t WHERE t.id = p_team_id AND t.org_id = p_org_id) THEN
    RAISE EXCEPTION 'team % does not exist in organization %', p_team_id, p_org_id
      USING ERRCODE = 'UM033', HINT = 'Look the team up in um.teams.';
  END IF;
  IF p_team_id IS NOT NULL THEN
    -- inviting into a team is adding a team member: team:manage or its owner,
    -- and no team whose grants hold more than the inviter
    PERFORM um.authorize_team(p_caller, 'invitation.create', format('invite people into team %s', p_team_id), p_team_id, NULL);
    PERFORM um.guard_team_grants(v_actor, p_team_id, 'invitation.create', NULL);
  END IF;
  IF p_valid_for IS NULL OR p_valid_for <= interval '0' OR p_valid_for > interval '90 days' THEN
    PERFORM um.invalid_argument(format('invalid validity "%s"', p_valid_for), 'Pass an interval between 1 second and 90 days.');
  END IF;
  IF cardinality(v_emails) = 0 THEN
    RAISE EXCEPTION 'no email addresses given'
      USING ERRCODE = 'UM054', HINT = 'Pass addresses separated by commas, semicolons or new lines.';
  END IF;
  SELECT array_agg(e ORDER BY n) INTO v_bad FROM unnest(v_emails) WITH ORDINALITY AS x(e, n) WHERE NOT um.email_is_valid(e);
  IF v_bad IS NOT NULL THEN
    RAISE EXCEPTION '% of % email addresses are invalid; nobody was invited', cardinality(v_bad), cardinality(v_emails)
      USING ERRCODE = 'UM054',
            DETAIL = 'Invalid: ' || array_to_string(v_bad, ', ') || '.',
            HINT = 'Correct or remove them and send the whole batch again.';
  END IF;
  v_expires := now() + p_valid_for;
  FOREACH v_email IN ARRAY v_emails LOOP
    email := v_email; invitation_id := NULL; token := NULL;
    IF EXISTS (SELECT 1 FROM um.memberships m JOIN um.users u ON u.id = m.user_id
                WHERE m.org_id = p_org_id AND lower(u.email) = lower(v_email)) THEN
      status := 'already_member';
      RETURN NEXT;
      CONTINUE;
    END IF;
    v_token := um.generate_token();
    -- an open invitation (or request) for the address is renewed
    UPDATE um.invitations i
       SET state = 'pending', token_hash = um.token_hash(v_token), expires_at = v_expires, role_id = v_role.id,
           team_id = p_team_id, invited_by = v_actor, created_at = now()
     WHERE i.org_id = p_org_id AND lower(i.email) = lower(v_email) AND i.state IN ('pending', 'requested')
    RETURNING i.id INTO v_id;
    IF FOUND THEN
      status := 'renewed';
    ELSE
      BEGIN
        INSERT INTO um.invitations (org_id, email, role_id, team_id, state, token_hash, invited_by, expires_at)
        VALUES (p_org_id, v_email, v_role.id, p_team_id, 'pending', um.token_hash(v_token), v_actor, v_expires)
        RETURNING id INTO v_id;
        status := 'invited';
      EXCEPTION WHEN unique_violation THEN          -- invited at this very moment by someone else
        status := 'already_invited';
        RETURN NEXT;
        CONTINUE;
      END;
    END IF;
    invitation_id := v_id; token := v_token;
    PERFORM um.audit('invitation.create', p_org_id, 'invitation', v_id,
                     jsonb_build_object('role_id', v_role.id, 'team_id', p_team_id, 'renewed', status = 'renewed'));
    RETURN NEXT;
  END LOOP;
END
$$;

CREATE FUNCTION um.do_request_invitation(p_org_slug text, p_email text, p_caller oid)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_org um.organizations;
  v_email text := btrim(p_email, E' \t\r\n');
  v_member_role bigint;
  v_id bigint;
BEGIN
  SELECT * INTO v_org FROM um.organizations o WHERE o.slug = p_org_slug;
  IF NOT FOUND OR NOT v_org.allow_invite_requests THEN
    RAISE EXCEPTION 'organization "%" does not take invitation requests', p_org_slug
      USING ERRCODE = 'UM055', HINT = 'Ask a member of the organization to invite you.';
  END IF;
  IF v_email IS NULL OR NOT um.email_is_valid(v_email) THEN
    RAISE EXCEPTION 'invalid email address "%"', p_email
      USING ERRCODE = 'UM001', HINT = 'Check the address for typos.';
  END IF;
  -- members and open invitations: nothing to do, and nothing said about it
  IF EXISTS (SELECT 1 FROM um.memberships m JOIN um.users u ON u.id = m.user_id
              WHERE m.org_id = v_org.id AND lower(u.email) = lower(v_email))
     OR EXISTS (SELECT 1 FROM um.invitations i
                 WHERE i.org_id = v_org.id AND lower(i.email) = lower(v_email) AND i.state IN ('pending', 'requested')) THEN
    RETURN;
  END IF;
  SELECT r.id INTO v_member_role FROM um.roles r WHERE r.org_id = v_org.id AND r.builtin = 'member';
  BEGIN
    INSERT INTO um.invitations (org_id, email, role_id, state)
    VALUES (v_org.id, v_email, v_member_role, 'requested') RETURNING id INTO v_id;
  EXCEPTION WHEN unique_violation THEN
    RETURN;
  END;
  PERFORM um.audit('invitation.request', v_org.id, 'invitation', v_id, '{}');
END
$$;

CREATE FUNCTION um.do_accept_invitation(p_token text, p_password text, p_name text, p_caller oid)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_inv um.invitations;
  v_actor bigint := @extschema@.um_current_user_id();
  v_user um.users;
  v_user_id bigint;
BEGIN
  PERFORM um.assert_no_app_cascades();
  SELECT * INTO v_inv FROM um.invitations i WHERE i.token_hash = um.token_hash(coalesce(p_token, '')) FOR UPDATE;
  IF NOT FOUND OR v_inv.state <> 'pending' OR v_inv.expires_at <= now() THEN
    PERFORM um.deny('invitation.accept', v_inv.org_id, 'invitation', v_inv.id, 'UM053',
      'the invitation is not valid',
      CASE WHEN v_inv.id IS NULL THEN 'The token is unknown.'
           WHEN v_inv.state = 'accepted' THEN 'It was already accepted.'
           WHEN v_inv.state = 'revoked' THEN 'It was revoked.'
           ELSE 'It has expired.' END,
      'Ask the organization for a new invitation.');
  END IF;
  -- Holding an invitation gives its membership and nothing else: the token
  -- was seen by the inviter, so it proves nothing about the mailbox.  An
  -- existing account accepts only logged in as itself (a password login
  -- needs a verified address), never by whoever holds the token.
  SELECT * INTO v_user FROM um.users u WHERE lower(u.email) = lower(v_inv.email) FOR UPDATE;
  IF FOUND AND v_actor IS NOT NULL THEN
    IF v_actor <> v_user.id OR v_actor IS DISTINCT FROM @extschema@.um_real_user_id() THEN
      PERFORM um.deny('invitation.accept', um.actor_org(v_inv.org_id), 'invitation', v_inv.id, 'UM056',
        'the invitation is for another account', 'It was sent to the address of another user.',
        'Log in as the invited address to accept it.');
    END IF;
    v_user_id := v_user.id;                         -- the invited user, logged in
  ELSIF FOUND THEN
    PERFORM um.deny('invitation.accept', NULL, 'invitation', v_inv.id, 'UM056',
      'the invited address already has an account',
      'An existing account accepts its invitations only while logged in.',
      'Log in as the invited address, then accept; if its address was never verified, the backend sends it a verification (um_resend_verification) to claim it.');
  ELSE
    IF v_actor IS NOT NULL THEN
      PERFORM um.deny('invitation.accept', um.actor_org(v_inv.org_id), 'invitation', v_inv.id, 'UM056',
        'the invitation is for another account', 'It was sent to an address that is not yours.',
        'Accept it logged out, as the invited address, choosing a password.');
    END IF;
    -- a new account, unverified: it logs in once the mailbox is proven
    v_user_id := um.insert_user(v_inv.email, p_name, true, NULL, NULL, NULL, NULL);
    UPDATE um.users u SET password_hash = um.hash_password(p_password), password_changed_at = now()
     WHERE u.id = v_user_id;
  END IF;
  IF EXISTS (SELECT 1 FROM um.memberships m WHERE m.org_id = v_inv.org_id AND m.user_id = v_user_id) THEN
    RAISE EXCEPTION 'user % is already a member of organization %', v_user_id, v_inv.org_id
      USING ERRCODE = 'UM022', HINT = 'Nothing to accept; the invitation stays open until it expires or is revoked.';
  END IF;
  INSERT INTO um.memberships (org_id, user_id, role_id, invited_by)
  VALUES (v_inv.org_id, v_user_id, v_inv.role_id, v_inv.invited_by);
  IF v_inv.team_id IS NOT NULL THEN
    INSERT INTO um.team_members (org_id, team_id, user_id) VALUES (v_inv.org_id, v_inv.team_id, v_user_id);
  END IF;
  UPDATE um.invitations i SET state = 'accepted', accepted_by = v_user_id, decided_at = now(), token_hash = NULL
   WHERE i.id = v_inv.id;
  PERFORM um.audit('invitation.accept', v_inv.org_id, 'invitation', v_inv.id, jsonb_build_object('user_id', v_user_id));
  RETURN v_user_id;
END
$$;

CREATE FUNCTION um.do_revoke_invitation(p_invitation_id bigint, p_caller oid)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_inv um.invitations;
BEGIN
  SELECT * INTO v_inv FROM um.invitations i WHERE i.id = p_invitation_id;
  PERFORM um.authorize(p_caller, 'invitation.revoke', format('revoke invitation %s', p_invitation_id),
                       'member:invite', v_inv.org_id, 'invitation', p_invitation_id);
  SELECT * INTO v_inv FROM um.invitations i WHERE i.id = p_invitation_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'invitation % does not exist', p_invitation_id
      USING ERRCODE = 'UM034', HINT = 'See the open invitations in um.invitations.';
  END IF;
  IF v_inv.state NOT IN ('pending', 'requested') THEN
    RAISE EXCEPTION 'invitation % is no longer open', p_invitation_id
      USING ERRCODE = 'UM053', DETAIL = format('It is %s.', v_inv.state), HINT = 'Nothing to revoke.';
  END IF;
  UPDATE um.invitations i SET state = 'revoked', decided_at = now(), token_hash = NULL WHERE i.id = p_invitation_id;
  PERFORM um.audit('invitation.revoke', v_inv.org_id, 'invitation', p_invitation_id, '{}');
END
$$;

-- Housekeeping: pending invitations past their expiry become 'expired'.
CREATE FUNCTION um.do_expire_invitations(p_caller oid)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_n integer;
BEGIN
  PERFORM um.authorize(p_caller, 'invitation.expire', 'expire invitations', NULL, NULL, 'invitation', NULL);
  IF @extschema@.um_current_user_id() IS NOT NULL THEN
    PERFORM um.deny('invitation.expire', NULL, 'invitation', NULL, 'UM070', 'permission denied to expire invitations',
      'Housekeeping across organizations is for um administrators.', 'Run it from a scheduled job as a um administrator.');
  END IF;
  UPDATE um.invitations i SET state = 'expired', decided_at = now(), token_hash = NULL
   WHERE (i.state = 'pending' AND i.expires_at <= now())
      OR (i.state = 'requested' AND i.created_at <= now() - interval '30 days');   -- unanswered requests
  GET DIAGNOSTICS v_n = ROW_COUNT;
  IF v_n > 0 THEN
    PERFORM um.audit('invitation.expire', NULL, 'invitation', NULL, jsonb_build_object('count', v_n));
  END IF;
  RETURN v_n;
END
$$;

-- ---------------------------------------------------------------------------
-- Deletion (GDPR erasure)

-- What stops a user's deletion, if anything: the first blocker as
-- (kind, what, detail).
CREATE FUNCTION um.deletion_blocker(p_user_id bigint, OUT kind text, OUT what text, OUT detail text)
RETURNS record
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  SELECT 'organization', o.slug, format('The user is the only Root of organization "%s" who can log in, and it has other members.', o.slug)
    INTO kind, what, detail
    FROM um.memberships m JOIN um.roles r ON r.id = m.role_id JOIN um.organizations o ON o.id = m.org_id
   WHERE m.user_id = p_user_id AND r.builtin = 'root'
     AND NOT EXISTS (SELECT 1 FROM um.memberships m2 JOIN um.roles r2 ON r2.id = m2.role_id
                       JOIN um.users u2 ON u2.id = m2.user_id
                      WHERE m2.org_id = m.org_id AND r2.builtin = 'root' AND m2.user_id <> p_user_id
                        AND m2.status = 'active' AND u2.status = 'active' AND u2.allow_login)
     AND EXISTS (SELECT 1 FROM um.memberships m3 WHERE m3.org_id = m.org_id AND m3.user_id <> p_user_id)
   ORDER BY o.id LIMIT 1;
  IF FOUND THEN
    RETURN;
  END IF;
  SELECT 'team', t.name, format('The user owns team "%s" (organization %s), which has other members.', t.name, t.org_id)
    INTO kind, what, detail
    FROM um.team_members tm JOIN um.teams t ON t.id = tm.team_id
   WHERE tm.user_id = p_user_id AND tm.is_owner
     AND EXISTS (SELECT 1 FROM um.team_members o WHERE o.team_id = tm.team_id AND o.user_id <> p_user_id)
   ORDER BY t.id LIMIT 1;
  IF FOUND THEN
    RETURN;
  END IF;
  -- application rows that still hold the user: registered columns
  -- (um_add_user_reference) and foreign keys into um.users, each table read
  -- as its own owner (src/reference.c), never with um's rights
  SELECT CASE WHEN r.unsafe THEN 'foreign key' ELSE 'table' END, r.tbl::text,
         CASE WHEN r.unsafe
              THEN format('Table %s has a foreign key into um.users on column %s, which is not bigint: PostgreSQL would run its cast while deleting.', r.tbl, r.col)
              ELSE format('Rows of table %s still reference the user (column %s).', r.tbl, r.col) END
    INTO kind, what, detail
    FROM um.user_reference_probe(p_user_id) r
   WHERE r.tbl IS NOT NULL;
END
$$;

CREATE FUNCTION um.erase_user(p_user_id bigint, p_action text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_block record;
  v_email text;
  v_orgs bigint[];
BEGIN
  PERFORM um.assert_no_app_cascades();
  SELECT u.email INTO v_email FROM um.users u WHERE u.id = p_user_id FOR UPDATE;
  v_block := um.deletion_blocker(p_user_id);
  IF v_block.kind IS NOT NULL THEN
    RAISE EXCEPTION 'user % cannot be deleted yet', p_user_id
      USING ERRCODE = 'UM052', DETAIL = v_block.detail,
            HINT = CASE v_block.kind
                     WHEN 'organization' THEN 'Make another member Root (um_transfer_org_ownership) first.'
                     WHEN 'team' THEN 'Transfer ownership of the team (um_transfer_team_ownership) first.'
                     WHEN 'foreign key' THEN format('Drop that foreign key of %s and register the column with um_add_user_reference() (um_lint() gives the statements).', v_block.what)
                     ELSE format('Delete or reassign the user''s rows in %s first.', v_block.what) END;
  END IF;
  SELECT array_agg(m.org_id ORDER BY m.org_id) INTO v_orgs FROM um.memberships m WHERE m.user_id = p_user_id;
  -- teams they own alone go with them; then every row about them
  DELETE FROM um.teams t
   WHERE EXISTS (SELECT 1 FROM um.team_members tm WHERE tm.team_id = t.id AND tm.user_id = p_user_id AND tm.is_owner);
  DELETE FROM um.invitations i WHERE lower(i.email) = lower(v_email);
  DELETE FROM um.users u WHERE u.id = p_user_id;   -- memberships, team seats, grants, sessions, links, tokens
  PERFORM um.audit(p_action, NULL, 'user', p_user_id, jsonb_build_object('orgs', to_jsonb(coalesce(v_orgs, '{}'))));
END
$$;

CREATE FUNCTION um.do_delete_user(p_user_id bigint, p_caller oid)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM um.authorize_user(p_caller, 'user.delete', format('delete user %s', p_user_id), 'user:delete', p_user_id);
  PERFORM um.erase_user(p_user_id, 'user.delete');
END
$$;

CREATE FUNCTION um.do_delete_my_account(p_caller oid)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := @extschema@.um_current_user_id();
BEGIN
  IF v_actor IS NULL THEN
    RAISE EXCEPTION 'nobody is acting in this transaction'
      USING ERRCODE = 'UM072', HINT = 'Call um_begin(token) first: an account is deleted by its own user.';
  END IF;
  IF v_actor IS DISTINCT FROM @extschema@.um_real_user_id() THEN
    PERFORM um.deny('user.delete_self', NULL, 'user', v_actor, 'UM071',
      'cannot delete an account while impersonating it', NULL, 'Call um_end_impersonation() first.');
  END IF;
  PERFORM um.erase_user(v_actor, 'user.delete_self');
END
$$;

-- ---------------------------------------------------------------------------
-- Export

CREATE FUNCTION um.do_export_users(p_org_id bigint, p_caller oid)
RETURNS TABLE (user_id bigint, email text, name text, user_status text, allow_login boolean,
               email_verified boolean, org_role text, membership_status text, member_since timestamptz,
               teams text, team_roles text, scope_roles text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM um.authorize(p_caller, 'organization.export_users', format('export the users of organization %s', p_org_id),
                       'user:read', p_org_id, 'organization', p_org_id);
  PERFORM um.audit('organization.export_users', p_org_id, 'organization', p_org_id, '{}');
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

CREATE FUNCTION um.do_export_users_json(p_org_id bigint, p_caller oid)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v jsonb;
BEGIN
  PERFORM um.authorize(p_caller, 'organization.export_users', format('export the users of organization %s', p_org_id),
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
  PERFORM um.audit('organization.export_users', p_org_id, 'organization', p_org_id, jsonb_build_object('format', 'json'));
  RETURN v;
END
$$;

CREATE FUNCTION um.do_export_my_data(p_caller oid)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := @extschema@.um_current_user_id();
  v jsonb;
BEGIN
  IF v_actor IS NULL THEN
    RAISE EXCEPTION 'nobody is acting in this transaction'
      USING ERRCODE = 'UM072', HINT = 'Call um_begin(token) first: users export their own data.';
  END IF;
  IF v_actor IS DISTINCT FROM @extschema@.um_real_user_id() THEN
    PERFORM um.deny('user.export_self', NULL, 'user', v_actor, 'UM071',
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
                          'ended_at', s.revoked_at) ORDER BY s.id), '[]')
                          FROM um.sessions s WHERE s.user_id = u.id),
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
  PERFORM um.audit('user.export_self', NULL, 'user', v_actor, '{}');
  RETURN v;
END
$$;

-- ---------------------------------------------------------------------------
-- Sessions of another user

CREATE FUNCTION um.do_logout_all(p_user_id bigint, p_caller oid)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := @extschema@.um_current_user_id();
  v_real bigint := @extschema@.um_real_user_id();
  v_n integer;
BEGIN
  IF v_actor IS NULL THEN
    PERFORM um.authorize(p_caller, 'user.logout_all', format('end the sessions of user %s', p_user_id),
                         NULL, NULL, 'user', p_user_id);
    PERFORM um.require_user(p_user_id);
  ELSIF v_actor <> v_real THEN
    PERFORM um.deny('user.logout_all', NULL, 'user', p_user_id, 'UM070',
      'permission denied to end sessions while impersonating',
      NULL, 'Call um_end_impersonation() first.');
  ELSIF v_actor <> p_user_id
        AND (NOT EXISTS (SELECT 1 FROM um.memberships m
                          WHERE m.user_id = p_user_id AND @extschema@.um_has_permission('user:suspend', m.org_id))
             -- sessions are the whole account's: a Root anywhere is ended only by a Root there
             OR EXISTS (SELECT 1 FROM um.memberships m
                         WHERE m.user_id = p_user_id AND um.is_root(m.org_id, p_user_id)
                           AND NOT um.is_root(m.org_id, v_actor))) THEN
    PERFORM um.deny('user.logout_all', NULL, 'user', p_user_id, 'UM070',
      'permission denied to end the sessions of user ' || p_user_id,
      'Only the user, or someone holding user:suspend in an organization of theirs (a Root''s only by a Root of each organization where they are Root), may.',
      'Ask an Admin of the user''s organization.');
  END IF;
  UPDATE um.sessions s SET revoked_at = now(), revoked_reason = 'ended by a logout of all sessions'
   WHERE s.user_id = p_user_id AND s.revoked_at IS NULL AND s.expires_at > now();
  GET DIAGNOSTICS v_n = ROW_COUNT;
  PERFORM um.audit('user.logout_all', NULL, 'user', p_user_id, jsonb_build_object('sessions', v_n));
  RETURN v_n;
END
$$;

-- ---------------------------------------------------------------------------
-- The public functions: each is src/lifecycle.c's entry point, which calls
-- um.do_<name> with the calling role.  None is STRICT: a NULL argument gets
-- the error that names it.

CREATE FUNCTION @extschema@.um_sign_up(email text, password text, name text DEFAULT NULL,
                                       timezone text DEFAULT 'UTC', locale text DEFAULT 'en')
RETURNS text AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_sign_up(text, text, text, text, text) IS
  'self-registration: create an unverified user with a password; returns the email verification token (for um_verify_email); for an address with an unverified account, a claim token instead (same shape); nobody may be acting';

CREATE FUNCTION @extschema@.um_resend_verification(email text)
RETURNS text AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_resend_verification(text) IS
  'a new email verification token for an unverified user (the old one stops working), which sets a new password when redeemed; NULL when there is nothing to verify; nobody may be acting';

CREATE FUNCTION @extschema@.um_verify_email(token text, password text DEFAULT NULL)
RETURNS bigint AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_verify_email(text, text) IS
  'mark the token''s user verified (single use, valid 48 hours); a claim (a token from um_resend_verification or a repeated sign-up) needs the new password, which replaces any other and ends every session; returns the user id';

CREATE FUNCTION @extschema@.um_mark_verified(user_id bigint)
RETURNS boolean AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_mark_verified(bigint) IS
  'verification by another mechanism: a um administrator (nobody acting) marks the user''s email verified';

CREATE FUNCTION @extschema@.um_create_user(
  email text,
  name text DEFAULT NULL,
  allow_login boolean DEFAULT true,
  timezone text DEFAULT 'UTC',
  locale text DEFAULT 'en',
  mobile text DEFAULT NULL,
  attributes jsonb DEFAULT '{}')
RETURNS bigint AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_create_user(text, text, boolean, text, text, text, jsonb) IS
  'um administrators: create a user in no organization and return its id; allow_login => false makes a notification-only user';

CREATE FUNCTION @extschema@.um_create_user(org_id bigint, email text, role text DEFAULT 'Member',
                                           name text DEFAULT NULL, allow_login boolean DEFAULT true,
                                           timezone text DEFAULT 'UTC', locale text DEFAULT 'en',
                                           mobile text DEFAULT NULL,
                                           OUT user_id bigint, OUT temporary_password text,
                                           OUT verification_token text)
RETURNS record AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_create_user(bigint, text, text, text, boolean, text, text, text) IS
  'create a user as a member of the organization (user:create); returns a temporary password to change at first login and an email verification token';

CREATE FUNCTION @extschema@.um_disable_login(user_id bigint)
RETURNS boolean AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_disable_login(bigint) IS
  'make the user notification-only (ends their sessions); returns false when it already was';

CREATE FUNCTION @extschema@.um_enable_login(user_id bigint)
RETURNS text AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_enable_login(bigint) IS
  'let a notification-only user log in; returns a temporary password when they had no way to sign in';

CREATE FUNCTION @extschema@.um_suspend_user(user_id bigint, org_id bigint DEFAULT NULL)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_suspend_user(bigint, bigint) IS
  'suspend a user everywhere (org_id NULL) or in one organization: everything is kept, all access blocked';

CREATE FUNCTION @extschema@.um_reactivate_user(user_id bigint, org_id bigint DEFAULT NULL)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_reactivate_user(bigint, bigint) IS
  'undo a suspension (everywhere, or in one organization): exactly the previous access returns';

CREATE FUNCTION @extschema@.um_create_organization(slug text, name text, root_user_id bigint)
RETURNS bigint AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_create_organization(text, text, bigint) IS
  'create an organization with its built-in roles, make root_user_id (yourself, when acting) its Root, and return its id';

CREATE FUNCTION @extschema@.um_add_member(org_id bigint, user_id bigint, role text DEFAULT 'member')
RETURNS bigint AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_add_member(bigint, bigint, text) IS
  'make an existing user a member with one organization role (member:create); returns the membership id';

CREATE FUNCTION @extschema@.um_set_org_role(org_id bigint, user_id bigint, role text)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_set_org_role(bigint, bigint, text) IS
  'change a member''s organization role (role:grant; never to a role with permissions you lack; a Root''s only by a Root)';

CREATE FUNCTION @extschema@.um_transfer_org_ownership(org_id bigint, new_root_user_id bigint,
                                                      demote_to text DEFAULT 'Admin')
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_transfer_org_ownership(bigint, bigint, text) IS
  'make a member Root and the calling Root (every Root, for a um administrator) demote_to, in one step';

CREATE FUNCTION @extschema@.um_remove_member(org_id bigint, user_id bigint)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_remove_member(bigint, bigint) IS
  'remove a member (member:remove; or leave, for yourself) with their team seats and grants; re-adding starts afresh';

CREATE FUNCTION @extschema@.um_set_org_setting(org_id bigint, setting text, value jsonb)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_set_org_setting(bigint, text, jsonb) IS
  'set name, allow_invite_requests, password_login_disabled, or an application setting (JSON null removes it); org:update';

CREATE FUNCTION @extschema@.um_add_identity_provider(org_id bigint, name text, protocol text, issuer text)
RETURNS bigint AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_add_identity_provider(bigint, text, text, text) IS
  'link a single sign-on provider (oidc or saml, https issuer) to the organization; org:update';

CREATE FUNCTION @extschema@.um_link_identity(org_id bigint, provider text, subject text, user_id bigint DEFAULT NULL)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_link_identity(bigint, text, text, bigint) IS
  'say which member a provider''s subject is (user:update)';

CREATE FUNCTION @extschema@.um_create_team(org_id bigint, name text, description text DEFAULT NULL,
                                           owner_user_id bigint DEFAULT NULL)
RETURNS bigint AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_create_team(bigint, text, text, bigint) IS
  'create a team with its team space; its owner is owner_user_id or yourself (team:create)';

CREATE FUNCTION @extschema@.um_rename_team(team_id bigint, name text)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_rename_team(bigint, text) IS 'rename a team (team:update)';

CREATE FUNCTION @extschema@.um_delete_team(team_id bigint)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_delete_team(bigint) IS 'delete a team with its seats, team roles, team space and its grants (team:delete)';

CREATE FUNCTION @extschema@.um_add_team_member(team_id bigint, user_id bigint, roles text[] DEFAULT '{}')
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_add_team_member(bigint, bigint, text[]) IS
  'add a member of the organization to a team, with team roles (team:manage, or the team''s owner)';

CREATE FUNCTION @extschema@.um_remove_team_member(team_id bigint, user_id bigint)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_remove_team_member(bigint, bigint) IS
  'take a member off a team (never its owner: transfer ownership first)';

CREATE FUNCTION @extschema@.um_grant_team_role(team_id bigint, user_id bigint, role text)
RETURNS boolean AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_grant_team_role(bigint, bigint, text) IS
  'give a team member a role within the team; false when they had it';

CREATE FUNCTION @extschema@.um_revoke_team_role(team_id bigint, user_id bigint, role text)
RETURNS boolean AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_revoke_team_role(bigint, bigint, text) IS
  'take a role within the team from a member; false when they did not have it';

CREATE FUNCTION @extschema@.um_transfer_team_ownership(team_id bigint, new_owner_user_id bigint)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_transfer_team_ownership(bigint, bigint) IS
  'make another team member the owner (the owner, or team:manage)';

CREATE FUNCTION @extschema@.um_create_role(org_id bigint, name text, permissions text[] DEFAULT '{}',
                                           description text DEFAULT NULL)
RETURNS bigint AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_create_role(bigint, text, text[], text) IS
  'create a custom role with permissions or patterns you hold yourself (role:create)';

CREATE FUNCTION @extschema@.um_delete_role(role_id bigint)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_delete_role(bigint) IS
  'delete a custom role no member holds as organization role (role:delete)';

CREATE FUNCTION @extschema@.um_grant_permission(role_id bigint, permission text)
RETURNS boolean AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_grant_permission(bigint, text) IS
  'add a permission or pattern you hold to a role, built-in roles too (role:update; the Root role only by a Root)';

CREATE FUNCTION @extschema@.um_revoke_permission(role_id bigint, permission text)
RETURNS boolean AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_revoke_permission(bigint, text) IS
  'take a permission or pattern from a role (role:update; the Root role only by a Root)';

CREATE FUNCTION @extschema@.um_grant_scope_role(scope_id bigint, role text, user_id bigint DEFAULT NULL,
                                                team_id bigint DEFAULT NULL)
RETURNS bigint AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_grant_scope_role(bigint, text, bigint, bigint) IS
  'give a member or a team a role on a scope node and what inherits from it (role:grant; only permissions you hold there); returns the grant id';

CREATE FUNCTION @extschema@.um_revoke_scope_role(scope_id bigint, role text, user_id bigint DEFAULT NULL,
                                                 team_id bigint DEFAULT NULL)
RETURNS boolean AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_revoke_scope_role(bigint, text, bigint, bigint) IS
  'take back a role given on a scope node; false when there was no such grant';

CREATE FUNCTION @extschema@.um_register_permission(permission text, description text DEFAULT NULL)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_register_permission(text, text) IS
  'um administrators: add an application permission ("resource:action") to the catalog; idempotent';

CREATE FUNCTION @extschema@.um_invite(org_id bigint, emails text, role text DEFAULT 'Member',
                                      team_id bigint DEFAULT NULL, valid_for interval DEFAULT '7 days')
RETURNS TABLE (email text, status text, invitation_id bigint, token text)
AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_invite(bigint, text, text, bigint, interval) IS
  'invite a batch of addresses (commas, semicolons, new lines) with a preset role and team (member:invite); one row per address: invited, renewed, already_member or already_invited, with the token to send';

CREATE FUNCTION @extschema@.um_request_invitation(org_slug text, email text)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_request_invitation(text, text) IS
  'ask to join an organization that takes requests (an Admin approves with um_invite)';

CREATE FUNCTION @extschema@.um_accept_invitation(token text, password text DEFAULT NULL, name text DEFAULT NULL)
RETURNS bigint AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_accept_invitation(text, text, text) IS
  'join with an invitation token: a new address chooses a password, an existing user accepts logged in or without one; returns the user id';

CREATE FUNCTION @extschema@.um_revoke_invitation(invitation_id bigint)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_revoke_invitation(bigint) IS 'withdraw an open invitation or refuse a request (member:invite)';

CREATE FUNCTION @extschema@.um_expire_invitations()
RETURNS integer AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_expire_invitations() IS
  'um administrators'' housekeeping: mark pending invitations past their expiry, and requests unanswered for 30 days, expired; returns how many';

CREATE FUNCTION @extschema@.um_delete_user(user_id bigint)
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_delete_user(bigint) IS
  'erase a user (GDPR): every personal field in um goes, audit events keep ids; refused while they are a sole Root or team owner with others, or application rows reference them';

CREATE FUNCTION @extschema@.um_delete_my_account()
RETURNS void AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_delete_my_account() IS 'the acting user erases their own account, under the rules of um_delete_user';

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

CREATE FUNCTION @extschema@.um_logout_all(user_id bigint)
RETURNS integer AS 'MODULE_PATHNAME', 'um_lifecycle_entry' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_logout_all(bigint) IS
  'end every session of a user (the user themself, a holder of user:suspend in an organization of theirs, or a um administrator); returns how many';

-- Self-registration returns the verification token to its caller, which
-- must be the application backend that emails it (whoever holds the token
-- can verify the address): EXECUTE is granted to that role by the DBA.
REVOKE EXECUTE ON FUNCTION @extschema@.um_sign_up(text, text, text, text, text),
                           @extschema@.um_resend_verification(text)
  FROM PUBLIC;
-- Application columns that hold user ids: um_add_user_reference() instead
-- of a foreign key into um.users (src/reference.c says why: a foreign-key
-- check runs as the owner of the referenced table, with the referencing
-- column's casts).  Nobody but um's owner holds REFERENCES on um's tables.

CREATE FUNCTION um.user_reference_check()
RETURNS trigger
AS 'MODULE_PATHNAME', 'um_user_reference_check'
LANGUAGE C;
COMMENT ON FUNCTION um.user_reference_check() IS
  'trigger of um_add_user_reference(): the new value of the column it names is an existing user''s id (locked FOR KEY SHARE, as a foreign key would)';

CREATE FUNCTION um.user_reference_probe(p_user_id bigint, OUT tbl regclass, OUT col name, OUT unsafe boolean)
RETURNS record
AS 'MODULE_PATHNAME', 'um_user_reference_probe'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION um.user_reference_probe(bigint) IS
  'internal to account deletion: the first registered column (or foreign key into um.users) still holding the user, each table read as its own owner; unsafe: a foreign key whose column is not bigint';

-- Registering takes part in every account deletion: EXECUTE only for the
-- roles the DBA grants it to (as REFERENCES was), e.g.
--   GRANT EXECUTE ON FUNCTION um_add_user_reference(regclass, name), um_drop_user_reference(regclass, name) TO app_owner;
CREATE FUNCTION @extschema@.um_add_user_reference(tbl regclass, user_column name)
RETURNS void
AS 'MODULE_PATHNAME', 'um_add_user_reference'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_add_user_reference(regclass, name) IS
  'register a bigint column of user ids, as a foreign key into um.users would: new and changed values must be users'' ids, existing ones are checked now, and account deletion is refused while a row holds the user (UM052); table owners granted EXECUTE only; idempotent';

CREATE FUNCTION @extschema@.um_drop_user_reference(tbl regclass, user_column name)
RETURNS boolean
AS 'MODULE_PATHNAME', 'um_drop_user_reference'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.um_drop_user_reference(regclass, name) IS
  'stop treating a column as a reference to um''s users; returns whether it was registered';

REVOKE EXECUTE ON FUNCTION @extschema@.um_add_user_reference(regclass, name),
  @extschema@.um_drop_user_reference(regclass, name) FROM PUBLIC;
-- um's own tables under row-level security.
--
-- Application roles may read um's tables, but only the rows of the
-- organizations where the acting user holds the matching permission (and
-- their own user row and memberships); with nobody acting they read nothing.
-- They cannot write any of them: changes go through the um_* functions.
-- Secrets are not readable at all: password hashes and login counters
-- (column privileges), sessions, identity-provider links.
--
-- Who bypasses: superusers (and so um's SECURITY DEFINER functions, owned by
-- the superuser who created the extension, and the permission cache's
-- loader); um administrators, the roles with the privileges of the
-- extension's owner, through the um_administrators policy.

-- um.administers_um: does the current role administer um?  (EXECUTE stays
-- granted to PUBLIC: every policy below calls it for whoever reads.)
CREATE FUNCTION um.administers_um()
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce((SELECT pg_catalog.pg_has_role(current_user, e.extowner, 'USAGE')
                     FROM pg_catalog.pg_extension e WHERE e.extname = 'um'), false);
$$;

DO $$
DECLARE
  -- table => who may read a row, as a policy expression
  v_rules constant text[][] := ARRAY[
    ['organizations',     format('%I.um_has_permission(''org:read'', id)', '@extschema@')],
    ['users',             format('id = %1$I.um_current_user_id() OR EXISTS (SELECT 1 FROM um.memberships m WHERE m.user_id = users.id AND %1$I.um_has_permission(''member:read'', m.org_id))', '@extschema@')],
    ['memberships',       format('%1$I.um_has_permission(''member:read'', org_id) OR user_id = %1$I.um_current_user_id(org_id)', '@extschema@')],
    ['roles',             format('%I.um_has_permission(''role:read'', org_id)', '@extschema@')],
    ['role_inclusions',   format('%I.um_has_permission(''role:read'', org_id)', '@extschema@')],
    ['role_permissions',  format('%I.um_has_permission(''role:read'', org_id)', '@extschema@')],
    ['grants',            format('%I.um_has_permission(''role:read'', org_id)', '@extschema@')],
    ['scopes',            format('%I.um_has_permission(''scope:read'', org_id)', '@extschema@')],
    ['teams',             format('%I.um_has_permission(''team:read'', org_id)', '@extschema@')],
    ['team_members',      format('%I.um_has_permission(''team:read'', org_id)', '@extschema@')],
    ['team_member_roles', format('%I.um_has_permission(''team:read'', org_id)', '@extschema@')],
    ['invitations',       format('%I.um_has_permission(''member:invite'', org_id)', '@extschema@')],
    -- events about oneself: those of an organization only where the
    -- identity reaches it (an impersonator sees the target's events in the
    -- impersonated organizations only), those of none only as oneself
    ['audit_events',      format('%1$I.um_has_permission(''audit:read'', org_id) OR (target_type = ''user'' AND (target_id = %1$I.um_current_user_id(org_id) OR (org_id IS NULL AND target_id = %1$I.um_current_user_id() AND target_id = %1$I.um_real_user_id())))', '@extschema@')]];
  v_secret constant text[] := ARRAY['sessions', 'identity_providers', 'user_identities', 'cache_sentinel', 'verification_tokens'];
  i int;
BEGIN
  FOR i IN 1 .. array_length(v_rules, 1) LOOP
    EXECUTE format('ALTER TABLE um.%I ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY', v_rules[i][1]);
    EXECUTE format('CREATE POLICY um_read ON um.%I FOR SELECT USING (%s)', v_rules[i][1], v_rules[i][2]);
    EXECUTE format('CREATE POLICY um_administrators ON um.%I USING (um.administers_um()) WITH CHECK (um.administers_um())', v_rules[i][1]);
    IF v_rules[i][1] <> 'users' THEN
      EXECUTE format('GRANT SELECT ON um.%I TO PUBLIC', v_rules[i][1]);
    END IF;
  END LOOP;
  FOR i IN 1 .. array_length(v_secret, 1) LOOP
    EXECUTE format('ALTER TABLE um.%I ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY', v_secret[i]);
    EXECUTE format('CREATE POLICY um_administrators ON um.%I USING (um.administers_um()) WITH CHECK (um.administers_um())', v_secret[i]);
  END LOOP;
END
$$;

-- users: everything but the password hash and the login counters
GRANT SELECT (id, email, name, timezone, locale, mobile, allow_login, status, suspended_at,
              email_verified_at, attributes, created_at, updated_at) ON um.users TO PUBLIC;
-- the catalogs hold no tenant data
GRANT SELECT ON um.permissions, um.builtin_roles, um.builtin_role_permissions TO PUBLIC;
-- the views read as their caller, so they show what the caller may see
ALTER VIEW um.member_list SET (security_invoker = true);
ALTER VIEW um.role_permission_list SET (security_invoker = true);
ALTER VIEW um.organization_list SET (security_invoker = true);
GRANT SELECT ON um.member_list, um.role_permission_list, um.organization_list TO PUBLIC;
GRANT USAGE ON SCHEMA um TO PUBLIC;

-- With the schema usable, no internal function may be: EXECUTE on every
-- function in um is revoked from PUBLIC, except the one the policies call.
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA um FROM PUBLIC;
GRANT EXECUTE ON FUNCTION um.administers_um() TO PUBLIC;
-- and the ones um_protect_table / um_unprotect_table call with their caller's rights
GRANT EXECUTE ON FUNCTION um.protection_note(regclass, text, text), um.protection_tree(regclass), um.protection_state(regclass[]),
  um.policy_check(text, name, name),
  um.drop_um_policies(regclass), um.check_column(regclass, name, text), um.assert_permission_name(text, boolean)
  TO PUBLIC;
-- No foreign keys into um's tables: PostgreSQL would check them as um's
-- owner, running the referencing column's casts (um_add_user_reference).
REVOKE REFERENCES ON ALL TABLES IN SCHEMA um FROM PUBLIC;
-- um_check_integrity(): every invariant um keeps, checked against the
-- tables as they are, for after a crash, a restore, a bulk load with
-- triggers disabled or replication trouble.  Returns one row per violation
-- (none when all is well).  The constraints and triggers keep these true
-- for every change made through SQL; this looks at the result instead.

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
  ORDER BY 1, 2
$$;
COMMENT ON FUNCTION @extschema@.um_check_integrity() IS
  'every invariant um keeps (Roots, built-in roles, same-organization references, existing users, team owners, no cycles, suspensions, sessions), checked on the tables as they are; one row per violation';
REVOKE EXECUTE ON FUNCTION @extschema@.um_check_integrity() FROM PUBLIC;
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
