#!/usr/bin/env bash
# Make PostgreSQL (127.0.0.1:5432, user postgres, no password) and Redis (127.0.0.1:6379) reachable
# for the tests and the benchmark. Idempotent: services that already answer are left alone.
# Starts an existing but stopped server; installs one with apt-get only when it is missing and we
# are root. Prints one line per service; exits non-zero with a clear message if a service does not
# come up within WAIT_SECONDS.
set -euo pipefail

PG_HOST=127.0.0.1
PG_PORT=5432
REDIS_HOST=127.0.0.1
REDIS_PORT=6379
WAIT_SECONDS=${WAIT_SECONDS:-30}

export DEBIAN_FRONTEND=noninteractive

is_root() { [ "$(id -u)" = 0 ]; }

die() {
    echo "ensure-services: $*" >&2
    exit 1
}

APT_UPDATED=0
apt_install() {
    is_root || return 1
    command -v apt-get >/dev/null 2>&1 || return 1
    if [ "$APT_UPDATED" = 0 ]; then
        apt-get update -qq >/dev/null || return 1
        APT_UPDATED=1
    fi
    apt-get install -y -qq "$@" >/dev/null
}

# wait_for <seconds> <command...>: true once the command succeeds, false after the deadline.
wait_for() {
    local seconds=$1
    shift
    local i
    for ((i = 0; i < seconds; i++)); do
        if "$@"; then
            return 0
        fi
        sleep 1
    done
    "$@"
}

# --------------------------------------------------------------------------------------------
# PostgreSQL

pg_up() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 2 >/dev/null 2>&1; }

# The first cluster listed by pg_lsclusters as "<version> <name>", preferring the one on our port.
pg_cluster() {
    pg_lsclusters -h 2>/dev/null | awk -v port="$PG_PORT" '
        $3 == port && !found { found = $1 " " $2 }
        NR == 1 { first = $1 " " $2 }
        END { if (found) print found; else if (first) print first }' || true
}

# Trust loopback TCP connections (tests connect as postgres without a password). Only used on a
# cluster this script created.
pg_trust_loopback() {
    local hba="/etc/postgresql/$1/$2/pg_hba.conf" tmp
    [ -f "$hba" ] || die "PostgreSQL: $hba not found"
    if ! grep -q '^# burgernet: trust loopback' "$hba"; then
        tmp=$(mktemp)
        {
            echo "# burgernet: trust loopback (added by scripts/ensure-services.sh for local tests)"
            echo "host    all    all    127.0.0.1/32    trust"
            echo "host    all    all    ::1/128         trust"
            cat "$hba"
        } >"$tmp"
        cat "$tmp" >"$hba" # keep the file's owner and mode
        rm -f "$tmp"
    fi
}

ensure_postgres() {
    if command -v pg_isready >/dev/null 2>&1 && pg_up; then
        echo "PostgreSQL: already running on $PG_HOST:$PG_PORT"
        return
    fi

    local action cluster version name installed=0
    if ! command -v pg_lsclusters >/dev/null 2>&1; then
        is_root || die "PostgreSQL is not installed and we are not root; install it (apt-get install postgresql) or start a server on $PG_HOST:$PG_PORT"
        apt_install postgresql || die "PostgreSQL: 'apt-get install -y postgresql' failed"
        installed=1
    fi

    cluster=$(pg_cluster)
    if [ -z "$cluster" ]; then
        # Installed, but no cluster (the package normally creates "main"; some images turn that off).
        is_root || die "PostgreSQL: no cluster exists and we are not root; create one with pg_createcluster"
        version=$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n 1 || true)
        [ -n "$version" ] || die "PostgreSQL: no server binaries under /usr/lib/postgresql"
        pg_createcluster --port "$PG_PORT" "$version" main >/dev/null || die "PostgreSQL: pg_createcluster $version main failed"
        cluster="$version main"
        installed=1
    fi
    read -r version name <<<"$cluster"

    if [ "$installed" = 1 ]; then
        pg_trust_loopback "$version" "$name"
        # The package may already have started the new cluster with the old pg_hba.conf.
        pg_ctlcluster --skip-systemctl-redirect "$version" "$name" reload >/dev/null 2>&1 || true
        action="installed cluster $version/$name (loopback trust auth) and started it"
    else
        action="started cluster $version/$name"
    fi

    if ! pg_up; then
        pg_ctlcluster --skip-systemctl-redirect "$version" "$name" start ||
            die "PostgreSQL: 'pg_ctlcluster $version $name start' failed (see /var/log/postgresql/postgresql-$version-$name.log)"
    fi
    wait_for "$WAIT_SECONDS" pg_up ||
        die "PostgreSQL: not accepting connections on $PG_HOST:$PG_PORT after ${WAIT_SECONDS}s (see /var/log/postgresql/postgresql-$version-$name.log)"
    echo "PostgreSQL: $action; ready on $PG_HOST:$PG_PORT"
}

# --------------------------------------------------------------------------------------------
# Redis

redis_up() {
    [ "$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ]
}

ensure_redis() {
    if command -v redis-cli >/dev/null 2>&1 && redis_up; then
        echo "Redis: already running on $REDIS_HOST:$REDIS_PORT"
        return
    fi

    local action="started redis-server"
    if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
        is_root || die "Redis is not installed and we are not root; install it (apt-get install redis-server) or start a server on $REDIS_HOST:$REDIS_PORT"
        apt_install redis-server || die "Redis: 'apt-get install -y redis-server' failed"
        action="installed and started redis-server"
    fi

    # The package's own service may have come up on installation.
    if ! redis_up; then
        redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" \
            --save "" --appendonly no --dir /tmp --logfile /tmp/burgernet-redis.log ||
            die "Redis: redis-server failed to start (see /tmp/burgernet-redis.log)"
    else
        action="installed redis-server (its service started it)"
    fi
    wait_for "$WAIT_SECONDS" redis_up ||
        die "Redis: no PONG from $REDIS_HOST:$REDIS_PORT after ${WAIT_SECONDS}s (see /tmp/burgernet-redis.log)"
    echo "Redis: $action (no persistence); ready on $REDIS_HOST:$REDIS_PORT"
}

ensure_postgres
ensure_redis
