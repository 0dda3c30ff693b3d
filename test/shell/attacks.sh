#!/usr/bin/env bash
# test/shell/attacks.sh: um attacked as its adversaries would, each attack in
# transactions that commit: an application role running arbitrary SQL (and
# acting as tenant users through um_act_as), a logged-in user of another
# tenant, a tenant Admin who is not Root, and a role with no um grants.  One
# section per finding of the security issue (items 1-14, 5 aside).  Runs
# against the cluster test/run.sh started; prints TAP.
set -uo pipefail
db=um_attacks
roles="regress_atk_app regress_atk_mallory regress_atk_nogrant"
cleanup() {
  dropdb --if-exists $db >/dev/null 2>&1
  for r in $roles; do psql -X -q -d postgres -c "DROP ROLE IF EXISTS $r" >/dev/null 2>&1; done
}
trap cleanup EXIT
[ -n "${ATK_KEEP:-}" ] && trap - EXIT
cleanup
n=0
ok()     { n=$((n+1)); echo "ok $n - $1"; }
not_ok() { n=$((n+1)); echo "not ok $n - $1"; }
# is DESCRIPTION HAVE WANT
is()     { if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1"; echo "#   have: $2"; echo "#   want: $3"; fi; }
# q ROLE SQL: run SQL (one transaction per -c) as ROLE, print the result rows
q()      { psql -X -A -t -q -v ON_ERROR_STOP=1 -U "$1" -d $db -c "$2" 2>&1; }
# st ROLE SQL: the SQLSTATE SQL ends with ("ok" when it succeeds)
st()     {
  local out
  out=$(psql -X -A -t -q -v ON_ERROR_STOP=1 -v VERBOSITY=sqlstate -U "$1" -d $db -c '\set VERBOSITY sqlstate' -c "$2" 2>&1 >/dev/null)
  if ! grep -q 'ERROR:' <<<"$out"; then echo ok; else echo "$out" | sed -n 's/^.*ERROR:  \([0-9A-Z]\{5\}\).*$/\1/p' | tail -1; fi
}
su()     { q postgres "$1"; }
echo "1..63"

createdb $db
psql -X -q -d postgres -c "CREATE ROLE regress_atk_app LOGIN" -c "CREATE ROLE regress_atk_mallory LOGIN" \
  -c "CREATE ROLE regress_atk_nogrant LOGIN" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -d $db >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION um CASCADE;
GRANT EXECUTE ON FUNCTION um_act_as(bigint), um_sign_up(text, text, text, text, text), um_resend_verification(text)
  TO regress_atk_app;
CREATE SCHEMA mallory AUTHORIZATION regress_atk_mallory;
GRANT CREATE ON SCHEMA public TO regress_atk_nogrant;
-- acme: ada Root, carol Admin, dave Member (also in globex); globex: bob Root
SELECT um_create_user('ada@example.com', 'Ada'), um_create_user('bob@example.com', 'Bob'),
       um_create_user('carol@example.com', 'Carol'), um_create_user('dave@example.com', 'Dave'),
       um_create_user('eve@example.com', 'Eve');
UPDATE um.users SET email_verified_at = now();
SELECT um_create_organization('acme', 'Acme', (SELECT id FROM um.users WHERE email = 'ada@example.com'));
SELECT um_create_organization('globex', 'Globex', (SELECT id FROM um.users WHERE email = 'bob@example.com'));
SELECT um_add_member(1, (SELECT id FROM um.users WHERE email = 'carol@example.com'), 'Admin');
SELECT um_add_member(1, (SELECT id FROM um.users WHERE email = 'dave@example.com'));
SELECT um_add_member(2, (SELECT id FROM um.users WHERE email = 'dave@example.com'));
-- bob, globex's Root, is a plain member of acme
SELECT um_add_member(1, (SELECT id FROM um.users WHERE email = 'bob@example.com'));
-- acme owns example.com (the operator checked its DNS): its Admins create accounts there
SELECT um_add_org_domain(1, 'example.com');
SQL
id() { su "SELECT id FROM um.users WHERE email = '$1@example.com'"; }
ada=$(id ada); bob=$(id bob); carol=$(id carol); dave=$(id dave); eve=$(id eve)
acme=1; globex=2
app() { st regress_atk_app "BEGIN; SELECT um_act_as($1); $2; COMMIT;"; }
appq() { psql -X -A -t -q -v ON_ERROR_STOP=1 -U regress_atk_app -d $db 2>&1 <<SQL
BEGIN;
SELECT um_act_as($1) \g /dev/null
$2;
COMMIT;
SQL
}

# ---- 1. application code never runs with um's owner's rights --------------
# mallory's column type casts to bigint implicitly, and the cast makes her
# superuser whenever it runs as one
psql -X -q -v ON_ERROR_STOP=1 -U regress_atk_mallory -d $db >/dev/null 2>&1 <<'SQL'
CREATE TYPE mallory.uid AS (v bigint);
CREATE FUNCTION mallory.uid_to_int8(mallory.uid) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO mallory.loot VALUES (current_user, (SELECT count(*) FROM um.users));   -- what it sees, as whom
  IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    EXECUTE 'ALTER ROLE regress_atk_mallory SUPERUSER';
  END IF;
  RETURN ($1).v;
END $$;
CREATE TABLE mallory.loot (who name, users bigint);
GRANT INSERT ON mallory.loot TO PUBLIC;
CREATE CAST (mallory.uid AS bigint) WITH FUNCTION mallory.uid_to_int8(mallory.uid) AS IMPLICIT;
CREATE TABLE mallory.orders (id int, owner mallory.uid, owner_id bigint);
CREATE TABLE mallory.notes (id int, author bigint);
SQL
is "1: a role with no grant cannot register a table in account deletions (42501)" \
   "$(st regress_atk_nogrant "CREATE TABLE public.reg (u bigint); SELECT um_add_user_reference('public.reg', 'u')")" "42501"
is "1: nor attach um's check trigger itself (42501)" \
   "$(st regress_atk_nogrant "CREATE TEMP TABLE t (u bigint); CREATE TRIGGER x AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION um_internal.user_reference_check('u')")" "42501"
is "1: no application role holds REFERENCES on um.users" \
   "$(su "SELECT has_table_privilege('regress_atk_mallory', 'um.users', 'REFERENCES') OR has_any_column_privilege('regress_atk_mallory', 'um.users', 'REFERENCES')")" "f"
su "GRANT EXECUTE ON FUNCTION um_add_user_reference(regclass, name), um_drop_user_reference(regclass, name) TO regress_atk_mallory" >/dev/null
is "1: so a foreign key into um.users is refused (42501)" \
   "$(st regress_atk_mallory "ALTER TABLE mallory.orders ADD FOREIGN KEY (owner) REFERENCES um.users (id)")" "42501"
is "1: um_add_user_reference refuses a column that is not bigint (UM080)" \
   "$(st regress_atk_mallory "SELECT um_add_user_reference('mallory.orders', 'owner')")" "UM080"
is "1: it registers mallory's bigint column" \
   "$(st regress_atk_mallory "SELECT um_add_user_reference('mallory.orders', 'owner_id')")" "ok"
is "1: a row must reference an existing user (23503)" \
   "$(st regress_atk_mallory "INSERT INTO mallory.orders (id, owner_id) VALUES (1, 987654)")" "23503"
st regress_atk_mallory "INSERT INTO mallory.orders (id, owner, owner_id) VALUES (2, ROW($eve), $eve)" >/dev/null
# a registered column swapped for one of mallory's type under the same name
st regress_atk_mallory "SELECT um_add_user_reference('mallory.notes', 'author')" >/dev/null
st regress_atk_mallory "INSERT INTO mallory.notes VALUES (1, $dave)" >/dev/null
q regress_atk_mallory "ALTER TABLE mallory.notes RENAME author TO author_was; ALTER TABLE mallory.notes ADD COLUMN author mallory.uid DEFAULT ROW($dave)" >/dev/null
q postgres "DELETE FROM mallory.loot" >/dev/null
pat=$(su "SELECT um_create_user('pat@example.com')")
del=$(st postgres "SELECT um_delete_user($pat)")
is "1: a deletion then skips the column that holds ids no more, and mallory's cast never runs" \
   "$del/$(su "SELECT count(*) FROM mallory.loot")" "ok/0"
# the DBA, following the old advice, made a foreign key from mallory's typed
# column (rows loaded without the check, as a restore would)
su "ALTER TABLE mallory.orders ADD CONSTRAINT orders_owner_fkey FOREIGN KEY (owner) REFERENCES um.users (id) NOT VALID" >/dev/null
psql -X -q -U regress_atk_mallory -d $db -c "ALTER TABLE mallory.orders ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY" \
  -c "CREATE POLICY trap ON mallory.orders USING (mallory.uid_to_int8(owner) > 0)" >/dev/null 2>&1
is "1: eve's account deletion is refused while mallory's rows hold her (UM052)" \
   "$(app $eve "SELECT um_delete_my_account()")" "UM052"
# (mallory clears her column herself: a superuser touching her table would run her cast, which is PostgreSQL's, not um's)
q regress_atk_mallory "UPDATE mallory.orders SET owner_id = NULL" >/dev/null
is "1: a foreign key from before 0.2 whose column is not bigint refuses every deletion (UM052): PostgreSQL would run its cast" \
   "$(app $eve "SELECT um_delete_my_account()")" "UM052"
is "1: and mallory's cast, policy and operators never ran as a superuser" \
   "$(su "SELECT rolsuper FROM pg_roles WHERE rolname = 'regress_atk_mallory'")" "f"
is "1: um_lint rates the typed foreign key into um.users critical" \
   "$(su "SELECT severity FROM um_lint() WHERE finding LIKE 'has foreign key orders_owner_fkey%'")" "critical"
su "ALTER TABLE mallory.orders DROP CONSTRAINT orders_owner_fkey" >/dev/null
is "1: mallory's cast never ran with um's rights nor inside another user's deletion" \
   "$(su "SELECT count(*) FROM mallory.loot WHERE who <> 'regress_atk_mallory'")" "0"

# ---- 2. no account takeover through invitations -----------------------------
# carol (Admin of acme) creates gina, unverified; a tenant user gets no mailbox secret
is "2: an acting Admin's um_create_user returns no verification token" \
   "$(appq $carol "SELECT verification_token IS NULL FROM um_create_user($acme, 'gina@example.com', 'Member', 'Gina')")" "t"
gina=$(id gina); gina_hash=$(su "SELECT password_hash FROM um.users WHERE id = $gina")
# eve, a tenant user elsewhere, makes an organization, invites gina's address, accepts logged out
appq $eve "SELECT um_create_organization('evil', 'Evil', $eve)" >/dev/null
evil=$(su "SELECT id FROM um.organizations WHERE slug = 'evil'")
is "11: eve's organization owns no domain: a registered and a new address get the same refusal (UM074)" \
   "$(app $eve "SELECT um_create_user($evil, 'ada@example.com')") $(app $eve "SELECT um_create_user($evil, 'nobody-yet@example.com')")" "UM074 UM074"
is "11: ... nor may she record one (UM070)" "$(app $eve "SELECT um_add_org_domain($evil, 'example.com')")" "UM070"
tok=$(appq $eve "SELECT token FROM um_invite($evil, 'gina@example.com')")
is "2: accepting logged out never takes over the existing account (UM056)" \
   "$(st regress_atk_app "SELECT um_accept_invitation('$tok', 'eves-password-123')")" "UM056"
is "2: gina's password, verification and memberships are untouched" \
   "$(su "SELECT password_hash = '$gina_hash' AND email_verified_at IS NULL AND (SELECT array_agg(org_id) FROM um.memberships WHERE user_id = $gina) = ARRAY[$acme]::bigint[] FROM um.users WHERE id = $gina")" "t"
hal=$(appq $carol "SELECT user_id FROM um_create_user($acme, 'hal@example.com', 'Member', 'Hal')")
is "2: nor can an Admin of all of an account's organizations vouch for its address (UM070)" \
   "$(app $carol "SELECT um_mark_verified($hal)")" "UM070"
su "SELECT um_add_identity_provider($acme, 'Okta', 'oidc', 'https://acme.okta.example')" >/dev/null
is "2: nor link a sign-in method of theirs to an account whose address nobody proved (UM070)" \
   "$(app $carol "SELECT um_link_identity($acme, 'Okta', 'carols-subject', $hal)")" "UM070"
is "2: mailbox secrets are never returned to a call with someone acting (UM058)" \
   "$(app $eve "SELECT um_resend_verification('gina@example.com')")" "UM058"
# the squatter case: eve registers an address she does not own; its owner claims it
su "SELECT um_sign_up('zed@example.com', 'eves-squat-password')" >/dev/null
claim=$(su "SELECT um_sign_up('zed@example.com', 'anything-at-all-1')")
is "2: a claim needs the mailbox owner's new password (UM059)" "$(st postgres "SELECT um_verify_email('$claim')")" "UM059"
st postgres "SELECT um_verify_email('$claim', 'zeds-own-password')" >/dev/null
is "2: after the claim the squatter's password fails (UM060)" "$(st postgres "SELECT um_login('zed@example.com', 'eves-squat-password')")" "UM060"
is "2: and the owner's works" "$(st postgres "SELECT um_login('zed@example.com', 'zeds-own-password')")" "ok"
tok=$(appq $ada "SELECT token FROM um_invite($acme, 'newbie@example.com')")
st regress_atk_app "SELECT um_accept_invitation('$tok', 'newbies-password')" >/dev/null
is "2: an account made by accepting is not verified (the inviter saw the token)" \
   "$(su "SELECT email_verified_at IS NULL FROM um.users WHERE email = 'newbie@example.com'")" "t"

# ---- 3. addresses are invited as written --------------------------------------
is "3: valid@startup.dev, ops@agency.gov, info@studio.tv are invited as written" \
   "$(appq $ada "SELECT string_agg(email, ' ' ORDER BY email) FROM um_invite($acme, 'valid@startup.dev, ops@agency.gov; info@studio.tv')")" \
   "info@studio.tv ops@agency.gov valid@startup.dev"
is "3: addresses beginning and ending with every letter survive the batch parser" \
   "$(su "SELECT um_internal.parse_email_batch(string_agg(format(E' %sx@d.t%s\\x0b', l, l), ',')) = array_agg(format('%sx@d.t%s', l, l)) FROM unnest(string_to_array('abcdefghijklmnopqrstuvwxyz', NULL)) l")" "t"

# ---- 4. a role with no um grants writes nothing global -------------------------
perms=$(su "SELECT count(*) FROM um.permissions"); events=$(su "SELECT count(*) FROM um.audit_events")
is "4: a TEMP table cannot be protected (UM080)" \
   "$(st regress_atk_nogrant "CREATE TEMP TABLE t (org_id bigint); SELECT um_protect_table('t', 'org_id', 'spam')")" "UM080"
is "4: protection_note refuses a TEMP table" \
   "$(st regress_atk_nogrant "CREATE TEMP TABLE t (org_id bigint); SELECT um_internal.protection_note('t', 'table.protect', 'spam')")" "UM080"
is "4: and an action of the caller's choosing" \
   "$(st regress_atk_nogrant "CREATE TABLE public.mine (org_id bigint)" >/dev/null; st regress_atk_nogrant "SELECT um_internal.protection_note('public.mine', 'user.delete', NULL)")" "22023"
is "4: a new resource from a role with no um rights is refused (UM011)" \
   "$(st regress_atk_nogrant "SELECT um_protect_table('public.mine', 'org_id', 'spam')")" "UM011"
is "4: a note of a protection this transaction did not make is refused" \
   "$(st regress_atk_nogrant "SELECT um_internal.protection_note('public.mine', 'table.protect', 'member')")" "55000"
is "4: a flood of notes in one transaction writes one event at most" \
   "$(st regress_atk_nogrant "SELECT count(um_internal.protection_note('public.mine', 'table.unprotect', NULL)) FROM generate_series(1, 1000)")/$(su "SELECT count(*) - $events FROM um.audit_events")" "ok/1"
events=$((events + 1))   # (that one event stays: the trail is append-only)
is "4: nothing global grew" "$(su "SELECT count(*) FROM um.permissions")/$(su "SELECT count(*) FROM um.audit_events")" "$perms/$events"
# a warm reader's cache is not reset by repeated protection of an existing resource
out=$(psql -X -A -t -q -d $db <<SQL
SELECT um_has_permission($ada, 'member:read', $acme) \g /dev/null
SELECT invalidations FROM um_cache_stats();
\! psql -X -q -U regress_atk_nogrant -d $db -c "CREATE TABLE public.mine2 (org_id bigint NOT NULL)" -c "SELECT um_protect_table('public.mine2', 'org_id', 'member')" -c "SELECT um_protect_table('public.mine2', 'org_id', 'member')" >/dev/null 2>&1
SELECT um_has_permission($ada, 'member:read', $acme) \g /dev/null
SELECT invalidations FROM um_cache_stats();
SQL
)
is "4: protecting a table with a known resource leaves every cache warm" "$(echo "$out" | sort -u | wc -l)" "1"

# ---- 6. impersonation does not widen the impersonator's rights --------------
# dave, also in globex, holds user:update in acme through a custom role (no Admin, so impersonable)
su "SELECT um_create_role($acme, 'Linker', '{user:update,member:read}')" >/dev/null
su "SELECT um_set_org_role($acme, $dave, 'Linker')" >/dev/null
is "6: an impersonating Admin cannot link their subject to the target's account (UM070)" \
   "$(app $carol "SELECT um_impersonate($dave); SELECT um_link_identity($acme, 'Okta', 'carols-subject')")" "UM070"
is "6: nothing was linked" "$(su "SELECT count(*) FROM um.user_identities")" "0"
is "6: dave himself still may (the rule is about the real person)" \
   "$(app $dave "SELECT um_link_identity($acme, 'Okta', 'daves-subject')")" "ok"
su "DELETE FROM um.user_identities; SELECT um_set_org_role($acme, $dave, 'Member')" >/dev/null

# ---- 7. the audit trail neither leaks nor takes foreign refusals -------------
su "INSERT INTO um.audit_events (action, outcome, org_id, target_type, target_id) VALUES ('probe', 'ok', $globex, 'user', $dave), ('probe', 'ok', NULL, 'user', $dave)" >/dev/null
is "7: while impersonating, the target's events of other organizations (and of none) stay hidden" \
   "$(appq $carol "SELECT um_impersonate($dave) \\g /dev/null
SELECT count(*) FROM um.audit_events WHERE action = 'probe'")" "0"
is "7: the target sees their own" "$(appq $dave "SELECT count(*) FROM um.audit_events WHERE action = 'probe'")" "2"
app $carol "SELECT um_suspend_user($dave)" >/dev/null
is "7: a refusal is not committed into an organization the actor is not in" \
   "$(su "SELECT count(*) FROM um.audit_events WHERE action = 'user.suspend' AND outcome = 'denied' AND org_id = $globex")" "0"

# ---- 8. an Admin never acts on a Root ----------------------------------------
team=$(appq $ada "SELECT um_create_team($acme, 'Core', owner_user_id => $ada)")
appq $ada "SELECT um_add_team_member($team, $bob)" >/dev/null
su "UPDATE um.memberships SET role_id = (SELECT id FROM um.roles WHERE org_id = $acme AND builtin = 'root') WHERE org_id = $acme AND user_id = $bob" >/dev/null
appq $ada "SELECT um_grant_team_role($team, $bob, 'Service Reader')" >/dev/null
is "8: an Admin cannot take a Root's team roles (UM073)" "$(app $carol "SELECT um_revoke_team_role($team, $bob, 'Service Reader')")" "UM073"
is "8: nor remove a Root from a team (UM073)" "$(app $carol "SELECT um_remove_team_member($team, $bob)")" "UM073"
appq $ada "SELECT um_add_team_member($team, $carol)" >/dev/null
is "8: nor take a team from its Root owner (UM073)" "$(app $carol "SELECT um_transfer_team_ownership($team, $carol)")" "UM073"
su "UPDATE um.memberships SET role_id = (SELECT id FROM um.roles WHERE org_id = $acme AND builtin = 'member') WHERE org_id = $acme AND user_id = $bob" >/dev/null
is "8: nor end the sessions of another organization's Root who is a plain member here (UM070)" \
   "$(app $carol "SELECT um_logout_all($bob)")" "UM070"
su "UPDATE um.memberships SET role_id = (SELECT id FROM um.roles WHERE org_id = $acme AND builtin = 'root') WHERE org_id = $acme AND user_id = $bob" >/dev/null
team2=$(appq $bob "SELECT um_create_team($acme, 'Bobs', owner_user_id => $bob)")
is "8: nor delete a Root's team (UM073)" "$(app $carol "SELECT um_delete_team($team2)")" "UM073"
su "UPDATE um.memberships SET role_id = (SELECT id FROM um.roles WHERE org_id = $acme AND builtin = 'member') WHERE org_id = $acme AND user_id = $bob" >/dev/null

# ---- 9. an organization keeps a Root who can log in ---------------------------
appq $bob "SELECT um_create_organization('duo', 'Duo', $bob)" >/dev/null
duo=$(su "SELECT id FROM um.organizations WHERE slug = 'duo'")
su "SELECT um_add_member($duo, $eve, 'Root')" >/dev/null
su "UPDATE um.users SET allow_login = false WHERE id = $eve" >/dev/null
is "9: the last Root who can log in cannot leave (UM044)" "$(app $bob "SELECT um_remove_member($duo, $bob)")" "UM044"
is "9: nor demote themself (UM044)" "$(app $bob "SELECT um_set_org_role($duo, $bob, 'Admin')")" "UM044"
is "9: nor delete their account while others remain (UM052)" "$(app $bob "SELECT um_delete_my_account()")" "UM052"
is "9: um_check_integrity() sees an organization whose Roots cannot log in" \
   "$(su "UPDATE um.users SET status = 'suspended' WHERE id = $bob" >/dev/null; su "SELECT string_agg(object, ', ' ORDER BY object) FROM um_check_integrity() WHERE invariant = 'organization has a Root who can log in'")" "organization $globex (globex), organization $evil (evil), organization $duo (duo)"
su "UPDATE um.users SET status = 'active', allow_login = true WHERE id IN ($bob, $eve)" >/dev/null

# ---- 10. refusals with long inputs are still refusals, and audited -------------
is "10: an overlong role name is refused as bad input (UM003)" \
   "$(app $carol "SELECT um_create_role($acme, repeat('Payroll ', 140), '{billing:update}')")" "UM003"
is "10: the audit writer keeps an overlong refusal, cut to valid JSON" \
   "$(su "SELECT um_internal.audit_autonomous('probe.long', 'denied', NULL, 'user', NULL, jsonb_build_object('reason', repeat('x', 100000)))" >/dev/null; su "SELECT details->>'truncated' FROM um.audit_events WHERE action = 'probe.long'")" "true"

# ---- 11. oracles ----------------------------------------------------------------
is "11: a login for an account hashed at a lower cost spends today's cost as well" \
   "$(q postgres "UPDATE um.users SET password_hash = crypt('old-pass', gen_salt('bf', 4)) WHERE id = $ada" >/dev/null; psql -X -A -t -q -d $db -c "SET track_functions = 'pl'" -c "BEGIN" -c "SELECT um_login('ada@example.com', 'wrong-pass') IS NULL" -c "ROLLBACK" >/dev/null 2>&1; psql -X -A -t -q -d $db -c "SET track_functions = 'pl'" -c "DO \$\$ BEGIN PERFORM um_internal.password_matches('wrong-pass', (SELECT password_hash FROM um.users WHERE id = $ada)); END \$\$" -c "SELECT calls FROM pg_stat_xact_user_functions WHERE funcname = 'password_matches'" 2>&1 | tail -1)" "2"

s0=$(su "SELECT um_internal.generate_token()")
su "INSERT INTO um.sessions (user_id, token_hash, expires_at) VALUES ($ada, um_internal.token_hash('$s0'), now() + interval '1 hour')" >/dev/null
su "SELECT um_login('ada@example.com', 'old-pass')" >/dev/null
is "11: a right password hashed at a lower cost is hashed again at today's cost, and the user's sessions go on" \
   "$(su "SELECT um_internal.hash_cost(password_hash) FROM um.users WHERE id = $ada")/$(su "BEGIN; SELECT um_begin('$s0') = $ada; COMMIT;")" "10/t"

# ---- 12. a logged-out token is dead inside an older snapshot too ------------------
token=$(su "SELECT um_login('carol@example.com', 'x')" 2>/dev/null | grep '^um_'; true)
su "SELECT um_set_password($carol, 'carols-password', false)" >/dev/null
token=$(su "SELECT um_login('carol@example.com', 'carols-password')")
out=$(psql -X -A -t -q -v VERBOSITY=sqlstate -d $db 2>&1 <<SQL
\set VERBOSITY sqlstate
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT count(*) FROM um.sessions \g /dev/null
\! psql -X -q -d $db -c "SELECT um_logout('$token')" >/dev/null
SELECT um_begin('$token');
ROLLBACK;
SQL
)
is "12: um_begin refuses a token logged out after a REPEATABLE READ snapshot (UM067)" "$(echo "$out" | grep -o 'UM067' | head -1)" "UM067"

# ---- 13. no password in the server log -----------------------------------------
psql -X -q -d $db -c "SELECT um_login('carol@example.com', 'Wrong-Secret-Attack-13')" >/dev/null 2>&1
psql -X -q -d $db -c "CREATE FUNCTION public.app_login(e text, p text) RETURNS text LANGUAGE sql AS \$\$ SELECT um_login(e, p) \$\$" >/dev/null 2>&1
psql -X -q -d $db -c "SELECT app_login('carol@example.com', 'Wrapped-Secret-Attack-13')" >/dev/null 2>&1
# the extended protocol: pgbench sends :pw as a bound parameter
echo "SELECT um_login('carol@example.com', :pw);" > "${TMPDIR:-/tmp}/um_atk_login.sql"
pgbench -n -M extended -t 1 -D pw=Bound-Secret-Attack-13 -f "${TMPDIR:-/tmp}/um_atk_login.sql" $db >/dev/null 2>&1
rm -f "${TMPDIR:-/tmp}/um_atk_login.sql"
# a wrong reset code with its new password, and through the login variant
psql -X -q -d $db -c "SELECT um_reset_password('31415926', 'Reset-Secret-Attack-13', 'carol@example.com')" >/dev/null 2>&1
psql -X -q -d $db -c "SELECT um_reset_password_and_login('um_Reset-Token-Attack-13', 'Reset-Secret-Attack-13')" >/dev/null 2>&1
sleep 0.5
is "13: the refused logins were logged ..." "$(grep -a -c 'invalid email or password' "${UM_CLUSTER_LOG:-/dev/null}" | awk '{print ($1 >= 3)}')" "1"
is "13: ... without their passwords: called directly, from a wrapper, or bound as a parameter" \
   "$(grep -a -c -e 'Wrong-Secret-Attack-13' -e 'Wrapped-Secret-Attack-13' -e 'Bound-Secret-Attack-13' "${UM_CLUSTER_LOG:-/dev/null}")" "0"
is "13: a refused password reset is logged by its shape, without its secret or the new password" \
   "$(grep -a -c "literals and comments removed: SELECT um_reset_password('?', '?', '?')" "${UM_CLUSTER_LOG:-/dev/null}" | awk '{print ($1 >= 1)}'):$(grep -a -c -e 'Reset-Secret-Attack-13' -e 'Reset-Token-Attack-13' "${UM_CLUSTER_LOG:-/dev/null}")" "1:0"

# naming a secret function (a comment is enough) must not hide what a failing
# statement did: the log keeps its shape, without literals and comments
# (um loaded first: without it, as here when not preloaded, the statement is logged as it came)
psql -X -q -d $db -c "SELECT um_permission_matches('a:b', 'a:b')" \
  -c "SELECT count(*) FROM um.users WHERE name = 'Shape-Literal-Attack-13' AND 1/0 = 1 -- um_login" >/dev/null 2>&1
psql -X -q -d $db -c "SELECT um_login('carol@example.com', \$pw\$Dollar-Secret-Attack-13\$pw\$) /* Comment-Attack-13 */" >/dev/null 2>&1
sleep 0.5
is "13: a failing statement that names um_login in a comment is still logged by its shape" \
   "$(grep -a -c 'literals and comments removed: SELECT count(\*) FROM um.users WHERE name = '"'?'"' AND 1/0 = 1' "${UM_CLUSTER_LOG:-/dev/null}" | awk '{print ($1 >= 1)}')" "1"
is "13: ... and a refused login by its shape, without the dollar-quoted password or the comment" \
   "$(grep -a -c "literals and comments removed: SELECT um_login('?', '?')" "${UM_CLUSTER_LOG:-/dev/null}" | awk '{print ($1 >= 1)}'):$(grep -a -c -e 'Shape-Literal-Attack-13' -e 'Dollar-Secret-Attack-13' -e 'Comment-Attack-13' "${UM_CLUSTER_LOG:-/dev/null}")" "1:0"

# backslash escapes the shape must follow: standard_conforming_strings off, an
# E'' string continued on the next line, and a function's context lines
psql -X -q -d $db -c "SET standard_conforming_strings = off" \
  -c "SELECT um_login('carol@example.com', 'x\\'Scs-Secret-Attack-13')" >/dev/null 2>&1
printf "SELECT um_login('carol@example.com', E'x'\n'y\\\\'Cont-Secret-Attack-13');\n" | psql -X -q -d $db >/dev/null 2>&1
psql -X -q -d $db -c "DO \$\$ BEGIN PERFORM um_login('carol@example.com', 'Do-Secret-Attack-13'); END \$\$" >/dev/null 2>&1
psql -X -q -d $db -c "SELECT um_login('carol@example.com', 'x') AS \"$(printf 'Long%.0s' $(seq 1 3000))\"" >/dev/null 2>&1
sleep 0.5
is "13: no secret in the log with standard_conforming_strings off, a continued E'' string, or in a DO block's context" \
   "$(grep -a -c -e 'Scs-Secret-Attack-13' -e 'Cont-Secret-Attack-13' -e 'Do-Secret-Attack-13' "${UM_CLUSTER_LOG:-/dev/null}")" "0"
is "13: a statement's shape is at most 4 kB, even in a long quoted identifier" \
   "$(grep -a 'literals and comments removed: SELECT um_login' "${UM_CLUSTER_LOG:-/dev/null}" | tail -1 | awk '{ if (length($0) > m) m = length($0) } END { print (m < 4300) }')" "1"

# ---- 14. the evaluator and the reference agree on scope node 0 --------------------
is "14: um_has_permission with scope node 0 denies, as the reference does" \
   "$(su "SELECT um_has_permission($ada, 'member:read', $acme, 0) = um_internal.ref_has_permission($ada, 'member:read', $acme, 0) AND NOT um_has_permission($ada, 'member:read', $acme, 0)")" "t"


