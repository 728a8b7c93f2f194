#!/usr/bin/env bash
# Runs randomised tests over fresh seeds: CI and ctest use one fixed seed (tests/test_util.cpp),
# so a test fails there only for a reason; this sweep looks for the seeds on which a test fails.
# Run it before a stop over the tests you touched (N >= 200), fix what fails at its cause, and
# keep the failing seed as a regression case (a test that runs with that NPE_TEST_SEED).
#
#   scripts/seed_sweep.sh N BINARY [GTEST_FILTER]     e.g. scripts/seed_sweep.sh 200 gpu_tests 'DiffSim.*'
#
# BINARY is a test executable in build/bin. Each seed runs in its own process (NPE_TEST_SEED=<seed>
# replays every draw of that process, rapidcheck's included), nproc at a time. Prints each failing
# seed with the command that replays it, then "N passed, M failed"; exits 1 when any failed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ $# -lt 2 ] || ! [[ "$1" =~ ^[0-9]+$ ]]; then
  echo "usage: scripts/seed_sweep.sh N BINARY [GTEST_FILTER]" >&2; exit 2
fi
n="$1"; bin="$root/build/bin/$2"; filter="${3:-*}"
[ -x "$bin" ] || { echo "seed_sweep: $bin: no such test executable (build first: scripts/setup.sh)" >&2; exit 2; }
logs="$(mktemp -d)"; trap 'rm -rf "$logs"' EXIT
# fresh 64-bit seeds from the kernel, one per run
seeds=(); for ((i = 0; i < n; ++i)); do seeds+=("$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')"); done
run_one() {
  local seed="$1"
  if NPE_TEST_SEED="$seed" "$bin" --gtest_filter="$filter" > "$logs/$seed.log" 2>&1; then rm -f "$logs/$seed.log"; fi
}
export -f run_one; export bin filter logs
printf '%s\n' "${seeds[@]}" | xargs -P "$(nproc)" -I{} bash -c 'run_one {}'
failed=0
for f in "$logs"/*.log; do
  [ -e "$f" ] || continue
  seed="$(basename "$f" .log)"; failed=$((failed + 1))
  echo "FAILED seed $seed: NPE_TEST_SEED=$seed build/bin/$2 --gtest_filter='$filter'"
  grep -E '^\[  FAILED  \]|Failure$' "$f" | head -5 | sed 's/^/    /'
done
echo "seed_sweep: $2 '$filter': $((n - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
