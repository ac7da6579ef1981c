# The project's image. Target "app": bot, admin-api and migrate. Target "backup": the same plus
# PostgreSQL 15's programs (pg_basebackup, pg_verifybackup, pg_archivecleanup, pg_dump, and the
# server for restore drills), run as the uid PostgreSQL's image uses so the WAL archive and the
# backups have one owner. Installs from uv.lock only; needs nothing from infra/.
FROM python:3.11.13-slim-bookworm AS app
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv
WORKDIR /app
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy PYTHONDONTWRITEBYTECODE=1 \
    PATH="/app/.venv/bin:$PATH"
COPY pyproject.toml uv.lock ./
RUN uv sync --locked --no-dev --no-install-project
COPY alembic.ini ./
COPY services ./services
COPY migrations ./migrations
# Compiled now: the root filesystem is read-only at run time.
RUN python -m compileall -q services migrations
# nobody, by number: a name may not resolve on the host (hadolint DL3066).
USER 65534:65534

FROM app AS backup
USER 0
# Debian 12's PostgreSQL 15, the server's major version; no cluster created on install.
RUN groupadd --system --gid 999 postgres \
    && useradd --system --uid 999 --gid postgres --home-dir /var/lib/postgresql \
        --create-home --shell /bin/bash postgres \
    && mkdir -p /etc/postgresql-common/createcluster.d \
    && echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/botstack.conf \
    && apt-get update \
    && apt-get install -y --no-install-recommends postgresql-15=15.* \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /backups /wal-archive \
    && chown 999:999 /backups /wal-archive
USER 999:999
