#!/usr/bin/env bash
# Developer script for the lent GPU machine (the device tool's notes): trains npe-control runs of
# the comparison there, a few per call (a call lasts at most 10 minutes), into
# $OUT/compare/<task>/<algo>/seed<S> without their checkpoints (hundreds of MB with SAC's replay
# buffer). Copy those folders into out/control/compare/<task>/ here and run
#   build/bin/npe-control compare --task <task> --algos ... --seeds 5 --out_dir out/control/compare/<task> [same flags]
# which finds every run finished and only writes the table and the plot (docs/control.md).
# Usage there:  source .debs/gpu-env.sh && scripts/device_control.sh TASK "ALGOS" "SEEDS" [npe-control flags...]
#   e.g. scripts/device_control.sh herding "sac apg hybrid" "0 1" --max_seconds 60
set -uo pipefail
task="$1"; algos="$2"; seeds="$3"; shift 3
out="${OUT:-/tmp/npe-device}"
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DNPE_WITH_MEDIA=OFF > "$out/configure.log" 2>&1 &&
  cmake --build build-gpu --parallel "$(nproc)" --target npe-control > "$out/build.log" 2>&1 ||
  { grep -E 'error' -A5 "$out/build.log" | head -40; exit 1; }
nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tee "$out/gpu.txt"
for algo in $algos; do
  for seed in $seeds; do
    dir="$out/compare/$task/$algo/seed$seed"
    build-gpu/bin/npe-control train --task "$task" --algo "$algo" --seed "$seed" --device cuda --out_dir "$dir" \
      --video_layouts 0 "$@" > "$out/${task}_${algo}_$seed.log" 2>&1
    echo "$task $algo seed $seed: exit $? $(tail -1 "$out/${task}_${algo}_$seed.log" | cut -c1-160)"
    rm -f "$dir/checkpoint.pt"
  done
done
