#!/usr/bin/env bash
# The runbook's pre-deployment checklist, the part a machine can check.
# A thin wrapper over the stackdeck CLI (the same engine as the console's
# keys: deploy lock, audit log, history). Usage: pre_deployment_check.sh
# Global options work here too: --stack NAME, --http-port PORT, --json, --read-only.
set -euo pipefail
exec "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/stackdeck" preflight "$@"
