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
# The API on TCP without TLS: only the manager's is published, and only on
# 127.0.0.1 of the host (--tls=false says so explicitly: no start-up delay).
exec dockerd --host unix:///var/run/docker.sock --host tcp://0.0.0.0:2375 --tls=false
