-- Issue 17, item 5 (first part): TOTP factors and recovery codes.  The C
-- primitives against RFC 6238's and RFC 4648's test vectors; enrolment,
-- confirmation, replay of a used step, attempts counted and locked like
-- passwords (despite ROLLBACK), single-use recovery codes, removal and
-- regeneration only against a proof now.  Attacked by an impersonator,
-- another user, the application role reading secrets.  Commits: failures
-- are counted by the audit writer, which sees committed data.
\ir fixture.psql
\set QUIET 1
SELECT plan(36);

SET um.login_max_failures = 3;
CREATE ROLE regress_um_mfa_app NOLOGIN;
GRANT USAGE ON SCHEMA public TO regress_um_mfa_app;
SELECT pg_temp.usr('ada') AS ada, pg_temp.usr('carol') AS carol, pg_temp.usr('dave') AS dave \gset
CREATE FUNCTION pg_temp.now_code(bigint, integer DEFAULT 0) RETURNS text LANGUAGE sql SECURITY DEFINER
  AS $$ SELECT um_internal.totp_code(totp_secret, floor(extract(epoch FROM clock_timestamp()) / 30)::bigint + $2)
          FROM um.mfa_factors WHERE id = $1 $$;
GRANT EXECUTE ON FUNCTION pg_temp.now_code(bigint, integer) TO regress_um_mfa_app;
CREATE FUNCTION pg_temp.failures(bigint) RETURNS integer LANGUAGE sql
  AS $$ SELECT mfa_failed_count FROM um.users WHERE id = $1 $$;
-- (a code valid now could turn old between two statements near a step's
-- end: wait for a fresh step when fewer than 5 seconds are left)
CREATE FUNCTION pg_temp.fresh_step() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF 30 - extract(epoch FROM clock_timestamp())::numeric % 30 < 5 THEN
    PERFORM pg_sleep(30 - extract(epoch FROM clock_timestamp())::numeric % 30 + 0.1);
  END IF;
END $$;

-- ---------------------------------------------------------------------------
-- The primitives
SELECT is(um_internal.totp_code(convert_to('12345678901234567890', 'UTF8'), 1), '287082',
          'RFC 6238''s vector at T=59 (94287082, its last six digits)');
SELECT is(um_internal.totp_code(convert_to('12345678901234567890', 'UTF8'), 1111111109 / 30), '081804',
          'and at T=1111111109 (07081804)');
SELECT is(um_internal.totp_base32('\x48656c6c6f21deadbeef'::bytea), 'JBSWY3DPEHPK3PXP', 'base32 as RFC 4648');
SELECT floor(extract(epoch FROM clock_timestamp()) / 30)::bigint AS step, um_internal.totp_secret() AS sec \gset
SELECT is(um_internal.totp_match(:'sec'::bytea, um_internal.totp_code(:'sec'::bytea, :step - 1), NULL) IS NOT NULL
          AND um_internal.totp_match(:'sec'::bytea, um_internal.totp_code(:'sec'::bytea, :step + 1), NULL) IS NOT NULL, true,
          'a code of the step before or after is accepted (a clock a little off)');
SELECT is(um_internal.totp_match(:'sec'::bytea, um_internal.totp_code(:'sec'::bytea, :step - 3), NULL), NULL::bigint,
          'one three steps old is not');
SELECT is(um_internal.totp_match(:'sec'::bytea, um_internal.totp_code(:'sec'::bytea, :step), :step + 1), NULL::bigint,
          'nor one of a step at or before the last accepted (replay)');
SELECT is(um_internal.totp_match(:'sec'::bytea, ' ' || um_internal.totp_code(:'sec'::bytea, :step) || E'\n', NULL) IS NOT NULL, true,
          'blanks around a typed code are ignored');
SELECT is(um_internal.totp_match(:'sec'::bytea, '12345', NULL), NULL::bigint, 'five digits match nothing');
SELECT isnt(um_internal.totp_secret(), um_internal.totp_secret(), 'secrets are fresh each time');

-- ---------------------------------------------------------------------------
-- Enrolment
SELECT throws_ok($$ SELECT * FROM um_enroll_totp() $$, 'UM072', NULL, 'with nobody acting there is nobody to enrol');
BEGIN;
SELECT um_act_as(:carol) AS a \gset
SELECT um_impersonate(:dave) AS i \gset
SELECT throws_ok($$ SELECT * FROM um_enroll_totp('Mine now') $$, 'UM071', NULL,
                 'an impersonator cannot enrol a factor of their own on the account');
ROLLBACK;
SET um.mfa_issuer = 'Acme Cloud';
BEGIN;
SELECT um_act_as(:dave) AS a \gset
SELECT factor_id AS f1, secret AS s1, otpauth_uri AS uri FROM um_enroll_totp('Phone') \gset
COMMIT;
RESET um.mfa_issuer;
SELECT is(:'uri', format('otpauth://totp/Acme%%20Cloud:dave%%40example.com?secret=%s&issuer=Acme%%20Cloud&algorithm=SHA1&digits=6&period=30', :'s1'),
          'the otpauth URI names the issuer (um.mfa_issuer) and the account');
SELECT is((SELECT um_internal.totp_base32(totp_secret) FROM um.mfa_factors WHERE id = :f1), :'s1', 'the secret shown is the one kept');
SET ROLE regress_um_mfa_app;
SELECT throws_ok($$ SELECT totp_secret FROM um.mfa_factors $$, '42501', NULL, 'the application role cannot read secrets');
SELECT throws_ok($$ SELECT count(*) FROM um.mfa_recovery_codes $$, '42501', NULL, 'nor recovery codes');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- Confirmation: attempts counted like passwords
SELECT pg_temp.fresh_step();
BEGIN;
SELECT um_act_as(:dave) AS a \gset
SELECT throws_ok(format('SELECT um_confirm_totp(%s, %L)', :f1, lpad(((pg_temp.now_code(:f1)::int + 1) % 1000000)::text, 6, '0')),
                 'UM090', NULL, 'a wrong code is refused');
ROLLBACK;
SELECT is(pg_temp.failures(:dave), 1, 'and counted despite the ROLLBACK (as a second-factor failure)');
BEGIN;
SELECT um_act_as(:ada) AS a \gset
SELECT throws_ok(format('SELECT um_confirm_totp(%s, %L)', :f1, pg_temp.now_code(:f1)), 'UM091', NULL,
                 'ada cannot confirm dave''s enrolment, even with its code');
ROLLBACK;
BEGIN;
SELECT um_act_as(:dave) AS a \gset
SELECT pg_temp.now_code(:f1) AS c1 \gset
SELECT um_confirm_totp(:f1, :'c1') AS codes \gset
COMMIT;
SELECT is(cardinality(:'codes'::text[]), 10, 'the right code confirms it, with 10 recovery codes');
SELECT is((SELECT count(DISTINCT c) FROM unnest(:'codes'::text[]) c WHERE c ~ '^[a-z2-7]{4}(-[a-z2-7]{4}){3}$'), 10::bigint,
          'all distinct, 80 bits each');
SELECT is((SELECT count(*) FROM um.mfa_recovery_codes r, unnest(:'codes'::text[]) c
            WHERE r.code_hash = convert_to(c, 'UTF8') OR r.code_hash = sha256(convert_to(c, 'UTF8'))), 0::bigint,
          'stored only as hashes bound to the user');
SELECT is(pg_temp.failures(:dave), 0, 'a right code clears the count');
BEGIN;
SELECT um_act_as(:dave) AS a \gset
SELECT throws_ok(format('SELECT um_regenerate_recovery_codes(%L)', :'c1'), 'UM090', NULL,
                 'the code that confirmed is spent: the same step is never accepted again');
COMMIT;

-- ---------------------------------------------------------------------------
-- Lockout, recovery codes, removal
BEGIN;
SELECT um_act_as(:dave) AS a \gset
SELECT factor_id AS f2 FROM um_enroll_totp('Tablet') \gset
COMMIT;
SELECT pg_temp.fresh_step();
BEGIN;
SELECT um_act_as(:dave) AS a \gset
SELECT is(um_confirm_totp(:f2, pg_temp.now_code(:f2)), '{}'::text[], 'a second factor brings no new recovery codes');
COMMIT;
DO $$
BEGIN
  FOR g IN 1..3 LOOP
    BEGIN
      PERFORM um_act_as((SELECT id FROM um.users WHERE email = 'dave@example.com'));
      PERFORM um_regenerate_recovery_codes('000000');
    EXCEPTION WHEN SQLSTATE 'UM090' THEN NULL;
    END;
  END LOOP;
END
$$;
SELECT ok((SELECT mfa_locked_until > now() AND locked_until IS NULL FROM um.users WHERE id = :dave),
          'three wrong codes lock second factors, as wrong passwords lock passwords (apart: a password still logs in)');
SELECT pg_temp.fresh_step();
BEGIN;
SELECT um_act_as(:dave) AS a \gset
SELECT throws_ok(format('SELECT um_remove_factor(%s, %L)', :f2, pg_temp.now_code(:f2, 1)), 'UM090', NULL,
                 'then even a right code proves nothing');
COMMIT;
UPDATE um.users SET mfa_locked_until = NULL, mfa_failed_count = 0 WHERE id = :dave;
BEGIN;
SELECT um_act_as(:dave) AS a \gset
SELECT throws_ok(format('SELECT um_remove_factor(%s)', :f2), 'UM093', NULL, 'a confirmed factor is not removed without a proof (no session, no code)');
SELECT lives_ok(format('SELECT um_remove_factor(%s, %L)', :f2, (:'codes'::text[])[1]), 'a recovery code is a proof');
COMMIT;
BEGIN;
SELECT um_act_as(:dave) AS a \gset
SELECT throws_ok(format('SELECT um_regenerate_recovery_codes(%L)', upper((:'codes'::text[])[1])), 'UM090', NULL,
                 'once: a recovery code is single use (whatever its case)');
SELECT is(cardinality(um_regenerate_recovery_codes((:'codes'::text[])[2])), 10, 'another one regenerates the codes');
COMMIT;
BEGIN;
SELECT um_act_as(:dave) AS a \gset
SELECT throws_ok(format('SELECT um_remove_factor(%s, %L)', :f1, (:'codes'::text[])[3]), 'UM090', NULL,
                 'and the old ones are all dead');
SELECT is((SELECT string_agg(name || ':' || confirmed, ',') FROM um_my_factors()), 'Phone:true', 'um_my_factors lists what is left');
SELECT is((um_export_my_data() -> 'second_factors' -> 0 ->> 'name'), 'Phone', 'the export names the factors ...');
SELECT is(position(:'s1' IN um_export_my_data()::text), 0, '... never their secrets');
COMMIT;
BEGIN;
SELECT um_act_as(:ada) AS a \gset
SELECT throws_ok(format('SELECT um_remove_factor(%s, %L)', :f1, '000000'), 'UM091', NULL, 'nobody removes someone else''s factor');
ROLLBACK;
SELECT um_delete_user(:dave);
SELECT is((SELECT count(*) FROM um.mfa_factors) + (SELECT count(*) FROM um.mfa_recovery_codes), 0::bigint,
          'erasing the user erases the factors and codes');

DROP OWNED BY regress_um_mfa_app;
DROP ROLE regress_um_mfa_app;
SELECT * FROM finish();
