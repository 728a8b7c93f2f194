#!/usr/bin/env bash
# The libraries' dependencies point one way (docs/layout.md): a library may include headers of
# the libraries below it, never of one above. Layers, bottom to top:
#   core < gpu < datagen < npe < rollout < control < tools
# Each library's own headers and sources (FOLDER/include, FOLDER/src) are checked; tests are not.
# Exits 1 naming each offending include. Run by ctest (LayerCheck).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
layers=(core gpu datagen model rollout control)   # include prefix npe/<name>/ of each layer
folders=(core gpu datagen npe rollout control)    # the folder that holds it
rank() { local i; for i in "${!layers[@]}"; do [ "${layers[$i]}" = "$1" ] && { echo "$i"; return; }; done; echo -1; }
bad=0
for i in "${!folders[@]}"; do
  folder="${folders[$i]}"
  while IFS= read -r hit; do
    file="${hit%%:*}"; rest="${hit#*:}"; line="${rest%%:*}"
    inc="$(sed -E 's/.*#include *"npe\/([a-z_]+)\/.*/\1/' <<<"$rest")"
    r="$(rank "$inc")"
    if [ "$r" -gt "$i" ]; then
      echo "$file:$line: library '$folder' includes a header of '$inc', a layer above it"; bad=1
    fi
  done < <(grep -rnE '#include *"npe/[a-z_]+/' "$folder" --include='*.h' --include='*.cpp' --include='*.cu' || true)
done
# A layer's CMake target must not link a target above it either.
declare -A target_rank=([npe_core]=0 [npe_gpu]=1 [npe_diffsim_torch]=1 [npe_datagen]=2 [npe_model]=3
                        [npe_rollout]=4 [npe_eval]=4 [npe_media]=4 [npe_control]=5)
for i in "${!folders[@]}"; do
  folder="${folders[$i]}"
  for t in "${!target_rank[@]}"; do
    if [ "${target_rank[$t]}" -gt "$i" ] && grep -qE "target_link_libraries\([a-z_]+ .*\b$t\b" "$folder/CMakeLists.txt"; then
      echo "$folder/CMakeLists.txt: library '$folder' links $t, a layer above it"; bad=1
    fi
  done
done
# Libraries name fields, never flags (a tool maps npe::FieldError's field to its flag, tools/cli.h):
# no string literal in a library source may hold a flag ("--radius"), except inside a whole
# command line of another tool ("npe-datagen --merge_shards N ..."), which tells what to run.
while IFS= read -r hit; do
  echo "$hit: a library names a flag; name the field (npe::FieldError) and let the tool map it"; bad=1
done < <(grep -rnE '"[^"]*--[a-z]' core gpu datagen npe rollout --include='*.h' --include='*.cpp' --include='*.cu' \
           | grep -vE '^[^:]+:[0-9]+: *//' | grep -vE 'npe-[a-z]+ --' || true)
if [ "$bad" -ne 0 ]; then exit 1; fi
echo "layers: core < gpu < datagen < npe < rollout < control: no include or link points upward; no library names a flag"
