# The project's image: bot, admin-api, backup and migrate all run from it.
FROM python:3.11-slim-bookworm
COPY --from=ghcr.io/astral-sh/uv:0.8 /uv /usr/local/bin/uv
WORKDIR /app
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy PATH="/app/.venv/bin:$PATH"
COPY pyproject.toml uv.lock ./
RUN uv sync --locked --no-dev --no-install-project
COPY alembic.ini ./
COPY services ./services
COPY migrations ./migrations
# nobody, by number: a name may not resolve on the host (hadolint DL3066).
USER 65534:65534
