-- Installing, dropping and reinstalling um; two databases side by side.
\set VERBOSITY terse
SET client_min_messages = warning;   -- CASCADE's notice depends on whether pgcrypto is already there
CREATE EXTENSION um CASCADE;
RESET client_min_messages;
SELECT extname, extversion, extrelocatable FROM pg_extension WHERE extname = 'um';

-- what CREATE EXTENSION made: tables in schema um, um_* functions in public
SELECT c.relname, c.relkind
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'um' AND c.relkind IN ('r', 'v')
 ORDER BY c.relkind, c.relname;
SELECT p.oid::regprocedure AS function, p.provolatile, p.proisstrict, p.proparallel, p.prosecdef
  FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'um') AND d.deptype = 'e'
   AND p.pronamespace = 'public'::regnamespace
 ORDER BY p.proname, p.oid::regprocedure::text;

-- every function um installs pins its search_path
SELECT p.oid::regprocedure AS function_without_search_path
  FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'um') AND d.deptype = 'e'
   AND p.prolang IN (SELECT oid FROM pg_language WHERE lanname IN ('sql', 'plpgsql'))
   AND NOT coalesce(p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp'], false);

-- the built-in catalog and roles are there; no user data yet
SELECT count(*) AS builtin_permissions FROM um.permissions WHERE builtin;
SELECT key, name FROM um.builtin_roles ORDER BY position;
SELECT count(*) AS organizations FROM um.organizations;

-- data, then drop and reinstall: a clean slate
SELECT um_create_user('first@example.com', 'First') AS u \gset
SELECT um_create_organization('first', 'First Org', :u) AS o \gset
SELECT org, email, role FROM um.member_list;
DROP EXTENSION um;
SELECT count(*) AS um_schemas_left FROM pg_namespace WHERE nspname IN ('um', 'um_internal');
SET client_min_messages = warning;   -- CASCADE's notice depends on whether pgcrypto is already there
CREATE EXTENSION um CASCADE;
RESET client_min_messages;
SELECT count(*) AS users_after_reinstall FROM um.users;
SELECT um_create_user('first@example.com', 'First again') AS u \gset
SELECT :u AS new_user_id;

-- a second database of the same cluster runs its own um side by side
CREATE DATABASE um_regress_second;
\c um_regress_second
\set VERBOSITY terse
SET client_min_messages = warning;   -- CASCADE's notice depends on whether pgcrypto is already there
CREATE EXTENSION um CASCADE;
RESET client_min_messages;
SELECT um_create_user('second@example.com') AS u \gset
SELECT um_create_organization('second', 'Second Org', :u) AS o \gset
SELECT org, email, role FROM um.member_list;
\c contrib_regression
\set VERBOSITY terse
SELECT count(*) AS orgs_here FROM um.organizations;
DROP DATABASE um_regress_second;
DROP EXTENSION um;
