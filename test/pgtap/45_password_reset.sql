-- Issue 17, item 1: a forgotten password.  um_request_password_reset for the
-- backend role, um_reset_password / um_reset_password_and_login for whoever
-- holds the secret.  Attacked as the application role (no grant, enumeration
-- by the answer, guessing codes inside transactions it rolls back, reading
-- the secrets back), with someone acting, and with stale or replayed secrets.
-- Commits like 85_identity.sql: wrong codes are counted by the audit
-- writer, which sees only committed data.  Races: test/specs/password_reset_races.spec.
\ir fixture.psql
\set QUIET 1
SELECT plan(71);

SET um.password_hash_cost = 4;        -- fast hashes for the test (superuser only)
SET um.login_max_failures = 3;
CREATE ROLE regress_um_reset_app NOLOGIN;
CREATE ROLE regress_um_reset_backend NOLOGIN;
GRANT USAGE ON SCHEMA public TO regress_um_reset_app, regress_um_reset_backend;
GRANT EXECUTE ON FUNCTION um_request_password_reset(text), um_act_as(bigint) TO regress_um_reset_backend;
UPDATE um.users SET email_verified_at = now();
SELECT count(um_set_password(id, 'password-of-' || split_part(email, '@', 1), false)) AS n FROM um.users \gset
SELECT pg_temp.usr('ada') AS ada, pg_temp.usr('bob') AS bob, pg_temp.usr('carol') AS carol,
       pg_temp.usr('dave') AS dave, pg_temp.org('acme') AS acme, pg_temp.org('globex') AS globex \gset
CREATE FUNCTION pg_temp.failures(bigint) RETURNS integer LANGUAGE sql
  AS $$ SELECT failed_login_count FROM um.users WHERE id = $1 $$;
CREATE FUNCTION pg_temp.pending(bigint) RETURNS bigint LANGUAGE sql
  AS $$ SELECT count(*) FROM um.password_resets WHERE user_id = $1 $$;
-- addresses that cannot log in with a password
SELECT um_create_user('nora@example.com', 'Nora', allow_login => false) AS nora \gset
UPDATE um.users SET email_verified_at = now() WHERE id = :nora;
-- uma is never verified
SELECT um_create_user('uma@example.com', 'Uma') AS uma \gset
SELECT um_create_user('sue@example.com', 'Sue') AS sue \gset
UPDATE um.users SET email_verified_at = now() WHERE id = :sue;
SELECT um_set_password(:sue, 'password-of-sue', false);
SELECT um_suspend_user(:sue);
SELECT um_create_user('sso@example.com', 'Sso') AS sso \gset
UPDATE um.users SET email_verified_at = now() WHERE id = :sso;
SELECT um_create_organization('ssocorp', 'SSO Corp', :sso) AS ssocorp \gset
INSERT INTO um.identity_providers (org_id, name, protocol, issuer) VALUES (:ssocorp, 'SSO', 'oidc', 'https://sso.example'),
  (:globex, 'Globex SSO', 'oidc', 'https://sso.globex.example');
UPDATE um.organizations SET password_login_disabled = true WHERE id = :ssocorp;

-- ---------------------------------------------------------------------------
-- Asking for a reset
SET ROLE regress_um_reset_app;
SELECT throws_ok($$ SELECT um_request_password_reset('dave@example.com') $$, '42501', NULL,
                 'a role the DBA did not grant it cannot ask for a reset (whoever holds the secret takes the account)');
RESET ROLE;
SET ROLE regress_um_reset_backend;
BEGIN;
SELECT um_act_as(:dave) AS a \gset
SELECT throws_ok($$ SELECT um_request_password_reset('dave@example.com') $$, 'UM058', NULL,
                 'not with someone acting: a logged-in user must never see a mailbox secret');
COMMIT;
RESET ROLE;
SELECT is(pg_temp.pending(:dave), 0::bigint, 'and nothing was issued');
SET ROLE regress_um_reset_backend;
SELECT address AS dave_addr, token AS dave_token, code AS dave_code, expires_at AS dave_exp
  FROM um_request_password_reset('  DAVE@Example.com ') \gset
RESET ROLE;
SELECT is(:'dave_addr'::text, 'dave@example.com', 'the secrets go to the address as registered');
SELECT matches(:'dave_token'::text, '^um_[A-Za-z0-9_-]{43}$', 'a link token: um_ and 256 random bits');
SELECT matches(:'dave_code'::text, '^[0-9]{8}$', 'and an 8-digit code for mail scanners that follow links');
SELECT ok(abs(extract(epoch FROM :'dave_exp'::timestamptz - now()) - 1800) < 60, 'both expire after 30 minutes by default');
SELECT is((SELECT token_hash FROM um.password_resets WHERE user_id = :dave), sha256(convert_to(:'dave_token', 'UTF8')),
          'the link token is stored as its SHA-256');
SELECT is((SELECT count(*) FROM um.password_resets r WHERE position(:'dave_token' IN r::text) > 0
                                                         OR position(:'dave_code' IN r::text) > 0), 0::bigint,
          'neither secret is stored itself');
SET ROLE regress_um_reset_app;
SELECT throws_ok($$ SELECT * FROM um.password_resets $$, '42501', NULL, 'the application role cannot read the table');
RESET ROLE;

-- the same answer for every address that must not get one
SET ROLE regress_um_reset_backend;
CREATE TEMP TABLE shapes AS
  SELECT a.who, r.address, r.token IS NULL AS no_token, r.code IS NULL AS no_code,
         abs(extract(epoch FROM r.expires_at - now()) - 1800) < 60 AS expiry
    FROM (VALUES ('dave again', 'dave@example.com'), ('unknown', 'nobody@example.com'), ('suspended', 'sue@example.com'),
                 ('notification-only', 'nora@example.com'), ('unverified', 'uma@example.com'),
                 ('single sign-on only', 'sso@example.com'), ('not even an address', 'nonsense')) AS a(who, email),
         LATERAL um_request_password_reset(a.email) r;
RESET ROLE;
SELECT is((SELECT string_agg(who, ', ' ORDER BY who) FROM shapes WHERE NOT (no_token AND no_code AND expiry)), NULL,
          'an unknown, suspended, notification-only, unverified or SSO-only address, and one asked again at once, get a row with nothing to mail');
SELECT is((SELECT string_agg(who, ', ' ORDER BY who) FROM shapes WHERE address <> CASE who WHEN 'dave again' THEN 'dave@example.com'
                                                                                         WHEN 'unknown' THEN 'nobody@example.com'
                                                                                         WHEN 'suspended' THEN 'sue@example.com'
                                                                                         WHEN 'notification-only' THEN 'nora@example.com'
                                                                                         WHEN 'unverified' THEN 'uma@example.com'
                                                                                         WHEN 'single sign-on only' THEN 'sso@example.com'
                                                                                         ELSE 'nonsense' END), NULL,
          'shaped like a real answer: the address given, and an expiry');
SELECT is((SELECT count(*) FROM um.password_resets), 1::bigint, 'only dave''s one request is stored');
SELECT is((SELECT token_hash FROM um.password_resets WHERE user_id = :dave), sha256(convert_to(:'dave_token', 'UTF8')),
          'asked again within um.password_reset_interval, the earlier mail stays valid');
SELECT is((SELECT string_agg(details->>'result', ', ' ORDER BY id) FROM um.audit_events WHERE action = 'user.request_password_reset'),
          'issued, asked again too soon, unknown address, suspended, login not allowed, email not verified, password login disabled, unknown address',
          'the audit trail tells the cases apart');

-- ---------------------------------------------------------------------------
-- Redeeming the link
SET ROLE regress_um_reset_app;
SELECT um_login('dave@example.com', 'password-of-dave') AS dave_session \gset
SELECT throws_ok(format('SELECT um_reset_password(%L, %L)', :'dave_token', 'short'), 'UM068', NULL,
                 'a password that is not acceptable is refused ...');
RESET ROLE;
SELECT is(pg_temp.pending(:dave), 1::bigint, '... and the secret stays valid');
SET ROLE regress_um_reset_app;
SELECT throws_ok(format('SELECT um_reset_password(%L, NULL)', :'dave_token'), 'UM009', NULL, 'a new password is required');
SELECT throws_ok(format('SELECT um_reset_password(%L, %L)', 'um_' || repeat('A', 43), 'dave-new-password'), 'UM053',
                 'the password reset secret is not valid', 'an unknown token is refused (UM053)');
SELECT is(um_reset_password(:'dave_token', 'dave-new-password'), :dave::bigint,
          'anyone holding the link''s token sets the password (no grant needed)');
SELECT throws_ok(format('SELECT um_reset_password(%L, %L)', :'dave_token', 'dave-other-password'), 'UM053', NULL,
                 'the token is single use');
SELECT throws_ok(format('SELECT um_begin(%L)', :'dave_session'), 'UM067', NULL, 'every session of the user ended');
SELECT throws_ok($$ SELECT um_login('dave@example.com', 'password-of-dave') $$, 'UM060', NULL, 'the old password is gone');
SELECT isnt(um_login('dave@example.com', 'dave-new-password'), NULL, 'the new one logs in');
RESET ROLE;
SELECT is((SELECT revoked_reason FROM um.sessions WHERE token_hash = sha256(convert_to(:'dave_session', 'UTF8'))),
          'ended by a password change', 'the session''s end says why');
SELECT is((SELECT details->>'by' FROM um.audit_events WHERE action = 'user.reset_password' AND target_id = :dave AND outcome = 'ok'),
          'link', 'audited, with how');

-- ---------------------------------------------------------------------------
-- Codes: only with their address, counted where no ROLLBACK forgets them
SET um.password_reset_interval = 0;
SET ROLE regress_um_reset_backend;
SELECT token AS bob_token, code AS bob_code FROM um_request_password_reset('bob@example.com') \gset
SELECT token AS carol_token, code AS carol_code FROM um_request_password_reset('carol@example.com') \gset
RESET ROLE;
SET ROLE regress_um_reset_app;
SELECT throws_ok(format('SELECT um_reset_password(%L, %L)', :'bob_code', 'bob-new-password'), 'UM009',
                 'a reset code needs the address it was sent to', 'a code alone is refused: it names no account');
SELECT throws_ok(format('SELECT um_reset_password(%L, %L, %L)', :'carol_code', 'bob-new-password', 'bob@example.com'), 'UM053', NULL,
                 'carol''s code does not reset bob''s password');
BEGIN;
SELECT throws_ok(format('SELECT um_reset_password(%L, %L, %L)', lpad(((:'bob_code'::bigint + 1) % 100000000)::text, 8, '0'),
                        'bob-new-password', 'bob@example.com'), 'UM053', NULL, 'a wrong code is refused');
ROLLBACK;
RESET ROLE;
SELECT is(pg_temp.failures(:bob), 2, 'both wrong codes counted as failed logins, the second despite its ROLLBACK');
SET ROLE regress_um_reset_app;
SELECT throws_ok(format('SELECT um_reset_password(%L, %L, %L)', :'bob_code', 'bob-new-password', 'nobody@example.com'), 'UM053', NULL,
                 'a code with an unknown address gets the same error');
SELECT is(um_reset_password(:'bob_code', 'bob-new-password', ' BOB@example.com'), :bob::bigint, 'the right code with its address works');
RESET ROLE;
SELECT is(pg_temp.failures(:bob), 0, 'and clears the count');
SELECT is((SELECT details->>'by' FROM um.audit_events WHERE action = 'user.reset_password' AND target_id = :bob AND outcome = 'ok'),
          'code', 'audited as a reset by code');
SELECT is(pg_temp.pending(:carol), 1::bigint, 'carol''s request is untouched by the guesses at bob''s');

-- a code guessed past its attempt limit
SET ROLE regress_um_reset_backend;
SELECT token AS ada_token, code AS ada_code FROM um_request_password_reset('ada@example.com') \gset
RESET ROLE;
SET ROLE regress_um_reset_app;
DO $$
BEGIN
  FOR g IN 1..3 LOOP
    BEGIN
      PERFORM um_reset_password(lpad(g::text, 8, '0'), 'ada-new-password', 'ada@example.com');
    EXCEPTION WHEN SQLSTATE 'UM053' THEN NULL;
    END;
  END LOOP;
END
$$;
RESET ROLE;
SELECT ok((SELECT locked_until > now() FROM um.users WHERE id = :ada), 'three wrong codes lock the account');
SET ROLE regress_um_reset_app;
SELECT throws_ok(format('SELECT um_reset_password(%L, %L, %L)', :'ada_code', 'ada-new-password', 'ada@example.com'), 'UM053', NULL,
                 'then even the right code is refused, with the error of a wrong one');
SELECT is(um_reset_password_and_login(:'ada_token', 'ada-new-password') IS NOT NULL, true,
          'the link still works: 256 random bits need no attempt limit');
RESET ROLE;
SELECT is((SELECT (failed_login_count, locked_until IS NULL)::text FROM um.users WHERE id = :ada), '(0,t)',
          'and the reset clears the lockout');

-- the victim's own logins reset the account's counter, not the request's
SET ROLE regress_um_reset_backend;
SELECT token AS bob2_token, code AS bob2_code FROM um_request_password_reset('bob@example.com') \gset
RESET ROLE;
CREATE FUNCTION pg_temp.guess_bob(integer) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM um_reset_password(lpad((($1 + current_setting('um_test.bob_code')::bigint) % 100000000)::text, 8, '0'),
                            'bob-guessed-password', 'bob@example.com');
EXCEPTION WHEN SQLSTATE 'UM053' THEN NULL;
END
$$;
GRANT EXECUTE ON FUNCTION pg_temp.guess_bob(integer) TO regress_um_reset_app;
SELECT set_config('um_test.bob_code', :'bob2_code', false) AS x \gset
SET ROLE regress_um_reset_app;
SELECT pg_temp.guess_bob(1), pg_temp.guess_bob(2);
SELECT ok(um_login('bob@example.com', 'bob-new-password') IS NOT NULL, 'bob logs in between the guesses ...');
SELECT pg_temp.guess_bob(3);
RESET ROLE;
SELECT is((pg_temp.failures(:bob), (SELECT locked_until FROM um.users WHERE id = :bob) IS NULL,
           (SELECT code_attempts FROM um.password_resets WHERE user_id = :bob))::text, '(1,t,3)',
          '... which resets the account''s count but not the request''s');
SET ROLE regress_um_reset_app;
SELECT throws_ok(format('SELECT um_reset_password(%L, %L, %L)', :'bob2_code', 'bob-guessed-password', 'bob@example.com'), 'UM053', NULL,
                 'so after three wrong codes the right one is spent, the account unlocked');
RESET ROLE;
SELECT is(pg_temp.pending(:bob), 1::bigint, 'the request stays, for its link');

-- redeemed only at the default isolation level: the attempt's writer commits on its own
SET ROLE regress_um_reset_app;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT throws_ok(format('SELECT um_reset_password(%L, %L)', :'bob2_token', 'bob-rr-password'), 'UM066',
                 'a password reset runs in a READ COMMITTED transaction', 'a reset in REPEATABLE READ is refused');
ROLLBACK;
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT throws_ok(format('SELECT um_reset_password(%L, %L, %L)', :'bob2_code', 'bob-rr-password', 'bob@example.com'), 'UM066', NULL,
                 'as is one in SERIALIZABLE');
ROLLBACK;
RESET ROLE;
SELECT is((pg_temp.pending(:bob), (SELECT code_attempts FROM um.password_resets WHERE user_id = :bob))::text, '(1,4)',
          'and neither changed or counted anything (the spent code''s try made it 4)');

-- the expiry is the clock's, not the transaction's start
BEGIN;
UPDATE um.password_resets SET expires_at = clock_timestamp() + interval '0.5 seconds' WHERE user_id = :bob;
SELECT pg_sleep(0.8);
SET LOCAL ROLE regress_um_reset_app;
SELECT throws_ok(format('SELECT um_reset_password(%L, %L)', :'bob2_token', 'bob-late-password'), 'UM053', NULL,
                 'a link that expired while the transaction ran is refused');
ROLLBACK;

-- housekeeping: a request takes a few expired ones of anybody with it
UPDATE um.password_resets SET created_at = now() - interval '2 hours', expires_at = now() - interval '1 hour' WHERE user_id = :bob;
SET ROLE regress_um_reset_backend;
SELECT count(*) AS x FROM um_request_password_reset('nobody-at-all@example.com') \gset
RESET ROLE;
SELECT is(pg_temp.pending(:bob), 0::bigint, 'an expired request is deleted by the next request of anybody');
SELECT ok(NOT EXISTS (SELECT 1 FROM pg_extension e WHERE e.extname = 'um' AND 'um.password_resets'::regclass = ANY (e.extconfig)),
          'pg_dump leaves the requests out: no dump carries a code''s hash');

-- ---------------------------------------------------------------------------
-- Expiry, replacement, and every other change that voids a reset
SET ROLE regress_um_reset_backend;
SELECT token AS t1 FROM um_request_password_reset('carol@example.com') \gset
SELECT token AS t2 FROM um_request_password_reset('carol@example.com') \gset
RESET ROLE;
SET ROLE regress_um_reset_app;
SELECT throws_ok(format('SELECT um_reset_password(%L, %L)', :'carol_token', 'carol-new-password'), 'UM053', NULL,
                 'a new request replaces the last: the first mail''s token ...');
SELECT throws_ok(format('SELECT um_reset_password(%L, %L, %L)', :'carol_code', 'carol-new-password', 'carol@example.com'), 'UM053', NULL,
                 '... and code stop working');
SELECT throws_ok(format('SELECT um_reset_password(%L, %L)', :'t1', 'carol-new-password'), 'UM053', NULL,
                 'as does every earlier one');
RESET ROLE;
UPDATE um.password_resets SET created_at = now() - interval '2 hours', expires_at = now() - interval '1 hour' WHERE user_id = :carol;
SET ROLE regress_um_reset_app;
SELECT throws_ok(format('SELECT um_reset_password(%L, %L)', :'t2', 'carol-new-password'), 'UM053', NULL, 'an expired one is refused');
RESET ROLE;
SET um.password_reset_lifetime = '5min';
SET ROLE regress_um_reset_backend;
SELECT expires_at AS short_exp FROM um_request_password_reset('carol@example.com') \gset
RESET ROLE;
RESET um.password_reset_lifetime;
SELECT ok(abs(extract(epoch FROM :'short_exp'::timestamptz - now()) - 300) < 60, 'the lifetime is a setting (um.password_reset_lifetime)');
SET ROLE regress_um_reset_app;
SELECT throws_ok($$ SET um.password_reset_lifetime = '7d' $$, '42501', NULL, 'which the application role cannot change');
SELECT throws_ok($$ SET um.password_reset_interval = 0 $$, '42501', NULL, 'nor the interval');
RESET ROLE;
SELECT um_change_password('carol@example.com', 'password-of-carol', 'carol-changed-password') AS c \gset
SELECT is(pg_temp.pending(:carol), 0::bigint, 'changing the password (um_change_password) voids an outstanding reset');
SET ROLE regress_um_reset_backend;
SELECT token AS t3 FROM um_request_password_reset('carol@example.com') \gset
RESET ROLE;
SELECT um_set_password(:carol, 'carol-set-password', false);
SELECT is(pg_temp.pending(:carol), 0::bigint, 'so does um_set_password');
SET ROLE regress_um_reset_app;
SELECT throws_ok(format('SELECT um_reset_password(%L, %L)', :'t3', 'carol-new-password'), 'UM053', NULL, 'its token is dead');
RESET ROLE;
SET ROLE regress_um_reset_backend;
SELECT token AS t4 FROM um_request_password_reset('carol@example.com') \gset
RESET ROLE;
SELECT um_suspend_user(:carol);
SELECT is(pg_temp.pending(:carol), 0::bigint, 'a suspension voids it');
SELECT um_reactivate_user(:carol);
SET ROLE regress_um_reset_backend;
SELECT token AS t5 FROM um_request_password_reset('carol@example.com') \gset
RESET ROLE;
SELECT um_disable_login(:carol);
SELECT is(pg_temp.pending(:carol), 0::bigint, 'so does taking the login');
SELECT um_enable_login(:carol);
SET ROLE regress_um_reset_backend;
SELECT token AS t6 FROM um_request_password_reset('carol@example.com') \gset
RESET ROLE;
UPDATE um.users SET email = 'carol2@example.com' WHERE id = :carol;
SELECT is(pg_temp.pending(:carol), 0::bigint, 'and so does a new address');
UPDATE um.users SET email = 'carol@example.com' WHERE id = :carol;
UPDATE um.users SET email_verified_at = now() WHERE id = :carol;
SET ROLE regress_um_reset_backend;
SELECT token AS t7 FROM um_request_password_reset('carol@example.com') \gset
RESET ROLE;
SELECT um_login('carol@example.com', 'carol-set-password') AS c \gset
SELECT is(pg_temp.pending(:carol), 1::bigint, 'logging in with the password does not (the person may have remembered it)');

-- the reset ends the user's other mailbox secrets too
INSERT INTO um.verification_tokens (token_hash, user_id, expires_at) VALUES (sha256('x'::bytea), :carol, now() + interval '1 day');
SET ROLE regress_um_reset_app;
SELECT um_reset_password_and_login(:'t7', 'carol-reset-password') AS carol_session \gset
RESET ROLE;
SELECT is((SELECT count(*) FROM um.verification_tokens WHERE user_id = :carol), 0::bigint,
          'a reset voids the user''s outstanding verification secrets');
SET ROLE regress_um_reset_app;
BEGIN;
SELECT um_begin(:'carol_session') AS b \gset
SELECT is(um_current_user_id(), :carol::bigint, 'um_reset_password_and_login returns a session of the user');
SELECT ok((um_export_my_data() -> 'password_reset') = 'null'::jsonb, 'and no reset is pending any more (um_export_my_data)');
COMMIT;
RESET ROLE;
SET ROLE regress_um_reset_backend;
SELECT token AS t8 FROM um_request_password_reset('carol@example.com') \gset
RESET ROLE;
SET ROLE regress_um_reset_app;
BEGIN;
SELECT um_begin(um_login('carol@example.com', 'carol-reset-password')) AS b \gset
SELECT is((SELECT string_agg(k, ',' ORDER BY k) FROM jsonb_object_keys(um_export_my_data() -> 'password_reset') k),
          'expires_at,requested_at', 'a pending reset is in the export ...');
SELECT is(position(:'t8' IN um_export_my_data()::text), 0, '... without its secret');
COMMIT;
RESET ROLE;

-- a user whose organization comes to require single sign-on after the request
SET ROLE regress_um_reset_backend;
SELECT token AS dave2 FROM um_request_password_reset('dave@example.com') \gset
RESET ROLE;
UPDATE um.organizations SET password_login_disabled = true WHERE id = :globex;
SET ROLE regress_um_reset_app;
SELECT throws_ok(format('SELECT um_reset_password(%L, %L)', :'dave2', 'dave-third-password'), 'UM065', NULL,
                 'a reset is refused where password login is disabled ...');
RESET ROLE;
SELECT is(pg_temp.pending(:dave), 1::bigint, '... and changes nothing');
UPDATE um.organizations SET password_login_disabled = false WHERE id = :globex;
SELECT um_delete_user(:dave);
SELECT is((SELECT count(*) FROM um.password_resets WHERE user_id = :dave), 0::bigint, 'deleting the user deletes the reset');

DROP OWNED BY regress_um_reset_app, regress_um_reset_backend;
DROP ROLE regress_um_reset_app, regress_um_reset_backend;
SELECT * FROM finish();
