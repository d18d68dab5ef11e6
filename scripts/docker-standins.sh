#!/usr/bin/env bash
# Local stand-ins for the stack's four base images, for a machine that reaches Debian's archive but
# no container registry (CI here). Each is made from Debian's own packages — debootstrap, then
# `docker import` — and tagged burgernet-standin/<official name>:
#   python:3.11-slim  Debian 12 (bookworm): python3.11, pip (PEP 668 marker removed: the image's
#                     Dockerfile installs with pip, as in the official image)
#   postgres:16       Debian 12's PostgreSQL (15), started by an entrypoint that honours
#                     POSTGRES_USER/POSTGRES_PASSWORD/POSTGRES_DB like the official one
#   redis:7           Debian 12's redis-server (7.0), protected mode off as in the official image
#   debian:sid-slim   debootstrap --variant=minbase sid
# They are cached twice: as images in the Docker daemon (re-used while present) and as root
# file system tarballs in ~/.cache/burgernet/standins (re-imported after the daemon's data is gone).
# Prints the `export …_IMAGE=…` lines that make docker-compose.yml build and run on them.
#   bash scripts/docker-standins.sh            # make what is missing, print the exports
#   BURGERNET_DEBIAN_MIRROR=http://… bash …    # when the apt sources name no Debian archive
set -euo pipefail

CACHE="${BURGERNET_STANDIN_CACHE:-$HOME/.cache/burgernet/standins}"
TAG_PREFIX=burgernet-standin
# This script's own hash marks the Debian 12 stand-ins it made: a changed script makes them afresh.
# The sid root has nothing of ours: its mark changes only by hand.
VERSION=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-12)
SID_VERSION=sid-1
mkdir -p "$CACHE"

say() { echo "==> standins: $*" >&2; }

mirror() {
    if [ -n "${BURGERNET_DEBIAN_MIRROR:-}" ]; then
        echo "$BURGERNET_DEBIAN_MIRROR"
        return
    fi
    # The first Debian archive (not the security one) in the machine's apt sources, either format.
    local url
    url=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | grep -oE 'https?://[^ ]+/debian/?( |$)' | grep -v security | head -n1 | tr -d ' ')
    if [ -z "$url" ]; then
        echo "error: no Debian archive in /etc/apt/sources.list*; set BURGERNET_DEBIAN_MIRROR" >&2
        exit 1
    fi
    echo "${url%/}"
}

# rootfs SUITE DIR PACKAGES...: a minbase Debian in DIR with PACKAGES installed (no services started).
rootfs() {
    local suite=$1 dir=$2
    shift 2
    command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    rm -rf "$dir"
    say "debootstrap --variant=minbase $suite (log: $dir.log)"
    debootstrap --variant=minbase "$suite" "$dir" "$(mirror)" >"$dir.log" 2>&1 \
        || { tail -n 20 "$dir.log" >&2; exit 1; }
    if [ $# -gt 0 ]; then
        say "installing $* into the $suite root"
        printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
        chmod +x "$dir/usr/sbin/policy-rc.d"
        chroot "$dir" env DEBIAN_FRONTEND=noninteractive apt-get -q -o Acquire::Check-Valid-Until=false \
            install -y --no-install-recommends "$@" >>"$dir.log" 2>&1 || { tail -n 20 "$dir.log" >&2; exit 1; }
        rm -f "$dir/usr/sbin/policy-rc.d"
    fi
    # The machine's own trust store: where downloads go through a proxy that re-signs TLS (as
    # here), builds on the stand-ins (pip, apt over https) must trust what the machine trusts.
    if [ -s /etc/ssl/certs/ca-certificates.crt ] && [ -d "$dir/etc/ssl/certs" ]; then
        cp /etc/ssl/certs/ca-certificates.crt "$dir/etc/ssl/certs/ca-certificates.crt"
    fi
    chroot "$dir" apt-get clean
    rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin
}

# tarball NAME: the cached root file system of NAME, made when missing.
bookworm_tar() {
    local tar="$CACHE/bookworm-$VERSION.tar" dir="$CACHE/bookworm"
    if [ ! -s "$tar" ]; then
        rootfs bookworm "$dir" python3 python3-pip python3-venv python-is-python3 ca-certificates \
            postgresql redis-server
        rm -f "$dir"/usr/lib/python3*/EXTERNALLY-MANAGED
        # The clusters Debian's package made at install time: the entrypoint makes its own.
        rm -rf "$dir"/var/lib/postgresql/* "$dir"/etc/postgresql/*
        install -m 755 /dev/stdin "$dir/usr/local/bin/docker-entrypoint.sh" <<'SH'
#!/bin/sh
# Stand-in entrypoint: PostgreSQL as the official image starts it, otherwise run the command.
set -eu
if [ "${1:-}" = postgres ]; then
    shift
    BIN=$(ls -d /usr/lib/postgresql/*/bin | tail -n1)
    export PGDATA="${PGDATA:-/var/lib/postgresql/data}"
    mkdir -p "$PGDATA" /var/run/postgresql
    chown -R postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    if [ ! -s "$PGDATA/PG_VERSION" ]; then
        pw=$(mktemp)
        printf '%s\n' "${POSTGRES_PASSWORD:?}" >"$pw"
        chown postgres "$pw"
        su postgres -c "$BIN/initdb -U '${POSTGRES_USER:-postgres}' --pwfile='$pw' -E UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256 -D '$PGDATA'" >/dev/null
        rm -f "$pw"
        echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
        su postgres -c "$BIN/pg_ctl -D '$PGDATA' -o '-c listen_addresses=' -w start" >/dev/null
        db="${POSTGRES_DB:-${POSTGRES_USER:-postgres}}"
        if [ "$db" != postgres ]; then
            su postgres -c "psql -U '${POSTGRES_USER:-postgres}' -d postgres -c 'CREATE DATABASE \"$db\"'" >/dev/null
        fi
        su postgres -c "$BIN/pg_ctl -D '$PGDATA' -m fast -w stop" >/dev/null
    fi
    # setpriv execs (su would stay the parent): SIGTERM reaches PostgreSQL, which shuts down and exits 0.
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$BIN/postgres" -D "$PGDATA" -c listen_addresses='*' "$@"
fi
if [ "${1:-}" = redis-server ]; then
    shift
    exec redis-server --protected-mode no "$@"
fi
exec "$@"
SH
        say "packing $tar"
        rm -f "$CACHE"/bookworm-*.tar
        tar -C "$dir" -cf "$tar.part" . && mv "$tar.part" "$tar"
        rm -rf "$dir"
    fi
    echo "$tar"
}

sid_tar() {
    local tar="$CACHE/$SID_VERSION.tar" dir="$CACHE/sid"
    if [ ! -s "$tar" ]; then
        rootfs sid "$dir"
        say "packing $tar"
        rm -f "$CACHE"/sid-*.tar "$CACHE"/sid.tar
        tar -C "$dir" -cf "$tar.part" . && mv "$tar.part" "$tar"
        rm -rf "$dir"
    fi
    echo "$tar"
}

have() { # IMAGE MARK
    [ "$(docker image inspect -f '{{index .Config.Labels "burgernet.standin"}}' "$1" 2>/dev/null)" = "$2" ]
}
LABEL="LABEL burgernet.standin=$VERSION"

ENTRY='ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]'
PG_PATH='ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
if ! have "$TAG_PREFIX/python:3.11-slim" "$VERSION"; then
    tar=$(bookworm_tar)
    say "importing $TAG_PREFIX/python:3.11-slim"
    docker import -c "$LABEL" -c 'CMD ["python3"]' -c 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' "$tar" "$TAG_PREFIX/python:3.11-slim" >/dev/null
fi
if ! have "$TAG_PREFIX/postgres:16" "$VERSION"; then
    tar=$(bookworm_tar)
    say "importing $TAG_PREFIX/postgres:16"
    docker import -c "$LABEL" -c "$ENTRY" -c 'CMD ["postgres"]' -c "$PG_PATH" -c 'EXPOSE 5432' \
        "$tar" "$TAG_PREFIX/postgres:16" >/dev/null
fi
if ! have "$TAG_PREFIX/redis:7" "$VERSION"; then
    tar=$(bookworm_tar)
    say "importing $TAG_PREFIX/redis:7"
    docker import -c "$LABEL" -c "$ENTRY" -c 'CMD ["redis-server"]' -c 'WORKDIR /data' -c 'EXPOSE 6379' \
        "$tar" "$TAG_PREFIX/redis:7" >/dev/null
fi
if ! have "$TAG_PREFIX/debian:sid-slim" "$SID_VERSION"; then
    tar=$(sid_tar)
    say "importing $TAG_PREFIX/debian:sid-slim"
    docker import -c "LABEL burgernet.standin=$SID_VERSION" -c 'CMD ["bash"]' "$tar" "$TAG_PREFIX/debian:sid-slim" >/dev/null
fi

cat <<EOF
export PYTHON_IMAGE=$TAG_PREFIX/python:3.11-slim
export POSTGRES_IMAGE=$TAG_PREFIX/postgres:16
export REDIS_IMAGE=$TAG_PREFIX/redis:7
export DEBIAN_IMAGE=$TAG_PREFIX/debian:sid-slim
EOF
