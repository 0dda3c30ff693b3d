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
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  org_id bigint NOT NULL REFERENCES um.organizations ON DELETE CASCADE,
  name text NOT NULL CONSTRAINT roles_name_check CHECK (um.display_name_is_valid(name, 100)),
  description text,
  builtin text REFERENCES um.builtin_roles (key),
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT roles_org_id_id_key UNIQUE (org_id, id),
  CONSTRAINT roles_org_id_builtin_key UNIQUE (org_id, builtin)
);
CREATE UNIQUE INDEX roles_org_id_name_key ON um.roles (org_id, lower(name));
COMMENT ON TABLE um.roles IS 'roles of an organization: built-in (builtin is set; not renamable or deletable, permissions editable) or custom';

CREATE TABLE um.role_inclusions (
  org_id bigint NOT NULL,
  role_id bigint NOT NULL,
  included_role_id bigint NOT NULL,
  PRIMARY KEY (role_id, included_role_id),
  FOREIGN KEY (org_id, role_id) REFERENCES um.roles (org_id, id) ON DELETE CASCADE,
  FOREIGN KEY (org_id, included_role_id) REFERENCES um.roles (org_id, id) ON DELETE CASCADE,
  CONSTRAINT role_inclusions_not_self CHECK (role_id <> included_role_id)
);
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
  PRIMARY KEY (role_id, permission),
  FOREIGN KEY (org_id, role_id) REFERENCES um.roles (org_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE um.role_permissions IS 'what a role grants: permission names or patterns with "*" for a whole part (service:*, *:read, *)';

CREATE TABLE um.scopes (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  org_id bigint NOT NULL REFERENCES um.organizations ON DELETE CASCADE,
  parent_id bigint,
  kind text NOT NULL CONSTRAINT scopes_kind_check CHECK (um.identifier_is_valid(kind)),
  name text NOT NULL CONSTRAINT scopes_name_check CHECK (um.display_name_is_valid(name)),
  ref text CONSTRAINT scopes_ref_check CHECK (length(ref) BETWEEN 1 AND 200),
  inherit boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT scopes_org_id_id_key UNIQUE (org_id, id),
  CONSTRAINT scopes_parent_fkey FOREIGN KEY (org_id, parent_id) REFERENCES um.scopes (org_id, id) ON DELETE CASCADE,
  CONSTRAINT scopes_not_own_parent CHECK (parent_id <> id)
);
CREATE INDEX scopes_parent_id_idx ON um.scopes (parent_id);
CREATE UNIQUE INDEX scopes_sibling_name_key ON um.scopes (org_id, coalesce(parent_id, 0), kind, lower(name));
CREATE UNIQUE INDEX scopes_ref_key ON um.scopes (org_id, kind, ref) WHERE ref IS NOT NULL;
COMMENT ON TABLE um.scopes IS 'the tree of resources of an organization (project, environment, application, dashboard group, team space, ...)';
COMMENT ON COLUMN um.scopes.ref IS 'the application''s own key for the resource this node stands for';
COMMENT ON COLUMN um.scopes.inherit IS 'false: the node breaks inheritance and uses only grants made on it, instead of those of its ancestors';

CREATE TABLE um.memberships (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  org_id bigint NOT NULL REFERENCES um.organizations ON DELETE CASCADE,
  user_id bigint NOT NULL REFERENCES um.users ON DELETE CASCADE,
  role_id bigint NOT NULL,
  status text NOT NULL DEFAULT 'active'
    CONSTRAINT memberships_status_check CHECK (status IN ('active', 'suspended')),
  invited_by bigint REFERENCES um.users ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT memberships_org_id_user_id_key UNIQUE (org_id, user_id),
  CONSTRAINT memberships_role_fkey FOREIGN KEY (org_id, role_id) REFERENCES um.roles (org_id, id)
);
CREATE INDEX memberships_user_id_idx ON um.memberships (user_id);
CREATE INDEX memberships_role_id_idx ON um.memberships (role_id);
CREATE INDEX memberships_invited_by_idx ON um.memberships (invited_by) WHERE invited_by IS NOT NULL;
COMMENT ON TABLE um.memberships IS 'a user in an organization, with exactly one organization role; removal deletes the row, so re-adding starts afresh';

CREATE TABLE um.teams (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  org_id bigint NOT NULL REFERENCES um.organizations ON DELETE CASCADE,
  name text NOT NULL CONSTRAINT teams_name_check CHECK (um.display_name_is_valid(name, 100)),
  description text,
  scope_id bigint NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT teams_org_id_id_key UNIQUE (org_id, id),
  CONSTRAINT teams_scope_fkey FOREIGN KEY (org_id, scope_id) REFERENCES um.scopes (org_id, id)
);
CREATE UNIQUE INDEX teams_org_id_name_key ON um.teams (org_id, lower(name));
CREATE INDEX teams_scope_id_idx ON um.teams (scope_id);
COMMENT ON TABLE um.teams IS 'teams of an organization; roles given within a team apply to the team''s scope node and below';
COMMENT ON COLUMN um.teams.scope_id IS 'the team space; created (kind "team") when not given';

CREATE TABLE um.team_members (
  org_id bigint NOT NULL,
  team_id bigint NOT NULL,
  user_id bigint NOT NULL,
  is_owner boolean NOT NULL DEFAULT false,
  added_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (team_id, user_id),
  CONSTRAINT team_members_org_team_user_key UNIQUE (org_id, team_id, user_id),
  CONSTRAINT team_members_team_fkey FOREIGN KEY (org_id, team_id) REFERENCES um.teams (org_id, id) ON DELETE CASCADE,
  CONSTRAINT team_members_membership_fkey FOREIGN KEY (org_id, user_id) REFERENCES um.memberships (org_id, user_id) ON DELETE CASCADE,
  CONSTRAINT team_members_one_owner EXCLUDE USING btree (team_id WITH =) WHERE (is_owner) DEFERRABLE INITIALLY IMMEDIATE
);
CREATE INDEX team_members_org_id_user_id_idx ON um.team_members (org_id, user_id);
COMMENT ON TABLE um.team_members IS 'members of a team (each must be a member of the organization); one of them is the owner, who cannot be removed';

CREATE TABLE um.team_member_roles (
  org_id bigint NOT NULL,
  team_id bigint NOT NULL,
  user_id bigint NOT NULL,
  role_id bigint NOT NULL,
  PRIMARY KEY (team_id, user_id, role_id),
  CONSTRAINT team_member_roles_member_fkey FOREIGN KEY (org_id, team_id, user_id)
    REFERENCES um.team_members (org_id, team_id, user_id) ON DELETE CASCADE,
  CONSTRAINT team_member_roles_role_fkey FOREIGN KEY (org_id, role_id) REFERENCES um.roles (org_id, id) ON DELETE CASCADE
);
CREATE INDEX team_member_roles_role_id_idx ON um.team_member_roles (role_id);
CREATE INDEX team_member_roles_org_id_user_id_idx ON um.team_member_roles (org_id, user_id);
COMMENT ON TABLE um.team_member_roles IS 'roles a member holds within a team: they apply only to the team''s scope';

CREATE TABLE um.grants (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  org_id bigint NOT NULL,
  role_id bigint NOT NULL,
  user_id bigint,
  team_id bigint,
  scope_id bigint,
  scope_kind text CONSTRAINT grants_scope_kind_check CHECK (um.identifier_is_valid(scope_kind)),
  granted_by bigint REFERENCES um.users ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT grants_one_grantee CHECK (num_nonnulls(user_id, team_id) = 1),
  CONSTRAINT grants_one_target CHECK (scope_id IS NULL OR scope_kind IS NULL),
  CONSTRAINT grants_role_fkey FOREIGN KEY (org_id, role_id) REFERENCES um.roles (org_id, id) ON DELETE CASCADE,
  CONSTRAINT grants_member_fkey FOREIGN KEY (org_id, user_id) REFERENCES um.memberships (org_id, user_id) ON DELETE CASCADE,
  CONSTRAINT grants_team_fkey FOREIGN KEY (org_id, team_id) REFERENCES um.teams (org_id, id) ON DELETE CASCADE,
  CONSTRAINT grants_scope_fkey FOREIGN KEY (org_id, scope_id) REFERENCES um.scopes (org_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX grants_unique_key ON um.grants
  (org_id, role_id, coalesce(user_id, 0), coalesce(team_id, 0), coalesce(scope_id, 0), coalesce(scope_kind, ''));
CREATE INDEX grants_org_id_user_id_idx ON um.grants (org_id, user_id) WHERE user_id IS NOT NULL;
CREATE INDEX grants_team_id_idx ON um.grants (team_id) WHERE team_id IS NOT NULL;
CREATE INDEX grants_scope_id_idx ON um.grants (scope_id) WHERE scope_id IS NOT NULL;
CREATE INDEX grants_role_id_idx ON um.grants (role_id);
COMMENT ON TABLE um.grants IS 'a role given to a member or a team on one scope node (scope_id), on every node of a kind (scope_kind), or organization-wide (neither)';

CREATE TABLE um.invitations (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  org_id bigint NOT NULL REFERENCES um.organizations ON DELETE CASCADE,
  email text NOT NULL CONSTRAINT invitations_email_check CHECK (um.email_is_valid(email)),
  role_id bigint NOT NULL,
  team_id bigint,
  state text NOT NULL DEFAULT 'pending'
    CONSTRAINT invitations_state_check CHECK (state IN ('requested', 'pending', 'accepted', 'revoked', 'expired')),
  token_hash bytea CONSTRAINT invitations_token_hash_key UNIQUE,
  invited_by bigint REFERENCES um.users ON DELETE SET NULL,
  accepted_by bigint REFERENCES um.users ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz,
  decided_at timestamptz,
  CONSTRAINT invitations_role_fkey FOREIGN KEY (org_id, role_id) REFERENCES um.roles (org_id, id) ON DELETE CASCADE,
  CONSTRAINT invitations_team_fkey FOREIGN KEY (org_id, team_id) REFERENCES um.teams (org_id, id) ON DELETE CASCADE,
  CONSTRAINT invitations_pending_has_token CHECK (state <> 'pending' OR (token_hash IS NOT NULL AND expires_at IS NOT NULL))
);
CREATE UNIQUE INDEX invitations_open_key ON um.invitations (org_id, lower(email)) WHERE state IN ('requested', 'pending');
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
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  org_id bigint NOT NULL REFERENCES um.organizations ON DELETE CASCADE,
  name text NOT NULL CONSTRAINT identity_providers_name_check CHECK (um.display_name_is_valid(name, 100)),
  protocol text NOT NULL CONSTRAINT identity_providers_protocol_check CHECK (protocol IN ('oidc', 'saml')),
  issuer text NOT NULL CONSTRAINT identity_providers_issuer_check CHECK (issuer ~ '^https://[^[:space:]]+$'),
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT identity_providers_org_id_id_key UNIQUE (org_id, id)
);
CREATE UNIQUE INDEX identity_providers_org_id_name_key ON um.identity_providers (org_id, lower(name));
COMMENT ON TABLE um.identity_providers IS 'single sign-on providers linked to an organization';

CREATE TABLE um.user_identities (
  org_id bigint NOT NULL,
  provider_id bigint NOT NULL,
  subject text NOT NULL CONSTRAINT user_identities_subject_check CHECK (length(subject) BETWEEN 1 AND 255),
  user_id bigint NOT NULL REFERENCES um.users ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (provider_id, subject),
  CONSTRAINT user_identities_provider_fkey FOREIGN KEY (org_id, provider_id) REFERENCES um.identity_providers (org_id, id) ON DELETE CASCADE
);
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

-- An organization with members always has a Root among them.
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
    IF EXISTS (SELECT 1 FROM um.memberships m WHERE m.org_id = v_org)
       AND NOT EXISTS (SELECT 1 FROM um.memberships m JOIN um.roles r ON r.id = m.role_id
                        WHERE m.org_id = v_org AND r.builtin = 'root') THEN
      SELECT slug INTO v_slug FROM um.organizations WHERE id = v_org;
      RAISE EXCEPTION 'organization "%" would be left without a Root', v_slug
        USING ERRCODE = 'UM044',
              DETAIL = 'An organization with members always has at least one member with the built-in Root role.',
              HINT = 'Make another member Root first, or transfer ownership of the organization.';
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
-- The first API functions: enough to create organizations, users and
-- memberships from psql.  The full lifecycle (invitations, suspension,
-- deletion, ...) with per-user permission checks arrives with the acting
-- identity; until then these functions run with the caller's own
-- privileges (SECURITY INVOKER) and EXECUTE is revoked from PUBLIC, so only
-- roles that administer um's tables can use them.

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

CREATE FUNCTION @extschema@.um_create_user(
  email text,
  name text DEFAULT NULL,
  allow_login boolean DEFAULT true,
  timezone text DEFAULT 'UTC',
  locale text DEFAULT 'en',
  mobile text DEFAULT NULL,
  attributes jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_email text := btrim(um_create_user.email, E' \t\r\n');
  v_id bigint;
BEGIN
  IF um_create_user.email IS NULL THEN
    RAISE EXCEPTION 'an email address is required'
      USING ERRCODE = 'UM001', HINT = 'Pass the user''s email address as the first argument.';
  END IF;
  IF EXISTS (SELECT 1 FROM um.users u WHERE lower(u.email) = lower(v_email)) THEN
    RAISE EXCEPTION 'email address "%" is already registered', v_email
      USING ERRCODE = 'UM020',
            DETAIL = 'Email addresses are unique regardless of letter case.',
            HINT = 'Use the existing user (um.users), or choose another address.';
  END IF;
  BEGIN
    INSERT INTO um.users (email, name, allow_login, timezone, locale, mobile, attributes)
    VALUES (v_email, um_create_user.name, coalesce(um_create_user.allow_login, true),
            coalesce(um_create_user.timezone, 'UTC'), coalesce(um_create_user.locale, 'en'),
            um_create_user.mobile, coalesce(um_create_user.attributes, '{}'))
    RETURNING id INTO v_id;
  EXCEPTION WHEN unique_violation THEN          -- lost a race for the address
    RAISE EXCEPTION 'email address "%" is already registered', v_email
      USING ERRCODE = 'UM020',
            DETAIL = 'Email addresses are unique regardless of letter case.',
            HINT = 'Use the existing user (um.users), or choose another address.';
  END;
  PERFORM um.audit('user.create', NULL, 'user', v_id,
                   jsonb_build_object('allow_login', coalesce(um_create_user.allow_login, true)));
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION @extschema@.um_create_user(text, text, boolean, text, text, text, jsonb) IS
  'create a user and return its id; allow_login => false makes a notification-only user';

CREATE FUNCTION @extschema@.um_create_organization(slug text, name text, root_user_id bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_user um.users;
  v_org bigint;
  v_root bigint;
BEGIN
  v_user := um.require_user(root_user_id);
  IF v_user.status <> 'active' OR NOT v_user.allow_login THEN
    RAISE EXCEPTION 'user % cannot be the Root of an organization', root_user_id
      USING ERRCODE = 'UM050',
            DETAIL = CASE WHEN v_user.status <> 'active' THEN 'The user is suspended.'
                          ELSE 'The user is notification-only (allow_login is false).' END,
            HINT = 'Choose an active user who can log in.';
  END IF;
  IF EXISTS (SELECT 1 FROM um.organizations o WHERE o.slug = um_create_organization.slug) THEN
    RAISE EXCEPTION 'organization slug "%" is already taken', um_create_organization.slug
      USING ERRCODE = 'UM021', HINT = 'Choose another slug.';
  END IF;
  BEGIN
    INSERT INTO um.organizations (slug, name)
    VALUES (um_create_organization.slug, um_create_organization.name)
    RETURNING id INTO v_org;
  EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'organization slug "%" is already taken', um_create_organization.slug
      USING ERRCODE = 'UM021', HINT = 'Choose another slug.';
  END;
  v_root := um.seed_builtin_roles(v_org);
  INSERT INTO um.memberships (org_id, user_id, role_id) VALUES (v_org, root_user_id, v_root);
  PERFORM um.audit('organization.create', v_org, 'organization', v_org,
                   jsonb_build_object('root_user_id', root_user_id));
  RETURN v_org;
END
$$;
COMMENT ON FUNCTION @extschema@.um_create_organization(text, text, bigint) IS
  'create an organization with its built-in roles, make root_user_id its Root, and return its id';

CREATE FUNCTION @extschema@.um_add_member(org_id bigint, user_id bigint, role text DEFAULT 'member')
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_org um.organizations;
  v_role um.roles;
  v_id bigint;
BEGIN
  v_org := um.require_organization(um_add_member.org_id);
  PERFORM um.require_user(um_add_member.user_id);
  v_role := um.require_role(um_add_member.org_id, coalesce(um_add_member.role, 'member'));
  IF EXISTS (SELECT 1 FROM um.memberships m
              WHERE m.org_id = um_add_member.org_id AND m.user_id = um_add_member.user_id) THEN
    RAISE EXCEPTION 'user % is already a member of organization "%"', um_add_member.user_id, v_org.slug
      USING ERRCODE = 'UM022',
            HINT = 'Change the member''s role instead; a user holds one organization role.';
  END IF;
  INSERT INTO um.memberships (org_id, user_id, role_id)
  VALUES (um_add_member.org_id, um_add_member.user_id, v_role.id)
  RETURNING id INTO v_id;
  PERFORM um.audit('member.add', um_add_member.org_id, 'user', um_add_member.user_id,
                   jsonb_build_object('role_id', v_role.id));
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION @extschema@.um_add_member(bigint, bigint, text) IS
  'make a user a member of an organization with one organization role (name or built-in key); returns the membership id';

CREATE FUNCTION @extschema@.um_register_permission(permission text, description text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF permission IS NULL THEN
    RAISE EXCEPTION 'a permission name is required'
      USING ERRCODE = 'UM010', HINT = 'Pass "resource:action", e.g. ''invoice:read''.';
  END IF;
  PERFORM um.assert_permission_name(permission, false);
  INSERT INTO um.permissions AS p (name, description)
  VALUES (um_register_permission.permission, um_register_permission.description)
  ON CONFLICT (name) DO UPDATE
     SET description = coalesce(excluded.description, p.description)
   WHERE NOT p.builtin;
  PERFORM um.audit('permission.register', NULL, 'permission', NULL,
                   jsonb_build_object('permission', permission));
END
$$;
COMMENT ON FUNCTION @extschema@.um_register_permission(text, text) IS
  'add an application permission ("resource:action") to the catalog; idempotent';

REVOKE EXECUTE ON FUNCTION
  @extschema@.um_create_user(text, text, boolean, text, text, text, jsonb),
  @extschema@.um_create_organization(text, text, bigint),
  @extschema@.um_add_member(bigint, bigint, text),
  @extschema@.um_register_permission(text, text)
FROM PUBLIC;
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
COMMENT ON FUNCTION um.token_hash(text) IS 'what um.sessions stores instead of a token (um_begin computes the same in C''s lookup query)';

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
-- Who administers um from psql: superusers and roles with the privileges of
-- the extension's owner.  (Inside SECURITY DEFINER functions current_user
-- is the owner; um.invoker_role() is the caller.)
CREATE FUNCTION um.invoker_administers_um()
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = um.invoker_role()), false)
      OR coalesce((SELECT pg_catalog.pg_has_role(um.invoker_role(), e.extowner, 'USAGE')
                     FROM pg_catalog.pg_extension e WHERE e.extname = 'um'), false);
$$;

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
     INTO v USING p_password, (um.login_settings()).password_hash_cost;
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
  RETURN v = p_hash;
END
$$;

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
CREATE TRIGGER users_end_sessions AFTER UPDATE OF password_hash, status, allow_login ON um.users
  FOR EACH ROW
  WHEN (OLD.password_hash IS DISTINCT FROM NEW.password_hash
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
  DELETE FROM um.sessions s WHERE s.user_id = p_user.id AND s.expires_at < now();   -- housekeeping
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
      p_action, p_target_type, p_target_id, um.invoker_role()::regrole, p_message;
  ELSE
    PERFORM um.audit_autonomous(p_action, 'denied', p_org_id, p_target_type, p_target_id,
                                jsonb_build_object('sqlstate', p_sqlstate, 'reason', p_message));
  END IF;
  PERFORM um.raise(p_sqlstate, p_message, p_detail, p_hint);
END
$$;

CREATE FUNCTION @extschema@.um_logout_all(user_id bigint)
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
    IF NOT um.invoker_administers_um() THEN
      PERFORM um.deny('user.logout_all', NULL, 'user', um_logout_all.user_id, 'UM070',
        'permission denied to end the sessions of user ' || um_logout_all.user_id,
        'Nobody is acting in this transaction, and the database role does not administer um.',
        'Call um_begin(token) first, or ask a um administrator.');
    END IF;
    PERFORM um.require_user(um_logout_all.user_id);
  ELSIF v_actor <> v_real THEN
    PERFORM um.deny('user.logout_all', NULL, 'user', um_logout_all.user_id, 'UM070',
      'permission denied to end sessions while impersonating',
      NULL, 'Call um_end_impersonation() first.');
  ELSIF v_actor <> um_logout_all.user_id AND NOT EXISTS (
          SELECT 1 FROM um.memberships m
           WHERE m.user_id = um_logout_all.user_id
             AND @extschema@.um_has_permission('user:suspend', m.org_id)
             AND (NOT EXISTS (SELECT 1 FROM um.roles r WHERE r.id = m.role_id AND r.builtin = 'root')
                  OR @extschema@.um_has_permission('org:delete', m.org_id))) THEN
    PERFORM um.deny('user.logout_all', NULL, 'user', um_logout_all.user_id, 'UM070',
      'permission denied to end the sessions of user ' || um_logout_all.user_id,
      'Only the user, or someone holding user:suspend in an organization of theirs (a Root''s only by another Root), may.',
      'Ask an Admin of the user''s organization.');
  END IF;
  UPDATE um.sessions s SET revoked_at = now(), revoked_reason = 'ended by a logout of all sessions'
   WHERE s.user_id = um_logout_all.user_id AND s.revoked_at IS NULL AND s.expires_at > now();
  GET DIAGNOSTICS v_n = ROW_COUNT;
  PERFORM um.audit('user.logout_all', NULL, 'user', um_logout_all.user_id, jsonb_build_object('sessions', v_n));
  RETURN v_n;
END
$$;
COMMENT ON FUNCTION @extschema@.um_logout_all(bigint) IS
  'end every session of a user (the user themself, a holder of user:suspend in an organization of theirs, or a um administrator); returns how many';

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
  um.invoker_administers_um(),
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
-- owner of um's tables once the current role is found to own the table.
CREATE FUNCTION um.protection_note(p_table regclass, p_action text, p_resource text, p_details jsonb)
RETURNS void
AS 'MODULE_PATHNAME', 'um_protection_note'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- um.protection_tree: the table and every table that inherits from it
-- (partitions, sub-partitions and INHERITS children alike).
CREATE FUNCTION um.protection_tree(p_table regclass)
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

-- um.check_column: the column exists and is a bigint, or raise UM080.
CREATE FUNCTION um.check_column(p_rel regclass, p_column name, p_role text)
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
CREATE FUNCTION um.policy_check(p_permission text, p_org_column name, p_scope_column name)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE WHEN p_scope_column IS NULL
              THEN format('%I = ANY (%I.um_permitted_orgs(%L))', p_org_column, '@extschema@', p_permission)
              ELSE format('%I.um_has_permission(%L, %I, %I)', '@extschema@', p_permission, p_org_column, p_scope_column) END;
$$;

-- um.drop_um_policies: drop the um_* policies a relation has.
CREATE FUNCTION um.drop_um_policies(p_rel regclass)
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

CREATE FUNCTION @extschema@.um_protect_table(tbl regclass, org_column name, resource text,
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
  FOREACH v_rel IN ARRAY v_parts LOOP
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY', v_rel);
    PERFORM um.drop_um_policies(v_rel);
    EXECUTE format('CREATE POLICY um_read ON %s FOR SELECT USING (%s)', v_rel, um.policy_check(resource || ':read', org_column, scope_column));
    EXECUTE format('CREATE POLICY um_create ON %s FOR INSERT WITH CHECK (%s)', v_rel, um.policy_check(resource || ':create', org_column, scope_column));
    EXECUTE format('CREATE POLICY um_update ON %1$s FOR UPDATE USING (%2$s) WITH CHECK (%2$s)', v_rel, um.policy_check(resource || ':update', org_column, scope_column));
    EXECUTE format('CREATE POLICY um_delete ON %s FOR DELETE USING (%s)', v_rel, um.policy_check(resource || ':delete', org_column, scope_column));
  END LOOP;
  PERFORM um.protection_note(tbl, 'table.protect', resource,
                             jsonb_build_object('table', tbl::text, 'org_column', org_column, 'resource', resource,
                                                'scope_column', scope_column, 'relations', cardinality(v_parts)));
END
$$;
COMMENT ON FUNCTION @extschema@.um_protect_table(regclass, name, text, name) IS
  'enable and force RLS on a table (and the tables inheriting from it) with um policies mapping SELECT/INSERT/UPDATE/DELETE to <resource>:read/create/update/delete; idempotent';

CREATE FUNCTION @extschema@.um_unprotect_table(tbl regclass, disable_rls boolean DEFAULT false)
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
    PERFORM um.protection_note(tbl, 'table.unprotect', NULL,
                               jsonb_build_object('table', tbl::text, 'disable_rls', disable_rls));
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
CREATE FUNCTION @extschema@.um_lint()
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
      FROM pg_catalog.pg_policy p GROUP BY p.polrelid)
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
    JOIN org_columns o ON o.oid = t.oid
   WHERE t.relkind = 'r'
     AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                      WHERE i.indrelid = t.oid
                        AND i.indkey[0] = (SELECT a.attnum FROM pg_catalog.pg_attribute a
                                            WHERE a.attrelid = t.oid AND a.attname = o.attname))
  ) f
  ORDER BY array_position(ARRAY['critical', 'warning', 'info'], f.severity), f.object, f.finding
$$;
COMMENT ON FUNCTION @extschema@.um_lint() IS
  'a security advisor: tables with an organization column but no policies, RLS not forced, unprotected partitions, views and materialized views over protected tables, roles that bypass RLS, SECURITY DEFINER functions without a pinned search_path; each with a hint';
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
    ['audit_events',      format('%1$I.um_has_permission(''audit:read'', org_id) OR (target_type = ''user'' AND target_id = %1$I.um_current_user_id())', '@extschema@')]];
  v_secret constant text[] := ARRAY['sessions', 'identity_providers', 'user_identities', 'cache_sentinel'];
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
GRANT EXECUTE ON FUNCTION um.protection_note(regclass, text, text, jsonb), um.protection_tree(regclass),
  um.policy_check(text, name, name),
  um.drop_um_policies(regclass), um.check_column(regclass, name, text), um.assert_permission_name(text, boolean)
  TO PUBLIC;
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
  -- users: a suspension has its time; a locked account has failures or a lock time
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
  'every invariant um keeps (Roots, built-in roles, same-organization references, team owners, no cycles, suspensions, sessions), checked on the tables as they are; one row per violation';
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
