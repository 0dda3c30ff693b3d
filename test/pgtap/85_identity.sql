-- Identity: login, sessions, the acting user and impersonation, mostly as an
-- application role that tries to cheat.  Unlike the other suites this one
-- commits (transaction boundaries are what it tests, and refused logins are
-- recorded by a background worker, which sees only committed data); it runs
-- in a database of its own and drops its role at the end.
\ir fixture.psql
\set QUIET 1
SELECT plan(103);

SET um.password_hash_cost = 4;        -- fast hashes for the test (superuser only)
SET um.login_max_failures = 3;
CREATE ROLE regress_um_identity_app NOLOGIN;
CREATE ROLE regress_um_identity_backend NOLOGIN;
GRANT USAGE ON SCHEMA public TO regress_um_identity_app, regress_um_identity_backend;
GRANT EXECUTE ON FUNCTION um_act_as(bigint) TO regress_um_identity_backend;
UPDATE um.users SET email_verified_at = now();
SELECT count(um_set_password(id, 'password-of-' || split_part(email, '@', 1), false)) AS n FROM um.users \gset
SELECT pg_temp.usr('ada') AS ada, pg_temp.usr('bob') AS bob, pg_temp.usr('carol') AS carol,
       pg_temp.usr('dave') AS dave, pg_temp.org('acme') AS acme, pg_temp.org('globex') AS globex \gset
-- audit events of one action and outcome (read as the superuser)
CREATE FUNCTION pg_temp.audits(text, text) RETURNS bigint LANGUAGE sql
  AS $$ SELECT count(*) FROM um.audit_events WHERE action = $1 AND outcome = $2 $$;
CREATE FUNCTION pg_temp.failures(bigint) RETURNS integer LANGUAGE sql
  AS $$ SELECT failed_login_count FROM um.users WHERE id = $1 $$;

-- ---------------------------------------------------------------------------
-- 2. um_login
SET ROLE regress_um_identity_app;
SELECT um_login('dave@example.com', 'password-of-dave') AS dave_token \gset
SELECT um_login('DAVE@example.com ', 'password-of-dave') AS dave_token2 \gset
RESET ROLE;
SELECT matches(:'dave_token'::text, '^um_[A-Za-z0-9_-]{43}$', 'a token is um_ and 43 base64url characters (256 random bits)');
SELECT isnt(:'dave_token'::text, :'dave_token2'::text, 'every login makes a new token (emails match regardless of case and spaces)');
SELECT is((SELECT count(*) FROM um.sessions s WHERE s.token_hash = sha256(convert_to(:'dave_token', 'UTF8'))), 1::bigint,
          'the session stores the token''s SHA-256');
SELECT is((SELECT count(*) FROM um.sessions s WHERE position(:'dave_token' IN s::text) > 0), 0::bigint,
          'and never the token itself');
SELECT is((SELECT string_agg(DISTINCT a.db_role::text, ',') FROM um.audit_events a JOIN um.sessions s ON (a.details->>'session_id')::bigint = s.id
            WHERE s.token_hash IN (sha256(convert_to(:'dave_token', 'UTF8')), sha256(convert_to(:'dave_token2', 'UTF8')))),
          'regress_um_identity_app', 'the login''s audit event names the role that called um_login, not um''s owner');
SELECT ok((SELECT abs(extract(epoch FROM s.expires_at - now()) - 12 * 3600) < 60 FROM um.sessions s
            WHERE s.token_hash = sha256(convert_to(:'dave_token', 'UTF8'))),
          'a session expires after um.session_lifetime (12 hours by default)');
SET um.session_lifetime = '10min';
SELECT um_login('ada@example.com', 'password-of-ada') AS t \gset
SELECT ok((SELECT extract(epoch FROM s.expires_at - now()) BETWEEN 500 AND 700 FROM um.sessions s
            WHERE s.token_hash = sha256(convert_to(:'t', 'UTF8'))),
          'the lifetime is configurable');
RESET um.session_lifetime;
SELECT matches((SELECT password_hash FROM um.users WHERE id = :dave), '^\$2a\$04\$',
               'passwords are stored as bcrypt hashes with the configured cost');

SET ROLE regress_um_identity_app;
SELECT throws_ok($$ SELECT um_login('dave@example.com', 'wrong password') $$, 'UM060', 'invalid email or password',
                 'a wrong password is refused (UM060)');
SELECT throws_ok($$ SELECT um_login('nobody@example.com', 'password-of-dave') $$, 'UM060', 'invalid email or password',
                 'an unknown email gets the very same error: no user enumeration');
SELECT throws_ok($$ SELECT um_login('dave@example.com', NULL) $$, 'UM060', 'invalid email or password', 'a NULL password too');
SELECT throws_ok($$ SELECT um_login('dave@example.com', 'password-of-dave' || repeat('x', 80)) $$, 'UM060', NULL,
                 'a password longer than bcrypt reads is refused, not cut to a match');
SELECT throws_ok($$ SELECT um_set_password(1, 'whatever-password') $$, '42501', NULL,
                 'an application role cannot set passwords');
SELECT throws_ok($$ SELECT password_hash FROM um.users $$, '42501', NULL, 'nor read password hashes');
SELECT throws_ok($$ SELECT token_hash FROM um.sessions $$, '42501', NULL, 'nor session token hashes');
RESET ROLE;
SELECT is(pg_temp.failures(:dave), 3 - 3, 'three failures reached the limit of 3 ...');
SELECT ok((SELECT locked_until > now() FROM um.users WHERE id = :dave), '... and locked the account');
SET ROLE regress_um_identity_app;
SELECT throws_ok($$ SELECT um_login('dave@example.com', 'password-of-dave') $$, 'UM060', 'invalid email or password',
                 'a locked account refuses even the right password, with the very error of a wrong one (no enumeration)');
RESET ROLE;
SELECT is(pg_temp.audits('user.login', 'denied'), 5::bigint,
          'every refused login is in the audit trail, although each call failed');
SELECT is((SELECT details->>'reason' FROM um.audit_events WHERE action = 'user.login' AND outcome = 'denied' AND target_id IS NULL),
          'unknown email', 'an unknown email is audited without the address (no personal data in the trail)');

-- lockout cannot be dodged by rolling back
UPDATE um.users SET locked_until = NULL, failed_login_count = 0 WHERE id = :dave;
SET ROLE regress_um_identity_app;
BEGIN;
\set ON_ERROR_STOP 0
SELECT um_login('dave@example.com', 'guess 1');      -- fails with UM060
\set ON_ERROR_STOP 1
ROLLBACK;
RESET ROLE;
SELECT is(pg_temp.failures(:dave), 1, 'a guess inside a transaction is still counted after ROLLBACK');
SET ROLE regress_um_identity_app;
SELECT lives_ok($$ SELECT um_login('dave@example.com', 'password-of-dave') $$, 'the right password before the limit logs in');
BEGIN;
SELECT lives_ok($$ SELECT um_login('ada@example.com', 'password-of-ada'), um_login('ada@example.com', 'password-of-ada') $$,
                'two logins in one transaction (the audit writer does not wait for its caller''s locks)');
COMMIT;
RESET ROLE;
SELECT is(pg_temp.failures(:dave), 0, 'and a successful login resets the count');
SELECT cmp_ok(pg_temp.audits('user.login', 'ok'), '>=', 4::bigint, 'successful logins are audited too');

-- refusals for the right password: each with its own SQLSTATE
UPDATE um.users SET status = 'suspended' WHERE id = :dave;
SET ROLE regress_um_identity_app;
SELECT throws_ok($$ SELECT um_login('dave@example.com', 'password-of-dave') $$, 'UM061', 'the user is suspended', 'a suspended user (UM061)');
RESET ROLE;
UPDATE um.users SET status = 'active', allow_login = false WHERE id = :dave;
SET ROLE regress_um_identity_app;
SELECT throws_ok($$ SELECT um_login('dave@example.com', 'password-of-dave') $$, 'UM062', 'this user may not log in', 'a notification-only user (UM062)');
RESET ROLE;
UPDATE um.users SET allow_login = true, email_verified_at = NULL WHERE id = :dave;
SET ROLE regress_um_identity_app;
SELECT throws_ok($$ SELECT um_login('dave@example.com', 'password-of-dave') $$, 'UM063', 'the email address is not verified', 'an unverified email (UM063)');
RESET ROLE;
UPDATE um.users SET email_verified_at = now() WHERE id = :dave;
INSERT INTO um.identity_providers (org_id, name, protocol, issuer) VALUES (:globex, 'Globex SSO', 'oidc', 'https://sso.globex.example');
UPDATE um.organizations SET password_login_disabled = true WHERE id = :globex;
SET ROLE regress_um_identity_app;
SELECT throws_ok($$ SELECT um_login('dave@example.com', 'password-of-dave') $$, 'UM065', NULL,
                 'a member of an organization that turned password login off (UM065)');
RESET ROLE;
UPDATE um.organizations SET password_login_disabled = false WHERE id = :globex;
-- a temporary password, which must be changed
SELECT um_set_password(:dave, 'temporary-password') AS p \gset
SET ROLE regress_um_identity_app;
SELECT throws_ok($$ SELECT um_login('dave@example.com', 'temporary-password') $$, 'UM064', NULL,
                 'a temporary password cannot log in (UM064) ...');
SELECT throws_ok($$ SELECT um_change_password('dave@example.com', 'temporary-password', 'short') $$, 'UM068', NULL,
                 'a new password must be acceptable (UM068)');
SELECT um_change_password('dave@example.com', 'temporary-password', 'password-of-dave') AS dave_token \gset
SELECT matches(:'dave_token'::text, '^um_', '... only the change-password path accepts it, and returns a session');
SELECT throws_ok($$ SELECT um_change_password('dave@example.com', 'temporary-password', 'another-password') $$, 'UM060', NULL,
                 'the old password no longer works');
RESET ROLE;
SELECT is(pg_temp.audits('user.login', 'denied'), 11::bigint, 'each of those refusals was audited');
SELECT is(pg_temp.failures(:dave), 1, 'refusals of the right password do not count as failures; the wrong old password does');

-- ---------------------------------------------------------------------------
-- 1 and 3. um_begin: the acting user of one transaction
SET ROLE regress_um_identity_app;
SELECT is(um_current_user_id(), NULL, 'nobody is acting at first');
BEGIN;
SELECT is(um_begin(:'dave_token'), :dave::bigint, 'um_begin returns the token''s user ...');
SELECT is(um_current_user_id(), :dave::bigint, '... who is now acting');
SELECT is(um_real_user_id(), :dave::bigint, 'and is the real user too');
SELECT ok(um_has_permission('org:read', :acme), 'checks answer for them');
SELECT ok(NOT um_has_permission('member:invite', :acme), 'with their rights only');
COMMIT;
SELECT is(um_current_user_id(), NULL, 'COMMIT forgets the acting user');
BEGIN;
SELECT um_begin(:'dave_token') IS NOT NULL AS began \gset
ROLLBACK;
SELECT is(um_current_user_id(), NULL, 'so does ROLLBACK');
BEGIN;
SELECT um_begin(:'dave_token') IS NOT NULL AS began \gset
\set ON_ERROR_STOP 0
SELECT 1 / 0;
\set ON_ERROR_STOP 1
ROLLBACK;
SELECT is(um_current_user_id(), NULL, 'and the ROLLBACK of a failed transaction');
BEGIN;
SAVEPOINT s;
SELECT um_begin(:'dave_token') IS NOT NULL AS began \gset
ROLLBACK TO SAVEPOINT s;
SELECT is(um_current_user_id(), NULL, 'a um_begin in a rolled-back subtransaction is undone');
COMMIT;
RESET ROLE;
-- (a server of one's own, make installcheck, may have prepared transactions off)
SELECT current_setting('max_prepared_transactions')::int > 0 AS can_prepare \gset
\if :can_prepare
BEGIN;
SELECT um_begin(:'dave_token') IS NOT NULL AS began \gset
PREPARE TRANSACTION 'regress_um_identity';
SELECT is(um_current_user_id(), NULL, 'PREPARE TRANSACTION forgets it too');
COMMIT PREPARED 'regress_um_identity';
\else
SELECT skip('max_prepared_transactions is 0 on this server: PREPARE TRANSACTION not tested', 1);
\endif
-- (DISCARD ALL, which would drop this suite's temporary tables, is tested
-- through pgbouncer in test/t/003_pgbouncer.pl)

-- a transaction-pooled connection: the next client's transaction inherits nothing
SET ROLE regress_um_identity_app;
BEGIN;
SELECT um_begin(:'dave_token') IS NOT NULL AS began \gset
COMMIT;
BEGIN;
SELECT is(um_current_user_id(), NULL, 'a second transaction on the same connection, without um_begin, has nobody acting');
SELECT ok(NOT um_has_permission('org:read', :acme), 'and is permitted nothing');
SELECT is(um_permitted_orgs('org:read'), '{}'::bigint[], 'not even through the RLS companion');
COMMIT;

-- forging an identity
SELECT throws_ok($$ SET um.acting_user = '4' $$, '42602', NULL, 'SET of a um setting is refused (the prefix is reserved)');
SELECT throws_ok($$ SELECT set_config('um.user_id', '4', false) $$, '42602', NULL, 'so is set_config()');
SET app.user_id = '4';
SET request.jwt.claim.sub = '4';
SELECT is(um_current_user_id(), NULL, 'settings other libraries trust mean nothing to um');
RESET ALL;
SELECT is(um_current_user_id(), NULL, 'RESET ALL gives nobody an identity');
BEGIN;
SELECT um_begin(:'dave_token') IS NOT NULL AS began \gset
RESET ALL;
SELECT is(um_current_user_id(), :dave::bigint, 'and RESET ALL does not drop or change the real one');
COMMIT;
SELECT throws_ok($$ SELECT um_act_as(1) $$, '42501', NULL, 'um_act_as is not for application roles');
SELECT throws_ok($$ SELECT um_internal.start_impersonation(1, '{1}') $$, '42501', NULL, 'nor are um''s internal functions');
SELECT throws_ok($$ SELECT um_internal.audit_autonomous('user.login', 'ok', NULL, 'user', 1, '{}') $$, '42501', NULL,
                 'including the audit writer');
SELECT throws_ok($$ SELECT um_begin('um_'' OR ''1''=''1') $$, 'UM067', 'session token is not valid',
                 'SQL in a token string is just a wrong token');
SELECT throws_ok($$ SELECT um_begin(NULL) $$, 'UM067', NULL, 'so is NULL');
SELECT throws_ok($$ SELECT um_begin('um_' || repeat('A', 43)) $$, 'UM067', NULL, 'and a well-formed guess');
SELECT is(um_logout($$' OR true --$$), false, 'um_logout with SQL in the token ends nothing');
SELECT throws_ok($q$ SELECT um_login($$' OR 1=1 --$$, $$' OR 1=1 --$$) $q$, 'UM060', NULL, 'nor does um_login log anybody in');

RESET ROLE;
SET um.password_hash_cost = 4;       -- RESET ALL reset these
SET um.login_max_failures = 3;
SET ROLE regress_um_identity_app;

-- tokens that stop working
SELECT um_login('dave@example.com', 'password-of-dave') AS t1 \gset
SELECT is(um_logout(:'t1'), true, 'um_logout ends a session');
SELECT throws_ok(format('SELECT um_begin(%L)', :'t1'), 'UM067', NULL, 'its token no longer begins a transaction');
SELECT is(um_logout(:'t1'), false, 'a second logout ends nothing');
SELECT um_login('dave@example.com', 'password-of-dave') AS t2 \gset
SELECT um_login('dave@example.com', 'password-of-dave') AS t3 \gset
RESET ROLE;
UPDATE um.sessions SET created_at = now() - interval '2 hours', expires_at = now() - interval '1 hour'
 WHERE token_hash = sha256(convert_to(:'t2', 'UTF8'));
SET ROLE regress_um_identity_app;
SELECT throws_ok(format('SELECT um_begin(%L)', :'t2'), 'UM067', 'session token is not valid', 'an expired token fails');
RESET ROLE;
UPDATE um.users SET status = 'suspended' WHERE id = :dave;
UPDATE um.users SET status = 'active' WHERE id = :dave;
SET ROLE regress_um_identity_app;
SELECT throws_ok(format('SELECT um_begin(%L)', :'t3'), 'UM067', NULL, 'a suspension ends the user''s sessions, also after reactivation');
SELECT um_login('dave@example.com', 'password-of-dave') AS t4 \gset
BEGIN;
SELECT um_begin(:'t4') IS NOT NULL AS began \gset
RESET ROLE;
UPDATE um.users SET status = 'suspended' WHERE id = :dave;
SET ROLE regress_um_identity_app;
SELECT ok(NOT um_has_permission('org:read', :acme), 'a user suspended mid-transaction is denied at once');
COMMIT;
RESET ROLE;
UPDATE um.users SET status = 'active' WHERE id = :dave;
SET ROLE regress_um_identity_app;
SELECT um_login('dave@example.com', 'password-of-dave') AS t5 \gset
SELECT um_login('dave@example.com', 'password-of-dave') AS t6 \gset
SELECT um_change_password('dave@example.com', 'password-of-dave', 'new-password-of-dave') AS t7 \gset
SELECT throws_ok(format('SELECT um_begin(%L)', :'t5'), 'UM067', NULL, 'a password change ends the other sessions');
BEGIN;
SELECT lives_ok(format('SELECT um_begin(%L)', :'t7'), 'but not the one it returned');
COMMIT;
RESET ROLE;
UPDATE um.users SET allow_login = false WHERE id = :dave;
UPDATE um.users SET allow_login = true WHERE id = :dave;
SET ROLE regress_um_identity_app;
SELECT throws_ok(format('SELECT um_begin(%L)', :'t7'), 'UM067', NULL, 'losing login ends the sessions');
SELECT um_login('carol@example.com', 'password-of-carol') AS carol_token \gset
SELECT um_login('carol@example.com', 'password-of-carol') AS carol_token2 \gset
SELECT um_login('dave@example.com', 'new-password-of-dave') AS dave_token \gset
SELECT throws_ok(format('SELECT um_logout_all(%s)', :carol), 'UM070', NULL, 'nobody acting may not end a user''s sessions');
BEGIN;
SELECT um_begin(:'dave_token') IS NOT NULL AS began \gset
SELECT throws_ok(format('SELECT um_logout_all(%s)', :carol), 'UM070', NULL, 'nor may a member end an admin''s');
COMMIT;
BEGIN;
SELECT um_begin(:'carol_token') IS NOT NULL AS began \gset
SELECT is(um_logout_all(:carol), 2, 'um_logout_all ends every session of the user');
COMMIT;
SELECT throws_ok(format('SELECT um_begin(%L)', :'carol_token2'), 'UM067', NULL, 'on every device');
SELECT um_login('carol@example.com', 'password-of-carol') AS carol_token \gset
RESET ROLE;
SELECT is(pg_temp.audits('user.logout_all', 'denied'), 1::bigint,
          'a refused call of an acting user is audited although it fails (nobody acting: the server log)');
-- deletion
SELECT um_create_user('erin@example.com', 'Erin') AS erin \gset
UPDATE um.users SET email_verified_at = now() WHERE id = :erin;
SELECT um_set_password(:erin, 'password-of-erin', false) AS p \gset
SELECT um_login('erin@example.com', 'password-of-erin') AS erin_token \gset
DELETE FROM um.users WHERE id = :erin;
SET ROLE regress_um_identity_app;
SELECT throws_ok(format('SELECT um_begin(%L)', :'erin_token'), 'UM067', NULL, 'a deleted user''s token fails');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- 4. um_act_as for backends that authenticate users themselves
SELECT ok(NOT has_function_privilege('public', 'um_act_as(bigint)', 'EXECUTE'), 'um_act_as is revoked from PUBLIC');
SET ROLE regress_um_identity_backend;
BEGIN;
SELECT um_act_as(:dave) AS a \gset
SELECT is(um_current_user_id(), :dave::bigint, 'a role the DBA granted it may set the acting user');
COMMIT;
RESET ROLE;

-- ---------------------------------------------------------------------------
-- 5. impersonation
SET ROLE regress_um_identity_app;
BEGIN;
SELECT um_begin(:'carol_token') IS NOT NULL AS began \gset
SELECT ok(um_has_permission('member:invite', :acme), 'carol (Admin of acme) may invite in acme');
SELECT is(um_impersonate(:dave), ARRAY[:acme]::bigint[], 'and may impersonate dave, a member of acme, there');
SELECT is(um_current_user_id(), :dave::bigint, 'um_current_user_id() is then the target');
SELECT is(um_real_user_id(), :carol::bigint, 'and um_real_user_id() the impersonator');
SELECT ok(um_has_permission('org:read', :acme), 'checks answer as the target ...');
SELECT ok(NOT um_has_permission('member:invite', :acme), '... with the target''s rights, never the impersonator''s');
SELECT ok(NOT um_has_permission('instance:read', :globex), 'and only in the organization the impersonation is for (dave reads instances in globex)');
SELECT is(ARRAY[um_current_user_id(:acme), um_current_user_id(:globex)], ARRAY[:dave, NULL]::bigint[],
          'um_current_user_id(org_id), for owner policies, names the target only there too');
SELECT is(um_permitted_orgs('instance:read'), '{}'::bigint[], 'the RLS companion agrees');
SELECT throws_ok(format('SELECT um_impersonate(%s)', :ada), 'UM071', NULL, 'no impersonating while impersonating');
SELECT is(um_end_impersonation(), true, 'um_end_impersonation() ...');
SELECT is(um_current_user_id(), :carol::bigint, '... makes carol herself again');
SELECT throws_ok(format('SELECT um_impersonate(%s)', :ada), 'UM071', NULL, 'an Admin cannot impersonate a Root');
COMMIT;
SELECT um_login('ada@example.com', 'password-of-ada') AS ada_token \gset
BEGIN;
SELECT um_begin(:'ada_token') IS NOT NULL AS began \gset
SELECT throws_ok(format('SELECT um_impersonate(%s)', :carol), 'UM071', NULL, 'not even a Root impersonates an Admin');
COMMIT;
RESET ROLE;
SELECT um_create_user('frank@example.com', 'Frank') AS frank \gset
SELECT um_add_member(:acme, :frank) AS m1, um_add_member(:acme, :bob) AS m2,
       um_set_password(:bob, 'password-of-bob', false) AS p \gset
SELECT um_login('bob@example.com', 'password-of-bob') AS bob_token \gset
SET ROLE regress_um_identity_app;
BEGIN;
SELECT um_begin(:'dave_token') IS NOT NULL AS began \gset
SELECT throws_ok(format('SELECT um_impersonate(%s)', :frank), 'UM070', NULL, 'a member without user:impersonate cannot impersonate');
COMMIT;
BEGIN;
SELECT um_begin(:'ada_token') IS NOT NULL AS began \gset
SELECT throws_ok(format('SELECT um_impersonate(%s)', :bob), 'UM071', NULL,
                 'nor can anyone impersonate the Root of another organization, even as a Member here');
COMMIT;
RESET ROLE;
-- escalation: frank holds org:update in acme through a grant; carol (Admin) lacks it
INSERT INTO um.roles (org_id, name) VALUES (:acme, 'Org Editor');
INSERT INTO um.role_permissions (org_id, role_id, permission) VALUES (:acme, pg_temp.role('acme', 'Org Editor'), 'org:update');
INSERT INTO um.grants (org_id, user_id, role_id) VALUES (:acme, :frank, pg_temp.role('acme', 'Org Editor'));
SET ROLE regress_um_identity_app;
BEGIN;
SELECT um_begin(:'carol_token') IS NOT NULL AS began \gset
SELECT ok(NOT um_has_permission('org:update', :acme), 'carol lacks org:update');
SELECT throws_ok(format('SELECT um_impersonate(%s)', :frank), 'UM070', NULL,
                 'so she cannot impersonate frank, who holds it: impersonation never escalates');
COMMIT;
BEGIN;
SELECT um_begin(:'carol_token') IS NOT NULL AS began \gset
SELECT um_impersonate(:dave) IS NOT NULL AS impersonating \gset
COMMIT;
RESET ROLE;
BEGIN;
SELECT um_act_as(:carol) AS a \gset
SELECT um_impersonate(:dave) IS NOT NULL AS impersonating \gset
SELECT um_internal.audit('test.event', :acme, 'user', :dave) AS a \gset
SELECT is((SELECT ARRAY[actor_user_id, impersonator_user_id] FROM um.audit_events WHERE action = 'test.event'),
          ARRAY[:dave, :carol]::bigint[], 'an audit event written while impersonating names both the target and the impersonator');
SELECT is((SELECT ARRAY[actor_user_id, impersonator_user_id] FROM um.audit_events WHERE action = 'user.impersonate' ORDER BY id DESC LIMIT 1),
          ARRAY[:dave, :carol]::bigint[], 'so does the impersonation''s own event');
COMMIT;
SELECT cmp_ok(pg_temp.audits('user.impersonate', 'denied'), '>=', 5::bigint, 'refused impersonations are audited');
SELECT pg_temp.audits('user.impersonate', 'ok') AS before_rollback \gset
BEGIN;
SELECT um_act_as(:carol) AS a \gset
SELECT um_impersonate(:dave) IS NOT NULL AS impersonating \gset
ROLLBACK;
SELECT is(pg_temp.audits('user.impersonate', 'ok'), :before_rollback + 1::bigint,
          'an impersonation stays on record even when its transaction rolls back');

-- fail closed: when the attempt cannot be counted, right and wrong passwords get the same error
BEGIN;                                               -- (committed: pgTAP's results must stay)
SELECT id AS locked_row FROM um.users WHERE id = :dave FOR UPDATE \gset
SELECT throws_ok($$ SELECT um_login('dave@example.com', 'new-password-of-dave') $$, 'UM069', NULL,
                 'while the attempt cannot be recorded (here: the user row is locked) the right password is refused ...');
SELECT throws_ok($$ SELECT um_login('dave@example.com', 'a wrong password') $$, 'UM069', NULL,
                 '... exactly like a wrong one, so no guess is answered uncounted');
COMMIT;

-- clean up what this suite committed outside its database
DROP OWNED BY regress_um_identity_app, regress_um_identity_backend;
DROP ROLE regress_um_identity_app, regress_um_identity_backend;
SELECT * FROM finish();
