#!/usr/bin/env bash
# Run a command against a throwaway PostgreSQL server.
#
#   scripts/with-postgres.sh cargo test --workspace --all-features
#
# Starts a fresh PostgreSQL (version $PG_VERSION, default 15) on a free loopback port with
# its data in a temporary directory, exports SEATHOLD_PG_URL (and SEATHOLD_PG_BIN, the
# server's bin directory), runs the command, then stops the server and deletes the directory,
# also when the command fails or is interrupted. Exits with the command's status.
#
# If the server's binaries are missing and we are root, installs them with apt-get. The
# server never runs as root: as root, it runs as the system user $PG_USER (default
# seathold_pg, created if needed).
#
# Environment: PG_VERSION, PG_USER, SEATHOLD_PG_FSYNC (on|off, default on),
# SEATHOLD_PG_MAX_CONNECTIONS (default 300).
set -euo pipefail

if [ "$#" -eq 0 ]; then
    echo "usage: $0 COMMAND [ARGS...]" >&2
    exit 2
fi

PG_VERSION="${PG_VERSION:-15}"
PG_USER="${PG_USER:-seathold_pg}"
BIN="/usr/lib/postgresql/$PG_VERSION/bin"

log() { echo "with-postgres: $*" >&2; }

if [ ! -x "$BIN/initdb" ] || [ ! -x "$BIN/pg_ctl" ] || [ ! -x "$BIN/pgbench" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        log "PostgreSQL $PG_VERSION is not installed in $BIN and we are not root to install it"
        exit 1
    fi
    log "installing PostgreSQL $PG_VERSION with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "postgresql-$PG_VERSION" "postgresql-client-$PG_VERSION" >/dev/null
    # The package may start a cluster of its own; we do not use it.
    if command -v pg_ctlcluster >/dev/null 2>&1; then
        pg_ctlcluster "$PG_VERSION" main stop >/dev/null 2>&1 || true
    fi
fi

as_server_user() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u "$PG_USER" -- "$@"
    else
        "$@"
    fi
}

if [ "$(id -u)" -eq 0 ] && ! id -u "$PG_USER" >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_USER"
fi

DIR="$(mktemp -d "${TMPDIR:-/tmp}/seathold-pg.XXXXXX")"
if [ "$(id -u)" -eq 0 ]; then
    chown "$PG_USER" "$DIR"
fi
chmod 700 "$DIR"

cleanup() {
    local status=$?
    if [ -f "$DIR/data/postmaster.pid" ]; then
        as_server_user "$BIN/pg_ctl" -D "$DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$DIR"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

as_server_user "$BIN/initdb" -D "$DIR/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$DIR/initdb.log" 2>&1 \
    || { cat "$DIR/initdb.log" >&2; exit 1; }
if ! as_server_user "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 start -o "\
    -c listen_addresses=127.0.0.1 -p $PORT -c unix_socket_directories=$DIR \
    -c max_connections=${SEATHOLD_PG_MAX_CONNECTIONS:-300} -c fsync=${SEATHOLD_PG_FSYNC:-on} \
    -c shared_buffers=256MB" >/dev/null; then
    cat "$DIR/server.log" >&2 || true
    exit 1
fi

export SEATHOLD_PG_URL="postgres://postgres@127.0.0.1:$PORT/postgres"
export SEATHOLD_PG_BIN="$BIN"
log "PostgreSQL $PG_VERSION on 127.0.0.1:$PORT (data in $DIR, fsync=${SEATHOLD_PG_FSYNC:-on}); SEATHOLD_PG_URL=$SEATHOLD_PG_URL"

"$@"
