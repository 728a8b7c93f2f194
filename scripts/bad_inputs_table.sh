#!/usr/bin/env bash
# Runs every bad input of tests/tools/bad_inputs.tsv (the test Cli.BadInputsTable) and writes
# npe's answers into docs/bad-input.md, between the markers <!-- bad-inputs:begin --> and
# <!-- bad-inputs:end -->. Needs the main build (scripts/setup.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
table="$(mktemp)"; trap 'rm -f "$table"' EXIT
NPE_BAD_INPUTS_MD="$table" "$root/build/bin/tool_tests" --gtest_filter=Cli.BadInputsTable >/dev/null
page="$root/docs/bad-input.md"
"$root/.venv/bin/python" - "$page" "$table" <<'PY'
import sys
page, table = sys.argv[1], open(sys.argv[2]).read()
text = open(page).read()
begin, end = "<!-- bad-inputs:begin -->\n", "<!-- bad-inputs:end -->"
a, b = text.index(begin) + len(begin), text.index(end)
open(page + ".tmp", "w").write(text[:a] + table + text[b:])
import os; os.replace(page + ".tmp", page)
PY
echo "docs/bad-input.md: bad-input table updated ($(grep -c '' "$table") lines)"
