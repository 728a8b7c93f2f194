#!/usr/bin/env bash
# Set-up and build if needed, then the whole test suite (GoogleTest through ctest).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh"
ctest --test-dir "$root/build" --output-on-failure --parallel "$(nproc)" "$@"
