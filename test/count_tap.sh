#!/usr/bin/env bash
# test/count_tap.sh FILE: print "passed failed" for one TAP stream (ok / not ok
# lines; tests planned but never run count as failed, and so does a missing
# or wrong plan).
awk '
  /^[[:space:]]*1\.\.[0-9]+/ { sub(/^[[:space:]]*1\.\./, ""); plan = $0 + 0; has_plan = 1; next }
  /^[[:space:]]*ok [0-9]+/ { ok++; next }
  /^[[:space:]]*not ok [0-9]+/ { if ($0 ~ /# TODO/) ok++; else bad++; next }
  END {
    ran = ok + bad
    if (!has_plan) bad++
    else if (plan > ran) bad += plan - ran
    else if (plan < ran) bad++                 # ran more than planned: the plan is wrong
    printf "%d %d\n", ok, bad
  }' "$1"
