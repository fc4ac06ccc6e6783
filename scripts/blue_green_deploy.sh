#!/usr/bin/env bash
# The runbook's blue-green deployment (automatic rollback on failure).
# A thin wrapper over the stackdeck CLI (the same engine as the console's
# keys: deploy lock, audit log, history). Usage: blue_green_deploy.sh --version v1.2.3 [--environment production] [--services "backend frontend"] [--build] [--bake-seconds N]
# Global options work here too: --stack NAME, --http-port PORT, --json, --read-only.
set -euo pipefail
exec "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/stackdeck" deploy --strategy blue-green "$@"
