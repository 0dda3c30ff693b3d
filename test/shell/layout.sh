#!/usr/bin/env bash
# test/shell/layout.sh: the rules of the tree that a review would otherwise
# have to remember.  Released scripts are never edited; only the version in
# development is assembled; every change of user id in the C is made by the
# one helper (src/owner.c); no install part grows past what one reads at once.
# Needs no database.  Prints TAP.
set -uo pipefail
cd "$(dirname "$0")/../.."
n=0
ok()     { n=$((n+1)); echo "ok $n - $1"; }
not_ok() { n=$((n+1)); echo "not ok $n - $1"; }
check()  { if eval "$2"; then ok "$1"; else not_ok "$1"; [ -n "${3:-}" ] && echo "$3" | sed 's/^/# /'; fi; return 0; }
echo "1..8"

# sha256 of each released script, recorded when it was released
declare -A released=(
  [sql/um--0.1.sql]=9c4b1eb213024f18cdff590ec1c59f53715d74bff58b85f6d609330f58b80329
  [sql/um--0.2.sql]=2147c212136fba3080813f99026c4c05d55eb0d4edab516fcdf2667c3d8aaccc
  [sql/um--0.1--0.2.sql]=3c671d6e708970682935b00844bcb2326d0abbedc43b41145459c58a079ebdab
)
changed=""
for f in "${!released[@]}"; do
  [ "$(sha256sum "$f" 2>/dev/null | cut -d' ' -f1)" = "${released[$f]}" ] || changed="$changed $f"
done
check "released scripts are as released (${#released[@]}: never edited)" '[ -z "$changed" ]' "changed:$changed"

current=$(sed -n "s/^default_version *= *'\(.*\)'/\1/p" um.control)
tracked=$(git ls-files "sql/um--$current.sql" 2>/dev/null)
built=$(sed -n 's/^DATA_built *= *//p' Makefile)
check "only the version in development ($current) is assembled, and it is not committed" \
  '[ "$built" = "sql/um--\$(EXTVERSION).sql" ] && [ -z "$tracked" ]' "DATA_built = $built; tracked: $tracked"

last=$(ls sql/um--*.sql | sed -n 's#^sql/um--\([0-9.]*\)\.sql$#\1#p' | grep -vx "$current" | sort -V | tail -1)
check "the delta from the last release ($last) to $current is a committed file" \
  '[ -n "$(git ls-files "sql/um--$last--$current.sql")" ]' "missing: sql/um--$last--$current.sql"

others=$(grep -n 'SetUserIdAndSecContext' src/*.c | grep -v '^src/owner\.c:')
check "every change of user id in the C goes through src/owner.c" '[ -z "$others" ]' "$others"

long=$(wc -l sql/install/*.sql | awk '$2 != "total" && $1 > 650 { print $2 " " $1 }')
check "no sql/install part is longer than 650 lines" '[ -z "$long" ]' "$long"

dups=$(ls sql/install/*.sql | sed 's#.*/\([0-9]*\)_.*#\1#' | sort | uniq -d)
check "no two sql/install parts share a number" '[ -z "$dups" ]' "shared: $dups"

ic=$(make -n installcheck 2>/dev/null)
check "make installcheck runs pg_regress and pg_isolation_regress on test/ and the pgTAP suite against the server libpq names" \
  'grep -q "pg_regress.*--inputdir=test" <<<"$ic" && grep -q "pg_isolation_regress.*--inputdir=test" <<<"$ic" && grep -q "test/pgtap.sh" <<<"$ic"' "$ic"
pic=$(make -n prove_installcheck 2>/dev/null)
check "make prove_installcheck runs the TAP tests through test/prove.sh" '[ "$pic" = "bash test/prove.sh" ] && [ -n "$(ls test/t/*.pl)" ]' "$pic"
