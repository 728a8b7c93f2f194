#!/usr/bin/env bash
# Developer script for the lent GPU machine (the device tool's notes): scripts/experiments.sh
# with its training runs JOBS at a time on the one GPU, sharing it under CUDA MPS. The datasets
# and the training get TRAIN_TIME seconds (default 400); runs not finished by then are stopped
# (npe-train checkpoints them) and left out of the tables: their best checkpoints are renamed
# *.best.pt.cut. The tables then get EVAL_TIME seconds (default 150). Last, one archive,
# $OUT/experiments.tgz: tables, logs, metrics CSVs and checkpoints (the datasets are remade from
# their seeds). Unpacked here into EXP_DIR and carried to the next call, it lets that call go on:
# finished runs are skipped, cut ones resume.
#
# Usage there:  source .debs/gpu-env.sh && BIN=.devbin JOBS=16 SCALE=1 ... scripts/device_experiments.sh
# Environment: EXP_DIR (default exp), TRAIN_TIME, EVAL_TIME, and experiments.sh's own.
set -uo pipefail
out="${OUT:-/tmp/npe-device}"
exp="${EXP_DIR:-exp}"
mkdir -p "$out" "$exp"
source "$(dirname "${BASH_SOURCE[0]}")/device_mps.sh" "$out"
for f in "$exp"/runs/*/*.best.pt.cut; do [ -f "$f" ] && mv "$f" "${f%.cut}"; done  # cut earlier: go on
t0=$SECONDS
DEVICE=cuda STAGES="data train" timeout "${TRAIN_TIME:-400}" scripts/experiments.sh "$exp" > "$out/experiments.log" 2>&1
rc=$?
# timeout signals the whole process group; npe-train saves a checkpoint when stopped: wait for it
for _ in $(seq 30); do pgrep -x npe-train > /dev/null || break; sleep 1; done
echo "training: exit $rc in $((SECONDS - t0)) s, $(ls "$exp"/runs/*/*.done 2>/dev/null | wc -l) runs done"
for f in "$exp"/runs/*/*.best.pt; do
  [ -f "$f" ] || continue
  [ -f "${f%.best.pt}.done" ] || { mv "$f" "$f.cut"; echo "cut (not in the tables): $f"; }
done
t0=$SECONDS
DEVICE=cuda STAGES=eval timeout "${EVAL_TIME:-150}" scripts/experiments.sh "$exp" > "$out/eval.log" 2>&1
echo "tables: exit $? in $((SECONDS - t0)) s"
(cd "$exp" && find runs -name '*.pt' -o -name '*.cut' -o -name '*.csv' -o -name '*.done' -o -name '*.log' -o -name '*.out' |
  tar -czf "$out/experiments.tgz" -T - $(ls results* mass_inference* 2>/dev/null))
# each run's output is in runs/<world>.<kind>.out (experiments.sh prints them only when all end)
cat "$out/experiments.log" "$exp"/runs/*.out 2> /dev/null | grep -E '^== training|failed|best val' | tail -60
for f in "$exp"/results.md "$exp"/results_long.md "$exp"/mass_inference.md; do [ -f "$f" ] && cat "$f"; done
tail -5 "$out/eval.log"
