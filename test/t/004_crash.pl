# test/t/004_crash.pl: a crash in the middle of um's work leaves no half-done
# state.
#
# A backend creating organizations (with their built-in roles, Root
# memberships and audit events) and adding members is killed with SIGKILL,
# which makes the postmaster reinitialize every backend and replay the WAL;
# then, in a second run, the whole server is stopped with an immediate
# shutdown and restarted.  Each time, nothing of the interrupted transaction
# remains, everything committed before it does, and um_check_integrity()
# finds every invariant intact.
#
# Then single lifecycle calls are interrupted while they run, after they have
# written part of their work: a second session holds a lock the call needs
# late (the organization row that the Root check of the memberships triggers
# updates, a membership row, the audit trail), the call runs until it waits
# for that lock, its uncommitted writes are read off the heap pages
# (pageinspect: tuples whose xmin or xmax is the call's transaction), and then
# the backend is killed with SIGKILL (um_delete_user, um_remove_member,
# um_add_team_member) or the server stopped with an immediate shutdown
# (um_transfer_org_ownership).  After the restart the call's transaction is
# aborted, the um tables are exactly as before the call, every invariant
# holds, and the same call then succeeds.
#
# Last, a login whose caller is cancelled while the audit writer waits is
# still counted.
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

# ---------------------------------------------------------------------------
# Lifecycle calls interrupted while they run

my @um_tables = qw(organizations users roles role_permissions memberships teams team_members
  team_member_roles scopes grants invitations sessions verification_tokens user_identities audit_events);

# every row of um's tables, as text: what a call may change
sub snapshot
{
	my $i = 0;
	return $node->safe_psql('postgres', 'SELECT line FROM ('
		  . join("\nUNION ALL\n", map { $i++; "SELECT $i, '$_: ' || x::text FROM um.$_ x" } @um_tables)
		  . ') rows (n, line) ORDER BY n, line');
}

sub integrity_violations
{
	return $node->safe_psql('postgres',
		q{SELECT coalesce(string_agg(concat_ws(' | ', invariant, object, detail), E'\n'), '') FROM um_check_integrity()});
}

# what a transaction has written so far, uncommitted, read off the heap
# pages: per um table, "+n -m" for the tuples it inserted (or new versions it
# made) and those it deleted or updated, and "locked k" for those it only
# locked (foreign key checks, FOR UPDATE)
sub footprint
{
	my ($xid) = @_;
	return $node->safe_psql('postgres', qq{
	  SELECT string_agg(concat_ws(', ', CASE WHEN w.ins + w.del > 0 THEN format('%s +%s -%s', c.relname, w.ins, w.del) END,
	                                    CASE WHEN w.lck > 0 THEN format('%s locked %s', c.relname, w.lck) END),
	                    ', ' ORDER BY c.relname)
	    FROM pg_class c
	    CROSS JOIN LATERAL (
	      SELECT count(*) FILTER (WHERE p.t_xmin = '$xid'::xid) AS ins,
	             count(*) FILTER (WHERE p.t_xmax = '$xid'::xid AND p.t_infomask & 128 = 0) AS del,   -- not HEAP_XMAX_LOCK_ONLY
	             count(*) FILTER (WHERE p.t_xmax = '$xid'::xid AND p.t_infomask & 128 <> 0) AS lck
	        FROM generate_series(0, pg_relation_size(c.oid) / current_setting('block_size')::int - 1) b,
	             heap_page_items(get_raw_page(c.oid::regclass::text, b::int)) p) w
	   WHERE c.relnamespace = 'um'::regnamespace AND c.relkind = 'r' AND w.ins + w.del + w.lck > 0});
}

# Run $call in a backend of its own while a second session holds a lock
# ($lock, run in an open transaction) that the call needs late in its work;
# once the call waits for it, note what it has written, then interrupt it:
# 'kill' (SIGKILL of the call's backend; the postmaster reinitializes) or
# 'immediate' (immediate shutdown, then start).  Returns the call's
# transaction id, its footprint and the um tables it held RowExclusiveLock on.
sub interrupt_call
{
	my ($call, $lock, $how) = @_;
	my $holder = $node->background_psql('postgres');
	my $holder_pid = $holder->query_safe('SELECT pg_backend_pid()');
	$holder->query_safe("BEGIN; $lock;");
	my $bg = $node->background_psql('postgres', on_error_stop => 0);
	my $pid = $bg->query_safe('SELECT pg_backend_pid()');
	# returns once psql has echoed the marker; the call follows it on psql's input
	$bg->query_until(qr/call sent/, "\\echo call sent\nSELECT $call;\n");
	$node->poll_query_until('postgres', qq{
	  SELECT wait_event_type = 'Lock' AND pg_blocking_pids(pid) = ARRAY[$holder_pid] AND backend_xid IS NOT NULL
	    FROM pg_stat_activity WHERE pid = $pid})
	  or die "the call $call did not come to wait for the lock held by the second session";
	my $xid = $node->safe_psql('postgres', "SELECT backend_xid FROM pg_stat_activity WHERE pid = $pid");
	my $footprint = footprint($xid);
	my $locked = $node->safe_psql('postgres', qq{
	  SELECT string_agg(c.relname, ' ' ORDER BY c.relname) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
	   WHERE l.pid = $pid AND l.granted AND l.mode = 'RowExclusiveLock'
	     AND c.relnamespace = 'um'::regnamespace AND c.relkind = 'r'});
	# put the half-done work on disk: the checkpoint flushes the WAL of the
	# call's writes and writes the pages it changed to the data files, so
	# recovery meets them and must treat them as aborted
	$node->safe_psql('postgres', 'CHECKPOINT');
	note "$call, transaction $xid, waiting for the lock; written so far: $footprint; RowExclusiveLock on: $locked";
	my $still_waiting = $node->safe_psql('postgres', "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $pid");
	die "the call $call stopped waiting before it was interrupted ($still_waiting)" unless $still_waiting eq 'Lock';
	if ($how eq 'kill')
	{
		my $offset = -s $node->logfile;
		kill('KILL', $pid) or die "could not kill backend $pid";
		$node->wait_for_log(qr/server process \(PID $pid\) was terminated by signal 9/, $offset);
		$node->wait_for_log(qr/all server processes terminated; reinitializing/, $offset);
		$node->wait_for_log(qr/database system is ready to accept connections/, $offset);
		$node->poll_query_until('postgres', 'SELECT true')
		  or die 'the server did not come back after the crash';
	}
	else
	{
		$node->stop('immediate');
		$node->start;
	}
	$bg->{run}->kill_kill;
	$holder->{run}->kill_kill;
	return ($xid, $footprint, $locked);
}

# does the footprint show each of these writes?  ("teams +0 -1", ...)
sub shows
{
	my ($footprint, @writes) = @_;
	my %got = map { $_ => 1 } split /, /, ($footprint // '');
	return join(', ', grep { !$got{$_} } @writes) || 'all';
}

# the checks after every interruption
sub check_rolled_back
{
	my ($name, $xid, $before) = @_;
	is($node->safe_psql('postgres', "SELECT pg_xact_status('$xid'::xid8)"), 'aborted',
	   "$name: the interrupted transaction is aborted after the restart");
	is(snapshot(), $before, "$name: nothing of the interrupted call remains (every row of um's tables as before)");
	is(integrity_violations(), '', "$name: every invariant holds after the restart");
}

$node->safe_psql('postgres', 'CREATE EXTENSION pageinspect');
my $acme = $node->safe_psql('postgres', q{SELECT um_create_organization('acme', 'Acme', 1)});
my $base_id = $node->safe_psql('postgres', q{SELECT id FROM um.organizations WHERE slug = 'base'});
my $committed_id = $node->safe_psql('postgres', q{SELECT id FROM um.organizations WHERE slug = 'committed'});
my %u = map { $_ => $node->safe_psql('postgres', "SELECT id FROM um.users WHERE email = 'user$_\@example.com'") } 20 .. 26;
$node->safe_psql('postgres', qq{
  SELECT um_add_member($acme, id) FROM um.users WHERE id IN ($u{20}, $u{21}, $u{22}, $u{23}, $u{24}, $u{25}, $u{26}) ORDER BY id;
  SELECT um_add_member($base_id, $u{20});
  SELECT um_create_team($acme, 'solo20', NULL, $u{20});
  SELECT um_create_team($acme, 'solo21', NULL, $u{21});
  SELECT um_create_team($acme, 'shared', NULL, $u{24});
});
my %team = map { $_ => $node->safe_psql('postgres', "SELECT id FROM um.teams WHERE name = '$_'") } qw(solo20 solo21 shared);
my %space = map { $_ => $node->safe_psql('postgres', "SELECT scope_id FROM um.teams WHERE name = '$_'") } qw(solo20 solo21 shared);
$node->safe_psql('postgres', qq{
  SELECT um_add_team_member($team{shared}, $u{20}, ARRAY['Service Reader']);
  SELECT um_add_team_member($team{shared}, $u{21}, ARRAY['Service Reader']);
  SELECT um_grant_scope_role($space{shared}, 'Service Editor', $u{20});
  SELECT um_grant_scope_role($space{shared}, 'Service Operator', $u{21});
  SELECT um_grant_scope_role($space{solo20}, 'Service Reader', $u{25});
  SELECT um_grant_scope_role($space{solo21}, 'Service Reader', $u{25});
  SELECT count(*) FROM um_invite($committed_id, 'user20\@example.com');
});
is(integrity_violations(), '', 'the organization for the interrupted calls is consistent');

my $lock_acme = "SELECT 1 FROM um.organizations WHERE id = $acme FOR NO KEY UPDATE";

# 3. um_delete_user, killed after it has deleted the user's own team, their
# invitation, the user row and (by cascade) their memberships, team seats and
# grants, while the Root check of the memberships waits for the organization
$before = snapshot();
my ($xid, $footprint, $locked) = interrupt_call("um_delete_user($u{20})", $lock_acme, 'kill');
is(shows($footprint, 'teams +0 -1', 'scopes +0 -1', 'team_members +0 -2', 'grants +0 -2', 'invitations +0 -1', 'users +0 -1', 'memberships +0 -2'),
   'all', 'um_delete_user was interrupted midway: its deletions were written, not yet committed')
  or diag "footprint: $footprint";
like($locked, qr/\bteams\b.*\busers\b/, 'um_delete_user held the locks of its first writes when it was killed');
check_rolled_back('um_delete_user', $xid, $before);
$node->safe_psql('postgres', "SELECT um_delete_user($u{20})");
is($node->safe_psql('postgres', qq{
  SELECT (SELECT count(*) FROM um.users WHERE id = $u{20}) || '/' || (SELECT count(*) FROM um.memberships WHERE user_id = $u{20})
      || '/' || (SELECT count(*) FROM um.team_members WHERE user_id = $u{20}) || '/' || (SELECT count(*) FROM um.grants WHERE user_id = $u{20} OR scope_id = $space{solo20})
      || '/' || (SELECT count(*) FROM um.teams WHERE id = $team{solo20}) || '/' || (SELECT count(*) FROM um.invitations WHERE email = 'user20\@example.com')
      || '/' || (SELECT count(*) FROM um.audit_events WHERE action = 'user.delete' AND target_id = $u{20})}),
   '0/0/0/0/0/0/1', 'the same um_delete_user then succeeds, once');
is(integrity_violations(), '', 'every invariant holds after it');

# 4. um_remove_member, killed after it has deleted the team the member owns
# alone (with its seat, team space and grants), while it waits to delete the
# membership, which another session holds FOR KEY SHARE (as um_add_team_member
# does)
$before = snapshot();
($xid, $footprint, $locked) = interrupt_call("um_remove_member($acme, $u{21})",
	"SELECT 1 FROM um.memberships WHERE org_id = $acme AND user_id = $u{21} FOR KEY SHARE", 'kill');
is(shows($footprint, 'teams +0 -1', 'team_members +0 -1', 'scopes +0 -1', 'grants +0 -1'),
   'all', 'um_remove_member was interrupted midway: the team the member owned alone was deleted, not yet committed')
  or diag "footprint: $footprint";
unlike($footprint, qr/memberships [+]/, '... and the membership not yet');
like($locked, qr/\bteams\b/, 'um_remove_member held the lock of its first write when it was killed');
check_rolled_back('um_remove_member', $xid, $before);
$node->safe_psql('postgres', "SELECT um_remove_member($acme, $u{21})");
is($node->safe_psql('postgres', qq{
  SELECT (SELECT count(*) FROM um.users WHERE id = $u{21}) || '/' || (SELECT count(*) FROM um.memberships WHERE user_id = $u{21})
      || '/' || (SELECT count(*) FROM um.team_members WHERE user_id = $u{21}) || '/' || (SELECT count(*) FROM um.grants WHERE user_id = $u{21} OR scope_id = $space{solo21})
      || '/' || (SELECT count(*) FROM um.teams WHERE id = $team{solo21})
      || '/' || (SELECT count(*) FROM um.audit_events WHERE action = 'member.remove' AND target_id = $u{21})}),
   '1/0/0/0/0/1', 'the same um_remove_member then succeeds, once');
is(integrity_violations(), '', 'every invariant holds after it');

# 5. um_transfer_org_ownership, stopped by an immediate shutdown after its
# update of both memberships, while the Root check waits for the organization
$before = snapshot();
($xid, $footprint, $locked) = interrupt_call("um_transfer_org_ownership($acme, $u{23}, 'Admin')", $lock_acme, 'immediate');
is(shows($footprint, 'memberships +2 -2'),
   'all', 'um_transfer_org_ownership was interrupted midway: the new Root and the demoted Root were written, not yet committed')
  or diag "footprint: $footprint";
check_rolled_back('um_transfer_org_ownership', $xid, $before);
$node->safe_psql('postgres', "SELECT um_transfer_org_ownership($acme, $u{23}, 'Admin')");
is($node->safe_psql('postgres', qq{
  SELECT string_agg(m.user_id || ':' || r.name, ' ' ORDER BY m.user_id) FROM um.memberships m JOIN um.roles r ON r.id = m.role_id
   WHERE m.org_id = $acme AND m.user_id IN (1, $u{23})}),
   "1:Admin $u{23}:Root", 'the same um_transfer_org_ownership then succeeds');
is(integrity_violations(), '', 'every invariant holds after it');

# 6. um_add_team_member, killed after it has added the seat and both team
# roles, while its audit event waits for the audit trail
$before = snapshot();
($xid, $footprint, $locked) = interrupt_call("um_add_team_member($team{shared}, $u{26}, ARRAY['Service Reader', 'Service Editor'])",
	'LOCK TABLE um.audit_events IN SHARE MODE', 'kill');
is(shows($footprint, 'team_members +1 -0', 'team_member_roles +2 -0'),
   'all', 'um_add_team_member was interrupted at its last step: the seat and its roles were written, not yet committed')
  or diag "footprint: $footprint";
unlike($footprint, qr/audit_events [+]/, '... and its audit event not yet');
check_rolled_back('um_add_team_member', $xid, $before);
$node->safe_psql('postgres', "SELECT um_add_team_member($team{shared}, $u{26}, ARRAY['Service Reader', 'Service Editor'])");
is($node->safe_psql('postgres', qq{
  SELECT (SELECT count(*) FROM um.team_members WHERE team_id = $team{shared} AND user_id = $u{26})
      || '/' || (SELECT count(*) FROM um.team_member_roles WHERE team_id = $team{shared} AND user_id = $u{26})
      || '/' || (SELECT count(*) FROM um.audit_events WHERE action = 'team.add_member' AND target_id = $u{26})}),
   '1/2/1', 'the same um_add_team_member then succeeds, once');
is(integrity_violations(), '', 'every invariant holds after it');

# 7. a cancelled login is still counted: the attempt's job outlives its caller
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
