#!/usr/bin/env python3
"""Writes the benchmark tables of the docs from the files in bench/.

Every table of measured numbers in README.md and docs/*.md sits between two marker comments,

    <!-- bench:NAME:begin -->
    ...generated table, then a line naming its source files...
    <!-- bench:NAME:end -->

and is made here from bench/*.csv, bench/*.json or a table of a bench/*.md report; it is never
edited by hand. NAME is one of the blocks below (`--list` prints them).

    python3 scripts/bench_tables.py            # rewrite every block in place
    python3 scripts/bench_tables.py --check    # exit 1, naming each stale block, if any differs
    python3 scripts/bench_tables.py --list     # the blocks and their source files

Standard library only.
"""
import argparse
import csv
import json
import math
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
MARKER = re.compile(r"<!-- bench:([A-Za-z0-9_.-]+):begin -->\n(.*?)<!-- bench:\1:end -->", re.S)


# ---------------------------------------------------------------------------------------------
# reading bench/ files


def read_csv(name):
    with open(os.path.join(BENCH, name), newline="") as f:
        return list(csv.DictReader(f))


def read_json(name):
    with open(os.path.join(BENCH, name)) as f:
        return json.load(f)


def md_tables(name):
    """The Markdown tables of a bench/*.md report, each a list of its lines."""
    tables, cur = [], []
    with open(os.path.join(BENCH, name)) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("|"):
                cur.append(line)
            elif cur:
                tables.append(cur)
                cur = []
    if cur:
        tables.append(cur)
    return tables


# ---------------------------------------------------------------------------------------------
# formatting


def sig(v, digits=3):
    """v with `digits` significant digits, trailing zeros kept (709, 2.20, 9.66, 0.0135)."""
    if v == 0 or not math.isfinite(v):
        return f"{v:g}"
    decimals = max(0, digits - 1 - int(math.floor(math.log10(abs(v)))))
    return f"{v:.{decimals}f}"


def rate(v):
    """A rate as 9.66 K, 709 K, 2.20 M, 184 G."""
    for div, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(v) >= div:
            return f"{sig(v / div)} {unit}"
    return sig(v)


def per_substep(seconds):
    us = seconds * 1e6
    return f"{us:.1f} us" if us < 1000 else f"{us / 1000:.2f} ms"


def times(v):
    return f"{v:.0f}x" if v >= 10 else f"{v:.1f}x"


def sci(v, digits=2):
    return f"{v:.{digits}e}".replace("e-0", "e-").replace("e+0", "e+")


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


def source_line(files, note=""):
    names = ", ".join(f"`bench/{f}`" for f in files)
    return f"Source: {names}{'; ' + note if note else ''}. Table written by `scripts/bench_tables.py`."


# ---------------------------------------------------------------------------------------------
# the blocks

TRAIN_NPE = [("eager", "npe eager"), ("graph", "npe graph"), ("graph+bf16", "npe graph + bf16"), ("fused", "npe fused")]
TRAIN_TORCH = [("eager", "PyTorch eager"), ("eager+bf16", "PyTorch eager + bf16"),
               ("compile", "torch.compile"), ("compile+bf16", "torch.compile + bf16")]


def train_table(npe_csv, torch_json):
    npe = read_csv(npe_csv)
    pt = read_json(torch_json)
    models = []
    for r in npe:
        if (r["model"], r["batch"]) not in models:
            models.append((r["model"], r["batch"]))
    npe_cols = [c for c in TRAIN_NPE if any(r["variant"] == c[0] for r in npe)]
    pt_cols = [c for c in TRAIN_TORCH if any(r["variant"] == c[0] for r in pt["rows"])]
    header = ["model (batch)"] + [c[1] for c in npe_cols] + [c[1] for c in pt_cols] + \
        ["npe's best / PyTorch's best without CUDA graphs"]
    rows = []
    for model, batch in models:
        mine = {r["variant"]: float(r["samples_per_s"]) for r in npe if r["model"] == model and r["batch"] == batch}
        theirs = {r["variant"]: float(r["samples_per_s"]) for r in pt["rows"]
                  if r["model"] == model and str(r["batch"]) == batch}
        best_mine = max(mine.values())
        row = [f"{model} ({batch})"]
        for v, _ in npe_cols:
            cell = rate(mine[v]) if v in mine else "n/a"
            row.append(f"**{cell}**" if v in mine and mine[v] == best_mine else cell)
        row += [rate(theirs[v]) if v in theirs else "n/a" for v, _ in pt_cols]
        row.append(f"**{times(best_mine / max(theirs.values()))}**" if theirs else "n/a")
        rows.append(row)
    lines = table(header, rows)
    lines += ["", "samples/s; a sample is one window of one scene. " + source_line(
        [npe_csv, torch_json], f"{pt['device']}, torch {pt['torch']}") +
        " The last column divides npe's fastest variant by the fastest PyTorch one. PyTorch runs "
        "without CUDA graphs (`bench/train_pytorch.py`: `torch.compile` in its default mode, batch "
        "indices drawn on the host), so this is not yet a comparison against PyTorch's strongest "
        "counterpart."]
    return lines, [npe_csv, torch_json]


def train_dp_table(name):
    rows = read_csv(name + ".csv")
    meta = read_json(name + ".json")
    floats = int(meta["gradient_floats"])
    out = []
    for r in rows:
        gpus, batch = int(r["gpus"]), int(r["batch_per_gpu"])
        ar = float(r["allreduce_us"])
        out.append([gpus, batch if gpus == 1 else f"{gpus} x {batch}", rate(float(r["samples_per_s"])),
                    f"{float(r['step_us']):.0f} us", f"{float(r['speedup']):.2f}x",
                    f"{ar:.1f} us" if ar > 0 else "n/a"])
    header = ["GPUs", "batch", "samples/s", "step", "speedup",
              f"all-reduce of the gradient alone ({floats:,} floats, {floats * 4 / 2**20:.1f} MiB)"]
    lines = table(header, out)
    lines += ["", source_line([name + ".csv", name + ".json"], "`npe-bench train-dp` under torchrun, "
                                                              "modern model, graph + bf16, two NVIDIA H200s of one host")]
    return lines, [name + ".csv", name + ".json"]


ENGINE_CASES = {"a_4ball_recorded": "(a) 4-ball scenes, every substep recorded",
                "b_4ball_final": "(b) 4-ball scenes, final state only"}


def engine_table(name):
    rows = read_csv(name + ".csv")
    meta = read_json(name + ".json")
    out = []
    for r in rows:
        case = r["case"]
        label = ENGINE_CASES.get(case)
        if label is None and case.startswith("c_world_"):
            n = int(case[len("c_world_"):])
            label = f"(c) one world of 10^{round(math.log10(n))} balls" if n > 0 and 10 ** round(math.log10(n)) == n \
                else f"(c) one world of {n:,} balls"
        backend = "CUDA" if r["backend"] == "cuda" else f"CPU, {meta.get('cpu_threads', '?')} threads"
        scenes, subs, med = int(r["scenes"]), int(r["substeps"]), float(r["median_s"])
        bps = float(r["bytes_per_s"])
        copy = float(r["device_copy_bytes_per_s"])
        out.append([label, backend, r["precision"], f"{scenes:,}", subs, rate(float(r["body_steps_per_s"])),
                    per_substep(med / subs), f"{rate(bps)}B/s ({float(r['bytes_per_body_step']):g} B)",
                    f"{bps / copy:.0%}" if copy > 0 else ""])
    header = ["case", "backend", "precision", "scenes", "substeps", "body-steps/s", "time per substep",
              "bytes/s counted (per body-step)", "of the device copy"]
    lines = table(header, out)
    lines += ["", source_line([name + ".csv", name + ".json"],
                              f"`npe-bench engine`, {meta['cuda_device']}; device-to-device copy "
                              f"{rate(meta['device_copy_bytes_per_s'])}B/s, bytes read plus written")]
    return lines, [name + ".csv", name + ".json"]


def k_label(k, substeps_per_frame, total):
    if k == substeps_per_frame:
        return f"{k} (one frame)"
    if k == total:
        return f"{k} (one segment: all recomputed)"
    if k == 1:
        return "1 (every state stored)"
    return str(k)


def diffsim_table(name):
    rows = read_csv(name + ".csv")
    meta = read_json(name + ".json")
    # substeps per frame of each world: the checkpoint interval most rows use (K = one frame)
    ks = {}
    for r in rows:
        ks.setdefault(r.get("world", "dataset"), []).append(int(r["checkpoint_every"]))
    frame_k = {w: max(set(k), key=k.count) for w, k in ks.items()}
    out = []
    for r in rows:
        balls, subs = int(r["balls"]), int(r["substeps"])
        spf = frame_k[r.get("world", "dataset")]
        words = r.get("contact_words", "1") == "1"
        share = float(r.get("contact_share", 0))
        out.append([f"{r['world']} ({balls} balls)", r["backend"].upper() if r["backend"] == "cuda" else "CPU",
                    r["precision"], f"{int(r['scenes']):,}", k_label(int(r["checkpoint_every"]), spf, subs),
                    "yes" if words else "no (dense)", f"{share:.2%}" if words else "",
                    rate(float(r["forward_body_steps_per_s"])), rate(float(r["forward_backward_body_steps_per_s"])),
                    f"**{float(r['ratio']):.3f}**" if words and r["backend"] == "cuda" and int(r["checkpoint_every"]) == spf
                    else f"{float(r['ratio']):.3f}",
                    f"{float(r['bytes_per_scene_step']):g} B"])
    header = ["world", "backend", "precision", "scenes", "K (checkpoint every)", "contact words", "contact",
              "forward body-steps/s", "forward + backward", "ratio", "memory per scene-step"]
    lines = table(header, out)
    lines += ["", source_line([name + ".csv", name + ".json"], f"`npe-bench diffsim`, {meta['cuda_device']}")]
    return lines, [name + ".csv", name + ".json"]


DIFFSIM_VERSIONS = [
    ("diffsim_h200.csv", "1", "one lane per ball, frame counters kept incrementally, the segment's last state in registers"),
    ("diffsim_h200_pair_skip.csv", "1", "+ the adjoint skips a ball's pair tests where the recomputation found no partner"),
    ("diffsim_h100.csv", "0", "the dense sweep of today's code (no contact words)"),
    ("diffsim_h100.csv", "1", "+ contact words: contact-free substeps skip the scratch round trip and every contact test"),
]


def diffsim_versions_table():
    out, files = [], []
    for name, words, label in DIFFSIM_VERSIONS:
        rows = [r for r in read_csv(name) if r["backend"] == "cuda" and r.get("world", "dataset") == "dataset"
                and r.get("contact_words", "1") == words and int(r["checkpoint_every"]) == 64]
        ratio = {r["precision"]: float(r["ratio"]) for r in rows}
        device = read_json(name.replace("_pair_skip", "").replace(".csv", ".json"))["cuda_device"]
        out.append([label, f"`bench/{name}`", device, f"{ratio.get('float32', float('nan')):.3f}",
                    f"{ratio.get('float64', float('nan')):.3f}"])
        if name not in files:
            files.append(name)
    lines = table(["version of the backward pass", "file", "GPU", "float32 ratio", "float64 ratio"], out)
    lines += ["", source_line(files, "CUDA, dataset world, K = one frame")]
    return lines, files


def compare_table():
    u = read_json("compare_box2d.json")
    v = read_json("compare_box2d_variable_mass.json")

    def both(f):
        return [f(u), f(v)]

    rows = [
        ["before the first collision: max \\|dx\\|, max \\|dv\\|"] +
        both(lambda d: f"{sig(d['pre_collision_max_dx_px'])} px, {sci(d['pre_collision_max_dv_px_per_s'], 1)} px/s"),
        ["between the first and second collision: \\|dv\\| / v_max median, p90"] +
        both(lambda d: f"{sci(d['single_collision_dv_over_max_speed']['median'], 1)}, "
                       f"{sci(d['single_collision_dv_over_max_speed']['p90'], 1)} ({d['single_collision_scenes']:,} scenes)"),
        ["same interval: \\|dx\\| median, p90"] +
        both(lambda d: f"{d['single_collision_dx_px']['median']:.2f} px, {d['single_collision_dx_px']['p90']:.2f} px"),
        ["collisions per scene, Box2D / engine"] +
        both(lambda d: f"{d['box2d']['collisions_per_scene']:.3f} / {d['engine']['collisions_per_scene']:.3f}"),
        ["kinetic-energy drift, mean and max: Box2D"] +
        both(lambda d: f"{sci(d['box2d']['mean_energy_drift'], 1)}, {sci(d['box2d']['max_energy_drift'], 1)}"),
        ["same, engine (frames without an active contact)"] +
        both(lambda d: f"{sci(d['engine']['mean_energy_drift'], 1)}, {sci(d['engine']['max_energy_drift'], 1)}"),
        ["mean speed, Box2D / engine"] +
        both(lambda d: f"{d['box2d']['mean_speed_px_per_s']:.3f} / {d['engine']['mean_speed_px_per_s']:.3f} px/s"),
        ["speed distributions, Kolmogorov-Smirnov statistic"] + both(lambda d: f"{d['speed_ks_statistic']:.4f}"),
    ]
    lines = table(["", f"uniform mass ({u['scenes']:,} scenes)", f"variable mass ({v['scenes']:,} scenes)"], rows)
    files = ["compare_box2d.json", "compare_box2d_variable_mass.json"]
    lines += ["", source_line(files, f"`npe-compare-engines --num_scenes {u['scenes']}`, without and with `--variable_mass`; "
                                     f"engine at {u['engine_substeps']} substeps, omega {u['engine_contact_omega']:g} /s")]
    return lines, files


MODELS = ["classic", "modern", "np", "lstm", "gns", "simulator", "constant_velocity"]


def experiments_table(name):
    d = read_json(name + ".json")
    out = []
    for w in d["worlds"]:
        for m in MODELS:
            if m not in w["models"]:
                continue
            r = w["models"][m]
            out.append([w["label"], m.replace("_", " "), w["num_scenes"], f"{r['val_mse']:.3e}",
                        f"{r['cosine'][9]:.4f}", f"{r['cosine'][49]:.4f}", f"{r['rel_mag_error'][9]:.4f}",
                        f"{r['rel_mag_error'][49]:.4f}", f"{r['pos_error_px'][49]:.1f}"])
    lines = table(["world", "model", "test scenes", "val MSE", "cos@10", "cos@50", "rel@10", "rel@50", "pos@50 px"], out)
    lines += ["", source_line([name + ".json", name + ".csv"], "`npe-results`; the CSV holds every step")]
    return lines, [name + ".json", name + ".csv"]


CLAIMS = [("modern>classic", "modern beats classic"), ("classic>np", "classic beats np"),
          ("classic>lstm", "classic beats lstm"), ("modern>np", "modern beats np"), ("modern>lstm", "modern beats lstm")]


def claims_table(name):
    d = read_json(name + ".json")

    def one(metric, steps):
        if not steps:
            return f"{metric} yes"
        listed = " ".join(str(s) for s in steps[:4]) + (" ..." if len(steps) > 4 else "")
        return f"{metric} **no** at {len(steps)} step{'s' if len(steps) > 1 else ''}: {listed}"

    out = []
    for w in d["worlds"]:
        row = [w["label"]]
        for key, _ in CLAIMS:
            c = w["claims"].get(key)
            row.append("n/a" if c is None else
                       one("cos", c["cosine_not_higher_at"]) + "; " + one("rel", c["rel_error_not_lower_at"]))
        out.append(row)
    lines = table(["world"] + [c[1] for c in CLAIMS], out)
    lines += ["", source_line([name + ".json"], "`npe-results`")]
    return lines, [name + ".json"]


def md_table_block(name, note="its first table"):
    lines = list(md_tables(name)[0])
    lines += ["", source_line([name], note)]
    return lines, [name]


def sysid_table(name):
    """The float64 table of the report, with the float32 table's simulator row after its own."""
    t64, t32 = md_tables(name)[:2]
    lines = list(t64[:2])
    for row in t64[2:]:
        if row.startswith("| simulator"):
            lines.append(row.replace("| simulator", "| simulator, float64", 1))
            lines += [r.replace("| simulator", "| simulator, float32", 1) for r in t32[2:] if r.startswith("| simulator")]
        else:
            lines.append(row)
    lines += ["", source_line([name], "its float64 and float32 tables")]
    return lines, [name]


BLOCKS = {
    "train_h100": lambda: train_table("train_h100.csv", "train_pytorch_h100.json"),
    "train_h200": lambda: train_table("train_h200.csv", "train_pytorch_h200.json"),
    "train_dp_h200x2": lambda: train_dp_table("train_dp_h200x2"),
    "recipe_modern_fused_h100": lambda: md_table_block("recipe_modern_fused_h100.md"),
    "recipe_classic_fused_h100": lambda: md_table_block("recipe_classic_fused_h100.md"),
    "engine_h200": lambda: engine_table("engine_h200"),
    "compare_box2d": compare_table,
    "diffsim_h100": lambda: diffsim_table("diffsim_h100"),
    "diffsim_versions": diffsim_versions_table,
    "experiments_h100": lambda: experiments_table("experiments_h100"),
    "experiments_h100_claims": lambda: claims_table("experiments_h100"),
    "sysid_h200": lambda: sysid_table("sysid_h200.md"),
}


# ---------------------------------------------------------------------------------------------
# the docs


def doc_files():
    files = [os.path.join(ROOT, "README.md")]
    docs = os.path.join(ROOT, "docs")
    if os.path.isdir(docs):
        files += sorted(os.path.join(docs, f) for f in os.listdir(docs) if f.endswith(".md"))
    return files


def render(name):
    if name not in BLOCKS:
        raise KeyError(name)
    lines, _ = BLOCKS[name]()
    return "\n".join(lines) + "\n"


def process(path, write):
    """Returns (new text, stale block names, unknown block names)."""
    with open(path) as f:
        text = f.read()
    stale, unknown = [], []

    def sub(m):
        name = m.group(1)
        if name not in BLOCKS:
            unknown.append(name)
            return m.group(0)
        body = render(name)
        if body != m.group(2):
            stale.append(name)
        return f"<!-- bench:{name}:begin -->\n{body}<!-- bench:{name}:end -->"

    new = MARKER.sub(sub, text)
    for name in re.findall(r"<!-- bench:([A-Za-z0-9_.-]+):begin -->", text):
        if f"<!-- bench:{name}:end -->" not in text:
            unknown.append(name + " (no end marker)")
    if write and new != text:
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(new)
        os.replace(tmp, path)
    return new, stale, unknown


def check(verbose=True):
    """Number of problems found (stale or unknown blocks); prints each."""
    problems = 0
    for path in doc_files():
        _, stale, unknown = process(path, write=False)
        rel = os.path.relpath(path, ROOT)
        for name in stale:
            print(f"{rel}: block bench:{name} is stale; run python3 scripts/bench_tables.py")
        for name in unknown:
            print(f"{rel}: unknown block bench:{name} (known: {', '.join(sorted(BLOCKS))})")
        problems += len(stale) + len(unknown)
    if verbose and problems == 0:
        print("bench tables: every block is up to date")
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a block differs from what would be written")
    ap.add_argument("--list", action="store_true", help="print the blocks and their source files")
    a = ap.parse_args()
    if a.list:
        for name in sorted(BLOCKS):
            print(f"{name}: " + ", ".join("bench/" + f for f in BLOCKS[name]()[1]))
        return 0
    if a.check:
        return 1 if check() else 0
    bad = 0
    for path in doc_files():
        _, stale, unknown = process(path, write=True)
        rel = os.path.relpath(path, ROOT)
        for name in stale:
            print(f"{rel}: rewrote bench:{name}")
        for name in unknown:
            print(f"{rel}: unknown block bench:{name}")
        bad += len(unknown)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
