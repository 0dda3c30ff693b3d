#!/usr/bin/env bash
# test/prove.sh [test/t/NNN.pl ...]: run the TAP tests (PostgreSQL::Test::Cluster)
# with PGXS's prove and Perl modules.  Each test starts clusters of its own
# with the installed server binaries and the installed um, so it needs um
# installed (make install) but no running server.  initdb refuses root: run
# as root, the tests run from a copy owned by the postgres OS user.  Prints
# prove's TAP; exits non-zero when a test failed.
#
#   make prove_installcheck                 every test
#   bash test/prove.sh test/t/004_crash.pl  one test
set -uo pipefail
cd "$(dirname "$0")/.."
PG_CONFIG=${PG_CONFIG:-$(command -v pg_config || echo /usr/lib/postgresql/15/bin/pg_config)}
PGXS_DIR=$(cd "$(dirname "$("$PG_CONFIG" --pgxs)")/../.." && pwd)
BINDIR=$("$PG_CONFIG" --bindir)
tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=(test/t/*.pl)
run=(env PATH="$BINDIR:$PATH" PG_REGRESS="$PGXS_DIR/src/test/regress/pg_regress"
     prove ${PROVE_FLAGS:--v} -I "$PGXS_DIR/src/test/perl")
if [ "$(id -u)" -ne 0 ]; then
  exec "${run[@]}" "${tests[@]}"
fi
dir=$(mktemp -d /tmp/um-prove.XXXXXX)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/test"
cp -r test/t "$dir/test/"
chmod 755 "$dir"
chown -R postgres: "$dir"
(cd "$dir" && runuser -u postgres -- "${run[@]}" "${tests[@]}")
rc=$?
[ $rc -eq 0 ] || cat "$dir"/tmp_check/log/*.log 2>/dev/null | tail -30 >&2
exit $rc
