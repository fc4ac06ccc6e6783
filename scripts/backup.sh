#!/usr/bin/env bash
# The runbook's database backup (pg_dump custom format into the state folder's backups/, with checksum).
# A thin wrapper over the stackdeck CLI (the same engine as the console's
# keys: deploy lock, audit log, history). Usage: backup.sh [--reason TEXT] [--list]
# Global options work here too: --stack NAME, --http-port PORT, --json, --read-only.
set -euo pipefail
exec "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/stackdeck" backup "$@"
