#!/usr/bin/env bash
# test/run.sh: build um, install it, and run every test suite on a throwaway
# cluster.  Prints one closing line "N passed, N failed" that counts every
# test of every suite, and exits non-zero when anything failed.
#
#   bash test/run.sh            everything
#   UM_TEST_ONLY=pgtap bash test/run.sh    one suite: lint, regress, pgtap, isolation, shell, examples, tap
#   UM_TEST_ONLY=shell,examples bash test/run.sh    several (comma-separated)
#   UM_TEST_SEED=0.123 bash test/run.sh    replay the random differential test with that seed
#   UM_PORT=5499 bash test/run.sh          the throwaway cluster listens on that port
#
# Against a server of your own where um is installed, run the suites with
# make installcheck (regress, isolation, pgTAP) and make prove_installcheck (TAP).
#
# Suites:
#   lint       C compiles with -Wall -Wextra -Werror; cppcheck finds nothing
#   regress    pg_regress: test/sql/<t>.sql against test/expected/<t>.out (REGRESS in Makefile)
#   pgtap      test/pgtap/*.sql through pg_prove, one database per file (test/pgtap.sh)
#   isolation  pg_isolation_regress: test/specs/<t>.spec against test/expected/<t>.out
#   shell      test/shell/*.sh: TAP-printing scripts (dump/restore, fuzzing)
#   examples   test/examples/run.sh: the example backends (examples/python, examples/node)
#              behind pgbouncer, driven over HTTP, on a cluster of its own
#   tap        test/t/*.pl: PostgreSQL::Test::Cluster tests (replicas, crashes,
#              pgbouncer), which start clusters of their own (test/prove.sh)
set -uo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
bash tools/setup.sh || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PGXS_DIR=$(cd "$(dirname "$("$PG_CONFIG" --pgxs)")/../.." && pwd)
BINDIR=$("$PG_CONFIG" --bindir)
export PATH=$BINDIR:$PATH

PASSED=0
FAILED=0
OUT=$(mktemp -d /tmp/um-test.XXXXXX)
chmod 755 "$OUT"
only() { [ -z "${UM_TEST_ONLY:-}" ] || [[ ",$UM_TEST_ONLY," == *",$1,"* ]]; }
note() { printf '\n== %s\n' "$*"; }
tally() { PASSED=$((PASSED + $1)); FAILED=$((FAILED + $2)); printf -- '-- %s: %d passed, %d failed\n' "$3" "$1" "$2"; }

count_tap() { bash test/count_tap.sh "$1"; }

# count_regress FILE: "passed failed" from pg_regress / pg_isolation_regress output.
count_regress() {
  awk '
    / \.\.\. ok / || / \.\.\. ok$/ { ok++; next }
    /\.\.\. FAILED/ || /\.\.\. failed/ { bad++; next }
    END { printf "%d %d\n", ok, bad }' "$1"
}

# ---- build and install -----------------------------------------------------
note "build and install"
if ! { make -s clean && make -s && make -s install; } >"$OUT/build.log" 2>&1; then
  cat "$OUT/build.log"
  tally 0 1 "build"
  echo "$PASSED passed, $FAILED failed"
  exit 1
fi

if only lint; then
  note "lint: -Wall -Wextra -Werror, cppcheck"
  p=0; f=0
  if make -s lint-c >"$OUT/lint-build.log" 2>&1; then
    echo "ok - C compiles without warnings under -Wall -Wextra"; p=$((p+1))
  else
    cat "$OUT/lint-build.log"; echo "not ok - C compiles without warnings under -Wall -Wextra"; f=$((f+1))
  fi
  if make -s cppcheck >"$OUT/cppcheck.log" 2>&1; then
    echo "ok - cppcheck finds nothing"; p=$((p+1))
  else
    cat "$OUT/cppcheck.log"; echo "not ok - cppcheck finds nothing"; f=$((f+1))
  fi
  make -s >/dev/null 2>&1
  tally $p $f "lint"
fi

# ---- a throwaway cluster for everything below ------------------------------
source tools/cluster.sh
UM_KEEP_CLUSTER_LOG=$OUT/server.log
UM_CLEANUP_DIRS=$OUT
cluster_start || { tally 0 1 "cluster start"; echo "$PASSED passed, $FAILED failed"; exit 1; }

if only regress; then
  note "regress (pg_regress)"
  tests=$(sed -n "s/^REGRESS *= *//p" Makefile)
  rm -rf results regression.diffs regression.out
  "$PGXS_DIR/src/test/regress/pg_regress" --inputdir=test \
      --bindir="$BINDIR" --dbname=contrib_regression $tests 2>&1 | tee "$OUT/regress.log"
  [ -f regression.diffs ] && cat regression.diffs
  read -r p f < <(count_regress "$OUT/regress.log")
  [ "$p" -eq 0 ] && [ "$f" -eq 0 ] && f=1
  tally "$p" "$f" "regress"
fi

if only pgtap; then
  note "pgtap (pg_prove)"
  bash test/pgtap.sh | tee "$OUT/pgtap.log"
  read -r p f < <(tail -1 "$OUT/pgtap.log" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p')
  [ -n "${p:-}" ] || { p=0; f=1; }
  tally $p $f "pgtap"
fi

if only isolation && compgen -G "test/specs/*.spec" >/dev/null; then
  note "isolation (pg_isolation_regress)"
  specs=$(ls test/specs/*.spec | xargs -n1 basename | sed 's/\.spec$//' | tr '\n' ' ')
  rm -rf output_iso
  "$PGXS_DIR/src/test/isolation/pg_isolation_regress" --inputdir=test \
      --outputdir=output_iso --bindir="$BINDIR" --dbname=isolation_regression $specs 2>&1 | tee "$OUT/iso.log"
  [ -f output_iso/regression.diffs ] && cat output_iso/regression.diffs
  read -r p f < <(count_regress "$OUT/iso.log")
  [ "$p" -eq 0 ] && [ "$f" -eq 0 ] && f=1
  tally "$p" "$f" "isolation"
fi

if only shell; then
  note "shell (test/shell/*.sh)"
  p=0; f=0
  for t in test/shell/*.sh; do
    [ -e "$t" ] || continue
    bash "$t" >"$OUT/shell.log" 2>&1
    read -r tp tf < <(count_tap "$OUT/shell.log")
    [ "$tf" -gt 0 ] && cat "$OUT/shell.log"
    printf '%-40s %d passed, %d failed\n' "$t" "$tp" "$tf"
    p=$((p + tp)); f=$((f + tf))
  done
  tally $p $f "shell"
fi

cluster_stop

if only examples; then
  note "examples (test/examples/run.sh: the example backends over HTTP)"
  bash test/examples/run.sh >"$OUT/examples.log" 2>&1
  read -r p f < <(count_tap "$OUT/examples.log")
  [ "$f" -gt 0 ] && cat "$OUT/examples.log"
  printf '%-40s %d passed, %d failed\n' "test/examples/run.sh" "$p" "$f"
  tally "$p" "$f" "examples"
fi

if only tap && compgen -G "test/t/*.pl" >/dev/null; then
  note "tap (PostgreSQL::Test::Cluster)"
  p=0; f=0
  for t in test/t/*.pl; do
    bash test/prove.sh "$t" >"$OUT/tap-perl.log" 2>&1
    read -r tp tf < <(count_tap "$OUT/tap-perl.log")
    if [ "$tf" -gt 0 ]; then
      grep -E '^(not ok|#   Failed|Bailout)' "$OUT/tap-perl.log" | head -20
      tail -30 "$OUT/tap-perl.log"
    fi
    printf '%-40s %d passed, %d failed\n' "$t" "$tp" "$tf"
    p=$((p + tp)); f=$((f + tf))
  done
  tally $p $f "tap"
fi

if [ "$FAILED" -gt 0 ] && [ -f "$UM_KEEP_CLUSTER_LOG" ]; then
  note "server log (last 40 lines)"; tail -40 "$UM_KEEP_CLUSTER_LOG"
fi
rm -rf "$OUT"
echo
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
