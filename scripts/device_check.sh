#!/usr/bin/env bash
# Developer script for the lent GPU machine (see the device tool's notes): builds without media
# libraries, runs the test suite (CUDA tests included), then times CUDA training of both models.
# Usage there:  source .debs/gpu-env.sh && scripts/device_check.sh   (logs under $OUT)
set -uo pipefail
out="${OUT:-/tmp/npe-device}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DNPE_WITH_MEDIA=OFF \
  -DNPE_PYTHON="$(command -v python3)" > "$out/configure.log" 2>&1 || { tail -40 "$out/configure.log"; exit 1; }
cmake --build build-gpu --parallel "$(nproc)" > "$out/build.log" 2>&1 || { grep -E 'error' -A5 "$out/build.log" | head -60; exit 1; }
OMP_NUM_THREADS=2 ctest --test-dir build-gpu --parallel 8 --output-on-failure > "$out/ctest.log" 2>&1
grep -E 'tests passed|FAILED|Failed|SKIPPED|Skipped' "$out/ctest.log" | head -20
b=build-gpu/bin
d=/tmp/npe-data/balls
"$b/npe-datagen" --num_scenes 12000 --no_progress --out_prefix "$d" 2>&1 | tee "$out/datagen.log" | head -1
"$b/npe-train" --device cuda --total_samples "${CLASSIC_SAMPLES:-2000000}" --no_progress --overwrite --name classic \
  --checkpoint_dir /tmp/npe-ck --dataset_prefix "$d" 2>&1 | tee "$out/classic.log" | head -1
"$b/npe-train" --device cuda --modern --total_samples "${MODERN_SAMPLES:-20000000}" --no_progress --overwrite --name modern \
  --checkpoint_dir /tmp/npe-ck --dataset_prefix "$d" 2>&1 | tee "$out/modern.log" | head -1
cp /tmp/npe-ck/*.csv "$out/" 2>/dev/null
"$b/npe-eval" --device cuda --classic_ckpt /tmp/npe-ck/classic.best.pt --modern_ckpt /tmp/npe-ck/modern.best.pt \
  --dataset_prefix "$d" --out_json "$out/eval.json" --out_csv "$out/eval.csv" 2>&1 | tee "$out/eval.log"
