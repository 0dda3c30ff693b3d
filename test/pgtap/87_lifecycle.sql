-- Lifecycle functions: for each, the success path, every refusal with its
-- SQLSTATE, and that a refusal changed nothing.  Like 85_identity this suite
-- commits (refusals by an acting user are audited by a background worker,
-- which sees only committed data); it runs in a database of its own and
-- drops its roles at the end.
--   acme:   ada (Root), carol (Admin), dave (Member)
--   globex: bob (Root), dave (Service Reader)
\ir fixture.psql
\set QUIET 1
SELECT plan(266);

SET um.password_hash_cost = 4;
SET client_min_messages = error;     -- um_act_as outside BEGIN warns that it lasts one statement: here, on purpose
SELECT pg_temp.usr('ada') AS ada, pg_temp.usr('bob') AS bob, pg_temp.usr('carol') AS carol,
       pg_temp.usr('dave') AS dave, pg_temp.org('acme') AS acme, pg_temp.org('globex') AS globex \gset

-- Every row of um's state tables (not the audit trail), hashed: equal before
-- and after a refused call means the call changed nothing.
CREATE FUNCTION pg_temp.snapshot() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  t text;
  r text := '';
  h text;
BEGIN
  -- the tables of um.state_tables that hold data (dumped), but the audit trail
  FOR t IN SELECT s.relname FROM um.state_tables s WHERE s.dump_filter IS NOT NULL AND s.relname <> 'audit_events'
            ORDER BY s.relname LOOP
    EXECUTE format('SELECT md5(coalesce(string_agg(x::text, '','' ORDER BY x::text), '''')) FROM um.%I x', t) INTO h;
    r := r || h;
  END LOOP;
  RETURN md5(r);
END
$$;
-- Run q as user u (NULL: nobody acting); 'ok', or the SQLSTATE it raised,
-- with " CHANGED" appended when a refused call left anything different.
CREATE FUNCTION pg_temp.try_as(u bigint, q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  before text := pg_temp.snapshot();
  st text;
BEGIN
  BEGIN
    IF u IS NOT NULL THEN
      PERFORM um_act_as(u);
    END IF;
    EXECUTE q;
  EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE;
    RETURN st || CASE WHEN pg_temp.snapshot() <> before THEN ' CHANGED' ELSE '' END;
  END;
  RETURN 'ok';
END
$$;
-- Run q as user u and return its first column as text.
CREATE FUNCTION pg_temp.as_(u bigint, q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  r text;
BEGIN
  IF u IS NOT NULL THEN
    PERFORM um_act_as(u);
  END IF;
  EXECUTE q INTO r;
  RETURN r;
END
$$;
CREATE FUNCTION pg_temp.err_detail(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  d text;
BEGIN
  EXECUTE q;
  RETURN NULL;
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
  RETURN d;
END
$$;
CREATE FUNCTION pg_temp.hint_of(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  h text;
BEGIN
  PERFORM um_act_as(pg_temp.usr('ada'));
  EXECUTE q;
  RETURN NULL;
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS h = PG_EXCEPTION_HINT;
  RETURN h;
END
$$;
CREATE FUNCTION pg_temp.role_of(o bigint, u bigint) RETURNS text LANGUAGE sql AS $$
  SELECT r.name FROM um.memberships m JOIN um.roles r ON r.id = m.role_id WHERE m.org_id = o AND m.user_id = u $$;
CREATE FUNCTION pg_temp.audits(text, text) RETURNS bigint LANGUAGE sql
  AS $$ SELECT count(*) FROM um.audit_events WHERE action = $1 AND outcome = $2 $$;

CREATE ROLE regress_um_lc_app NOLOGIN;
CREATE ROLE regress_um_lc_admin NOLOGIN;
CREATE ROLE regress_um_lc_mallory NOLOGIN;
GRANT USAGE ON SCHEMA public TO regress_um_lc_app, regress_um_lc_admin, regress_um_lc_mallory;
SELECT format('GRANT %I TO regress_um_lc_admin', extowner::regrole) FROM pg_extension WHERE extname = 'um' \gexec

-- ---------------------------------------------------------------------------
-- Who may call: an acting user's permission, or a um administrator

SET ROLE regress_um_lc_app;
SELECT throws_ok($$ SELECT um_create_team(1, 'Ops', owner_user_id => 1) $$, 'UM070',
                 'permission denied to create teams in organization 1',
                 'an application role with nobody acting is refused (UM070)');
SET ROLE regress_um_lc_admin;
SELECT lives_ok($$ SELECT um_create_team(1, 'Ops', owner_user_id => 1) $$,
                'a um administrator (member of the extension''s owner) may, from psql, with nobody acting');
RESET ROLE;
SELECT is((SELECT db_role::text FROM um.audit_events WHERE action = 'team.create' ORDER BY id DESC LIMIT 1),
          'regress_um_lc_admin', 'the audit event names the database role that called, not um''s owner');
-- mallory's SECURITY DEFINER function, run by the administrator, gets mallory's rights, not theirs
CREATE FUNCTION public.regress_um_lc_trap() RETURNS bigint LANGUAGE sql SECURITY DEFINER
  AS $$ SELECT um_create_team(1, 'Mallory team', owner_user_id => 1) $$;
ALTER FUNCTION public.regress_um_lc_trap() OWNER TO regress_um_lc_mallory;
SET ROLE regress_um_lc_admin;
SELECT throws_ok($$ SELECT public.regress_um_lc_trap() $$, 'UM070', NULL,
                 'a um administrator running another role''s SECURITY DEFINER function lends it no rights');
RESET ROLE;
SET ROLE regress_um_lc_app;
SELECT throws_ok($$ SELECT um_internal.do_create_team(1, 'x', NULL, 1) $$, '42501', NULL,
                 'nobody may call a body directly, past the entry that names the caller (EXECUTE is revoked)');
RESET ROLE;
SELECT is(pg_temp.try_as(:dave, format('SELECT um_create_team(%s, %L)', :acme, 'Dave team')), 'UM070',
          'an acting user without team:create is refused');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_create_team(%s, %L)', :globex, 'Carol team')), 'UM070',
          'nor may anyone act in an organization they are not in');
SELECT is(pg_temp.try_as(:carol, 'SELECT um_create_team(424242, ''x'')'), 'UM070',
          'an unknown organization gets the permission error first (nothing about it is revealed)');
SELECT is(pg_temp.try_as(NULL, 'SELECT um_create_team(424242, ''x'', owner_user_id => 1)'), 'UM030',
          'a um administrator learns that it does not exist (UM030)');

-- ---------------------------------------------------------------------------
-- Sign-up, verification

SELECT um_sign_up('erin@example.com', 'erin-password', 'Erin') AS erin_token \gset
SELECT pg_temp.usr('erin') AS erin \gset
SELECT matches(:'erin_token'::text, '^um_[A-Za-z0-9_-]{43}$', 'um_sign_up returns a verification token');
SELECT ok((SELECT email_verified_at IS NULL FROM um.users WHERE id = :erin), 'the new user is not verified');
SELECT is((SELECT count(*) FROM um.verification_tokens WHERE token_hash = sha256(convert_to(:'erin_token', 'UTF8'))),
          1::bigint, 'only the token''s SHA-256 is stored');
SELECT throws_ok($$ SELECT um_login('erin@example.com', 'erin-password') $$, 'UM063', NULL,
                 'an unverified user cannot log in (UM063)');
SELECT um_sign_up('ERIN@example.com', 'another-password') AS erin_claim \gset
SELECT matches(:'erin_claim'::text, '^um_[A-Za-z0-9_-]{43}$',
               'a sign-up for an unverified address (in any letter case) answers like a sign-up: a secret for the mailbox');
SELECT is(pg_temp.try_as(NULL, format('SELECT um_verify_email(%L)', :'erin_token')), 'UM053',
          'the earlier token stops working');
SELECT is(pg_temp.try_as(NULL, format('SELECT um_verify_email(%L)', :'erin_claim')), 'UM059',
          'and the claim needs a new password (UM059): the mailbox''s owner chooses it');
SELECT is(pg_temp.try_as(NULL, 'SELECT um_sign_up(''frank@example.com'', ''short'')'), 'UM068',
          'a short password is refused (UM068) and nothing is created');
SELECT is(pg_temp.try_as(NULL, 'SELECT um_sign_up(''not an address'', ''long enough password'')'), 'UM001',
          'an invalid address is refused (UM001)');
SELECT is(um_verify_email(:'erin_claim', 'erin-password'), :erin::bigint, 'um_verify_email returns the user');
SELECT isnt((SELECT email_verified_at FROM um.users WHERE id = :erin), NULL, 'and marks them verified');
SELECT is(pg_temp.try_as(NULL, format('SELECT um_verify_email(%L, %L)', :'erin_claim', 'erin-password')), 'UM053',
          'a verification token works once (UM053)');
SELECT is(pg_temp.try_as(NULL, 'SELECT um_verify_email(''um_forged'')'), 'UM053', 'a forged token is refused');
SELECT um_sign_up('frank@example.com', 'frank-password', 'Frank') AS frank_token \gset
SELECT pg_temp.usr('frank') AS frank \gset
SELECT um_resend_verification('Frank@example.com ') AS frank_token2 \gset
SELECT is(pg_temp.try_as(NULL, format('SELECT um_verify_email(%L)', :'frank_token')), 'UM053',
          'a resent verification replaces the old token');
UPDATE um.verification_tokens SET expires_at = now() - interval '1 second', created_at = now() - interval '2 days'
 WHERE user_id = :frank;
SELECT is(pg_temp.try_as(NULL, format('SELECT um_verify_email(%L)', :'frank_token2')), 'UM053',
          'an expired token is refused');
SELECT ok(um_resend_verification('erin@example.com') IS NULL, 'nothing to resend to a verified user');
SELECT um_add_member(:acme, :frank) AS m \gset
SELECT is(pg_temp.try_as(:dave, format('SELECT um_mark_verified(%s)', :frank)), 'UM070',
          'a Member cannot mark users verified');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_mark_verified(%s)', :frank)), 'UM070',
          'nor an Admin of every organization of the user: vouching for an address is a um administrator''s');
SELECT is(pg_temp.as_(NULL, format('SELECT um_mark_verified(%s)', :frank)), 'true',
          'a um administrator marks them verified (another mechanism)');
SELECT is(pg_temp.as_(NULL, format('SELECT um_mark_verified(%s)', :frank)), 'false', 'once');
UPDATE um.users SET email_verified_at = NULL WHERE id = :dave;
SELECT is(pg_temp.try_as(:carol, format('SELECT um_mark_verified(%s)', :dave)), 'UM070',
          'and no tenant user does it for a user who also belongs to another organization');
UPDATE um.users SET email_verified_at = now() WHERE id = :dave;

-- ---------------------------------------------------------------------------
-- Administrator-created users

-- a member creates accounts only in the organization's own domains: outside
-- them an address registered elsewhere and a new one get the same refusal
SELECT is(pg_temp.try_as(:carol, format('SELECT um_create_user(%s, %L)', :acme, 'gina@example.com')) || ' / ' ||
          pg_temp.try_as(:carol, format('SELECT um_create_user(%s, %L)', :acme, 'ADA@example.com')), 'UM074 / UM074',
          'before acme owns example.com, a new address and a registered one are refused alike (UM074), changing nothing');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_add_org_domain(%s, %L)', :acme, 'example.com')) || ' / ' ||
          pg_temp.try_as(:ada, format('SELECT um_add_org_domain(%s, %L)', :acme, 'example.com')), 'UM070 / UM070',
          'no tenant user records a domain, not even a Root (UM070)');
SELECT is(pg_temp.try_as(NULL, format('SELECT um_add_org_domain(%s, %L)', :acme, 'localhost')) || ' / ' ||
          pg_temp.try_as(NULL, format('SELECT um_add_org_domain(%s, %L)', :acme, 'ex ample.com')) || ' / ' ||
          pg_temp.try_as(NULL, format('SELECT um_add_org_domain(%s, NULL)', :acme)), 'UM012 / UM012 / UM012',
          'an invalid domain is refused (UM012)');
SELECT is(pg_temp.try_as(NULL, format('SELECT um_add_org_domain(%s, %L)', 999999, 'example.com')), 'UM030',
          'so is an unknown organization (UM030)');
SELECT is(pg_temp.as_(NULL, format('SELECT um_add_org_domain(%s, %L)', :acme, ' Example.COM ')) || ' / ' ||
          pg_temp.as_(NULL, format('SELECT um_add_org_domain(%s, %L)', :acme, 'example.com')), 'true / false',
          'a um administrator records it (after the backend checked DNS), in lowercase; again, nothing new');
SELECT is(pg_temp.try_as(NULL, format('SELECT um_add_org_domain(%s, %L)', :globex, 'example.com')), 'UM028',
          'one organization owns a domain (UM028)');
SELECT is((SELECT string_agg(domain || '=' || (org_id = :acme), ',') FROM um.organization_domains), 'example.com=true',
          'um.organization_domains holds it');
SELECT is((SELECT count(*) FROM um.audit_events WHERE action = 'org.domain_add' AND outcome = 'ok' AND org_id = :acme
              AND target_type = 'organization_domain'
              AND target_id = (SELECT id FROM um.organization_domains WHERE domain = 'example.com')), 1::bigint,
          'recording it is audited once, naming the record by its id');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_create_user(%s, %L)', :acme, 'hank@other.example')), 'UM074',
          'other domains stay refused');


SELECT (pg_temp.as_(:carol, format('SELECT row_to_json(c)::text FROM um_create_user(%s, %L, %L, %L) c',
                                   :acme, 'gina@example.com', 'Service Editor', 'Gina')))::json AS gina_row \gset
SELECT pg_temp.usr('gina') AS gina \gset
SELECT is(pg_temp.role_of(:acme, :gina), 'Service Editor', 'um_create_user(org, ...) makes the user a member with the role');
SELECT ok((SELECT must_change_password AND password_hash IS NOT NULL FROM um.users WHERE id = :gina),
          'with a temporary password that must be changed');
SELECT is(length((:'gina_row'::json)->>'temporary_password'), 20, 'returned once (20 characters, 120 random bits)');
SELECT throws_ok(format('SELECT um_login(%L, %L)', 'gina@example.com', (:'gina_row'::json)->>'temporary_password'),
                 'UM063', NULL, 'email verification is still required');
SELECT is((:'gina_row'::json)->>'verification_token', NULL,
          'an acting Admin gets no verification secret: it would let them verify an address they do not own');
UPDATE um.users SET email_verified_at = now() WHERE id = :gina;   -- (verified by the mailbox, as below)
SELECT throws_ok(format('SELECT um_login(%L, %L)', 'gina@example.com', (:'gina_row'::json)->>'temporary_password'),
                 'UM064', NULL, 'then the temporary password must be changed first (UM064)');
SELECT matches(um_change_password('gina@example.com', (:'gina_row'::json)->>'temporary_password', 'gina-own-password'),
               '^um_', 'um_change_password accepts it and logs in');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_create_user(%s, %L, %L)', :acme, 'hank@example.com', 'Root')), 'UM073',
          'an Admin cannot create a Root (escalation, UM073)');
SELECT is(pg_temp.try_as(:dave, format('SELECT um_create_user(%s, %L)', :acme, 'hank@example.com')), 'UM070',
          'a Member cannot create users');
SELECT is(pg_temp.try_as(:carol, 'SELECT um_create_user(''hank@example.com'')'), 'UM070',
          'an acting user cannot create a user outside an organization');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_create_user(%s, %L)', :acme, 'ADA@example.com')), 'UM020',
          'an existing address is refused (UM020)');
SELECT is(pg_temp.as_(:carol, format('SELECT temporary_password IS NULL FROM um_create_user(%s, %L, allow_login => false)',
                                     :acme, 'notify@example.com')), 'true',
          'a notification-only user gets no password');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_remove_org_domain(%s, %L)', :acme, 'example.com')), 'UM070',
          'no tenant user removes a domain (UM070)');
SELECT is(pg_temp.as_(NULL, format('SELECT um_remove_org_domain(%s, %L)', :globex, 'example.com')), 'false',
          'removing a domain the organization does not own removes nothing');
SELECT is(pg_temp.as_(NULL, format('SELECT um_remove_org_domain(%s, %L)', :acme, 'EXAMPLE.com')) || ' / ' ||
          pg_temp.try_as(:carol, format('SELECT um_create_user(%s, %L)', :acme, 'ivy@example.com')) || ' / ' ||
          pg_temp.as_(NULL, format('SELECT um_add_org_domain(%s, %L)', :acme, 'example.com')),
          'true / UM074 / true', 'once removed, its members create no accounts there (until it is recorded again)');

-- ---------------------------------------------------------------------------
-- Login on and off

SELECT pg_temp.usr('notify') AS notify \gset
SELECT is(length(pg_temp.as_(:carol, format('SELECT um_enable_login(%s)', :notify))), 20,
          'enabling login for a user with no way to sign in returns a temporary password');
SELECT ok(pg_temp.as_(:carol, format('SELECT um_enable_login(%s)', :notify)) IS NULL, 'and nothing when it is already on');
SELECT um_login('gina@example.com', 'gina-own-password') AS gina_token \gset
SELECT is(pg_temp.as_(:carol, format('SELECT um_disable_login(%s)', :gina)), 'true', 'um_disable_login');
SELECT throws_ok(format('SELECT um_begin(%L)', :'gina_token'), 'UM067', NULL, 'ends the user''s sessions');
SELECT throws_ok($$ SELECT um_login('gina@example.com', 'gina-own-password') $$, 'UM062', NULL, 'and login (UM062)');
SELECT ok(pg_temp.as_(:carol, format('SELECT um_enable_login(%s)', :gina)) IS NULL,
          'enabling it again gives no password to a user who has one');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_disable_login(%s)', :ada)), 'UM073',
          'an Admin cannot take a Root''s login');
SELECT is(pg_temp.try_as(NULL, format('SELECT um_disable_login(%s)', :ada)), 'UM044',
          'nobody takes the login of an organization''s last active Root (UM044)');
SELECT is(pg_temp.try_as(:dave, format('SELECT um_disable_login(%s)', :gina)), 'UM070', 'a Member cannot');

-- ---------------------------------------------------------------------------
-- Suspension keeps everything and blocks all access; reactivation restores exactly

-- every answer for dave: each permission in each organization, and on each scope node
CREATE TABLE public.regress_um_lc_answers AS SELECT 0 AS phase, NULL::text AS answer WHERE false;
INSERT INTO um.scopes (org_id, kind, name) VALUES (:acme, 'project', 'Apollo') RETURNING id AS apollo \gset
SELECT um_grant_scope_role(:apollo, 'Service Editor', user_id => :dave) AS g \gset
CREATE FUNCTION pg_temp.answers() RETURNS text LANGUAGE sql AS $$
  SELECT string_agg(format('%s/%s/%s=%s', o.id, s.id, p.name,
                           CASE WHEN s.id IS NULL THEN um_has_permission(pg_temp.usr('dave'), p.name, o.id)
                                ELSE um_has_permission(pg_temp.usr('dave'), p.name, o.id, s.id) END), ' '
                    ORDER BY o.id, s.id, p.name)
    FROM um.permissions p CROSS JOIN um.organizations o
    LEFT JOIN um.scopes s ON s.org_id = o.id $$;
SELECT pg_temp.answers() AS before_suspension \gset
SELECT ok(:'before_suspension' LIKE '%=t%', 'dave holds permissions before');
SELECT pg_temp.counts() AS counts_before \gset
SELECT is(pg_temp.try_as(:carol, format('SELECT um_suspend_user(%s)', :dave)), 'UM070',
          'an Admin of one of the user''s organizations cannot suspend the whole account');
SELECT is(pg_temp.try_as(NULL, format('SELECT um_suspend_user(%s)', :dave)), 'ok',
          'a um administrator suspends dave everywhere');
SELECT ok(pg_temp.answers() NOT LIKE '%=t%', 'suspension blocks every permission, on every node');
SELECT is(replace(pg_temp.counts(), ' ', ''), replace(regexp_replace(:'counts_before', 'audit_events=[0-9]+', 'audit_events=' ||
          (SELECT count(*) FROM um.audit_events)), ' ', ''),
          'and keeps every row (memberships, grants, teams, ...)');
SELECT is(pg_temp.try_as(NULL, format('SELECT um_suspend_user(%s)', :dave)), 'UM051', 'suspending twice is refused (UM051)');
SELECT is(pg_temp.try_as(NULL, format('SELECT um_reactivate_user(%s)', :dave)), 'ok', 'um_reactivate_user');
SELECT is(pg_temp.answers(), :'before_suspension', 'reactivation restores exactly the previous answers');
SELECT is(pg_temp.try_as(NULL, format('SELECT um_reactivate_user(%s)', :dave)), 'UM051', 'reactivating an active user is refused');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_suspend_user(%s, %s)', :dave, :acme)), 'ok',
          'an Admin suspends a member in their organization');
SELECT ok(NOT um_has_permission(:dave, 'org:read', :acme) AND um_has_permission(:dave, 'org:read', :globex),
          'which blocks that organization only');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_reactivate_user(%s, %s)', :dave, :acme)), 'ok', 'and reactivates them');
SELECT is(pg_temp.answers(), :'before_suspension', 'with exactly the previous answers again');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_suspend_user(%s, %s)', :ada, :acme)), 'UM073',
          'an Admin never suspends a Root (UM073)');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_suspend_user(%s, %s)', :carol, :acme)), 'UM051', 'nobody suspends themself');
SELECT is(pg_temp.try_as(NULL, format('SELECT um_suspend_user(%s)', :bob)), 'UM044',
          'the last active Root of an organization is not suspended (UM044)');
SELECT is(pg_temp.try_as(:dave, format('SELECT um_suspend_user(%s, %s)', :gina, :acme)), 'UM070', 'a Member cannot suspend');

-- ---------------------------------------------------------------------------
-- Organization roles and ownership

SELECT is(pg_temp.try_as(:carol, format('SELECT um_set_org_role(%s, %s, %L)', :acme, :gina, 'Service Operator')), 'ok',
          'an Admin changes a member''s role');
SELECT is(pg_temp.role_of(:acme, :gina), 'Service Operator', 'to the new role');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_set_org_role(%s, %s, %L)', :acme, :gina, 'Root')), 'UM073',
          'but never to Root (a role with permissions the Admin lacks)');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_set_org_role(%s, %s, %L)', :acme, :ada, 'Member')), 'UM073',
          'and never demotes a Root');
SELECT is(pg_temp.try_as(:ada, format('SELECT um_set_org_role(%s, %s, %L)', :acme, :ada, 'Admin')), 'UM044',
          'the last Root cannot step down (UM044)');
SELECT is(pg_temp.try_as(:dave, format('SELECT um_set_org_role(%s, %s, %L)', :acme, :gina, 'Member')), 'UM070',
          'a Member cannot change roles');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_set_org_role(%s, %s, %L)', :acme, :gina, 'Overlord')), 'UM032',
          'an unknown role is named (UM032)');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_set_org_role(%s, %s, %L)', :acme, :bob, 'Member')), 'UM035',
          'a non-member is named (UM035)');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_transfer_org_ownership(%s, %s)', :acme, :carol)), 'UM070',
          'an Admin cannot transfer ownership (org:update)');
SELECT um_grant_permission(pg_temp.role('acme', 'admin'), 'org:update') AS ignored \gset
SELECT is(pg_temp.try_as(:carol, format('SELECT um_transfer_org_ownership(%s, %s)', :acme, :carol)), 'UM073',
          'not even with org:update: only a Root transfers ownership');
SELECT um_revoke_permission(pg_temp.role('acme', 'admin'), 'org:update') AS ignored \gset
SELECT is(pg_temp.try_as(:ada, format('SELECT um_transfer_org_ownership(%s, %s)', :acme, :carol)), 'ok',
          'a Root transfers ownership to a member');
SELECT is(pg_temp.role_of(:acme, :carol) || '/' || pg_temp.role_of(:acme, :ada), 'Root/Admin',
          'who becomes Root while the old Root becomes Admin, in one step');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_transfer_org_ownership(%s, %s)', :acme, :ada)), 'ok', 'and back');
SELECT um_disable_login(:notify) AS ignored \gset
SELECT is(pg_temp.try_as(:ada, format('SELECT um_transfer_org_ownership(%s, %s)', :acme, :notify)), 'UM050',
          'never to a user who cannot log in... (UM050)');

-- ---------------------------------------------------------------------------
-- Custom roles and their permissions

SELECT is(pg_temp.try_as(:carol, format('SELECT um_create_role(%s, %L, %L)', :acme, 'Biller', '{billing:*}')), 'UM073',
          'an Admin cannot create a role with permissions they lack (billing:*)');
SELECT is(pg_temp.try_as(:ada, format('SELECT um_create_role(%s, %L, %L)', :acme, 'Biller', '{billing:*}')), 'ok',
          'a Root can');
SELECT pg_temp.role('acme', 'Biller') AS biller \gset
SELECT is(pg_temp.try_as(:carol, format('SELECT um_set_org_role(%s, %s, %L)', :acme, :gina, 'Biller')), 'UM073',
          'and an Admin cannot hand that role out');
SELECT is(pg_temp.try_as(:ada, format('SELECT um_create_role(%s, %L)', :acme, 'BILLER')), 'UM026',
          'role names are unique regardless of case (UM026)');
SELECT is(pg_temp.try_as(:ada, format('SELECT um_create_role(%s, %L, %L)', :acme, 'Bad', '{nosuch:thing}')), 'UM011',
          'unknown permissions are refused (UM011)');
SELECT is(pg_temp.try_as(:ada, format('SELECT um_create_role(%s, %L, %L)', :acme, 'Bad', '{Not A Permission}')), 'UM010',
          'malformed ones too (UM010)');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_create_role(%s, %L, %L)', :acme, 'Reporter', '{service:read,template:*}')), 'ok',
          'an Admin creates a role from permissions they hold (patterns included)');
SELECT pg_temp.role('acme', 'Reporter') AS reporter \gset
SELECT is(pg_temp.as_(:carol, format('SELECT um_grant_permission(%s, %L)', :reporter, 'instance:read')), 'true',
          'um_grant_permission adds a permission');
SELECT is(pg_temp.as_(:carol, format('SELECT um_grant_permission(%s, %L)', :reporter, 'instance:read')), 'false', 'once');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_grant_permission(%s, %L)', :reporter, 'billing:update')), 'UM073',
          'not one the Admin lacks');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_grant_permission(%s, %L)', pg_temp.role('acme', 'admin'), 'billing:update')),
          'UM073', 'not even to their own role');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_revoke_permission(%s, %L)', pg_temp.role('acme', 'root'), 'billing:read')),
          'UM073', 'only a Root edits the Root role');
SELECT is(pg_temp.as_(:ada, format('SELECT um_grant_permission(%s, %L)', pg_temp.role('acme', 'member'), 'service:read')),
          'true', 'built-in roles are editable');
SELECT ok(um_has_permission(:frank, 'service:read', :acme), 'and members of the role get it at once');
SELECT is(pg_temp.as_(:ada, format('SELECT um_revoke_permission(%s, %L)', pg_temp.role('acme', 'member'), 'service:read')),
          'true', 'um_revoke_permission');
SELECT ok(NOT um_has_permission(:frank, 'service:read', :acme), 'takes it away');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_delete_role(%s)', pg_temp.role('acme', 'member'))), 'UM042',
          'built-in roles cannot be deleted (UM042)');
SELECT um_set_org_role(:acme, :frank, 'Reporter') AS ignored \gset
SELECT is(pg_temp.try_as(:carol, format('SELECT um_delete_role(%s)', :reporter)), 'UM049',
          'a role still held as organization role is not deleted (UM049)');
SELECT um_set_org_role(:acme, :frank, 'Member') AS ignored \gset
SELECT is(pg_temp.try_as(:dave, format('SELECT um_delete_role(%s)', :reporter)), 'UM070', 'a Member cannot delete roles');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_delete_role(%s)', :reporter)), 'ok', 'an Admin deletes a custom role');

-- ---------------------------------------------------------------------------
-- Scope roles

SELECT is(pg_temp.as_(NULL, format('SELECT um_has_permission(%s, ''service:update'', %s, %s)', :dave, :acme, :apollo)), 'true',
          'um_grant_scope_role gave dave Service Editor on Apollo (above)');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_grant_scope_role(%s, %L, user_id => %s)', :apollo, 'Biller', :dave)), 'UM073',
          'an Admin cannot give a role with permissions they lack on that node');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_grant_scope_role(%s, %L, user_id => %s, team_id => 1)', :apollo, 'Member', :dave)),
          'UM009', 'exactly one grantee (UM009)');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_grant_scope_role(%s, %L, user_id => %s)', :apollo, 'Member', :bob)), 'UM035',
          'only members of the organization');
SELECT is(pg_temp.try_as(:dave, format('SELECT um_grant_scope_role(%s, %L, user_id => %s)', :apollo, 'Member', :gina)), 'UM070',
          'a Member cannot grant');
SELECT is(pg_temp.as_(:carol, format('SELECT um_revoke_scope_role(%s, %L, user_id => %s)', :apollo, 'Service Editor', :dave)),
          'true', 'um_revoke_scope_role');
SELECT ok(NOT um_has_permission(:dave, 'service:update', :acme, :apollo), 'takes the node''s role away');
SELECT is(pg_temp.as_(:carol, format('SELECT um_revoke_scope_role(%s, %L, user_id => %s)', :apollo, 'Service Editor', :dave)),
          'false', 'once');

-- ---------------------------------------------------------------------------
-- Teams

SELECT pg_temp.as_(:carol, format('SELECT um_create_team(%s, %L, %L)', :acme, 'Platform', 'the platform team'))::bigint AS platform \gset
SELECT is((SELECT user_id FROM um.team_members WHERE team_id = :platform AND is_owner), :carol::bigint,
          'um_create_team makes the creator its owner');
SELECT ok((SELECT scope_id IS NOT NULL FROM um.teams WHERE id = :platform), 'with a team space');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_create_team(%s, %L)', :acme, 'PLATFORM')), 'UM025',
          'team names are unique regardless of case (UM025)');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_create_team(%s, %L, owner_user_id => %s)', :acme, 'Other', :bob)), 'UM035',
          'the owner must be a member');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_add_team_member(%s, %s, %L)', :platform, :dave, '{Service Reader}')), 'ok',
          'um_add_team_member with team roles');
SELECT ok(um_has_permission(:dave, 'instance:delete', :acme, (SELECT scope_id FROM um.teams WHERE id = :platform)),
          'the team role applies in the team''s space');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_add_team_member(%s, %s)', :platform, :dave)), 'UM024',
          'a second time is refused (UM024)');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_add_team_member(%s, %s)', :platform, :bob)), 'UM035',
          'only organization members join teams (UM035)');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_add_team_member(%s, %s, %L)', :platform, :gina, '{Biller}')), 'UM073',
          'team roles follow the escalation guard too');
SELECT is(pg_temp.try_as(:dave, format('SELECT um_add_team_member(%s, %s)', :platform, :gina)), 'UM070',
          'a team member without team:manage cannot add members');
SELECT is(pg_temp.as_(:carol, format('SELECT um_grant_team_role(%s, %s, %L)', :platform, :dave, 'Service Operator')), 'true',
          'um_grant_team_role');
SELECT is(pg_temp.as_(:carol, format('SELECT um_revoke_team_role(%s, %s, %L)', :platform, :dave, 'Service Operator')), 'true',
          'um_revoke_team_role');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_grant_team_role(%s, %s, %L)', :platform, :gina, 'Member')), 'UM038',
          'team roles only for team members (UM038)');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_remove_team_member(%s, %s)', :platform, :carol)), 'UM043',
          'the owner cannot be removed (UM043)');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_remove_member(%s, %s)', :acme, :carol)), 'UM043',
          'nor leave the organization while owning a team with members');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_transfer_team_ownership(%s, %s)', :platform, :gina)), 'UM038',
          'ownership goes only to a team member');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_transfer_team_ownership(%s, %s)', :platform, :dave)), 'ok',
          'um_transfer_team_ownership');
SELECT is(pg_temp.try_as(:dave, format('SELECT um_add_team_member(%s, %s)', :platform, :gina)), 'ok',
          'the new owner manages the team without team:manage');
SELECT is(pg_temp.try_as(:dave, format('SELECT um_add_team_member(%s, %s, %L)', :platform, :frank, '{Service Editor}')), 'UM073',
          'but gives no team role they lack in the team''s space');
SELECT is(pg_temp.try_as(:dave, format('SELECT um_remove_team_member(%s, %s)', :platform, :gina)), 'ok', 'um_remove_team_member');
SELECT is(pg_temp.try_as(:dave, format('SELECT um_rename_team(%s, %L)', :platform, 'Core')), 'UM070',
          'renaming needs team:update');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_rename_team(%s, %L)', :platform, 'Core')), 'ok', 'um_rename_team');
SELECT is((SELECT name FROM um.teams WHERE id = :platform), 'Core', 'renamed');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_delete_team(%s)', :platform)), 'ok', 'um_delete_team');
SELECT is((SELECT count(*) FROM um.team_members WHERE team_id = :platform), 0::bigint, 'takes its members along');

-- ---------------------------------------------------------------------------
-- Members

SELECT um_grant_scope_role(:apollo, 'Service Editor', user_id => :frank) AS g \gset
SELECT is(pg_temp.try_as(:carol, format('SELECT um_remove_member(%s, %s)', :acme, :ada)), 'UM073',
          'an Admin never removes a Root');
SELECT is(pg_temp.try_as(:dave, format('SELECT um_remove_member(%s, %s)', :acme, :frank)), 'UM070', 'a Member removes nobody');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_remove_member(%s, %s)', :acme, :frank)), 'ok', 'um_remove_member');
SELECT is((SELECT count(*) FROM um.grants WHERE user_id = :frank), 0::bigint, 'takes the member''s grants along');
SELECT um_add_member(:acme, :frank) AS m \gset
SELECT ok(NOT um_has_permission(:frank, 'service:update', :acme, :apollo), 're-adding starts afresh, without the old grants');
SELECT is(pg_temp.try_as(:frank, format('SELECT um_remove_member(%s, %s)', :acme, :frank)), 'ok',
          'a member may leave without any permission');
SELECT is(pg_temp.try_as(:bob, format('SELECT um_remove_member(%s, %s)', :globex, :bob)), 'UM044',
          'the last Root cannot leave an organization with members');
SELECT um_add_member(:acme, :frank) AS m \gset

-- ---------------------------------------------------------------------------
-- Invitations

SELECT is(pg_temp.try_as(:dave, format('SELECT count(*) FROM um_invite(%s, %L)', :acme, 'x@example.com')), 'UM070',
          'a Member cannot invite');
SELECT is(pg_temp.try_as(:carol, format('SELECT count(*) FROM um_invite(%s, %L, %L)', :acme, 'x@example.com', 'Root')), 'UM073',
          'an Admin never invites a Root');
SELECT is(pg_temp.try_as(:carol, format('SELECT count(*) FROM um_invite(%s, %L)', :acme,
                                        E'ok@example.com, bad address; also@bad\nfine@example.com')), 'UM054',
          'one invalid address rejects the whole batch (UM054)');
SELECT throws_ok(format($q$SELECT um_act_as(%s); SELECT * FROM um_invite(%s, %L)$q$, :carol, :acme,
                        E'ok@example.com, bad address; also@bad\nfine@example.com'),
                 'UM054', '2 of 4 email addresses are invalid; nobody was invited', 'and the error counts them ...');
CREATE TEMP TABLE inv AS SELECT * FROM um_invite(:acme, E'  Ivy@example.com ;jack@example.com,\n\nivy@EXAMPLE.com\r\nDAVE@example.com,kate@example.com', 'Service Reader');
SELECT is((SELECT string_agg(email || ':' || status, ' ' ORDER BY email) FROM inv),
          'DAVE@example.com:already_member Ivy@example.com:invited jack@example.com:invited kate@example.com:invited',
          'a batch is split on commas, semicolons and new lines, trimmed and de-duplicated; members are skipped');
SELECT is((SELECT count(*) FROM um.invitations i JOIN inv ON inv.invitation_id = i.id
            WHERE i.token_hash = sha256(convert_to(inv.token, 'UTF8')) AND position(inv.token IN i::text) = 0),
          3::bigint, 'tokens are random and stored only hashed');
SELECT is(pg_temp.try_as(NULL, 'SELECT count(*) FROM um_invite(1, ''kate@example.com'')'), 'ok', 'inviting again ...');
SELECT is((SELECT count(*) FROM um.invitations WHERE lower(email) = 'kate@example.com' AND state = 'pending'), 1::bigint,
          '... renews the one open invitation');
SELECT um_invite(:acme, 'kate@example.com') AS kate_inv \gset
SELECT (um_invite(:acme, 'kate@example.com')).token AS kate_token \gset
SELECT is(pg_temp.try_as(NULL, format('SELECT um_accept_invitation(%L, %L)', (SELECT token FROM inv WHERE email = 'kate@example.com'),
                                      'kate-password')), 'UM053', 'a renewed invitation''s old token no longer works');
SELECT is(pg_temp.try_as(NULL, format('SELECT um_accept_invitation(%L)', :'kate_token')), 'UM068',
          'a new user must choose a password (UM068)');
SELECT um_accept_invitation(:'kate_token', 'kate-password', 'Kate') AS kate \gset
SELECT is(pg_temp.role_of(:acme, :kate), 'Member', 'accepting makes the new user a member with the preset role');
SELECT is((SELECT email_verified_at FROM um.users WHERE id = :kate), NULL,
          'unverified: the inviter saw the token, so it proves nothing about the mailbox');
SELECT um_resend_verification('kate@example.com') AS kate_verify \gset
SELECT is(um_verify_email(:'kate_verify', 'kate-password'), :kate::bigint, 'the mailbox''s secret verifies it');
SELECT matches(um_login('kate@example.com', 'kate-password'), '^um_', 'and then kate can log in');
SELECT is(pg_temp.try_as(NULL, format('SELECT um_accept_invitation(%L, %L)', :'kate_token', 'kate-password')), 'UM053',
          'an invitation is accepted once (UM053)');
SELECT is(pg_temp.try_as(NULL, format('SELECT um_accept_invitation(%L, %L)', (SELECT token FROM inv WHERE email = 'jack@example.com'),
                                      'jack-password')), 'ok', 'jack accepts (Service Reader)');
SELECT is(pg_temp.role_of(:acme, pg_temp.usr('jack')), 'Service Reader', 'with the role of the invitation');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_revoke_invitation(%s)', (SELECT invitation_id FROM inv WHERE email = 'Ivy@example.com'))),
          'ok', 'um_revoke_invitation');
SELECT is(pg_temp.try_as(NULL, format('SELECT um_accept_invitation(%L, %L)', (SELECT token FROM inv WHERE email = 'Ivy@example.com'),
                                      'ivy-password')), 'UM053', 'a revoked invitation cannot be accepted');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_revoke_invitation(%s)', (SELECT invitation_id FROM inv WHERE email = 'Ivy@example.com'))),
          'UM053', 'nor revoked twice');
SELECT (um_invite(:globex, 'ada@example.com')).token AS ada_globex \gset
SELECT is(pg_temp.try_as(:dave, format('SELECT um_accept_invitation(%L)', :'ada_globex')), 'UM056',
          'an invitation for another account is refused (UM056)');
SELECT is(pg_temp.as_(:ada, format('SELECT um_accept_invitation(%L)', :'ada_globex'))::bigint, :ada::bigint,
          'an existing user accepts logged in');
SELECT (um_invite(:globex, 'lou@example.com', valid_for => '1 second')).token AS lou_token \gset
UPDATE um.invitations SET expires_at = now() - interval '1 second', created_at = now() - interval '1 day'
 WHERE lower(email) = 'lou@example.com';
SELECT is(pg_temp.try_as(NULL, format('SELECT um_accept_invitation(%L, %L)', :'lou_token', 'lou-password')), 'UM053',
          'an expired invitation is refused');
SELECT is(um_expire_invitations(), 1, 'um_expire_invitations marks it expired');
SELECT is(pg_temp.try_as(NULL, format('SELECT um_request_invitation(%L, %L)', 'acme', 'max@example.com')), 'UM055',
          'requests need the organization''s consent (UM055)');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_set_org_setting(%s, %L, %L)', :acme, 'allow_invite_requests', 'true')), 'UM070',
          'an Admin cannot change organization settings (org:update)');
SELECT is(pg_temp.try_as(:ada, format('SELECT um_set_org_setting(%s, %L, %L)', :acme, 'allow_invite_requests', '"yes"')), 'UM009',
          'a setting of the wrong type is refused (UM009)');
SELECT is(pg_temp.try_as(:ada, format('SELECT um_set_org_setting(%s, %L, %L)', :acme, 'allow_invite_requests', 'yes')) || ' / ' ||
          pg_temp.try_as(:ada, format('SELECT um_set_org_setting(%s, %L, %L)', :acme, 'name', 'Acme Inc.')) || ' / ' ||
          pg_temp.try_as(:ada, format('SELECT um_set_org_setting(%s, %L, %L)', :acme, 'theme', 'dark')),
          'UM009 / UM009 / UM009', 'a value that is not JSON is UM009, never a raw parse error (22P02), and changes nothing');
SELECT is(pg_temp.try_as(:ada, format('SELECT um_set_org_setting(%s, %L, %L)', :acme, 'theme', '"\u0000"')) || ' / ' ||
          pg_temp.try_as(:ada, format('SELECT um_set_org_setting(%s, %L, %L)', :acme, 'theme', repeat('[', 100000))),
          'UM009 / UM009', 'so is JSON PostgreSQL cannot store (a \u0000 escape, nesting too deep), never 22P05 or 54001');
SELECT is(pg_temp.hint_of(format('SELECT um_set_org_setting(%s, %L, %L)', :acme, 'allow_invite_requests', 'yes')), 'Pass true or false.',
          '... with a hint that names the type the setting takes');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_set_org_setting(%s, %L, %L)', :acme, 'theme', 'not json')), 'UM070',
          '(the permission comes first: an Admin without org:update learns nothing of the value)');
SELECT is(pg_temp.try_as(:ada, format('SELECT um_set_org_setting(%s, %L, %L)', :acme, 'allow_invite_requests', 'true')), 'ok',
          'a Root allows invitation requests');
SELECT lives_ok($$ SELECT um_request_invitation('acme', 'max@example.com') $$, 'um_request_invitation');
SELECT is((SELECT state FROM um.invitations WHERE email = 'max@example.com'), 'requested', 'records a request');
SELECT is((SELECT status FROM um_invite(:acme, 'max@example.com')), 'renewed', 'which an invitation approves');

-- ---------------------------------------------------------------------------
-- Settings and single sign-on

SELECT is(pg_temp.try_as(:ada, format('SELECT um_set_org_setting(%s, %L, %L)', :acme, 'password_login_disabled', 'true')), 'UM045',
          'password login cannot be turned off without an identity provider (UM045)');
SELECT is(pg_temp.try_as(:ada, format('SELECT um_add_identity_provider(%s, %L, %L, %L)', :acme, 'Okta', 'oidc', 'https://acme.okta.com')),
          'ok', 'um_add_identity_provider');
SELECT is(pg_temp.try_as(:ada, format('SELECT um_set_org_setting(%s, %L, %L)', :acme, 'password_login_disabled', 'true')), 'UM045',
          'nor before a Root has an identity-provider link (no lock-out)');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_link_identity(%s, %L, %L, %s)', :acme, 'Okta', 'sub-ada', :ada)), 'UM073',
          'an Admin cannot link a Root''s identity');
SELECT is(pg_temp.try_as(:ada, format('SELECT um_link_identity(%s, %L, %L)', :acme, 'Okta', 'sub-ada')), 'ok', 'um_link_identity');
UPDATE um.users SET email_verified_at = now() WHERE id = :carol;   -- (someone else's account: only a verified one)
SELECT is(pg_temp.try_as(:ada, format('SELECT um_link_identity(%s, %L, %L, %s)', :acme, 'Okta', 'sub-ada', :carol)), 'UM027',
          'a subject identifies one user (UM027)');
SELECT is(pg_temp.try_as(:ada, format('SELECT um_link_identity(%s, %L, %L)', :acme, 'Nope', 'x')), 'UM037',
          'an unknown provider is named (UM037)');
SELECT is(pg_temp.try_as(:ada, format('SELECT um_set_org_setting(%s, %L, %L)', :acme, 'password_login_disabled', 'true')), 'ok',
          'then password login can be turned off');
SELECT throws_ok($$ SELECT um_login('kate@example.com', 'kate-password') $$, 'UM065', NULL, 'and password logins are refused');
SELECT um_set_org_setting(:acme, 'password_login_disabled', 'false') AS ignored \gset
SELECT um_set_org_setting(:acme, 'theme', '"dark"') AS ignored \gset
SELECT is((SELECT settings->>'theme' FROM um.organizations WHERE id = :acme), 'dark', 'application settings are kept');

-- ---------------------------------------------------------------------------
-- Export

SELECT is((SELECT count(*) FROM um_export_users(:acme)), (SELECT count(*) FROM um.memberships WHERE org_id = :acme),
          'um_export_users: a row per member');
SELECT is((SELECT org_role FROM um_export_users(:acme) WHERE user_id = :ada), 'Root', 'with the organization role');
SELECT is(jsonb_array_length(um_export_users_json(:acme)->'users'), (SELECT count(*)::int FROM um.memberships WHERE org_id = :acme),
          'um_export_users_json: the same as JSON');
SELECT is(pg_temp.try_as(:dave, format('SELECT count(*) FROM um_export_users(%s)', :acme)), 'UM070', 'a Member cannot export');
SELECT is(pg_temp.as_(:dave, 'SELECT um_export_my_data()->''profile''->>''email'''), 'dave@example.com',
          'um_export_my_data: the acting user''s own data');
SELECT is(pg_temp.as_(:dave, 'SELECT jsonb_array_length(um_export_my_data()->''memberships'')')::int, 2, 'with their memberships');
SELECT is(pg_temp.try_as(NULL, 'SELECT um_export_my_data()'), 'UM072', 'it needs an acting user (UM072)');

-- ---------------------------------------------------------------------------
-- Deletion (GDPR)

SELECT (um_create_user(:acme, 'nina@example.com', 'Member', 'Nina Example', timezone => 'Europe/Paris')).user_id AS nina \gset
UPDATE um.users SET mobile = '+33612345678' WHERE id = :nina;
SELECT um_mark_verified(:nina) AS ignored \gset
SELECT um_set_password(:nina, 'nina-password', false) AS ignored \gset
SELECT um_login('nina@example.com', 'nina-password') AS t \gset
SELECT um_create_team(:acme, 'Nina team', owner_user_id => :nina) AS nina_team \gset
SELECT um_add_team_member(:nina_team, :dave) AS ignored \gset
SELECT um_link_identity(:acme, 'Okta', 'sub-nina', :nina) AS ignored \gset
SELECT count(*) FROM um_invite(:globex, 'nina@example.com') AS ignored \gset
CREATE TABLE public.regress_um_lc_orders (id int PRIMARY KEY, owner bigint REFERENCES um.users);
INSERT INTO public.regress_um_lc_orders VALUES (1, :nina);
SELECT is(pg_temp.try_as(:carol, format('SELECT um_delete_user(%s)', :nina)), 'UM052',
          'a team owner with other team members cannot be deleted (UM052)');
SELECT um_transfer_team_ownership(:nina_team, :dave) AS ignored \gset
SELECT throws_ok(format('SELECT um_delete_user(%s)', :nina), 'UM052',
                 format('user %s cannot be deleted yet', :nina),
                 'nor a user whom application rows still reference ...');
SELECT is(pg_temp.as_(NULL, format($q$SELECT pg_temp.err_detail('SELECT um_delete_user(%s)')$q$, :nina)),
          'Rows of table public.regress_um_lc_orders still reference the user (column owner).', '... and the error names the table');
SELECT is(pg_temp.try_as(:dave, format('SELECT um_delete_user(%s)', :nina)), 'UM070', 'a Member cannot delete users');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_delete_user(%s)', :ada)), 'UM070',
          'an Admin of one organization cannot delete a user who belongs to another (ada joined globex)');
SELECT is(pg_temp.try_as(NULL, format('SELECT um_delete_user(%s)', :ada)), 'UM052',
          'the sole Root of an organization with other members is not deleted');
SELECT is(pg_temp.try_as(:ada, 'SELECT um_delete_my_account()'), 'UM052', 'not even by themself');
DELETE FROM public.regress_um_lc_orders;
SELECT is(pg_temp.try_as(:carol, format('SELECT um_delete_user(%s)', :nina)), 'ok', 'an Admin deletes the user');
-- search every column of every um table for the personal data
CREATE FUNCTION pg_temp.mentions(needle text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  t record;
  n bigint;
  r text := '';
BEGIN
  FOR t IN SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'um'::regnamespace AND c.relkind = 'r' ORDER BY 1 LOOP
    EXECUTE format('SELECT count(*) FROM um.%I x WHERE position(lower($1) IN lower(x::text)) > 0', t.relname) INTO n USING needle;
    IF n > 0 THEN
      r := r || t.relname || ' ';
    END IF;
  END LOOP;
  RETURN r;
END
$$;
SELECT is(pg_temp.mentions('nina@example.com') || pg_temp.mentions('Nina Example') || pg_temp.mentions('+33612345678')
          || pg_temp.mentions('sub-nina'), '',
          'afterwards no um table holds the email, name, mobile or identity of the deleted user');
SELECT ok((SELECT count(*) > 3 FROM um.audit_events WHERE target_type = 'user' AND target_id = :nina),
          'while the audit trail keeps the events, by id');
SELECT is((SELECT count(*) FROM um.teams WHERE id = :nina_team), 1::bigint, 'the team they no longer owned stays');
SELECT (um_create_user(:acme, 'nina@example.com', 'Member')).user_id AS nina2 \gset
SELECT isnt(:nina2::bigint, :nina::bigint, 're-adding the address makes a brand-new user');
SELECT is((SELECT count(*) FROM um.audit_events WHERE target_type = 'user' AND target_id = :nina2), 1::bigint,
          'with no old history');
SELECT um_set_password(:nina2, 'nina-password', false) AS ignored \gset
SELECT um_mark_verified(:nina2) AS ignored \gset
SELECT is(pg_temp.try_as(:nina2, 'SELECT um_delete_my_account()'), 'ok', 'um_delete_my_account');
SELECT is((SELECT count(*) FROM um.users WHERE id = :nina2), 0::bigint, 'erases the acting user');
SELECT is(pg_temp.try_as(NULL, 'SELECT um_delete_my_account()'), 'UM072', 'it needs an acting user');

-- ---------------------------------------------------------------------------
-- The remaining refusals

SELECT is(pg_temp.try_as(:gina, format('SELECT um_delete_team(%s)', :nina_team)), 'UM070', 'deleting a team needs team:delete');
SELECT is(pg_temp.try_as(:gina, format('SELECT um_revoke_team_role(%s, %s, %L)', :nina_team, :dave, 'Member')), 'UM070',
          'team roles are taken away only with team:manage or by the owner');
SELECT is(pg_temp.try_as(:gina, format('SELECT um_transfer_team_ownership(%s, %s)', :nina_team, :gina)), 'UM070',
          'nobody else takes a team''s ownership');
SELECT is(pg_temp.try_as(:dave, format('SELECT um_revoke_scope_role(%s, %L, user_id => %s)', :apollo, 'Member', :frank)), 'UM070',
          'taking back scope roles needs role:grant');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_add_identity_provider(%s, %L, %L, %L)', :acme, 'Evil', 'oidc', 'https://evil.example')),
          'UM070', 'adding an identity provider needs org:update');
SELECT is(pg_temp.try_as(:ada, format('SELECT um_add_identity_provider(%s, %L, %L, %L)', :acme, 'OKTA', 'oidc', 'https://x.example')),
          'UM027', 'provider names are unique in the organization (UM027)');
SELECT is(pg_temp.try_as(:ada, format('SELECT um_add_identity_provider(%s, %L, %L, %L)', :acme, 'Dir', 'ldap', 'https://x.example')),
          'UM009', 'only oidc and saml (UM009)');
SELECT is(pg_temp.try_as(:carol, 'SELECT um_expire_invitations()'), 'UM070', 'housekeeping is for um administrators');
SELECT is(pg_temp.try_as(:carol, 'SELECT um_register_permission(''invoice:void'')'), 'UM070',
          'an acting user never changes the permission catalog every organization shares');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_create_organization(%L, %L, %s)', 'carolco', 'CarolCo', :dave)), 'UM070',
          'an acting user creates organizations only with themself as Root');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_create_organization(%L, %L, %s)', 'carolco', 'CarolCo', :carol)), 'ok',
          'and may found their own');
SELECT is(pg_temp.role_of(pg_temp.org('carolco'), :carol), 'Root', 'as its Root');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_add_member(%s, %s)', :globex, :gina)), 'UM070',
          'adding a member needs member:create in that organization');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_add_member(%s, %s)', :acme, :bob)), 'UM070',
          'and an acting user never pulls an existing account into their organization (they invite it)');
SELECT is(pg_temp.try_as(NULL, format('SELECT um_add_member(%s, %s)', :acme, :gina)), 'UM022',
          'a um administrator adds existing users, but not a member twice (UM022)');
SELECT um_create_team(:acme, 'Blue', owner_user_id => :carol) AS blue \gset
SELECT is(pg_temp.try_as(:carol, format('SELECT um_rename_team(%s, %L)', :blue, 'NINA team')), 'UM025',
          'a rename cannot take another team''s name (UM025)');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_rename_team(%s, %L)', :blue, ' Blue ')), 'UM003', 'nor an untrimmed one (UM003)');

-- ---------------------------------------------------------------------------
-- Attacks found in review

-- a team's grants come with a seat in it
SELECT um_create_team(:acme, 'Night shift', owner_user_id => :dave) AS ops \gset
SELECT um_grant_scope_role((SELECT scope_id FROM um.teams WHERE id = :ops), 'Admin', team_id => :ops) AS g \gset
SELECT um_create_role(:acme, 'Team manager', '{team:manage,org:read,member:read,member:list,team:read,team:list}') AS tm \gset
SELECT um_set_org_role(:acme, :frank, 'Team manager') AS ignored \gset
SELECT is(pg_temp.try_as(:frank, format('SELECT um_add_team_member(%s, %s)', :ops, :frank)), 'UM073',
          'team:manage does not let anyone join a team whose grants hold permissions they lack');
SELECT is(pg_temp.try_as(:dave, format('SELECT um_add_team_member(%s, %s)', :ops, :gina)), 'ok',
          '(its owner, who holds them through the team, adds members)');
SELECT um_create_role(:acme, 'Recruiter', '{member:invite,org:read,member:read,member:list,team:read,team:list}') AS recruiter \gset
SELECT um_set_org_role(:acme, :frank, 'Recruiter') AS ignored \gset
SELECT is(pg_temp.try_as(:frank, format('SELECT count(*) FROM um_invite(%s, %L, team_id => %s)', :acme, 'alt@example.com', :ops)),
          'UM070', 'inviting into a team needs team:manage or its ownership, not just member:invite');
SELECT is(pg_temp.try_as(:frank, format('SELECT count(*) FROM um_invite(%s, %L)', :acme, 'alt@example.com')), 'ok',
          '(member:invite alone invites into the organization)');
SELECT um_set_org_role(:acme, :frank, 'Member') AS ignored \gset

-- an acting user's patterns are stored as today's permissions
SELECT is(pg_temp.try_as(:carol, format('SELECT um_create_role(%s, %L, %L)', :acme, 'Templater', '{template:*}')), 'ok',
          'an Admin creates a role from a pattern ...');
SELECT is((SELECT string_agg(permission, ' ' ORDER BY permission) FROM um.role_permissions WHERE role_id = pg_temp.role('acme', 'Templater')),
          'template:create template:delete template:list template:read template:update',
          '... stored as the permissions it stands for today');
SELECT um_register_permission('template:approve') AS ignored \gset
SELECT ok(NOT um_has_permission(:frank, 'template:approve', :acme) AND NOT EXISTS (
            SELECT 1 FROM um.role_permissions WHERE role_id = pg_temp.role('acme', 'Templater') AND permission = 'template:approve'),
          'so a permission registered later is not handed out by it');

-- a refusal in an organization one is not in says nothing about it
SELECT is(pg_temp.as_(NULL, format($q$SELECT pg_temp.err_detail('SELECT um_act_as(%s); SELECT um_delete_role(%s)')$q$,
                                   :carol, pg_temp.role('globex', 'member'))),
          'It needs role:delete in an organization you belong to.',
          'refused in another tenant''s organization, the error does not name it ...');
SELECT is((SELECT org_id FROM um.audit_events WHERE action = 'role.delete' AND outcome = 'denied' ORDER BY id DESC LIMIT 1), NULL,
          '... and the refusal stays out of that organization''s audit trail');

-- an address registered by someone else, then invited: the invitation never
-- hands the account over; the mailbox's secret does
SELECT um_sign_up('newhire@example.com', 'squatter-password') AS squat \gset
SELECT (um_invite(:acme, 'newhire@example.com', 'Admin')).token AS newhire_token \gset
SELECT is(pg_temp.try_as(NULL, format('SELECT um_accept_invitation(%L, %L)', :'newhire_token', 'newhire-own-password')), 'UM056',
          'accepting logged out never takes over an existing (unverified) account ...');
SELECT um_sign_up('newhire@example.com', 'whatever-password') AS newhire_claim \gset
SELECT is(um_verify_email(:'newhire_claim', 'newhire-own-password'), pg_temp.usr('newhire'),
          '... the secret sent to the mailbox claims it, with a password its owner chooses');
SELECT throws_ok($$ SELECT um_login('newhire@example.com', 'squatter-password') $$, 'UM060', NULL,
                 'the registrant''s password no longer works');
SELECT is(pg_temp.as_(pg_temp.usr('newhire'), format('SELECT um_accept_invitation(%L)', :'newhire_token'))::bigint,
          pg_temp.usr('newhire'), 'and, logged in, the owner accepts the invitation');
SELECT (um_invite(:globex, 'erin@example.com')).token AS erin_globex \gset
SELECT is(pg_temp.try_as(NULL, format('SELECT um_accept_invitation(%L)', :'erin_globex')), 'UM056',
          'a verified account accepts only while logged in');
SELECT is(pg_temp.try_as(NULL, format('SELECT um_accept_invitation(%L, %L)', :'erin_globex', 'erins-new-password')), 'UM056',
          '(a password does not help)');
SELECT is(pg_temp.as_(:erin, format('SELECT um_accept_invitation(%L)', :'erin_globex'))::bigint, :erin::bigint,
          'logged in, it does');

-- um never changes application rows, so it never runs their triggers as its owner
CREATE TABLE public.regress_um_lc_notes (user_id bigint REFERENCES um.users ON DELETE CASCADE);
CREATE FUNCTION public.regress_um_lc_note_trap() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  ALTER ROLE regress_um_lc_mallory SUPERUSER;
  RETURN NULL;
END $$;
CREATE TRIGGER trap AFTER DELETE ON public.regress_um_lc_notes FOR EACH ROW EXECUTE FUNCTION public.regress_um_lc_note_trap();
ALTER TABLE public.regress_um_lc_notes OWNER TO regress_um_lc_mallory;
ALTER FUNCTION public.regress_um_lc_note_trap() OWNER TO regress_um_lc_mallory;
INSERT INTO public.regress_um_lc_notes VALUES (pg_temp.usr('newhire'));
SELECT is(pg_temp.try_as(pg_temp.usr('newhire'), 'SELECT um_delete_my_account()'), 'UM057',
          'a cascading foreign key from an application table into um stops every deleting lifecycle call (UM057)');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_remove_member(%s, %s)', :acme, pg_temp.usr('newhire'))), 'UM057',
          '(removing a member too)');
SELECT ok(NOT (SELECT rolsuper FROM pg_roles WHERE rolname = 'regress_um_lc_mallory'),
          'so the table''s trigger never ran as um''s owner');
DROP TABLE public.regress_um_lc_notes;
DROP FUNCTION public.regress_um_lc_note_trap();

-- self-registration returns a token: only for the application backend
SET ROLE regress_um_lc_app;
SELECT throws_ok($$ SELECT um_sign_up('x@example.com', 'long enough password') $$, '42501', NULL,
                 'um_sign_up is not for every role (EXECUTE is granted to the application backend)');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- The audit trail

SELECT ok(pg_temp.audits('member.set_role', 'ok') >= 2 AND pg_temp.audits('team.create', 'ok') >= 2
          AND pg_temp.audits('invitation.accept', 'ok') >= 3 AND pg_temp.audits('user.delete', 'ok') = 1,
          'every change is audited');
SELECT is((SELECT actor_user_id FROM um.audit_events WHERE action = 'member.remove' AND outcome = 'ok' ORDER BY id LIMIT 1),
          :carol::bigint, 'with the acting user');
SELECT ok(pg_temp.audits('member.set_role', 'denied') >= 3 AND pg_temp.audits('user.delete', 'denied') >= 2,
          'refusals by an acting user are audited too, although the call failed');
SELECT is((SELECT count(*) FROM um.audit_events WHERE details::text ~* 'example\.com'), 0::bigint,
          'no audit event holds an email address');
GRANT EXECUTE ON FUNCTION um_act_as(bigint) TO regress_um_lc_app;
SET ROLE regress_um_lc_app;
BEGIN;
SELECT um_act_as(:carol) AS a \gset
SELECT ok((SELECT count(*) > 0 FROM um.audit_events WHERE org_id = :acme)
          AND (SELECT count(*) = 0 FROM um.audit_events WHERE org_id = :globex),
          'an application role acting as an Admin reads their organization''s audit trail (audit:read), not another''s');
COMMIT;
BEGIN;
SELECT um_act_as(:dave) AS a \gset
SELECT is((SELECT count(*) FROM um.audit_events WHERE org_id = :acme AND NOT (target_type = 'user' AND target_id = :dave)),
          0::bigint, 'a Member reads only the events about themself');
COMMIT;
RESET ROLE;
SELECT is((SELECT count(*) FROM um_check_integrity()), 0::bigint, 'um_check_integrity() is clean after all of it');

DROP TABLE public.regress_um_lc_orders, public.regress_um_lc_answers;
DROP FUNCTION public.regress_um_lc_trap();
DROP OWNED BY regress_um_lc_app, regress_um_lc_admin, regress_um_lc_mallory;
DROP ROLE regress_um_lc_app, regress_um_lc_admin, regress_um_lc_mallory;
SELECT * FROM finish();
