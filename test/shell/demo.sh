#!/usr/bin/env bash
# test/shell/demo.sh: README's demo (tools/demo.sh) runs to its end on its
# own throwaway cluster and shows what it promises: everything after the
# migration runs as the backend's role through um's functions, each tenant
# sees only its own invoices (nobody logged in sees none), and every refusal
# comes with its SQLSTATE.  Prints TAP.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
n=0; bad=0
ok()     { n=$((n+1)); echo "ok $n - $1"; }
not_ok() { n=$((n+1)); bad=$((bad+1)); echo "not ok $n - $1"; }
is()     { if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1"; echo "#   got: $2"; echo "#   expected: $3"; fi; }
echo "1..12"

out=$(bash tools/demo.sh </dev/null 2>&1); rc=$?
is "the demo runs to its end" "$rc" "0"
[ "$rc" -eq 0 ] || printf '%s\n' "$out" | tail -20 | sed 's/^/#   /'
# the lines between two markers of the output
section() { awk -v a="$1" -v b="$2" 'index($0, a) { on = 1; next } on && index($0, b) { exit } on' <<<"$out"; }

ada=$(section "-- as Ada" "-- as Bob")
bob=$(section "-- as Bob" "-- with nobody")
is "Ada sees Acme's three invoices" "$(grep -cE 'Initech|Hooli|lunch' <<<"$ada")" "3"
is "and not Globex's" "$(grep -c 'Umbrella' <<<"$ada")" "0"
is "Bob sees Globex's invoice only" "$(grep -cE 'Umbrella' <<<"$bob"),$(grep -cE 'Initech|Hooli|lunch' <<<"$bob")" "1,0"
is "nobody logged in sees no invoice" "$(section "-- with nobody logged in" "== 5." | grep -cE '^ +0$')" "1"
is "a Member's UPDATE changes no row" "$(section "approves an invoice" "-- Dave writes" | grep -cE '^ +0$')" "1"
is "a row into another tenant: 42501" "$(section "writes an invoice into Globex" "-- Dave deletes" | grep -c '42501')" "1"
refusals=$(section "== 5." "== 6.")
is "the refusals' SQLSTATEs, in order" \
  "$(grep -oE '^ (UM[0-9]{3}|[0-9]{5}) ' <<<"$refusals" | tr -d ' ' | tr '\n' ' ')" \
  "42501 UM070 UM073 UM070 UM009 UM070 42501 UM060 "
is "no error escapes the demo's own handling" "$(grep -c '^ERROR' <<<"$out")" "0"
is "the second sign-up for a registered address gets a secret as the first did" "$(grep -cE '^ um_\.\.\.' <<<"$out")" "1"
audit=$(section "== 6." "The demo cluster")
is "Ada reads Acme's audit trail, with the refused organization deletion" "$(grep -c 'organization.delete *| denied' <<<"$audit")" "1"
is "and none of Globex's events" "$(grep -c 'bob@globex' <<<"$audit")" "0"
[ "$bad" -eq 0 ]
