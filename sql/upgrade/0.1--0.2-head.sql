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
-- sql/install/86_lifecycle.sql (both new in 0.2), and
-- sql/upgrade/0.1--0.2-tail.sql; when 0.2 is released the assembled file is
-- committed and never edited again.

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
