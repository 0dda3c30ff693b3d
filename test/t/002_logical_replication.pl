# test/t/002_logical_replication.pl: a logical replication subscriber's
# caches follow the changes that replication applies.
#
# The apply worker fires only row triggers (in replica mode), never the
# statement triggers that normally invalidate the permission cache; um's
# replica-mode row triggers cover it.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $setup = q{
  CREATE EXTENSION um CASCADE;
  SELECT um_create_user('ada@example.com');
  SELECT um_create_user('dave@example.com');
  SELECT um_create_organization('acme', 'Acme', 1);
  SELECT um_add_member(1, 2);
  SELECT um_register_permission('invoice:read');
  INSERT INTO um.roles (org_id, name) VALUES (1, 'Clerk');
  INSERT INTO um.role_permissions (org_id, role_id, permission) SELECT 1, id, 'invoice:read' FROM um.roles WHERE name = 'Clerk';
  INSERT INTO um.grants (org_id, role_id, user_id) SELECT 1, id, 2 FROM um.roles WHERE name = 'Clerk';
};

my $publisher = PostgreSQL::Test::Cluster->new('publisher');
$publisher->init(allows_streaming => 'logical');
$publisher->start;
my $subscriber = PostgreSQL::Test::Cluster->new('subscriber');
$subscriber->init;
$subscriber->start;

# the same starting point on both sides; from then on, changes replicate
$publisher->safe_psql('postgres', $setup);
$subscriber->safe_psql('postgres', $setup);
$publisher->safe_psql('postgres',
	'CREATE PUBLICATION um_pub FOR TABLE um.users, um.memberships, um.grants, um.role_permissions');
my $connstr = $publisher->connstr . ' dbname=postgres';
$subscriber->safe_psql('postgres',
	"CREATE SUBSCRIPTION um_sub CONNECTION '$connstr' PUBLICATION um_pub WITH (copy_data = false)");
$publisher->wait_for_catchup('um_sub');

my $session = $subscriber->background_psql('postgres');
is($session->query_safe(q{SELECT um_has_permission(2, 'invoice:read', 1), um_has_permission(2, 'org:read', 1)}),
   't|t', 'the subscriber answers from a warm cache');

$publisher->safe_psql('postgres', q{DELETE FROM um.grants});
$publisher->wait_for_catchup('um_sub');
is($subscriber->safe_psql('postgres', q{SELECT count(*) FROM um.grants}), '0', 'the revocation was applied');
is($session->query_safe(q{SELECT um_has_permission(2, 'invoice:read', 1)}), 'f',
   'and the warm subscriber backend honours it');

$publisher->safe_psql('postgres', q{UPDATE um.users SET status = 'suspended' WHERE id = 2});
$publisher->wait_for_catchup('um_sub');
is($session->query_safe(q{SELECT um_has_permission(2, 'org:read', 1)}), 'f', 'so does a replicated suspension');

$publisher->safe_psql('postgres', q{UPDATE um.users SET status = 'active' WHERE id = 2});
$publisher->wait_for_catchup('um_sub');
is($session->query_safe(q{SELECT um_has_permission(2, 'org:read', 1)}), 't', 'and the reactivation');
$session->quit;

done_testing();
