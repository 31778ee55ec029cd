#!/usr/bin/env bash
# A throwaway PostgreSQL server a test controls (the crash test starts, kills and restarts
# its own): `init DIR`, `start DIR PORT [SETTING=VALUE ...]`, `stop DIR`.
#
# Uses $SEATHOLD_PG_BIN (scripts/with-postgres.sh exports it) or /usr/lib/postgresql/15/bin.
# As root, the server runs as the system user $PG_USER (default seathold_pg), which
# scripts/with-postgres.sh creates; never as root.
set -euo pipefail

BIN="${SEATHOLD_PG_BIN:-/usr/lib/postgresql/${PG_VERSION:-15}/bin}"
PG_USER="${PG_USER:-seathold_pg}"

as_server_user() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u "$PG_USER" -- "$@"
    else
        "$@"
    fi
}

cmd="${1:?usage: pg-server.sh init|start|stop DIR [PORT [SETTING=VALUE ...]]}"
dir="${2:?DIR}"
case "$cmd" in
    init)
        mkdir -p "$dir"
        if [ "$(id -u)" -eq 0 ]; then
            id -u "$PG_USER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_USER"
            chown "$PG_USER" "$dir"
        fi
        chmod 700 "$dir"
        as_server_user "$BIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
            >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
        ;;
    start)
        port="${3:?PORT}"
        shift 3
        opts="-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$dir -c max_connections=200 -c shared_buffers=128MB"
        for s in "$@"; do opts="$opts -c $s"; done
        as_server_user "$BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 120 start -o "$opts" >/dev/null \
            || { tail -n 30 "$dir/server.log" >&2; exit 1; }
        ;;
    stop)
        if [ -f "$dir/data/postmaster.pid" ]; then
            as_server_user "$BIN/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
        fi
        ;;
    *)
        echo "unknown command $cmd" >&2
        exit 2
        ;;
esac
