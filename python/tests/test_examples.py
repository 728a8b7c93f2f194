"""The examples in examples/ run and do what docs/python.md says they do."""
import os
import re
import subprocess
import sys

from conftest import ROOT, run_tool


def run_example(name, *args):
    r = subprocess.run([sys.executable, str(ROOT / "examples" / name), *map(str, args)], capture_output=True,
                       text=True, env=os.environ)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_mass_identification_finds_the_masses_of_colliding_balls(data_dir):
    prefix = data_dir / "vm" / "vm"
    run_tool("npe-datagen", "--variable_mass", "--num_scenes", 200, "--timesteps", 31, "--seed", 2, "--no_progress",
             "--out_prefix", prefix)
    out = run_example("mass_identification.py", prefix, "--scenes", 30, "--iterations", 80)
    informed = int(re.search(r"(\d+) of 30 scenes", out).group(1))
    correct = float(re.search(r"correct: ([\d.]+)%", out).group(1))
    assert informed >= 5, out
    assert correct >= 80, out


def test_launch_optimisation_hits_the_target():
    out = run_example("launch_optimisation.py")
    miss = float(re.search(r"ends ([\d.]+) px from the target", out).group(1))
    assert miss < 5, out
