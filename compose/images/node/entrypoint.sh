#!/bin/sh
# Run this node's dockerd in the foreground. NODE_REGISTRY (host:port of the
# stack's local registry, plain HTTP) is trusted as an insecure registry:
# the nodes have no route out, so that registry is where their images come from.
set -eu
mkdir -p /etc/docker
registries=""
if [ -n "${NODE_REGISTRY:-}" ]; then
  registries="\"$NODE_REGISTRY\""
fi
cat > /etc/docker/daemon.json <<JSON
{
  "insecure-registries": [$registries],
  "storage-driver": "overlay2",
  "log-driver": "json-file",
  "log-opts": {"max-size": "10m", "max-file": "3"}
}
JSON
# A container stopped (or killed) and started again keeps its filesystem:
# the runtime state of the previous run (dockerd's and containerd's pid files
# and sockets) would stop the engine from starting, e.g. "failed to save
# daemon pid to disk: process with PID 29 is still running" when the new run
# happens to have a process with the old pid. Only runtime state: the
# engine's data (/var/lib/docker, the swarm membership) stays.
rm -rf /var/run/docker /var/run/docker.pid /var/run/docker.sock /run/containerd
# No TCP listener on any node: every engine is reached with `docker exec`,
# and the manager's also on NODE_API_SOCKET, a unix socket in a folder
# scripts/swarm.sh bind-mounts from the host's swarm state folder (mode 0700,
# root's): the host's programs use it as DOCKER_HOST, and no other local user
# can reach it (an engine API is root on the host). Its group is root, not
# this image's docker group (whose id may name another group on the host).
hosts="--host unix:///var/run/docker.sock"
if [ -n "${NODE_API_SOCKET:-}" ]; then
  rm -f "$NODE_API_SOCKET"
  hosts="$hosts --host unix://$NODE_API_SOCKET"
fi
# --tls=false: plain HTTP, said explicitly (no start-up delay)
# shellcheck disable=SC2086
exec dockerd $hosts --group root --tls=false
