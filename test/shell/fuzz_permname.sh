#!/usr/bin/env bash
# test/shell/fuzz_permname.sh: the permission-name parser against random and
# edge-case inputs, under AddressSanitizer and UndefinedBehaviorSanitizer
# (no crash, no read past the input, the same verdict as an independent
# oracle).  Prints TAP.  UM_FUZZ_ITERATIONS and UM_FUZZ_SEED change the run;
# `make fuzz` runs the same harness under libFuzzer.
set -uo pipefail
cd "$(dirname "$0")/../.."
PG_CONFIG=${PG_CONFIG:-pg_config}
work=$(mktemp -d /tmp/um-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
echo "1..2"
if cc -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=all -I src \
     -isystem "$("$PG_CONFIG" --includedir-server)" test/fuzz/permname_fuzz.c -o "$work/fuzz" 2>"$work/build.log"; then
  echo "ok 1 - the fuzz harness builds with ASan and UBSan"
else
  echo "not ok 1 - the fuzz harness builds with ASan and UBSan"; sed 's/^/# /' "$work/build.log"
fi
if [ -x "$work/fuzz" ] && "$work/fuzz" "${UM_FUZZ_ITERATIONS:-1000000}" "${UM_FUZZ_SEED:-20261123}" >"$work/run.log" 2>&1; then
  echo "ok 2 - $(cat "$work/run.log")"
else
  echo "not ok 2 - the parser survives the fuzzer"; sed 's/^/# /' "$work/run.log" 2>/dev/null | head -40
fi
