# test/t/004_crash.pl: a crash in the middle of um's work leaves no half-done
# state.
#
# A backend creating organizations (with their built-in roles, Root
# memberships and audit events) and adding members is killed with SIGKILL,
# which makes the postmaster reinitialize every backend and replay the WAL;
# then, in a second run, the whole server is stopped with an immediate
# shutdown and restarted.  Each time, nothing of the interrupted transaction
# remains, everything committed before it does, and um_check_integrity()
# finds every invariant intact.  Last, a login whose caller is cancelled
# while the audit writer waits is still counted.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('crash');
$node->init;
$node->append_conf('postgresql.conf', 'restart_after_crash = on');
$node->start;
$node->safe_psql('postgres', q{
  CREATE EXTENSION um CASCADE;
  SELECT um_create_user('root@example.com');
  SELECT um_create_user(format('user%s@example.com', g)) FROM generate_series(1, 50) g;
  SELECT um_create_organization('base', 'Base', 1);
});

sub counts
{
	return $node->safe_psql('postgres', q{
	  SELECT (SELECT count(*) FROM um.organizations) || '/' || (SELECT count(*) FROM um.roles) || '/'
	      || (SELECT count(*) FROM um.memberships) || '/' || (SELECT count(*) FROM um.audit_events)});
}

# start a transaction that does um's work and then waits, holding it open
sub start_interrupted_work
{
	my ($tag) = @_;
	my $bg = $node->background_psql('postgres', on_error_stop => 0);
	my $pid = $bg->query_safe('SELECT pg_backend_pid()');
	$bg->query_until(qr/work done/, qq{
	  BEGIN;
	  SELECT count(um_create_organization('$tag-' || g, 'Org ' || g, 1)) FROM generate_series(1, 40) g;
	  SELECT count(um_add_member(o.id, u.id)) FROM um.organizations o, um.users u
	   WHERE o.slug LIKE '$tag-%' AND u.id BETWEEN 2 AND 11;
	  \\echo work done
	  SELECT pg_sleep(600);
	});
	return ($bg, $pid);
}

my $before = counts();

# 1. SIGKILL of the working backend
my ($bg, $pid) = start_interrupted_work('killed');
ok(kill('KILL', $pid), 'the backend doing um\'s work is killed with SIGKILL');
$bg->{run}->kill_kill;
$node->poll_query_until('postgres', 'SELECT true')
  or die 'the server did not come back after the crash';
like(slurp_file($node->logfile), qr/terminated by signal 9/, 'the postmaster noticed the crash and reinitialized');
is(counts(), $before, 'nothing of the killed transaction remains (organizations/roles/memberships/audit events)');
is($node->safe_psql('postgres', 'SELECT count(*) FROM um_check_integrity()'), '0', 'every invariant holds after the crash');

# committed work survives the next crash
$node->safe_psql('postgres', q{SELECT um_create_organization('committed', 'Committed', 1)});
my $committed = counts();

# 2. immediate shutdown (no checkpoint; the WAL is replayed at startup)
($bg, $pid) = start_interrupted_work('stopped');
$node->stop('immediate');
$bg->{run}->kill_kill;
$node->start;
is(counts(), $committed, 'after an immediate shutdown, committed work is there and the open transaction is gone');
is($node->safe_psql('postgres', 'SELECT count(*) FROM um_check_integrity()'), '0', 'every invariant holds after the restart');
is($node->safe_psql('postgres', q{SELECT um_has_permission(1, 'org:read', (SELECT id FROM um.organizations WHERE slug = 'committed'))}),
   't', 'and the evaluator answers from the recovered tables');

# 3. a cancelled login is still counted: the attempt's job outlives its caller
$node->safe_psql('postgres', q{
  SET um.password_hash_cost = 4;
  UPDATE um.users SET email_verified_at = now() WHERE id = 2;
  SELECT um_set_password(2, 'password-of-user1', false);
});
my $holder = $node->background_psql('postgres');
$holder->query_safe('BEGIN; SELECT 1 FROM um.users WHERE id = 2 FOR UPDATE;');    # the audit writer will wait for this lock
my $client = $node->background_psql('postgres', on_error_stop => 0);
my $client_pid = $client->query_safe('SELECT pg_backend_pid()');
$client->{stdin} .= "SELECT um_login('user1\@example.com', 'a wrong guess');\n";
$client->{run}->pump_nb;
$node->poll_query_until('postgres', q{SELECT count(*) > 0 FROM pg_stat_activity WHERE backend_type = 'um audit writer' AND wait_event_type = 'Lock'})
  or die 'the audit writer did not start';
$node->safe_psql('postgres', "SELECT pg_cancel_backend($client_pid)");
$node->poll_query_until('postgres', qq{SELECT state <> 'active' FROM pg_stat_activity WHERE pid = $client_pid})
  or die 'the login was not cancelled';
is($node->safe_psql('postgres', 'SELECT failed_login_count FROM um.users WHERE id = 2'), '0',
   'the guess is cancelled while the audit writer waits ...');
$holder->query_safe('COMMIT');
$node->poll_query_until('postgres', 'SELECT failed_login_count = 1 FROM um.users WHERE id = 2')
  or diag('the failure was not counted');
is($node->safe_psql('postgres', 'SELECT failed_login_count FROM um.users WHERE id = 2'), '1',
   '... and counted all the same: cancelling the caller does not stop the count');
$holder->quit;
$client->{run}->kill_kill;

$node->stop;
done_testing();
