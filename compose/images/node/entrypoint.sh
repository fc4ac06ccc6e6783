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
# The engine's API on TCP (plain HTTP) only where NODE_API_FROM is set: the
# manager, whose port 2375 scripts/swarm.sh publishes on the host's 127.0.0.1.
# NODE_API_FROM is the only source address let in, the nodes' network gateway
# (where the host's connections to the published port come from), and only on
# eth0; everyone else, the stack's own tasks included (they reach the node
# through its docker_gwbridge or its eth0 address), gets a reset. The rules
# are in place before the engine listens. The other nodes have no TCP
# listener at all: their engines are reached with `docker exec`.
hosts="--host unix:///var/run/docker.sock"
if [ -n "${NODE_API_FROM:-}" ]; then
  iptables -w -D INPUT -p tcp --dport 2375 -j REJECT --reject-with tcp-reset 2>/dev/null || true
  iptables -w -D INPUT -p tcp --dport 2375 -i eth0 -s "$NODE_API_FROM" -j ACCEPT 2>/dev/null || true
  iptables -w -I INPUT 1 -p tcp --dport 2375 -j REJECT --reject-with tcp-reset
  iptables -w -I INPUT 1 -p tcp --dport 2375 -i eth0 -s "$NODE_API_FROM" -j ACCEPT
  hosts="$hosts --host tcp://0.0.0.0:2375"
fi
# --tls=false: plain HTTP, said explicitly (no start-up delay)
# shellcheck disable=SC2086
exec dockerd $hosts --tls=false
