#!/usr/bin/env bash
# Runs the fuzz targets for longer than CTest does, each for RUNS inputs (default 1,000,000),
# one after the other, under ASan + UBSan: a crash, a sanitizer report, a leak or an input
# slower than 10 s stops the target and leaves the input in fuzz-work/<target>/. The corpora
# grow in fuzz-work/ between runs. Builds what is missing first (scripts/build.sh).
# Usage: scripts/fuzz.sh [RUNS] [bundle|catalog|data]...   (all three when none is named)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-1000000}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(bundle catalog data)
build=${BUILD_DIR:-build}
work=${FUZZ_WORK:-fuzz-work}
scripts/build.sh bundle_fuzz catalog_fuzz bundle_fuzz_seeds data_fuzz > /dev/null
status=0
for target in "${targets[@]}"; do
  dir="$work/$target"
  mkdir -p "$dir/corpus"
  start=$(date +%s)
  case "$target" in
    bundle)
      "$build/fuzz/bundle_fuzz_seeds" "$dir/seeds"
      "$build/fuzz/bin/bundle_fuzz" -runs="$runs" -max_len=32768 -timeout=10 -rss_limit_mb=2048 \
        -dict=fuzz/bundle.dict -print_final_stats=1 -artifact_prefix="$dir/" \
        "$dir/corpus" "$dir/seeds" fuzz/regressions > "$dir/log" 2>&1 || status=1
      ;;
    catalog)
      "$build/fuzz/bin/catalog_fuzz" -runs="$runs" -max_len=256 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$dir/" "$dir/corpus" > "$dir/log" 2>&1 || status=1
      ;;
    data)
      ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
        "$build/tests/data_fuzz" --runs "$runs" --seed "${SEED:-1}" --dir "$dir" \
        > "$dir/log" 2>&1 || status=1
      ;;
    *)
      echo "fuzz.sh: unknown target '$target' (bundle, catalog or data)" >&2
      exit 2
      ;;
  esac
  echo "$target: $(( $(date +%s) - start )) s; $(grep -E 'number_of_executed_units|^data_fuzz:|ERROR|runtime error' "$dir/log" | head -3 | tr '\n' ' ')"
done
exit $status
