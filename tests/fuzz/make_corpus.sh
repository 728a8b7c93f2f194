#!/usr/bin/env bash
# Regenerates the fuzzing corpora in tests/fuzz/corpus/ from files written by npe's own tools
# (small worlds of every kind, short training runs), plus a few hand-written files. Needs the main
# build (scripts/setup.sh). The corpora are committed; run this after a file format changes.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin="$root/build/bin"
c="$root/tests/fuzz/corpus"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
rm -rf "$c"; mkdir -p "$c"/{npy,dataset,world_flags,metrics_csv,model_config,checkpoint,launch_problem,sysid_masses}

# datasets: uniform, variable mass, mixed counts, the npe2017 preset, the GPU engine with obstacles
gen() { local name="$1"; shift; "$bin/npe-datagen" --num_scenes 3 --timesteps 4 --no_progress --threads 1 \
          --out_prefix "$tmp/$name/$name" "$@" >/dev/null; }
gen uniform --num_balls 2
gen variable --num_balls 2 --variable_mass
gen mixed --num_balls 1,2
gen preset --num_balls 2 --preset npe2017
gen obstacles --num_balls 2 --engine gpu --cpu --obstacles 'capsule:100,100,300,100,10;box:600,400,40,20,30'
for d in uniform variable mixed preset obstacles; do
  cp "$tmp/$d/${d}_train.npy" "$c/npy/$d.npy"
  "$root/.venv/bin/python" - "$tmp/$d/$d.json" "$tmp/$d/${d}_train.npy" "$c/dataset/$d" <<'PY'
import struct, sys
m = open(sys.argv[1], 'rb').read(); a = open(sys.argv[2], 'rb').read()
open(sys.argv[3], 'wb').write(struct.pack('<I', len(m)) + m + a)
PY
done
# a sharded dataset: 3 shards merged (splits in parts; its train split's parts concatenated), and
# one shard's own manifest (which parse_manifest refuses)
for k in 0 1 2; do
  "$bin/npe-datagen" --num_scenes 5 --timesteps 4 --num_balls 2 --no_progress --threads 1 --shard $k/3 \
    --out_prefix "$tmp/sharded/sharded" >/dev/null
done
"$bin/npe-datagen" --merge_shards 3 --out_prefix "$tmp/sharded/sharded" >/dev/null
"$root/.venv/bin/python" - "$tmp/sharded" "$c/dataset" <<'PY'
import io, json, struct, sys, numpy as np
d, out = sys.argv[1], sys.argv[2]
def entry(name, manifest, array):
    m = open(f"{d}/{manifest}", 'rb').read(); a = io.BytesIO(); np.save(a, array)
    open(f"{out}/{name}", 'wb').write(struct.pack('<I', len(m)) + m + a.getvalue())
train = next(s for s in json.load(open(f"{d}/sharded.json"))['splits'] if s['name'] == 'train')
entry('sharded', 'sharded.json', np.concatenate([np.load(f"{d}/{p['file']}") for p in train['parts']]))
entry('shard', 'sharded.shard-00000-of-00003.json', np.load(f"{d}/sharded.shard-00000-of-00003_train.npy"))
PY
"$root/.venv/bin/python" - "$c/npy" <<'PY'
import numpy as np, sys
d = sys.argv[1]
np.save(f"{d}/numpy_2d.npy", np.arange(6, dtype='<f4').reshape(2, 3))
np.save(f"{d}/numpy_scalar.npy", np.float32(1.5))
np.save(f"{d}/numpy_empty.npy", np.zeros((0, 4), dtype='<f4'))
with open(f"{d}/numpy_v2.npy", "wb") as f:
    np.lib.format.write_array(f, np.ones((3,), dtype='<f4'), version=(2, 0))
PY

# world flags: --num_balls, newline, --obstacles
printf '4\n' > "$c/world_flags/plain"
printf '3,4,5\ncapsule:100,100,300,100,10' > "$c/world_flags/mixed_capsule"
printf '2\nbox:400,300,50,20,30;capsule:50,500,200,550,5' > "$c/world_flags/box_capsule"

# checkpoints, model configs and metrics CSVs from short training runs on the uniform world
train() { local name="$1"; shift; "$bin/npe-train" --dataset_prefix "$tmp/uniform/uniform" --device cpu --threads 1 \
            --no_progress --name "$name" --checkpoint_dir "$tmp/ck" --val_windows 2 --eval_every 1 "$@" >/dev/null; }
train classic --total_samples 100 --batch_size 50
train np --model np --total_samples 100 --batch_size 50
train modern --modern --total_samples 64 --batch_size 32 --msg_dim 8 --enc_blocks 1 --dec_blocks 1
for n in classic np modern; do
  cp "$tmp/ck/$n.best.pt" "$c/checkpoint/$n.best.pt"
  cp "$tmp/ck/$n.csv" "$c/metrics_csv/$n.csv"
done
cp "$tmp/ck/modern.pt" "$c/checkpoint/modern_with_optimizer.pt"
printf 'step,samples_seen,train_loss,val_loss,lr,seconds\n1,50,nan,2.5e-3,3e-4,0.125\r\n' > "$c/metrics_csv/nan_crlf.csv"
"$root/.venv/bin/python" - "$c/model_config" <<'PY'
import json, sys
d = sys.argv[1]
base = {"neighborhood": 0.2625, "msg_dim": 96, "enc_blocks": 3, "dec_blocks": 3, "expansion": 2, "dropout": 0.0}
for kind in ["classic", "modern", "np", "lstm"]:
    json.dump(dict(base, kind=kind), open(f"{d}/{kind}.json", "w"))
json.dump(dict(base, kind="modern", msg_dim=8, enc_blocks=1, dec_blocks=0, residual_velocity=True),
          open(f"{d}/modern_small_residual.json", "w"))
PY

# npe-optimize problems and npe-sysid outputs
cp "$root/data/examples/launch.json" "$c/launch_problem/launch.json"
printf '{"width":400,"height":300,"radius":20,"balls":[[50,50,10,0,1],[200,150,0,0,5]],"shooter":1,"target_ball":0,"target":[300,200],"frames":5}' \
  > "$c/launch_problem/two_balls.json"
printf '{"format":"npe-sysid","split":"test","estimate":[[1,5,25,1],[5,5,5,5],[25,1,1,1]]}' > "$c/sysid_masses/three_scenes.json"
printf '{"format":"npe-sysid","estimate":[[1.02,4.9,24.5,0.98],[5,5,5,5],[25,1,1,1],[1,1,1,1]],"truth":[]}' \
  > "$c/sysid_masses/no_split.json"
du -sh "$c"/*
