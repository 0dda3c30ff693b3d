-- um 0.2 -> 0.3
--
-- Written by hand.  Every change made in sql/install/ for 0.3 is also made
-- here, so that ALTER EXTENSION um UPDATE from 0.2 gives exactly what a fresh
-- CREATE EXTENSION um gives (test/shell/upgrade.sh walks 0.1 -> 0.2 -> 0.3
-- and compares the result with a fresh install).

\echo Use "ALTER EXTENSION um UPDATE TO '0.3'" to load this file. \quit

-- The comment of um_accept_invitation said an existing user could accept
-- logged out; 0.2 refuses that (UM056).
COMMENT ON FUNCTION @extschema@.um_accept_invitation(text, text, text) IS
  'join with an invitation token: logged out, a new address gets an account with the password given (unverified until its mailbox is proven); an existing account accepts only logged in as itself; returns the user id';
