#!/usr/bin/env bash
# Developer script: tabulates the npe-control comparison trained on the GPU machine by
# scripts/device_control.sh bench/control_compare_h100/jobs.txt (docs/control.md). Copies the
# fetched runs into out/control/compare/, runs `npe-control compare` for each comparison at the
# targets 0.8 and 0.2 (with the jobs file's flags), and keeps the tables, plots and each run's
# metrics in bench/control_compare_<gpu>/ (h100 or h200, read from the call's gpu.txt).
#   scripts/control_tables.sh FILES_AT SEEDS      FILES_AT: the device call's files; SEEDS: 0 .. SEEDS-1
set -euo pipefail
src="$1"; n="$2"
bin=build/bin/npe-control
gpu=$(grep -oiE 'H100|H200' "$src/gpu.txt" 2> /dev/null | head -1 | tr 'A-Z' 'a-z')
[ -n "$gpu" ] || { echo "control_tables: $src/gpu.txt names no H100 or H200" >&2; exit 1; }
dst=bench/control_compare_$gpu
[ -d "$src/compare" ] && [ -n "$(ls -A "$src/compare")" ] || { echo "control_tables: no runs in $src/compare" >&2; exit 1; }
mkdir -p out/control/compare
cp -r "$src"/compare/* out/control/compare/
chmod -R u+w out/control/compare
H="--num_envs 4096 --max_seconds 120 --max_frames 10000000000 --eval_every_frames 2000000 --checkpoint_seconds 1000000"
B="--num_envs 4096 --max_seconds 120 --max_frames 300000000 --eval_every_frames 12288000 --checkpoint_seconds 1000000 --updates_per_step 16"
# compare would train a missing run here, on the CPU: refuse instead
for d in "herding sac apg hybrid" "billiards sac apg hybrid cem" "billiards_zo apg"; do
  set -- $d; dir=$1; shift
  for a in "$@"; do for ((s = 0; s < n; ++s)); do
    [ -f "out/control/compare/$dir/$a/seed$s/summary.json" ] || { echo "missing run: $dir/$a/seed$s" >&2; exit 1; }
  done; done
done
for t in 0.8 0.2; do
  tag=$(python3 -c "print(round($t * 100))")
  # shellcheck disable=SC2086
  {
    $bin compare --task herding --algos sac,apg,hybrid --seeds "$n" --out_dir out/control/compare/herding --target_success $t $H
    $bin compare --task billiards --algos sac,apg,hybrid,cem --seeds "$n" --out_dir out/control/compare/billiards --target_success $t $B
    $bin compare --task billiards --algos apg --seeds "$n" --out_dir out/control/compare/billiards_zo --target_success $t $B --zo_mix 0.5
  }
  for d in herding billiards billiards_zo; do
    mkdir -p "$dst/$d"
    for f in compare.md compare.json compare.png; do
      [ -f "out/control/compare/$d/$f" ] && cp "out/control/compare/$d/$f" "$dst/$d/${f%.*}_$tag.${f##*.}"
    done
  done
done
for r in out/control/compare/*/*/seed*; do
  rel=${r#out/control/compare/}
  mkdir -p "$dst/runs/$rel"
  cp "$r/metrics.csv" "$r/summary.json" "$dst/runs/$rel/"
done
cp "$src"/gpu.txt "$src"/smi.csv "$dst/" 2> /dev/null || true
echo "control_tables: wrote $dst/{herding,billiards,billiards_zo}/compare_{80,20}.{md,json,png} and runs/"
