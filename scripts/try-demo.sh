#!/usr/bin/env bash
# Fresh machine to running console in one command: set-up (idempotent), then the console
# on demo-workspace/. Extra arguments go to attune-console.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/scripts/setup.sh"
exec "${ATTUNE_VENV:-$ROOT/.venv}/bin/attune-console" "$ROOT/demo-workspace" "$@"
