#!/usr/bin/env bash
# Build the stack's images from compose/images/<service>/Dockerfile.
#  - debian:trixie-slim: used if present, pulled if a registry answers, else
#    built from Debian's archive with mmdebstrap (about 20 s).
#  - Each image carries a label with the hash of its inputs; an image whose
#    label matches is not rebuilt, so a second run changes nothing.
# Usage: images.sh [VERSION ...]   (backend versions to build; default: those
#        named in deploy.env that do not exist yet, plus the base version)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

BASE_VERSION="${BASE_VERSION:-v1.0.0}"
HASH_LABEL=com.investment.source-hash

ensure_base() {
  if docker image inspect debian:trixie-slim >/dev/null 2>&1; then return; fi
  log "debian:trixie-slim: trying a registry"
  if timeout 60 docker pull -q debian:trixie-slim >/dev/null 2>&1; then return; fi
  log "no registry answers: building debian:trixie-slim from Debian's archive with mmdebstrap"
  if ! command -v mmdebstrap >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 || die "need mmdebstrap (apt-get install mmdebstrap) or a registry with debian:trixie-slim"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null
  fi
  mmdebstrap --quiet --variant=minbase --include=ca-certificates trixie - \
    | docker import -q - debian:trixie-slim >/dev/null
  docker image inspect debian:trixie-slim >/dev/null 2>&1 || die "building debian:trixie-slim failed"
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
      --label "$HASH_LABEL=$hash" -t "$image" "$@" "$ROOT" >"$out" 2>&1; then
    cat "$out" >&2; rm -f "$out"
    die "building $image failed"
  fi
  rm -f "$out"
}

ensure_base
base_id=$(docker image inspect -f '{{.Id}}' debian:trixie-slim | cut -c8-19)

for svc in db redis nginx; do
  build "investment-$svc:latest" "compose/images/$svc/Dockerfile" \
    "$base_id-$(inputs_hash "compose/images/$svc")"
done

backend_hash="$base_id-$(inputs_hash compose/images/backend platform_services)"
versions=("$@")
if [ ${#versions[@]} -eq 0 ]; then
  versions=("$BASE_VERSION")
  if [ -f "$STACKDECK_STATE_DIR/deploy.env" ]; then
    for v in $(sed -n 's/^\(BLUE\|GREEN\|WORKER\)_VERSION=//p' "$STACKDECK_STATE_DIR/deploy.env"); do
      docker image inspect "investment-backend:$v" >/dev/null 2>&1 || versions+=("$v")
    done
  fi
fi
for v in "${versions[@]}"; do
  build "investment-backend:$v" compose/images/backend/Dockerfile "$backend_hash-$v" --build-arg "APP_VERSION=$v"
done
# market-sim stands for the outside world: the same code, pinned under its own tag.
build investment-market-sim:latest compose/images/backend/Dockerfile "$backend_hash-sim" --build-arg "APP_VERSION=$BASE_VERSION"
