#!/usr/bin/env bash
# The paper's experiments (Chang et al. 2017, section 4) end to end: the datasets of both data
# regimes, the four models (classic and modern NPE, the NP and LSTM baselines) trained on each
# training world, and the results table (npe-results). Re-running continues where it stopped:
# datasets that exist are kept, finished runs are skipped and interrupted ones resume from their
# last checkpoint (npe-train --resume), so the work can be spread over several time-limited jobs.
#
# Usage: scripts/experiments.sh [OUT_DIR]          (default out/experiments)
# Environment:
#   SCALE        fraction of each model's full recipe (classic, np, lstm: 60 M samples at batch 50;
#                modern, gns: 200 M at batch 2048), default 0.1
#   SCENES       scenes per training dataset (default 12000); EVAL_SCENES per 6/7/8-ball dataset (3000)
#   KINDS        models to train (default "classic modern np lstm gns"); WORLDS training worlds
#                (default "n4 n4v n345 p4 p345 n4noise walls")
#   NOISE        npe-train --input_noise of the n4noise runs (default 0.05)
#   TRAIN_FLAGS  extra npe-train flags for every run (e.g. --residual_velocity)
#   DEVICE       auto | cpu | cuda (default auto); BIN the tools' folder (default build/bin)
#   NUM_SCENES   test scenes rolled out per world in the table (default 200)
#
# Training worlds (default regime: 800 x 600 px, radius 60 px, speeds up to 60 px/s; npe2017:
# npe-datagen --preset npe2017):
#   n4: 4 balls, mass 1      n4v: 4 balls, masses {1, 5, 25}      n345: 3, 4 or 5 balls, mass 1
#   p4: npe2017, 4 balls     p345: npe2017, 3, 4 or 5 balls
#   n4noise: n4's data, trained with noise injection (classic and modern only)
#   walls: the paper's walls worlds (npe-datagen --preset walls), 2 balls inside walls of the
#          shapes O and L
# Evaluation: n4, n4v and p4 on their own test splits; n345 and p345 on 6, 7 and 8 balls; walls
# on O and L (held-out scenes) and on the shapes U and I.
set -euo pipefail
out="${1:-out/experiments}"
bin="${BIN:-build/bin}"
scale="${SCALE:-0.1}"
scenes="${SCENES:-12000}"
eval_scenes="${EVAL_SCENES:-3000}"
kinds="${KINDS:-classic modern np lstm gns}"
worlds="${WORLDS:-n4 n4v n345 p4 p345 n4noise walls}"
noise="${NOISE:-0.05}"
device="${DEVICE:-auto}"
num_scenes="${NUM_SCENES:-200}"
for tool in npe-datagen npe-train npe-results; do
  [[ -x "$bin/$tool" ]] || { echo "experiments.sh: $bin/$tool not found; build first (scripts/setup.sh) or set BIN" >&2; exit 1; }
done
mkdir -p "$out/data" "$out/runs"

dataset() {  # name scenes seed flags...
  local name=$1 n=$2 seed=$3
  shift 3
  [[ -f "$out/data/$name/$name.json" ]] && return 0
  "$bin/npe-datagen" --num_scenes "$n" --seed "$seed" --out_prefix "$out/data/$name/$name" --no_progress "$@"
}
dataset n4 "$scenes" 1 --num_balls 4
dataset n4v "$scenes" 2 --num_balls 4 --variable_mass
dataset n345 "$scenes" 3 --num_balls 3,4,5
dataset p4 "$scenes" 4 --num_balls 4 --preset npe2017
dataset p345 "$scenes" 5 --num_balls 3,4,5 --preset npe2017
for n in 6 7 8; do
  dataset "n$n" "$eval_scenes" "1$n" --num_balls "$n"
  dataset "p$n" "$eval_scenes" "2$n" --num_balls "$n" --preset npe2017
done
if [[ " $worlds " == *" walls "* ]]; then
  dataset walls "$scenes" 6 --preset walls
  dataset wallsU "$eval_scenes" 31 --preset walls --walls U
  dataset wallsI "$eval_scenes" 32 --preset walls --walls I
fi

samples() {  # kind -> total samples at this SCALE
  local full=60000000
  [[ $1 == modern || $1 == gns ]] && full=200000000
  awk -v f="$full" -v s="$scale" 'BEGIN { printf "%d\n", f * s }'
}
for w in $worlds; do
  data=$w extra=()
  if [[ $w == n4noise ]]; then data=n4 extra=(--input_noise "$noise"); fi
  for k in $kinds; do
    dir="$out/runs/$w"
    [[ -f "$dir/$k.done" ]] && continue
    [[ $w == n4noise && $k != classic && $k != modern && $k != gns ]] && continue
    echo "== training $k on $w ($(samples "$k") samples)"
    t0=$SECONDS
    "$bin/npe-train" --model "$k" --dataset_prefix "$out/data/$data/$data" --checkpoint_dir "$dir" --name "$k" \
      --total_samples "$(samples "$k")" --device "$device" --checkpoint_every 5000 --resume --no_progress "${extra[@]}" ${TRAIN_FLAGS:-} \
      > "$dir.$k.log" 2>&1 || { tail -20 "$dir.$k.log"; exit 1; }
    tail -3 "$dir.$k.log"
    echo "$((SECONDS - t0)) s" > "$dir/$k.done"
  done
done

args=()
add() { [[ " $worlds " == *" $2 "* ]] && args+=(--world "$1:$out/runs/$2:$out/data/$3/$3") || true; }
add "4 balls" n4 n4
add "4 balls masses 1/5/25" n4v n4v
for n in 6 7 8; do add "$n balls (trained on 3-5)" n345 "n$n"; done
add "npe2017 4 balls" p4 p4
for n in 6 7 8; do add "npe2017 $n balls (trained on 3-5)" p345 "p$n"; done
add "4 balls input noise $noise" n4noise n4
add "walls O and L" walls walls
add "walls U (trained on O and L)" walls wallsU
add "walls I (trained on O and L)" walls wallsI
"$bin/npe-results" "${args[@]}" --device "$device" --num_scenes "$num_scenes" \
  --out_md "$out/results.md" --out_csv "$out/results.csv" --out_json "$out/results.json"
