# test/t/003_pgbouncer.pl: identity behind a transaction-pooling pgbouncer.
#
# pgbouncer (started here on 127.0.0.1, pool_mode = transaction, one server
# connection) hands the same server backend to two clients in turn.  Each
# client's transactions see exactly the identity that client established in
# that transaction, never the other client's, and a transaction that did not
# call um_begin() sees nobody, whatever ran on the connection before.
use strict;
use warnings;
use File::Path qw(make_path);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $pgbouncer = `command -v pgbouncer` || (-x '/usr/sbin/pgbouncer' ? '/usr/sbin/pgbouncer' : '');
chomp $pgbouncer;
plan skip_all => 'pgbouncer is not installed (tools/setup.sh installs it)' unless $pgbouncer;

my $node = PostgreSQL::Test::Cluster->new('pooled');
$node->init;
$node->start;
$node->safe_psql('postgres', q{
  CREATE EXTENSION um CASCADE;
  SET um.password_hash_cost = 4;
  SELECT um_create_user('dave@example.com'), um_create_user('carol@example.com');
  SELECT um_create_organization('acme', 'Acme', 1), um_create_organization('globex', 'Globex', 2);
  UPDATE um.users SET email_verified_at = now();
  SELECT um_set_password(1, 'password-of-dave', false), um_set_password(2, 'password-of-carol', false);
  CREATE ROLE app LOGIN;
  CREATE TABLE notes (org_id bigint NOT NULL, body text NOT NULL);
  INSERT INTO notes VALUES (1, 'acme note'), (2, 'globex note');
  ALTER TABLE notes ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
  CREATE POLICY notes_read ON notes FOR SELECT USING (um_has_permission('org:read', org_id));
  GRANT SELECT ON notes TO app;
});
my $token_dave = $node->safe_psql('postgres', q{SELECT um_login('dave@example.com', 'password-of-dave')});
my $token_carol = $node->safe_psql('postgres', q{SELECT um_login('carol@example.com', 'password-of-carol')});

# pgbouncer: transaction pooling, one server connection for everybody
my $dir = $PostgreSQL::Test::Utils::tmp_check . '/pgbouncer';
make_path($dir);
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $socket_dir = $node->host;
my $pg_port = $node->port;
PostgreSQL::Test::Utils::append_to_file("$dir/users.txt", qq{"app" ""\n});
PostgreSQL::Test::Utils::append_to_file("$dir/pgbouncer.ini", <<"EOF");
[databases]
um = host=$socket_dir port=$pg_port dbname=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/users.txt
pool_mode = transaction
default_pool_size = 1
max_client_conn = 10
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
EOF
my $bouncer = IPC::Run::start([ $pgbouncer, "$dir/pgbouncer.ini" ],
	'>', "$dir/stdout.log", '2>', "$dir/stderr.log");
END { $bouncer->kill_kill if $bouncer; }

# a client: psql through pgbouncer, fed one batch at a time
sub client
{
	my %c = (in => '', out => '', err => '');
	$c{h} = IPC::Run::start(
		[ 'psql', '-XAtq', '-h', '127.0.0.1', '-p', $port, '-U', 'app', '-d', 'um', '-f', '-' ],
		'<', \$c{in}, '>', \$c{out}, '2>', \$c{err},
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	return \%c;
}

sub run_sql
{
	my ($c, $sql) = @_;
	$c->{out} = '';
	$c->{err} = '';
	$c->{in} .= "$sql\n\\echo __done__\n";
	$c->{h}->pump until $c->{out} =~ /__done__/;
	my $r = $c->{out};
	$r =~ s/\n?__done__\n?$//;
	return $r;
}

# wait for pgbouncer to accept connections
my $ready = 0;
for (1 .. 100)
{
	my $rc = system('psql', '-XAtq', '-h', '127.0.0.1', '-p', $port, '-U', 'app', '-d', 'um',
		'-c', 'SELECT 1', '-o', '/dev/null');
	if ($rc == 0) { $ready = 1; last; }
	select(undef, undef, undef, 0.1);
}
ok($ready, 'pgbouncer accepts connections in transaction pooling mode');

my $a = client();
my $b = client();

my $who = 'SELECT pg_backend_pid(), coalesce(um_current_user_id()::text, \'nobody\'), '
  . 'coalesce((SELECT string_agg(body, \',\' ORDER BY body) FROM notes), \'-\');';

my ($pid_a, $user_a, $notes_a) = split /\|/,
  run_sql($a, "BEGIN; SELECT um_begin('$token_dave') \\g /dev/null\n$who\nCOMMIT;");
is("$user_a|$notes_a", '1|acme note', 'client A acts as dave and sees acme\'s rows');

my ($pid_b, $user_b, $notes_b) = split /\|/, run_sql($b, "BEGIN; $who COMMIT;");
is($pid_b, $pid_a, 'client B gets the very same server connection');
is("$user_b|$notes_b", 'nobody|-', 'and inherits no identity and no rows from A');

($pid_b, $user_b, $notes_b) = split /\|/,
  run_sql($b, "BEGIN; SELECT um_begin('$token_carol') \\g /dev/null\n$who\nCOMMIT;");
is("$user_b|$notes_b", '2|globex note', 'client B acts as carol and sees globex\'s rows');

($pid_a, $user_a, $notes_a) = split /\|/, run_sql($a, "BEGIN; $who COMMIT;");
is("$pid_a|$user_a|$notes_a", "$pid_b|nobody|-", 'A\'s next transaction on that connection sees nobody, not carol');

# an autocommit um_begin lasts one statement (with a warning)
run_sql($a, "SELECT um_begin('$token_dave') \\g /dev/null");
like($a->{err}, qr/lasts only for this statement/, 'um_begin outside a transaction block warns');
($pid_b, $user_b, $notes_b) = split /\|/, run_sql($b, $who);
is("$user_b|$notes_b", 'nobody|-', 'and the next statement, from the other client, sees nobody');

# a failed transaction
run_sql($a, "BEGIN; SELECT um_begin('$token_dave') \\g /dev/null\nSELECT 1/0;\nROLLBACK;");
($pid_b, $user_b, $notes_b) = split /\|/, run_sql($b, "BEGIN; $who COMMIT;");
is("$user_b|$notes_b", 'nobody|-', 'a rolled-back failed transaction leaves nobody behind');

# many interleaved rounds: each transaction sees its own client's identity only
my $wrong = 0;
for my $round (1 .. 25)
{
	for my $c ([ $a, $token_dave, '1|acme note' ], [ $b, $token_carol, '2|globex note' ])
	{
		my ($cl, $tok, $want) = @$c;
		my (undef, $u0) = split /\|/, run_sql($cl, "BEGIN; $who");
		$wrong++ if $u0 ne 'nobody';
		my (undef, $u, $n) = split /\|/,
		  run_sql($cl, "SELECT um_begin('$tok') \\g /dev/null\n$who\nCOMMIT;");
		$wrong++ if "$u|$n" ne $want;
	}
}
is($wrong, 0, '25 interleaved rounds of two clients on one server connection: no identity leaked');

for my $c ($a, $b)
{
	$c->{in} .= "\\q\n";
	$c->{h}->finish;
}

# DISCARD ALL, which poolers send between session-pooled clients
my ($out, $err) = ('', '');
IPC::Run::run([ 'psql', '-XAtq', '-h', $socket_dir, '-p', $pg_port, '-d', 'postgres',
		'-c', 'SELECT um_act_as(1)', '-c', 'DISCARD ALL', '-c', 'SELECT um_current_user_id() IS NULL' ],
	'>', \$out, '2>', \$err);
like($out, qr/^t$/m, 'after DISCARD ALL nobody is acting');

# the setting that carries the identity to parallel workers cannot be forged,
# not even as a placeholder set before um is loaded in a fresh session
$node->safe_psql('postgres', q{CREATE TABLE big AS SELECT g FROM generate_series(1, 100000) g; ANALYZE big; GRANT SELECT ON big TO app;});
($out, $err) = ('', '');
IPC::Run::run([ 'psql', '-XAtq', '-h', $socket_dir, '-p', $pg_port, '-U', 'app', '-d', 'postgres',
		'-c', "SET um.acting_identity = '1'", '-c', 'SET parallel_setup_cost = 0', '-c', 'SET parallel_tuple_cost = 0',
		'-c', 'SET min_parallel_table_scan_size = 0',
		'-c', 'SELECT count(*) FILTER (WHERE um_current_user_id() IS NOT NULL) FROM big' ],
	'>', \$out, '2>', \$err);
like($out, qr/^0$/m, 'a placeholder um.acting_identity set before um loads reaches no parallel worker');

$bouncer->kill_kill;
undef $bouncer;
$node->stop;
done_testing();
