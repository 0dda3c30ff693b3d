-- The evaluator against an application role that tries to cheat.
BEGIN;
\ir fixture.psql
SELECT plan(14);
CREATE ROLE regress_um_app NOLOGIN;
CREATE ROLE regress_um_backend NOLOGIN;
GRANT USAGE ON SCHEMA public TO regress_um_app, regress_um_backend;
GRANT EXECUTE ON FUNCTION um_act_as(bigint) TO regress_um_backend;
SELECT um_register_permission('invoice:read') \gset
\set ada `echo 0`
SELECT pg_temp.usr('dave') AS dave, pg_temp.org('acme') AS acme, pg_temp.org('globex') AS globex \gset

SET ROLE regress_um_app;
SELECT throws_ok($$ SELECT um_act_as(1) $$, '42501', NULL, 'an application role cannot choose who is acting');
SELECT throws_ok(format($$ SELECT um_has_permission(%s, 'org:read', %s) $$, :dave, :acme), '42501', NULL,
                 'nor ask what another user may do');
SELECT throws_ok($$ SET um.acting_user = '1' $$, '42602', NULL, 'nor forge an identity through a setting in um''s namespace');
SELECT is((SELECT count(*) FROM um.memberships), 0::bigint, 'nor read any row of um''s tables with nobody acting');
SELECT ok(NOT um_has_permission('org:read', :acme), 'with nobody acting, nothing is permitted');
RESET ROLE;

SET ROLE regress_um_backend;
SELECT um_act_as(:dave);
SELECT ok(um_has_permission('org:read', :acme), 'a trusted backend role sets the acting user; checks then work without any privilege on um''s tables');
SELECT is(um_permitted_orgs('instance:delete'), ARRAY[:globex]::bigint[], 'companions too');
RESET ROLE;

-- a search_path with an operator that makes every bigint equal
CREATE SCHEMA regress_evil;
CREATE FUNCTION regress_evil.always(bigint, bigint) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE OPERATOR regress_evil.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = regress_evil.always);
SET LOCAL search_path = regress_evil, pg_catalog, public;
SELECT is((SELECT count(*) FROM um.users WHERE id = 1), (SELECT count(*) FROM um.users), 'the rogue = is live for the caller');
SELECT um_cache_reset();
SELECT ok(NOT um_has_permission(pg_temp.usr('bob'), 'org:read', pg_temp.org('acme')),
          'the cache loads with its own search_path: a non-member stays denied');
SELECT ok(NOT um_has_permission(pg_temp.usr('dave'), 'instance:delete', pg_temp.org('acme')),
          'and roles stay in their organization');
RESET search_path;

-- the acting user does not survive the transaction
SELECT is(um_current_user_id(), :dave::bigint, 'the acting user holds for the transaction');
SAVEPOINT s;
SELECT um_act_as(pg_temp.usr('bob'));
SELECT is(um_current_user_id(), pg_temp.usr('bob'), 'um_act_as in a subtransaction');
SAVEPOINT t;
SELECT um_act_as(pg_temp.usr('carol'));
RELEASE SAVEPOINT t;
SELECT is(um_current_user_id(), pg_temp.usr('carol'), 'a committed inner subtransaction keeps its change');
ROLLBACK TO SAVEPOINT s;
SELECT is(um_current_user_id(), :dave::bigint, 'rolling the subtransaction back restores the acting user it replaced');
SELECT * FROM finish();
ROLLBACK;
