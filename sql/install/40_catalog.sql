-- The built-in permission catalog and built-in roles.
--
-- Resources of the organization role matrix that um was specified from (a
-- product document kept outside this repository; the matrix is restated
-- below, so this file is the reference):
--   service   build side: pipelines, service definitions, product tiers
--   fleet     operate/fleet side
--   account   account configuration (cloud accounts)
--   member    user invite access (access control)
--   billing   billing
--   plan      service plans
--   instance  resource instances
--   template  templates, deployment configuration, image registry
-- and the resources um itself checks: org, role, team, user, scope, audit.

CREATE TABLE um.builtin_role_permissions (
  role_key text NOT NULL REFERENCES um.builtin_roles (key) ON DELETE CASCADE,
  permission text NOT NULL
    CONSTRAINT builtin_role_permissions_permission_check CHECK (um_internal.permission_name_is_valid(permission, true)),
  source text NOT NULL CONSTRAINT builtin_role_permissions_source_check CHECK (source IN ('um', 'application')),
  PRIMARY KEY (role_key, permission)
);
COMMENT ON TABLE um.builtin_role_permissions IS
  'the permissions each built-in role of the template holds in every organization (um_set_role_template, um_grant_template_permission)';
COMMENT ON COLUMN um.builtin_role_permissions.role_key IS 'the built-in role (um.builtin_roles.key)';
COMMENT ON COLUMN um.builtin_role_permissions.permission IS 'a catalog permission, or a pattern with * (the root role holds exactly *)';
COMMENT ON COLUMN um.builtin_role_permissions.source IS
  'um: part of the default template of um''s script (not dumped); application: the application''s template (dumped)';

CREATE FUNCTION um_internal.builtin_role_permissions_before_write()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF (NEW.role_key = 'root') <> (NEW.permission = '*') THEN
    RAISE EXCEPTION 'the root role holds every permission, and only it holds * in the template'
      USING ERRCODE = 'UM042',
            HINT = 'Give * to no other built-in role; the root role needs nothing more.';
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION um_internal.builtin_role_permissions_before_write() IS
  'trigger on um.builtin_role_permissions: the root role holds exactly *, no other template role holds * (UM042)';
CREATE TRIGGER builtin_role_permissions_before_write BEFORE INSERT OR UPDATE ON um.builtin_role_permissions
  FOR EACH ROW EXECUTE FUNCTION um_internal.builtin_role_permissions_before_write();

INSERT INTO um.builtin_roles (key, name, description, position, source)
SELECT v.*, 'um' FROM (VALUES
  ('root',             'Root',             'Owns the organization: everything, including account configuration and billing.', 1),
  ('admin',            'Admin',            'Manages the organization''s members, teams and roles (never a Root), builds and operates services.', 2),
  ('service_editor',   'Service Editor',   'Builds and releases: service definitions, plans, pipelines and registries.', 3),
  ('service_operator', 'Service Operator', 'Day-2 operations on existing instances and deployment cells.', 4),
  ('service_reader',   'Service Reader',   'Reads services and the fleet; manages resource instances.', 5),
  ('member',           'Member',           'Belongs to the organization: sees it, its members and its teams.', 6)) AS v;

-- CRUDL letters as in the seed's legend, expanded into actions.
CREATE FUNCTION um_internal.crudl_actions(letters text)
RETURNS SETOF text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT a.action
    FROM (VALUES ('c', 'create', 1), ('r', 'read', 2), ('u', 'update', 3),
                 ('d', 'delete', 4), ('l', 'list', 5)) AS a(letter, action, n)
   WHERE strpos(letters, a.letter) > 0
   ORDER BY a.n
$$;
COMMENT ON FUNCTION um_internal.crudl_actions(text) IS
  'internal: the actions CRUDL letters stand for (C create, R read, U update, D delete, L list), as in the built-in role matrix';

INSERT INTO um.permissions (name, description, builtin)
SELECT r.resource || ':' || a.action,
       initcap(a.action) || ' ' || r.what,
       true
  FROM (VALUES
    ('service',  'build-side services: pipelines, service definitions, product tiers'),
    ('fleet',    'the operate/fleet side'),
    ('account',  'account configuration (cloud accounts)'),
    ('billing',  'billing'),
    ('plan',     'service plans'),
    ('instance', 'resource instances'),
    ('template', 'templates, deployment configuration and image registries'),
    ('member',   'the organization''s members'),
    ('role',     'the organization''s roles'),
    ('team',     'the organization''s teams'),
    ('user',     'the users of the organization'),
    ('scope',    'the organization''s scope tree'),
    ('org',      'the organization and its settings'),
    ('audit',    'the organization''s audit trail')) AS r(resource, what)
  CROSS JOIN um_internal.crudl_actions('crudl') AS a(action)
UNION ALL
SELECT v.name, v.description, true
  FROM (VALUES
    ('member:invite',     'Invite people to the organization'),
    ('member:remove',     'Remove members from the organization'),
    ('role:grant',        'Give roles to members and teams'),
    ('team:manage',       'Add and remove team members and their team roles'),
    ('user:suspend',      'Suspend and reactivate users'),
    ('user:impersonate',  'Act as another (non-admin) member')) AS v(name, description);

-- That role matrix, one row per role and resource, plus um's own
-- resources.  'Invite/Uninvite except root' is member:invite +
-- member:remove; the "except root" part is enforced by the lifecycle
-- functions.  The matrix's Root row is subsumed by *: Root owns the
-- organization and holds every permission of the catalog, including those
-- an application registers later, so that no escalation guard leaves a
-- tenant unable to hand out one.
INSERT INTO um.builtin_role_permissions (role_key, permission, source)
SELECT x.role_key, x.permission, 'um' FROM (
-- the root role holds every permission of the catalog, the application's too
SELECT 'root' AS role_key, '*' AS permission
UNION ALL
SELECT m.role_key, m.resource || ':' || a.action
  FROM (VALUES
    ('admin', 'service', 'crudl'), ('admin', 'fleet', 'crul'), ('admin', 'account', 'rl'),
    ('admin', 'billing', 'rl'), ('admin', 'plan', 'rl'), ('admin', 'instance', 'crudl'),
    ('admin', 'template', 'crudl'), ('admin', 'member', 'crudl'), ('admin', 'role', 'crudl'),
    ('admin', 'team', 'crudl'), ('admin', 'user', 'crudl'), ('admin', 'scope', 'crudl'),
    ('admin', 'org', 'rl'), ('admin', 'audit', 'rl'),

    ('service_editor', 'service', 'crudl'), ('service_editor', 'fleet', 'rl'),
    ('service_editor', 'plan', 'rl'), ('service_editor', 'instance', 'crudl'),
    ('service_editor', 'template', 'crudl'),

    ('service_operator', 'service', 'rl'), ('service_operator', 'fleet', 'crul'),
    ('service_operator', 'plan', 'rl'), ('service_operator', 'instance', 'crudl'),
    ('service_operator', 'template', 'rl'),

    ('service_reader', 'service', 'rl'), ('service_reader', 'fleet', 'rl'),
    ('service_reader', 'plan', 'rl'), ('service_reader', 'instance', 'crudl'),
    ('service_reader', 'template', 'rl')) AS m(role_key, resource, letters)
  CROSS JOIN LATERAL um_internal.crudl_actions(m.letters) AS a(action)
UNION ALL
-- named actions
SELECT r.role_key, p.permission
  FROM (VALUES ('admin')) AS r(role_key)
  CROSS JOIN (VALUES ('member:invite'), ('member:remove'), ('role:grant'), ('team:manage'),
                     ('user:suspend'), ('user:impersonate')) AS p(permission)
UNION ALL
-- what every member of an organization may see
SELECT r.role_key, p.permission
  FROM (VALUES ('service_editor'), ('service_operator'), ('service_reader'), ('member')) AS r(role_key)
  CROSS JOIN (VALUES ('org:read'), ('member:read'), ('member:list'), ('team:read'), ('team:list')) AS p(permission)) AS x;

-- um_internal.seed_builtin_roles: give an organization its built-in roles, each with
-- the template's permissions.  Returns the id of its Root role.  The lock
-- (before the statement that reads the template) makes a template change
-- and an organization's creation wait for each other: an organization made
-- while the template changes gets the new template or is reached by it.
CREATE FUNCTION um_internal.seed_builtin_roles(p_org_id bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_root bigint;
BEGIN
  LOCK TABLE um.builtin_roles IN ROW SHARE MODE;
  INSERT INTO um.roles (org_id, name, description, builtin)
  SELECT p_org_id, b.name, b.description, b.key
    FROM um.builtin_roles b ORDER BY b.position, b.key;
  INSERT INTO um.role_permissions (org_id, role_id, permission)
  SELECT p_org_id, r.id, t.permission
    FROM um.roles r JOIN um.builtin_role_permissions t ON t.role_key = r.builtin
   WHERE r.org_id = p_org_id;
  SELECT r.id INTO STRICT v_root FROM um.roles r WHERE r.org_id = p_org_id AND r.builtin = 'root';
  RETURN v_root;
END
$$;
COMMENT ON FUNCTION um_internal.seed_builtin_roles(bigint) IS
  'internal: gives an organization its built-in roles with the template''s permissions (um.builtin_roles, um.builtin_role_permissions); returns its Root role''s id';
