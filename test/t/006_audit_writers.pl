# test/t/006_audit_writers.pl: a reporting query cannot take the capacity
# logins need.
#
# Every login (and every audited refusal) is committed by an audit writer.
# With um preloaded, um.audit_writers of them hold background worker slots
# reserved at server start: a parallel query that takes every other slot
# leaves logins working, counted and audited.  Without preloading the
# writers are dynamic workers, sharing the slots with parallel queries: when
# the query holds them all, a login fails closed (UM069), the right password
# as the wrong one, and nothing is recorded.  Both are documented in doc/operations.md.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('writers');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'um'
um.audit_writers = 2
max_worker_processes = 4
max_parallel_workers = 8
});
$node->start;
$node->safe_psql('postgres', q{
  CREATE EXTENSION um CASCADE;
  SELECT um_sign_up('ada@example.com', 'ada-password');
  UPDATE um.users SET email_verified_at = now();
  CREATE TABLE big AS SELECT g FROM generate_series(1, 60000) g;
  ALTER TABLE big SET (parallel_workers = 64);
  ANALYZE big;
});

# this node's writers only (another cluster on the machine has its own)
sub writers {
  open(my $fh, '<', $node->data_dir . '/postmaster.pid') or die "no postmaster.pid: $!";
  my $pid = <$fh>;
  close($fh);
  chomp($pid);
  my @p = grep { /um audit writer/ } `ps -o args= --ppid $pid`;
  return scalar @p;
}
is(writers(), 2, 'two audit writers run from server start');

# hog: a parallel query that takes every worker slot it can, for a while
sub hog
{
	my ($n) = @_;
	my $bg = $n->background_psql('postgres', on_error_stop => 0);
	my $pid = $bg->query_safe('SELECT pg_backend_pid()');
	$bg->query_until(qr/hogging/, q{
SET max_parallel_workers_per_gather = 64;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET parallel_leader_participation = off;
\echo hogging
SELECT count(*) FROM big WHERE pg_sleep(0.0003) IS NOT NULL;
});
	$n->poll_query_until('postgres', q{SELECT count(*) > 0 FROM pg_stat_activity WHERE backend_type = 'parallel worker'})
	  or die 'the parallel query did not start';
	return ($bg, $pid);
}
sub unhog
{
	my ($n, $bg, $pid) = @_;
	$n->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
	$bg->quit;
}

my ($bg, $hogpid) = hog($node);
my $free = $node->safe_psql('postgres', q{
  SELECT current_setting('max_worker_processes')::int - 2 - count(*) FROM pg_stat_activity
   WHERE backend_type IN ('parallel worker', 'logical replication launcher')});
is($free, '0', 'the parallel query holds every worker slot that is not um\'s');
my ($ret, $out, $err) = $node->psql('postgres', q{SELECT um_login('ada@example.com', 'ada-password') LIKE 'um\_%'});
is($out, 't', 'a login with the right password still succeeds');
($ret, $out, $err) = $node->psql('postgres', q{SELECT um_login('ada@example.com', 'wrong-password')});
like($err, qr/invalid email or password/, 'a wrong one is refused as usual (UM060, not UM069)');
is($node->safe_psql('postgres', q{SELECT failed_login_count FROM um.users WHERE email = 'ada@example.com'}), '1',
   'and counted');
is($node->safe_psql('postgres', q{SELECT count(*) FROM um.audit_events WHERE action = 'user.login' AND outcome = 'denied'}), '1',
   'and audited');

# attempts for one account whose row is held locked take one writer at most
$node->safe_psql('postgres', q{SELECT um_sign_up('cy@example.com', 'cy-password'); UPDATE um.users SET email_verified_at = now()});
my $locker = $node->background_psql('postgres');
$locker->query_safe(q{BEGIN; SELECT 1 FROM um.users WHERE email = 'cy@example.com' FOR UPDATE});
my @tries;
for my $k (1 .. 2)
{
	my $t = $node->background_psql('postgres', on_error_stop => 0);
	$t->query_until(qr/trying/, qq{\\echo trying\nSELECT um_login('cy\@example.com', 'wrong-password');\n});
	push @tries, $t;
}
$node->poll_query_until('postgres', q{SELECT count(*) >= 1 FROM pg_stat_activity WHERE backend_type = 'um audit writer' AND wait_event_type = 'Lock'})
  or die 'no writer waits for the lock';
($ret, $out, $err) = $node->psql('postgres', q{SELECT um_login('ada@example.com', 'ada-password') LIKE 'um\_%'});
is($out, 't', 'another user logs in while two attempts for a locked account wait');
$locker->query_safe('COMMIT');
$locker->quit;
$_->quit for @tries;
unhog($node, $bg, $hogpid);

# writers serve several databases, and never keep one from being dropped
$node->safe_psql('postgres', q{CREATE DATABASE other});
$node->safe_psql('other', q{CREATE EXTENSION um CASCADE; SELECT um_sign_up('bob@example.com', 'bob-password')});
($ret, $out, $err) = $node->psql('other', q{SELECT um_login('bob@example.com', 'wrong-password')});
like($err, qr/invalid email or password/, 'a login in another database is recorded too');
($ret, $out, $err) = $node->psql('postgres', q{SELECT um_login('ada@example.com', 'wrong-password')});
like($err, qr/invalid email or password/, 'and one in the first database meanwhile');
is($node->safe_psql('other', q{SELECT count(*) FROM um.audit_events WHERE action = 'user.login'}), '1',
   'each database has its own event');
($ret, $out, $err) = $node->psql('postgres', q{DROP DATABASE other});
is($ret, 0, 'DROP DATABASE succeeds: an idle writer leaves its database');

# without preloading: the same query takes the writers' slots, and logins fail closed
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = ''
max_worker_processes = 2
});
$node->restart;
is(writers(), 0, 'without preloading no writer is reserved');
my $events = $node->safe_psql('postgres', q{SELECT count(*) FROM um.audit_events WHERE action = 'user.login'});
($bg, $hogpid) = hog($node);
($ret, $out, $err) = $node->psql('postgres', q{SELECT um_login('ada@example.com', 'ada-password')});
like($err, qr/could not record user\.login/, 'a login then fails closed (UM069), even with the right password');
like($err, qr/preload um/, 'and the hint says how to reserve the writers');
unhog($node, $bg, $hogpid);
is($node->safe_psql('postgres', q{SELECT count(*) FROM um.audit_events WHERE action = 'user.login'}), $events,
   'nothing was recorded for it (documented: the attempt was refused, not counted)');

$node->stop;
done_testing();
