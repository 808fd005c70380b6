#!/usr/bin/env bash
# Sanitizer runs of the runtime: the runtime-only configuration built twice more,
#   build-asan/  AddressSanitizer + UndefinedBehaviorSanitizer: every runtime test (ops, graph,
#                bundle, hostile inputs, C API, adaptation, CLI, scenarios, fuzz replays);
#   build-tsan/  ThreadSanitizer: the adaptation loop and C API tests (sessions of one model on
#                several threads included), which run threads.
# Any report fails the run (halt_on_error). Usage: scripts/sanitize.sh [asan|tsan]... (both
# when none is named). Runs after scripts/setup.sh; .ci/run calls it after the test command.
set -euo pipefail
cd "$(dirname "$0")/.."
kinds=("$@")
[ ${#kinds[@]} -eq 0 ] && kinds=(asan tsan)

configure() {  # dir, flags
  if [ ! -f "$1/build.ninja" ]; then
    cmake -S . -B "$1" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DADASCALE_RUNTIME_ONLY=ON \
      -DADASCALE_BUILD_BENCH=OFF -DADASCALE_BUILD_FUZZ=OFF -DADASCALE_ADAPT_TSAN_TEST=OFF \
      -DCMAKE_CXX_FLAGS="$2" -DCMAKE_C_FLAGS="$2" -DCMAKE_EXE_LINKER_FLAGS="$2" > /dev/null
  fi
}

for kind in "${kinds[@]}"; do
  case "$kind" in
    asan)
      dir=${ASAN_BUILD_DIR:-build-asan}
      configure "$dir" "-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
      ninja -C "$dir" -j "${JOBS:-2}"
      # the hostile-input tests include allocations that must fail: ASan reports them as errors
      # unless allocator_may_return_null lets them come back as bad_alloc, as in a normal build
      (cd "$dir" && ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1:halt_on_error=1 \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        ctest --output-on-failure -j "${JOBS:-2}" --timeout 900)
      ;;
    tsan)
      dir=${TSAN_BUILD_DIR:-build-tsan}
      configure "$dir" "-fsanitize=thread -fno-omit-frame-pointer"
      ninja -C "$dir" -j "${JOBS:-2}" runtime_test runtime_adapt_test
      (cd "$dir" && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
        ctest --output-on-failure -j "${JOBS:-2}" --timeout 900 \
          -R '^(CApiTest|CApiSession|AdaptCApi|AdaptationLoopTest|SwitchCallback|HostileBundle.Replacing)')
      ;;
    *)
      echo "sanitize.sh: unknown kind '$kind' (asan or tsan)" >&2
      exit 2
      ;;
  esac
done
