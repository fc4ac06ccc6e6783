# shellcheck shell=bash
# Shared by the set-up scripts: where the repository is and which stack we
# talk to. Precedence for STACK_NAME, HTTP_PORT, RUN_DIR and
# STACKDECK_STATE_DIR: the environment, then .env, then the defaults, so
# several stacks can live side by side on one engine (the tests use that).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT

# The stack's naming facts, stated once for the console and the scripts.
_fact() {  # _fact KEY -> value from console/core/stack.facts
  sed -n "s/^$1=//p" "$ROOT/console/core/stack.facts" | tail -n 1
}

_env_file_value() {  # _env_file_value NAME -> value from .env, or empty
  [ -f "$ROOT/.env" ] || return 0
  sed -n "s/^[[:space:]]*$1=//p" "$ROOT/.env" | tail -n 1 | sed -e 's/^"//' -e 's/"$//'
}

STACK_NAME="${STACK_NAME:-$(_env_file_value STACK_NAME)}"
STACK_NAME="${STACK_NAME:-$(_fact DEFAULT_STACK)}"
HTTP_PORT="${HTTP_PORT:-$(_env_file_value HTTP_PORT)}"
HTTP_PORT="${HTTP_PORT:-80}"
RUN_DIR="${RUN_DIR:-$(_env_file_value RUN_DIR)}"
_run_dir=$(_fact RUN_DIR)
_state_dir=$(_fact STATE_DIR)
RUN_DIR="${RUN_DIR:-${_run_dir//\{stack\}/$STACK_NAME}}"
STACKDECK_STATE_DIR="${STACKDECK_STATE_DIR:-${_state_dir//\{stack\}/$STACK_NAME}}"
# Image names: $IMAGE_PREFIX-backend:<version>, $IMAGE_PREFIX-db, ...
IMAGE_PREFIX="${IMAGE_PREFIX:-$(_env_file_value IMAGE_PREFIX)}"
IMAGE_PREFIX="${IMAGE_PREFIX:-$(_fact DEFAULT_IMAGE_PREFIX)}"
export STACK_NAME HTTP_PORT RUN_DIR STACKDECK_STATE_DIR IMAGE_PREFIX
# The monitoring UIs and the alert sink, on 127.0.0.1 only: set in .env, or
# derived from HTTP_PORT so two stacks on one engine never ask for the same port
# (HTTP_PORT 80: 10080, 12080, 14080; console/core/stack.facts says why).
# nginx's HTTPS port likewise (HTTP_PORT 80: 443).
IFS=, read -ra _offsets <<<"$(_fact MONITORING_PORT_OFFSETS),$(_fact EDGE_PORT_OFFSETS)"
for _pair in "${_offsets[@]}"; do  # NAME=OFFSET
  _name=${_pair%%=*}
  _value="${!_name:-$(_env_file_value "$_name")}"
  printf -v "$_name" '%s' "${_value:-$(( HTTP_PORT + ${_pair#*=} ))}"
  export "${_name?}"
done

# container_of SERVICE: the container of a compose service of this stack
# (db -> <stack>_db_prod, redis -> <stack>_cache_prod), by the facts file
container_of() {
  local word=$1 pair
  IFS=, read -ra _words <<<"$(_fact CONTAINER_WORDS)"
  for pair in "${_words[@]}"; do
    [ "${pair%%=*}" = "$1" ] && word=${pair#*=}
  done
  local name
  name=$(_fact CONTAINER_NAME)
  name=${name//\{stack\}/$STACK_NAME}
  printf '%s\n' "${name//\{service\}/$word}"
}

case "$STACK_NAME" in
  ''|*[!a-z0-9_-]*) echo "STACK_NAME must be lower-case letters, digits, - or _ (got '$STACK_NAME')" >&2; exit 64;;
esac

log() { printf '[%s] %s\n' "$(basename "$0" .sh)" "$*" >&2; }
die() { printf '[%s] error: %s\n' "$(basename "$0" .sh)" "$*" >&2; exit 1; }

# apt_install PACKAGE...: install Debian packages (as root, with apt-get), or
# stop with one line naming them. `apt-get update` runs once per process tree.
apt_install() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    die "missing: $* (install the Debian package(s) $*, e.g. apt-get install $*)"
  fi
  log "installing $* (apt-get)"
  if [ -z "${STACKDECK_APT_UPDATED:-}" ]; then
    apt-get update -qq >/dev/null || die "apt-get update failed; install $* yourself"
    export STACKDECK_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
    || die "apt-get install $* failed; install it yourself"
}

# need_cmd COMMAND PACKAGE: the command, installed from its Debian package when absent.
need_cmd() {
  command -v "$1" >/dev/null 2>&1 && return 0
  apt_install "$2"
  command -v "$1" >/dev/null 2>&1 || die "$2 is installed but $1 is still not on PATH"
}

compose() {
  docker compose -p "$STACK_NAME" --project-directory "$ROOT/compose" \
    -f "$ROOT/compose/docker-compose.yml" -f "$ROOT/compose/docker-compose.production.yml" \
    --env-file "$ROOT/.env" --env-file "$STACKDECK_STATE_DIR/deploy.env" "$@"
}
