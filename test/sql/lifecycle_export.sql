-- Export: every member of an organization as CSV rows (COPY) and as JSON,
-- and a user's own data.  Timestamps are left out: they change every run.
SET client_min_messages = warning;
CREATE EXTENSION um CASCADE;
RESET client_min_messages;
\pset format unaligned
\pset tuples_only on
SELECT um_create_user('ada@example.com', 'Ada Lovelace') AS ada \gset
SELECT um_create_user('dave@example.com', 'Dave, "the" Operator') AS dave \gset
SELECT um_create_user('nora@example.com', allow_login => false) AS nora \gset
SELECT um_create_organization('acme', 'Acme', :ada) AS acme \gset
SELECT um_add_member(:acme, :dave, 'Service Operator') AS m \gset
SELECT um_add_member(:acme, :nora) AS m \gset
SELECT um_create_team(:acme, 'Platform', owner_user_id => :ada) AS platform \gset
SELECT um_add_team_member(:platform, :dave, '{Service Editor,Service Reader}') AS m \gset
INSERT INTO um.scopes (org_id, kind, name) VALUES (:acme, 'project', 'Apollo') RETURNING id AS apollo \gset
SELECT um_grant_scope_role(:apollo, 'Admin', user_id => :dave) AS g \gset
UPDATE um.users SET email_verified_at = now() WHERE id IN (:ada, :dave);
\pset tuples_only off
COPY (SELECT user_id, email, name, user_status, allow_login, email_verified, org_role, membership_status,
             teams, team_roles, scope_roles
        FROM um_export_users(:acme)) TO STDOUT (FORMAT csv, HEADER);
SELECT jsonb_pretty(jsonb_set(um_export_users_json(:acme), '{exported_at}', '"..."') #- '{users,0,member_since}'
                    #- '{users,1,member_since}' #- '{users,2,member_since}');
BEGIN;
SELECT um_act_as(:dave) IS NOT NULL AS acting;
SELECT jsonb_pretty(jsonb_build_object('profile', (um_export_my_data()->'profile') - 'created_at' - 'email_verified_at',
                                       'memberships', jsonb_path_query_array(um_export_my_data()->'memberships', '$[*].role'),
                                       'teams', jsonb_path_query_array(um_export_my_data()->'teams', '$[*].roles')));
ROLLBACK;
DROP EXTENSION um;
