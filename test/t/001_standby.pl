# test/t/001_standby.pl: the evaluator on a hot standby.
#
# A streaming standby answers um_has_permission, the companions,
# um_act_as and um_begin (with a token issued on the primary) read-only, and a
# revocation, a suspension and a membership removal committed on the primary
# (directly, and through the lifecycle functions for a session-token user)
# reach a standby backend that had cached the old answer, once replay has
# passed the commit (the cache's invalidation travels in the WAL with the
# commit record).  The long-lived standby session is shown to have answered
# from its cache before each change (its hits rise and its misses do not on a
# repeated check) and to have received the change (its invalidations counter
# rises), and every answer that depends on the change (checks, scoped checks,
# um_permitted_orgs, um_permitted_scopes, a protected table read through
# um_act_as, um_begin after a logout or a suspension) is checked there.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
# the standby inherits this: um.cache_activity shows every standby backend
$primary->append_conf('postgresql.conf', "shared_preload_libraries = 'um'");
$primary->start;
$primary->safe_psql('postgres', q{
  CREATE EXTENSION um CASCADE;
  SELECT um_create_user('ada@example.com');
  SELECT um_create_user('dave@example.com');
  SELECT um_create_organization('acme', 'Acme', 1);
  SELECT um_add_member(1, 2);
  SELECT um_register_permission('invoice:read');
  SELECT um_register_permission('report:read');
  INSERT INTO um.roles (org_id, name) VALUES (1, 'Clerk'), (1, 'Reporter');
  INSERT INTO um.role_permissions (org_id, role_id, permission) SELECT 1, id, 'invoice:read' FROM um.roles WHERE name = 'Clerk';
  INSERT INTO um.role_permissions (org_id, role_id, permission) SELECT 1, id, 'report:read' FROM um.roles WHERE name = 'Reporter';
  INSERT INTO um.grants (org_id, role_id, user_id) SELECT 1, id, 2 FROM um.roles WHERE name = 'Clerk';
  -- a scope tree: project Apollo with environment prod below it, and project Zeus
  INSERT INTO um.scopes (org_id, kind, name) VALUES (1, 'project', 'Apollo'), (1, 'project', 'Zeus');
  INSERT INTO um.scopes (org_id, parent_id, kind, name) SELECT 1, id, 'environment', 'prod' FROM um.scopes WHERE name = 'Apollo';
  -- dave may read reports on Apollo (and so on prod), not on Zeus nor organization-wide
  INSERT INTO um.grants (org_id, role_id, user_id, scope_id)
    SELECT 1, r.id, 2, s.id FROM um.roles r, um.scopes s WHERE r.name = 'Reporter' AND s.name = 'Apollo';
  -- a protected table, read by an application role acting for a user
  CREATE TABLE invoices (id bigint PRIMARY KEY, org_id bigint NOT NULL, amount numeric NOT NULL);
  CREATE INDEX ON invoices (org_id);
  INSERT INTO invoices SELECT g, CASE WHEN g % 2 = 0 THEN 1 ELSE 2 END, g FROM generate_series(1, 100) g;
  SELECT um_create_organization('other', 'Other', 1);
  SELECT um_protect_table('invoices', 'org_id', 'invoice');
  CREATE ROLE app;
  GRANT SELECT ON invoices TO app;
  GRANT EXECUTE ON FUNCTION um_act_as(bigint) TO app;
});
my ($apollo, $zeus, $prod) = split /\|/, $primary->safe_psql('postgres',
  q{SELECT string_agg(id::text, '|' ORDER BY array_position(ARRAY['Apollo', 'Zeus', 'prod'], name)) FROM um.scopes});
$primary->backup('base');

my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->start;
$primary->wait_for_catchup($standby);

is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'the standby is in recovery');

# one long-lived standby session, whose cache stays warm between the steps
# (errors do not end it: some steps expect one)
my $session = $standby->background_psql('postgres', on_error_stop => 0);
is($session->query_safe(q{SELECT um_has_permission(2, 'invoice:read', 1), um_has_permission(2, 'org:read', 1)}),
   't|t', 'a standby answers checks (nothing on the read path writes)');
is($session->query_safe(q{SELECT um_permitted_orgs(2, 'invoice:read')}), '{1}', 'and the companions');
like($session->query_safe(q{BEGIN; SELECT um_act_as(2); SELECT um_has_permission('invoice:read', 1); COMMIT;}),
   qr/^\s*t$/, 'um_act_as works on a standby');
is($session->query_safe(q{SELECT um_current_user_id() IS NULL}), 't', 'and ends with the transaction');

# everything of dave's that the changes below affect, in the warm session:
# invoice:read (organization-wide grant), um_permitted_orgs, report:read on a
# scope node (grant on its parent), um_permitted_scopes, and the protected
# table read by the application role acting as dave
my $dave_checks = qq{SELECT um_has_permission(2, 'invoice:read', 1), um_permitted_orgs(2, 'invoice:read'),
  um_has_permission(2, 'report:read', 1, $prod), um_has_permission(2, 'report:read', 1, $zeus),
  um_permitted_scopes(2, 'report:read', 1)};
my $dave_read = q{SET ROLE app; BEGIN; SELECT um_act_as(2) \\g /dev/null
SELECT count(*) FROM invoices; COMMIT; RESET ROLE;};
my $granted = "t|{1}|t|f|{" . join(',', sort { $a <=> $b } ($apollo, $prod)) . "}";
my $denied = 'f|{}|f|f|{}';

sub cache_stats
{
	return split /\|/, $session->query_safe(q{SELECT hits, misses, invalidations FROM um_cache_stats()});
}

# Asserts that the warm session gives $want_checks and $want_rows, and that
# it answers them from its cache: asked again, only hits rise.  Returns the
# invalidations counter, read after that.
sub warm_answers
{
	my ($want_checks, $want_rows, $what) = @_;
	is($session->query_safe($dave_checks), $want_checks, "$what: checks and companions in the warm standby backend");
	is($session->query_safe($dave_read), $want_rows, "$what: the protected table read in the warm standby backend");
	my ($hits, $misses) = cache_stats();
	$session->query_safe($dave_checks);
	$session->query_safe($dave_read);
	my ($hits2, $misses2, $inval) = cache_stats();
	ok($hits2 > $hits && $misses2 == $misses,
	   "$what: asked again, the warm backend answers from its cache (hits $hits -> $hits2, misses $misses -> $misses2)");
	return $inval;
}

# the warm backend's invalidations counter rose past the value read before the change
sub invalidated
{
	my ($before, $what) = @_;
	my (undef, undef, $after) = cache_stats();
	ok($after > $before, "$what: the warm standby backend received the invalidation ($before -> $after)");
}

my $inval = warm_answers($granted, '50', 'before the revocation');
$primary->safe_psql('postgres', q{DELETE FROM um.grants});
$primary->wait_for_catchup($standby);
is($session->query_safe(q{SELECT um_has_permission(2, 'invoice:read', 1), um_has_permission(2, 'org:read', 1)}),
   'f|t', 'a revocation committed on the primary reaches the warm standby backend after replay');
is($session->query_safe($dave_checks), $denied,
   'the revocation reaches um_permitted_orgs, scoped checks and um_permitted_scopes in the warm standby backend');
is($session->query_safe($dave_read), '0', 'and the protected table read there through um_act_as');
invalidated($inval, 'the revocation');

# the grants again, so that a suspension and a membership removal have something to take away
$primary->safe_psql('postgres', qq{
  INSERT INTO um.grants (org_id, role_id, user_id) SELECT 1, id, 2 FROM um.roles WHERE name = 'Clerk';
  INSERT INTO um.grants (org_id, role_id, user_id, scope_id) SELECT 1, id, 2, $apollo FROM um.roles WHERE name = 'Reporter';
});
$primary->wait_for_catchup($standby);
$inval = warm_answers($granted, '50', 'grants made again on the primary');

$primary->safe_psql('postgres', q{UPDATE um.users SET status = 'suspended' WHERE id = 2});
$primary->wait_for_catchup($standby);
is($session->query_safe(q{SELECT um_has_permission(2, 'org:read', 1)}), 'f', 'so does a suspension');
is($session->query_safe($dave_checks), $denied, 'the suspension reaches the companions and scoped checks in the warm standby backend');
is($session->query_safe($dave_read), '0', 'and the protected table read there');
invalidated($inval, 'the suspension');

$primary->safe_psql('postgres', q{UPDATE um.users SET status = 'active' WHERE id = 2});
$primary->wait_for_catchup($standby);
is($session->query_safe(q{SELECT um_has_permission(2, 'org:read', 1)}), 't', 'and the reactivation');
$inval = warm_answers($granted, '50', 'after the reactivation');

$primary->safe_psql('postgres', q{DELETE FROM um.memberships WHERE user_id = 2});
$primary->wait_for_catchup($standby);
is($session->query_safe(q{SELECT um_has_permission(2, 'org:read', 1)}), 'f', 'and a membership removal');
is($session->query_safe($dave_checks), $denied, 'the membership removal reaches the companions and scoped checks in the warm standby backend');
is($session->query_safe($dave_read), '0', 'and the protected table read there');
invalidated($inval, 'the membership removal');

# Runs $sql in the warm session expecting an error; returns the error text and
# leaves the session usable.
sub warm_error
{
	my ($sql) = @_;
	my (undef, $failed) = $session->query($sql);
	my $err = $session->{stderr};
	$session->{stderr} = '';
	return $failed ? $err : '(no error)';
}

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
is($session->query_safe(qq{BEGIN; SELECT um_begin('$token'); SELECT um_has_permission('org:read', 1); COMMIT;}),
   "1\nt", 'and again in the same backend');
# a session last used long ago: on the primary um_begin would record the
# use; on the standby it must only read
$primary->safe_psql('postgres', q{UPDATE um.sessions SET created_at = now() - interval '1 hour'; UPDATE um.session_activity SET last_seen_at = now() - interval '1 hour'});
$primary->wait_for_catchup($standby);
is($session->query_safe(qq{BEGIN; SELECT um_begin('$token'); COMMIT;}), "1",
   'um_begin of a session unused for an hour works on the standby, writing nothing there');
is($primary->safe_psql('postgres', q{SELECT count(*) FROM um.session_activity WHERE last_seen_at > now() - interval '1 minute'}), '0',
   'so its last use is not recorded (the standby cannot write)');
$primary->safe_psql('postgres', qq{BEGIN; SELECT um_begin('$token'); COMMIT;});
is($primary->safe_psql('postgres', q{SELECT count(*) FROM um.session_activity WHERE last_seen_at > now() - interval '1 minute'}), '1',
   'the same on the primary records it');
my ($rc, $out, $err) = $standby->psql('postgres', q{SELECT um_login('ada@example.com', 'password-of-ada')});
like($err, qr/cannot log in on a hot standby/, 'logging in needs the primary, and says so');
$primary->safe_psql('postgres', qq{SELECT um_logout('$token')});
$primary->wait_for_catchup($standby);
($rc, $out, $err) = $standby->psql('postgres', qq{SELECT um_begin('$token')});
like($err, qr/session token is not valid/, 'a logout on the primary ends the session on the standby');
like(warm_error(qq{BEGIN; SELECT um_begin('$token'); ROLLBACK;}), qr/session token is not valid/,
   'and in the warm standby backend that had used the token');
is($session->query_safe(q{SELECT um_current_user_id() IS NULL}), 't', 'which goes on with nobody acting');

# a protected table on the standby: the application role acting as a user
# sees its rows only.  Ada is Root of acme and other (Root holds every
# permission, invoice:read too); ten rows belong to an organization she is
# not in.
$primary->safe_psql('postgres', q{
  INSERT INTO invoices SELECT g, 3, g FROM generate_series(101, 110) g;
});
$primary->wait_for_catchup($standby);
is($standby->safe_psql('postgres', q{SET ROLE app; BEGIN; SELECT um_act_as(1) \\g /dev/null
SELECT count(*) FILTER (WHERE org_id = 1) || '/' || count(*) FROM invoices; COMMIT;}), '50/100',
   'a protected table on the standby shows the acting user\'s rows only');
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
my $carol_checks = qq{BEGIN; SELECT um_begin('$carol') IS NOT NULL; SELECT um_has_permission('org:read', 1), um_permitted_orgs('org:read'); COMMIT;};
is($session->query_safe($carol_checks), "t\nt|{1}", 'carol, a Member now, may read the organization in the warm standby backend');
my ($hits, $misses) = cache_stats();
is($session->query_safe($carol_checks), "t\nt|{1}", 'asked again');
my ($hits2, $misses2);
($hits2, $misses2, $inval) = cache_stats();
ok($hits2 > $hits && $misses2 == $misses, "answered from the warm backend's cache (hits $hits -> $hits2, misses $misses -> $misses2)");
$primary->safe_psql('postgres', q{SELECT um_suspend_user(3)});
$primary->wait_for_catchup($standby);
my ($src, $sout, $serr) = $standby->psql('postgres', qq{SELECT um_begin('$carol')});
like($serr, qr/session token is not valid|suspended/, 'um_suspend_user on the primary ends the session on the standby');
like(warm_error(qq{BEGIN; SELECT um_begin('$carol'); ROLLBACK;}), qr/session token is not valid|suspended/,
   'and in the warm standby backend that had used the token');
is($session->query_safe(q{SELECT um_has_permission(3, 'org:read', 1), um_permitted_orgs(3, 'org:read')}), 'f|{}',
   'where the suspended user\'s cached permissions are gone too');
invalidated($inval, 'the suspension through um_suspend_user');

my $stats = $session->query_safe(q{SELECT invalidations > 0 FROM um_cache_stats()});
is($stats, 't', 'the standby backend received the invalidations');

# monitoring a standby: another standby connection sees the warm backend's figures
my $warm_pid = $session->query_safe(q{SELECT pg_backend_pid()});
my ($own_hits, $own_inval) = split /\|/, $session->query_safe(q{SELECT hits, invalidations FROM um_cache_stats()});
is($standby->safe_psql('postgres', qq{SELECT hits >= $own_hits AND hits > 0, invalidations = $own_inval, is_mine
                                         FROM um.cache_activity WHERE pid = $warm_pid}),
   't|t|f', 'um.cache_activity on the standby shows the warm backend\'s hits and invalidations to another session');
$session->quit;

done_testing();
