#!/usr/bin/env bash
# Bring everything up (engine, images, the bundled stack) and open the console.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bash "$ROOT/scripts/setup.sh"
bash "$ROOT/scripts/venv.sh"
exec "$ROOT/.venv/bin/stackdeck" "$@"
