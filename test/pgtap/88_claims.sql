-- Claiming an address: what the owner of a mailbox gets when someone else
-- registered their address first.  Attacked as the adversary would: mallory,
-- a user who signed up on her own, creates an organization (so she is its
-- Root), creates an account there for an address she does not own, attaches
-- what she can to it, and has the public "resend verification" button
-- pressed; the backend (an application role, nobody acting) runs the owner's
-- sign-up and verification.  Like 85_identity this suite commits; it runs in
-- a database of its own and drops its role at the end.
\ir fixture.psql
\set QUIET 1
SELECT plan(51);

SET um.password_hash_cost = 4;
SET client_min_messages = error;
CREATE ROLE regress_um_claims_app NOLOGIN;
GRANT USAGE ON SCHEMA public TO regress_um_claims_app;
GRANT EXECUTE ON FUNCTION um_sign_up(text, text, text, text, text), um_resend_verification(text)
  TO regress_um_claims_app;
-- the acting user's refusal, or 'ok' (run as the application role, logged in with token t)
CREATE FUNCTION pg_temp.as_token(t text, q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  st text;
BEGIN
  BEGIN
    PERFORM um_begin(t);
    EXECUTE q;
  EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE;
    RETURN st;
  END;
  RETURN 'ok';
END
$$;
GRANT EXECUTE ON FUNCTION pg_temp.as_token(text, text) TO regress_um_claims_app;

-- ---------------------------------------------------------------------------
-- mallory signs up for real, and makes an organization of her own
SET ROLE regress_um_claims_app;
SELECT um_sign_up('mallory@example.com', 'mallory-password', 'Mallory') AS t \gset
SELECT throws_ok(format('SELECT um_verify_email(%L)', :'t'), 'UM059', NULL,
                 'a first sign-up''s link verifies nothing without a password (UM059) ...');
SELECT ok(um_verify_email(:'t', 'mallory-password') IS NOT NULL,
          '... the registrant who owns the mailbox types hers again');
SELECT um_login('mallory@example.com', 'mallory-password') AS mallory_token \gset
BEGIN;
SELECT um_begin(:'mallory_token') AS mallory \gset
SELECT um_create_organization('evil', 'Evil Ltd', :mallory) AS evil \gset
SELECT um_add_identity_provider(:evil, 'evil-idp', 'oidc', 'https://idp.evil.example') AS idp \gset
COMMIT;

-- her organization owns no domain: she creates no account, and cannot tell
-- a registered address from a new one
SET ROLE regress_um_claims_app;
SELECT is(pg_temp.as_token(:'mallory_token', format('SELECT um_create_user(%s, %L)', :evil, 'victim@example.com')) || ' / ' ||
          pg_temp.as_token(:'mallory_token', format('SELECT um_create_user(%s, %L)', :evil, 'ada@example.com')),
          'UM074 / UM074', 'outside her organization''s domains a new and a registered address are refused alike (UM074)');
RESET ROLE;
-- say the operator once recorded example.com as hers (the domain has
-- changed hands since): she creates an account for victim@ (an address she
-- does not own) and attaches all she can: an Admin role, a mobile number, a
-- team the victim owns, a grant on that team's node
SELECT um_add_org_domain(:evil, 'example.com') AS ignored \gset
SET ROLE regress_um_claims_app;
BEGIN;
SELECT um_begin(:'mallory_token') AS ignored \gset
SELECT user_id AS victim FROM um_create_user(:evil, 'victim@example.com', 'Admin', 'Victim', mobile => '+15550100123') \gset
SELECT um_create_team(:evil, 'Ops', owner_user_id => :victim) AS ops \gset
SELECT um_add_team_member(:ops, :mallory) AS ignored \gset
SELECT um_create_team(:evil, 'Solo', owner_user_id => :victim) AS solo \gset
COMMIT;
RESET ROLE;
SELECT scope_id AS ops_scope FROM um.teams WHERE id = :ops \gset
SET ROLE regress_um_claims_app;
BEGIN;
SELECT um_begin(:'mallory_token') AS ignored \gset
SELECT um_grant_scope_role(:ops_scope, 'Service Reader', :victim) AS ignored \gset
SELECT user_id AS friend FROM um_create_user(:evil, 'friend@example.com', 'Member', 'Friend') \gset
SELECT user_id AS heir FROM um_create_user(:evil, 'heir@example.com', 'Member', 'Heir') \gset
COMMIT;
RESET ROLE;
SELECT is((SELECT count(*) FROM um.memberships WHERE user_id = :victim), 1::bigint,
          'setup: the victim''s account is in mallory''s organization');
SELECT um_remove_org_domain(:evil, 'example.com') AS ignored \gset

-- the owner of the mailbox signs up; mallory then presses "resend"
SET ROLE regress_um_claims_app;
SELECT um_sign_up('victim@example.com', 'victims-first-try', 'Victim') AS claim1 \gset
SELECT um_resend_verification('victim@example.com') AS claim2 \gset
SELECT throws_ok(format('SELECT um_verify_email(%L, %L)', :'claim1', 'victims-password'), 'UM053', NULL,
                 'the resent token replaced the sign-up''s ...');
SELECT is(um_verify_email(:'claim2', 'victims-password'), :victim::bigint,
          '... yet the owner who redeems it still claims the account');
RESET ROLE;
SELECT is((SELECT count(*) FROM um.memberships WHERE user_id = :victim), 0::bigint,
          'the claimed account keeps no membership someone else made while the address was unproven');
SELECT is((SELECT count(*) FROM um.team_members WHERE user_id = :victim), 0::bigint, 'no team membership');
SELECT is((SELECT count(*) FROM um.grants WHERE user_id = :victim), 0::bigint, 'no grant');
SELECT is((SELECT user_id FROM um.team_members WHERE team_id = :ops AND is_owner), :mallory::bigint,
          'a team it owned passes to its other member');
SELECT is((SELECT count(*) FROM um.teams WHERE id = :solo), 0::bigint, 'a team it owned alone goes');
SELECT is((SELECT mobile FROM um.users WHERE id = :victim), NULL, 'the mobile number someone else chose is gone');
SELECT is((SELECT count(*) FROM um.audit_events
            WHERE action = 'member.remove' AND org_id = :evil AND target_id = :victim
              AND details->>'reason' = 'address claimed'), 1::bigint,
          'the organization''s audit trail says why its member left');
SELECT is((SELECT details->>'claim' FROM um.audit_events
            WHERE action = 'user.verify_email' AND target_id = :victim ORDER BY id DESC LIMIT 1), 'true',
          'the verification is on record as a claim');

-- what mallory can do now
SET ROLE regress_um_claims_app;
SELECT is(pg_temp.as_token(:'mallory_token', format('SELECT um_link_identity(%s, %L, %L, %s)', :evil, 'evil-idp', 'mallory-sub', :victim)),
          'UM035', 'mallory cannot link her identity provider''s subject to the claimed account (it would sign in as it): not her member');
SELECT is(pg_temp.as_token(:'mallory_token', format('SELECT um_suspend_user(%s)', :victim)),
          'UM070', 'nor suspend it');
SELECT is(pg_temp.as_token(:'mallory_token', format('SELECT um_disable_login(%s)', :victim)),
          'UM070', 'nor take its login');
SELECT is(pg_temp.as_token(:'mallory_token', format('SELECT 1/(count(*) = 0)::int FROM um.member_list WHERE user_id = %s', :victim)),
          'ok', 'nor see it among her members');
SELECT throws_ok($$ SELECT um_login('victim@example.com', 'victims-first-try') $$, 'UM060', NULL,
                 'the password typed at the sign-up is not the account''s');
SELECT ok(um_login('victim@example.com', 'victims-password') IS NOT NULL, 'the one chosen at the claim is');
RESET ROLE;

-- the organization's own welcome (it created the account, the backend mails
-- the secret, nobody signed up): what the organization made stays
SET ROLE regress_um_claims_app;
SELECT um_resend_verification('friend@example.com') AS welcome \gset
SELECT is(um_verify_email(:'welcome', 'friends-password'), :friend::bigint, 'an organization''s new user verifies its address ...');
RESET ROLE;
SELECT is((SELECT count(*) FROM um.memberships WHERE user_id = :friend AND org_id = :evil), 1::bigint,
          '... and stays its member (no sign-up asked for a clean account)');

-- an organization that owns the address's domain keeps what it made at a claim
SELECT um_add_org_domain(:evil, 'evil.example') AS ignored \gset
SET ROLE regress_um_claims_app;
BEGIN;
SELECT um_begin(:'mallory_token') AS ignored \gset
SELECT user_id AS staff FROM um_create_user(:evil, 'staff@evil.example', 'Member', 'Staff', mobile => '+15550100124') \gset
COMMIT;
SELECT um_sign_up('staff@evil.example', 'staffs-first-try') AS staff_claim \gset
SELECT is(um_verify_email(:'staff_claim', 'staffs-password'), :staff::bigint, 'a claim of an address in the organization''s own domain ...');
RESET ROLE;
SELECT is((SELECT count(*) FROM um.memberships WHERE user_id = :staff AND org_id = :evil), 1::bigint,
          '... keeps the membership the domain''s organization made');

-- a last Root stays: mallory hands her organization to the unproven account
SET ROLE regress_um_claims_app;
SELECT is(pg_temp.as_token(:'mallory_token', format('SELECT um_transfer_org_ownership(%s, %s)', :evil, :heir)), 'ok',
          'setup: mallory makes heir@ her organization''s only Root');
SELECT um_sign_up('heir@example.com', 'heirs-first-try') AS heir_claim \gset
SELECT is(um_verify_email(:'heir_claim', 'heirs-password'), :heir::bigint, 'the owner claims the account');
RESET ROLE;
SELECT ok(um_internal.is_root(:evil, :heir), 'it stays the organization''s Root (an organization with members keeps one) ...');
SET ROLE regress_um_claims_app;
SELECT is(pg_temp.as_token(:'mallory_token', format('SELECT um_link_identity(%s, %L, %L, %s)', :evil, 'evil-idp', 'mallory-sub', :heir)),
          'UM073', '... over which mallory, now an Admin, gains nothing');
RESET ROLE;

-- the classic pre-hijack: mallory registers ceo@ with a password she knows,
-- and the mailbox's owner follows the link
SET ROLE regress_um_claims_app;
SELECT um_sign_up('ceo@example.com', 'mallory-knows-this') AS ceo_link \gset
SELECT throws_ok(format('SELECT um_verify_email(%L)', :'ceo_link'), 'UM059', NULL,
                 'following the link alone verifies nothing ...');
SELECT ok(um_verify_email(:'ceo_link', 'the-ceos-own-password') IS NOT NULL, '... the owner chooses the password');
SELECT throws_ok($$ SELECT um_login('ceo@example.com', 'mallory-knows-this') $$, 'UM060', NULL,
                 'so the registrant''s password never logs in');
SELECT ok(um_login('ceo@example.com', 'the-ceos-own-password') IS NOT NULL, 'the owner''s does');
RESET ROLE;


-- the same answer for every address: a stranger signing up learns nothing
SELECT um_create_user('quiet@example.com', 'Quiet', allow_login => false) AS quiet \gset
SET ROLE regress_um_claims_app;
SELECT um_sign_up('ceo@example.com', 'strangers-password') AS ceo_again \gset
SELECT um_sign_up('quiet@example.com', 'strangers-password') AS quiet_again \gset
SELECT um_sign_up('brand-new@example.com', 'strangers-password') AS brand_new \gset
SELECT ok(:'ceo_again' ~ '^um_[A-Za-z0-9_-]{43}$' AND :'quiet_again' ~ '^um_[A-Za-z0-9_-]{43}$'
          AND :'brand_new' ~ '^um_[A-Za-z0-9_-]{43}$',
          'a verified, a notification-only and a new address all get a secret to mail (no UM020)');
SELECT throws_ok($$ SELECT um_sign_up('ceo@example.com', 'strangers-password', E'bad\tname') $$, 'UM003', NULL,
                 'bad input is refused for a registered address ...');
SELECT throws_ok($$ SELECT um_sign_up('unknown@example.com', 'strangers-password', E'bad\tname') $$, 'UM003', NULL,
                 '... exactly as for a new one');
SELECT throws_ok($$ SELECT um_sign_up('ceo@example.com', 'short') $$, 'UM068', NULL,
                 '(a short password too)');
SELECT ok(um_login('ceo@example.com', 'the-ceos-own-password') IS NOT NULL,
          'the registered account is unchanged: its password still works, and the stranger''s does not ...');
SELECT throws_ok($$ SELECT um_login('ceo@example.com', 'strangers-password') $$, 'UM060', NULL, '(refused)');
SELECT throws_ok(format('SELECT um_verify_email(%L, %L)', :'ceo_again', 'attacker-chosen-password'), 'UM053', NULL,
                 '... and the secret for a verified account redeems nothing: whoever holds it (the backend role) sets no password');
SELECT ok(um_login('ceo@example.com', 'the-ceos-own-password') IS NOT NULL, '(the owner''s password still works)');
-- the user ids a tenant's new users get say nothing of sign-ups in between
RESET ROLE;
SELECT nextval(pg_get_serial_sequence('um.users', 'id')) AS id0 \gset
SET ROLE regress_um_claims_app;
SELECT um_sign_up('ceo@example.com', 'strangers-password') AS ignored \gset
SELECT um_sign_up('quiet@example.com', 'strangers-password') AS ignored \gset
SELECT um_sign_up('heir@example.com', 'strangers-password') AS ignored \gset
SELECT um_sign_up('brand-new-2@example.com', 'strangers-password') AS ignored \gset
RESET ROLE;
SELECT is(nextval(pg_get_serial_sequence('um.users', 'id')) - :id0, 5::bigint,
          'a sign-up draws one user id whether the address is verified, notification-only, unverified or new');
SET ROLE regress_um_claims_app;
SELECT throws_ok(format('SELECT um_verify_email(%L, %L)', :'quiet_again', 'strangers-password'), 'UM053', NULL,
                 'a notification-only address''s secret redeems nothing');
RESET ROLE;
SELECT is((SELECT password_hash FROM um.users WHERE id = :quiet), NULL, '(it still has no password)');

-- verifying can log in: the session is for whoever proves the mailbox and
-- chooses the password, and a refusal undoes the verification too
SET ROLE regress_um_claims_app;
SELECT um_sign_up('newcomer@example.com', 'newcomers-first-try', 'Newcomer') AS nc \gset
SELECT throws_ok(format('SELECT um_verify_email_and_login(%L, NULL)', :'nc'), 'UM059', NULL,
                 'um_verify_email_and_login needs the password (UM059) ...');
SELECT throws_ok(format('SELECT um_verify_email_and_login(%L, %L)', :'nc', 'short'), 'UM068', NULL,
                 '... a good one (UM068)');
SELECT um_verify_email_and_login(:'nc', 'newcomers-password') AS nc_session \gset
BEGIN;
SELECT is(um_begin(:'nc_session'), (SELECT id FROM um.users WHERE email = 'newcomer@example.com'),
          'and returns a session of the verified account');
COMMIT;
SELECT throws_ok(format('SELECT um_verify_email_and_login(%L, %L)', :'nc', 'newcomers-password'), 'UM053', NULL,
                 'the secret is single-use');
SELECT ok(um_login('newcomer@example.com', 'newcomers-password') IS NOT NULL, 'the chosen password logs in');
RESET ROLE;
SELECT is((SELECT count(*) FROM um.audit_events WHERE action = 'user.login' AND target_id = (SELECT id FROM um.users WHERE email = 'newcomer@example.com')),
          2::bigint, 'each session is audited as a login');
-- a suspended account: the mail proves the mailbox, but no session, and nothing changes
SELECT um_create_user('benched@example.com', 'Benched') AS benched \gset
UPDATE um.users SET status = 'suspended' WHERE id = :benched;
SET ROLE regress_um_claims_app;
SELECT um_resend_verification('benched@example.com') AS bt \gset
SELECT throws_ok(format('SELECT um_verify_email_and_login(%L, %L)', :'bt', 'benched-password'), 'UM061', NULL,
                 'a suspended user gets no session (UM061) ...');
RESET ROLE;
SELECT ok((SELECT email_verified_at IS NULL AND password_hash IS NULL FROM um.users WHERE id = :benched),
          '... and the account is as it was: unverified, no password');

-- clean up what this suite committed outside its database
DROP OWNED BY regress_um_claims_app;
DROP ROLE regress_um_claims_app;
SELECT * FROM finish();
