#!/usr/bin/env bash
# The whole test suite, from a fresh machine: Docker engine, Compose, images,
# a stack of its own (project "sdtest" on 127.0.0.1:18080, so a stack someone
# uses is never touched), the console's virtualenv, lint and types, then every
# tier: unit, ui (snapshots), integration (real stack), destructive last.
# Extra arguments go to pytest (e.g. scripts/test.sh tests/unit -x).
#
# Then the single-node Swarm tier (tests/swarm's one-node file, stackdeck's
# operations and the monitoring on a swarm, and the console on a swarm,
# tests/integration/console/test_swarm_console.py) on a
# swarm of its own, "$STACK_NAME-swarm" on ports derived from the test
# stack's (SWARM_PORT_OFFSETS below), brought up from nothing in the
# background while the compose stack is set up and the unit and UI tiers run,
# stopped until its tier, and removed at the end whatever happened. On a full run (no extra arguments), or with
# STACKDECK_TEST_SWARM=yes; STACKDECK_TEST_SWARM=no leaves it out. The exit
# code is non-zero if either tier failed. The multi-node tier is not here
# (docs/SCALE-OUT.md: `bash scripts/swarm.sh test`, about 12 minutes).
set -euo pipefail
export STACK_NAME="${STACKDECK_TEST_STACK:-sdtest}"
export STACKDECK_TEST_STACK="$STACK_NAME"
# Images of its own (sdtest-backend:v1.0.0, ...): the base below is new every
# run, and a stack on the same engine must keep the images it runs.
export IMAGE_PREFIX="${STACKDECK_TEST_IMAGE_PREFIX:-$STACK_NAME}"
export HTTP_PORT="${STACKDECK_TEST_PORT:-18080}"
# The fresh-machine path on every run: the base image is built with mmdebstrap
# under a tag of this run, and every image of the stack under test is built
# from it, so a warm engine's debian:trixie-slim cannot hide a broken step.
# (STACKDECK_TEST_BASE=keep reuses BASE_IMAGE or debian:trixie-slim instead,
# for quick local runs.)
if [ "${STACKDECK_TEST_BASE:-fresh}" = fresh ]; then
  export BASE_IMAGE="stackdeck-base:run-$(date -u +%Y%m%d%H%M%S)-$$"
  base_build=always
else
  export BASE_IMAGE="${BASE_IMAGE:-debian:trixie-slim}"
  base_build=auto
fi
unset RUN_DIR STACKDECK_STATE_DIR
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

# The engine first: the clean-up below talks to it.
bash scripts/engine.sh
# What the tests call besides docker and the .venv (curl comes with setup.sh).
need_cmd git git
need_cmd ip iproute2
need_cmd pgrep procps  # the Swarm tier's bring-up is stopped with its processes
need_cmd tmux tmux  # the real TUI runs in a tmux pane in the fault tests
# docs/RUNBOOK.md's lines, run by tests/integration/test_runbook_doc.py
need_cmd jq jq
need_cmd ab apache2-utils

# The test stack is disposable: start it from nothing every time, so a volume
# initialised with another clone's secrets or a deploy state left by an earlier
# run cannot leak into this one. A clean-up that fails stops the run here,
# with the reason, instead of surfacing later as a password mismatch.
if [ -f "$STACKDECK_STATE_DIR/deploy.env" ] && [ -f "$ROOT/.env" ]; then
  log "removing the previous test stack $STACK_NAME (volumes included)"
  compose down -v --remove-orphans -t 5 >/dev/null 2>&1 || true
fi
leftover=$(docker ps -aq --filter "label=com.docker.compose.project=$STACK_NAME")
if [ -n "$leftover" ]; then
  log "removing containers left by an earlier $STACK_NAME run"
  echo "$leftover" | xargs docker rm -f >/dev/null || die "could not remove the old $STACK_NAME containers"
fi
leftover=$(docker volume ls -q --filter "label=com.docker.compose.project=$STACK_NAME")
if [ -n "$leftover" ]; then
  log "removing volumes left by an earlier $STACK_NAME run"
  echo "$leftover" | xargs docker volume rm >/dev/null || die "could not remove the old $STACK_NAME volumes"
fi
rm -rf "$STACKDECK_STATE_DIR" "$RUN_DIR"

# Every version an earlier run built for the test stack ($IMAGE_PREFIX-backend:*,
# by scripts/images.sh, `stackdeck deploy --build` or the tests) goes too: a
# test that finds its version's tag deploys it as it is, and an image built
# from an earlier checkout lacks what this one added (a v2 without the price
# stream answered its reconnections with 403).
untag() {  # untag REPOSITORY: every tag of it
  local old
  for old in $(docker image ls "$1" --format '{{.Repository}}:{{.Tag}}'); do
    docker rmi "$old" >/dev/null 2>&1 || true
  done
}
untag "$IMAGE_PREFIX-backend"
# the frontend's likewise: a page version found in the engine is deployed as
# an earlier checkout built it (images.sh builds this run's base version)
untag "$IMAGE_PREFIX-frontend"

# Earlier runs' bases: their tags go (an image still used by a container stays,
# untagged), then the images that nothing tags or uses any more. A base of a
# run still going (run-<time>-<pid of its test.sh>, that pid alive: another
# stack's tests on this engine) is kept: its deploys build from it.
for old in $(docker image ls stackdeck-base --format '{{.Tag}}'); do
  [ "stackdeck-base:$old" = "$BASE_IMAGE" ] && continue
  pid=${old##*-}
  if [[ $old == run-*-* && $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null \
    && grep -q 'scripts/test.sh' "/proc/$pid/cmdline" 2>/dev/null; then
    log "keeping stackdeck-base:$old (the run of pid $pid is still going)"
    continue
  fi
  docker rmi "stackdeck-base:$old" >/dev/null 2>&1 || true
done
docker image prune -f >/dev/null 2>&1 || true

swarm=${STACKDECK_TEST_SWARM:-}
[ -n "$swarm" ] || swarm=$([ $# -eq 0 ] && echo yes || echo no)

BASE_BUILD=$base_build BROWSER_IMAGE=yes SWARM_IMAGES=$swarm bash scripts/images.sh

# The Swarm tier's own swarm: its name, and ports at HTTP_PORT + 1000 + offset
# (18080: 19080, 19443, 19090, 19093, 19500; the manager's engine API is a
# socket in the swarm's state folder, scripts/swarm.sh env), clear of the
# compose test stack's (HTTP_PORT + 0/363/10000/12000/14000) and below the
# ephemeral range (tests/unit/platform/test_swarm_stack.py checks both).
SWARM_PORT_OFFSETS="SWARM_HTTP_PORT=1000,SWARM_HTTPS_PORT=1363,SWARM_PROMETHEUS_PORT=1010,SWARM_ALERTMANAGER_PORT=1013,SWARM_REGISTRY_PORT=1420"
SWARM_LOG="$RUN_DIR/swarm-bring-up.log"
swarm_down() {
  bash scripts/swarm.sh down --yes || log "removing swarm $SWARM_NAME failed: remove it with SWARM_NAME=$SWARM_NAME bash scripts/swarm.sh down --yes"
}
swarm_containers() {  # the swarm's node containers and its registry
  docker ps -aq --filter "label=com.investment.swarm=$SWARM_NAME"
  docker ps -aq --filter "label=com.investment.swarm.registry=$SWARM_NAME"
}
swarm_cleanup() {  # on exit: a bring-up still going is stopped, then the swarm removed
  if [ -n "${swarm_prepare_pid:-}" ] && kill -0 "$swarm_prepare_pid" 2>/dev/null; then
    # its own process group (set -m below): every process of it, so none
    # keeps swarm.sh's lock open while the swarm is removed
    kill -TERM -- "-$swarm_prepare_pid" 2>/dev/null || true
    local deadline=$((SECONDS + 30))
    while pgrep -g "$swarm_prepare_pid" >/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 1; done
  fi
  swarm_down
}
swarm_prepare() {  # up, deploy, then stopped: the node's engine keeps every pulled image
  # (the deploy's stackdeck lock and audit log: the swarm's own, as the Swarm
  # tier's tests keep them, not the compose test stack's of the same name)
  bash scripts/swarm.sh up --nodes 1 \
    && STACKDECK_STATE_DIR="${_state_dir//\{stack\}/$SWARM_NAME}/stackdeck" bash scripts/swarm.sh deploy \
    && swarm_containers | xargs -r docker stop -t 60 >/dev/null
}
if [ "$swarm" = yes ]; then
  export SWARM_NAME="$STACK_NAME-swarm"
  IFS=, read -ra _pairs <<<"$SWARM_PORT_OFFSETS"
  for pair in "${_pairs[@]}"; do
    export "${pair%%=*}=$(( HTTP_PORT + ${pair#*=} ))"
  done
  swarm_down  # whatever an earlier run left
  # and its stackdeck state (deploy lock, audit log, history): a record left
  # by a run killed mid-deploy would refuse every deploy of this one
  rm -rf "${_state_dir//\{stack\}/$SWARM_NAME}/stackdeck"
  trap swarm_cleanup EXIT
  # Its bring-up (pushing every image to its registry, the node pulling them:
  # about 4 minutes) runs beside the compose stack's set-up, lint, types and
  # the unit and UI tiers, which need no swarm; then the node waits, stopped,
  # until the Swarm tier starts it again (half a minute).
  mkdir -p "$RUN_DIR"
  log "the Swarm tier's swarm $SWARM_NAME: bringing it up in the background (log: $SWARM_LOG)"
  set -m  # a process group of its own, to stop it whole
  swarm_prepare </dev/null >"$SWARM_LOG" 2>&1 &
  swarm_prepare_pid=$!
  set +m
fi

bash scripts/setup.sh
bash scripts/venv.sh test,platform

log "ruff"
.venv/bin/ruff check .
log "mypy"
.venv/bin/mypy

export TEXTUAL_ANIMATIONS=none

swarm_prepared() {  # the background bring-up's end: 0 if the swarm waits, stopped
  local rc=0 deadline=$((SECONDS + 900))
  # bounded: a push or pull that hangs is stopped after 15 minutes
  while kill -0 "$swarm_prepare_pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 2; done
  if kill -0 "$swarm_prepare_pid" 2>/dev/null; then
    log "the swarm's bring-up still runs after 15 minutes: stopped"
    kill -TERM -- "-$swarm_prepare_pid" 2>/dev/null || true
  fi
  wait "$swarm_prepare_pid" || rc=$?
  if [ "$rc" != 0 ]; then
    cat "$SWARM_LOG" >&2
    log "the swarm's bring-up failed (exit $rc, its log above): the Swarm tier brings it up itself"
  else
    log "the Swarm tier's swarm is deployed and stopped ($(grep -c '^\[swarm\] pushed' "$SWARM_LOG") images pushed)"
  fi
  return "$rc"
}
swarm_tier() {  # the single-node Swarm tier; the swarm removed at the end
  log "the Swarm tier: swarm $SWARM_NAME on 127.0.0.1:$SWARM_HTTP_PORT"
  local started=$SECONDS rc=0
  if [ "$swarm_ready" = yes ]; then
    # its node and registry again: the node's engine starts the stack's tasks
    # from the images it pulled (the fixture deploys it whole if it does not answer)
    bash scripts/swarm.sh up --nodes 1 >&2 || log "starting the swarm again failed: the tier brings it up itself"
    local deadline=$((SECONDS + 180))
    until curl -fs -o /dev/null --max-time 3 "http://127.0.0.1:$SWARM_HTTP_PORT/api/health"; do
      [ "$SECONDS" -lt "$deadline" ] || { log "the swarm does not answer after 180 s: the tier deploys it again"; break; }
      sleep 1
    done
    log "the swarm answers again after $(( SECONDS - started )) s"
  fi
  # the operations first: they start from the stack file's version, as the
  # fresh swarm has it (after the other files they would redeploy it first)
  # (the access file without its 4-minute keep-the-version deploy, which the
  # multi-node command, scripts/swarm.sh test, runs)
  .venv/bin/python -m pytest -ra --durations=10 -p no:cacheprovider -m swarm \
    -k "not test_deploy_without_a_version_keeps_the_running_one" \
    tests/swarm/test_swarm_ops.py tests/swarm/test_swarm_1_one_node.py \
    tests/swarm/test_swarm_monitoring.py tests/swarm/test_swarm_access.py \
    tests/integration/console/test_swarm_console.py || rc=$?
  swarm_down
  trap - EXIT
  log "the Swarm tier: exit $rc after $(( SECONDS - started )) s"
  return "$rc"
}

if [ "$swarm" != yes ]; then
  exec .venv/bin/python -m pytest -ra --durations=15 -p no:cacheprovider "$@"
fi
compose_rc=0
swarm_ready=no
if [ $# -eq 0 ]; then
  # a full run: the unit and UI tiers (no stack, no swarm) beside the swarm's
  # bring-up, then the rest once it is done (the integration tiers' timings
  # then have the cores to themselves)
  .venv/bin/python -m pytest -ra --durations=15 -p no:cacheprovider tests/unit tests/ui || compose_rc=$?
  swarm_prepared && swarm_ready=yes
  .venv/bin/python -m pytest -ra --durations=15 -p no:cacheprovider \
    --ignore=tests/unit --ignore=tests/ui || compose_rc=$?
else
  swarm_prepared && swarm_ready=yes
  .venv/bin/python -m pytest -ra --durations=15 -p no:cacheprovider "$@" || compose_rc=$?
fi
swarm_rc=0
swarm_tier || swarm_rc=$?
log "compose tiers: exit $compose_rc; Swarm tier: exit $swarm_rc"
[ "$compose_rc" = 0 ] || exit "$compose_rc"
exit "$swarm_rc"
