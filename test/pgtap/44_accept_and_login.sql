-- Issue 16, item 5: accepting an invitation can log a new address in, where
-- the application says invitations prove the mailbox
-- (um.invitations_prove_address, which only a superuser sets).  Attacked by
-- the backend's role trying to turn the setting on itself, by a logged-in
-- user of the organization, and with the token of an existing account.
BEGIN;
\ir fixture.psql
SELECT plan(16);
SELECT pg_temp.org('acme') AS acme, pg_temp.usr('carol') AS carol, pg_temp.usr('dave') AS dave \gset
SELECT (um_invite(:acme, 'nina@example.com')).token AS nina_token \gset
SELECT (um_invite(:acme, 'omar@example.com')).token AS omar_token \gset
SELECT (um_invite(pg_temp.org('globex'), 'carol@example.com')).token AS carol_token \gset
CREATE ROLE regress_um_backend NOLOGIN;
GRANT regress_um_backend TO CURRENT_USER;

SELECT pg_temp.counts() AS before \gset
SELECT throws_ok(format('SELECT um_accept_invitation_and_login(%L, %L)', :'nina_token', 'nina-password'), 'UM063',
                 'accepting an invitation does not prove the address here', 'off by default: the inviter saw the token');
SELECT is(pg_temp.counts(), :'before', 'and nothing changed');
SET LOCAL ROLE regress_um_backend;
SELECT throws_ok('SET um.invitations_prove_address = on', '42501', NULL, 'the backend''s role cannot turn it on');
SELECT throws_ok($$ SELECT set_config('um.invitations_prove_address', 'on', true) $$, '42501', NULL, 'not even with set_config');
RESET ROLE;
SET LOCAL um.invitations_prove_address = on;      -- as the superuser: ALTER DATABASE ... SET in a deployment
SELECT throws_ok(format('SELECT um_accept_invitation_and_login(%L, NULL)', :'nina_token'), 'UM059', NULL, 'a password is required');
SELECT throws_ok(format('SELECT um_accept_invitation_and_login(%L, %L)', :'nina_token', 'short'), 'UM068', NULL,
                 'an acceptable one');
SELECT throws_ok(format('SELECT um_accept_invitation_and_login(%L, %L)', 'um_not_a_token', 'nina-password'), 'UM053', NULL,
                 'a token that is no invitation');
SELECT throws_ok(format('SELECT um_accept_invitation_and_login(%L, %L)', :'carol_token', 'carol-new-password'), 'UM056', NULL,
                 'an existing account''s invitation logs nobody in: it accepts only logged in as itself');
SELECT is((SELECT count(*) FROM um.memberships WHERE user_id = :carol AND org_id = pg_temp.org('globex')), 0::bigint,
          'carol did not join globex');
SAVEPOINT as_dave;
SELECT um_act_as(:dave) AS a \gset
SELECT throws_ok(format('SELECT um_accept_invitation_and_login(%L, %L)', :'nina_token', 'nina-password'), 'UM058', NULL,
                 'a logged-in user (dave) cannot take a new address''s invitation');
ROLLBACK TO SAVEPOINT as_dave;
SELECT is(pg_temp.counts(), :'before', 'none of the refusals changed anything');
SELECT um_accept_invitation_and_login(:'nina_token', 'nina-password', 'Nina') AS nina_session \gset
SELECT throws_ok(format('SELECT um_accept_invitation_and_login(%L, %L)', :'nina_token', 'nina-password'), 'UM053', NULL,
                 'the invitation is spent');
SELECT isnt((SELECT email_verified_at FROM um.users WHERE email = 'nina@example.com'), NULL, 'the address counts as verified');
SELECT is((SELECT count(*) FROM um.audit_events e JOIN um.users u ON u.id = e.target_id
            WHERE u.email = 'nina@example.com' AND e.action = 'user.verify_email' AND e.details->>'via' = 'invitation'), 1::bigint,
          'audited as a verification through the invitation');
SELECT um_begin(:'nina_session') AS a \gset
SELECT is(um_current_user_id(), (SELECT id FROM um.users WHERE email = 'nina@example.com'), 'the token is a session of the new account');
SELECT is((SELECT string_agg(slug || ':' || role, ',') FROM um_my_organizations()), 'acme:Member', 'a member of acme with the preset role');
SELECT * FROM finish();
ROLLBACK;
