#!/usr/bin/env bash
# test/shell/upgrade.sh: installing the oldest released version and walking
# ALTER EXTENSION um UPDATE to the current one gives exactly what a fresh
# install of the current version gives: functions (with their bodies,
# markings, settings and privileges), tables, columns, constraints, indexes,
# triggers, policies, views, privileges, the pg_dump configuration and the
# built-in catalog rows.  Runs against the cluster test/run.sh started;
# prints TAP.
set -uo pipefail
work=$(mktemp -d /tmp/um-upgrade.XXXXXX)
trap 'rm -rf "$work"; for d in um_upgraded um_fresh um_with_data um_typed_fk um_old_sql; do dropdb --if-exists $d >/dev/null 2>&1; done' EXIT
n=0
ok()     { n=$((n+1)); echo "ok $n - $1"; }
not_ok() { n=$((n+1)); echo "not ok $n - $1"; }
check()  { if eval "$2"; then ok "$1"; else not_ok "$1"; [ -n "${3:-}" ] && sed 's/^/# /' "$3" | head -40; fi; return 0; }
echo "1..11"

current=$(sed -n "s/^default_version *= *'\(.*\)'/\1/p" um.control)
oldest=$(ls sql/um--*.sql | sed -n 's#^sql/um--\([0-9.]*\)\.sql$#\1#p' | sort -V | head -1)

createdb um_upgraded
createdb um_fresh
psql -X -q -v ON_ERROR_STOP=1 -d um_upgraded >"$work/up.log" 2>&1 <<SQL
SET client_min_messages = warning;
CREATE EXTENSION um VERSION '$oldest' CASCADE;
ALTER EXTENSION um UPDATE;
SQL
check "version $oldest installs and updates to $current" \
  '[ $? -eq 0 ] && [ "$(psql -X -A -t -d um_upgraded -c "SELECT extversion FROM pg_extension WHERE extname = '"'"'um'"'"'")" = "$current" ]' "$work/up.log"
psql -X -q -v ON_ERROR_STOP=1 -d um_fresh -c "SET client_min_messages = warning" -c "CREATE EXTENSION um CASCADE" >"$work/fresh.log" 2>&1
check "version $current installs fresh" '[ $? -eq 0 ]' "$work/fresh.log"

# everything the extension made, described without OIDs
describe() {
  psql -X -A -t -d "$1" <<'SQL'
WITH ext AS (SELECT oid, extnamespace FROM pg_extension WHERE extname = 'um'),
nsp AS (SELECT n.oid FROM pg_namespace n WHERE n.nspname IN ('um', 'um_internal') OR n.oid = (SELECT extnamespace FROM ext))
SELECT 'function ' || p.oid::regprocedure || ' ' || p.prokind::text || p.provolatile::text || p.proisstrict::text || p.proparallel::text
       || p.prosecdef::text || ' ' || coalesce(array_to_string(p.proconfig, ','), '') || ' ' || coalesce(p.proacl::text, '')
       || ' ' || md5(p.prosrc) || ' ' || coalesce(p.probin, '') || ' ' || p.prorettype::regtype
       || ' (' || pg_get_function_arguments(p.oid) || ') ' || p.procost::text || ' ' || p.prorows::text
       || ' ' || coalesce(p.prosupport::regproc::text, '')
  FROM pg_proc p WHERE p.pronamespace IN (SELECT oid FROM nsp)
UNION ALL
SELECT 'relation ' || c.oid::regclass || ' ' || c.relkind::text || ' ' || c.relrowsecurity::text || c.relforcerowsecurity::text
       || ' ' || coalesce(c.relacl::text, '') || ' ' || coalesce(array_to_string(c.reloptions, ','), '')
  FROM pg_class c WHERE c.relnamespace IN (SELECT oid FROM nsp) AND c.relkind IN ('r', 'v', 'm', 'S', 'p', 'c')
UNION ALL
SELECT 'column ' || a.attrelid::regclass || '.' || a.attname || ' #' || a.attnum || ' ' || format_type(a.atttypid, a.atttypmod)
       || ' ' || a.attnotnull::text || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '') || ' ' || a.attidentity::text
       || ' ' || coalesce(a.attacl::text, '')
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE c.relnamespace IN (SELECT oid FROM nsp) AND c.relkind IN ('r', 'v', 'p', 'c') AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'constraint ' || r.conrelid::regclass || ' ' || r.conname || ' ' || pg_get_constraintdef(r.oid)
  FROM pg_constraint r WHERE r.connamespace IN (SELECT oid FROM nsp)
UNION ALL
SELECT 'index ' || pg_get_indexdef(i.indexrelid)
  FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid WHERE c.relnamespace IN (SELECT oid FROM nsp)
UNION ALL
SELECT 'trigger ' || pg_get_triggerdef(t.oid) || ' ' || t.tgenabled::text
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE c.relnamespace IN (SELECT oid FROM nsp) AND NOT t.tgisinternal
UNION ALL
SELECT 'policy ' || p.polrelid::regclass || ' ' || p.polname || ' ' || p.polcmd::text || p.polpermissive::text || ' '
       || p.polroles::text || ' ' || coalesce(pg_get_expr(p.polqual, p.polrelid), '') || ' '
       || coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '')
  FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid WHERE c.relnamespace IN (SELECT oid FROM nsp)
UNION ALL
SELECT 'view ' || c.oid::regclass || ' ' || md5(pg_get_viewdef(c.oid))
  FROM pg_class c WHERE c.relnamespace IN (SELECT oid FROM nsp) AND c.relkind IN ('v', 'm')
UNION ALL
SELECT 'type ' || t.oid::regtype || ' ' || t.typtype::text || ' '
       || coalesce((SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid), '')
       || coalesce(format_type(nullif(t.typbasetype, 0), t.typtypmod), '') || ' ' || coalesce(t.typacl::text, '')
  FROM pg_type t WHERE t.typnamespace IN (SELECT oid FROM nsp) AND t.typtype IN ('e', 'd')
UNION ALL
SELECT 'comment ' || pg_describe_object(ds.classoid, ds.objoid, ds.objsubid) || ' ' || md5(ds.description)
  FROM pg_description ds
 WHERE (ds.classoid = 'pg_proc'::regclass AND ds.objoid IN (SELECT oid FROM pg_proc WHERE pronamespace IN (SELECT oid FROM nsp)))
    OR (ds.classoid = 'pg_class'::regclass AND ds.objoid IN (SELECT oid FROM pg_class WHERE relnamespace IN (SELECT oid FROM nsp)))
    OR (ds.classoid = 'pg_constraint'::regclass AND ds.objoid IN (SELECT oid FROM pg_constraint WHERE connamespace IN (SELECT oid FROM nsp)))
    OR (ds.classoid = 'pg_type'::regclass AND ds.objoid IN (SELECT oid FROM pg_type WHERE typnamespace IN (SELECT oid FROM nsp)))
    OR (ds.classoid = 'pg_trigger'::regclass AND ds.objoid IN
          (SELECT t.oid FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE c.relnamespace IN (SELECT oid FROM nsp)))
    OR (ds.classoid = 'pg_policy'::regclass AND ds.objoid IN
          (SELECT p.oid FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid WHERE c.relnamespace IN (SELECT oid FROM nsp)))
    OR (ds.classoid = 'pg_namespace'::regclass AND ds.objoid IN (SELECT oid FROM pg_namespace WHERE nspname IN ('um', 'um_internal')))
UNION ALL
SELECT 'schema ' || n.nspname || ' ' || coalesce(n.nspacl::text, '') FROM pg_namespace n WHERE n.nspname IN ('um', 'um_internal')
UNION ALL
SELECT 'dumped ' || x.oid::regclass || ' ' || coalesce(e.extcondition[x.ord], '')
  FROM pg_extension e, unnest(e.extconfig) WITH ORDINALITY AS x(oid, ord) WHERE e.extname = 'um'
UNION ALL
SELECT 'requires ' || array_to_string(r.requires, ',') FROM pg_available_extension_versions r
 WHERE r.name = 'um' AND r.version = (SELECT extversion FROM pg_extension WHERE extname = 'um')
UNION ALL
SELECT 'member ' || pg_describe_object(d.classid, d.objid, d.objsubid)
  FROM pg_depend d WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = (SELECT oid FROM ext) AND d.deptype = 'e'
UNION ALL
SELECT 'permission ' || p.name || ' ' || p.builtin::text || ' ' || coalesce(p.description, '') FROM um.permissions p
UNION ALL
SELECT 'builtin role ' || b::text FROM um.builtin_roles b
UNION ALL
SELECT 'builtin permission ' || b::text FROM um.builtin_role_permissions b
ORDER BY 1
SQL
}
describe um_upgraded >"$work/upgraded.txt" 2>&1
describe um_fresh >"$work/fresh.txt" 2>&1
check "the description covers functions (with argument names and defaults), tables, columns in order, policies, grants and comments ($(wc -l <"$work/fresh.txt") lines)" \
  '[ "$(grep -c "^function " "$work/fresh.txt")" -gt 50 ] && grep -q "^policy " "$work/fresh.txt" && grep -q "^relation .*=r/" "$work/fresh.txt" && [ "$(grep -c "^comment " "$work/fresh.txt")" -gt 50 ]' "$work/fresh.txt"
diff -u "$work/fresh.txt" "$work/upgraded.txt" >"$work/diff.txt"
check "the updated database matches a fresh install of $current" '[ ! -s "$work/diff.txt" ]' "$work/diff.txt"

# every release on the way: $oldest updated to it matches a fresh install of it
releases=$(ls sql/um--*.sql | sed -n 's#^sql/um--\([0-9.]*\)\.sql$#\1#p' | sort -V | grep -vx "$oldest" | grep -vx "$current")
: >"$work/steps.txt"
for r in $releases; do
  for d in um_step_up um_step_fresh; do dropdb --if-exists $d >/dev/null 2>&1; createdb $d; done
  psql -X -q -v ON_ERROR_STOP=1 -d um_step_up -c "SET client_min_messages = warning" \
       -c "CREATE EXTENSION um VERSION '$oldest' CASCADE" -c "ALTER EXTENSION um UPDATE TO '$r'" >>"$work/steps.txt" 2>&1
  psql -X -q -v ON_ERROR_STOP=1 -d um_step_fresh -c "SET client_min_messages = warning" \
       -c "CREATE EXTENSION um VERSION '$r' CASCADE" >>"$work/steps.txt" 2>&1
  describe um_step_up >"$work/step_up.txt" 2>&1
  describe um_step_fresh >"$work/step_fresh.txt" 2>&1
  diff -u "$work/step_fresh.txt" "$work/step_up.txt" >>"$work/steps.txt" || echo "differs at $r" >>"$work/steps.txt"
  for d in um_step_up um_step_fresh; do dropdb --if-exists $d >/dev/null 2>&1; done
done
check "each release on the way ($(echo $releases)) updated from $oldest matches its fresh install" \
  '[ -n "$releases" ] && ! grep -q "differs at" "$work/steps.txt" && ! grep -q "ERROR" "$work/steps.txt"' "$work/steps.txt"

# An installation with data: organizations, members, custom roles, teams,
# grants, invitations, identity links and an application table whose foreign
# key rests on one of the keys the update replaces.  After the update every
# row is there, every check answers as before, every invariant holds and the
# application's foreign key still refuses an orphan.
createdb um_with_data
psql -X -q -v ON_ERROR_STOP=1 -d um_with_data >"$work/data.log" 2>&1 <<SQL
SET client_min_messages = warning;
CREATE EXTENSION um VERSION '$oldest' CASCADE;
SELECT count(um_create_user(format('u%s@example.com', g))) FROM generate_series(1, 60) g;
SELECT count(um_create_organization(format('org-%s', g), 'Org', g)) FROM generate_series(1, 6) g;
SELECT count(um_add_member(1 + g % 6, g, CASE WHEN g % 3 = 0 THEN 'Admin' ELSE 'Service Reader' END)) FROM generate_series(7, 60) g;
INSERT INTO um.roles (org_id, name) SELECT id, 'Auditor' FROM um.organizations;
INSERT INTO um.role_permissions (org_id, role_id, permission) SELECT org_id, id, 'audit:read' FROM um.roles WHERE name = 'Auditor';
INSERT INTO um.role_inclusions (org_id, role_id, included_role_id)
  SELECT a.org_id, a.id, r.id FROM um.roles a JOIN um.roles r ON r.org_id = a.org_id AND r.builtin = 'member' WHERE a.name = 'Auditor';
INSERT INTO um.teams (org_id, name) SELECT id, 'Core' FROM um.organizations;
INSERT INTO um.team_members (org_id, team_id, user_id, is_owner)
  SELECT t.org_id, t.id, m.user_id, m.user_id = (SELECT min(user_id) FROM um.memberships x WHERE x.org_id = t.org_id)
    FROM um.teams t JOIN um.memberships m ON m.org_id = t.org_id;
INSERT INTO um.team_member_roles (org_id, team_id, user_id, role_id)
  SELECT tm.org_id, tm.team_id, tm.user_id, r.id FROM um.team_members tm JOIN um.roles r ON r.org_id = tm.org_id AND r.name = 'Auditor'
   WHERE tm.user_id % 2 = 0;
INSERT INTO um.grants (org_id, role_id, team_id, scope_id)
  SELECT t.org_id, r.id, t.id, t.scope_id FROM um.teams t JOIN um.roles r ON r.org_id = t.org_id AND r.builtin = 'service_editor';
INSERT INTO um.invitations (org_id, email, role_id, token_hash, expires_at)
  SELECT r.org_id, format('new%s@example.com', r.org_id), r.id, sha256(convert_to(r.id::text, 'UTF8')), now() + interval '1 day'
    FROM um.roles r WHERE r.builtin = 'member';
INSERT INTO um.identity_providers (org_id, name, protocol, issuer) SELECT id, 'Okta', 'oidc', 'https://okta.example' FROM um.organizations;
INSERT INTO um.user_identities (org_id, provider_id, subject, user_id)
  SELECT p.org_id, p.id, 'sub-' || m.user_id, m.user_id FROM um.identity_providers p JOIN um.memberships m ON m.org_id = p.org_id;
CREATE TABLE public.app_roles_in_use (org_id bigint, role_id bigint, FOREIGN KEY (org_id, role_id) REFERENCES um.roles (org_id, id));
INSERT INTO public.app_roles_in_use SELECT org_id, id FROM um.roles WHERE name = 'Auditor';
-- a quoted schema and table, a deferrable foreign key with a comment, one on the id alone, a partitioned table
CREATE SCHEMA "App Data";
CREATE TABLE "App Data"."Team Notes" (org_id bigint, team_id bigint,
  CONSTRAINT notes_team_fkey FOREIGN KEY (org_id, team_id) REFERENCES um.teams (org_id, id) DEFERRABLE INITIALLY DEFERRED);
COMMENT ON CONSTRAINT notes_team_fkey ON "App Data"."Team Notes" IS 'notes belong to a team';
INSERT INTO "App Data"."Team Notes" SELECT org_id, id FROM um.teams;
CREATE TABLE public.scope_tags (scope_id bigint REFERENCES um.scopes (id) ON DELETE RESTRICT, tag text);
INSERT INTO public.scope_tags SELECT id, 'x' FROM um.scopes;
CREATE TABLE public.role_log (org_id bigint, role_id bigint, at date, FOREIGN KEY (org_id, role_id) REFERENCES um.roles (org_id, id))
  PARTITION BY RANGE (at);
CREATE TABLE public.role_log_2026 PARTITION OF public.role_log FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE public.role_log_2027 PARTITION OF public.role_log FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');
INSERT INTO public.role_log SELECT org_id, id, '2026-06-01' FROM um.roles WHERE name = 'Auditor';
CREATE TABLE public.fk_before AS
  SELECT conrelid::regclass::text AS tbl, conname, pg_get_constraintdef(oid) AS def, obj_description(oid, 'pg_constraint') AS comment
    FROM pg_constraint WHERE contype = 'f' AND connamespace <> 'um'::regnamespace;
CREATE TABLE public.answers_before AS
  SELECT u.id AS u, o.id AS o, p.name AS p, um_has_permission(u.id, p.name, o.id) AS a
    FROM um.users u, um.organizations o, um.permissions p;
CREATE TABLE public.counts_before AS
  SELECT t.relname, (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM um.%I', t.relname), false, true, '')))[1]::text AS n
    FROM pg_class t WHERE t.relnamespace = 'um'::regnamespace AND t.relkind = 'r';
ALTER EXTENSION um UPDATE;
SQL
check "an installation of $oldest with data updates to $current" '[ $? -eq 0 ]' "$work/data.log"
result=$(psql -X -A -t -d um_with_data 2>&1 <<'SQL'
-- 0.3 gives every Root * in place of its permissions: only Roots gain, and
-- only their rows of role_permissions (and the template's) change
SELECT (SELECT count(*) FROM public.counts_before c
         WHERE c.n <> (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM um.%I', c.relname), false, true, '')))[1]::text
           AND c.relname NOT IN ('role_permissions', 'builtin_role_permissions'))
    + (SELECT count(*) FROM um.role_permissions rp JOIN um.roles r ON r.id = rp.role_id
        WHERE r.builtin = 'root' AND rp.permission <> '*')
    || '/' || (SELECT count(*) FROM public.answers_before b WHERE b.a IS DISTINCT FROM um_has_permission(b.u, b.p, b.o)
                 AND NOT (NOT b.a AND um_has_permission(b.u, b.p, b.o)
                          AND EXISTS (SELECT 1 FROM um.memberships m JOIN um.roles r ON r.id = m.role_id
                                       WHERE m.org_id = b.o AND m.user_id = b.u AND r.builtin = 'root')))
    || '/' || (SELECT count(*) FROM um_check_integrity())
    || '/' || (SELECT count(*) FROM (SELECT tbl, conname, def, comment FROM public.fk_before
                                     EXCEPT SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), obj_description(oid, 'pg_constraint')
                                              FROM pg_constraint WHERE contype = 'f' AND connamespace <> 'um'::regnamespace) x)
    || '/' || (SELECT count(*) FROM public.answers_before WHERE a);
DO $$ BEGIN
  INSERT INTO public.app_roles_in_use VALUES (1, 999999);
  RAISE EXCEPTION 'orphan accepted';
EXCEPTION WHEN foreign_key_violation THEN RAISE NOTICE 'fk holds';
END $$;
SQL
)
echo "$result" >"$work/data_check.log"
check "after the update: the same rows, the same answers ($(echo "$result" | head -1 | cut -d/ -f5) granted), integrity clean, the application's foreign keys as they were (quoted names, deferrable, commented, on the id alone, partitioned) and enforced" \
  '[ "$(echo "$result" | head -1 | cut -d/ -f1-4)" = "0/0/0/0" ] && grep -q "fk holds" "$work/data_check.log"' "$work/data_check.log"


# a foreign key whose column type differs from um's (its cast would run as
# um's owner): the update refuses, and goes through once it is dropped
createdb um_typed_fk
psql -X -q -v ON_ERROR_STOP=1 -d um_typed_fk >"$work/typed.log" 2>&1 <<SQL
SET client_min_messages = warning;
CREATE EXTENSION um VERSION '$oldest' CASCADE;
CREATE TYPE public.uid AS (v bigint);
CREATE FUNCTION public.uid_to_int8(public.uid) RETURNS bigint LANGUAGE sql AS 'SELECT (\$1).v';
CREATE CAST (public.uid AS bigint) WITH FUNCTION public.uid_to_int8(public.uid) AS IMPLICIT;
CREATE TABLE public.orders (owner public.uid REFERENCES um.users (id));
SQL
out=$(psql -X -q -d um_typed_fk -c "ALTER EXTENSION um UPDATE" 2>&1)
check "the update refuses a foreign key into um whose column type differs, naming the fix" \
  'grep -q "run their column.s cast as um.s owner" <<<"$out" && grep -q "DROP CONSTRAINT orders_owner_fkey" <<<"$out"' "$work/typed.log"
out2=$(psql -X -q -d um_typed_fk -c "ALTER TABLE public.orders DROP CONSTRAINT orders_owner_fkey" -c "ALTER EXTENSION um UPDATE" 2>&1)
check "and updates once it is dropped" '[ "$(psql -X -A -t -d um_typed_fk -c "SELECT extversion FROM pg_extension WHERE extname = '"'"'um'"'"'")" = "$current" ]' "$work/typed.log"

# The library installed now serves a database whose SQL is still the
# previous release's until ALTER EXTENSION um UPDATE runs (a package
# upgrade replaces the library first): its lifecycle functions work, and
# still decide by the role that called.
previous=$(ls sql/um--*.sql | sed -n 's#^sql/um--\([0-9.]*\)\.sql$#\1#p' | sort -V | grep -vx "$current" | tail -1)
createdb um_old_sql
old=$(psql -X -q -A -t -v ON_ERROR_STOP=1 -d um_old_sql 2>&1 <<SQL
SET client_min_messages = warning;
CREATE EXTENSION um VERSION '$previous' CASCADE;
SELECT um_create_organization('old-sql', 'Old', um_create_user('root@old.example'));
CREATE ROLE um_old_sql_app;
SET ROLE um_old_sql_app;
DO \$\$ BEGIN
  PERFORM um_create_user('nobody@old.example');
  RAISE EXCEPTION 'an application role created a user';
EXCEPTION WHEN SQLSTATE 'UM070' THEN RAISE WARNING 'refused';
END \$\$;
RESET ROLE;
SELECT count(*) FROM um.users;
DROP ROLE um_old_sql_app;
SQL
)
echo "$old" >"$work/old_sql.log"
check "the current library serves a database still at $previous: lifecycle calls work and refuse an application role" \
  '[ "$(echo "$old" | tail -1)" = "1" ] && grep -q refused "$work/old_sql.log" && ! grep -q ERROR "$work/old_sql.log"' "$work/old_sql.log"

# A backend that used the cache before ALTER EXTENSION um UPDATE (it knew
# no buckets then) follows the changes made after it: the update tells
# every backend to look the message addresses up again.
coproc WARM { psql -X -q -A -t -d um_old_sql 2>&1; }
ask() { echo "$1" >&"${WARM[1]}"; local line=""; read -r -t 30 line <&"${WARM[0]}"; echo "$line"; }
before=$(ask "SELECT um_has_permission(1, 'org:read', 1);")
psql -X -q -d um_old_sql -c "SET client_min_messages = warning" -c "ALTER EXTENSION um UPDATE" >"$work/warm.log" 2>&1
between=$(ask "SELECT um_has_permission(1, 'org:read', 1);")
psql -X -q -d um_old_sql -c "UPDATE um.users SET allow_login = false WHERE id = 1" >>"$work/warm.log" 2>&1
after=$(ask "SELECT um_has_permission(1, 'org:read', 1);")
echo '\q' >&"${WARM[1]}"; wait "$WARM_PID" 2>/dev/null
echo "before=$before between=$between after=$after" >>"$work/warm.log"
check "a backend warm before the update sees a change made after it (before $before, between $between, after $after)" \
  '[ "$before" = t ] && [ "$between" = t ] && [ "$after" = f ]' "$work/warm.log"
