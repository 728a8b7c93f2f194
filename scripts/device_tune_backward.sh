#!/usr/bin/env bash
# Developer script for the lent GPU machine: the differentiable simulator's backward kernel built
# in variants (VARIANTS: name=flag,flag,... entries; default: __launch_bounds__ minimum blocks 1
# and 8), npe-bench diffsim for each, and with NCU=1 Nsight
# Compute's sections for the first variant. Logs under $OUT.
# Usage there:  source .debs/gpu-env.sh && scripts/device_tune_backward.sh
set -uo pipefail
out="${OUT:-/tmp/npe-device}"
mkdir -p "$out"
VARIANTS="${VARIANTS:-lb1=-DNPE_DIFF_BACKWARD_MIN_BLOCKS=1 lb8=-DNPE_DIFF_BACKWARD_MIN_BLOCKS=8}"
cfg=(-G Ninja -DCMAKE_BUILD_TYPE=Release -DNPE_WITH_MEDIA=OFF -DNPE_BUILD_TESTS=OFF -DNPE_PYTHON="$(command -v python3)")
names=()
for v in $VARIANTS; do
  name="${v%%=*}" flags="${v#*=}"
  names+=("$name")
  ( cmake -S . -B "build-$name" "${cfg[@]}" -DCMAKE_CUDA_FLAGS="${flags//,/ } -Xptxas=-v" > "$out/$name.build.log" 2>&1 &&
    cmake --build "build-$name" --parallel 6 --target npe-bench >> "$out/$name.build.log" 2>&1 ) &
done
wait
for name in "${names[@]}"; do
  echo "== $name: $(grep -A3 "diff_backward_kernelILi4EfE.*sm_90a" "$out/$name.build.log" | grep -oE "[0-9]+ bytes spill stores|Used [0-9]+ registers" | tr "\n" " ")"
  timeout 200 "build-$name/bin/npe-bench" diffsim --device cuda --out_csv "$out/diffsim_$name.csv" \
    --out_json "$out/diffsim_$name.json" > "$out/diffbench_$name.log" 2>&1
  sed -n '/^dev /,$p' "$out/diffbench_$name.log" | grep -v '^wrote'
done
if [ -n "${NCU:-}" ]; then
  timeout 200 ncu --kernel-name regex:diff_backward_kernel --launch-skip 2 --launch-count 1 \
    --section SpeedOfLight --section Occupancy --section WarpStateStats --section InstructionStats \
    "build-${names[0]}/bin/npe-bench" diffsim --device cuda --repeats 1 --out_csv /tmp/n.csv --out_json /tmp/n.json > "$out/ncu_backward.log" 2>&1
  grep -E 'Duration|DRAM Throughput|Compute \(SM\)|Registers Per|Achieved Occ|Issued Instructions |Warp Cycles Per Issued' "$out/ncu_backward.log"
fi
