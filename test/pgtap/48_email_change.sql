-- Issue 17, item 2: an email change with re-verification.  The user (or an
-- admin) asks; the backend, with nobody acting, mails a confirmation token
-- to the new address and a cancel token to the old one; only the new
-- mailbox's confirmation changes the address.  Attacked as the acting user
-- fishing for the secret or for whether an address is registered, as an
-- Admin of another organization, an impersonator, the application role with
-- no grants, with replayed, replaced, cancelled and expired tokens, and with
-- a sign-up taking the address meanwhile (concurrently:
-- test/specs/email_change_races.spec).  Commits: um_act_as holds for one
-- transaction.
\ir fixture.psql
\set QUIET 1
SELECT plan(48);

SET um.password_hash_cost = 4;
CREATE ROLE regress_um_email_app NOLOGIN;
CREATE ROLE regress_um_email_backend NOLOGIN;
GRANT USAGE ON SCHEMA public TO regress_um_email_app, regress_um_email_backend;
GRANT EXECUTE ON FUNCTION um_email_change_mail(bigint), um_act_as(bigint), um_request_password_reset(text) TO regress_um_email_backend;
UPDATE um.users SET email_verified_at = now();
SELECT count(um_set_password(id, 'password-of-' || split_part(email, '@', 1), false)) AS n FROM um.users \gset
SELECT pg_temp.usr('ada') AS ada, pg_temp.usr('bob') AS bob, pg_temp.usr('carol') AS carol,
       pg_temp.usr('dave') AS dave, pg_temp.org('acme') AS acme, pg_temp.org('globex') AS globex \gset
SELECT um_create_user('erin@example.com', 'Erin') AS erin \gset
UPDATE um.users SET email_verified_at = now() WHERE id = :erin;
SELECT um_set_password(:erin, 'password-of-erin', false);
SELECT um_add_member(:acme, :erin) AS x \gset
CREATE FUNCTION pg_temp.email(bigint) RETURNS text LANGUAGE sql
  AS $$ SELECT email || CASE WHEN email_verified_at IS NULL THEN ' (unverified)' ELSE '' END FROM um.users WHERE id = $1 $$;
CREATE FUNCTION pg_temp.pending(bigint) RETURNS text LANGUAGE sql
  AS $$ SELECT new_email FROM um.email_changes WHERE user_id = $1 $$;

-- ---------------------------------------------------------------------------
-- Asking
SELECT throws_ok($$ SELECT um_request_email_change('x@example.com') $$, 'UM072', NULL,
                 'with nobody acting and no user_id there is nobody to change');
SET ROLE regress_um_email_app;
BEGIN;
SELECT um_begin(um_login('erin@example.com', 'password-of-erin')) AS b \gset
SELECT ok(um_request_email_change('erin@new.example') > now(), 'erin asks for a new address and learns when the request expires');
SELECT throws_ok($$ SELECT um_request_email_change('erin@') $$, 'UM001', NULL, 'an invalid address is refused');
SELECT throws_ok($$ SELECT um_request_email_change(' ERIN@example.com ') $$, 'UM009', NULL, 'so is her current one');
SELECT throws_ok($$ SELECT * FROM um_email_change_mail(um_current_user_id()) $$, '42501', NULL,
                 'the application role cannot fetch the secrets ...');
COMMIT;
RESET ROLE;
SET ROLE regress_um_email_backend;
BEGIN;
SELECT um_act_as(:erin) AS a \gset
SELECT throws_ok(format('SELECT * FROM um_email_change_mail(%s)', :erin), 'UM058', NULL,
                 '... nor the backend with someone acting: no logged-in user sees a mailbox secret');
ROLLBACK;
RESET ROLE;
SELECT is(pg_temp.email(:erin), 'erin@example.com', 'nothing changes before the new mailbox confirms');
SELECT is(pg_temp.pending(:erin), 'erin@new.example', 'the change is pending');
SET ROLE regress_um_email_app;
SELECT throws_ok($$ SELECT count(*) FROM um.email_changes $$, '42501', NULL, 'the application role cannot read pending changes');
RESET ROLE;

-- the same answer for a registered address (no enumeration)
SET ROLE regress_um_email_app;
BEGIN;
SELECT um_begin(um_login('dave@example.com', 'password-of-dave')) AS b \gset
SELECT lives_ok($$ SELECT um_request_email_change('ada@example.com') $$,
                'asking for an address that has an account answers the same');
COMMIT;
RESET ROLE;
SET ROLE regress_um_email_backend;
SELECT new_address_registered AS taken, confirm_token IS NULL AS no_confirm, cancel_token IS NOT NULL AS cancel
  FROM um_email_change_mail(:dave) \gset
RESET ROLE;
SELECT ok(:'taken'::boolean AND :'no_confirm'::boolean AND :'cancel'::boolean,
          'the backend learns it is registered: no confirmation to mail, a notice to its owner, and the cancel token to the old address');

-- impersonated, and admins
BEGIN;
SELECT um_act_as(:carol) AS a \gset
SELECT um_impersonate(:erin) AS i \gset
SELECT throws_ok($$ SELECT um_request_email_change('pwned@evil.example') $$, 'UM071', NULL,
                 'an impersonator cannot move the account to their own mailbox');
ROLLBACK;
BEGIN;
SELECT um_act_as(:carol) AS a \gset
SELECT throws_ok(format('SELECT um_request_email_change(%L, %s)', 'dave@new.example', :dave), 'UM070', NULL,
                 'an Admin of acme cannot change dave''s address (he is in globex too)');
SELECT throws_ok(format('SELECT um_request_email_change(%L, %s)', 'ada@new.example', :ada), 'UM073', NULL, 'nor a Root''s');
COMMIT;
BEGIN;
SELECT um_act_as(:bob) AS a \gset
SELECT throws_ok(format('SELECT um_request_email_change(%L, %s)', 'erin@bob.example', :erin), 'UM070', NULL,
                 'the Root of globex cannot change the address of a user of acme only');
ROLLBACK;
SELECT is(pg_temp.pending(:erin), 'erin@new.example', 'and none of that touched erin''s pending change');

-- ---------------------------------------------------------------------------
-- Mailing, confirming
SET ROLE regress_um_email_backend;
SELECT old_address, new_address, confirm_token AS t1, cancel_token AS c1 FROM um_email_change_mail(:erin) \gset
SELECT confirm_token AS t2, cancel_token AS c2 FROM um_email_change_mail(:erin) \gset
RESET ROLE;
SELECT is(:'old_address' || ' -> ' || :'new_address', 'erin@example.com -> erin@new.example', 'the mail goes to both addresses');
SELECT ok(NOT EXISTS (SELECT 1 FROM um.email_changes WHERE confirm_hash = convert_to(:'t2', 'UTF8') OR cancel_hash = convert_to(:'c2', 'UTF8')),
          'only hashes are stored');
SET ROLE regress_um_email_app;
SELECT throws_ok(format('SELECT um_confirm_email_change(%L)', :'t1'), 'UM053', NULL, 'a new mail''s tokens replace the last''s');
SELECT throws_ok(format('SELECT um_confirm_email_change(%L)', :'c2'), 'UM053', NULL, 'the cancel token confirms nothing');
RESET ROLE;
SELECT um_login('erin@example.com', 'password-of-erin') AS erin_session \gset
SELECT um_request_password_reset('erin@example.com') AS r \gset
INSERT INTO um.verification_tokens (token_hash, user_id, expires_at) VALUES (sha256('v'::bytea), :erin, now() + interval '1 day');
SET ROLE regress_um_email_app;
SELECT is(um_confirm_email_change(:'t2'), :erin::bigint, 'the new mailbox confirms');
RESET ROLE;
SELECT is(pg_temp.email(:erin), 'erin@new.example', 'the address changed, verified');
SELECT is(pg_temp.pending(:erin), NULL, 'nothing is pending any more');
SELECT is((SELECT count(*) FROM um.password_resets WHERE user_id = :erin) + (SELECT count(*) FROM um.verification_tokens WHERE user_id = :erin),
          0::bigint, 'the old address''s secrets (a reset, a verification) are void');
SET ROLE regress_um_email_app;
BEGIN;
SELECT is(um_begin(:'erin_session'), :erin::bigint, 'sessions survive by default (um.email_change_ends_sessions is off)');
COMMIT;
SELECT throws_ok(format('SELECT um_confirm_email_change(%L)', :'t2'), 'UM053', NULL, 'a confirmation is single use');
SELECT throws_ok(format('SELECT um_cancel_email_change(%L)', :'c2'), 'UM053', NULL, 'and a confirmed change cannot be cancelled');
SELECT ok(um_login('erin@new.example', 'password-of-erin') IS NOT NULL, 'erin logs in with the new address');
SELECT throws_ok($$ SELECT um_login('erin@example.com', 'password-of-erin') $$, 'UM060', NULL, 'not with the old one');
SELECT throws_ok($$ SET um.email_change_ends_sessions = on $$, '42501', NULL, 'the application role cannot change the setting');
RESET ROLE;
SELECT is((SELECT details->>'requested_by' FROM um.audit_events WHERE action = 'user.change_email' AND target_id = :erin),
          :erin::text, 'audited with who asked');

-- sessions end where the setting says so
BEGIN;
SELECT um_act_as(:erin) AS a \gset
SELECT um_request_email_change('erin@third.example') AS x \gset
COMMIT;
SELECT um_login('erin@new.example', 'password-of-erin') AS erin_session2 \gset
SET ROLE regress_um_email_backend;
SELECT confirm_token AS t3 FROM um_email_change_mail(:erin) \gset
RESET ROLE;
SET um.email_change_ends_sessions = on;
SELECT is(um_confirm_email_change(:'t3'), :erin::bigint, 'with um.email_change_ends_sessions on ...');
RESET um.email_change_ends_sessions;
SET ROLE regress_um_email_app;
SELECT throws_ok(format('SELECT um_begin(%L)', :'erin_session2'), 'UM067', NULL, '... the confirmation ends the user''s sessions');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- Cancelling, expiry, a sign-up in between
BEGIN;
SELECT um_act_as(:carol) AS a \gset
SELECT throws_ok(format('SELECT um_request_email_change(%L, %s)', 'erin@carols-own.example', :erin), 'UM074', NULL,
                 'an Admin cannot move a user''s account to an address outside the user''s organizations'' domains (a takeover)');
ROLLBACK;
SELECT um_add_org_domain(:acme, 'fourth.example') AS x \gset
BEGIN;
SELECT um_act_as(:carol) AS a \gset
SELECT lives_ok(format('SELECT um_request_email_change(%L, %s)', 'erin@fourth.example', :erin),
                'an Admin of erin''s only organization asks for a change of her address within acme''s domain');
COMMIT;
SET ROLE regress_um_email_backend;
SELECT confirm_token AS t4, cancel_token AS c4 FROM um_email_change_mail(:erin) \gset
RESET ROLE;
SET ROLE regress_um_email_app;
SELECT is(um_cancel_email_change(:'c4'), :erin::bigint, 'the old mailbox cancels it');
SELECT throws_ok(format('SELECT um_confirm_email_change(%L)', :'t4'), 'UM053', NULL, 'and its confirmation is dead');
RESET ROLE;
SELECT is(pg_temp.email(:erin), 'erin@third.example', 'the address did not change');

-- an admin's pending request dies with the admin's authority
BEGIN;
SELECT um_act_as(:carol) AS a \gset
SELECT um_request_email_change('erin@fourth.example', :erin) AS x \gset
COMMIT;
SET ROLE regress_um_email_backend;
SELECT confirm_token AS t4b FROM um_email_change_mail(:erin) \gset
RESET ROLE;
SELECT um_add_member(:globex, :erin) AS x \gset
SET ROLE regress_um_email_app;
SELECT throws_ok(format('SELECT um_confirm_email_change(%L)', :'t4b'), 'UM053', NULL,
                 'once erin is also in globex, where carol holds nothing, carol''s request confirms nothing');
RESET ROLE;
SELECT um_remove_member(:globex, :erin) AS x \gset
-- and any pending change dies with a password change
BEGIN;
SELECT um_act_as(:erin) AS a \gset
SELECT um_request_email_change('erin@stolen.example') AS x \gset
COMMIT;
SELECT um_set_password(:erin, 'password-of-erin', false);
SELECT is(pg_temp.pending(:erin), NULL, 'a password change voids a pending email change (asked for by a thief''s session, say)');

BEGIN;
SELECT um_act_as(:erin) AS a \gset
SELECT um_request_email_change('erin@fifth.example') AS x \gset
COMMIT;
SET ROLE regress_um_email_backend;
SELECT confirm_token AS t5 FROM um_email_change_mail(:erin) \gset
RESET ROLE;
UPDATE um.email_changes SET created_at = now() - interval '2 days', expires_at = now() - interval '1 day' WHERE user_id = :erin;
SET ROLE regress_um_email_app;
SELECT throws_ok(format('SELECT um_confirm_email_change(%L)', :'t5'), 'UM053', NULL, 'an expired confirmation is refused');
RESET ROLE;
SET ROLE regress_um_email_backend;
SELECT count(*) AS n FROM um_email_change_mail(:erin) \gset
RESET ROLE;
SELECT is(:n, 0, 'and nothing expired is mailed');

BEGIN;
SELECT um_act_as(:erin) AS a \gset
SELECT um_request_email_change('erin@sixth.example') AS x \gset
COMMIT;
SET ROLE regress_um_email_backend;
SELECT confirm_token AS t6 FROM um_email_change_mail(:erin) \gset
RESET ROLE;
SELECT um_sign_up('erin@sixth.example', 'someone-elses-password') AS s \gset
SELECT pg_temp.counts() AS before \gset
SET ROLE regress_um_email_app;
SELECT throws_ok(format('SELECT um_confirm_email_change(%L)', :'t6'), 'UM020', NULL,
                 'an address signed up for meanwhile cannot be confirmed');
RESET ROLE;
SELECT is(pg_temp.counts() || ' ' || pg_temp.email(:erin), :'before' || ' erin@third.example', 'and nothing changed');

-- ---------------------------------------------------------------------------
-- Export and erasure
BEGIN;
SELECT um_act_as(:erin) AS a \gset
SELECT is(um_export_my_data() -> 'email_change' ->> 'new_email', 'erin@sixth.example', 'a pending change is in the export ...');
SELECT is(position(:'t6' IN um_export_my_data()::text), 0, '... without its secrets');
COMMIT;
SELECT um_delete_user(:erin);
SELECT is((SELECT count(*) FROM um.email_changes WHERE user_id = :erin), 0::bigint, 'erasing the user erases the pending change');
SELECT ok(EXISTS (SELECT 1 FROM pg_extension e WHERE e.extname = 'um' AND 'um.email_changes'::regclass = ANY (e.extconfig)),
          'pending changes are dumped (their tokens are 256 random bits, stored as hashes)');

DROP OWNED BY regress_um_email_app, regress_um_email_backend;
DROP ROLE regress_um_email_app, regress_um_email_backend;
SELECT * FROM finish();
