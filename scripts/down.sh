#!/usr/bin/env bash
# Take the bundled stack down again: its containers and networks
# (docker compose down). With --purge, also its state, after a confirmation:
# the volumes (the database, the cache, nginx's active colour), the deploy
# state, lock, audit log, history and backups under $STACKDECK_STATE_DIR, and
# the socket folder $RUN_DIR. .env (the secrets) stays in the checkout.
# What set-up installed on the host (docker.io, mmdebstrap, the compose plugin,
# the running dockerd, the images) is left alone: the README says how to
# remove it.
# Usage: down.sh [--purge [--yes]]   (--yes: no question, for scripts)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

purge=0 yes=0
for arg in "$@"; do
  case "$arg" in
    --purge) purge=1 ;;
    --yes) yes=1 ;;
    -h|--help) sed -n '2,11s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "[down] unknown argument '$arg'; usage: down.sh [--purge [--yes]]" >&2; exit 2 ;;
  esac
done
[ $yes = 0 ] || [ $purge = 1 ] || { echo "[down] --yes only goes with --purge" >&2; exit 2; }

if ! timeout 10 docker info >/dev/null 2>&1; then
  die "no Docker engine answers: start it with scripts/engine.sh, then run this again"
fi

if [ $purge = 1 ] && [ $yes = 0 ]; then
  [ -t 0 ] || die "--purge destroys the database of $STACK_NAME: confirm on a terminal, or add --yes"
  echo "This removes stack '$STACK_NAME' and ALL its data: the database and cache volumes," >&2
  echo "and $STACKDECK_STATE_DIR (deploy state, audit log, history, backups), $RUN_DIR." >&2
  read -r -p "Type the stack name to confirm: " answer
  [ "$answer" = "$STACK_NAME" ] || die "not confirmed ('$answer' is not '$STACK_NAME'); nothing removed"
fi

# compose needs both env files; without them (set-up never finished) the
# containers and volumes are found by their compose label instead.
if [ -f "$ROOT/.env" ] && [ -f "$STACKDECK_STATE_DIR/deploy.env" ]; then
  log "stopping and removing the containers of $STACK_NAME"
  if [ $purge = 1 ]; then compose down -v --remove-orphans -t 10; else compose down --remove-orphans -t 10; fi
fi
filter="label=com.docker.compose.project=$STACK_NAME"
left=$(docker ps -aq --filter "$filter")
[ -z "$left" ] || echo "$left" | xargs docker rm -f >/dev/null
left=$(docker network ls -q --filter "$filter")
[ -z "$left" ] || echo "$left" | xargs docker network rm >/dev/null
if [ $purge = 1 ]; then
  left=$(docker volume ls -q --filter "$filter")
  [ -z "$left" ] || echo "$left" | xargs docker volume rm >/dev/null
  rm -rf "$STACKDECK_STATE_DIR" "$RUN_DIR"
  # its schedule (scripts/schedule.sh) would only fail from now on
  rm -f "${STACKDECK_CRON_DIR:-/etc/cron.d}/stackdeck-$STACK_NAME"
  log "stack $STACK_NAME and its state removed"
else
  log "stack $STACK_NAME stopped; its volumes and $STACKDECK_STATE_DIR stay (add --purge to remove them)"
fi
