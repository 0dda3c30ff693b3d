# test/t/005_monitoring.pl: every backend's permission-cache statistics.
#
# With um in shared_preload_libraries, um.cache_activity shows one row per
# backend that used its cache: two application sessions doing checks appear
# with their own hits and misses, a monitoring role (pg_monitor) may read
# them, a session that ends disappears.  Without preloading, the view shows
# only the calling backend.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('monitor');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'um'");
$node->start;
$node->safe_psql('postgres', q{
  CREATE EXTENSION um CASCADE;
  SELECT um_create_user(format('user%s@example.com', g)) FROM generate_series(1, 20) g;
  SELECT um_create_organization('acme', 'Acme', 1);
  SELECT um_add_member(1, g) FROM generate_series(2, 20) g;
  CREATE ROLE watcher LOGIN IN ROLE pg_monitor;
  CREATE ROLE nosy LOGIN;
});

# two application sessions, each checking a different number of times
my $a = $node->background_psql('postgres');
my $b = $node->background_psql('postgres');
my $pid_a = $a->query_safe('SELECT pg_backend_pid()');
my $pid_b = $b->query_safe('SELECT pg_backend_pid()');
$a->query_safe(q{SELECT count(*) FILTER (WHERE um_has_permission(u, 'org:read', 1)) FROM generate_series(1, 20) u, generate_series(1, 50)});
$b->query_safe(q{SELECT count(*) FILTER (WHERE um_has_permission(u, 'member:read', 1)) FROM generate_series(1, 10) u, generate_series(1, 3)});

my $rows = $node->safe_psql('postgres', qq{
  SELECT pid, hits + misses > 0, misses > 0, entries > 0, memory_bytes > 0
    FROM um.cache_activity WHERE pid IN ($pid_a, $pid_b) ORDER BY pid = $pid_b});
is($rows, "$pid_a|t|t|t|t\n$pid_b|t|t|t|t",
   'each backend\'s cache lookups, misses, entries and memory are visible from another session');
my $hits = $node->safe_psql('postgres', qq{SELECT hits FROM um.cache_activity WHERE pid = $pid_a});
$a->query_safe(q{SELECT um_has_permission(5, 'org:read', 1)});
ok($node->safe_psql('postgres', qq{SELECT hits > $hits FROM um.cache_activity WHERE pid = $pid_a}) eq 't',
   'a later check answered from the warm cache shows as a hit, after the backend\'s transaction');
is($node->safe_psql('postgres', qq{SELECT database, is_mine FROM um.cache_activity WHERE pid = $pid_b}), 'postgres|f',
   'with the backend\'s database');

# an invalidation reaches the warm backends and is counted there at their next transaction
is($a->query_safe(q{SELECT um_has_permission(2, 'member:invite', 1)}), 'f', 'a Member may not invite');
my $inval = $node->safe_psql('postgres', qq{SELECT invalidations FROM um.cache_activity WHERE pid = $pid_a});
is($inval, $a->query_safe(q{SELECT invalidations FROM um_cache_stats()}), 'the view shows the backend\'s own invalidations counter');
$node->safe_psql('postgres', q{SELECT um_set_org_role(1, 2, 'Admin')});
is($a->query_safe(q{SELECT um_has_permission(2, 'member:invite', 1)}), 't', 'the warm backend follows the role change');
my $inval2 = $node->safe_psql('postgres', qq{SELECT invalidations FROM um.cache_activity WHERE pid = $pid_a});
ok($inval2 > $inval, "invalidations are counted ($inval -> $inval2)");

is($node->safe_psql('postgres', q{SELECT count(*) > 0 FROM um.cache_activity}, connstr => $node->connstr('postgres') . ' user=watcher'),
   't', 'a monitoring role (pg_monitor) reads the view');
my ($ret, $out, $err) = $node->psql('postgres', 'SELECT * FROM um.cache_activity', extra_params => ['-U', 'nosy']);
like($err, qr/permission denied/, 'other roles do not');

my $idle = $node->background_psql('postgres');
my $pid_idle = $idle->query_safe('SELECT pg_backend_pid()');
$idle->query_safe('SELECT count(*) FROM pg_class');
is($node->safe_psql('postgres', qq{SELECT count(*) FROM um.cache_activity WHERE pid = $pid_idle}), '0',
   'a session that never used um\'s cache is not listed');
$idle->quit;

$b->quit;
$node->poll_query_until('postgres', qq{SELECT count(*) = 0 FROM um.cache_activity WHERE pid = $pid_b})
  or die 'the ended session is still listed';
pass('a session that ends disappears from the view');
$a->quit;

# without preloading: only the calling backend
$node->append_conf('postgresql.conf', "shared_preload_libraries = ''");
$node->restart;
my $c = $node->background_psql('postgres');
$c->query_safe(q{SELECT um_has_permission(3, 'org:read', 1)});
is($node->safe_psql('postgres', q{SELECT um_has_permission(2, 'org:read', 1); SELECT count(*), bool_and(is_mine) FROM um.cache_activity}),
   "t\n1|t", 'without shared_preload_libraries the view shows only the calling backend');
$c->quit;

$node->stop;
done_testing();
