#!/usr/bin/env bash
# Developer script for the lent GPU machine (the device tool's notes): builds the Python package's
# operators and the CUDA tests, runs them (the pytest suite with its CUDA cases, the C++ CUDA
# tests of the simulator and of training), then the operator's overhead benchmark
# (bench/python_ops.py). pytest travels as wheels in .whl (python3 there has torch, not pytest).
# Usage there:  source .debs/gpu-env.sh && scripts/device_python.sh   (logs under $OUT)
# NPE_PYTEST_FILTER="cuda": only the CUDA cases of pytest (a short lease).
set -uo pipefail
out="${OUT:-/tmp/npe-device}"
mkdir -p "$out"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
gpu="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
echo "$gpu" | tee "$out/gpu.txt"
tag="$(echo "$gpu" | grep -oiE 'h100|h200' | tr 'A-Z' 'a-z' | head -1)"
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DNPE_WITH_MEDIA=OFF \
  -DNPE_PYTHON="$(command -v python3)" > "$out/configure.log" 2>&1 || { tail -40 "$out/configure.log"; exit 1; }
# NPE_DEVICE_TRAIN=1: also the CUDA training tests (model_tests, a longer build)
targets=(npe_torch_ops npe-datagen npe-train npe-bench gpu_tests diffsim_torch_tests)
[ -n "${NPE_DEVICE_TRAIN:-}" ] && targets+=(model_tests)
cmake --build build-gpu --parallel "$(nproc)" --target "${targets[@]}" > "$out/build.log" 2>&1 ||
  { grep -E 'error' -A5 "$out/build.log" | head -60; exit 1; }
b=build-gpu/bin
echo "build warnings: $(grep -c "warning:" "$out/build.log")"
run() { local name="$1"; shift; "$@" > "$out/$name.log" 2>&1; echo "$name: exit $? ($(grep -E '^\[  (PASSED|FAILED|SKIPPED) |passed|failed' "$out/$name.log" | tr '\n' ' ' | cut -c1-300))"; }
run gpu_tests "$b/gpu_tests" --gtest_filter='*Cuda*'
run diffsim_torch_tests "$b/diffsim_torch_tests"
[ -n "${NPE_DEVICE_TRAIN:-}" ] &&
  run model_tests_cuda "$b/model_tests" --gtest_filter='TrainCuda.*:ClassicFused*:ModernFused*:TrainStepCuda.*'
PYTHONPATH="$PWD/python:${PYTHONPATH:-}" NPE_TORCH_OPS="$PWD/build-gpu/lib/libnpe_torch_ops.so" NPE_BIN="$PWD/$b" \
  run pytest python3 -m pytest -q -p no:cacheprovider -rs ${NPE_PYTEST_FILTER:+-k "$NPE_PYTEST_FILTER"} python/tests
PYTHONPATH="$PWD/python:${PYTHONPATH:-}" NPE_TORCH_OPS="$PWD/build-gpu/lib/libnpe_torch_ops.so" \
  python3 bench/python_ops.py --device cuda --npe_bench "$b/npe-bench" --out "$out/python_ops_${tag:-gpu}.json" \
  2>&1 | tee "$out/python_ops.log" | tail -6
