#!/usr/bin/env bash
# test/shell/docs.sh: the documentation keeps up with the code.  Fails when
# a public function declared in sql/install/*.sql (CREATE FUNCTION
# @extschema@.um_<name>) or a public view (CREATE VIEW um.<name>) has no
# heading in doc/reference.md, or doc/reference.md has a heading for a
# function that no longer exists; when a UM SQLSTATE used in sql/install/*.sql
# or src/*.[ch] has no row in doc/errors.md; when README.md is longer than
# 350 lines or lacks the commands `bash tools/demo.sh` and `bash test/run.sh`;
# when a file or heading README.md or doc/*.md links to does not exist.
#
# Needs no database.  Runs on the repository it is part of (test/run.sh runs
# it from the root; `bash test/shell/docs.sh` works too); prints TAP and
# exits non-zero when a check fails.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1

n=0
bad=0
ok()     { n=$((n+1)); echo "ok $n - $1"; }
not_ok() { n=$((n+1)); bad=$((bad+1)); echo "not ok $n - $1"; }
# check DESCRIPTION PROBLEMS: ok when PROBLEMS is empty, else not ok with them as diagnostics
check()  { if [ -z "$2" ]; then ok "$1"; else not_ok "$1"; printf '%s\n' "$2" | sed 's/^/#   /'; fi; }
echo "1..9"

ref=doc/reference.md
errs=doc/errors.md
readme=README.md

# headings (#, ##, ...) of a Markdown file, outside fenced code blocks
headings() {
  [ -f "$1" ] || return 0
  awk '/^[[:space:]]*```/ { fence = !fence; next } !fence && /^#+[[:space:]]/' "$1"
}

# 1. every public function has a heading in doc/reference.md
functions=$(cat sql/install/*.sql 2>/dev/null \
  | grep -oE 'CREATE[[:space:]]+(OR[[:space:]]+REPLACE[[:space:]]+)?FUNCTION[[:space:]]+@extschema@\.um_[a-z0-9_]+' \
  | sed 's/.*@extschema@\.//' | sort -u)
ref_headings=$(headings "$ref")
missing=""
for f in $functions; do
  grep -qE "(^|[^a-z0-9_])${f}([^a-z0-9_]|$)" <<<"$ref_headings" || missing+="$f"$'\n'
done
[ -n "$functions" ] || missing="no CREATE FUNCTION @extschema@.um_* found in sql/install/*.sql"$'\n'
check "every public function of sql/install has a heading in $ref ($(printf '%s\n' "$functions" | grep -c .) functions)" \
  "$(printf '%s' "$missing" | sed '/^$/d; s/^/no heading: /')"

# 2. every public view in schema um has a heading in doc/reference.md
views=$(cat sql/install/*.sql 2>/dev/null \
  | grep -oE 'CREATE[[:space:]]+(OR[[:space:]]+REPLACE[[:space:]]+)?VIEW[[:space:]]+um\.[a-z0-9_]+' \
  | sed 's/.*[[:space:]]//' | sort -u)
missing=""
for v in $views; do
  grep -qF "$v" <<<"$ref_headings" || missing+="$v"$'\n'
done
check "every view of schema um has a heading in $ref ($(printf '%s\n' "$views" | grep -c .) views)" \
  "$(printf '%s' "$missing" | sed '/^$/d; s/^/no heading: /')"

# 3. doc/reference.md documents no function that does not exist
stale=""
for f in $(printf '%s\n' "$ref_headings" | grep -oE '^#+[[:space:]]+um_[a-z0-9_]+[[:space:]]*$' | sed 's/^#*[[:space:]]*//; s/[[:space:]]*$//' | sort -u); do
  grep -qx "$f" <<<"$functions" || stale+="$f"$'\n'
done
check "$ref has no heading for a function sql/install does not declare" \
  "$(printf '%s' "$stale" | sed '/^$/d; s/^/no such function: /')"

# 4. every UM SQLSTATE of sql/install and src has a row in doc/errors.md
codes=$( {
  cat sql/install/*.sql src/*.c src/*.h 2>/dev/null | grep -oE '(^|[^A-Za-z0-9_])UM[0-9]{3}([^0-9]|$)' | grep -oE 'UM[0-9]{3}'
  cat src/*.c src/*.h 2>/dev/null \
    | grep -oE "MAKE_SQLSTATE\([[:space:]]*'U'[[:space:]]*,[[:space:]]*'M'[[:space:]]*,[[:space:]]*'[0-9A-Z]'[[:space:]]*,[[:space:]]*'[0-9A-Z]'[[:space:]]*,[[:space:]]*'[0-9A-Z]'[[:space:]]*\)" \
    | tr -d " '" | sed -E 's/MAKE_SQLSTATE\(U,M,(.),(.),(.)\)/UM\1\2\3/'
} | sort -u)
missing=""
for c in $codes; do
  grep -qE "^\|[[:space:]]*\`?${c}\`?[[:space:]]*\|" "$errs" 2>/dev/null || missing+="$c"$'\n'
done
[ -n "$codes" ] || missing="no UM SQLSTATE found in sql/install or src"$'\n'
check "every UM SQLSTATE of sql/install and src has a row in $errs ($(printf '%s\n' "$codes" | grep -c .) codes)" \
  "$(printf '%s' "$missing" | sed '/^$/d; s/^/no row: /')"

# 5. README is a front door
lines=$( [ -f "$readme" ] && wc -l < "$readme" || echo missing)
if [ "$lines" = missing ]; then
  check "$readme has at most 350 lines" "$readme does not exist"
elif [ "$lines" -le 350 ]; then
  check "$readme has at most 350 lines ($lines)" ""
else
  check "$readme has at most 350 lines" "it has $lines"
fi

# 6, 7. the two commands a newcomer needs
for cmd in "bash tools/demo.sh" "bash test/run.sh"; do
  if grep -qF "$cmd" "$readme" 2>/dev/null; then
    check "$readme gives the command '$cmd'" ""
  else
    check "$readme gives the command '$cmd'" "not found"
  fi
done

# local link targets of a Markdown file (outside code), "file#anchor" as written
raw_links() {
  awk '/^[[:space:]]*```/ { fence = !fence; next } !fence' "$1" \
    | grep -oE '\]\([^)[:space:]]+\)' | sed -E 's/^\]\(//; s/\)$//' \
    | grep -vE '^(https?|mailto|ftp):' | sort -u
}
# the files they name, anchors cut
links() { raw_links "$1" | sed 's/#.*$//' | grep -v '^$' | sort -u; }
# the anchors a Markdown file's headings make, as GitHub spells them
anchors() {
  headings "$1" | sed -E 's/^#+[[:space:]]+//; s/[[:space:]]+$//' | tr 'A-Z' 'a-z' \
    | LC_ALL=C sed -E 's/[^a-z0-9 _-]//g; s/ /-/g'
}

# 8. every doc file README links to exists
missing=""
doc_links=0
if [ -f "$readme" ]; then
  for l in $(links "$readme"); do
    case "$l" in doc/*|./doc/*) doc_links=$((doc_links+1)) ;; esac
    [ -e "$l" ] || missing+="$l"$'\n'
  done
fi
[ "$doc_links" -gt 0 ] || missing+="README.md links to no file in doc/"$'\n'
check "every file $readme links to exists ($doc_links links into doc/)" \
  "$(printf '%s' "$missing" | sed '/^$/d; s/^/missing: /')"

# 9. every local link of README.md and doc/*.md resolves, anchors included
missing=""
for d in "$readme" doc/*.md; do
  [ -f "$d" ] || continue
  for l in $(raw_links "$d"); do
    file=${l%%#*}
    anchor=""
    case "$l" in *#*) anchor=${l#*#} ;; esac
    if [ -z "$file" ]; then target=$d; else target=$(dirname "$d")/$file; fi
    if [ ! -e "$target" ]; then
      missing+="$d: $l (no such file)"$'\n'
    elif [ -n "$anchor" ] && [ -f "$target" ] && ! grep -qxF "$anchor" <<<"$(anchors "$target")"; then
      missing+="$d: $l (no such heading)"$'\n'
    fi
  done
done
check "every local link of $readme and doc/*.md resolves, anchors included" \
  "$(printf '%s' "$missing" | sed '/^$/d; s/^/missing: /')"
[ "$bad" -eq 0 ]
