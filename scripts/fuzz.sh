#!/usr/bin/env bash
# libFuzzer over every reader of npe's files (tests/fuzz/): builds the harnesses with clang,
# AddressSanitizer and UndefinedBehaviorSanitizer into build-fuzz/, then runs each for SECONDS on
# its corpus (tests/fuzz/corpus/<name>/, read only; new inputs go to build-fuzz/corpus/<name>/).
# Prints a table of executions, coverage (libFuzzer's cov: edges, ft: features) and findings, and
# writes it to build-fuzz/fuzz_summary.md. A finding (crash, sanitizer report, an exception other
# than npe::Error, a hang, memory beyond 2 GB) fails the script; its input is kept as
# build-fuzz/findings/<name>-*.
#
#   scripts/fuzz.sh                # every harness, 30 s each (what CI runs)
#   scripts/fuzz.sh 600 npy csv    # 10 minutes each of the named harnesses
#   FUZZ_JOBS=2 scripts/fuzz.sh 600   # two harnesses at a time
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${1:-30}"; shift || true
all=(npy dataset world_flags metrics_csv model_config checkpoint launch_problem sysid_masses)
names=("$@"); ((${#names[@]})) || names=("${all[@]}")
jobs="${FUZZ_JOBS:-1}"
b="$root/build-fuzz"
say() { printf '[fuzz] %s\n' "$*"; }

# clang and its libFuzzer runtime (Debian 12: clang 14), once.
if ! command -v clang++ >/dev/null || ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  say "installing clang and libclang-rt-14-dev (libFuzzer)"
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends clang libclang-rt-14-dev
fi
"$root/scripts/setup.sh" >/dev/null  # the venv with libtorch (and the main build, unchanged)
torch_prefix="$("$root/.venv/bin/python" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')"
if [ ! -f "$b/CMakeCache.txt" ]; then
  say "configuring $b (clang, -DNPE_FUZZ=ON)"
  CC=clang CXX=clang++ cmake -S "$root" -B "$b" -G Ninja -DCMAKE_BUILD_TYPE=Release -DNPE_FUZZ=ON \
    -DNPE_BUILD_TESTS=OFF -DNPE_WITH_MEDIA=OFF -DNPE_FORCE_NO_CUDA=ON -DCMAKE_PREFIX_PATH="$torch_prefix" >/dev/null
fi
say "building the harnesses"
cmake --build "$b" --target npe_fuzzers --parallel "$(nproc)" | tail -1

export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1"
export LSAN_OPTIONS="suppressions=$root/tests/sanitizers/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:suppressions=$root/tests/sanitizers/ubsan.supp"
mkdir -p "$b/findings" "$b/logs"
run_one() {
  local n="$1" mb=2048
  # libtorch's unpickler (torch::jit::Unpickler::readBytes) allocates a string of the length a
  # pickle record states, up to 4 GiB, before it finds the archive too short and throws; npe then
  # reports the corrupt checkpoint. That memory is libtorch's to bound, not npe's: for this
  # harness the limits are 8 GB, and 60 s per input (AddressSanitizer fills the freed 4 GiB).
  # Its leaks inside libtorch's zip reader are suppressed by their caller (tests/sanitizers/
  # lsan.supp), which only a full unwind shows (libtorch has no frame pointers).
  local limit_s=10 asan="$ASAN_OPTIONS"
  [ "$n" = checkpoint ] && mb=8192 && limit_s=60 && asan="$asan:fast_unwind_on_malloc=0"
  mkdir -p "$b/corpus/$n"
  ASAN_OPTIONS="$asan" "$b/bin/fuzz_$n" "$b/corpus/$n" "$root/tests/fuzz/corpus/$n" -max_total_time="$seconds" -timeout="$limit_s" \
    -rss_limit_mb="$mb" -malloc_limit_mb="$mb" -print_final_stats=1 -artifact_prefix="$b/findings/$n-" \
    > "$b/logs/$n.log" 2>&1
}
pids=(); failed=()
for n in "${names[@]}"; do
  [ -f "$root/tests/fuzz/fuzz_$n.cpp" ] || { echo "scripts/fuzz.sh: no harness '$n' (have: ${all[*]})" >&2; exit 2; }
  say "fuzz_$n: ${seconds} s"
  run_one "$n" & pids+=("$!:$n")
  while (( $(jobs -rp | wc -l) >= jobs )); do sleep 1; done
done
for p in "${pids[@]}"; do wait "${p%%:*}" || failed+=("${p#*:}"); done

summary="$b/fuzz_summary.md"
{
  echo "| harness | seconds | executions | exec/s | cov (edges) | ft (features) | corpus | findings |"
  echo "|---|---|---|---|---|---|---|---|"
  for n in "${names[@]}"; do
    log="$b/logs/$n.log"
    execs="$(grep -oE 'stat::number_of_executed_units:[[:space:]]*[0-9]+' "$log" | awk '{print $2}' | tail -1)"
    rate="$(grep -oE 'stat::average_exec_per_sec:[[:space:]]*[0-9]+' "$log" | awk '{print $2}' | tail -1)"
    cov="$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | awk '{print $2}')"
    ft="$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | awk '{print $2}')"
    corp="$(grep -oE 'corp: [0-9]+/[0-9]+[a-zA-Z]*' "$log" | tail -1 | awk '{print $2}')"
    finding=0; [[ " ${failed[*]-} " == *" $n "* ]] && finding=1
    echo "| fuzz_$n | $seconds | ${execs:-?} | ${rate:-?} | ${cov:-?} | ${ft:-?} | ${corp:-?} | $finding |"
  done
} > "$summary"
cat "$summary"
if ((${#failed[@]})); then
  for n in "${failed[@]}"; do
    echo "---- fuzz_$n: finding (log $b/logs/$n.log) ----" >&2
    grep -E 'ERROR|finding|SUMMARY|runtime error|Test unit written' "$b/logs/$n.log" | head -20 >&2
  done
  exit 1
fi
