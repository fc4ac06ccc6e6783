#!/usr/bin/env bash
# The schedule of the configuration ([[schedule]] tables: the runbook's
# off-peak scale-down "automated via cron") put into the host's cron: installs
# Debian's cron when it is missing, starts the daemon when none runs (through
# systemd where systemd runs, else in the background), then runs
# `stackdeck schedule install`, which checks every entry and writes
# /etc/cron.d/stackdeck-$STACK_NAME. Run by scripts/setup.sh when the
# configuration has a schedule; run it again after editing the schedule.
# Arguments go to `stackdeck schedule install` (e.g. --stack NAME).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

need_cmd cron cron
need_cmd pgrep procps
if ! pgrep -x cron >/dev/null 2>&1 && ! pgrep -x crond >/dev/null 2>&1; then
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    log "starting cron (systemctl enable --now cron)"
    systemctl enable --now cron >/dev/null 2>&1 || die "systemctl could not start cron"
  else
    log "starting cron in the background (no systemd here)"
    cron || die "cron did not start"
  fi
fi
exec "$ROOT/scripts/stackdeck" schedule install "$@"
