-- Issue 17, item 3: profiles.  um_update_profile for the user themself,
-- um_update_user for an admin with user:update in each of the user's
-- organizations, attributes key by key as the application declared them
-- (um_declare_user_attribute: user, admin, nobody).  Attacked by the user an
-- admin-only attribute restricts, by an Admin of another organization, by an
-- impersonator, by the application role with no um grants, and with bad
-- input (which changes nothing).  Commits: um_act_as holds for one
-- transaction, and each attack has its own.
\ir fixture.psql
\set QUIET 1
SELECT plan(46);

CREATE ROLE regress_um_profile_app NOLOGIN;
GRANT USAGE ON SCHEMA public TO regress_um_profile_app;
SELECT pg_temp.usr('ada') AS ada, pg_temp.usr('bob') AS bob, pg_temp.usr('carol') AS carol,
       pg_temp.usr('dave') AS dave, pg_temp.org('acme') AS acme, pg_temp.org('globex') AS globex \gset
SELECT um_create_user('erin@example.com', 'Erin') AS erin \gset
SELECT um_add_member(:acme, :erin) AS x \gset
CREATE FUNCTION pg_temp.profile(bigint) RETURNS text LANGUAGE sql
  AS $$ SELECT (name, timezone, locale, mobile, attributes)::text FROM um.users WHERE id = $1 $$;

-- ---------------------------------------------------------------------------
-- The application declares its attributes
SELECT lives_ok($$ SELECT um_declare_user_attribute('department', 'user', 'where they work') $$,
                'a um administrator declares a user-editable attribute');
SELECT lives_ok($$ SELECT um_declare_user_attribute('clearance', 'admin', 'what the reports policy lets them read') $$,
                'an admin-only one');
SELECT lives_ok($$ SELECT um_declare_user_attribute('employee_id', 'nobody') $$, 'and a read-only one');
SELECT is((SELECT string_agg(key || '=' || editable_by, ' ' ORDER BY key) FROM um.user_attribute_rules),
          'clearance=admin department=user employee_id=nobody', 'the rules are in um.user_attribute_rules');
SELECT throws_ok($$ SELECT um_declare_user_attribute('Cost Center') $$, 'UM013', NULL, 'a key that is no identifier is refused');
SELECT throws_ok($$ SELECT um_declare_user_attribute('cost_center', 'everyone') $$, 'UM009', NULL, 'so is an unknown editable_by');
SELECT is((SELECT count(*) FROM um.user_attribute_rules), 3::bigint, 'and neither declared anything');
BEGIN;
SELECT um_act_as(:ada) AS a \gset
SELECT throws_ok($$ SELECT um_declare_user_attribute('cost_center') $$, 'UM070', NULL,
                 'not even a Root declares attributes: they are the application''s, for every organization');
ROLLBACK;
SET ROLE regress_um_profile_app;
SELECT throws_ok($$ SELECT um_declare_user_attribute('cost_center') $$, 'UM070', NULL, 'nor the application role with nobody acting');
SELECT throws_ok($$ INSERT INTO um.user_attribute_rules (key, editable_by) VALUES ('clearance2', 'user') $$, '42501', NULL,
                 'nor by hand');
SELECT throws_ok($$ UPDATE um.user_attribute_rules SET editable_by = 'user' WHERE key = 'clearance' $$, '42501', NULL,
                 'nobody turns an admin-only attribute user-editable by hand');
SELECT is((SELECT count(*) FROM um.user_attribute_rules), 3::bigint, 'the rules are readable by anybody (forms need them)');
SELECT throws_ok(format('UPDATE um.users SET attributes = ''{"clearance": "top"}'' WHERE id = %s', :dave), '42501', NULL,
                 'the application role cannot write attributes by hand');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- The user's own profile
SELECT throws_ok($$ SELECT um_update_profile(name => 'Nobody') $$, 'UM072', NULL, 'with nobody acting there is no own profile');
BEGIN;
SELECT um_act_as(:dave) AS a \gset
SELECT is(um_update_profile(name => 'David', timezone => 'Europe/Paris', locale => 'fr-FR', mobile => '+33612345678',
                            attributes => '{"department": "finance"}') - 'updated_at',
          jsonb_build_object('id', :dave, 'email', 'dave@example.com', 'name', 'David', 'timezone', 'Europe/Paris', 'locale', 'fr-FR',
                             'mobile', '+33612345678', 'attributes', '{"department": "finance"}'::jsonb),
          'dave changes his name, zone, locale, mobile and a user-editable attribute, and gets the profile back');
COMMIT;
SELECT is((SELECT details FROM um.audit_events WHERE action = 'user.update_profile' AND target_id = :dave),
          '{"changed": ["name", "timezone", "locale", "mobile", "attributes.department"]}'::jsonb,
          'audited with the fields changed, not their values');
SELECT pg_temp.profile(:dave) AS dave_before \gset
BEGIN;
SELECT um_act_as(:dave) AS a \gset
SELECT throws_ok($$ SELECT um_update_profile(timezone => 'Mars/Olympus_Mons') $$, 'UM004', NULL, 'an unknown time zone is refused');
SELECT throws_ok($$ SELECT um_update_profile(locale => 'english') $$, 'UM005', NULL, 'an invalid locale');
SELECT throws_ok($$ SELECT um_update_profile(mobile => '0612345678') $$, 'UM006', NULL, 'a mobile number not in E.164');
SELECT throws_ok($$ SELECT um_update_profile(name => ' David') $$, 'UM003', NULL, 'a name with blanks around it');
SELECT throws_ok($$ SELECT um_update_profile(attributes => '["finance"]') $$, 'UM007', NULL, 'attributes that are no object');
SELECT throws_ok($$ SELECT um_update_profile(attributes => '{"cost_center": "42"}') $$, 'UM013', NULL, 'an undeclared key');
SELECT throws_ok($$ SELECT um_update_profile(name => 'Dave', attributes => '{"clearance": "top"}') $$, 'UM075',
                 'user attribute "clearance" cannot be changed here',
                 'the admin-only attribute that restricts him (and the name with it: all or nothing)');
SELECT throws_ok($$ SELECT um_update_profile(attributes => '{"employee_id": "e-1"}') $$, 'UM075', NULL, 'a read-only one');
COMMIT;
SELECT is(pg_temp.profile(:dave), :'dave_before', 'no refusal changed anything');
SELECT is((SELECT count(*) FROM um.audit_events WHERE action = 'user.update_profile' AND target_id = :dave), 1::bigint,
          'nor audited a change');
UPDATE um.users SET attributes = attributes || '{"clearance": "low", "employee_id": "e-7"}' WHERE id = :dave;
BEGIN;
SELECT um_act_as(:dave) AS a \gset
SELECT is(um_update_profile(attributes => '{"department": "sales", "clearance": "low", "employee_id": "e-7"}') -> 'attributes',
          '{"department": "sales", "clearance": "low", "employee_id": "e-7"}'::jsonb,
          'a form that sends the protected keys back unchanged works');
SELECT is(um_update_profile(attributes => '{"department": null}') -> 'attributes', '{"clearance": "low", "employee_id": "e-7"}'::jsonb,
          'null removes a key');
SELECT is(um_update_profile(mobile => '') ->> 'mobile', NULL, 'an empty mobile removes the number');
SELECT throws_ok($$ SELECT um_update_profile(attributes => '{"clearance": null}') $$, 'UM075', NULL,
                 'removing an admin-only key is changing it');
COMMIT;

-- impersonated
BEGIN;
SELECT um_act_as(:carol) AS a \gset
SELECT um_impersonate(:erin) AS i \gset
SELECT throws_ok($$ SELECT um_update_profile(name => 'Pwned') $$, 'UM071', NULL,
                 'an impersonator cannot change the impersonated user''s profile');
SELECT throws_ok(format('SELECT um_update_user(%s, name => %L)', :erin, 'Pwned'), 'UM071', NULL, 'nor anybody''s');
ROLLBACK;

-- ---------------------------------------------------------------------------
-- An admin changes users
BEGIN;
SELECT um_act_as(:carol) AS a \gset
SELECT is(um_update_user(:erin, name => 'Erin E.', attributes => '{"clearance": "high", "department": "legal"}') -> 'attributes',
          '{"clearance": "high", "department": "legal"}'::jsonb,
          'carol, an Admin of erin''s only organization, sets her admin-only and user-editable attributes');
SELECT throws_ok(format('SELECT um_update_user(%s, attributes => %L)', :erin, '{"employee_id": "e-9"}'), 'UM075', NULL,
                 'not a read-only one');
SELECT throws_ok(format('SELECT um_update_user(%s, attributes => %L)', :carol, '{"clearance": "top"}'), 'UM075', NULL,
                 'nor her own admin-only one: through um_update_user too she is the user it restricts');
SELECT throws_ok(format('SELECT um_update_user(%s, name => %L)', :dave, 'Dave'), 'UM070', NULL,
                 'nor dave, who is also in globex, where she holds nothing');
SELECT throws_ok(format('SELECT um_update_user(%s, name => %L)', :ada, 'Ada L.'), 'UM073', NULL, 'nor ada, a Root');
COMMIT;
SELECT is((SELECT details FROM um.audit_events WHERE action = 'user.update' AND target_id = :erin AND outcome = 'ok'),
          '{"changed": ["name", "attributes.clearance", "attributes.department"]}'::jsonb, 'audited as user.update');
SELECT is((SELECT name FROM um.users WHERE id = :dave), 'David', 'dave is unchanged');
BEGIN;
SELECT um_act_as(:bob) AS a \gset
SELECT throws_ok(format('SELECT um_update_user(%s, name => %L)', :erin, 'Erin B.'), 'UM070', NULL,
                 'the Root of globex cannot change a user of acme only');
ROLLBACK;
BEGIN;
SELECT um_act_as(:dave) AS a \gset
SELECT throws_ok(format('SELECT um_update_user(%s, attributes => %L)', :erin, '{"department": "x"}'), 'UM070', NULL,
                 'nor can a Member');
ROLLBACK;
SELECT is(um_update_user(:erin, attributes => '{"employee_id": "e-9", "legacy": true}') -> 'attributes',
          '{"clearance": "high", "department": "legal", "employee_id": "e-9", "legacy": true}'::jsonb,
          'a um administrator (the backend, nobody acting) sets read-only and undeclared keys');
SET ROLE regress_um_profile_app;
SELECT throws_ok(format('SELECT um_update_user(%s, name => %L)', :erin, 'App'), 'UM070', NULL,
                 'the application role with nobody acting is no um administrator');
RESET ROLE;

-- forgetting a key
SELECT is(um_drop_user_attribute('department'), true, 'a declared key can be dropped');
SELECT is(um_drop_user_attribute('department'), false, 'once');
BEGIN;
SELECT um_act_as(:erin) AS a \gset
SELECT throws_ok($$ SELECT um_update_profile(attributes => '{"department": "ops"}') $$, 'UM013', NULL,
                 'then its values stay, and only um administrators change them');
ROLLBACK;

DROP OWNED BY regress_um_profile_app;
DROP ROLE regress_um_profile_app;
SELECT * FROM finish();
