-- Issue 16, item 3: the lifecycle calls of scope nodes (create with the
-- application's ref, rename, move with cycle refusal, set or clear
-- inheritance, delete a subtree) and of organizations (rename, new slug,
-- deletion with everything in it).  Each refusal: its SQLSTATE and nothing
-- changed; attacked by a Member, a holder of scope permissions on one node
-- only, another tenant's Root, an Admin (not Root) and a role with no um
-- grants.
--   acme:   ada (Root), carol (Admin), dave (Member)
--   globex: bob (Root), dave (Service Reader)
\ir fixture.psql
\set QUIET 1
SELECT plan(98);
SET client_min_messages = error;
SELECT pg_temp.usr('ada') AS ada, pg_temp.usr('bob') AS bob, pg_temp.usr('carol') AS carol,
       pg_temp.usr('dave') AS dave, pg_temp.org('acme') AS acme, pg_temp.org('globex') AS globex \gset

-- um's rows but the audit trail (an acting user's refusal is audited at
-- once, by the background worker), hashed
CREATE FUNCTION pg_temp.state() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  t text;
  r text := '';
  h text;
BEGIN
  FOR t IN SELECT s.relname FROM um.state_tables s
            WHERE s.dump_filter IS NOT NULL AND s.relname <> 'audit_events' ORDER BY s.relname LOOP
    EXECUTE format('SELECT md5(coalesce(string_agg(x::text, '','' ORDER BY x::text), '''')) FROM um.%I x', t) INTO h;
    r := r || h;
  END LOOP;
  RETURN md5(r);
END
$$;
-- q as user u: 'ok' or its SQLSTATE, " CHANGED" when a refused call left
-- any of um's rows changed
CREATE FUNCTION pg_temp.try_as(u bigint, q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  before text := pg_temp.state();
  st text;
BEGIN
  BEGIN
    IF u IS NOT NULL THEN
      PERFORM um_act_as(u);
    END IF;
    EXECUTE q;
  EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE;
    RETURN st || CASE WHEN pg_temp.state() <> before THEN ' CHANGED' ELSE '' END;
  END;
  RETURN 'ok';
END
$$;
-- q as the current role, which may read none of um's tables: 'ok' or its SQLSTATE
CREATE FUNCTION pg_temp.try_plain(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  st text;
BEGIN
  EXECUTE q;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE;
  RETURN st;
END
$$;
CREATE FUNCTION pg_temp.can(u bigint, p text, o bigint, s bigint) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  PERFORM um_act_as(u);
  RETURN um_has_permission(p, o, s);
END
$$;
CREATE FUNCTION pg_temp.can(u bigint, p text, o bigint) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  PERFORM um_act_as(u);
  RETURN um_has_permission(p, o);
END
$$;
CREATE FUNCTION pg_temp.node(o bigint, n text) RETURNS bigint LANGUAGE sql AS $$
  SELECT id FROM um.scopes WHERE org_id = o AND name = n $$;

-- scope nodes -----------------------------------------------------------------
SELECT is(pg_temp.try_as(:carol, format('SELECT um_create_scope(%s, %L, %L, ref => %L)', :acme, 'project', 'Apollo', 'p-1')),
          'ok', 'an Admin creates a top-level node with the application''s ref');
SELECT is((SELECT ref FROM um.scopes WHERE id = pg_temp.node(:acme, 'Apollo')), 'p-1', 'the node carries the ref');
SELECT um_create_scope(:acme, 'project', 'Hermes') AS hermes, pg_temp.node(:acme, 'Apollo') AS apollo \gset
SELECT is(pg_temp.try_as(:carol, format('SELECT um_create_scope(%s, %L, %L, %s)', :acme, 'environment', 'prod', :apollo)),
          'ok', 'and a child');
SELECT pg_temp.node(:acme, 'prod') AS prod \gset
SELECT is(pg_temp.try_as(:carol, format('SELECT um_create_scope(%s, %L, %L, %s)', :acme, 'environment', 'PROD', :apollo)),
          'UM023', 'sibling names of a kind are unique regardless of case');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_create_scope(%s, %L, %L, %s)', :acme, 'environment', 'prod', :hermes)),
          'ok', 'under another parent the name is free');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_create_scope(%s, %L, %L, ref => %L)', :acme, 'project', 'Zeus', 'p-1')),
          'UM023', 'a ref names one node of its kind');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_create_scope(%s, %L, %L, ref => %L)', :acme, 'project', 'Zeus', repeat('x', 201))),
          'UM009', 'a ref too long');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_create_scope(%s, %L, %L)', :acme, 'Project', 'Zeus')), 'UM008', 'an invalid kind');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_create_scope(%s, NULL, %L)', :acme, 'Zeus')), 'UM008', 'a NULL kind');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_create_scope(%s, %L, %L)', :acme, 'project', ' Zeus')), 'UM003', 'an untrimmed name');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_create_scope(%s, %L, NULL)', :acme, 'project')), 'UM003', 'a NULL name');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_create_scope(%s, %L, %L, inherit => NULL)', :acme, 'project', 'Zeus')), 'UM009', 'a NULL inherit');
SELECT is(pg_temp.try_as(:dave, format('SELECT um_create_scope(%s, %L, %L)', :acme, 'project', 'Zeus')), 'UM070', 'a Member creates no node');
SELECT is(pg_temp.try_as(:bob, format('SELECT um_create_scope(%s, %L, %L)', :acme, 'project', 'Zeus')), 'UM070',
          'another organization''s Root creates none in acme');
SELECT is(pg_temp.try_as(:bob, format('SELECT um_create_scope(%s, %L, %L, %s)', :globex, 'project', 'Zeus', :apollo)), 'UM036',
          'nor under an acme node in globex: told it does not exist there, as for a missing node');
SELECT is(pg_temp.try_as(:bob, format('SELECT um_create_scope(%s, %L, %L, %s)', :globex, 'project', 'Zeus', 99999999)), 'UM036',
          'the same answer for a node that exists nowhere');

-- permissions held on one node only
SELECT um_create_role(:acme, 'Project Lead', '{scope:create,scope:update,scope:delete}') AS lead \gset
SELECT um_grant_scope_role(:apollo, 'Project Lead', user_id => :dave) AS ignored \gset
SELECT is(pg_temp.try_as(:dave, format('SELECT um_create_scope(%s, %L, %L, %s)', :acme, 'environment', 'staging', :apollo)),
          'ok', 'scope:create held on a project creates under it');
SELECT pg_temp.node(:acme, 'staging') AS staging \gset
SELECT is(pg_temp.try_as(:dave, format('SELECT um_create_scope(%s, %L, %L)', :acme, 'project', 'Zeus')), 'UM070',
          'but no top-level node');
SELECT is(pg_temp.try_as(:dave, format('SELECT um_create_scope(%s, %L, %L, %s)', :acme, 'environment', 'qa', :hermes)), 'UM070',
          'nor under another project');
SELECT is(pg_temp.try_as(:dave, format('SELECT um_rename_scope(%s, %L)', :staging, 'Staging')), 'ok', 'renames below it');
SELECT is(pg_temp.try_as(:dave, format('SELECT um_rename_scope(%s, %L)', :hermes, 'Hermes 2')), 'UM070', 'not elsewhere');
SELECT is(pg_temp.try_as(:dave, format('SELECT um_move_scope(%s, %s)', :staging, :hermes)), 'UM070',
          'moves nothing to where it lacks scope:update');
SELECT is(pg_temp.try_as(:dave, format('SELECT um_move_scope(%s, NULL)', :staging)), 'UM070',
          'nor to the top level (that needs scope:update in the organization)');
SELECT is(pg_temp.try_as(:dave, format('SELECT um_move_scope(%s, %s)', pg_temp.node(:acme, 'prod'), :apollo)), 'ok',
          'moving within the project is allowed (no change)');

-- rename, move, inheritance
SELECT is(pg_temp.try_as(:carol, format('SELECT um_rename_scope(%s, %L)', :prod, 'Production')), 'ok', 'an Admin renames a node');
SELECT is((SELECT name FROM um.scopes WHERE id = :prod), 'Production', 'renamed');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_rename_scope(%s, %L)', :prod, 'staging')), 'UM023', 'not to a sibling''s name');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_move_scope(%s, %s)', :apollo, :prod)), 'UM041', 'never under its own descendant');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_move_scope(%s, %s)', :apollo, :apollo)), 'UM041', 'nor under itself');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_move_scope(%s, %s)', :staging, :hermes)), 'ok', 'an Admin moves a node');
SELECT is((SELECT parent_id FROM um.scopes WHERE id = :staging), :hermes::bigint, 'moved');
SELECT ok(NOT pg_temp.can(:dave, 'scope:update', :acme, :staging), 'the project''s grant no longer reaches the moved node');
SELECT is(pg_temp.try_as(:bob, format('SELECT um_move_scope(%s, %s)', :staging, :apollo)), 'UM070', 'another tenant moves nothing');
SELECT um_create_scope(:globex, 'project', 'Orion') AS orion \gset
SELECT is(pg_temp.try_as(:carol, format('SELECT um_move_scope(%s, %s)', :staging, :orion)), 'UM036',
          'no node moves under another organization''s node');
SELECT is(pg_temp.try_as(:dave, format('SELECT um_set_scope_inherit(%s, false)', :prod)), 'ok', 'breaking inheritance');
SELECT ok(NOT pg_temp.can(:dave, 'scope:update', :acme, :prod), 'stops the project''s grants at the node');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_set_scope_inherit(%s, true)', :prod)), 'ok', 'an Admin restores it');
SELECT ok(pg_temp.can(:dave, 'scope:update', :acme, :prod), 'and the grant reaches it again');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_set_scope_inherit(%s, NULL)', :prod)), 'UM009', 'inherit is true or false');
SELECT is(pg_temp.try_as(:dave, format('SELECT um_set_scope_inherit(%s, false)', :hermes)), 'UM070', 'not on a node without scope:update');

-- delete a subtree
SELECT um_create_scope(:acme, 'dashboard', 'Ops', :prod) AS ops \gset
SELECT um_grant_scope_role(:ops, 'Service Reader', user_id => :carol) AS ignored \gset
SELECT um_create_team(:acme, 'Platform', owner_user_id => :carol) AS platform \gset
SELECT scope_id AS space FROM um.teams WHERE id = :platform \gset
SELECT um_move_scope(:space, :prod) AS ignored \gset
SELECT is(pg_temp.try_as(:carol, format('SELECT um_delete_scope(%s)', :apollo)), 'UM081', 'not while a team''s space is in the subtree');
SELECT um_move_scope(:space, NULL) AS ignored \gset
CREATE TABLE public.deployments (id bigint PRIMARY KEY, scope_id bigint REFERENCES um.scopes (id));
INSERT INTO public.deployments VALUES (1, :ops);
SELECT is(pg_temp.try_as(:carol, format('SELECT um_delete_scope(%s)', :apollo)), 'UM081',
          'nor while application rows reference a node of it');
DELETE FROM public.deployments;
SELECT is(pg_temp.try_as(:bob, format('SELECT um_delete_scope(%s)', :apollo)), 'UM070', 'another tenant deletes nothing');
SELECT is(pg_temp.try_as(:dave, format('SELECT um_delete_scope(%s)', :hermes)), 'UM070', 'nor a holder of scope:delete elsewhere');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_delete_scope(%s)', :apollo)), 'ok', 'an Admin deletes a subtree');
SELECT is((SELECT count(*)::int FROM um.scopes WHERE id IN (:apollo, :prod, :ops)), 0, 'the whole subtree');
SELECT is((SELECT count(*)::int FROM um.grants WHERE scope_id IN (:apollo, :ops)), 0, 'with the grants on it');
SELECT ok((SELECT count(*) FROM um.audit_events WHERE action IN ('scope.create', 'scope.rename', 'scope.move', 'scope.set_inherit', 'scope.delete')
            AND org_id = :acme AND outcome = 'ok') >= 10, 'every change is audited');

-- attacks on the tree: depth, grants that a move or inheritance lets reach
-- a subtree, grants a deletion takes
DO $$
DECLARE
  v_parent bigint := NULL;
  i int;
BEGIN
  FOR i IN 1..64 LOOP
    v_parent := um_create_scope((SELECT id FROM um.organizations WHERE slug = 'acme'), 'level', 'L' || i, v_parent);
  END LOOP;
END
$$;
SELECT pg_temp.node(:acme, 'L64') AS l64, pg_temp.node(:acme, 'L63') AS l63, pg_temp.node(:acme, 'L62') AS l62 \gset
SELECT ok(pg_temp.can(:ada, 'scope:update', :acme, :l64), 'a node 64 levels deep is checked like any other');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_create_scope(%s, %L, %L, %s)', :acme, 'level', 'L65', :l64)), 'UM041',
          'no node 65 levels deep: the evaluator follows 64');
SELECT is(pg_temp.try_plain(format('INSERT INTO um.scopes (org_id, parent_id, kind, name) VALUES (%s, %s, %L, %L)', :acme, :l64, 'level', 'x')),
          'UM041', 'not even by a superuser''s INSERT');
SELECT is(pg_temp.try_plain(format('INSERT INTO um.scopes (org_id, parent_id, kind, name) VALUES (%s, %s, %L, %L)', :acme, 99999999, 'level', 'x')),
          'UM036', 'a parent must exist (kept by a trigger: um.scopes has no foreign key to itself, which pg_dump would warn about)');
SELECT is(pg_temp.try_plain(format('INSERT INTO um.scopes (org_id, parent_id, kind, name) VALUES (%s, %s, %L, %L)', :globex, :l62, 'level', 'x')),
          'UM046', 'and be of the same organization');
SELECT is(pg_temp.try_plain(format('WITH a AS (INSERT INTO um.scopes (org_id, kind, name) VALUES (%s, %L, %L) RETURNING id) '
                                   'INSERT INTO um.scopes (org_id, parent_id, kind, name) SELECT %s, id + 1000, %L, %L FROM a', :acme, 'level', 'solo', :acme, 'level', 'y')),
          'UM036', 'also when the statement that names it made other nodes');
SELECT um_create_scope(:acme, 'project', 'Deep') AS deep \gset
SELECT um_create_scope(:acme, 'environment', 'below', :deep) AS ignored \gset
SELECT is(pg_temp.try_as(:carol, format('SELECT um_move_scope(%s, %s)', :deep, :l63)), 'UM041',
          'nor moves a two-level subtree under level 63');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_move_scope(%s, %s)', :deep, :l62)), 'ok', 'under level 62 it fits');
SELECT ok(pg_temp.can(:ada, 'scope:update', :acme, pg_temp.node(:acme, 'below')), 'and its bottom is checked');

SELECT um_register_permission('vault:open', 'Open the vault') AS ignored \gset
SELECT um_create_role(:acme, 'Vault Keeper', '{vault:open}') AS ignored \gset
SELECT um_create_scope(:acme, 'project', 'Athena') AS athena, um_create_scope(:acme, 'project', 'Boreas') AS boreas \gset
SELECT um_create_scope(:acme, 'environment', 'a1', :athena) AS a1,
       um_create_scope(:acme, 'environment', 'c1', :boreas, inherit => false) AS c1 \gset
SELECT um_grant_scope_role(:athena, 'Project Lead', user_id => :dave) AS ignored,
       um_grant_scope_role(:boreas, 'Project Lead', user_id => :dave) AS ignored2,
       um_grant_scope_role(:boreas, 'Vault Keeper', user_id => :dave) AS ignored3,
       um_grant_scope_role(:c1, 'Project Lead', user_id => :dave) AS ignored4 \gset
SELECT is(pg_temp.try_as(:dave, format('SELECT um_move_scope(%s, %s)', :a1, :boreas)), 'UM070',
          'a move that lets grants on the new parent reach the node needs role:grant (dave would gain Vault Keeper there)');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_move_scope(%s, %s)', :a1, :boreas)), 'UM073',
          'and every permission of those roles: an Admin lacks vault:open, nothing changed');
SELECT ok(NOT pg_temp.can(:dave, 'vault:open', :acme, :a1), 'the grant does not reach the node');
SELECT is(pg_temp.try_as(:dave, format('SELECT um_set_scope_inherit(%s, true)', :c1)), 'UM070',
          'letting a node inherit again needs role:grant too');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_set_scope_inherit(%s, true)', :c1)), 'UM073',
          'and the roles'' permissions: nothing changed');
SELECT ok(NOT pg_temp.can(:dave, 'vault:open', :acme, :c1) AND (SELECT NOT inherit FROM um.scopes WHERE id = :c1),
          'the node still does not inherit');
SELECT is(pg_temp.try_as(:ada, format('SELECT um_move_scope(%s, %s)', :a1, :boreas)), 'ok', 'a Root, who holds them, moves it');
SELECT ok(pg_temp.can(:dave, 'vault:open', :acme, :a1), 'and the grant above reaches it');

-- team roles hold on the team's space and below: moving a node under a
-- team space hands them out there too
SELECT um_create_scope(:acme, 'project', 'Mine') AS mine \gset
SELECT um_grant_scope_role(:mine, 'Project Lead', user_id => :dave) AS ignored \gset
SELECT um_create_team(:acme, 'Vaulters', owner_user_id => :ada) AS vaulters \gset
SELECT scope_id AS vault_space FROM um.teams WHERE id = :vaulters \gset
SELECT um_add_team_member(:vaulters, :dave, '{Vault Keeper,Project Lead}') AS ignored \gset
SELECT is(pg_temp.try_as(:dave, format('SELECT um_move_scope(%s, %s)', :mine, :vault_space)), 'UM070',
          'moving a node under a team space where one holds a team role needs role:grant');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_move_scope(%s, %s)', :mine, :vault_space)), 'UM073',
          'and the team roles'' permissions');
SELECT ok(NOT pg_temp.can(:dave, 'vault:open', :acme, :mine), 'the team role does not reach the node');
SELECT um_grant_scope_role(:athena, 'Service Reader', user_id => :ada) AS ada_grant \gset
SELECT is(pg_temp.try_as(:carol, format('SELECT um_delete_scope(%s)', :athena)), 'UM073',
          'a non-Root deletes no subtree holding a Root''s grant, nothing changed');
SELECT um_revoke_scope_role(:athena, 'Service Reader', user_id => :ada) AS ignored \gset
SELECT is(pg_temp.try_as(:dave, format('SELECT um_delete_scope(%s)', :athena)), 'UM070',
          'scope:delete without role:grant deletes no subtree holding grants');
SELECT um_revoke_scope_role(:athena, 'Project Lead', user_id => :dave) AS ignored \gset
SELECT um_grant_scope_role(:athena, 'Service Reader', user_id => :carol) AS carol_grant \gset
SELECT is(pg_temp.try_as(:carol, format('SELECT um_delete_scope(%s)', :athena)), 'ok', 'an Admin deletes one holding a Member''s grant');
SELECT is((SELECT details->'grants' FROM um.audit_events WHERE action = 'scope.delete' AND target_id = :athena ORDER BY id DESC LIMIT 1),
          jsonb_build_array(:carol_grant::bigint), 'the audit event names the grants it took');

-- organizations ---------------------------------------------------------------
SELECT is(pg_temp.try_as(:carol, format('SELECT um_rename_organization(%s, %L)', :acme, 'Acme')), 'UM070', 'an Admin renames no organization');
SELECT is(pg_temp.try_as(:ada, format('SELECT um_rename_organization(%s, %L)', :acme, ' Acme')), 'UM003', 'an untrimmed name');
SELECT is(pg_temp.try_as(:ada, format('SELECT um_rename_organization(%s, %L)', :acme, 'Acme Corporation')), 'ok', 'a Root renames it');
SELECT is(pg_temp.try_as(:bob, format('SELECT um_set_org_slug(%s, %L)', :acme, 'mine')), 'UM070', 'another tenant changes no slug');
SELECT is(pg_temp.try_as(:carol, format('SELECT um_set_org_slug(%s, %L)', :acme, 'acme-corp')), 'UM070', 'nor an Admin');
SELECT is(pg_temp.try_as(:ada, format('SELECT um_set_org_slug(%s, %L)', :acme, 'globex')), 'UM021', 'a slug taken');
SELECT is(pg_temp.try_as(:ada, format('SELECT um_set_org_slug(%s, %L)', :acme, 'Acme Corp')), 'UM002', 'an invalid slug');
SELECT is(pg_temp.try_as(:ada, format('SELECT um_set_org_slug(%s, %L)', :acme, 'acme-corp')), 'ok', 'a Root gives a new slug');

CREATE ROLE regress_um_nobody;
GRANT USAGE ON SCHEMA um TO regress_um_nobody;
SET ROLE regress_um_nobody;
SELECT is(pg_temp.try_plain(format('SELECT um_delete_organization(%s, %L)', :acme, 'acme-corp')), 'UM070',
          'a role with no um grants deletes nothing');
SELECT is(pg_temp.try_plain(format('SELECT um_create_scope(%s, %L, %L)', :acme, 'project', 'Zeus')), 'UM070', 'and creates no node');
SELECT is(pg_temp.try_plain(format('SELECT um_set_scope_inherit(%s, false)', :hermes)), 'UM070', 'nor changes one');
RESET ROLE;
SELECT is(pg_temp.try_as(:carol, format('SELECT um_delete_organization(%s, %L)', :acme, 'acme-corp')), 'UM070', 'an Admin deletes no organization');
SELECT is(pg_temp.try_as(:bob, format('SELECT um_delete_organization(%s, %L)', :acme, 'acme-corp')), 'UM070', 'nor another tenant''s Root');
SELECT is(pg_temp.try_as(:ada, format('SELECT um_delete_organization(%s, %L)', :acme, 'acme')), 'UM009', 'the slug must confirm the id');
CREATE TABLE public.invoices (id bigint PRIMARY KEY, org_id bigint NOT NULL REFERENCES um.organizations (id));
INSERT INTO public.invoices VALUES (1, :acme);
SELECT is(pg_temp.try_as(:ada, format('SELECT um_delete_organization(%s, %L)', :acme, 'acme-corp')), 'UM081',
          'refused while application rows reference it');
DELETE FROM public.invoices;
CREATE TABLE public.receipts (id bigint PRIMARY KEY,
  org_id bigint NOT NULL CONSTRAINT receipts_org_fkey REFERENCES um.organizations (id) DEFERRABLE INITIALLY DEFERRED);
SELECT is(pg_temp.try_as(:ada, format('SELECT um_delete_organization(%s, %L)', :acme, 'acme-corp')), 'UM081',
          'a deferrable foreign key into um refuses the deletion at once (it would be checked only at COMMIT)');
SELECT is((SELECT severity || ': ' || hint FROM um_lint() WHERE object = 'public.receipts' AND finding LIKE '%foreign key%'),
          'warning: ALTER TABLE public.receipts ALTER CONSTRAINT receipts_org_fkey NOT DEFERRABLE;', 'um_lint says so, with the fix');
CREATE TABLE public.cascading (id bigint PRIMARY KEY, scope_id bigint REFERENCES um.scopes (id) ON DELETE SET NULL);
SELECT is((SELECT severity FROM um_lint() WHERE object = 'public.cascading' AND finding LIKE '%foreign key%'), 'critical',
          'a key into um with an ON DELETE action is critical for um_lint, however plain its types');
DROP TABLE public.cascading;
ALTER TABLE public.receipts ALTER CONSTRAINT receipts_org_fkey NOT DEFERRABLE;
SELECT is((SELECT severity FROM um_lint() WHERE object = 'public.receipts' AND finding LIKE '%foreign key%'), 'info', 'a plain key into um.organizations is information only');
INSERT INTO public.receipts VALUES (1, :acme);
SELECT is(pg_temp.try_as(:ada, format('SELECT um_delete_organization(%s, %L)', :acme, 'acme-corp')), 'UM081',
          'made not deferrable, its rows refuse it as any key''s do');
DELETE FROM public.receipts;
SELECT is(pg_temp.try_as(:ada, format('SELECT um_delete_organization(%s, %L)', :acme, 'acme-corp')), 'ok', 'a Root deletes it');
SELECT is((SELECT count(*)::int FROM um.memberships WHERE org_id = :acme) + (SELECT count(*)::int FROM um.roles WHERE org_id = :acme)
          + (SELECT count(*)::int FROM um.teams WHERE org_id = :acme) + (SELECT count(*)::int FROM um.scopes WHERE org_id = :acme),
          0, 'with everything in it');
SELECT is((SELECT count(*)::int FROM um.users WHERE id IN (:ada, :carol, :dave)), 3, 'accounts stay');
SELECT ok(pg_temp.can(:dave, 'org:read', :globex) AND NOT pg_temp.can(:ada, 'org:read', :acme),
          'other organizations are untouched; nobody holds anything in the deleted one');
SELECT is((SELECT details->>'slug' FROM um.audit_events WHERE action = 'organization.delete' AND org_id = :acme AND outcome = 'ok'), 'acme-corp',
          'the audit trail keeps the deletion');
SELECT is(pg_temp.try_as(NULL, format('SELECT um_delete_organization(%s, %L)', :globex, 'globex')), 'ok',
          'a um administrator deletes one with nobody acting');

SELECT * FROM finish();
