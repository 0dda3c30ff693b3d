BEGIN;
\ir fixture.psql
SELECT plan(17);

-- invitations
SELECT pg_temp.counts() AS before \gset
SELECT throws_ok($$ INSERT INTO um.invitations (org_id, email, role_id, token_hash, expires_at)
                    VALUES (pg_temp.org('acme'), 'not an address', pg_temp.role('acme', 'member'), '\x01', now() + interval '7 days') $$,
                 'UM001', NULL, 'an invitation goes to a valid address');
SELECT throws_ok($$ INSERT INTO um.invitations (org_id, email, role_id)
                    VALUES (pg_temp.org('acme'), 'new@example.com', pg_temp.role('acme', 'member')) $$,
                 '23514', NULL, 'a pending invitation has a token hash and an expiry');
SELECT throws_ok($$ INSERT INTO um.invitations (org_id, email, role_id, token_hash, expires_at)
                    VALUES (pg_temp.org('acme'), 'new@example.com', pg_temp.role('globex', 'member'), '\x01', now() + interval '7 days') $$,
                 '23503', NULL, 'the preset role is one of the organization''s');
SELECT throws_ok($$ INSERT INTO um.invitations (org_id, email, role_id, state, token_hash, expires_at)
                    VALUES (pg_temp.org('acme'), 'new@example.com', pg_temp.role('acme', 'member'), 'sent', '\x01', now() + interval '7 days') $$,
                 '23514', NULL, 'invitation states are a closed set');
SELECT is(pg_temp.counts(), :'before', 'rejected invitations changed nothing');
INSERT INTO um.invitations (org_id, email, role_id, token_hash, expires_at)
VALUES (pg_temp.org('acme'), 'new@example.com', pg_temp.role('acme', 'member'), '\x01', now() + interval '7 days');
SELECT throws_ok($$ INSERT INTO um.invitations (org_id, email, role_id, token_hash, expires_at)
                    VALUES (pg_temp.org('acme'), 'NEW@example.com', pg_temp.role('acme', 'admin'), '\x02', now() + interval '7 days') $$,
                 '23505', NULL, 'one open invitation per address and organization, regardless of case');
SELECT lives_ok($$ INSERT INTO um.invitations (org_id, email, role_id, token_hash, expires_at)
                   VALUES (pg_temp.org('globex'), 'new@example.com', pg_temp.role('globex', 'member'), '\x03', now() + interval '7 days') $$,
                'another organization may invite the same address');
SELECT throws_ok($$ INSERT INTO um.invitations (org_id, email, role_id, token_hash, expires_at)
                    VALUES (pg_temp.org('globex'), 'other@example.com', pg_temp.role('globex', 'member'), '\x03', now() + interval '7 days') $$,
                 '23505', NULL, 'token hashes are unique');
UPDATE um.invitations SET state = 'revoked', decided_at = now() WHERE email = 'new@example.com' AND org_id = pg_temp.org('acme');
SELECT lives_ok($$ INSERT INTO um.invitations (org_id, email, role_id, token_hash, expires_at)
                   VALUES (pg_temp.org('acme'), 'new@example.com', pg_temp.role('acme', 'admin'), '\x04', now() + interval '7 days') $$,
                'after a revocation the address can be invited again');

-- sessions
SELECT throws_ok($$ INSERT INTO um.sessions (user_id, token_hash, expires_at) VALUES (pg_temp.usr('ada'), '\x01', now() - interval '1 second') $$,
                 '23514', NULL, 'a session expires after it starts');
INSERT INTO um.sessions (user_id, token_hash, expires_at) VALUES (pg_temp.usr('dave'), '\x01', now() + interval '1 hour');
SELECT throws_ok($$ INSERT INTO um.sessions (user_id, token_hash, expires_at) VALUES (pg_temp.usr('ada'), '\x01', now() + interval '1 hour') $$,
                 '23505', NULL, 'session token hashes are unique');
SELECT col_not_null('um', 'sessions', 'token_hash', 'a session is found by the hash of its token');
SELECT hasnt_column('um', 'sessions', 'token', 'the token itself is never stored');

-- audit events: append-only
SELECT cmp_ok((SELECT count(*) FROM um.audit_events), '>=', 7::bigint, 'the fixture''s calls were audited');
SELECT throws_ok($$ UPDATE um.audit_events SET action = 'nothing.happened' $$, 'UM047', 'the audit trail is append-only', 'audit events cannot be changed');
SELECT throws_ok($$ DELETE FROM um.audit_events $$, 'UM047', NULL, 'nor deleted');
SELECT throws_ok($$ TRUNCATE um.audit_events $$, 'UM047', NULL, 'nor truncated');
SELECT * FROM finish();
ROLLBACK;
