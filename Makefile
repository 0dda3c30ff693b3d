# um: multi-tenant user management enforced by PostgreSQL (PGXS build).
#
#   make                 build
#   make install         install into the server pg_config points at
#   make PG_CONFIG=/usr/lib/postgresql/16/bin/pg_config   another server
#
# The install script of the version in development, sql/um--$(EXTVERSION).sql,
# is assembled from sql/install/*.sql; it is the only generated script.  When a
# version is released its install script is committed as it is and never
# edited again.  Each change of the version in development is written twice:
# in its part under sql/install/ and, by hand, in the committed delta
# sql/um--A--B.sql from the last release (test/shell/upgrade.sh checks that
# the two give the same database).

EXTENSION   = um
EXTVERSION  = $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" um.control)

MODULE_big  = um
OBJS        = src/um.o src/permname.o src/identity.o src/cache.o src/evaluator.o src/support.o src/session.o src/login.o src/audit_writer.o src/protect.o src/lifecycle.o src/monitor.o src/owner.o src/reference.o src/guards.o src/scan.o src/planner.o src/totp.o

DATA_built  = sql/um--$(EXTVERSION).sql
DATA        = $(filter-out $(DATA_built),$(wildcard sql/um--*.sql))

# Tests live under test/ where PGXS looks with --inputdir=test: pg_regress
# reads test/sql/<t>.sql and compares with test/expected/<t>.out;
# pg_isolation_regress reads test/specs/<t>.spec (expected output also in
# test/expected).  Against a running server where um is installed (libpq's
# PGHOST/PGPORT/PGUSER say which):
#   make installcheck          regress, isolation and pgTAP
#   make prove_installcheck    the TAP tests (they start clusters of their own)
# `bash test/run.sh` builds, installs and runs every suite on a throwaway cluster.
REGRESS        = install errors rls_plan rls_estimates rls_attack lifecycle_export cache_scans
REGRESS_OPTS   = --inputdir=test
ISOLATION      = $(basename $(notdir $(wildcard test/specs/*.spec)))
ISOLATION_OPTS = --inputdir=test

EXTRA_CLEAN  = test/fuzz/permname_fuzz

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
# PostgreSQL's headers are system headers to us: -Wextra applies to our code only.
PG_CPPFLAGS = -isystem $(shell $(PG_CONFIG) --includedir-server)
PG_CFLAGS   = -Wall -Wextra
include $(PGXS)

# pgTAP (test/pgtap/*.sql, one database each) after PGXS's own suites
installcheck: installcheck-pgtap
.PHONY: installcheck-pgtap prove_installcheck
installcheck-pgtap:
	bash test/pgtap.sh

prove_installcheck:
	bash test/prove.sh

sql/um--$(EXTVERSION).sql: $(sort $(wildcard sql/install/*.sql)) um.control
	cat $(sort $(wildcard sql/install/*.sql)) > $@

# Benchmarks on a throwaway cluster: make bench [USERS=100000 ORGS=10000 MEMBERSHIPS=3 RLS_ROWS=2000000 CACHE_MEMORY=1GB]
.PHONY: bench
bench:
	USERS=$(or $(USERS),100000) ORGS=$(or $(ORGS),10000) bash tools/bench.sh

# Readers under writes in other tenants: make bench-writes [RLS_ROWS=200000 DURATION=20 CLIENTS=8]
.PHONY: bench-writes
bench-writes:
	bash tools/bench_writes.sh

# Load from a real client on a throwaway cluster: make load [DURATION=30 CLIENTS=8]
.PHONY: load
load:
	DURATION=$(or $(DURATION),30) CLIENTS=$(or $(CLIENTS),8) bash tools/load.sh

# libFuzzer on the permission-name parser (clang, as PGXS found it, with its
# fuzzer runtime); FUZZ_SECONDS=60 by default
FUZZ_SECONDS ?= 60
.PHONY: fuzz
fuzz:
	$(CLANG) -g -O1 -fsanitize=fuzzer,address,undefined -DUM_LIBFUZZER -I src \
	  -isystem $(shell $(PG_CONFIG) --includedir-server) test/fuzz/permname_fuzz.c -o test/fuzz/permname_fuzz
	test/fuzz/permname_fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=300

# The lint suite of test/run.sh: C without warnings under -Wall -Wextra
# (PostgreSQL's headers aside), and cppcheck.
.PHONY: lint lint-c cppcheck
lint: lint-c cppcheck
lint-c:
	$(MAKE) clean >/dev/null
	$(MAKE) PG_CFLAGS="-Wall -Wextra -Werror"
cppcheck:
	cppcheck --error-exitcode=1 --enable=warning,style,performance,portability \
	  --inline-suppr --quiet --std=c99 -I src src
