# The two commands that matter: `make up` starts the whole stack, `make test` runs every test.
SHELL := /bin/bash
UV ?= uv
STATE_DIR ?= .stack

.PHONY: help install up down status test lint format bench-db migrate

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

install: ## install the locked Python environment
	$(UV) sync --locked

up: install ## start the stack: Docker Compose if an engine answers, else local processes
	@if docker info >/dev/null 2>&1; then \
		echo "Docker engine found: starting compose.yaml"; \
		docker compose up -d --wait; \
	else \
		echo "No Docker engine: starting the local process stack in $(STATE_DIR)/"; \
		$(UV) run python -m infra.stack up --state-dir $(STATE_DIR); \
	fi

down: ## stop the stack (data is kept)
	@if docker info >/dev/null 2>&1; then docker compose down; \
	else $(UV) run python -m infra.stack down --state-dir $(STATE_DIR); fi

status: ## show what is running and where
	$(UV) run python -m infra.stack status --state-dir $(STATE_DIR)

migrate: install ## apply migrations to the running local stack
	set -a && source $(STATE_DIR)/env && set +a && $(UV) run alembic upgrade head

test: install ## run every test (starts its own stack in .stack-test/)
	$(UV) run pytest

lint: install ## ruff, formatting, mypy, compose.yaml against the Compose specification
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy
	$(UV) run check-jsonschema --builtin-schema vendor.compose-spec compose.yaml

format: install ## apply ruff's fixes and formatting
	$(UV) run ruff check --fix .
	$(UV) run ruff format .

bench-db: install ## per-update transaction through PgBouncer vs pgbench; last line `ratio: X`
	$(UV) run python -m loadtests.bench_db $(BENCH_ARGS)
