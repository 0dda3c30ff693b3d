# test/t/001_standby.pl: the evaluator on a hot standby.
#
# A streaming standby answers um_has_permission, the companions,
# um_act_as and um_begin (with a token issued on the primary) read-only, and a
# revocation, a suspension and a membership removal committed on the primary
# (directly, and through the lifecycle functions for a session-token user)
# reach a standby backend that had cached the old answer, once replay has
# passed the commit (the cache's invalidation travels in the WAL with the
# commit record).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->start;
$primary->safe_psql('postgres', q{
  CREATE EXTENSION um CASCADE;
  SELECT um_create_user('ada@example.com');
  SELECT um_create_user('dave@example.com');
  SELECT um_create_organization('acme', 'Acme', 1);
  SELECT um_add_member(1, 2);
  SELECT um_register_permission('invoice:read');
  INSERT INTO um.roles (org_id, name) VALUES (1, 'Clerk');
  INSERT INTO um.role_permissions (org_id, role_id, permission) SELECT 1, id, 'invoice:read' FROM um.roles WHERE name = 'Clerk';
  INSERT INTO um.grants (org_id, role_id, user_id) SELECT 1, id, 2 FROM um.roles WHERE name = 'Clerk';
});
$primary->backup('base');

my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->start;
$primary->wait_for_catchup($standby);

is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'the standby is in recovery');

# one long-lived standby session, whose cache stays warm between the steps
my $session = $standby->background_psql('postgres');
is($session->query_safe(q{SELECT um_has_permission(2, 'invoice:read', 1), um_has_permission(2, 'org:read', 1)}),
   't|t', 'a standby answers checks (nothing on the read path writes)');
is($session->query_safe(q{SELECT um_permitted_orgs(2, 'invoice:read')}), '{1}', 'and the companions');
like($session->query_safe(q{BEGIN; SELECT um_act_as(2); SELECT um_has_permission('invoice:read', 1); COMMIT;}),
   qr/^\s*t$/, 'um_act_as works on a standby');
is($session->query_safe(q{SELECT um_current_user_id() IS NULL}), 't', 'and ends with the transaction');

$primary->safe_psql('postgres', q{DELETE FROM um.grants});
$primary->wait_for_catchup($standby);
is($session->query_safe(q{SELECT um_has_permission(2, 'invoice:read', 1), um_has_permission(2, 'org:read', 1)}),
   'f|t', 'a revocation committed on the primary reaches the warm standby backend after replay');

$primary->safe_psql('postgres', q{UPDATE um.users SET status = 'suspended' WHERE id = 2});
$primary->wait_for_catchup($standby);
is($session->query_safe(q{SELECT um_has_permission(2, 'org:read', 1)}), 'f', 'so does a suspension');

$primary->safe_psql('postgres', q{UPDATE um.users SET status = 'active' WHERE id = 2});
$primary->wait_for_catchup($standby);
is($session->query_safe(q{SELECT um_has_permission(2, 'org:read', 1)}), 't', 'and the reactivation');

$primary->safe_psql('postgres', q{DELETE FROM um.memberships WHERE user_id = 2});
$primary->wait_for_catchup($standby);
is($session->query_safe(q{SELECT um_has_permission(2, 'org:read', 1)}), 'f', 'and a membership removal');

# sessions: a token issued on the primary begins transactions on the standby
$primary->safe_psql('postgres', q{
  SET um.password_hash_cost = 4;
  UPDATE um.users SET email_verified_at = now();
  SELECT um_set_password(1, 'password-of-ada', false);
});
my $token = $primary->safe_psql('postgres', q{SELECT um_login('ada@example.com', 'password-of-ada')});
$primary->wait_for_catchup($standby);
is($session->query_safe(qq{BEGIN; SELECT um_begin('$token'); SELECT um_has_permission('org:read', 1); COMMIT;}),
   "1\nt", 'um_begin with a session token works on the standby (it only reads)');
my ($rc, $out, $err) = $standby->psql('postgres', q{SELECT um_login('ada@example.com', 'password-of-ada')});
like($err, qr/cannot log in on a hot standby/, 'logging in needs the primary, and says so');
$primary->safe_psql('postgres', qq{SELECT um_logout('$token')});
$primary->wait_for_catchup($standby);
($rc, $out, $err) = $standby->psql('postgres', qq{SELECT um_begin('$token')});
like($err, qr/session token is not valid/, 'a logout on the primary ends the session on the standby');

# a protected table on the standby: the application role acting as a user sees its rows only
$primary->safe_psql('postgres', q{
  CREATE TABLE invoices (id bigint PRIMARY KEY, org_id bigint NOT NULL, amount numeric NOT NULL);
  INSERT INTO invoices SELECT g, CASE WHEN g % 2 = 0 THEN 1 ELSE 2 END, g FROM generate_series(1, 100) g;
  SELECT um_create_organization('other', 'Other', 1);
  SELECT um_protect_table('invoices', 'org_id', 'invoice');
  INSERT INTO um.role_permissions (org_id, role_id, permission) SELECT org_id, id, 'invoice:read' FROM um.roles WHERE builtin = 'root' AND org_id = 1;
  CREATE ROLE app;
  GRANT SELECT ON invoices TO app;
  GRANT EXECUTE ON FUNCTION um_act_as(bigint) TO app;
});
$primary->wait_for_catchup($standby);
is($standby->safe_psql('postgres', q{SET ROLE app; BEGIN; SELECT um_act_as(1) \\g /dev/null
SELECT count(*) FROM invoices; COMMIT;}), '50', 'a protected table on the standby shows the acting user\'s rows only');
is($standby->safe_psql('postgres', q{SET ROLE app; SELECT count(*) FROM invoices;}), '0', 'and nothing with nobody acting');

# a session-token user on the standby: a role change and then a suspension
# made on the primary through the lifecycle functions reach the same warm
# standby backend at its next transaction
$primary->safe_psql('postgres', q{
  SET um.password_hash_cost = 4;
  SELECT um_create_user('carol@example.com');
  SELECT um_add_member(1, 3, 'Service Reader');
  UPDATE um.users SET email_verified_at = now() WHERE id = 3;
  SELECT um_set_password(3, 'password-of-carol', false);
});
my $carol = $primary->safe_psql('postgres', q{SELECT um_login('carol@example.com', 'password-of-carol')});
$primary->wait_for_catchup($standby);
is($session->query_safe(qq{BEGIN; SELECT um_begin('$carol') IS NOT NULL; SELECT um_has_permission('instance:read', 1); COMMIT;}),
   "t
t", 'a session user\'s permission is answered (and cached) on the standby');
$primary->safe_psql('postgres', q{SELECT um_set_org_role(1, 3, 'Member')});
$primary->wait_for_catchup($standby);
is($session->query_safe(qq{BEGIN; SELECT um_begin('$carol') IS NOT NULL; SELECT um_has_permission('instance:read', 1); COMMIT;}),
   "t
f", 'um_set_org_role on the primary takes it away in that backend\'s next transaction');
$primary->safe_psql('postgres', q{SELECT um_suspend_user(3)});
$primary->wait_for_catchup($standby);
my ($src, $sout, $serr) = $standby->psql('postgres', qq{SELECT um_begin('$carol')});
like($serr, qr/session token is not valid|suspended/, 'um_suspend_user on the primary ends the session on the standby');

my $stats = $session->query_safe(q{SELECT invalidations > 0 FROM um_cache_stats()});
is($stats, 't', 'the standby backend received the invalidations');
$session->quit;

done_testing();
