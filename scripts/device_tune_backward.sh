#!/usr/bin/env bash
# Developer script for the lent GPU machine: the differentiable simulator's backward kernel
# under register caps (__launch_bounds__ minimum blocks $BLOCKS, default "1 4 6 8"), npe-bench diffsim for each,
# and Nsight Compute's occupancy / warp-state sections for the uncapped kernel. Logs under $OUT.
# Usage there:  source .debs/gpu-env.sh && scripts/device_tune_backward.sh
set -uo pipefail
out="${OUT:-/tmp/npe-device}"
mkdir -p "$out"
BLOCKS="${BLOCKS:-1 4 6 8}"
cfg=(-G Ninja -DCMAKE_BUILD_TYPE=Release -DNPE_WITH_MEDIA=OFF -DNPE_BUILD_TESTS=OFF -DNPE_PYTHON="$(command -v python3)")
for blocks in $BLOCKS; do
  ( cmake -S . -B "build-lb$blocks" "${cfg[@]}" -DCMAKE_CUDA_FLAGS="-DNPE_DIFF_BACKWARD_MIN_BLOCKS=$blocks -Xptxas=-v" \
      > "$out/lb$blocks.build.log" 2>&1 &&
    cmake --build "build-lb$blocks" --parallel 6 --target npe-bench >> "$out/lb$blocks.build.log" 2>&1 ) &
done
wait
for blocks in $BLOCKS; do
  echo "== min blocks $blocks: $(grep -A3 "diff_backward_kernelILi4EfE.*sm_90a" "$out/lb$blocks.build.log" | grep -oE "[0-9]+ bytes spill stores|Used [0-9]+ registers" | tr "\n" " ")"
  timeout 200 "build-lb$blocks/bin/npe-bench" diffsim --device cuda --out_csv "$out/diffsim_lb$blocks.csv" \
    --out_json "$out/diffsim_lb$blocks.json" > "$out/diffbench_lb$blocks.log" 2>&1
  sed -n '/^dev /,$p' "$out/diffbench_lb$blocks.log"
done
[ -n "${NCU:-}" ] && timeout 200 ncu --kernel-name regex:diff_backward_kernel --launch-skip 2 --launch-count 1 \
  --section SpeedOfLight --section Occupancy --section WarpStateStats --section MemoryWorkloadAnalysis \
  build-lb1/bin/npe-bench diffsim --device cuda --repeats 1 --out_csv /tmp/n.csv --out_json /tmp/n.json > "$out/ncu_backward.log" 2>&1
[ -n "${NCU:-}" ] && grep -E 'Duration|Throughput|Occupancy|Registers|Stall|Warp Cycles|Issued|Eligible|L1/TEX Hit|L2 Hit|Local' "$out/ncu_backward.log" | head -60
