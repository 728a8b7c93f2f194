#!/usr/bin/env bash
# npe set-up: installs what is missing (Debian 12 packages, a project-local venv with the pinned
# libtorch wheel) and configures + builds the project into build/. Idempotent: a second run only
# checks, then lets the build tool find nothing to do.
#
#   scripts/setup.sh            # everything
#   NPE_BUILD_DIR=... NPE_BUILD_TYPE=Debug NPE_CMAKE_ARGS="-DNPE_FORCE_NO_CUDA=ON" scripts/setup.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
build_dir="${NPE_BUILD_DIR:-$root/build}"
build_type="${NPE_BUILD_TYPE:-Release}"
torch_version="2.11.0"

say() { printf '[setup] %s\n' "$*"; }

# 1. Debian packages -------------------------------------------------------------------------
pkgs=(build-essential cmake ninja-build pkg-config git
      python3 python3-venv python3-pip
      libbox2d-dev libcxxopts-dev libfmt-dev nlohmann-json3-dev
      libavcodec-dev libavformat-dev libswscale-dev libavutil-dev
      libgtest-dev libgmock-dev librapidcheck-dev
      libplplot-dev plplot-driver-cairo libcairo2-dev fonts-dejavu-core)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  say "installing Debian packages: ${missing[*]}"
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  say "Debian packages: all present"
fi

# 2. project-local venv with libtorch (torch==${torch_version}), numpy (the Python loading
#    examples), scikit-build-core (builds the Python package) and pytest (its tests) -------------
venv="$root/.venv"
[ -x "$venv/bin/python" ] || { say "creating $venv"; python3 -m venv "$venv"; }
have_torch="$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("torch"))' 2>/dev/null || true)"
have_rest="$("$venv/bin/python" -c 'import numpy, pytest, scikit_build_core' 2>/dev/null && echo yes || true)"
if [ "${have_torch%%+*}" != "$torch_version" ] || [ -z "$have_rest" ]; then
  say "installing torch==${torch_version}, numpy, scikit-build-core and pytest into $venv (large download, once)"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "torch==${torch_version}" numpy \
      "scikit-build-core==1.1.2" "pytest==8.4.2"
else
  say "venv: torch ${have_torch}, numpy, scikit-build-core, pytest present"
fi
torch_prefix="$("$venv/bin/python" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')"

# 3. configure (once) and build (incremental) ---------------------------------------------------
generator=(); command -v ninja >/dev/null && generator=(-G Ninja)
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  say "configuring $build_dir ($build_type)"
  cmake -S "$root" -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE="$build_type" \
        -DCMAKE_PREFIX_PATH="$torch_prefix" -DNPE_PYTHON="$venv/bin/python" ${NPE_CMAKE_ARGS:-}
fi
say "building $build_dir"
cmake --build "$build_dir" --parallel "$(nproc)"

# 4. the Python package npe (python/) into the venv, built by the same CMake in the same build
#    directory (pyproject.toml, scikit-build-core): only its operators' library is new. Re-installed
#    when the library or the package's sources changed since the last install.
#    Builds without the operators (the sanitizer and fuzzing builds: NPE_SANITIZE, NPE_FUZZ,
#    NPE_PYTHON_PACKAGE=OFF) install nothing.
stamp="$venv/.npe-python-installed"
lib="$build_dir/lib/libnpe_torch_ops.so"
if [ ! -f "$lib" ]; then
  say "Python package npe: not built in $build_dir (not installed from it)"
elif [ ! -f "$stamp" ] || [ -n "$(find "$lib" "$root/python/npe" "$root/pyproject.toml" -newer "$stamp" 2>/dev/null | head -1)" ]; then
  say "installing the Python package npe into $venv"
  PATH="$venv/bin:$PATH" "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-build-isolation \
      --no-deps -Cbuild-dir="$build_dir" -Ccmake.build-type="$build_type" "$root"
  touch "$stamp"
else
  say "Python package npe: up to date"
fi
say "done: tools in $build_dir/bin; import npe with $venv/bin/python"
