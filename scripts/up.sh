#!/usr/bin/env bash
# Bring everything up (engine, images, the bundled stack, the console's .venv)
# and open the console. The console opens only when stdin and stdout are a
# terminal; otherwise (CI, cloud-init, `up.sh | tee up.log`) this brings
# everything up, says how to open the console, and exits 0.
# Arguments go to stackdeck (e.g. --read-only) when the console opens.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bash "$ROOT/scripts/setup.sh"
bash "$ROOT/scripts/venv.sh"
if [ -t 0 ] && [ -t 1 ]; then
  exec "$ROOT/.venv/bin/stackdeck" "$@"
fi
# On stdout, so `up.sh | tee up.log` keeps it.
echo "stack $STACK_NAME is up on http://127.0.0.1:$HTTP_PORT; not a terminal, so the console is not opened."
echo "open it with: $ROOT/.venv/bin/stackdeck   (headless: $ROOT/.venv/bin/stackdeck status)"
