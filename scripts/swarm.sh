#!/usr/bin/env bash
# The stack on Docker Swarm across nodes, on one machine: each node a
# container running its own dockerd (compose/images/node), on a bridge
# network of their own; a local registry (compose/images/registry) the nodes
# pull the stack's images from. docs/SCALE-OUT.md says what works and what
# was measured.
#
#   swarm.sh up [--nodes N] [--managers M]
#       N node containers (default 1), swarm init on the first (advertising
#       its address on the nodes' network), the others joined (the first M as
#       managers, default 1 below three nodes and 3 from three; the rest
#       workers). Labels on node 1: edge (nginx), db, redis. The registry
#       container, the stack's images pushed to it. Running it again with a
#       larger N adds nodes; nothing that exists is recreated.
#   swarm.sh deploy      the stack (compose/docker-compose.swarm.yml, rendered
#                        by scripts/swarm_stack.py) with `docker stack deploy`
#                        on the manager; secrets created once; migrations;
#                        waits until /api/health answers 200 through nginx.
#                        Keeps the running versions unless BACKEND_VERSION /
#                        FRONTEND_VERSION name others; refused (exit 2) while
#                        stackdeck's deploy lock is held.
#   swarm.sh push IMAGE... tag and push host images (IMAGE_PREFIX-backend:v2)
#                        to the registry, for `docker service update --image`.
#   swarm.sh status      nodes, services, tasks.
#   swarm.sh env         the DOCKER_HOST of the manager's engine, a unix socket
#                        only root may use (for the docker SDK / CLI on the
#                        host; see below).
#   swarm.sh test [pytest args]   the Swarm tests (tests/swarm, marker swarm).
#   swarm.sh down [--yes] everything removed: the stack, nodes, their volumes
#                        (the database's data), the registry and its volume,
#                        the network, the secrets. Asks to type the swarm's
#                        name on a terminal; --yes for scripts. Checks that
#                        nothing is left, and fails naming what is.
#
# up, deploy, push and down hold a lock (one at a time per swarm) and write
# a start and an end line to the audit log, $SWARM_STATE_DIR/audit.log (JSON
# lines, as the console's audit.log; kept by down).
#
# The host engine never enters swarm mode. Every `docker swarm|stack|service`
# command runs IN the manager node (`docker exec <node> docker ...`): the
# node's CLI is Docker 26 like its engine, while the host's CLI and engine may
# be older, and the stack file and its configs are copied into the node, so
# nothing depends on the host's CLI version. For programs on the host, the
# manager's engine API is also a unix socket in a root-only folder of the
# swarm's state folder, $SWARM_STATE_DIR/api/docker.sock (no TCP listener:
# an engine API is root on this machine, so only root may reach it):
# `DOCKER_HOST=$(swarm.sh env) docker service ls`, or
# docker.DockerClient(base_url="unix://$SWARM_STATE_DIR/api/docker.sock").
#
# Settings (environment, then .env, then defaults):
#   SWARM_NAME            names of nodes, network, volumes (default <stack>-swarm)
#   SWARM_HTTP_PORT       nginx's HTTP on 127.0.0.1 of the host (default 8080)
#   SWARM_HTTPS_PORT      nginx's HTTPS (default 8443)
#   SWARM_PROMETHEUS_PORT Prometheus (default 9090; basic auth, user
#                         stackdeck, password: the secret monitoring_password)
#   SWARM_ALERTMANAGER_PORT Alertmanager (default 9093; same credential), where
#                         stackdeck posts its operations' notices
#   SWARM_REGISTRY_PORT   the registry, for the host's pushes (default 5000)
#   BACKEND_VERSION       the backend image deployed (default: on a stack that
#                         runs, the running version; else v1.0.0); FRONTEND_VERSION
#                         likewise
#   STACKDECK_STATE_DIR   stackdeck's state folder of the stack (default
#                         /var/lib/stackdeck/<stack>): `deploy` takes its
#                         deploy lock and writes its audit log, as stackdeck's
#                         operations on the swarm do
set -euo pipefail
. "$(dirname "$0")/lib.sh"
# the audit line and the health wait (a bare Debian host may lack them)
need_cmd python3 python3
need_cmd curl curl

_setting() {  # _setting NAME DEFAULT -> environment, then .env, then DEFAULT
  local v="${!1:-}"
  [ -n "$v" ] || v=$(_env_file_value "$1")
  printf '%s' "${v:-$2}"
}
SWARM_NAME=$(_setting SWARM_NAME "$STACK_NAME-swarm")
SWARM_HTTP_PORT=$(_setting SWARM_HTTP_PORT 8080)
SWARM_HTTPS_PORT=$(_setting SWARM_HTTPS_PORT 8443)
SWARM_PROMETHEUS_PORT=$(_setting SWARM_PROMETHEUS_PORT 9090)
SWARM_ALERTMANAGER_PORT=$(_setting SWARM_ALERTMANAGER_PORT 9093)
SWARM_REGISTRY_PORT=$(_setting SWARM_REGISTRY_PORT 5000)
# given (environment or .env), or empty: `deploy` then keeps the running version
BACKEND_VERSION_GIVEN=$(_setting BACKEND_VERSION "")
FRONTEND_VERSION_GIVEN=$(_setting FRONTEND_VERSION "")
BACKEND_VERSION=${BACKEND_VERSION_GIVEN:-v1.0.0}
FRONTEND_VERSION=${FRONTEND_VERSION_GIVEN:-v1.0.0}
case "$SWARM_NAME" in
  ''|*[!a-z0-9_-]*) die "SWARM_NAME must be lower-case letters, digits, - or _ (got '$SWARM_NAME')" ;;
esac
for _p in SWARM_HTTP_PORT SWARM_HTTPS_PORT SWARM_PROMETHEUS_PORT SWARM_ALERTMANAGER_PORT \
          SWARM_REGISTRY_PORT; do
  case "${!_p}" in ''|*[!0-9]*) die "$_p must be a port number (got '${!_p}')" ;; esac
done

NETWORK="${SWARM_NAME}_net"
REGISTRY="${SWARM_NAME}-registry"
REGISTRY_VOLUME="${SWARM_NAME}_registry"
# What the nodes pull from (the registry's name on their network), and what
# the host pushes to (its published port on loopback, which the host engine
# trusts as plain HTTP).
NODE_REGISTRY="$REGISTRY:5000"
HOST_REGISTRY="127.0.0.1:$SWARM_REGISTRY_PORT"
# the state folder of the facts file, for the swarm (its secrets)
SWARM_STATE_DIR="${SWARM_STATE_DIR:-${_state_dir//\{stack\}/$SWARM_NAME}}"
# the manager's engine API for the host's programs: a unix socket in a folder
# only root may enter, bind-mounted into node 1 (its dockerd listens there too)
API_DIR="$SWARM_STATE_DIR/api"
API_SOCKET="$API_DIR/docker.sock"
NODE_API_DIR=/run/stackdeck-api
NODE_LABEL=com.investment.swarm
# the services whose images the stack pulls (IMAGE_PREFIX-<name>:latest)
LATEST_IMAGES=(db redis nginx market-sim monitoring)
SECRETS=(postgres_password redis_password jwt_secret admin_token admin_password test_password monitoring_password)

AUDIT_LOG="$SWARM_STATE_DIR/audit.log"
LOCK_FILE="/run/lock/stackdeck-swarm-$SWARM_NAME.lock"

# audit EVENT [RESULT]: one JSON line (op, who, from where, the arguments)
audit() {
  mkdir -p "$SWARM_STATE_DIR"
  AUDIT_EVENT=$1 AUDIT_RESULT=${2:-} python3 -c '
import datetime, json, os, pwd, socket, sys
record = {
    "at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    "event": os.environ["AUDIT_EVENT"],
    "op": "swarm." + os.environ["AUDIT_OP"],
    "op_id": os.environ["AUDIT_OP_ID"],
    "user": os.environ.get("SUDO_USER") or pwd.getpwuid(os.getuid()).pw_name,
    "ssh_client": (os.environ.get("SSH_CLIENT") or "").split(" ")[0] or None,
    "host": socket.gethostname(),
    "pid": os.getppid(),
    "via": "scripts/swarm.sh",
    "read_only": False,
    "params": {"args": sys.argv[1:], "swarm": os.environ["SWARM_NAME"]},
}
if os.environ.get("AUDIT_RESULT"):
    record["result"] = os.environ["AUDIT_RESULT"]
print(json.dumps(record))
' "${AUDIT_ARGS[@]}" >>"$AUDIT_LOG"
}

on_exit() {  # the end line of the audit log, and a deploy's temporary folder
  local rc=$? result
  result=$([ "$rc" = 0 ] && echo ok || echo failed)
  [ -z "${CLEANUP_DIR:-}" ] || rm -rf "$CLEANUP_DIR"
  [ -z "${STACKDECK_LOCKED:-}" ] || release_stackdeck_lock "$result"
  [ -z "${AUDIT_STARTED:-}" ] || audit end "$result"
}

# stackdeck's deploy lock ($STACKDECK_STATE_DIR/lock), the one its operations
# on the swarm take (console/core/ops/lock.py), held on fd 8 for the whole
# deploy: the project's own lock code (console/core/ops/script_lock.py, the
# standard library only) takes it on that descriptor, writes the holder record
# and the start line of stackdeck's audit log; the kernel drops the flock when
# this script ends, however it ends.
STACKDECK_LOCK="$STACKDECK_STATE_DIR/lock"
script_lock() { PYTHONPATH="$ROOT" python3 -m console.core.ops.script_lock "$@"; }
take_stackdeck_lock() {
  mkdir -p "$STACKDECK_STATE_DIR"
  (umask 027; : >>"$STACKDECK_LOCK") || die "cannot open stackdeck's lock $STACKDECK_LOCK"
  exec 8<>"$STACKDECK_LOCK"
  local rc=0
  script_lock take 8 "$STACKDECK_STATE_DIR" "swarm.$AUDIT_OP" "$AUDIT_OP_ID" \
    "swarm=$SWARM_NAME" "args=${AUDIT_ARGS[*]}" || rc=$?
  if [ "$rc" != 0 ]; then
    exec 8>&-
    [ "$rc" != 2 ] || { audit refused lock-busy; exit 2; }
    die "taking stackdeck's deploy lock $STACKDECK_LOCK failed (above)"
  fi
  STACKDECK_LOCKED=1
}
release_stackdeck_lock() {  # release_stackdeck_lock RESULT
  script_lock release 8 "$STACKDECK_STATE_DIR" "swarm.$AUDIT_OP" "$AUDIT_OP_ID" "$1" \
    "swarm=$SWARM_NAME" "backend_version=$BACKEND_VERSION" "frontend_version=$FRONTEND_VERSION" \
    || log "releasing stackdeck's deploy lock failed: its record stays in $STACKDECK_LOCK (stackdeck lock break)"
  STACKDECK_LOCKED=
  exec 8>&-
}

# guarded OP ARGS...: a changing command, locked and audited
guarded() {
  AUDIT_OP=$1; shift
  AUDIT_ARGS=("$@")
  AUDIT_OP_ID="$(date +%s)-$$"
  export AUDIT_OP AUDIT_OP_ID SWARM_NAME
  mkdir -p "$(dirname "$LOCK_FILE")"
  exec 9>"$LOCK_FILE"
  flock -n 9 || die "another scripts/swarm.sh is changing swarm $SWARM_NAME (lock $LOCK_FILE): wait for it to finish"
  # a deploy changes what stackdeck's operations change: not while one runs
  # (refused with its holder, exit 2, nothing changed)
  # the traps first: a signal or a failed audit line after the lock was taken
  # still ends through on_exit (the lock's record cleared)
  trap on_exit EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP
  [ "$AUDIT_OP" != deploy ] || take_stackdeck_lock
  audit start
  AUDIT_STARTED=1
  "cmd_$AUDIT_OP" "$@"
}

node_name() { printf '%s-node-%s' "$SWARM_NAME" "$1"; }
MANAGER=$(node_name 1)
# in_node NODE ARGS...: run ARGS inside a node container (its own docker CLI)
in_node() { local n=$1; shift; docker exec "$n" "$@"; }
mgr() { in_node "$MANAGER" docker "$@"; }

nodes() {  # the node containers of this swarm, in order
  docker ps -a --filter "label=$NODE_LABEL=$SWARM_NAME" --format '{{.Names}}' | sort -V
}

usage() {
  sed -n '/^#   swarm.sh up/,/^#$/p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 64
}

wait_for() {  # wait_for SECONDS WHAT COMMAND...: until COMMAND succeeds
  local secs=$1 what=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || die "$what: not ready within $secs s"
    sleep 1
  done
}

running() { [ "$(docker inspect -f '{{.State.Running}}' "$1" 2>/dev/null)" = true ]; }

ensure_images() {
  log "images (scripts/images.sh, with the node and registry images)"
  SWARM_IMAGES=yes bash "$ROOT/scripts/images.sh" "$BACKEND_VERSION" >&2
}

ensure_network() {
  docker network inspect "$NETWORK" >/dev/null 2>&1 && return
  log "network $NETWORK"
  docker network create --label "$NODE_LABEL=$SWARM_NAME" "$NETWORK" >/dev/null
}

ensure_registry() {
  if ! docker container inspect "$REGISTRY" >/dev/null 2>&1; then
    log "registry $REGISTRY (127.0.0.1:$SWARM_REGISTRY_PORT for the host's pushes)"
    docker run -d --name "$REGISTRY" --network "$NETWORK" --restart unless-stopped \
      --label "$NODE_LABEL.registry=$SWARM_NAME" \
      -v "$REGISTRY_VOLUME:/var/lib/docker-registry" \
      -p "127.0.0.1:$SWARM_REGISTRY_PORT:5000" "$IMAGE_PREFIX-registry:latest" >/dev/null \
      || die "starting the registry failed (is 127.0.0.1:$SWARM_REGISTRY_PORT free? set SWARM_REGISTRY_PORT)"
  elif ! running "$REGISTRY"; then
    docker start "$REGISTRY" >/dev/null
  fi
  wait_for 60 "registry $REGISTRY" curl -fsS "http://$HOST_REGISTRY/v2/"
}

ensure_api_dir() {  # the socket's folder: root's only (an engine API is root here)
  mkdir -p "$SWARM_STATE_DIR"
  install -d -m 0700 "$API_DIR"
  chmod 0700 "$API_DIR"  # install -d leaves an existing folder's mode as it was
}

# start_node I: node I's container (its engine up), created when missing
start_node() {
  local i=$1 name
  name=$(node_name "$i")
  if ! docker container inspect "$name" >/dev/null 2>&1; then
    local ports=()
    if [ "$i" = 1 ]; then
      # the edge, Prometheus and Alertmanager on the host's loopback only;
      # the manager's engine API on a unix socket in a root-only host folder
      # (entrypoint.sh), never on TCP
      ensure_api_dir
      ports=(-p "127.0.0.1:$SWARM_HTTP_PORT:80" -p "127.0.0.1:$SWARM_HTTPS_PORT:443"
             -p "127.0.0.1:$SWARM_PROMETHEUS_PORT:9090" -p "127.0.0.1:$SWARM_ALERTMANAGER_PORT:9093"
             -v "$API_DIR:$NODE_API_DIR" -e "NODE_API_SOCKET=$NODE_API_DIR/docker.sock")
    fi
    log "node $name"
    # DESIGN.md: --privileged is refused here; these flags are what works.
    docker run -d --name "$name" --hostname "$name" --network "$NETWORK" \
      --label "$NODE_LABEL=$SWARM_NAME" \
      --cap-add ALL --cap-drop SYS_RESOURCE \
      --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
      --security-opt systempaths=unconfined \
      -v /sys/fs/cgroup:/sys/fs/cgroup:rw --cgroupns host \
      -v "${SWARM_NAME}_node-$i:/var/lib/docker" \
      -e "NODE_REGISTRY=$NODE_REGISTRY" \
      "${ports[@]}" "$IMAGE_PREFIX-node:latest" >/dev/null \
      || die "starting node $name failed (ports 127.0.0.1:$SWARM_HTTP_PORT/$SWARM_HTTPS_PORT/$SWARM_PROMETHEUS_PORT/$SWARM_ALERTMANAGER_PORT free?)"
  elif ! running "$name"; then
    log "node $name: starting it again"
    [ "$i" != 1 ] || ensure_api_dir
    docker start "$name" >/dev/null
  fi
  wait_for 90 "the engine of $name" docker exec "$name" docker info
  if [ "$i" = 1 ]; then
    wait_for 30 "the manager's engine on $API_SOCKET" test -S "$API_SOCKET"
  fi
}

node_addr() {  # node_addr NAME -> its address on the nodes' network
  docker inspect -f "{{ (index .NetworkSettings.Networks \"$NETWORK\").IPAddress }}" "$1"
}

swarm_state() {  # swarm_state NODE -> inactive | active | pending | ...
  in_node "$1" docker info -f '{{.Swarm.LocalNodeState}}' 2>/dev/null || echo unknown
}

push_image() {  # push_image IMAGE: host image -> the registry, same name
  local image=$1
  docker image inspect "$image" >/dev/null 2>&1 || die "no image $image on the host: build it first (scripts/images.sh)"
  docker tag "$image" "$HOST_REGISTRY/$image"
  docker push -q "$HOST_REGISTRY/$image" >/dev/null || die "pushing $image to $HOST_REGISTRY failed"
  docker rmi "$HOST_REGISTRY/$image" >/dev/null 2>&1 || true
  log "pushed $image"
}

cmd_up() {
  local n=1 managers=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --nodes) n=${2:-}; shift 2 || usage ;;
      --managers) managers=${2:-}; shift 2 || usage ;;
      *) usage ;;
    esac
  done
  case "$n" in ''|*[!0-9]*|0) die "--nodes must be a number of nodes, 1 or more (got '$n')" ;; esac
  [ "$n" -le 5 ] || die "--nodes $n: at most 5 nodes on one machine (each runs its own dockerd)"
  [ -n "$managers" ] || managers=$([ "$n" -ge 3 ] && echo 3 || echo 1)
  case "$managers" in ''|*[!0-9]*|0) die "--managers must be 1 or more (got '$managers')" ;; esac
  [ "$managers" -le "$n" ] || die "--managers $managers: more managers than nodes ($n)"

  ensure_images
  ensure_network
  ensure_registry
  for i in $(seq 1 "$n"); do start_node "$i"; done

  # Nodes advertise their interface on the nodes' network (eth0), not its
  # address: Swarm resolves an interface name at every engine start, so a
  # node container started again with another address on the bridge still
  # rejoins.
  local addr
  addr=$(node_addr "$MANAGER")
  if [ "$(swarm_state "$MANAGER")" != active ]; then
    log "swarm init on $MANAGER (advertising eth0, now $addr)"
    mgr swarm init --advertise-addr eth0 --listen-addr eth0:2377 >/dev/null \
      || die "swarm init on $MANAGER failed"
  fi
  local i name role token
  for i in $(seq 2 "$n"); do
    name=$(node_name "$i")
    [ "$(swarm_state "$name")" = active ] && continue
    role=$([ "$i" -le "$managers" ] && echo manager || echo worker)
    token=$(mgr swarm join-token -q "$role")
    log "$name joins as $role"
    # the token on stdin, never on a command line (`ps` shows those to everyone)
    docker exec -i "$name" sh -c 'read -r token; exec docker swarm join --token "$token" --advertise-addr eth0 --listen-addr eth0:2377 "$1:2377"' join "$addr" <<<"$token" >/dev/null \
      || die "$name could not join the swarm"
  done
  # where the edge and the data live (compose/docker-compose.swarm.yml's constraints)
  mgr node update --label-add edge=true --label-add db=true --label-add redis=true "$MANAGER" >/dev/null

  for image in "${LATEST_IMAGES[@]}"; do push_image "$IMAGE_PREFIX-$image:latest"; done
  push_image "$IMAGE_PREFIX-backend:$BACKEND_VERSION"
  push_image "$IMAGE_PREFIX-frontend:$FRONTEND_VERSION"
  log "swarm $SWARM_NAME up: $n node(s), $managers manager(s); the manager's engine: $(cmd_env)"
}

# ensure_secrets: each secret once, random, kept in the state folder (mode
# 600) and created as a Docker secret labelled with its file's sha256. A
# secret the swarm has is never replaced (Swarm secrets are immutable and the
# database's volume was initialised with it): when its file is missing or
# differs (the state folder lost or replaced while the swarm kept running),
# the deploy stops and says so, before anything is generated or changed.
SECRET_SUM_LABEL=com.investment.secret.sha256
ensure_secrets() {
  local dir="$SWARM_STATE_DIR/secrets" s have want bad=()
  for s in "${SECRETS[@]}" tls_cert tls_key; do
    have=$(mgr secret inspect -f "{{ index .Spec.Labels \"$SECRET_SUM_LABEL\" }}" "${STACK_NAME}_$s" 2>/dev/null) || continue
    if [ ! -s "$dir/$s" ]; then
      bad+=("$s (no file)")
    elif [ -z "$have" ]; then
      # created before the checksum label: cannot be compared, kept as it is
      log "note: the secret ${STACK_NAME}_$s has no checksum label; $dir/$s is assumed to match it"
    elif [ "$have" != "$(sha256sum <"$dir/$s" | cut -d' ' -f1)" ]; then
      bad+=("$s (differs)")
    fi
  done
  if [ ${#bad[@]} -gt 0 ]; then
    die "the swarm's secrets differ from $dir: ${bad[*]}. The state folder was lost or replaced while swarm $SWARM_NAME kept the secrets it was deployed with (its database was initialised with them); restore that folder, or start from nothing (scripts/swarm.sh down, then up and deploy: the data goes). Nothing was changed."
  fi
  mkdir -p "$dir"
  chmod 700 "$dir"
  for s in "${SECRETS[@]}"; do
    if [ ! -s "$dir/$s" ]; then
      (umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=\n' >"$dir/$s")
    fi
  done
  if [ ! -s "$dir/tls_cert" ] || [ ! -s "$dir/tls_key" ]; then
    need_cmd openssl openssl
    (umask 077; openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 \
      -subj "/CN=localhost" -keyout "$dir/tls_key" -out "$dir/tls_cert" >/dev/null 2>&1) \
      || die "openssl could not generate the certificate"
  fi
  for s in "${SECRETS[@]}" tls_cert tls_key; do
    mgr secret inspect "${STACK_NAME}_$s" >/dev/null 2>&1 && continue
    want=$(sha256sum <"$dir/$s" | cut -d' ' -f1)
    docker exec -i "$MANAGER" docker secret create --label "$SECRET_SUM_LABEL=$want" \
      "${STACK_NAME}_$s" - <"$dir/$s" >/dev/null \
      || die "creating the secret ${STACK_NAME}_$s failed"
  done
  # The market-data providers' keys are not passed to the swarm: the render
  # runs under `env -i` and the stack's services get the compose default
  # (offline-sim, the simulator). Said, so that no one expects live prices.
  local k set=()
  for k in ALPHA_VANTAGE_API_KEY FINNHUB_API_KEY POLYGON_API_KEY NEWSAPI_KEY; do
    case "$(_setting "$k" offline-sim)" in offline-sim) ;; *) set+=("$k") ;; esac
  done
  [ ${#set[@]} -eq 0 ] || log "note: ${set[*]} not passed to the swarm: its stack runs on the offline price simulator (docs/SCALE-OUT.md)"
}

render_stack() {  # render_stack DIR: stack.json and configs/ for the manager
  local dir=$1 placeholder
  placeholder="swarm-secret-placeholder-$RANDOM$RANDOM"
  local vars=(POSTGRES_PASSWORD REDIS_PASSWORD JWT_SECRET ADMIN_TOKEN ADMIN_PASSWORD TEST_PASSWORD)
  local env=() v
  for v in "${vars[@]}"; do env+=("$v=$placeholder"); done
  # only the variables the swarm overlay reads; no .env (its secrets are not
  # the swarm's, and the render must not depend on them)
  env -i PATH="$PATH" HOME="${HOME:-/root}" "${env[@]}" \
    STACK_NAME="$STACK_NAME" IMAGE_PREFIX="$IMAGE_PREFIX" SWARM_REGISTRY="$NODE_REGISTRY" \
    BACKEND_VERSION="$BACKEND_VERSION" FRONTEND_VERSION="$FRONTEND_VERSION" \
    docker compose -p "$STACK_NAME" --project-directory "$ROOT/compose" \
      -f "$ROOT/compose/docker-compose.yml" -f "$ROOT/compose/docker-compose.production.yml" \
      -f "$ROOT/compose/docker-compose.swarm.yml" config --format json >"$dir/model.json" \
    || die "docker compose config failed on the swarm overlay (output above)"
  python3 "$ROOT/scripts/swarm_stack.py" "$dir" --placeholder "$placeholder" <"$dir/model.json" \
    || die "rendering the swarm stack failed (above)"
  rm -f "$dir/model.json"
}

# migrate DIR: `alembic upgrade head` with the backend image and settings of
# DIR/stack.json (the version about to roll out), as a one-off Swarm job on
# the stack's networks with its secrets: the schema is migrated before any
# task of the new version starts, as the compose deploy does (migrations are
# expand-only, so the running version keeps working on the new schema).
MIGRATE_SERVICE="${STACK_NAME}_migrate"
migrate() {
  local dir=$1 state
  STACK="$STACK_NAME" python3 - "$dir/stack.json" >"$dir/migrate.args" <<'PY' \
    || die "reading the backend of the rendered stack failed"
import json, os, sys
stack = json.load(open(sys.argv[1]))
b = stack["services"]["backend"]
out = ["--name", os.environ["STACK"] + "_migrate"]
for name in b.get("networks") or {}:
    out += ["--network", (stack["networks"].get(name) or {}).get("name") or f"{os.environ['STACK']}_{name}"]
for ref in b.get("secrets") or []:
    ext = stack["secrets"][ref["source"]]["name"]
    out += ["--secret", f"source={ext},target={ref.get('target') or ref['source']}"]
env = b.get("environment") or {}
for k, v in sorted(env.items()):
    if v is not None:
        out += ["--env", f"{k}={v}"]
out += [b["image"], "python3", "-m", "alembic", "upgrade", "head"]
print("\0".join(out), end="")
PY
  mgr service rm "$MIGRATE_SERVICE" >/dev/null 2>&1 || true
  local image
  image=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["services"]["backend"]["image"])' "$dir/stack.json")
  log "migrating the schema (alembic upgrade head, a one-off job of $image)"
  # the arguments NUL-separated on stdin (values with spaces stay whole);
  # detached, then polled: the CLI's own wait never ends for a job whose
  # task was rejected (an image that cannot be pulled)
  docker exec -i "$MANAGER" sh -c 'xargs -0 docker service create --detach --quiet --mode replicated-job --restart-condition none --label com.investment.oneoff=migrate' \
    <"$dir/migrate.args" >/dev/null || die "creating the migration job failed (above)"
  local deadline=$((SECONDS + 600))
  while :; do
    state=$(mgr service ps --no-trunc --format '{{.CurrentState}}|{{.Error}}' "$MIGRATE_SERVICE" 2>/dev/null | head -n 1)
    case "$state" in
      Complete*|Failed*|Rejected*|Shutdown*|Orphaned*|Remove*) break ;;
    esac
    [ "$SECONDS" -lt "$deadline" ] || { state="still ${state:-pending} after 600 s"; break; }
    sleep 1
  done
  if [[ $state != Complete* ]]; then
    mgr service logs --raw "$MIGRATE_SERVICE" 2>&1 | tail -n 30 >&2 || true
    mgr service rm "$MIGRATE_SERVICE" >/dev/null 2>&1 || true
    die "alembic upgrade head failed (${state:-no task}; its log above): nothing was rolled out"
  fi
  mgr service rm "$MIGRATE_SERVICE" >/dev/null 2>&1 || true
}

# keep_running_version SERVICE VAR: VAR (BACKEND_VERSION...) not given, the
# stack's SERVICE runs: its version (the image's tag), so that a deploy
# without it never rolls a running version back to the default, past
# stackdeck's bake
keep_running_version() {
  local svc="${STACK_NAME}_$1" var=$2 image tag names
  # the default only where the service does not exist; a manager that does
  # not answer stops the deploy (a default would roll a running version back)
  names=$(mgr service ls -q --filter "name=$svc" --format '{{.Name}}') \
    || die "listing the swarm's services failed (above): $var not given and the running version unknown; nothing was changed"
  grep -qx "$svc" <<<"$names" || return 0
  image=$(mgr service inspect -f '{{.Spec.TaskTemplate.ContainerSpec.Image}}' "$svc") \
    || die "reading $svc's version failed (above): set $var; nothing was changed"
  image=${image%%@*}
  tag=${image##*:}
  if [ "$tag" = "$image" ] || [[ $tag == */* ]]; then
    die "$var not given and the running $svc has no version tag ('$image'): set $var; nothing was changed"
  fi
  log "$var not given: $svc keeps its running version $tag (set $var to deploy another)"
  printf -v "$var" '%s' "$tag"
}

edge_health() { curl -fsS -o /dev/null --max-time 3 "http://127.0.0.1:$SWARM_HTTP_PORT/api/health"; }

cmd_deploy() {
  [ $# -eq 0 ] || usage
  running "$MANAGER" && [ "$(swarm_state "$MANAGER")" = active ] \
    || die "no swarm $SWARM_NAME: run scripts/swarm.sh up first"
  [ -n "$BACKEND_VERSION_GIVEN" ] || keep_running_version backend BACKEND_VERSION
  [ -n "$FRONTEND_VERSION_GIVEN" ] || keep_running_version frontend FRONTEND_VERSION
  ensure_secrets
  local dir
  dir=$(mktemp -d)
  CLEANUP_DIR=$dir  # removed on exit (guarded's trap)
  render_stack "$dir"
  in_node "$MANAGER" sh -c 'rm -rf /srv/stack && mkdir -p /srv/stack'
  tar -C "$dir" -cf - . | docker exec -i "$MANAGER" tar -C /srv/stack -xf -
  # a stack that runs already: its schema first, then the rollout; the first
  # deploy has no database before the stack, so its migration follows it
  local first=1
  mgr service inspect "${STACK_NAME}_db" >/dev/null 2>&1 && first=0
  [ $first = 1 ] || migrate "$dir"
  log "docker stack deploy $STACK_NAME on $MANAGER (waits for the services)"
  local started=$SECONDS
  in_node "$MANAGER" sh -c "cd /srv/stack && docker stack deploy --detach=false --quiet --prune -c stack.json '$STACK_NAME'" >&2 \
    || die "docker stack deploy failed (above); see: scripts/swarm.sh status"
  log "stack converged in $(( SECONDS - started )) s"
  [ $first = 0 ] || migrate "$dir"
  wait_for 90 "/api/health through nginx on 127.0.0.1:$SWARM_HTTP_PORT" edge_health
  log "deployed: http://127.0.0.1:$SWARM_HTTP_PORT/api/health answers 200"
}

cmd_push() {
  [ $# -gt 0 ] || usage
  running "$REGISTRY" || die "no registry $REGISTRY: run scripts/swarm.sh up first"
  local image
  for image in "$@"; do push_image "$image"; done
}

cmd_status() {
  running "$MANAGER" || die "no swarm $SWARM_NAME (no node $MANAGER running)"
  mgr node ls
  echo
  mgr service ls
  echo
  mgr stack ps --no-trunc --format '{{.Name}}\t{{.Node}}\t{{.CurrentState}}\t{{.Error}}' "$STACK_NAME" 2>/dev/null \
    | grep -v 'Shutdown' || true
}

cmd_env() { printf 'unix://%s\n' "$API_SOCKET"; }

cmd_test() {
  [ -x "$ROOT/.venv/bin/python" ] || bash "$ROOT/scripts/venv.sh" test,platform >&2
  cd "$ROOT"
  SWARM_NAME="$SWARM_NAME" SWARM_HTTP_PORT="$SWARM_HTTP_PORT" SWARM_HTTPS_PORT="$SWARM_HTTPS_PORT" \
    SWARM_REGISTRY_PORT="$SWARM_REGISTRY_PORT" \
    SWARM_PROMETHEUS_PORT="$SWARM_PROMETHEUS_PORT" SWARM_ALERTMANAGER_PORT="$SWARM_ALERTMANAGER_PORT" \
    SWARM_STATE_DIR="$SWARM_STATE_DIR" \
    exec "$ROOT/.venv/bin/python" -m pytest -m swarm tests/swarm "$@"
}

cmd_down() {
  local yes=0
  case "${1:-}" in
    --yes) yes=1; shift ;;
  esac
  [ $# -eq 0 ] || usage
  if [ $yes = 0 ]; then
    [ -t 0 ] || die "down removes swarm $SWARM_NAME and ALL its data (the database's volume): confirm on a terminal, or add --yes"
    echo "This removes swarm '$SWARM_NAME': its nodes and their volumes (the database and" >&2
    echo "cache data), the registry, the network and the secrets in $SWARM_STATE_DIR/secrets." >&2
    read -r -p "Type the swarm name to confirm: " answer
    [ "$answer" = "$SWARM_NAME" ] || die "not confirmed ('$answer' is not '$SWARM_NAME'); nothing removed"
  fi
  local node listed
  listed=$(nodes) || die "listing the node containers of swarm $SWARM_NAME failed (is the engine up?); nothing removed"
  for node in $listed; do
    log "removing node $node and its volume"
    docker rm -f -v "$node" >/dev/null || log "removing $node failed"
    docker volume rm "${SWARM_NAME}_node-${node##*-node-}" >/dev/null 2>&1 || true
  done
  # node volumes left by an interrupted run
  local volumes
  volumes=$(swarm_volumes) || die "listing the volumes of swarm $SWARM_NAME failed"
  [ -z "$volumes" ] || xargs -r docker volume rm <<<"$volumes" >/dev/null 2>&1 || true
  if docker container inspect "$REGISTRY" >/dev/null 2>&1; then
    log "removing the registry $REGISTRY and its volume"
    docker rm -f -v "$REGISTRY" >/dev/null || log "removing $REGISTRY failed"
  fi
  docker volume rm "$REGISTRY_VOLUME" >/dev/null 2>&1 || true
  if docker network inspect "$NETWORK" >/dev/null 2>&1; then
    docker network rm "$NETWORK" >/dev/null || log "removing the network $NETWORK failed"
  fi
  # checked, not assumed: a removal or a listing that failed above leaves
  # something, said here (and the secrets stay while a volume initialised
  # with them does)
  local left
  left=$(left_behind)
  if [ -n "$left" ]; then
    die "swarm $SWARM_NAME is not fully removed, left: $(paste -sd, <<<"$left" | sed 's/,/, /g'); remove them (docker rm -f / volume rm / network rm) or run down again"
  fi
  rm -rf "$SWARM_STATE_DIR/secrets" "$API_DIR"
  log "swarm $SWARM_NAME removed (its audit log stays: $AUDIT_LOG)"
}

swarm_volumes() {  # this swarm's volumes: its nodes' and the registry's
  local all
  all=$(docker volume ls -q) || return 1
  grep -E "^(${SWARM_NAME}_node-[0-9]+|$REGISTRY_VOLUME)\$" <<<"$all" || true
}

# left_behind: what of this swarm the engine still has, one "kind name" a
# line; a listing that fails is named too (never taken for "nothing left")
left_behind() { _left_behind | sort -u; }
_left_behind() {
  local out all
  # one listing, checked (a group's status would be its last command's only)
  if all=$(docker ps -a --format '{{.Names}}|{{.Label "'"$NODE_LABEL"'"}}|{{.Label "'"$NODE_LABEL.registry"'"}}'); then
    out=$(awk -F'|' -v s="$SWARM_NAME" -v r="$REGISTRY" \
      '$2 == s || $3 == s || $1 == r || $1 ~ ("^" s "-node-[0-9]+$") { print $1 }' <<<"$all")
    [ -z "$out" ] || sed 's/^/container /' <<<"$out"
  else
    echo "(the container listing failed)"
  fi
  if out=$(swarm_volumes); then
    [ -z "$out" ] || sed 's/^/volume /' <<<"$out"
  else
    echo "(the volume listing failed)"
  fi
  if out=$(docker network ls --filter "label=$NODE_LABEL=$SWARM_NAME" --format '{{.Name}}'); then
    [ -z "$out" ] || sed 's/^/network /' <<<"$out"
  else
    echo "(the network listing failed)"
  fi
  ! docker network inspect "$NETWORK" >/dev/null 2>&1 || echo "network $NETWORK"
}

command -v docker >/dev/null 2>&1 || die "no docker CLI: run scripts/engine.sh first"
cmd=${1:-}
[ -n "$cmd" ] || usage
shift
case "$cmd" in
  up|deploy|push|down) guarded "$cmd" "$@" ;;
  status) cmd_status "$@" ;;
  env) cmd_env "$@" ;;
  test) cmd_test "$@" ;;
  -h|--help|help) usage ;;
  *) log "unknown command '$cmd'"; usage ;;
esac
