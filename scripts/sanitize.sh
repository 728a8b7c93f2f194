#!/usr/bin/env bash
# The whole test suite under AddressSanitizer + UndefinedBehaviorSanitizer (CPU build, no CUDA),
# in build-asan/. Run by CI after scripts/test.sh. libtorch, Box2D and FFmpeg are not
# instrumented; reports from inside them are suppressed only through tests/sanitizers/*.supp,
# each entry with the reason beside it.
#
#   scripts/sanitize.sh                 # build (incremental) + ctest
#   scripts/sanitize.sh -R Npy          # extra arguments go to ctest
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
supp="$root/tests/sanitizers"
export ASAN_OPTIONS="detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:suppressions=$supp/ubsan.supp"
NPE_BUILD_DIR="$root/build-asan" NPE_BUILD_TYPE=Release \
  NPE_CMAKE_ARGS="-DNPE_SANITIZE=ON -DNPE_FORCE_NO_CUDA=ON ${NPE_CMAKE_ARGS:-}" "$root/scripts/setup.sh"
ctest --test-dir "$root/build-asan" --output-on-failure --parallel "$(nproc)" "$@"
