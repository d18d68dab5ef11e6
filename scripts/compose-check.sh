#!/usr/bin/env bash
# The compose stack end to end on this machine (`make compose-check`; .ci/run runs it after the
# tests): Docker and compose from Debian when missing, dockerd started when none runs, base-image
# stand-ins made locally when no registry answers (scripts/docker-standins.sh, cached), SIPp
# (Debian's sip-tester) for the trunk, then scripts/compose_check.py: stack up, migrations,
# /health, create-admin, an action's SMS and spoken alert, a tip call into PostgreSQL, two SMS
# workers holding the bind's rate, /metrics, `down -v`.
#   COMPOSE_CHECK_IMAGES=official  use the official base images (a registry is reachable)
#   COMPOSE_CHECK_KEEP=1           leave the stack up afterwards (docker compose -p burgernet-check down -v)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
started=$(date +%s)

if [ "$(id -u)" != 0 ]; then
    echo "error: the compose check needs root (dockerd, nsenter into Asterisk's network namespace)" >&2
    exit 1
fi
need=()
command -v sipp >/dev/null || need+=(sip-tester)
command -v nsenter >/dev/null || need+=(util-linux)
command -v node >/dev/null || need+=(nodejs)
if [ ${#need[@]} -gt 0 ]; then
    echo "==> compose-check: installing ${need[*]} (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

COMPOSE=$(bash scripts/ensure-docker.sh)
export COMPOSE
echo "==> compose-check: $($COMPOSE version 2>/dev/null | head -n1), $(docker version --format 'Docker {{.Server.Version}}')"

if [ "${COMPOSE_CHECK_IMAGES:-standins}" != official ]; then
    eval "$(bash scripts/docker-standins.sh)"
    # Containers here have no route out (dockerd runs without iptables): builds use the host's network.
    export BUILD_NETWORK=host
fi

status=0
python3 scripts/compose_check.py || status=$?
echo "==> compose-check: $([ $status = 0 ] && echo passed || echo FAILED) in $(( $(date +%s) - started )) s"
exit $status
