-- um.error_codes: the catalogue an application loads to map um's errors to
-- its answers.  It says what doc/errors.md says, code for code (and
-- test/shell/docs.sh checks that every code um raises is in doc/errors.md).
-- Like 85_identity it commits (a refused login is recorded by a background
-- worker, which sees only committed data): it runs in a database of its own
-- and drops its role at the end.
\ir fixture.psql
SELECT plan(8);

\set errors_md `cat doc/errors.md`
CREATE TEMP TABLE md AS
  SELECT m[1] AS sqlstate, replace(btrim(m[2]), '`', '') AS meaning
    FROM regexp_matches(substring(:'errors_md' FROM '## um''s codes(.*)$'), '\n\| (UM[0-9]{3}) \| ([^|]+) \|', 'g') m;
SELECT cmp_ok((SELECT count(*) FROM md), '>=', 60::bigint, 'doc/errors.md is read');
SELECT set_eq('SELECT sqlstate, meaning FROM um.error_codes', 'SELECT sqlstate, meaning FROM md',
              'um.error_codes says what doc/errors.md says, code for code');
SELECT is((SELECT count(DISTINCT name) FROM um.error_codes), (SELECT count(*) FROM um.error_codes),
          'each code has a name of its own');
SELECT is((SELECT string_agg(name, ', ') FROM um.error_codes WHERE name !~ '^[a-z][a-z0-9_]*$'), NULL,
          'names are snake_case identifiers');
SELECT is((SELECT string_agg(sqlstate, ', ') FROM um.error_codes WHERE http_status NOT BETWEEN 400 AND 599), NULL,
          'every status is an HTTP error status');
SELECT is((SELECT string_agg(sqlstate || '=' || http_status, ' ' ORDER BY sqlstate) FROM um.error_codes
            WHERE sqlstate IN ('UM001', 'UM020', 'UM030', 'UM044', 'UM053', 'UM060', 'UM063', 'UM069', 'UM070', 'UM072')),
          'UM001=400 UM020=409 UM030=404 UM044=409 UM053=410 UM060=401 UM063=403 UM069=503 UM070=403 UM072=401',
          'the statuses of doc/integration.md''s table');

-- what an application does with it: a refused login, looked up by its SQLSTATE
CREATE FUNCTION pg_temp.status_of(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  st text;
BEGIN
  EXECUTE q;
  RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE;
  RETURN (SELECT e.name || ' ' || e.http_status FROM um.error_codes e WHERE e.sqlstate = st);
END
$$;
CREATE ROLE regress_um_errors_app NOLOGIN;
SET ROLE regress_um_errors_app;
SELECT is(pg_temp.status_of($$ SELECT um_login('nobody@example.com', 'wrong-password') $$), 'invalid_credentials 401',
          'an application role reads it: a refused login is invalid_credentials, 401');
SELECT is(pg_temp.status_of($$ SELECT um_create_team(1, 'Ops') $$), 'permission_denied 403',
          'and a call with nobody acting is permission_denied, 403');
RESET ROLE;
DROP ROLE regress_um_errors_app;
SELECT * FROM finish();
