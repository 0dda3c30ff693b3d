-- Lifecycle functions: every change to users, organizations, teams, roles,
-- grants and invitations.
--
-- Each public function um_<name>(...) is the C entry point of
-- src/lifecycle.c, running with its caller's rights; it calls the body
-- um_internal.do_<name>(the same arguments...), which runs as um's owner (SECURITY
-- DEFINER, EXECUTE held by nobody); um_internal.caller_role() names the database
-- role that really called.  Every body:
--   1. authorizes first, before it says anything about its target: the
--      acting user needs the permission in the organization; with nobody
--      acting, the calling role must administer um (superuser, or member of
--      the extension's owner);
--   2. applies the escalation guards: nobody grants a role holding a
--      permission they lack; only a Root acts on a Root;
--   3. changes everything or nothing (one statement's transaction), with the
--      invariants of 30_rules.sql as the last line of defence;
--   4. writes an audit event (ids only, never personal data).
-- A refusal is audited by um_internal.deny (committed even though the call fails).

-- ---------------------------------------------------------------------------
-- Who is calling

CREATE FUNCTION um_internal.caller_role()
RETURNS oid
AS 'MODULE_PATHNAME', 'um_caller_role'
LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION um_internal.caller_role() IS 'the database role that called the lifecycle function now running; NULL outside them';

CREATE FUNCTION um_internal.role_administers_um(p_role oid)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = p_role), false)
      OR coalesce((SELECT pg_catalog.pg_has_role(p_role, e.extowner, 'USAGE')
                     FROM pg_catalog.pg_extension e WHERE e.extname = 'um'), false);
$$;
COMMENT ON FUNCTION um_internal.role_administers_um(oid) IS 'is this database role a um administrator (superuser, or with the privileges of the extension''s owner)?';

-- ---------------------------------------------------------------------------
-- Lookups that name what is missing

CREATE FUNCTION um_internal.require_member(p_org_id bigint, p_user_id bigint)
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
COMMENT ON FUNCTION um_internal.require_member(bigint, bigint) IS
  'internal: the user''s membership in the organization, or the error that says it does not exist (UM035)';

CREATE FUNCTION um_internal.require_team(p_team_id bigint)
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
COMMENT ON FUNCTION um_internal.require_team(bigint) IS 'internal: the team, or the error that names it (UM033)';

-- A team of this organization (a team of another one does not exist here).
CREATE FUNCTION um_internal.require_org_team(p_org_id bigint, p_team_id bigint)
RETURNS um.teams
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.teams;
BEGIN
  SELECT * INTO v FROM um.teams t WHERE t.id = p_team_id AND t.org_id = p_org_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'team % does not exist in organization %', p_team_id, p_org_id
      USING ERRCODE = 'UM033', HINT = 'Look the team up in um.teams.';
  END IF;
  RETURN v;
END
$$;
COMMENT ON FUNCTION um_internal.require_org_team(bigint, bigint) IS 'internal: a team of the organization, or the error that names it (UM033)';

-- p_hint: what to do about it, for what the caller was about to do.
CREATE FUNCTION um_internal.require_team_member(p_team um.teams, p_user_id bigint, p_hint text)
RETURNS um.team_members
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v um.team_members;
BEGIN
  SELECT * INTO v FROM um.team_members tm WHERE tm.team_id = p_team.id AND tm.user_id = p_user_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'user % is not a member of team "%"', p_user_id, p_team.name
      USING ERRCODE = 'UM038', HINT = p_hint;
  END IF;
  RETURN v;
END
$$;
COMMENT ON FUNCTION um_internal.require_team_member(um.teams, bigint, text) IS 'internal: the user''s membership of the team, or UM038 with the hint given';

CREATE FUNCTION um_internal.require_role_id(p_role_id bigint)
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
COMMENT ON FUNCTION um_internal.require_role_id(bigint) IS 'internal: the role by id, or the error that names it (UM032)';

CREATE FUNCTION um_internal.require_scope(p_scope_id bigint)
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
COMMENT ON FUNCTION um_internal.require_scope(bigint) IS 'internal: the scope node, or the error that names it (UM036)';

-- Who may become an organization's Root: an active user who can log in;
-- in an organization they belong to (p_org_id, for a transfer), an active
-- member there too.
CREATE FUNCTION um_internal.require_root_candidate(p_user um.users, p_org_id bigint)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF um_internal.suspended(p_user.status, p_user.suspended_until) OR NOT p_user.allow_login
     OR (p_org_id IS NOT NULL
         AND EXISTS (SELECT 1 FROM um.memberships m WHERE m.org_id = p_org_id AND m.user_id = p_user.id
                                                      AND um_internal.suspended(m.status, m.suspended_until))) THEN
    RAISE EXCEPTION 'user % cannot be the Root of an organization', p_user.id
      USING ERRCODE = 'UM050',
            DETAIL = CASE WHEN p_org_id IS NOT NULL THEN 'The user is suspended or notification-only.'
                          WHEN um_internal.suspended(p_user.status, p_user.suspended_until) THEN 'The user is suspended.'
                          ELSE 'The user is notification-only (allow_login is false).' END,
            HINT = CASE WHEN p_org_id IS NULL THEN 'Choose an active user who can log in.'
                        ELSE 'Choose an active member who can log in.' END;
  END IF;
END
$$;
COMMENT ON FUNCTION um_internal.require_root_candidate(um.users, bigint) IS 'internal: refuses (UM050) a user who cannot be an organization''s Root: suspended (everywhere, or in the organization of a transfer) or not allowed to log in';

-- A team's owner is not removed from it (p_team_id), nor from the
-- organization (p_team_id NULL) while a team they own has other members: a
-- team they own alone goes with them.
CREATE FUNCTION um_internal.assert_not_team_owner(p_org_id bigint, p_team_id bigint, p_user_id bigint)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_team text;
BEGIN
  SELECT t.name INTO v_team FROM um.team_members tm JOIN um.teams t ON t.id = tm.team_id
   WHERE tm.org_id = p_org_id AND tm.user_id = p_user_id AND tm.is_owner
     AND CASE WHEN p_team_id IS NULL
              THEN EXISTS (SELECT 1 FROM um.team_members o WHERE o.team_id = tm.team_id AND o.user_id <> p_user_id)
              ELSE tm.team_id = p_team_id END
   ORDER BY t.id LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'the owner of team "%" cannot be removed', v_team
      USING ERRCODE = 'UM043', DETAIL = format('User %s owns the team.', p_user_id),
            HINT = 'Transfer ownership of the team to another member first (um_transfer_team_ownership), or delete the team.';
  END IF;
END
$$;
COMMENT ON FUNCTION um_internal.assert_not_team_owner(bigint, bigint, bigint) IS 'internal: refuses (UM043) to remove a team''s owner from the team';

CREATE FUNCTION um_internal.is_root(p_org_id bigint, p_user_id bigint)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN EXISTS (SELECT 1 FROM um.memberships m JOIN um.roles r ON r.id = m.role_id
                  WHERE m.org_id = p_org_id AND m.user_id = p_user_id AND r.builtin = 'root');
END
$$;
COMMENT ON FUNCTION um_internal.is_root(bigint, bigint) IS 'internal: does the user hold the Root role of the organization (in any state)?';

-- The catalog permissions a role grants, its included roles' too, from the
-- cache's bitmaps (src/guards.c): the role closure lives in C only.
CREATE FUNCTION um_internal.role_grants(p_role_id bigint)
RETURNS SETOF text
AS 'MODULE_PATHNAME', 'um_role_grants'
LANGUAGE C STABLE;
COMMENT ON FUNCTION um_internal.role_grants(bigint) IS 'internal: the catalog permissions a role grants, with those of the roles it includes';

-- Which of these permissions the actor lacks in the organization (at the
-- scope node when given): one pass over the cache's bitmaps (src/guards.c),
-- false exactly where um_has_permission would be.
CREATE FUNCTION um_internal.lacking_permissions(p_actor bigint, p_org_id bigint, p_scope_id bigint, p_permissions text[])
RETURNS text[]
AS 'MODULE_PATHNAME', 'um_lacking_permissions'
LANGUAGE C STABLE;
COMMENT ON FUNCTION um_internal.lacking_permissions(bigint, bigint, bigint, text[]) IS 'internal: those of the permissions the actor does not hold in the organization (at the scope node when given), as um_has_permission would answer';

-- The catalog permissions a name or pattern stands for.
CREATE FUNCTION um_internal.pattern_grants(p_pattern text)
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
COMMENT ON FUNCTION um_internal.pattern_grants(text) IS 'internal: the catalog permissions a permission name or pattern stands for';

-- um never changes application rows.  A foreign key from an application
-- table into um's tables with a cascading action (CASCADE, SET NULL, SET
-- DEFAULT) would make a lifecycle function's DELETE change that table, and
-- PostgreSQL fires the table's AFTER triggers at the end of the function's
-- statement, with the function's rights (um's owner): the table's owner
-- could run code as um's owner.  So every lifecycle function that may delete
-- refuses while such a foreign key exists; with RESTRICT or NO ACTION the
-- application removes its own rows first (and deletion names the table).
-- In C (src/guards.c): a backend reads the catalogs again only after an
-- invalidation that may have changed the answer.
CREATE FUNCTION um_internal.assert_no_app_cascades()
RETURNS void
AS 'MODULE_PATHNAME', 'um_assert_no_app_cascades'
LANGUAGE C STABLE;
COMMENT ON FUNCTION um_internal.assert_no_app_cascades() IS
  'internal: refuses (before a lifecycle function may delete) while an application table has a cascading foreign key into um''s tables, whose triggers would run as um''s owner';

-- ---------------------------------------------------------------------------
-- Deleting what application rows may reference.  A foreign key of an
-- application table into um's tables refuses the deletion while rows hold
-- it (one that cascades is refused earlier: um_internal.assert_no_app_cascades);
-- um names the table.  PostgreSQL checks such a key by querying the table as
-- its owner; a key whose column is not bigint makes that query run a cast,
-- the application's code, inside the deleting user's transaction, so
-- deletion is refused outright while one exists (um_lint reports it).
CREATE FUNCTION um_internal.delete_referenced(p_table text, p_id bigint, p_what text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_key record;
  v_schema text;
  v_table text;
  v_constraint text;
BEGIN
  -- A deferrable key of the application's would be checked at COMMIT, after
  -- the deletion said it succeeded; making it immediate here (SET
  -- CONSTRAINTS) would fire the application's pending constraint triggers of
  -- that name inside this body, with um's owner's rights.  Refused instead.
  SELECT c.conrelid::regclass AS tbl, c.conname INTO v_key
    FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
   WHERE c.contype = 'f' AND c.condeferrable
     AND c.confrelid IN (SELECT k.oid FROM pg_class k WHERE k.relnamespace = 'um'::regnamespace)
     AND t.relnamespace <> 'um'::regnamespace
   ORDER BY c.oid LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'cannot delete %: table % has a deferrable foreign key into um', p_what, v_key.tbl
      USING ERRCODE = 'UM081',
            DETAIL = format('Constraint %s would be checked only at COMMIT, after the deletion said it succeeded.', v_key.conname),
            HINT = format('ALTER TABLE %s ALTER CONSTRAINT %I NOT DEFERRABLE;', v_key.tbl, v_key.conname);
  END IF;
  SELECT c.conrelid::regclass AS tbl, c.conname, a.attname INTO v_key
    FROM pg_constraint c
    JOIN pg_class t ON t.oid = c.conrelid
    JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
   WHERE c.contype = 'f'
     AND c.confrelid IN (SELECT k.oid FROM pg_class k WHERE k.relnamespace = 'um'::regnamespace)
     AND t.relnamespace <> 'um'::regnamespace
     AND a.atttypid <> 'int8'::regtype
   ORDER BY c.oid LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'cannot delete %: table % has a foreign key into um whose column is not bigint', p_what, v_key.tbl
      USING ERRCODE = 'UM081',
            DETAIL = format('Constraint %s, column %s: PostgreSQL would run the column''s cast, the table''s code, while deleting.', v_key.conname, v_key.attname),
            HINT = format('Make column %s of %s bigint.', v_key.attname, v_key.tbl);
  END IF;
  BEGIN
    CASE p_table
      WHEN 'organizations' THEN DELETE FROM um.organizations o WHERE o.id = p_id;
      WHEN 'scopes' THEN DELETE FROM um.scopes s WHERE s.id = p_id;
    END CASE;
  EXCEPTION WHEN foreign_key_violation THEN
    GET STACKED DIAGNOSTICS v_schema = SCHEMA_NAME, v_table = TABLE_NAME, v_constraint = CONSTRAINT_NAME;
    IF v_schema = 'um' THEN
      RAISE;                                        -- um's own rule: not the application's rows
    END IF;
    RAISE EXCEPTION 'cannot delete %: rows of table %.% still reference it', p_what, quote_ident(v_schema), quote_ident(v_table)
      USING ERRCODE = 'UM081',
            DETAIL = format('Foreign key %s of %I.%I refers to what the deletion removes.', v_constraint, v_schema, v_table),
            HINT = format('Delete or move the rows of %I.%I that reference it first.', v_schema, v_table);
  END;
END
$$;
COMMENT ON FUNCTION um_internal.delete_referenced(text, bigint, text) IS
  'internal: deletes an organization or a scope node (with everything under it), refusing with UM081 named after the application table whose foreign key still references it, or whose key is deferrable or its column not bigint';

-- ---------------------------------------------------------------------------
-- Authorization

-- um_internal.authorize: may this call go ahead?  Returns the acting user (NULL for
-- a um administrator with nobody acting); refuses (UM070, audited) otherwise.
-- p_what completes "permission denied to ...".
CREATE FUNCTION um_internal.authorize(p_action text, p_what text, p_permission text,
                             p_org_id bigint, p_target_type text, p_target_id bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := @extschema@.um_current_user_id();
  v_caller oid := um_internal.caller_role();    -- NULL outside a lifecycle function: no administrator
BEGIN
  PERFORM um_internal.assert_no_app_cascades();
  IF v_actor IS NULL THEN
    IF NOT um_internal.role_administers_um(v_caller) THEN
      PERFORM um_internal.deny(p_action, p_org_id, p_target_type, p_target_id, 'UM070',
        'permission denied to ' || p_what,
        format('Nobody is acting in this transaction, and database role %s does not administer um.', coalesce(v_caller::regrole::text, current_user)),
        'Call um_begin(token) first to act as a logged-in user, or ask a um administrator.');
    END IF;
  ELSIF p_permission IS NOT NULL
        AND (p_org_id IS NULL OR NOT @extschema@.um_has_permission(p_permission, p_org_id)) THEN
    IF p_org_id IS NULL OR @extschema@.um_current_user_id(p_org_id) IS NULL
       OR NOT EXISTS (SELECT 1 FROM um.memberships m WHERE m.org_id = p_org_id AND m.user_id = v_actor) THEN
      -- not one of the actor's organizations: say nothing about it, and keep
      -- the refusal out of its audit trail
      PERFORM um_internal.deny(p_action, NULL, p_target_type, p_target_id, 'UM070',
        'permission denied to ' || p_what,
        format('It needs %s in an organization you belong to.', p_permission),
        'Ask an Admin of the organization for that permission.');
    END IF;
    PERFORM um_internal.deny(p_action, p_org_id, p_target_type, p_target_id, 'UM070',
      'permission denied to ' || p_what,
      format('It needs %s in organization %s.', p_permission, p_org_id),
      'Ask an Admin of the organization for that permission.');
  END IF;
  IF p_org_id IS NOT NULL THEN
    PERFORM um_internal.require_organization(p_org_id);
  END IF;
  RETURN v_actor;
END
$$;
COMMENT ON FUNCTION um_internal.authorize(text, text, text, bigint, text, bigint) IS
  'internal: may this lifecycle call go ahead? The acting user needs the permission in the organization, or with nobody acting the calling role must administer um; returns the acting user (NULL for an administrator), else refuses (UM070, audited)';

-- um_internal.authorize_user: for changes to a user account itself (which every
-- organization of the user shares): the permission is needed in every
-- organization the user belongs to, and only a Root acts on a Root there.
-- A user in no organization is only a um administrator's.
CREATE FUNCTION um_internal.authorize_user(p_action text, p_what text, p_permission text,
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
    PERFORM um_internal.authorize(p_action, p_what, NULL, NULL, 'user', p_user_id);
  ELSE
    -- A refusal is recorded in an organization's audit trail, and named,
    -- only when the actor is a member there (the identity reaching it):
    -- the user's other organizations are none of the actor's business.
    SELECT m.org_id INTO v_org FROM um.memberships m
     WHERE m.user_id = p_user_id AND NOT @extschema@.um_has_permission(p_permission, m.org_id)
     ORDER BY m.org_id LIMIT 1;
    IF FOUND OR NOT EXISTS (SELECT 1 FROM um.memberships m WHERE m.user_id = p_user_id) THEN
      PERFORM um_internal.deny(p_action, um_internal.actor_org(v_org), 'user', p_user_id, 'UM070',
        'permission denied to ' || p_what,
        format('It needs %s in every organization the user belongs to.', p_permission),
        'Ask an Admin of each of the user''s organizations, or a um administrator.');
    END IF;
    SELECT m.org_id INTO v_org FROM um.memberships m
     WHERE m.user_id = p_user_id AND um_internal.is_root(m.org_id, p_user_id) AND NOT um_internal.is_root(m.org_id, v_actor)
     ORDER BY m.org_id LIMIT 1;
    IF FOUND THEN
      PERFORM um_internal.deny(p_action, v_org, 'user', p_user_id, 'UM073',
        format('only a Root may %s a Root', p_what),
        format('User %s is a Root of organization %s.', p_user_id, v_org),
        'Ask another Root of that organization.');
    END IF;
  END IF;
  PERFORM um_internal.require_user(p_user_id);
  RETURN v_actor;
END
$$;
COMMENT ON FUNCTION um_internal.authorize_user(text, text, text, bigint) IS
  'internal: authorization for changes to a user account: the permission in every organization of the user, and only a Root acts on a Root; a user in no organization is only a um administrator''s';

-- um_internal.actor_org: the organization, if the acting user may be told about it
-- and it may carry their refusals (a member there, the identity reaching
-- it); else NULL.
CREATE FUNCTION um_internal.actor_org(p_org_id bigint)
RETURNS bigint
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT p_org_id
   WHERE @extschema@.um_current_user_id(p_org_id) IS NOT NULL
     AND EXISTS (SELECT 1 FROM um.memberships m
                  WHERE m.org_id = p_org_id AND m.user_id = @extschema@.um_current_user_id(p_org_id));
$$;
COMMENT ON FUNCTION um_internal.actor_org(bigint) IS
  'internal: the organization, if the acting user may be told about it and it may carry their refusals (a member there, the identity reaching it); else NULL';

-- Only a Root acts on a Root (an Admin never removes, demotes or suspends one).
CREATE FUNCTION um_internal.guard_root_target(p_actor bigint, p_org_id bigint, p_user_id bigint,
                                     p_action text, p_what text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF p_actor IS NOT NULL
     AND (p_actor <> p_user_id OR p_actor IS DISTINCT FROM @extschema@.um_real_user_id())
     AND um_internal.is_root(p_org_id, p_user_id) AND NOT um_internal.is_root(p_org_id, p_actor) THEN
    PERFORM um_internal.deny(p_action, p_org_id, 'user', p_user_id, 'UM073',
      format('only a Root may %s a Root', p_what),
      format('User %s is a Root of organization %s.', p_user_id, p_org_id),
      'Ask a Root of the organization.');
  END IF;
END
$$;
COMMENT ON FUNCTION um_internal.guard_root_target(bigint, bigint, bigint, text, text) IS
  'internal: only a Root acts on a Root (an Admin never removes, demotes or suspends one); refuses, audited, otherwise';

-- Nobody hands out a permission they do not hold (on the scope node, when
-- the grant is for one).  p_permissions are catalog names.
CREATE FUNCTION um_internal.guard_escalation(p_actor bigint, p_org_id bigint, p_scope_id bigint,
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
    FROM unnest(um_internal.lacking_permissions(p_actor, p_org_id, p_scope_id, p_permissions)) AS p;
  IF v_missing IS NOT NULL THEN
    PERFORM um_internal.deny(p_action, p_org_id, p_target_type, p_target_id, 'UM073',
      format('cannot %s: it would hand out permissions you do not hold', p_what),
      format('You lack %s%s.', array_to_string(v_missing[1:8], ', '),
             CASE WHEN cardinality(v_missing) > 8 THEN format(' and %s more', cardinality(v_missing) - 8) ELSE '' END),
      'Ask someone who holds every permission of the role.');
  END IF;
END
$$;
COMMENT ON FUNCTION um_internal.guard_escalation(bigint, bigint, bigint, text[], text, text, text, bigint) IS
  'internal: nobody hands out a permission they do not hold (on the scope node, when the grant is for one); refuses, audited, naming what is missing';

-- The nodes whose grants reach a node: the node, then its ancestors up to
-- and including the first that does not inherit (as src/cache.c follows
-- them).  Empty for NULL.
CREATE FUNCTION um_internal.scope_chain(p_node_id bigint)
RETURNS TABLE (id bigint, kind text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  WITH RECURSIVE up(id, kind, inherit, parent_id, d) AS (
    SELECT s.id, s.kind, s.inherit, s.parent_id, 1 FROM um.scopes s WHERE s.id = p_node_id
    UNION ALL
    SELECT s.id, s.kind, s.inherit, s.parent_id, up.d + 1
      FROM up JOIN um.scopes s ON s.id = up.parent_id
     WHERE up.inherit AND up.d <= 64)
  SELECT up.id, up.kind FROM up
$$;
COMMENT ON FUNCTION um_internal.scope_chain(bigint) IS
  'internal: the node and the ancestors whose grants reach it (up to the first that does not inherit), as the evaluator follows them';

-- Moving a node, or letting it inherit again, makes the grants on its new
-- ancestors (and the team roles of a team space among them) reach its
-- subtree: that hands out their roles there, so it
-- needs what granting them there needs (role:grant, and every permission
-- of each such role held on the node before the change).
-- p_old_parent: where the node's grants came from until now (NULL: none).
CREATE FUNCTION um_internal.guard_scope_reach(p_actor bigint, p_node um.scopes, p_new_parent bigint,
                                     p_old_parent bigint, p_action text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  g record;
  v_first boolean := true;
BEGIN
  IF p_actor IS NULL OR p_new_parent IS NULL THEN
    RETURN;                                       -- a um administrator; nothing above reaches it
  END IF;
  IF EXISTS (WITH RECURSIVE up(id) AS (
               SELECT p_new_parent
               UNION
               SELECT s.parent_id FROM um.scopes s JOIN up ON s.id = up.id WHERE s.parent_id IS NOT NULL)
             SELECT 1 FROM up WHERE up.id = p_node.id) THEN
    RETURN;                                       -- into its own subtree: the move itself is refused (UM041)
  END IF;
  FOR g IN
    WITH new_chain AS (SELECT * FROM um_internal.scope_chain(p_new_parent)),
         old_chain AS (SELECT * FROM um_internal.scope_chain(p_old_parent))
    SELECT DISTINCT r.id, r.name
      FROM (SELECT gr.role_id FROM um.grants gr
             WHERE gr.org_id = p_node.org_id
               AND ((gr.scope_id IN (SELECT id FROM new_chain) AND gr.scope_id NOT IN (SELECT id FROM old_chain))
                    OR (gr.scope_kind IN (SELECT kind FROM new_chain) AND gr.scope_kind <> p_node.kind
                        AND gr.scope_kind NOT IN (SELECT kind FROM old_chain)))
            UNION ALL                              -- team roles hold on the team's space and below
            SELECT tr.role_id FROM um.team_member_roles tr JOIN um.teams t ON t.id = tr.team_id
             WHERE tr.org_id = p_node.org_id
               AND t.scope_id IN (SELECT id FROM new_chain) AND t.scope_id NOT IN (SELECT id FROM old_chain)) AS g0
      JOIN um.roles r ON r.id = g0.role_id
     ORDER BY r.id
  LOOP
    IF v_first THEN
      PERFORM um_internal.authorize(p_action, format('let the grants of role "%s" reach scope node %s', g.name, p_node.id),
                           'role:grant', p_node.org_id, 'scope', p_node.id);    -- as um_grant_scope_role
      v_first := false;
    END IF;
    PERFORM um_internal.guard_escalation(p_actor, p_node.org_id, p_node.id, ARRAY(SELECT um_internal.role_grants(g.id)),
                                p_action, format('let the grants of role "%s" reach scope node %s', g.name, p_node.id),
                                'scope', p_node.id);
  END LOOP;
END
$$;
COMMENT ON FUNCTION um_internal.guard_scope_reach(bigint, um.scopes, bigint, bigint, text) IS
  'internal: moving a scope node or letting it inherit again hands out the roles granted on its new ancestors: role:grant and every permission of those roles on the node (UM070, UM073)';

-- An organization keeps an active Root who can log in: refuse to suspend,
-- or take login from, the last one.
CREATE FUNCTION um_internal.guard_last_active_root(p_user_id bigint, p_org_id bigint, p_action text, p_what text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_org bigint;
BEGIN
  -- serialize with every other change to these organizations' Roots
  -- (two Roots disabling each other at once)
  PERFORM um_internal.lock_organization(m.org_id)
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
    PERFORM um_internal.deny(p_action, v_org, 'user', p_user_id, 'UM044',
      format('cannot %s the last active Root of organization %s', p_what, v_org),
      'An organization always keeps a Root who can log in.',
      'Make another member Root first (um_set_org_role or um_transfer_org_ownership).');
  END IF;
END
$$;
COMMENT ON FUNCTION um_internal.guard_last_active_root(bigint, bigint, text, text) IS
  'internal: refuses to suspend, or take login from, the last active Root who can log in of an organization (UM044)';
