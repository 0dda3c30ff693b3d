-- Issue 17, item 6: a suspension until a moment.  Access returns by itself
-- then: the C cache, warm with the suspended answer, answers again from the
-- first statement that starts at the end; so do um_begin, logins and the
-- reference evaluator, with no job run.  um_end_suspensions() records the
-- end (status, audit).  Attacked by a tenant Admin of another organization,
-- the application role, with ends in the past, and with a re-suspension
-- after the end that must end the sessions of the meantime.
-- Commits: logins are counted by the audit writer, which sees committed data.
\ir fixture.psql
\set QUIET 1
SELECT plan(36);

SET um.password_hash_cost = 4;
CREATE ROLE regress_um_timed_app NOLOGIN;
GRANT USAGE ON SCHEMA public TO regress_um_timed_app;
UPDATE um.users SET email_verified_at = now();
SELECT count(um_set_password(id, 'password-of-' || split_part(email, '@', 1), false)) AS n FROM um.users \gset
SELECT pg_temp.usr('ada') AS ada, pg_temp.usr('bob') AS bob, pg_temp.usr('carol') AS carol,
       pg_temp.usr('dave') AS dave, pg_temp.org('acme') AS acme, pg_temp.org('globex') AS globex \gset
CREATE FUNCTION pg_temp.can(bigint, bigint) RETURNS boolean LANGUAGE sql
  AS $$ SELECT um_has_permission($1, 'member:read', $2) $$;
CREATE FUNCTION pg_temp.ref(bigint, bigint) RETURNS boolean LANGUAGE sql
  AS $$ SELECT um_internal.ref_has_permission($1, 'member:read', $2, NULL, false) $$;
CREATE FUNCTION pg_temp.row_of(bigint) RETURNS text LANGUAGE sql
  AS $$ SELECT (status, suspended_at IS NOT NULL, suspended_until IS NOT NULL)::text FROM um.users WHERE id = $1 $$;

-- ---------------------------------------------------------------------------
-- Refusals change nothing
SELECT pg_temp.counts() AS before \gset
SELECT throws_ok(format('SELECT um_suspend_user(%s, until => now() - interval ''1 minute'')', :dave), 'UM009', NULL,
                 'an end in the past is refused');
SELECT throws_ok(format('SELECT um_suspend_user(%s, until => ''infinity'')', :dave), 'UM009', NULL,
                 'so is infinity (leave until NULL for a suspension without end)');
SELECT is(pg_temp.counts(), :'before', 'and neither changed anything');
BEGIN;
SELECT um_act_as(:carol) AS a \gset
SELECT throws_ok(format('SELECT um_suspend_user(%s, %s, until => now() + interval ''1 hour'')', :bob, :globex), 'UM070', NULL,
                 'an Admin of acme cannot suspend a member of globex, timed or not');
ROLLBACK;
SET ROLE regress_um_timed_app;
SELECT throws_ok(format('UPDATE um.users SET suspended_until = now() + interval ''1 year'' WHERE id = %s', :dave), '42501', NULL,
                 'the application role cannot move the end of a suspension by hand');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- A suspension of the account, until a moment
SELECT um_login('dave@example.com', 'password-of-dave') AS dave_session \gset
SELECT ok(pg_temp.can(:dave, :acme) AND pg_temp.can(:dave, :globex), 'dave may read members in both organizations (the cache is warm)');
SELECT lives_ok(format('SELECT um_suspend_user(%s, until => clock_timestamp() + interval ''1.5 seconds'')', :dave),
                'a um administrator suspends dave for a moment');
SELECT is(pg_temp.row_of(:dave), '(suspended,t,t)', 'the row says so, with its end');
SELECT ok(NOT pg_temp.can(:dave, :acme) AND NOT pg_temp.can(:dave, :globex), 'while it lasts dave may do nothing');
SELECT ok(NOT pg_temp.ref(:dave, :acme), 'the reference evaluator agrees');
SELECT is(um_permitted_orgs(:dave, 'member:read'), '{}'::bigint[], 'um_permitted_orgs lists nothing');
SELECT throws_ok($$ SELECT um_login('dave@example.com', 'password-of-dave') $$, 'UM061', NULL, 'a login is refused as suspended');
SET ROLE regress_um_timed_app;
SELECT throws_ok(format('SELECT um_begin(%L)', :'dave_session'), 'UM067', NULL, 'the session from before is ended');
RESET ROLE;
SELECT is((SELECT details->>'until' IS NOT NULL FROM um.audit_events WHERE action = 'user.suspend' AND target_id = :dave),
          true, 'the audit event names the end');
SELECT pg_sleep(1.6);
SELECT ok(pg_temp.can(:dave, :acme) AND pg_temp.can(:dave, :globex),
          'at the end access returns by itself, from the same warm cache, with no job run');
SELECT ok(pg_temp.ref(:dave, :acme), 'the reference evaluator agrees');
SELECT is(um_permitted_orgs(:dave, 'member:read'), ARRAY[:acme, :globex]::bigint[], 'um_permitted_orgs lists both again');
SELECT um_login('dave@example.com', 'password-of-dave') AS dave_session2 \gset
SET ROLE regress_um_timed_app;
BEGIN;
SELECT is(um_begin(:'dave_session2'), :dave::bigint, 'dave logs in and acts again');
COMMIT;
RESET ROLE;
SELECT is(pg_temp.row_of(:dave), '(suspended,t,t)', 'the row still says suspended, with its end passed ...');
BEGIN;
SELECT um_act_as(:carol) AS a \gset
SELECT throws_ok($$ SELECT um_end_suspensions() $$, 'UM070', NULL, '... until a um administrator''s housekeeping (not an Admin''s)');
ROLLBACK;
SELECT is(um_end_suspensions(), 1, 'um_end_suspensions records the one that ended');
SELECT is(pg_temp.row_of(:dave), '(active,f,f)', 'the row says active again');
SELECT is((SELECT details->>'ended' FROM um.audit_events WHERE action = 'user.reactivate' AND target_id = :dave),
          'scheduled', 'audited as a reactivation by schedule');
SELECT is(um_end_suspensions(), 0, 'run again, it finds nothing');

-- ---------------------------------------------------------------------------
-- Suspended again after the end, before any housekeeping: the sessions of
-- the meantime end too
SELECT um_suspend_user(:dave, until => clock_timestamp() + interval '1 second');
SELECT pg_sleep(1.2);
SELECT um_login('dave@example.com', 'password-of-dave') AS dave_session3 \gset
SELECT lives_ok(format('SELECT um_suspend_user(%s, until => clock_timestamp() + interval ''1 hour'')', :dave),
                'a suspension that ended by itself does not stand in the way of a new one');
SET ROLE regress_um_timed_app;
SELECT throws_ok(format('SELECT um_begin(%L)', :'dave_session3'), 'UM067', NULL, 'which ends the session made in between');
RESET ROLE;
SELECT is((SELECT count(*) FROM um.audit_events WHERE action = 'user.reactivate' AND target_id = :dave AND details->>'ended' = 'scheduled'),
          2::bigint, 'the end of the one before is recorded first');
SELECT throws_ok(format('SELECT um_suspend_user(%s)', :dave), 'UM051', NULL, 'one in effect is one: suspending again is refused');
SELECT um_reactivate_user(:dave);
SELECT is(pg_temp.row_of(:dave), '(active,f,f)', 'a reactivation ends it early, end and all');

-- ---------------------------------------------------------------------------
-- A suspension of one membership, until a moment
SELECT ok(pg_temp.can(:dave, :acme), 'dave is back (warm again)');
SELECT um_suspend_user(:dave, :acme, until => clock_timestamp() + interval '1.5 seconds');
SELECT ok(NOT pg_temp.can(:dave, :acme) AND pg_temp.can(:dave, :globex), 'a timed suspension in acme leaves globex alone');
SELECT is((SELECT (status, suspended_until IS NOT NULL)::text FROM um.memberships WHERE org_id = :acme AND user_id = :dave),
          '(suspended,t)', 'the membership row carries the end');
SELECT pg_sleep(1.6);
SELECT ok(pg_temp.can(:dave, :acme) AND pg_temp.ref(:dave, :acme), 'and ends by itself, in the cache and the reference alike');
SELECT is(um_end_suspensions(), 1, 'recorded by the housekeeping');

-- an open call site across the end: a cursor checking in acme while the
-- end of a suspension in globex is noticed by another call site (the entries
-- built on it go between checks, never under a caller's feet)
SELECT string_agg(p || '=' || um_has_permission(:dave, p, :acme), ',' ORDER BY p) AS expected
  FROM (SELECT name AS p FROM um.permissions) s \gset
SELECT um_suspend_user(:dave, :globex, until => clock_timestamp() + interval '1 second');
BEGIN;
SELECT um_act_as(:dave) AS a \gset
DECLARE c CURSOR FOR SELECT p, um_has_permission(p, :acme) AS ok FROM (SELECT name AS p FROM um.permissions ORDER BY 1) s;
FETCH 1 FROM c \gset first_
SELECT ok(NOT um_has_permission('member:read', :globex), 'the cursor is open while dave is suspended in globex');
SELECT pg_sleep(1.2);
SELECT um_has_permission('member:read', :globex) AS globex_back \gset
CREATE FUNCTION pg_temp.drain() RETURNS text LANGUAGE plpgsql AS $$
DECLARE r record; v text := ''; cur refcursor := 'c';
BEGIN
  LOOP
    FETCH cur INTO r;
    EXIT WHEN NOT FOUND;
    v := v || ',' || r.p || '=' || r.ok;
  END LOOP;
  RETURN v;
END $$;
SELECT is(:'first_p' || '=' || (:'first_ok'::boolean)::text || pg_temp.drain(), :'expected',
          'the cursor''s answers after the end are the same as before it (no stale or freed entry read)');
COMMIT;

DROP OWNED BY regress_um_timed_app;
DROP ROLE regress_um_timed_app;
SELECT * FROM finish();
