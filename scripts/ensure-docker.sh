#!/usr/bin/env bash
# Makes sure Docker and a compose command are usable: installs Debian's docker.io and
# docker-compose when missing (root, apt-get), and starts dockerd when none answers.
# dockerd is started without touching the host's firewall or routing (--iptables=false
# --ip-forward=false --ip-masq=false): containers reach each other and the host, published ports
# go through docker-proxy, and nothing on the host's network changes. Its log: /var/log/burgernet-dockerd.log.
# Prints the compose command to use: "docker compose" (v2) when present, else "docker-compose" (v1).
set -euo pipefail

say() { echo "==> docker: $*" >&2; }

if ! command -v dockerd >/dev/null || ! { command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1; }; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        echo "error: Docker is missing; install docker.io and docker-compose (Debian) or Docker Engine" >&2
        exit 1
    fi
    say "installing docker.io and docker-compose (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io docker-compose >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
        echo "error: no Docker daemon answers and only root may start one" >&2
        exit 1
    fi
    say "starting dockerd (log: /var/log/burgernet-dockerd.log)"
    # containerd first when it is not running: Debian's dockerd expects it on its socket (a socket
    # file left by a containerd that was killed proves nothing: look for the process).
    if ! pgrep -x containerd >/dev/null; then
        setsid containerd >>/var/log/burgernet-containerd.log 2>&1 </dev/null &
        for _ in $(seq 1 50); do [ -S /run/containerd/containerd.sock ] && break; sleep 0.2; done
    fi
    setsid dockerd --iptables=false --ip-forward=false --ip-masq=false --storage-driver=overlay2 \
        --containerd=/run/containerd/containerd.sock >>/var/log/burgernet-dockerd.log 2>&1 </dev/null &
    for _ in $(seq 1 150); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
    docker info >/dev/null 2>&1 || { tail -n 20 /var/log/burgernet-dockerd.log >&2; exit 1; }
fi

if docker compose version >/dev/null 2>&1; then
    echo "docker compose"
else
    echo "docker-compose"
fi
