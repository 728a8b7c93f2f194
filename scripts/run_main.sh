#!/usr/bin/env bash
# The main job on the embedded default world: set-up and build if needed, then
# data (Box2D) -> train classic + modern NPE -> rollout metrics + plot -> comparison videos.
# About 15 minutes on a 2-core CPU machine after set-up. Budgets can be changed with
#   NPE_CLASSIC_SAMPLES (default 5000000, batch 50)  NPE_MODERN_SAMPLES (default 3000000, batch 256)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
"$root/scripts/setup.sh"
bin="$root/build/bin"
prefix=data/balls_n4_t60_uniform/balls_n4_t60_uniform
classic_samples="${NPE_CLASSIC_SAMPLES:-5000000}"
modern_samples="${NPE_MODERN_SAMPLES:-3000000}"
start=$SECONDS
step() { printf '\n== %s (%ds elapsed)\n' "$*" $((SECONDS - start)); }

step "1/5 npe-datagen: 12000 Box2D scenes"
"$bin/npe-datagen" --num_scenes 12000 --out_prefix "$prefix"

step "2/5 npe-train classic: ${classic_samples} samples, batch 50 (paper recipe, shortened)"
"$bin/npe-train" --overwrite --name classic --dataset_prefix "$prefix" --total_samples "$classic_samples" --eval_every 5000

# The modern recipe's batch of 2048 gives too few steps for a CPU budget: batch 256 here.
step "3/5 npe-train --modern: ${modern_samples} samples, batch 256"
"$bin/npe-train" --overwrite --modern --name modern --dataset_prefix "$prefix" --batch_size 256 \
  --total_samples "$modern_samples" --eval_every 500

step "4/5 npe-eval: 200 test scenes, 50-step rollouts (NPEs, the simulator, constant velocity)"
"$bin/npe-eval" --classic_ckpt checkpoints/classic.best.pt --modern_ckpt checkpoints/modern.best.pt \
  --dataset_prefix "$prefix" --num_scenes 200 --rollout_steps 50 \
  --out_png out/eval/rollout_metrics.png --out_json out/eval/rollout_metrics.json --out_csv out/eval/rollout_metrics.csv

step "5/5 npe-render: 2 comparison videos (truth, classic, modern, simulator) and the training curves"
"$bin/npe-render" --classic_ckpt checkpoints/classic.best.pt --modern_ckpt checkpoints/modern.best.pt \
  --dataset_prefix "$prefix" --num_scenes 2 --rollout_steps 50 --out_dir out/render \
  --metrics_csv checkpoints/classic.csv,checkpoints/modern.csv

cat <<TXT

== done in $((SECONDS - start)) s. Outputs:
  dataset        ${prefix}_{train,val,test}.npy, ${prefix}.json
  checkpoints    checkpoints/classic{,.best}.pt  checkpoints/modern{,.best}.pt
  training log   checkpoints/classic.csv  checkpoints/modern.csv
  metrics        out/eval/rollout_metrics.{json,csv}
  metrics plot   out/eval/rollout_metrics.png
  curves plot    out/render/training_curves.png
  videos         out/render/rollout_gt_classic_modern_sim_scene0.mp4, ..._scene1.mp4
TXT
