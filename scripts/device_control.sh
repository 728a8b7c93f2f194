#!/usr/bin/env bash
# Developer script for the lent GPU machine (the device tool's notes): trains the runs of an
# npe-control comparison there, PARALLEL at a time on the one GPU (one run alone leaves the GPU
# mostly idle: its kernels are small), into $OUT/compare/<dir>/<algo>/seed<S>. Checkpoints larger
# than NPE_KEEP_CHECKPOINT_MB (20: SAC's and the hybrid's, with their replay buffers, are hundreds
# of MB) are removed; APG's stay, for npe-control video and diagnose here. Copy the folders into
# out/control/compare/ here and run
#   build/bin/npe-control compare --task <task> --algos ... --seeds 5 --out_dir out/control/compare/<dir> [same flags]
# which finds every run finished and only writes the table and the plot (docs/control.md).
#
# Usage there:  source .debs/gpu-env.sh && scripts/device_control.sh JOBS [PARALLEL]
# JOBS: one run per line, "<dir> <task> <algo> <seed> [npe-control train flags...]"; # comments.
# Environment:
#   NPE_CONTROL       the npe-control binary (default: build it into build-gpu)
#   NPE_KEEP_CHECKPOINT_MB  checkpoints above this size are removed (default 20)
#   NPE_MPS=0         do not start CUDA MPS (default: start it where it starts, and stop it after)
#   NPE_LAUNCH_UNTIL  no run starts later than this many seconds after the script (set it to the
#                     call's limit minus one run's length, so that no run is killed half-way)
# Exits with the number of runs that failed (or 1 when the build fails).
set -uo pipefail
jobs_file="$1"; parallel="${2:-8}"
out="${OUT:-/tmp/npe-device}"
mkdir -p "$out/logs"
bin="${NPE_CONTROL:-}"
if [ -z "$bin" ]; then
  cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DNPE_WITH_MEDIA=OFF > "$out/configure.log" 2>&1 &&
    cmake --build build-gpu --parallel "$(nproc)" --target npe-control > "$out/build.log" 2>&1 ||
    { grep -E 'error' -A5 "$out/build.log" | head -40; exit 1; }
  bin=build-gpu/bin/npe-control
fi

# CUDA MPS and the sampled utilisation while the runs share the GPU
source "$(dirname "${BASH_SOURCE[0]}")/device_mps.sh" "$out"

run_job() {
  local dir="$1" task="$2" algo="$3" seed="$4"; shift 4
  local run="$out/compare/$dir/$algo/seed$seed" log="$out/logs/${dir}_${algo}_$seed.log"
  "$bin" train --task "$task" --algo "$algo" --seed "$seed" --device cuda --out_dir "$run" --video_layouts 0 "$@" \
    > "$log" 2>&1
  local rc=$?
  if [ -f "$run/checkpoint.pt" ] && [ "$(stat -c %s "$run/checkpoint.pt")" -gt $((${NPE_KEEP_CHECKPOINT_MB:-20} * 1000000)) ]; then
    rm -f "$run/checkpoint.pt"
  fi
  echo "$dir $algo seed $seed: exit $rc $(tail -1 "$log" | cut -c1-150)"
  return "$rc"
}

pids=() failed=0
reap() {  # waits for one of the runs (never for nvidia-smi) and forgets the finished ones
  wait -n "${pids[@]}" || failed=$((failed + 1))
  local alive=() p
  for p in "${pids[@]}"; do kill -0 "$p" 2> /dev/null && alive+=("$p"); done
  pids=("${alive[@]}")
}
while read -r line || [ -n "$line" ]; do
  read -r -a f <<< "${line%%#*}"  # an array: no glob expansion
  [ "${#f[@]}" -eq 0 ] && continue
  if [ "${#f[@]}" -lt 4 ]; then echo "bad job line (expected dir task algo seed [flags]): $line"; failed=$((failed + 1)); continue; fi
  if [ "$SECONDS" -gt "${NPE_LAUNCH_UNTIL:-1000000}" ]; then echo "not started (time): $line"; continue; fi
  run_job "${f[@]}" &
  pids+=("$!")
  while [ "${#pids[@]}" -ge "$parallel" ]; do reap; done
done < "$jobs_file"
while [ "${#pids[@]}" -gt 0 ]; do reap; done
exit "$failed"
