#!/usr/bin/env bash
# Developer script for the lent GPU machine: builds the engine's targets (no media libraries),
# runs the engine's tests (CUDA included), compute-sanitizer over the CUDA tests, npe-bench
# engine, and npe-datagen --engine gpu on 10^6 scenes; logs under $OUT, a summary last.
# Usage there:  source .debs/gpu-env.sh && scripts/device_engine.sh [stages]
#   stages (default all): build tests modeltests sanitize sass ncu bench diffbench trainbench datagen sysid
#   (dist: data-parallel npe-train on every GPU of the machine -- the DistEnv/ProcessGroup/DistributedCuda
#    tests, a torchrun launch of npe-train, npe-bench train-dp; on nvidia-h200-x2 or larger)
#   (and, only when named: recipes -- RECIPES="modern classic", RECIPE_STOP=steps, RECIPE_CK=dir;
#    experiments -- scripts/experiments.sh into EXP_DIR (default exp), EXP_TIME seconds at most, env passed on)
set -uo pipefail
out="${OUT:-/tmp/npe-device}"
mkdir -p "$out"
stages="${*:-build tests modeltests sanitize sass ncu bench diffbench trainbench datagen sysid}"
has() { [[ " $stages " == *" $1 "* ]]; }
b=build-gpu/bin
summary=()
note() { summary+=("$*"); echo "== $*"; }

note "gpu: $(nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader)"
if has build; then
  t0=$SECONDS
  cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DNPE_WITH_MEDIA=OFF \
    -DNPE_PYTHON="$(command -v python3)" > "$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
  cmake --build build-gpu --parallel "$(nproc)" --target gpu_tests diffsim_torch_tests model_tests npe-bench npe-datagen npe-compare-engines \
    npe-train npe-eval npe-sysid npe-optimize npe-results \
    >> "$out/build.log" 2>&1 || { grep -E 'error' -A5 "$out/build.log" | head -60; exit 1; }
  note "build: $((SECONDS - t0)) s"
fi
if has tests; then
  "$b/gpu_tests" > "$out/gpu_tests.log" 2>&1
  note "gpu_tests: exit $? ($(grep -E '^\[  (PASSED|FAILED|SKIPPED) ' "$out/gpu_tests.log" | tr '\n' ' '))"
  grep -E '^\[  FAILED|float32 vs float64' "$out/gpu_tests.log" | head -20
  "$b/diffsim_torch_tests" >> "$out/gpu_tests.log" 2>&1
  note "diffsim_torch_tests: exit $? ($(grep -E '^\[  (PASSED|FAILED|SKIPPED) ' "$out/gpu_tests.log" | tail -3 | tr '\n' ' '))"
fi
if has modeltests; then
  # the models and training on CUDA (TrainStep's graph and bf16, the CUDA training run)
  "$b/model_tests" > "$out/model_tests.log" 2>&1
  note "model_tests: exit $? ($(grep -E '^\[  (PASSED|FAILED|SKIPPED) ' "$out/model_tests.log" | tr '\n' ' '))"
  grep -E '^\[  FAILED|Failure|Expected|actual|Which is' "$out/model_tests.log" | head -30
fi
if has sanitize; then
  cuda_tests='CudaEngine.*:GenerateGpu.Cuda*:DiffSimCuda.*'
  for tool in memcheck racecheck initcheck synccheck; do
    echo "######## $tool" >> "$out/sanitize.log"
    timeout 240 compute-sanitizer --tool "$tool" --print-limit 10 --error-exitcode 3 "$b/gpu_tests" \
      --gtest_filter="$cuda_tests" >> "$out/sanitize.log" 2>&1
    rc=$?
    note "compute-sanitizer $tool: exit $rc ($(sed -n "/######## $tool/,\$p" "$out/sanitize.log" | grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|PASSED|FAILED  \]' | tr '\n' ' '))"
  done
  # the CUDA tests over libtorch: the differentiable simulator's autograd Function on CUDA, the
  # models on CUDA, and the training step (CUDA graph capture and replay, bf16)
  for bin_filter in "diffsim_torch_tests:DiffSimTorch.CudaEqualsCpu" \
                    "model_tests:ModelCuda.*:TrainStepCuda.*:TrainCuda.*:ClassicFusedCuda.*:ModernFusedCuda.*"; do
    bin="${bin_filter%%:*}"; filter="${bin_filter#*:}"
    for tool in memcheck racecheck initcheck; do
      echo "######## $bin $tool" >> "$out/sanitize.log"
      timeout 300 compute-sanitizer --tool "$tool" --print-limit 10 --error-exitcode 3 "$b/$bin" \
        --gtest_filter="$filter" >> "$out/sanitize.log" 2>&1
      rc=$?
      note "compute-sanitizer $tool $bin: exit $rc ($(sed -n "/######## $bin $tool/,\$p" "$out/sanitize.log" | grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|PASSED|FAILED  \]' | tr '\n' ' '))"
    done
  done
fi
if has sass; then
  # the fused 4-ball float32 kernel: instruction mix (docs/engine.md counts the inner loop)
  obj=build-gpu/gpu/CMakeFiles/npe_gpu.dir/src/cuda_engine.cu.o
  cuobjdump -sass "$obj" | awk '/Function : .*fused_kernelILi4EfE/{p=1; print; next} /Function : /{p=0} p' > "$out/sass.txt"
  note "sass: fused_kernel<4, float>: $(grep -cE '^ +/\*[0-9a-f]+\*/' "$out/sass.txt") instructions"
fi
if has ncu; then
  # hardware counters of one timed launch per case: instructions, pipes, flops, DRAM
  m=gpu__time_duration.sum,smsp__inst_executed.sum,smsp__issue_active.avg.pct_of_peak_sustained_active
  m=$m,sm__pipe_fma_cycles_active.avg.pct_of_peak_sustained_active,sm__pipe_alu_cycles_active.avg.pct_of_peak_sustained_active
  m=$m,sm__inst_executed_pipe_xu.avg.pct_of_peak_sustained_active,sm__warps_active.avg.pct_of_peak_sustained_active
  m=$m,dram__throughput.avg.pct_of_peak_sustained_elapsed,dram__bytes_read.sum,dram__bytes_write.sum
  m=$m,smsp__sass_thread_inst_executed_op_fadd_pred_on.sum,smsp__sass_thread_inst_executed_op_fmul_pred_on.sum
  m=$m,smsp__sass_thread_inst_executed_op_ffma_pred_on.sum,smsp__sass_thread_inst_executed.sum
  for c in a_4ball_recorded:fused_kernel b_4ball_final:fused_kernel c_world_1000000:body_kernel; do
    echo "######## ${c%%:*}" >> "$out/ncu.log"
    timeout 120 ncu --clock-control none --kernel-name "regex:${c##*:}" --launch-skip 2 --launch-count 1 \
      --metrics "$m" "$b/npe-bench" engine --device cuda --repeats 1 --cases "${c%%:*}" \
      --out_csv /tmp/ncu.csv --out_json /tmp/ncu.json >> "$out/ncu.log" 2>&1
    note "ncu ${c%%:*}: exit $?"
  done
  grep -E '^ +(gpu__time|smsp__|sm__|dram__)|########' "$out/ncu.log"
fi
if has bench; then
  mkdir -p bench
  timeout 420 "$b/npe-bench" engine --device all --out_csv "$out/engine.csv" --out_json "$out/engine.json" \
    > "$out/bench.log" 2>&1
  note "npe-bench engine: exit $?"
  sed -n '/^case/,$p' "$out/bench.log"
fi
if has diffbench; then
  timeout 300 "$b/npe-bench" diffsim --device all --out_csv "$out/diffsim.csv" --out_json "$out/diffsim.json" \
    > "$out/diffbench.log" 2>&1
  note "npe-bench diffsim: exit $?"
  sed -n '/^dev /,$p' "$out/diffbench.log"
fi
if has trainbench; then
  # npe-train's inner loop in npe, and the same models in PyTorch (eager, torch.compile, bf16)
  timeout 200 "$b/npe-bench" train --device cuda --out_csv "$out/train.csv" --out_json "$out/train.json" \
    > "$out/trainbench.log" 2>&1
  note "npe-bench train: exit $?"
  sed -n '/^dev /,$p' "$out/trainbench.log"
  if [ -z "${NO_PYTORCH:-}" ]; then  # NO_PYTORCH=1: npe's rows only
    timeout 300 python3 bench/train_pytorch.py --device cuda --out_json "$out/train_pytorch.json" \
      > "$out/train_pytorch.log" 2>&1
    note "bench/train_pytorch.py: exit $?"
    grep -vE '^\s*$' "$out/train_pytorch.log" | tail -12
  fi
fi
if has experiments; then
  # the paper's experiments (scripts/experiments.sh), resumable: a run cut by the time limit
  # continues from its checkpoint in the next call
  exp="${EXP_DIR:-exp}"
  t0=$SECONDS
  BIN=$b DEVICE=cuda timeout "${EXP_TIME:-540}" scripts/experiments.sh "$exp" > "$out/experiments.log" 2>&1
  note "experiments: exit $? in $((SECONDS - t0)) s ($(ls "$exp"/runs/*/*.done 2>/dev/null | wc -l) runs done)"
  cat "$out/experiments.log" "$exp"/runs/*.out 2> /dev/null | grep -E '^== training|best val|samples/s' | tail -40
  # one archive: results, metrics CSVs, logs and the best checkpoints (the datasets are remade from
  # their seeds; carry the runs back as EXP_DIR to finish on a fresh machine)
  (cd "$exp" && find runs results.* -name '*.best.pt' -o -name '*.csv' -o -name '*.done' -o -name '*.log' \
     -o -name 'results.*' | tar -czf "$out/experiments.tgz" -T -) 2>/dev/null
  [[ -f "$exp/results.md" ]] && cat "$exp/results.md"
fi
if has recipes; then
  # The issue's full recipes on the default world's dataset (12000 Box2D scenes, as
  # scripts/run_main.sh makes it): classic 60 M samples at batch 50, modern 200 M at batch 2048.
  # RECIPE_CK (default recipe-ck, carried back in) holds the checkpoints: with RECIPE_STOP a
  # recipe stops after that many steps and the next call's --resume continues it.
  d=/tmp/npe-recipe/balls_n4_t60_uniform
  t0=$SECONDS
  "$b/npe-datagen" --num_scenes 12000 --out_prefix "$d" --no_progress > "$out/recipe_datagen.log" 2>&1
  note "recipe dataset (npe-datagen --num_scenes 12000): exit $?, $((SECONDS - t0)) s"
  ck="${RECIPE_CK:-recipe-ck}"
  mkdir -p "$ck"
  for m in ${RECIPES:-modern classic}; do
    flags=(--name "$m" --dataset_prefix "$d" --checkpoint_dir "$ck" --no_progress --resume)
    [ "$m" = modern ] && flags+=(--modern)
    [ -n "${RECIPE_STOP:-}" ] && flags+=(--stop_after_steps "$RECIPE_STOP")
    t0=$SECONDS
    "$b/npe-train" "${flags[@]}" > "$out/recipe_$m.log" 2>&1
    note "npe-train $m recipe: exit $?, $((SECONDS - t0)) s wall: $(grep -E 'steps,|stopped' "$out/recipe_$m.log" | head -2 | tr '\n' ' ')"
    mkdir -p "$out/recipe-ck" && cp "$ck/$m".* "$out/recipe-ck/"
  done
fi
if has datagen; then
  d=/tmp/npe-data/gpu1m
  rm -rf /tmp/npe-data
  t0=$(date +%s%N)
  "$b/npe-datagen" --engine gpu --num_scenes 1000000 --no_progress --out_prefix "$d/gpu1m" > "$out/datagen.log" 2>&1
  rc=$?
  t1=$(date +%s%N)
  note "npe-datagen --engine gpu --num_scenes 1000000: exit $rc, $(( (t1 - t0) / 1000000 )) ms wall; $(head -1 "$out/datagen.log")"
  ls -la "$d" >> "$out/datagen.log"
  rm -rf /tmp/npe-data
fi
if has sysid; then
  # mass inference on a variable-mass Box2D dataset: simulator (npe-sysid) against NPEs trained
  # here on the same dataset; the simulator row of npe-eval
  d=/tmp/npe-vm/vm ck=/tmp/npe-vm/ck
  rm -rf /tmp/npe-vm
  t0=$SECONDS
  "$b/npe-datagen" --variable_mass --num_scenes 12000 --no_progress --out_prefix "$d" > "$out/vm_datagen.log" 2>&1
  note "npe-datagen --variable_mass 12000 scenes (Box2D): exit $?, $((SECONDS - t0)) s"
  t0=$SECONDS
  "$b/npe-train" --device cuda --total_samples "${SYSID_CLASSIC_SAMPLES:-3000000}" --no_progress --name classic \
    --checkpoint_dir "$ck" --dataset_prefix "$d" > "$out/vm_classic.log" 2>&1
  note "npe-train classic: exit $?, $((SECONDS - t0)) s; $(grep -iE 'best' "$out/vm_classic.log" | tail -1)"
  t0=$SECONDS
  "$b/npe-train" --device cuda --modern --total_samples "${SYSID_MODERN_SAMPLES:-30000000}" --no_progress --name modern \
    --checkpoint_dir "$ck" --dataset_prefix "$d" > "$out/vm_modern.log" 2>&1
  note "npe-train modern: exit $?, $((SECONDS - t0)) s; $(grep -iE 'best' "$out/vm_modern.log" | tail -1)"
  cp "$ck"/*.csv "$out/" 2>/dev/null
  for dt in float64 float32; do
    "$b/npe-sysid" --device cuda --dtype $dt --dataset_prefix "$d" --num_scenes 0 --classic_ckpt "$ck/classic.best.pt" \
      --modern_ckpt "$ck/modern.best.pt" --out_json "$out/sysid_$dt.json" --out_md "$out/mass_inference_$dt.md" \
      > "$out/sysid_$dt.log" 2>&1
    note "npe-sysid --device cuda --dtype $dt (all test scenes): exit $?"
    cat "$out/sysid_$dt.log"
  done
  "$b/npe-eval" --device cuda --classic_ckpt "$ck/classic.best.pt" --modern_ckpt "$ck/modern.best.pt" --dataset_prefix "$d" \
    --out_json "$out/vm_eval.json" --out_csv "$out/vm_eval.csv" --out_png /tmp/vm.png > "$out/vm_eval.log" 2>&1
  note "npe-eval (variable mass, simulator row): exit $?"
  cat "$out/vm_eval.log"
  "$b/npe-eval" --device cuda --classic_ckpt "$ck/classic.best.pt" --modern_ckpt "$ck/modern.best.pt" --dataset_prefix "$d" \
    --sim_masses "$out/sysid_float64.json" --num_scenes 200 --out_json "$out/vm_eval_idm.json" --out_csv "$out/vm_eval_idm.csv" \
    --out_png /tmp/vm.png > "$out/vm_eval_idm.log" 2>&1
  note "npe-eval --sim_masses (identified masses): exit $?; $(grep -E '^simulator' "$out/vm_eval_idm.log")"
  "$b/npe-optimize" --device cuda --out_prefix /tmp/npe-vm/launch > "$out/optimize.log" 2>&1
  note "npe-optimize --device cuda: exit $?; $(grep optimised "$out/optimize.log")"
  rm -rf /tmp/npe-vm
fi
if has dist; then
  gpus=$(nvidia-smi -L | wc -l)
  run=(torchrun); command -v torchrun > /dev/null || run=(python3 -m torch.distributed.run)
  timeout 400 "$b/model_tests" --gtest_filter='DistEnv.*:ProcessGroup.*:DistributedCuda.*' > "$out/dist_tests.log" 2>&1
  note "model_tests (distributed, $gpus GPUs): exit $? ($(grep -E '^\[  (PASSED|FAILED|SKIPPED) ' "$out/dist_tests.log" | tr '\n' ' '))"
  grep -E '^\[  FAILED|Failure|Expected|actual|Which is|largest parameter' "$out/dist_tests.log" | head -30
  d=/tmp/npe-dist/data/balls
  "$b/npe-datagen" --num_scenes 2000 --out_prefix "$d" --no_progress > "$out/dist_datagen.log" 2>&1
  # the launch line of docs/npe-train.md: torchrun starts one npe-train per GPU
  timeout 180 "${run[@]}" --no-python --nproc_per_node="$gpus" "$b/npe-train" --modern --dataset_prefix "$d" --total_samples 4000000 \
    --checkpoint_dir /tmp/npe-dist/ck --no_progress > "$out/dist_torchrun.log" 2>&1
  note "torchrun --nproc_per_node=$gpus npe-train --modern (4 M samples): exit $?"
  grep -E '^npe-train|data parallel|val MSE' "$out/dist_torchrun.log"
  timeout 240 "${run[@]}" --no-python --nproc_per_node="$gpus" "$b/npe-bench" train-dp --out_csv "$out/train_dp.csv" \
    --out_json "$out/train_dp.json" > "$out/train_dp.log" 2>&1
  note "npe-bench train-dp on $gpus GPUs: exit $?"
  tail -6 "$out/train_dp.log"
  rm -rf /tmp/npe-dist
fi
echo
echo "==== summary"
printf '%s\n' "${summary[@]}"
