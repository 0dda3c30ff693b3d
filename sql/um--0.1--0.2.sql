-- um 0.1 -> 0.2
--
-- 0.1 is the first release; its install script, sql/um--0.1.sql, is never
-- edited again.  Every change made in sql/install/ for 0.2 is also made
-- here, so that ALTER EXTENSION um UPDATE from 0.1 gives exactly what a fresh
-- CREATE EXTENSION um gives (test/shell/upgrade.sh compares the two).

\echo Use "ALTER EXTENSION um UPDATE TO '0.2'" to load this file. \quit

COMMENT ON FUNCTION um.token_hash(text) IS 'what um.sessions stores instead of a token (um_begin''s lookup uses it too)';
