-- um's own tables under row-level security, read by an application role.
BEGIN;
\ir fixture.psql
SELECT plan(37);
SELECT pg_temp.org('acme') AS acme, pg_temp.org('globex') AS globex, pg_temp.usr('ada') AS ada, pg_temp.usr('bob') AS bob,
       pg_temp.usr('carol') AS carol, pg_temp.usr('dave') AS dave, pg_temp.role('globex', 'root') AS globex_root \gset
SELECT um_create_user('erin@example.com', 'Erin') AS erin \gset
CREATE ROLE regress_um_app NOLOGIN;
GRANT EXECUTE ON FUNCTION um_act_as(bigint) TO regress_um_app;
CREATE ROLE regress_um_admin NOLOGIN;
DO $$ BEGIN EXECUTE format('GRANT %I TO regress_um_admin', (SELECT extowner::regrole::text FROM pg_extension WHERE extname = 'um')); END $$;

SET ROLE regress_um_app;
SELECT is((SELECT count(*) FROM um.organizations) + (SELECT count(*) FROM um.memberships) + (SELECT count(*) FROM um.users)
          + (SELECT count(*) FROM um.roles) + (SELECT count(*) FROM um.audit_events), 0::bigint,
          'nobody acting: an application role reads no row of um''s tables');
SELECT cmp_ok((SELECT count(*) FROM um.permissions), '>', 0::bigint, 'the permission catalog holds no tenant data and is readable');
SELECT throws_ok($$ SELECT * FROM um_my_organizations() $$, 'UM072', NULL, 'um_my_organizations with nobody acting: UM072');
SELECT is((SELECT count(*) FROM um_my_permissions(1)), 0::bigint, 'um_my_permissions with nobody acting: none');
SELECT um_act_as(:carol) AS a \gset
SELECT is((SELECT array_agg(slug::text ORDER BY slug) FROM um.organizations), ARRAY['acme'], 'carol (Admin of acme) reads acme only');
SELECT is((SELECT count(*) FROM um.memberships WHERE org_id = :globex), 0::bigint, 'no globex memberships');
SELECT is((SELECT array_agg(email ORDER BY email) FROM um.users), ARRAY['ada@example.com', 'carol@example.com', 'dave@example.com'],
          'and the users of acme only (not bob of globex, not erin of no organization)');
SELECT is((SELECT count(DISTINCT org_id) FROM um.roles), 1::bigint, 'acme''s roles');
SELECT is((SELECT count(*) FROM um.audit_events WHERE org_id = :globex), 0::bigint, 'acme''s audit events, none of globex''s');
SELECT cmp_ok((SELECT count(*) FROM um.audit_events WHERE org_id = :acme), '>', 0::bigint, '(she holds audit:read in acme)');
SELECT is((SELECT array_agg(DISTINCT org ORDER BY org) FROM um.member_list), ARRAY['acme'], 'the views show the same (security_invoker)');
SELECT throws_ok($$ SELECT password_hash FROM um.users $$, '42501', NULL, 'password hashes are not readable');
SELECT throws_ok($$ SELECT failed_login_count FROM um.users $$, '42501', NULL, 'nor login counters');
SELECT throws_ok($$ SELECT * FROM um.sessions $$, '42501', NULL, 'nor sessions');
SELECT throws_ok($$ SELECT * FROM um.user_identities $$, '42501', NULL, 'nor identity links');
SELECT throws_ok(format('INSERT INTO um.memberships (org_id, user_id, role_id) VALUES (%s, %s, %s)', :globex, :carol, :globex_root),
                 '42501', NULL, 'an application role cannot write um''s tables: no joining globex as Root');
SELECT throws_ok(format('UPDATE um.users SET status = ''active'' WHERE id = %s', :dave), '42501', NULL, 'nor updating users');
SELECT throws_ok('DELETE FROM um.audit_events', '42501', NULL, 'nor deleting the audit trail');
SELECT throws_ok('SELECT um_internal.lock_organization(1)', '42501', NULL, 'nor calling um''s internal functions');
SELECT um_act_as(:dave) AS a \gset
SELECT is((SELECT array_agg(slug::text ORDER BY slug) FROM um.organizations), ARRAY['acme', 'globex'],
          'dave (a member of both) reads both');
SELECT is((SELECT count(*) FROM um.invitations), 0::bigint, 'but no invitations (he lacks member:invite)');
SELECT is((SELECT count(*) FROM um.audit_events WHERE target_type IS DISTINCT FROM 'user' OR target_id <> :dave), 0::bigint,
          'and of the audit trail only the events about himself (no audit:read)');
-- what an application reads for a Member: the member list with roles, their organizations, their permissions
SELECT is((SELECT array_agg(email || ':' || role ORDER BY email) FROM um.member_list WHERE org = 'acme'),
          ARRAY['ada@example.com:Root', 'carol@example.com:Admin', 'dave@example.com:Member'],
          'a Member reads the member list with each member''s role (whoever reads members reads role names)');
SELECT is((SELECT count(*) FROM um.role_permissions), 0::bigint, '... but not what the roles grant (role:read)');
SELECT is((SELECT array_agg(DISTINCT l.org_id) FROM um.member_list l WHERE l.org = 'acme'), ARRAY[:acme::bigint],
          'the member list carries the organization''s id');
SELECT is((SELECT count(*) FROM um.member_list l JOIN um.memberships m ON m.id = l.membership_id
            WHERE l.org_id = :acme AND m.user_id = l.user_id AND m.role_id = l.role_id), 3::bigint,
          'and each membership''s id and role id');
-- keyset paging, as doc/integration.md shows it: two members a page
SELECT max(membership_id) AS page1_last FROM (SELECT membership_id FROM um.member_list WHERE org_id = :acme AND membership_id > 0
                                                ORDER BY membership_id LIMIT 2) AS p \gset
SELECT is((SELECT count(*) FROM (SELECT 1 FROM um.member_list WHERE org_id = :acme AND membership_id > :page1_last
                                  ORDER BY membership_id LIMIT 2) AS p), 1::bigint,
          'the second page of members holds the third one, after the last id of the first');
SELECT is((SELECT string_agg(slug || ':' || role || ':' || status, ', ' ORDER BY slug) FROM um_my_organizations()),
          'acme:Member:active, globex:Service Reader:active', 'um_my_organizations: his organizations with his role in each');
SELECT um_act_as(:erin) AS a \gset
SELECT is((SELECT array_agg(email) FROM um.users), ARRAY['erin@example.com'], 'a user of no organization reads their own row only');
SELECT is((SELECT count(*) FROM um.memberships), 0::bigint, 'and no memberships');
SELECT is((SELECT count(*) FROM um_my_organizations()), 0::bigint, 'and has no organizations');
RESET ROLE;
SELECT array_agg(name ORDER BY name)::text AS dave_ref FROM um.permissions WHERE um_internal.ref_has_permission(:dave, name, :acme, NULL) \gset
SELECT array_agg(name ORDER BY name)::text AS carol_ref FROM um.permissions WHERE um_internal.ref_has_permission(:carol, name, :acme, NULL) \gset
SET ROLE regress_um_app;
SELECT um_act_as(:dave) AS a \gset
SELECT is(ARRAY(SELECT um_my_permissions(:acme))::text, :'dave_ref', 'um_my_permissions: what the reference evaluator says dave holds in acme ...');
SELECT um_act_as(:carol) AS a \gset
SELECT is(ARRAY(SELECT um_my_permissions(:acme))::text, :'carol_ref', '... and carol');
SELECT is((SELECT count(*) FROM um_my_permissions(:globex)), 0::bigint, 'nothing where she is no member');
-- an organization's audit trail, newest first, three events a page by (at, id)
CREATE FUNCTION pg_temp.audit_pages(p_org bigint) RETURNS bigint[] LANGUAGE plpgsql AS $$
DECLARE
  v_at timestamptz := 'infinity';
  v_id bigint := 0;
  v_all bigint[] := '{}';
  v_page bigint[];
BEGIN
  LOOP
    SELECT array_agg(id ORDER BY at DESC, id DESC), (array_agg(at ORDER BY at DESC, id DESC))[count(*)],
           (array_agg(id ORDER BY at DESC, id DESC))[count(*)]
      INTO v_page, v_at, v_id
      FROM (SELECT e.id, e.at FROM um.audit_events e
             WHERE e.org_id = p_org AND (e.at, e.id) < (v_at, v_id)
             ORDER BY e.at DESC, e.id DESC LIMIT 3) AS p;
    EXIT WHEN v_page IS NULL;
    v_all := v_all || v_page;
  END LOOP;
  RETURN v_all;
END
$$;
SELECT is(pg_temp.audit_pages(:acme),
          ARRAY(SELECT id FROM um.audit_events WHERE org_id = :acme ORDER BY at DESC, id DESC),
          'paging the audit trail by (at, id) visits each of her organization''s events once, newest first');

SET ROLE regress_um_admin;
SELECT is((SELECT count(*) FROM um.users), 5::bigint, 'a um administrator (a member of the extension''s owner) reads everything in psql');
SELECT lives_ok(format('UPDATE um.users SET name = ''Erin E.'' WHERE id = %s', :erin), 'and may change it');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
