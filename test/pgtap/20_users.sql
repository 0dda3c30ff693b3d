BEGIN;
\ir fixture.psql
SELECT plan(50);

-- valid addresses are accepted, stored trimmed
SELECT lives_ok($$ SELECT um_create_user(e) FROM unnest(ARRAY[
  'simple@example.com', 'first.last+tag@sub.example.co.uk', 'o''brien@example.ie',
  'x@xn--bcher-kva.example', '  padded@example.com  ', 'UPPER@EXAMPLE.ORG']) AS e $$,
  'plausible addresses are accepted');
SELECT is((SELECT email FROM um.users WHERE lower(email) = 'padded@example.com'), 'padded@example.com',
          'surrounding blanks are trimmed');

-- invalid addresses: UM001 and nothing changes
SELECT pg_temp.counts() AS before \gset
SELECT throws_ok(format('SELECT um_create_user(%L)', e), 'UM001', NULL, format('rejects %L', e))
  FROM unnest(ARRAY['plainaddress', '@example.com', 'a@', 'a@b', 'a@@example.com',
                    'a..b@example.com', '.a@example.com', 'a.@example.com', 'a b@example.com',
                    'a@-example.com', 'a@example-.com', 'a@example.c', 'a@exam_ple.com',
                    'ünï@example.com', repeat('a', 65) || '@example.com',
                    'a@' || repeat('b', 250) || '.com', '']) AS e;
SELECT is(pg_temp.counts(), :'before', 'rejected addresses changed nothing');

-- the same address in another letter case is the same address
SELECT throws_ok($$ SELECT um_create_user('ADA@EXAMPLE.COM') $$, 'UM020',
                 'email address "ADA@EXAMPLE.COM" is already registered', 'um_create_user: case-insensitive duplicate');
SELECT throws_ok($$ INSERT INTO um.users (email) VALUES ('Ada@Example.Com') $$, '23505', NULL,
                 'direct insert: the unique index on lower(email) holds');
SELECT throws_ok($$ UPDATE um.users SET email = 'BOB@example.com' WHERE email = 'ada@example.com' $$, '23505', NULL,
                 'changing an address to another user''s (other case) is refused');
SELECT is(pg_temp.counts(), :'before', 'duplicates changed nothing');

-- profile fields
SELECT throws_ok($$ SELECT um_create_user('eve@example.com', timezone => 'Mars/Olympus') $$, 'UM004', NULL, 'unknown time zone');
SELECT throws_ok($$ SELECT um_create_user('eve@example.com', timezone => 'Europe/Paris; DROP TABLE um.users') $$, 'UM004', NULL, 'time zone with SQL in it');
SELECT throws_ok($$ SELECT um_create_user('eve@example.com', locale => 'EN_us') $$, 'UM005', NULL, 'locale not BCP 47');
SELECT throws_ok($$ SELECT um_create_user('eve@example.com', mobile => '0044 20 7946 0000') $$, 'UM006', NULL, 'mobile not E.164');
SELECT throws_ok($$ SELECT um_create_user('eve@example.com', attributes => '"text"') $$, 'UM007', NULL, 'attributes not an object');
SELECT throws_ok($$ SELECT um_create_user('eve@example.com', E'Eve\n') $$, 'UM003', NULL, 'name with a control character');
SELECT throws_ok($$ UPDATE um.users SET status = 'deleted' WHERE email = 'ada@example.com' $$, '23514', NULL, 'unknown status');
SELECT throws_ok($$ UPDATE um.users SET password_hash = 'plaintext' WHERE email = 'ada@example.com' $$, '23514', NULL,
                 'a password hash must be a bcrypt hash, never a plain password');
SELECT throws_ok($$ UPDATE um.users SET failed_login_count = -1 WHERE email = 'ada@example.com' $$, '23514', NULL, 'negative failure count');
SELECT is(pg_temp.counts(), :'before', 'rejected profiles changed nothing');

SELECT um_create_user('eve@example.com', 'Eve', allow_login => false, timezone => 'America/New_York',
                      locale => 'pt-BR', mobile => '+5511912345678', attributes => '{"team": "ops"}') AS eve \gset
SELECT row_eq(format('SELECT name, allow_login, timezone, locale, mobile, attributes, status FROM um.users WHERE id = %s', :eve),
              ROW('Eve'::text, false, 'America/New_York'::text, 'pt-BR'::text, '+5511912345678'::text, '{"team": "ops"}'::jsonb, 'active'::text),
              'a notification-only user with a full profile');
SELECT is((SELECT count(*) FROM um.audit_events WHERE action = 'user.create' AND target_id = :eve), 1::bigint,
          'creating a user is audited');
SELECT is((SELECT details FROM um.audit_events WHERE action = 'user.create' AND target_id = :eve),
          '{"allow_login": false}'::jsonb, 'the audit event holds no personal data');

-- status bookkeeping
UPDATE um.users SET status = 'suspended' WHERE id = :eve;
SELECT isnt((SELECT suspended_at FROM um.users WHERE id = :eve), NULL, 'suspension records when');
UPDATE um.users SET status = 'active' WHERE id = :eve;
SELECT is((SELECT suspended_at FROM um.users WHERE id = :eve), NULL, 'reactivation clears it');
SELECT throws_ok(format($$ UPDATE um.users SET suspended_at = now() WHERE id = %s $$, :eve), '23514', NULL,
                 'an active user cannot carry a suspension time');

-- a changed address must be verified again; updated_at moves
UPDATE um.users SET email_verified_at = now() WHERE id = :eve;
UPDATE um.users SET email = 'EVE@example.com' WHERE id = :eve;
SELECT isnt((SELECT email_verified_at FROM um.users WHERE id = :eve), NULL, 'a change of letter case keeps verification');
UPDATE um.users SET email = 'eve@example.org' WHERE id = :eve;
SELECT is((SELECT email_verified_at FROM um.users WHERE id = :eve), NULL, 'a new address needs verification again');

-- deleting a user removes their memberships (the sole Root is protected)
SELECT throws_ok($$ DELETE FROM um.users WHERE email = 'ada@example.com' $$, 'UM044', NULL,
                 'the sole Root of an organization with members cannot be deleted');
SELECT lives_ok($$ DELETE FROM um.users WHERE email = 'dave@example.com' $$, 'a plain member can be deleted');
SELECT is((SELECT count(*) FROM um.memberships WHERE user_id = pg_temp.usr('dave')), 0::bigint, 'their memberships went with them');
SELECT is((SELECT count(*) FROM um.member_list WHERE email = 'dave@example.com'), 0::bigint, 'in every organization');
SELECT is(um_create_user('dave@example.com', 'Dave again') > (SELECT max(target_id) FROM um.audit_events WHERE action = 'user.create' AND target_id <> :eve), true,
          'the same address later is a brand-new user');

-- NULLs
SELECT throws_ok($$ SELECT um_create_user(NULL) $$, 'UM001', NULL, 'a NULL address');
SELECT throws_ok($$ INSERT INTO um.users (email, allow_login) VALUES ('null@example.com', NULL) $$, '23502', NULL, 'allow_login is never NULL');
SELECT lives_ok($$ SELECT um_create_user('noname@example.com', NULL) $$, 'a user without a name');
SELECT * FROM finish();
ROLLBACK;
