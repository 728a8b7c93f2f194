#!/usr/bin/env bash
# Checks that every tracked C++/CUDA file (*.h, *.cpp, *.cu) is formatted as .clang-format says,
# without changing any: prints the files clang-format would change and exits 1 if there are any,
# 0 otherwise. Installs clang-format through apt when it is missing (Debian 12: clang-format 14),
# so that CI always checks.
#
#   scripts/check_format.sh            # check
#   clang-format -i $(git ls-files '*.h' '*.cpp' '*.cu')   # format in place
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { printf '[format] %s\n' "$*"; }

if ! command -v clang-format >/dev/null; then
  sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  say "installing clang-format"
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends clang-format
fi

[ -f .clang-format ] || { echo "scripts/check_format.sh: no .clang-format in $root" >&2; exit 2; }
mapfile -t files < <(git ls-files '*.h' '*.cpp' '*.cu')
bad=()
for f in "${files[@]}"; do
  [ -f "$f" ] || continue  # deleted in the work tree, not yet in the index
  if ! out="$(clang-format --style=file --dry-run --Werror "$f" 2>&1)"; then
    # a file to reformat; anything else (an unreadable file, a bad .clang-format) is an error
    grep -q -- '-Wclang-format-violations' <<<"$out" || { printf '%s\n' "$out" >&2; exit 2; }
    bad+=("$f")
  fi
done
if ((${#bad[@]})); then
  say "${#bad[@]} of ${#files[@]} files are not formatted as .clang-format says ($(clang-format --version)):"
  printf '  %s\n' "${bad[@]}"
  say "to see the changes: clang-format --dry-run FILE; to fix them: clang-format -i FILE"
  exit 1
fi
say "all ${#files[@]} C++/CUDA files formatted ($(clang-format --version))"
