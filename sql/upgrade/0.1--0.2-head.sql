-- um 0.1 -> 0.2
--
-- 0.1 is the first release; its install script, sql/um--0.1.sql, is never
-- edited again.  Every change made in sql/install/ for 0.2 is also made
-- here, so that ALTER EXTENSION um UPDATE from 0.1 gives exactly what a fresh
-- CREATE EXTENSION um gives (test/shell/upgrade.sh compares the two).

\echo Use "ALTER EXTENSION um UPDATE TO '0.2'" to load this file. \quit

COMMENT ON FUNCTION um.token_hash(text) IS 'what um.sessions stores instead of a token (um_begin''s lookup uses it too)';
--
-- While 0.2 is in development this script is assembled by the Makefile from
-- sql/upgrade/0.1--0.2-head.sql, sql/install/72_monitoring.sql and
-- sql/install/86_lifecycle.sql and 87_references.sql (new in 0.2), sql/install/85_rls.sql, 85_rls_lint.sql
-- and sql/install/89_integrity.sql (um_lint and um_check_integrity, replaced),
-- and sql/upgrade/0.1--0.2-tail.sql; when 0.2 is released the assembled file
-- is committed and never edited again.

-- A foreign key into um's tables whose column type differs from um's makes
-- PostgreSQL run that column's cast as um's owner (a superuser) on every
-- insert: code of the application's with a superuser's rights.  0.2 will
-- not install over one (0.2 replaces such keys with um_add_user_reference);
-- keys of the same type run no application code and are kept.
DO $$
DECLARE
  v text;
BEGIN
  SELECT string_agg(format('ALTER TABLE %s DROP CONSTRAINT %I;', k.conrelid::regclass, k.conname), ' ' ORDER BY k.conrelid::regclass::text, k.conname)
    INTO v
    FROM pg_catalog.pg_constraint k JOIN pg_catalog.pg_class r ON r.oid = k.confrelid
   WHERE k.contype = 'f' AND r.relnamespace = 'um'::regnamespace AND k.connamespace <> 'um'::regnamespace
     AND EXISTS (SELECT 1 FROM unnest(k.conkey, k.confkey) AS x(a, b)
                   JOIN pg_catalog.pg_attribute fa ON fa.attrelid = k.conrelid AND fa.attnum = x.a
                   JOIN pg_catalog.pg_attribute pa ON pa.attrelid = k.confrelid AND pa.attnum = x.b
                  WHERE fa.atttypid <> pa.atttypid);
  IF v IS NOT NULL THEN
    RAISE EXCEPTION 'foreign keys into um''s tables run their column''s cast as um''s owner'
      USING ERRCODE = 'UM057',
            DETAIL = 'Their columns are not of the type of the um column they reference, so every insert runs application code with a superuser''s rights.',
            HINT = 'Drop them, make the columns bigint, then update (and register columns of user ids with um_add_user_reference): ' || v;
  END IF;
END
$$;

-- The first API functions become lifecycle functions (86_lifecycle.sql):
-- C entry points whose bodies check the caller's rights.
DROP FUNCTION @extschema@.um_create_user(text, text, boolean, text, text, text, jsonb);
DROP FUNCTION @extschema@.um_create_organization(text, text, bigint);
DROP FUNCTION @extschema@.um_add_member(bigint, bigint, text);
DROP FUNCTION @extschema@.um_register_permission(text, text);
DROP FUNCTION @extschema@.um_logout_all(bigint);
DROP FUNCTION um.invoker_administers_um();

-- The audit trail records the role that called a lifecycle function, and
-- refusals logged with nobody acting name it too.
CREATE OR REPLACE FUNCTION um.audit_events_stamp()
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

CREATE OR REPLACE FUNCTION um.deny(p_action text, p_org_id bigint, p_target_type text, p_target_id bigint,
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

-- Session housekeeping never deletes rows an application table references.
CREATE OR REPLACE FUNCTION um.new_session(p_user um.users, p_action text)
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

-- Organization-first keys, so that um's organization-scoped tables can be
-- sharded by organization: every primary key and unique constraint leads
-- with org_id; unique indexes on the ids keep lookups by id fast.  The foreign keys that
-- rest on the replaced unique constraints (um's own, and any application
-- table's) are dropped and re-created exactly as they were.
DO $$
DECLARE
  v record;
  v_tbl text[] := '{}';
  v_name text[] := '{}';
  v_def text[] := '{}';
  v_comment text[] := '{}';
  i integer;
BEGIN
  -- (a partitioned table's foreign key is dropped and re-created on the
  -- parent, which takes its partitions' copies along)
  FOR v IN SELECT c.conrelid::regclass::text AS tbl, c.conname::text AS name, pg_catalog.pg_get_constraintdef(c.oid) AS def,
                  pg_catalog.obj_description(c.oid, 'pg_constraint') AS comment
             FROM pg_catalog.pg_constraint c
            WHERE c.contype = 'f' AND c.conparentid = 0
              AND c.confrelid IN ('um.roles'::regclass, 'um.scopes'::regclass, 'um.teams'::regclass,
                                  'um.team_members'::regclass, 'um.identity_providers'::regclass,
                                  'um.memberships'::regclass, 'um.grants'::regclass, 'um.invitations'::regclass,
                                  'um.role_inclusions'::regclass, 'um.role_permissions'::regclass,
                                  'um.team_member_roles'::regclass, 'um.user_identities'::regclass)
            ORDER BY c.oid LOOP
    v_tbl := v_tbl || v.tbl;
    v_name := v_name || v.name;
    v_def := v_def || v.def;
    v_comment := v_comment || v.comment;
    EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', v.tbl, v.name);
  END LOOP;

  ALTER TABLE um.roles DROP CONSTRAINT roles_pkey, DROP CONSTRAINT roles_org_id_id_key,
    ADD CONSTRAINT roles_pkey PRIMARY KEY (org_id, id);
  CREATE UNIQUE INDEX roles_id_key ON um.roles (id);
  ALTER TABLE um.role_inclusions DROP CONSTRAINT role_inclusions_pkey,
    ADD PRIMARY KEY (org_id, role_id, included_role_id);
  CREATE UNIQUE INDEX role_inclusions_role_id_included_role_id_key ON um.role_inclusions (role_id, included_role_id);
  ALTER TABLE um.role_permissions DROP CONSTRAINT role_permissions_pkey,
    ADD PRIMARY KEY (org_id, role_id, permission);
  CREATE UNIQUE INDEX role_permissions_role_id_permission_key ON um.role_permissions (role_id, permission);
  ALTER TABLE um.scopes DROP CONSTRAINT scopes_pkey, DROP CONSTRAINT scopes_org_id_id_key,
    ADD CONSTRAINT scopes_pkey PRIMARY KEY (org_id, id);
  CREATE UNIQUE INDEX scopes_id_key ON um.scopes (id);
  ALTER TABLE um.memberships DROP CONSTRAINT memberships_pkey,
    ADD CONSTRAINT memberships_pkey PRIMARY KEY (org_id, id);
  CREATE UNIQUE INDEX memberships_id_key ON um.memberships (id);
  ALTER TABLE um.teams DROP CONSTRAINT teams_pkey, DROP CONSTRAINT teams_org_id_id_key,
    ADD CONSTRAINT teams_pkey PRIMARY KEY (org_id, id);
  CREATE UNIQUE INDEX teams_id_key ON um.teams (id);
  ALTER TABLE um.team_members DROP CONSTRAINT team_members_pkey, DROP CONSTRAINT team_members_org_team_user_key,
    DROP CONSTRAINT team_members_one_owner,
    ADD PRIMARY KEY (org_id, team_id, user_id),
    ADD CONSTRAINT team_members_one_owner EXCLUDE USING btree (org_id WITH =, team_id WITH =) WHERE (is_owner)
      DEFERRABLE INITIALLY IMMEDIATE;
  CREATE UNIQUE INDEX team_members_team_id_user_id_key ON um.team_members (team_id, user_id);
  ALTER TABLE um.team_member_roles DROP CONSTRAINT team_member_roles_pkey,
    ADD PRIMARY KEY (org_id, team_id, user_id, role_id);
  CREATE UNIQUE INDEX team_member_roles_team_id_user_id_role_id_key ON um.team_member_roles (team_id, user_id, role_id);
  ALTER TABLE um.grants DROP CONSTRAINT grants_pkey,
    ADD CONSTRAINT grants_pkey PRIMARY KEY (org_id, id);
  CREATE UNIQUE INDEX grants_id_key ON um.grants (id);
  ALTER TABLE um.invitations DROP CONSTRAINT invitations_pkey, DROP CONSTRAINT invitations_token_hash_key,
    ADD CONSTRAINT invitations_pkey PRIMARY KEY (org_id, id),
    ADD CONSTRAINT invitations_org_id_token_hash_key UNIQUE (org_id, token_hash);
  CREATE UNIQUE INDEX invitations_id_key ON um.invitations (id);
  CREATE UNIQUE INDEX invitations_token_hash_key ON um.invitations (token_hash);
  ALTER TABLE um.identity_providers DROP CONSTRAINT identity_providers_pkey,
    DROP CONSTRAINT identity_providers_org_id_id_key,
    ADD CONSTRAINT identity_providers_pkey PRIMARY KEY (org_id, id);
  CREATE UNIQUE INDEX identity_providers_id_key ON um.identity_providers (id);
  ALTER TABLE um.user_identities DROP CONSTRAINT user_identities_pkey,
    ADD PRIMARY KEY (org_id, provider_id, subject);
  CREATE UNIQUE INDEX user_identities_provider_id_subject_key ON um.user_identities (provider_id, subject);

  FOR i IN 1 .. coalesce(array_length(v_tbl, 1), 0) LOOP
    EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I %s', v_tbl[i], v_name[i], v_def[i]);
    IF v_comment[i] IS NOT NULL THEN
      EXECUTE format('COMMENT ON CONSTRAINT %I ON %s IS %L', v_name[i], v_tbl[i], v_comment[i]);
    END IF;
  END LOOP;
END
$$;

-- An organization keeps a Root who can log in on every path (30_rules.sql).
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
CREATE OR REPLACE FUNCTION um.memberships_keep_root()
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

-- um.protection_note builds its audit details itself and registers a new
-- resource's permissions for um administrators only (85_rls.sql, assembled
-- below, replaces the rest of table protection)
DROP FUNCTION um.protection_note(regclass, text, text, jsonb);
