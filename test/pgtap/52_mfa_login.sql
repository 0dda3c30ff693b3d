-- Issue 17, item 5 (second part): logging in with a second factor,
-- assurance levels, organizations that require level 2, step-up.  Attacked
-- by a password thief (the password alone, a reset that would skip the
-- factor, a challenge used as a session, a replayed challenge or code), a
-- level-1 session in an organization that requires more, and a stale
-- session calling a sensitive function.  Commits: failures are counted by
-- the audit writer, which sees committed data.
\ir fixture.psql
\set QUIET 1
SELECT plan(44);

SET um.password_hash_cost = 4;
CREATE ROLE regress_um_mfa2_app NOLOGIN;
GRANT USAGE ON SCHEMA public TO regress_um_mfa2_app;
UPDATE um.users SET email_verified_at = now();
SELECT count(um_set_password(id, 'password-of-' || split_part(email, '@', 1), false)) AS n FROM um.users \gset
SELECT pg_temp.usr('ada') AS ada, pg_temp.usr('bob') AS bob, pg_temp.usr('carol') AS carol,
       pg_temp.usr('dave') AS dave, pg_temp.org('acme') AS acme, pg_temp.org('globex') AS globex \gset
CREATE FUNCTION pg_temp.code(bigint, integer DEFAULT 0) RETURNS text LANGUAGE sql SECURITY DEFINER
  AS $$ SELECT um_internal.totp_code(totp_secret, floor(extract(epoch FROM clock_timestamp()) / 30)::bigint + $2)
          FROM um.mfa_factors WHERE user_id = $1 AND confirmed_at IS NOT NULL ORDER BY id LIMIT 1 $$;
GRANT EXECUTE ON FUNCTION pg_temp.code(bigint, integer) TO regress_um_mfa2_app;
CREATE FUNCTION pg_temp.fresh_step() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF 30 - extract(epoch FROM clock_timestamp())::numeric % 30 < 6 THEN
    PERFORM pg_sleep(30 - extract(epoch FROM clock_timestamp())::numeric % 30 + 0.1);
  END IF;
END $$;
CREATE FUNCTION pg_temp.level(text) RETURNS smallint LANGUAGE sql SECURITY DEFINER
  AS $$ SELECT assurance_level FROM um.sessions WHERE token_hash = sha256(convert_to($1, 'UTF8')) $$;
GRANT EXECUTE ON FUNCTION pg_temp.level(text) TO regress_um_mfa2_app;
-- carol enrols a factor (confirmed a step ago, so that the next code is new)
BEGIN;
SELECT um_act_as(:carol) AS a \gset
SELECT factor_id AS cf FROM um_enroll_totp('Phone') \gset
COMMIT;
UPDATE um.mfa_factors SET confirmed_at = now(), last_step = floor(extract(epoch FROM clock_timestamp()) / 30)::bigint - 2 WHERE id = :cf;

-- ---------------------------------------------------------------------------
-- Two steps
SET ROLE regress_um_mfa2_app;
SELECT um_login('carol@example.com', 'password-of-carol') AS ch \gset
SELECT ok(:'ch' LIKE 'umc\_%', 'with a factor, the password returns a challenge, not a session');
SELECT throws_ok(format('SELECT um_begin(%L)', :'ch'), 'UM067', NULL, 'a challenge begins nothing');
SELECT pg_temp.fresh_step();
SELECT throws_ok(format('SELECT um_complete_login(%L, %L)', :'ch', lpad(((pg_temp.code(:carol)::int + 7) % 1000000)::text, 6, '0')),
                 'UM090', NULL, 'a wrong code is refused');
RESET ROLE;
SELECT is((SELECT mfa_failed_count FROM um.users WHERE id = :carol), 1, 'and counted, apart from passwords');
SET ROLE regress_um_mfa2_app;
SELECT um_login('carol@example.com', 'password-of-carol') AS chx \gset
RESET ROLE;
SELECT is((SELECT mfa_failed_count FROM um.users WHERE id = :carol), 1,
          'a right password (a new challenge) does not clear it: a password thief cannot guess codes without end');
SET ROLE regress_um_mfa2_app;
SELECT pg_temp.code(:carol) AS c1 \gset
SELECT um_complete_login(:'ch', :'c1') AS s2 \gset
SELECT ok(:'s2' LIKE 'um\_%' AND :'s2' NOT LIKE 'umc\_%', 'the right code gives a session');
SELECT is(pg_temp.level(:'s2'), 2::smallint, 'at assurance level 2');
SELECT throws_ok(format('SELECT um_complete_login(%L, %L)', :'ch', :'c1'), 'UM053', NULL, 'a challenge is single use');
SELECT um_login('carol@example.com', 'password-of-carol') AS ch2 \gset
SELECT throws_ok(format('SELECT um_complete_login(%L, %L)', :'ch2', :'c1'), 'UM090', NULL,
                 'a code that was used once is not accepted again, even with a new challenge');
RESET ROLE;
UPDATE um.login_challenges SET created_at = now() - interval '10 minutes', expires_at = now() - interval '5 minutes';
SET ROLE regress_um_mfa2_app;
SELECT throws_ok(format('SELECT um_complete_login(%L, %L)', :'ch2', pg_temp.code(:carol, 1)), 'UM053', NULL,
                 'an expired challenge is refused');
RESET ROLE;
SELECT um_reset_password_and_login((SELECT token FROM um_request_password_reset('carol@example.com')), 'carol-new-password') AS rch \gset
SELECT ok(:'rch' LIKE 'umc\_%', 'a password reset does not skip the second factor: it too returns a challenge');
SELECT is((SELECT count(*) FROM um.login_challenges WHERE user_id = :carol AND method = 'reset'), 1::bigint,
          'which completes into a reset session');
SELECT um_login('dave@example.com', 'password-of-dave') AS d1 \gset
SELECT is(pg_temp.level(:'d1'), 1::smallint, 'without a factor, a login gives a level-1 session at once');

-- ---------------------------------------------------------------------------
-- An organization that requires a second factor
SET ROLE regress_um_mfa2_app;
BEGIN;
SELECT um_begin(um_login('ada@example.com', 'password-of-ada')) AS b \gset
SELECT throws_ok(format('SELECT um_set_org_setting(%s, %L, %L::jsonb)', :acme, 'require_mfa', 'true'), 'UM092', NULL,
                 'a level-1 session cannot turn require_mfa on: it would lock itself out');
ROLLBACK;
RESET ROLE;
BEGIN;
SELECT um_act_as(:ada) AS a \gset
SELECT lives_ok(format('SELECT um_set_org_setting(%s, %L, %L::jsonb)', :acme, 'require_mfa', 'true'),
                'ada, through the backend (um_act_as), requires a second factor in acme');
COMMIT;
SET ROLE regress_um_mfa2_app;
BEGIN;
SELECT um_begin(:'d1') AS b \gset
SELECT throws_ok(format('SELECT um_has_permission(%L, %s)', 'org:read', :acme), 'UM092', NULL,
                 'dave''s level-1 session may not even check a permission in acme');
ROLLBACK;
BEGIN;
SELECT um_begin(:'d1') AS b \gset
SELECT throws_ok(format('SELECT um_invite(%s, %L)', :acme, 'x@example.com'), 'UM092', NULL, 'nor call a lifecycle function there');
ROLLBACK;
BEGIN;
SELECT um_begin(:'d1') AS b \gset
SELECT is(um_current_user_id(:acme), NULL::bigint, 'for policies on the user''s own rows nobody acts there either');
ROLLBACK;
BEGIN;
SELECT um_begin(:'d1') AS b \gset
SELECT set_config(CASE WHEN current_setting('server_version_num')::int >= 160000 THEN 'debug_parallel_query' ELSE 'force_parallel_mode' END,
                  'on', true) AS x \gset
SELECT throws_ok(format('SELECT count(*) FROM generate_series(1, 3) g WHERE um_has_permission(%L, %s)', 'org:read', :acme), 'UM092', NULL,
                 'a parallel worker refuses the same (the session travels with the transaction''s settings)');
ROLLBACK;
BEGIN;
SELECT um_begin(:'d1') AS b \gset
SELECT ok(um_has_permission('org:read', :globex), 'globex does not require it: his session works there');
SELECT is(um_permitted_orgs('org:read'), ARRAY[:globex]::bigint[], 'um_permitted_orgs leaves acme out rather than fail');
COMMIT;
RESET ROLE;
BEGIN;
SELECT um_act_as(:dave) AS a \gset
SELECT ok(um_has_permission('org:read', :acme), 'a backend acting with um_act_as vouches for the user: not refused');
ROLLBACK;
-- (the reset above ended carol's sessions: a new one, with the factor)
UPDATE um.mfa_factors SET last_step = floor(extract(epoch FROM clock_timestamp()) / 30)::bigint - 2 WHERE id = :cf;
SELECT pg_temp.fresh_step();
SELECT um_complete_login(um_login('carol@example.com', 'carol-new-password'), pg_temp.code(:carol)) AS s2b \gset
SET ROLE regress_um_mfa2_app;
BEGIN;
SELECT um_begin(:'s2b') AS b \gset
SELECT ok(um_has_permission('org:read', :acme), 'carol''s level-2 session works in acme');
COMMIT;
RESET ROLE;
SELECT is((SELECT count(*) FROM um_lint() WHERE object = 'organization acme' AND finding LIKE 'requires a second factor%'), 1::bigint,
          'um_lint reports acme: members there have no factor');
-- stepping up within a session
SELECT um_login('carol@example.com', 'carol-new-password') AS ch3 \gset
UPDATE um.mfa_factors SET last_step = floor(extract(epoch FROM clock_timestamp()) / 30)::bigint - 2 WHERE id = :cf;
SELECT pg_temp.fresh_step();
SELECT um_complete_login(:'ch3', pg_temp.code(:carol)) AS s3 \gset
UPDATE um.sessions SET assurance_level = 1 WHERE token_hash = sha256(convert_to(:'s3', 'UTF8'));
UPDATE um.mfa_factors SET last_step = floor(extract(epoch FROM clock_timestamp()) / 30)::bigint - 2 WHERE id = :cf;
SET ROLE regress_um_mfa2_app;
BEGIN;
SELECT um_begin(:'s3') AS b \gset
SELECT throws_ok($$ SELECT * FROM um_enroll_totp('Thief''s phone') $$, 'UM093', NULL,
                 'a level-1 session of a user with a factor cannot enrol another (a stolen session would enrol its own)');
ROLLBACK;
BEGIN;
SELECT um_begin(:'s3') AS b \gset
SAVEPOINT sp;
SELECT is(um_reauthenticate(code => pg_temp.code(:carol)), 2::smallint, 'a proof inside a savepoint ...');
ROLLBACK TO sp;
SELECT throws_ok(format('SELECT um_has_permission(%L, %s)', 'org:read', :acme), 'UM092', NULL,
                 '... is forgotten with it: the session is back at level 1');
ROLLBACK;
BEGIN;
SELECT um_begin(:'s3') AS b \gset
SELECT is(um_reauthenticate(code => pg_temp.code(:carol)), 2::smallint, 'a level-1 session proves a factor (um_reauthenticate) ...');
SELECT ok(um_has_permission('org:read', :acme), '... and may act in acme in the same transaction');
COMMIT;
RESET ROLE;

-- ---------------------------------------------------------------------------
-- WebAuthn: the backend verifies, um keeps the credential and its counter
CREATE ROLE regress_um_mfa2_backend NOLOGIN;
GRANT USAGE ON SCHEMA public TO regress_um_mfa2_backend;
GRANT EXECUTE ON FUNCTION um_complete_login_webauthn(text, bytea, bigint), um_webauthn_credential(bytea)
  TO regress_um_mfa2_backend;
BEGIN;
SELECT um_act_as(:bob) AS a \gset
SELECT um_register_webauthn('YubiKey', '\x00112233445566778899aabbccddeeff', '\xa50102032620012158', 5) AS wf \gset
COMMIT;
SELECT ok(:wf > 0, 'bob registers a security key the backend verified');
SELECT um_login('bob@example.com', 'password-of-bob') AS bch \gset
SELECT ok(:'bch' LIKE 'umc\_%', 'a security key is a second factor: the password returns a challenge');
SET ROLE regress_um_mfa2_app;
SELECT throws_ok(format('SELECT um_complete_login_webauthn(%L, %L, 6)', :'bch', '\x00112233445566778899aabbccddeeff'), '42501', NULL,
                 'the application role cannot claim a verified assertion');
RESET ROLE;
SET ROLE regress_um_mfa2_backend;
SELECT is((SELECT public_key FROM um_webauthn_credential('\x00112233445566778899aabbccddeeff')), '\xa50102032620012158'::bytea,
          'the backend reads the public key to verify with');
SELECT throws_ok(format('SELECT um_complete_login_webauthn(%L, %L, 5)', :'bch', '\x00112233445566778899aabbccddeeff'), 'UM090', NULL,
                 'a signature counter that did not grow betrays a cloned key');
SELECT um_complete_login_webauthn(:'bch', '\x00112233445566778899aabbccddeeff', 6) AS bs \gset
RESET ROLE;
SELECT is(pg_temp.level(:'bs'), 2::smallint, 'a growing counter completes the login at level 2');
SET ROLE regress_um_mfa2_app;
BEGIN;
SELECT um_begin(:'bs') AS b \gset
SELECT lives_ok(format('SELECT um_remove_factor(%s)', :wf), 'right after a login, the session may remove the key without a code');
COMMIT;
RESET ROLE;

SELECT throws_ok($$ SELECT um_change_password('carol@example.com', 'carol-new-password', 'carol-thief-password') $$, 'UM093', NULL,
                 'with a factor, the password alone does not change the password');
SELECT ok(um_login('carol@example.com', 'carol-new-password') LIKE 'umc\_%', 'which still opens the first step');

-- ---------------------------------------------------------------------------
-- Step-up: sensitive calls need a recent authentication
BEGIN;
SELECT um_act_as(:ada) AS a \gset
SELECT um_set_org_setting(:acme, 'require_mfa', 'false') AS x \gset
COMMIT;
SELECT um_login('bob@example.com', 'password-of-bob') AS b1 \gset
UPDATE um.sessions SET authenticated_at = now() - interval '1 hour' WHERE token_hash = sha256(convert_to(:'b1', 'UTF8'));
SET ROLE regress_um_mfa2_app;
BEGIN;
SELECT um_begin(:'b1') AS b \gset
SELECT throws_ok($$ SELECT um_request_email_change('bob@new.example') $$, 'UM093', NULL,
                 'an hour after the login, changing one''s address needs a fresh proof');
ROLLBACK;
BEGIN;
SELECT um_begin(:'b1') AS b \gset
SELECT throws_ok($$ SELECT um_delete_my_account() $$, 'UM093', NULL, 'so does deleting one''s account');
ROLLBACK;
BEGIN;
SELECT um_begin(:'b1') AS b \gset
SELECT throws_ok($$ SELECT um_reauthenticate('wrong-password') $$, 'UM060', NULL, 'a wrong password is no proof');
ROLLBACK;
BEGIN;
SELECT um_begin(:'b1') AS b \gset
SELECT is(um_reauthenticate('password-of-bob'), 1::smallint, 'the password is (the level stays 1)');
SELECT ok(um_request_email_change('bob@new.example') IS NOT NULL, 'then the change goes through');
COMMIT;
BEGIN;
SELECT um_begin(:'b1') AS b \gset
SELECT is((SELECT count(*) FROM um_my_sessions() WHERE current AND assurance_level = 1), 1::bigint, 'um_my_sessions shows the level');
COMMIT;
RESET ROLE;

DROP OWNED BY regress_um_mfa2_app, regress_um_mfa2_backend;
DROP ROLE regress_um_mfa2_app, regress_um_mfa2_backend;
SELECT * FROM finish();
