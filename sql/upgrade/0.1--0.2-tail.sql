
-- ---------------------------------------------------------------------------
-- 0.1 -> 0.2, continued (after 86_lifecycle.sql, 85_rls_lint.sql and 89_integrity.sql)

-- the new table of secrets is for um administrators only, and dumped
ALTER TABLE um.verification_tokens ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY um_administrators ON um.verification_tokens USING (um.administers_um()) WITH CHECK (um.administers_um());
SELECT pg_catalog.pg_extension_config_dump('um.verification_tokens', '');

-- no internal function may be executed by PUBLIC (as 88_own_rls.sql)
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA um FROM PUBLIC;
GRANT EXECUTE ON FUNCTION um.administers_um() TO PUBLIC;
-- and the ones um_protect_table / um_unprotect_table call with their caller's rights
GRANT EXECUTE ON FUNCTION um.protection_note(regclass, text, text), um.protection_tree(regclass), um.protection_state(regclass[]),
  um.policy_check(text, name, name),
  um.drop_um_policies(regclass), um.check_column(regclass, name, text), um.assert_permission_name(text, boolean)
  TO PUBLIC;

-- ---------------------------------------------------------------------------
-- Security fixes of 0.2 in parts that are not assembled into this script

-- an impersonator reads the target's audit events only in the impersonated
-- organizations, and events of no organization only as themself (88_own_rls.sql)
ALTER POLICY um_read ON um.audit_events USING (
  @extschema@.um_has_permission('audit:read', org_id)
  OR (target_type = 'user' AND (target_id = @extschema@.um_current_user_id(org_id)
      OR (org_id IS NULL AND target_id = @extschema@.um_current_user_id() AND target_id = @extschema@.um_real_user_id()))));

-- um_add_user_reference (87_references.sql) replaces foreign keys into um's
-- tables, which PostgreSQL checks as um's owner with the referencing column's
-- casts: its functions are callable, and nobody but um's owner keeps
-- REFERENCES on um's tables (um_lint reports the foreign keys left).
REVOKE REFERENCES ON ALL TABLES IN SCHEMA um FROM PUBLIC;
DO $$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT DISTINCT c.oid::regclass AS tbl, a.grantee::regrole AS grantee, NULL::name AS col
             FROM pg_catalog.pg_class c, aclexplode(c.relacl) a
            WHERE c.relnamespace = 'um'::regnamespace AND a.privilege_type = 'REFERENCES' AND a.grantee <> c.relowner
              AND a.grantee <> 0
           UNION ALL
           SELECT DISTINCT c.oid::regclass, a.grantee::regrole, att.attname
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_attribute att ON att.attrelid = c.oid, aclexplode(att.attacl) a
            WHERE c.relnamespace = 'um'::regnamespace AND a.privilege_type = 'REFERENCES' AND a.grantee <> c.relowner
  LOOP
    IF r.col IS NULL THEN
      EXECUTE format('REVOKE REFERENCES ON %s FROM %s', r.tbl, r.grantee);
    ELSE
      EXECUTE format('REVOKE REFERENCES (%I) ON %s FROM %s', r.col, r.tbl,
                     CASE WHEN r.grantee::oid = 0 THEN 'PUBLIC' ELSE r.grantee::text END);
    END IF;
  END LOOP;
END
$$;

-- a refused login takes the same time for an account hashed at an older
-- cost as for an unknown address (80_identity.sql)
CREATE OR REPLACE FUNCTION um.password_matches(p_password text, p_hash text)
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
REVOKE EXECUTE ON FUNCTION um.hash_cost(text) FROM PUBLIC;

-- a successful login re-hashes a password hashed at a lower cost than
-- today's, and that re-hash ends no session (80_identity.sql)
CREATE OR REPLACE FUNCTION um.authenticate(p_email text, p_password text, p_changing_password boolean)
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

DROP TRIGGER users_end_sessions ON um.users;
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

-- every path that takes a password reaches um's C code (and its log hook) first
CREATE OR REPLACE FUNCTION um.hash_password(p_password text)
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

CREATE OR REPLACE FUNCTION @extschema@.um_change_password(email text, old_password text, new_password text)
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
