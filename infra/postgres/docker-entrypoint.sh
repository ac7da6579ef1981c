#!/bin/bash
# compose.yaml's PostgreSQL, in place of the official image's entrypoint and doing what of it
# matters here: on an empty data directory, initdb with the superuser's password from
# POSTGRES_PASSWORD_FILE, then every /docker-entrypoint-initdb.d/*.sh and *.sql run once
# against a server listening on its socket only; then the server replaces this shell.
set -euo pipefail
: "${PGDATA:?}" "${POSTGRES_PASSWORD_FILE:?set POSTGRES_PASSWORD_FILE (a Docker secret)}"
export POSTGRES_USER=${POSTGRES_USER:-postgres}

if [ "${1:-}" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
    echo "docker-entrypoint: initializing $PGDATA"
    initdb --pgdata="$PGDATA" --username="$POSTGRES_USER" --pwfile="$POSTGRES_PASSWORD_FILE" \
        --auth-local=peer --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8
    # The server's own options (config and hba files) but no TCP listener and no archiving
    # while the init scripts run; -w waits until it accepts connections.
    options=$(printf '%q ' "${@:2}")
    pg_ctl --pgdata="$PGDATA" --wait --silent \
        -o "$options -c listen_addresses='' -c archive_mode=off" start
    for script in /docker-entrypoint-initdb.d/*; do
        case "$script" in
            *.sh) echo "docker-entrypoint: running $script"; bash "$script" ;;
            *.sql) echo "docker-entrypoint: running $script"
                psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres -f "$script" ;;
            *) ;;
        esac
    done
    pg_ctl --pgdata="$PGDATA" --wait --silent -m fast stop
    echo "docker-entrypoint: initialized"
fi
exec "$@"
