-- Issue 17, item 4: sessions and devices.  What a session records (method,
-- client, last use, assurance level), its absolute and idle lifetimes with
-- the strictest organization winning, um_my_sessions, um_end_session,
-- um_end_other_sessions, um_refresh_session.  Attacked by another user
-- guessing session ids, an Admin ending a Root's session, an impersonator,
-- a replayed refresh token, and bad client data.  Commits: um_begin holds
-- for one transaction, and last use is recorded in the caller's.
\ir fixture.psql
\set QUIET 1
SELECT plan(47);

SET um.password_hash_cost = 4;
CREATE ROLE regress_um_sess_app NOLOGIN;
GRANT USAGE ON SCHEMA public TO regress_um_sess_app;
UPDATE um.users SET email_verified_at = now();
SELECT count(um_set_password(id, 'password-of-' || split_part(email, '@', 1), false)) AS n FROM um.users \gset
SELECT pg_temp.usr('ada') AS ada, pg_temp.usr('bob') AS bob, pg_temp.usr('carol') AS carol,
       pg_temp.usr('dave') AS dave, pg_temp.org('acme') AS acme, pg_temp.org('globex') AS globex \gset
SELECT um_create_user('erin@example.com', 'Erin') AS erin \gset
UPDATE um.users SET email_verified_at = now() WHERE id = :erin;
SELECT um_set_password(:erin, 'password-of-erin', false);
SELECT um_add_member(:acme, :erin) AS x \gset
CREATE FUNCTION pg_temp.sid(text) RETURNS bigint LANGUAGE sql SECURITY DEFINER
  AS $$ SELECT id FROM um.sessions WHERE token_hash = sha256(convert_to($1, 'UTF8')) $$;

-- ---------------------------------------------------------------------------
-- What a session records
SET ROLE regress_um_sess_app;
BEGIN;
SET LOCAL um.client_addr = '203.0.113.7';
SET LOCAL um.client_user_agent = 'Mozilla/5.0 (test)';
SELECT um_login('erin@example.com', 'password-of-erin') AS e1 \gset
COMMIT;
RESET ROLE;
SELECT is((SELECT (method, client_addr, user_agent, assurance_level,
                    (SELECT a.last_seen_at = s.created_at FROM um.session_activity a WHERE a.session_id = s.id))::text FROM um.sessions s WHERE id = pg_temp.sid(:'e1')),
          '(password,203.0.113.7,"Mozilla/5.0 (test)",1,t)', 'a login records its method, the client the backend names, level 1');
SELECT um_login('erin@example.com', 'password-of-erin') AS e2 \gset
SELECT is((SELECT (client_addr IS NULL AND user_agent IS NULL) FROM um.sessions WHERE id = pg_temp.sid(:'e2')), true,
          'SET LOCAL: the next login knows nothing of the last one''s client');
SELECT count(*) AS sessions_before FROM um.sessions \gset
SET ROLE regress_um_sess_app;
BEGIN;
SET LOCAL um.client_addr = 'not-an-address';
SELECT throws_ok($$ SELECT um_login('erin@example.com', 'password-of-erin') $$, 'UM009', NULL, 'a client address that is none is refused');
ROLLBACK;
RESET ROLE;
SELECT is((SELECT count(*) FROM um.sessions), :sessions_before::bigint, 'and neither left a session');
SELECT um_reset_password_and_login((SELECT token FROM um_request_password_reset('dave@example.com')), 'dave-new-password') AS d1 \gset
SELECT is((SELECT method FROM um.sessions WHERE id = pg_temp.sid(:'d1')), 'reset', 'a reset''s session says so');
BEGIN;
SET LOCAL um.client_user_agent = 'A';
SELECT set_config('um.client_user_agent', repeat('a', 2000), true) AS x \gset
SELECT um_login('dave@example.com', 'dave-new-password') AS d2 \gset
COMMIT;
SELECT is((SELECT length(user_agent) FROM um.sessions WHERE id = pg_temp.sid(:'d2')), 512, 'a long user agent is cut at 512 characters');

-- ---------------------------------------------------------------------------
-- um_my_sessions
SELECT throws_ok($$ SELECT * FROM um_my_sessions() $$, 'UM072', NULL, 'with nobody acting there are no own sessions');
SET ROLE regress_um_sess_app;
BEGIN;
SELECT um_begin(:'e1') AS b \gset
SELECT is(array_agg(session_id ORDER BY session_id), ARRAY[pg_temp.sid(:'e1'), pg_temp.sid(:'e2')], 'erin sees her two sessions, no one else''s')
  FROM um_my_sessions();
SELECT is((SELECT session_id FROM um_my_sessions() WHERE current), pg_temp.sid(:'e1'), 'the one of this request is marked current');
SELECT is((SELECT host(client_addr) || ' ' || user_agent FROM um_my_sessions() WHERE current), '203.0.113.7 Mozilla/5.0 (test)',
          'with its client');
COMMIT;
RESET ROLE;
BEGIN;
SELECT um_act_as(:carol) AS a \gset
SELECT um_impersonate(:erin) AS i \gset
SELECT throws_ok($$ SELECT * FROM um_my_sessions() $$, 'UM071', NULL, 'an impersonator cannot list where the user signs in');
SELECT throws_ok($$ SELECT um_end_other_sessions() $$, 'UM071', NULL, 'nor end the user''s sessions');
ROLLBACK;

-- ---------------------------------------------------------------------------
-- Last use, coarsely
UPDATE um.sessions SET created_at = now() - interval '10 minutes' WHERE id = pg_temp.sid(:'e2');
UPDATE um.session_activity SET last_seen_at = now() - interval '10 minutes' WHERE session_id = pg_temp.sid(:'e2');
SET ROLE regress_um_sess_app;
BEGIN READ ONLY;
SELECT um_begin(:'e2') AS b \gset
COMMIT;
RESET ROLE;
SELECT ok((SELECT last_seen_at < now() - interval '9 minutes' FROM um.session_activity WHERE session_id = pg_temp.sid(:'e2')), 'a read-only transaction writes nothing');
SET ROLE regress_um_sess_app;
BEGIN;
SELECT um_begin(:'e2') AS b \gset
COMMIT;
RESET ROLE;
SELECT ok((SELECT last_seen_at > now() - interval '1 minute' FROM um.session_activity WHERE session_id = pg_temp.sid(:'e2')),
          'a use five minutes after the last is recorded');
SELECT last_seen_at AS seen1 FROM um.session_activity WHERE session_id = pg_temp.sid(:'e2') \gset
SET ROLE regress_um_sess_app;
BEGIN;
SELECT um_begin(:'e2') AS b \gset
COMMIT;
RESET ROLE;
SELECT is((SELECT last_seen_at FROM um.session_activity WHERE session_id = pg_temp.sid(:'e2')), :'seen1'::timestamptz,
          'a use right after it is not: never a write per request');

-- ---------------------------------------------------------------------------
-- Idle and absolute lifetimes, the strictest organization winning
SET um.session_idle_timeout = '1h';
SELECT um_login('carol@example.com', 'password-of-carol') AS c1 \gset
SELECT is((SELECT idle_timeout FROM um.sessions WHERE id = pg_temp.sid(:'c1')), 3600, 'um.session_idle_timeout applies to new sessions');
RESET um.session_idle_timeout;
UPDATE um.sessions SET created_at = now() - interval '2 hours' WHERE id = pg_temp.sid(:'c1');
UPDATE um.session_activity SET last_seen_at = now() - interval '61 minutes' WHERE session_id = pg_temp.sid(:'c1');
SET ROLE regress_um_sess_app;
SELECT throws_ok(format('SELECT um_begin(%L)', :'c1'), 'UM067', NULL, 'a session unused past its idle timeout ends');
SELECT throws_ok($$ SET um.session_idle_timeout = '30d' $$, '42501', NULL, 'the application role cannot change the setting');
RESET ROLE;
SELECT um_login('carol@example.com', 'password-of-carol') AS c2 \gset
SELECT is((SELECT idle_timeout FROM um.sessions WHERE id = pg_temp.sid(:'c2')), NULL, 'off by default');
SELECT pg_temp.counts() AS before \gset
BEGIN;
SELECT um_act_as(:ada) AS a \gset
SELECT throws_ok(format('SELECT um_set_org_setting(%s, %L, %L::jsonb)', :acme, 'session_idle_timeout', '"10 seconds"'), 'UM009', NULL,
                 'an organization''s limit under a minute is refused');
SELECT throws_ok(format('SELECT um_set_org_setting(%s, %L, %L::jsonb)', :acme, 'session_lifetime', '"soon"'), 'UM009', NULL,
                 'so is one that is no duration');
SELECT lives_ok(format('SELECT um_set_org_setting(%s, %L, %L::jsonb)', :acme, 'session_idle_timeout', '"15 minutes"'),
                'ada, Root of acme, sets a 15-minute idle timeout');
SELECT lives_ok(format('SELECT um_set_org_setting(%s, %L, %L::jsonb)', :acme, 'session_lifetime', '28800'),
                'and an 8-hour lifetime (seconds)');
COMMIT;
SELECT is((SELECT (idle_timeout, expires_at <= created_at + interval '8 hours')::text FROM um.sessions WHERE id = pg_temp.sid(:'c2')),
          '(900,t)', 'carol''s live session follows the stricter organization at once');
SELECT is((SELECT (idle_timeout, expires_at > created_at + interval '8 hours')::text FROM um.sessions WHERE id = pg_temp.sid(:'d2')),
          '(900,f)', 'so does dave''s (acme is the stricter of his two)');
SELECT um_login('bob@example.com', 'password-of-bob') AS b1 \gset
SELECT is((SELECT (idle_timeout IS NULL, expires_at > created_at + interval '11 hours')::text FROM um.sessions WHERE id = pg_temp.sid(:'b1')),
          '(t,t)', 'bob, in globex only, keeps the defaults');
SELECT um_login('dave@example.com', 'dave-new-password') AS d3 \gset
SELECT is((SELECT (idle_timeout, round(extract(epoch FROM expires_at - created_at)))::text FROM um.sessions WHERE id = pg_temp.sid(:'d3')),
          '(900,28800)', 'a new session of dave''s gets acme''s limits');

-- ---------------------------------------------------------------------------
-- Ending sessions
SET ROLE regress_um_sess_app;
BEGIN;
SELECT um_begin(:'b1') AS b \gset
SELECT throws_ok(format('SELECT um_end_session(%s)', pg_temp.sid(:'e2')), 'UM070', 'permission denied to end session ' || pg_temp.sid(:'e2'),
                 'bob cannot end erin''s session (no user:suspend in acme) ...');
SELECT throws_ok('SELECT um_end_session(987654)', 'UM070', 'permission denied to end session 987654',
                 '... and an unknown id gets the same answer: ids tell nothing');
COMMIT;
BEGIN;
SELECT um_begin(:'d3') AS b \gset
SELECT throws_ok(format('SELECT um_end_session(%s)', pg_temp.sid(:'e2')), 'UM070', NULL, 'nor can dave, a Member');
COMMIT;
RESET ROLE;
SELECT um_login('ada@example.com', 'password-of-ada') AS a1 \gset
BEGIN;
SELECT um_act_as(:carol) AS a \gset
SELECT is(um_end_session(pg_temp.sid(:'e2')), true, 'carol, Admin of acme (user:suspend), ends erin''s session');
SELECT throws_ok(format('SELECT um_end_session(%s)', pg_temp.sid(:'a1')), 'UM070', NULL, 'not ada''s: a Root''s only by a Root');
COMMIT;
SELECT is((SELECT revoked_reason FROM um.sessions WHERE id = pg_temp.sid(:'e2')), 'ended by an administrator', 'recorded as such');
SET ROLE regress_um_sess_app;
SELECT throws_ok(format('SELECT um_begin(%L)', :'e2'), 'UM067', NULL, 'and the session is over');
BEGIN;
SELECT um_begin(:'e1') AS b \gset
SELECT is(um_end_session(pg_temp.sid(:'e2')), false, 'ending it again says it had ended');
COMMIT;
RESET ROLE;
SELECT um_login('erin@example.com', 'password-of-erin') AS e3 \gset
SELECT um_login('erin@example.com', 'password-of-erin') AS e4 \gset
SET ROLE regress_um_sess_app;
BEGIN;
SELECT um_begin(:'e1') AS b \gset
SELECT is(um_end_other_sessions(), 2, 'erin ends her other sessions');
SELECT is((SELECT count(*) FROM um_my_sessions()), 1::bigint, 'this one stays');
COMMIT;
BEGIN;
SELECT um_begin(:'e1') AS b \gset
SELECT is(um_end_session(pg_temp.sid(:'e1')), true, 'and she ends it herself');
COMMIT;
RESET ROLE;

-- ---------------------------------------------------------------------------
-- Refreshing: the token rotates, a replayed one ends the session
SELECT um_login('erin@example.com', 'password-of-erin') AS r1 \gset
SELECT expires_at AS r1_expires FROM um.sessions WHERE id = pg_temp.sid(:'r1') \gset
SET ROLE regress_um_sess_app;
SELECT um_refresh_session(:'r1') AS r2 \gset
SELECT isnt(:'r2'::text, :'r1'::text, 'a refresh gives a new token');
BEGIN;
SELECT is(um_begin(:'r2'), :erin::bigint, 'which works');
COMMIT;
SELECT throws_ok(format('SELECT um_begin(%L)', :'r1'), 'UM067', NULL, 'the old one does not');
RESET ROLE;
SELECT is((SELECT expires_at FROM um.sessions WHERE token_hash = sha256(convert_to(:'r2', 'UTF8'))), :'r1_expires'::timestamptz,
          'the absolute end stays where it was');
SET ROLE regress_um_sess_app;
SELECT is(um_refresh_session(:'r1'), NULL::text, 'the old token presented again (two hold it) gets no new one ...');
SELECT throws_ok(format('SELECT um_begin(%L)', :'r2'), 'UM067', NULL, '... and ends the session for whoever holds the new one');
SELECT throws_ok(format('SELECT um_refresh_session(%L)', :'r2'), 'UM067', NULL, 'an ended session is not refreshed');
SELECT throws_ok($$ SELECT um_refresh_session('um_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA') $$, 'UM067', NULL, 'nor an unknown token');
RESET ROLE;
SELECT is((SELECT count(*) FROM um.audit_events WHERE action = 'user.session_token_reused' AND target_id = :erin), 1::bigint,
          'the replay is audited');

DROP OWNED BY regress_um_sess_app;
DROP ROLE regress_um_sess_app;
SELECT * FROM finish();
