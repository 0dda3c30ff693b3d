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
