#!/usr/bin/env bash
# The paper's experiments (Chang et al. 2017, section 4) end to end: the datasets of both data
# regimes, the four models (classic and modern NPE, the NP and LSTM baselines) and the graph
# network simulator trained on each training world, the results table (npe-results), and a
# long-rollout table on 600-step rollouts. Re-running continues where it stopped: datasets that
# exist are kept, finished runs are skipped and interrupted ones resume from their last checkpoint
# (npe-train --resume), so the work can be spread over several time-limited jobs.
#
# Usage: scripts/experiments.sh [OUT_DIR]          (default out/experiments)
# Environment:
#   SCALE        fraction of each model's full recipe (classic, np, lstm: 60 M samples at batch 50;
#                modern, gns: 200 M at batch 2048), default 0.1
#   SCALES       per-run overrides of SCALE, space-separated KIND=S or WORLD/KIND=S (the more
#                specific wins; 0 skips the run), e.g. "np=0.1 lstm=0.1 walls/classic=0.25"
#   SCENES       scenes per training dataset (default 12000); EVAL_SCENES per 6/7/8-ball dataset (3000)
#   KINDS        models to train (default "classic modern np lstm gns"); WORLDS training worlds
#                (default "n4 n4v n345 p4 p345 n4noise n4rw walls")
#   NOISE        npe-train --input_noise of the n4noise runs (default 0.05, independent noise)
#   RW_NOISES    the random-walk noise study's scales (default "0.0003 0.003 0.03"), trained on
#                n4's data for NOISE_KINDS (default "classic modern")
#   LONG_SCENES  test scenes of 602 frames per long-rollout set (default 200; 0: no long table)
#   JOBS         training runs at once (default 1; on one GPU, share it with CUDA MPS)
#   TRAIN_FLAGS  extra npe-train flags for every run (e.g. --residual_velocity)
#   STAGES       which of "data train eval" to run (default all three)
#   DEVICE       auto | cpu | cuda (default auto); BIN the tools' folder (default build/bin)
#   NUM_SCENES   test scenes rolled out per world in the table (default 200)
#
# Training worlds (default regime: 800 x 600 px, radius 60 px, speeds up to 60 px/s; npe2017:
# npe-datagen --preset npe2017):
#   n4: 4 balls, mass 1      n4v: 4 balls, masses {1, 5, 25}      n345: 3, 4 or 5 balls, mass 1
#   p4: npe2017, 4 balls     p345: npe2017, 3, 4 or 5 balls
#   n4noise: n4's data, trained with independent input noise (classic, modern and gns only)
#   n4rw: n4's data, trained with random-walk noise (npe-train --noise random_walk), one world
#         n4rw<S> per scale S of RW_NOISES
#   walls: the paper's walls worlds (npe-datagen --preset walls), 2 balls inside walls of the
#          shapes O and L
# Evaluation (results.md): n4, n4v and p4 on their own test splits; n345 and p345 on 6, 7 and 8
# balls; walls on O and L (held-out scenes) and on the shapes U and I. Long rollouts
# (results_long.md): the models of n4, the noise runs and p4 on new 602-frame scenes of their
# worlds, 600 steps, scored at 50, 100, 300 and 600 steps next to the simulator and constant
# velocity. Mass inference (mass_inference.md): every model of n4v on NUM_SCENES test scenes of
# n4v, next to npe-sysid's simulator fit (the paper's section 4.3).
set -euo pipefail
out="${1:-out/experiments}"
bin="${BIN:-build/bin}"
scale="${SCALE:-0.1}"
scenes="${SCENES:-12000}"
eval_scenes="${EVAL_SCENES:-3000}"
kinds="${KINDS:-classic modern np lstm gns}"
worlds="${WORLDS:-n4 n4v n345 p4 p345 n4noise n4rw walls}"
noise="${NOISE:-0.05}"
rw_noises="${RW_NOISES:-0.0003 0.003 0.03}"
noise_kinds="${NOISE_KINDS:-classic modern}"
long_scenes="${LONG_SCENES:-200}"
jobs="${JOBS:-1}"
device="${DEVICE:-auto}"
num_scenes="${NUM_SCENES:-200}"
[[ $jobs =~ ^[1-9][0-9]*$ ]] || { echo "experiments.sh: JOBS: expected a count >= 1, found '$jobs'" >&2; exit 1; }
for e in ${SCALES:-}; do
  [[ $e =~ ^[a-z0-9.]+(/[a-z]+)?=[0-9]*\.?[0-9]+$ ]] ||
    { echo "experiments.sh: SCALES: expected KIND=S or WORLD/KIND=S entries (S a number), found '$e'" >&2; exit 1; }
done
for tool in npe-datagen npe-train npe-results npe-sysid; do
  [[ -x "$bin/$tool" ]] || { echo "experiments.sh: $bin/$tool not found; build first (scripts/setup.sh) or set BIN" >&2; exit 1; }
done
mkdir -p "$out/data" "$out/runs"
stage() { [[ " ${STAGES:-data train eval} " == *" $1 "* ]]; }

dataset() {  # name scenes seed flags...
  local name=$1 n=$2 seed=$3
  shift 3
  [[ -f "$out/data/$name/$name.json" ]] && return 0
  "$bin/npe-datagen" --num_scenes "$n" --seed "$seed" --out_prefix "$out/data/$name/$name" --no_progress "$@"
}
stage data && {
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
if ((long_scenes > 0)); then
  long_total=$((long_scenes * 20 / 3 + 1))  # the test split is 15% of the scenes
  dataset n4long "$long_total" 41 --num_balls 4 --timesteps 602
  dataset p4long "$long_total" 42 --num_balls 4 --preset npe2017 --timesteps 602
fi
}
# n4rw stands for one world per random-walk noise scale
expanded=""
for w in $worlds; do
  if [[ $w == n4rw ]]; then for s in $rw_noises; do expanded+=" n4rw$s"; done; else expanded+=" $w"; fi
done
worlds="${expanded# }"

scale_of() {  # world kind -> this run's fraction of the recipe (SCALES, else SCALE)
  local r="$scale" e
  for e in ${SCALES:-}; do [[ ${e%%=*} == "$2" ]] && r=${e#*=}; done
  for e in ${SCALES:-}; do [[ ${e%%=*} == "$1/$2" ]] && r=${e#*=}; done
  echo "$r"
}
samples() {  # world kind -> total samples of the run
  local full=60000000
  [[ $2 == modern || $2 == gns ]] && full=200000000
  awk -v f="$full" -v s="$(scale_of "$1" "$2")" 'BEGIN { printf "%d\n", f * s }'
}
train_run() {  # world kind: one training run
  local w=$1 k=$2 data=$1 dir="$out/runs/$1" t0=$SECONDS extra=()
  if [[ $w == n4noise ]]; then data=n4 extra=(--input_noise "$noise"); fi
  if [[ $w == n4rw* ]]; then data=n4 extra=(--noise random_walk --input_noise "${w#n4rw}"); fi
  echo "== training $k on $w ($(samples "$w" "$k") samples)"
  mkdir -p "$dir"
  "$bin/npe-train" --model "$k" --dataset_prefix "$out/data/$data/$data" --checkpoint_dir "$dir" --name "$k" \
    --total_samples "$(samples "$w" "$k")" --device "$device" --checkpoint_every 5000 --resume --no_progress "${extra[@]}" ${TRAIN_FLAGS:-} \
    > "$dir.$k.log" 2>&1 || { echo "== $k on $w failed:"; tail -20 "$dir.$k.log"; return 1; }
  tail -3 "$dir.$k.log"
  echo "$((SECONDS - t0)) s" > "$dir/$k.done"
}
# The runs, JOBS at a time (each one's output is printed when all have ended). A run is skipped
# when done, or when its scale is 0.
runs=()
# kind by kind: with JOBS below the run count, each model's runs start together
for k in $kinds; do
  stage train || break
  for w in $worlds; do
    [[ -f "$out/runs/$w/$k.done" ]] && continue
    [[ $w == n4noise && $k != classic && $k != modern && $k != gns ]] && continue
    [[ $w == n4rw* && " $noise_kinds " != *" $k "* ]] && continue
    [[ $(samples "$w" "$k") == 0 ]] && continue
    runs+=("$w $k")
  done
done
pids=() failed=0
for r in "${runs[@]}"; do
  while (( $(jobs -rp | wc -l) >= jobs )); do wait -n || failed=1; done
  train_run $r > "$out/runs/${r/ /.}.out" 2>&1 &
  pids+=("$!:${r/ /.}")
done
for p in "${pids[@]}"; do wait "${p%%:*}" || failed=1; cat "$out/runs/${p#*:}.out"; done
((failed == 0)) || { echo "experiments.sh: a training run failed (above)" >&2; exit 1; }

stage eval || exit 0
args=()
add() {  # label run-world eval-dataset: a row group, where the world has trained models
  [[ " $worlds " == *" $2 "* ]] && compgen -G "$out/runs/$2/*.best.pt" > /dev/null &&
    args+=(--world "$1:$out/runs/$2:$out/data/$3/$3") || true
}
add "4 balls" n4 n4
add "4 balls masses 1/5/25" n4v n4v
for n in 6 7 8; do add "$n balls (trained on 3-5)" n345 "n$n"; done
add "npe2017 4 balls" p4 p4
for n in 6 7 8; do add "npe2017 $n balls (trained on 3-5)" p345 "p$n"; done
add "4 balls input noise $noise" n4noise n4
for s in $rw_noises; do add "4 balls random-walk noise $s" "n4rw$s" n4; done
add "walls O and L" walls walls
add "walls U (trained on O and L)" walls wallsU
add "walls I (trained on O and L)" walls wallsI
if ((${#args[@]})); then
  "$bin/npe-results" "${args[@]}" --device "$device" --num_scenes "$num_scenes" --simulator \
    --out_md "$out/results.md" --out_csv "$out/results.csv" --out_json "$out/results.json"
fi

if ((long_scenes > 0)); then
  args=()
  add "4 balls 600 steps" n4 n4long
  add "4 balls input noise $noise 600 steps" n4noise n4long
  for s in $rw_noises; do add "4 balls random-walk noise $s 600 steps" "n4rw$s" n4long; done
  add "npe2017 4 balls 600 steps" p4 p4long
  if ((${#args[@]})); then
    "$bin/npe-results" "${args[@]}" --device "$device" --num_scenes "$long_scenes" --rollout_steps 600 --steps 50,600 \
      --long_steps 50,100,300,600 --simulator --out_md "$out/results_long.md" --out_csv "$out/results_long.csv" \
      --out_json "$out/results_long.json"
  fi
fi

if [[ " $worlds " == *" n4v "* ]]; then
  ck=()
  for k in $kinds; do
    [[ -f "$out/runs/n4v/$k.best.pt" ]] && ck+=(--"${k}_ckpt" "$out/runs/n4v/$k.best.pt")
  done
  "$bin/npe-sysid" --dataset_prefix "$out/data/n4v/n4v" --num_scenes "$num_scenes" --device "$device" "${ck[@]}" \
    --out_json "$out/mass_inference.json" --out_md "$out/mass_inference.md"
fi
