#!/usr/bin/env bash
# Build the stack's images from compose/images/<service>/Dockerfile.
#  - The base, BASE_IMAGE (default debian:trixie-slim): used if present, pulled
#    if a registry answers, else built from Debian's archive with mmdebstrap
#    (about 20 s; mmdebstrap is installed with apt-get when missing).
#    BASE_BUILD=always skips the first two and builds it with mmdebstrap every
#    time: the test command does that under a tag of its own run, so the
#    fresh-machine path runs on every CI run, not only on new machines.
#  - Each image carries a label with the hash of its inputs (the base's id
#    included); an image whose label matches is not rebuilt, so a second run
#    changes nothing. Each also names its base (com.investment.base-image), so
#    `stackdeck deploy --build` builds a new version from the same base.
# Usage: images.sh [VERSION ...]   (backend versions to build; default: those
#        named in deploy.env that do not exist yet, plus the base version)
#        BROWSER_IMAGE=yes also builds $IMAGE_PREFIX-browser (the tests' Chromium).
#        SWARM_IMAGES=yes also builds $IMAGE_PREFIX-node and $IMAGE_PREFIX-registry
#        (a Swarm node as a container, a local registry: scripts/swarm.sh).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

BASE_VERSION="${BASE_VERSION:-v1.0.0}"
BASE_IMAGE="${BASE_IMAGE:-debian:trixie-slim}"
BASE_BUILD="${BASE_BUILD:-auto}"
HASH_LABEL=com.investment.source-hash
BASE_LABEL=com.investment.base-image

build_base() {  # mmdebstrap | docker import: Debian trixie minbase as $BASE_IMAGE
  need_cmd mmdebstrap mmdebstrap
  local started=$SECONDS
  log "building $BASE_IMAGE from Debian's archive with mmdebstrap"
  # docker import has no -q: it prints the new image id, which we drop.
  mmdebstrap --quiet --variant=minbase --include=ca-certificates trixie - \
    | docker import - "$BASE_IMAGE" >/dev/null \
    || die "building $BASE_IMAGE with mmdebstrap failed (output above)"
  docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 || die "building $BASE_IMAGE failed: no image after docker import"
  log "built $BASE_IMAGE in $(( SECONDS - started )) s"
}

ensure_base() {
  case "$BASE_BUILD" in
    always) build_base; return ;;
    auto) ;;
    *) die "BASE_BUILD must be auto or always (got '$BASE_BUILD')" ;;
  esac
  if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then return; fi
  log "$BASE_IMAGE: trying a registry"
  if timeout 60 docker pull -q "$BASE_IMAGE" >/dev/null 2>&1; then return; fi
  log "no registry answers"
  build_base
}

inputs_hash() {  # inputs_hash PATH... -> sha256 of every file's path and content
  (cd "$ROOT" && find "$@" -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 \
    | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
}

build() {  # build IMAGE DOCKERFILE HASH [build args...]
  local image=$1 dockerfile=$2 hash=$3; shift 3
  local have
  have=$(docker image inspect -f "{{ index .Config.Labels \"$HASH_LABEL\" }}" "$image" 2>/dev/null || true)
  if [ "$have" = "$hash" ]; then
    log "$image up to date"
    return
  fi
  log "building $image"
  local out
  out=$(mktemp)
  if ! DOCKER_BUILDKIT=0 docker build --network host -q -f "$ROOT/$dockerfile" \
      --label "$HASH_LABEL=$hash" --label "$BASE_LABEL=$BASE_IMAGE" \
      --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$image" "$@" "$ROOT" >"$out" 2>&1; then
    cat "$out" >&2; rm -f "$out"
    die "building $image failed"
  fi
  rm -f "$out"
}

# Two builds at a time (IMAGE_JOBS): a build waits on the archive's downloads
# and on dpkg as much as on a core, so two share the 2 cores of the reference
# machine well. A failed build does not stop the others; the script fails at
# the end, each failure's output above.
JOBS="${IMAGE_JOBS:-2}"
case "$JOBS" in ''|*[!0-9]*|0) die "IMAGE_JOBS must be a number of builds, 1 or more (got '$JOBS')" ;; esac
need_cmd pgrep procps  # stop_builds below
FAILED_DIR=$(mktemp -d)
kill_tree() {  # kill_tree PID: it and every process under it (a build's docker CLI)
  local child
  for child in $(pgrep -P "$1" || true); do kill_tree "$child"; done
  kill "$1" 2>/dev/null || true
}
stop_builds() {  # on exit: a build still going (Ctrl-C, a failure here) goes too
  local job
  for job in $(jobs -p); do kill_tree "$job"; done
  wait 2>/dev/null || true
  rm -rf "$FAILED_DIR"
}
trap stop_builds EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
queue() {  # queue IMAGE DOCKERFILE HASH [build args...]: build, in the background
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
  local image=$1
  ( build "$@" ) || : >"$FAILED_DIR/${image//[\/:]/_}" &
}

ensure_base
base_id=$(docker image inspect -f '{{.Id}}' "$BASE_IMAGE" | cut -c8-19)

for svc in db redis nginx; do
  queue "$IMAGE_PREFIX-$svc:latest" "compose/images/$svc/Dockerfile" \
    "$base_id-$(inputs_hash "compose/images/$svc")"
done
# One image for Prometheus, Alertmanager, the exporters and the alert sink.
queue "$IMAGE_PREFIX-monitoring:latest" compose/images/monitoring/Dockerfile \
  "$base_id-$(inputs_hash compose/images/monitoring platform_services/monitoring platform_services/__init__.py)"

# The backend's inputs: platform_services without the frontend's files (a
# page edit does not rebuild the backend; its image copies them, unused).
backend_hash="$base_id-$(inputs_hash compose/images/backend \
  $(cd "$ROOT" && find platform_services -mindepth 1 -maxdepth 1 ! -name frontend ! -name __pycache__))"
versions=("$@")
if [ ${#versions[@]} -eq 0 ]; then
  versions=("$BASE_VERSION")
  if [ -f "$STACKDECK_STATE_DIR/deploy.env" ]; then
    for v in $(sed -n 's/^\(BLUE\|GREEN\|WORKER\)_VERSION=//p' "$STACKDECK_STATE_DIR/deploy.env"); do
      case " ${versions[*]} " in *" $v "*) continue ;; esac
      docker image inspect "$IMAGE_PREFIX-backend:$v" >/dev/null 2>&1 || versions+=("$v")
    done
  fi
fi
for v in "${versions[@]}"; do
  queue "$IMAGE_PREFIX-backend:$v" compose/images/backend/Dockerfile "$backend_hash-$v" --build-arg "APP_VERSION=$v"
done
# market-sim stands for the outside world: the same code, pinned under its own tag.
queue "$IMAGE_PREFIX-market-sim:latest" compose/images/backend/Dockerfile "$backend_hash-sim" --build-arg "APP_VERSION=$BASE_VERSION"
# The web frontend: static files served by its own nginx. Its versions are
# deploy.env's FRONTEND_VERSION and each colour's (FRONTEND_<COLOUR>_VERSION),
# default the base version; one missing is built from this checkout.
# (No deploy.env yet on a fresh machine: set -e and pipefail must not end the
# script silently here.)
frontend_versions=("${FRONTEND_VERSION:-$BASE_VERSION}")
if [ -f "$STACKDECK_STATE_DIR/deploy.env" ]; then
  for v in $(sed -n 's/^FRONTEND_\(BLUE_\|GREEN_\|\)VERSION=//p' "$STACKDECK_STATE_DIR/deploy.env"); do
    case " ${frontend_versions[*]} " in *" $v "*) continue ;; esac
    docker image inspect "$IMAGE_PREFIX-frontend:$v" >/dev/null 2>&1 || frontend_versions+=("$v")
  done
fi
for v in "${frontend_versions[@]}"; do
  queue "$IMAGE_PREFIX-frontend:$v" compose/images/frontend/Dockerfile \
    "$base_id-$(inputs_hash compose/images/frontend platform_services/frontend)-$v" \
    --build-arg "APP_VERSION=$v"
done
# Headless Chromium for the browser tests only (BROWSER_IMAGE=yes; scripts/test.sh
# sets it): the stack never runs it, so a set-up does not build it.
if [ "${BROWSER_IMAGE:-no}" = yes ]; then
  queue "$IMAGE_PREFIX-browser:latest" compose/images/browser/Dockerfile \
    "$base_id-$(inputs_hash compose/images/browser)"
fi
# A Swarm node (its own dockerd) and the local registry the nodes pull from,
# for the stack on Swarm only (SWARM_IMAGES=yes; scripts/swarm.sh sets it).
if [ "${SWARM_IMAGES:-no}" = yes ]; then
  for svc in node registry; do
    queue "$IMAGE_PREFIX-$svc:latest" "compose/images/$svc/Dockerfile" \
      "$base_id-$(inputs_hash "compose/images/$svc")"
  done
fi
wait
if [ -n "$(ls -A "$FAILED_DIR")" ]; then
  die "building failed: $(ls "$FAILED_DIR" | tr '\n' ' ')(each one's output above)"
fi
log "images ready in $SECONDS s"
