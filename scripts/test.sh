#!/usr/bin/env bash
# The whole test suite, as CI runs it: set-up (idempotent), static checks, then pytest.
# Extra arguments go to pytest (e.g. scripts/test.sh -k impact).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
"$ROOT/scripts/setup.sh"
# shellcheck disable=SC1091
. "${ATTUNE_VENV:-$ROOT/.venv}/bin/activate"

echo "== ruff"; ruff check . && ruff format --check .
echo "== mypy"; mypy -p attune_console
echo "== import-linter"; lint-imports
echo "== pytest"
exec pytest -q -ra "$@"
