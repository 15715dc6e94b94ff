# dbkit: every target calls Python; `make help` lists them. Variables given on the command
# line (BACKUP=..., CONFIRM=...) reach dbkit through the environment.
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV ?= .venv
DBKIT := $(VENV)/bin/dbkit
VENV_STAMP := $(VENV)/.dbkit-installed

.PHONY: help setup test lint format bench demo db-up db-down db-url db-psql db-upgrade \
	db-current db-history db-reset

help: ## Show this list
	@$(PYTHON) scripts/make_help.py $(MAKEFILE_LIST)

$(VENV_STAMP): pyproject.toml
	@$(PYTHON) scripts/setup_venv.py

setup: $(VENV_STAMP) ## Create .venv and install dbkit with its dev tools (uv if present, else pip)

test: $(VENV_STAMP) ## Run the test suite against a real (embedded) PostgreSQL
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

lint: $(VENV_STAMP) ## Check code style with ruff
	$(VENV)/bin/ruff check scripts tests bench backend/app

format: $(VENV_STAMP) ## Format code with ruff
	$(VENV)/bin/ruff format scripts tests bench backend/app

bench: $(VENV_STAMP) ## Run the benchmarks (slow; writes bench/results/)
	$(VENV)/bin/python -m bench $(BENCH)

demo: $(VENV_STAMP) ## Tour: start the embedded server, build the sample database, show it
	@$(DBKIT) demo

db-up: $(VENV_STAMP) ## Start PostgreSQL (embedded server, or the compose service in docker mode)
	@$(DBKIT) up

db-down: $(VENV_STAMP) ## Stop the PostgreSQL server (data is kept)
	@$(DBKIT) down

db-url: $(VENV_STAMP) ## Print the development database URL (SHOW_PASSWORD=1 to include it)
	@$(DBKIT) url

db-psql: $(VENV_STAMP) ## Open psql on the development database
	@$(DBKIT) psql

db-upgrade: $(VENV_STAMP) ## alembic upgrade head on the development database (REVISION=...)
	@$(DBKIT) upgrade

db-current: $(VENV_STAMP) ## Show the development database's revision
	@$(DBKIT) current

db-history: $(VENV_STAMP) ## Show the migration history
	@$(DBKIT) history

db-reset: $(VENV_STAMP) ## Rebuild the development database from the chain (asks; CONFIRM=reset)
	@$(DBKIT) reset
