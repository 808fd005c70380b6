#!/usr/bin/env bash
# The layout rules, checked: dependencies between the top-level folders point one way, and no
# source file outside tests/ grows past 600 lines. Exit status 1 with one line per violation.
#
# Folders from the bottom up; a folder may include its own files and those of lower ranks only
# (two folders of one rank stay independent of each other). fuzz/, tests/ and bench/ sit above
# everything and may include anything.
set -euo pipefail
cd "$(dirname "$0")/.."
declare -A rank=(
  [base]=0 [runtime]=1 [datasets]=2 [compress]=2 [models]=3 [trainer]=4 [supernet]=5
  [export]=6 [tools]=7)
max_lines=600
status=0
for folder in "${!rank[@]}"; do
  [ -d "$folder" ] || continue
  while IFS= read -r file; do
    # #include "folder/..." lines: the folder each one reaches into
    while IFS=: read -r line target; do
      [ -n "$target" ] || continue
      to=${target%%/*}
      [ -n "${rank[$to]+x}" ] || continue
      if [ "$to" != "$folder" ] && [ "${rank[$to]}" -ge "${rank[$folder]}" ]; then
        echo "$file:$line: includes $target ($folder/ may not depend on $to/)"
        status=1
      fi
    done < <(grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[^"]*/' "$file" |
             sed -E 's/^([0-9]+):[^"]*"([^"]*)".*/\1:\2/' || true)
  done < <(find "$folder" -type f \( -name '*.cpp' -o -name '*.h' -o -name '*.hpp' -o -name '*.c' \))
done
while IFS= read -r file; do
  lines=$(wc -l < "$file")
  if [ "$lines" -gt "$max_lines" ]; then
    echo "$file: $lines lines (at most $max_lines outside tests/)"
    status=1
  fi
done < <(find . -path ./tests -prune -o -path './build*' -prune -o -path ./.git -prune -o \
           -path ./runs -prune -o -path ./fuzz-work -prune -o -type f \
           \( -name '*.cpp' -o -name '*.h' -o -name '*.hpp' -o -name '*.c' \) -print)
if [ "$status" -eq 0 ]; then echo "layout: ok"; fi
exit "$status"
