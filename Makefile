# dbkit: every target calls Python; `make help` lists them. Variables given on the command
# line (BACKUP=..., CONFIRM=...) reach dbkit through the environment.
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV ?= .venv
DBKIT := $(VENV)/bin/dbkit
VENV_STAMP := $(VENV)/.dbkit-installed

.PHONY: help setup test test-matrix test-venvs lint format bench demo db-up db-down db-url \
	db-psql db-upgrade \
	db-current db-history db-reset
.PHONY: db-migration-backup db-backup-full db-backups db-backup-verify db-migration-restore \
	db-restore-full db-backup-prune
.PHONY: db-validate-schema
.PHONY: db-squash-migrations db-archive-prune

help: ## Show this list
	@$(PYTHON) scripts/make_help.py $(MAKEFILE_LIST)

$(VENV_STAMP): pyproject.toml
	@$(PYTHON) scripts/setup_venv.py

setup: $(VENV_STAMP) ## Create .venv and install dbkit with its dev tools (uv if present, else pip)

test: $(VENV_STAMP) ## Run the test suite against a real (embedded) PostgreSQL
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

test-matrix: $(VENV_STAMP) ## Server-facing tests on PostgreSQL 14-18 (MAJORS="14 15" for some)
	$(VENV)/bin/python scripts/test_matrix.py $(MAJORS)

test-venvs: ## Build the project interpreters the tests use (SQLAlchemy 1.4), once, in ~/.cache/dbkit
	@$(PYTHON) scripts/project_venvs.py

lint: $(VENV_STAMP) ## Check code style with ruff
	$(VENV)/bin/ruff check scripts tests bench backend/app

format: $(VENV_STAMP) ## Format code with ruff
	$(VENV)/bin/ruff format scripts tests bench backend/app

$(VENV)/.dbkit-installed-bench: pyproject.toml $(VENV_STAMP)
	@$(PYTHON) scripts/setup_venv.py --extra bench

bench: $(VENV)/.dbkit-installed-bench ## Benchmarks: results, table, chart in bench/results/ (QUICK=1: smallest sizes, ~3 min; BENCH="squash validate backup")
	$(VENV)/bin/python -m bench $(if $(filter-out 0,$(QUICK)),--quick) $(if $(REPEAT),--repeat $(REPEAT)) $(BENCH)

demo: $(VENV_STAMP) ## Tour: start the embedded server, build the sample database, show it
	@$(DBKIT) demo

db-up: $(VENV_STAMP) ## Start PostgreSQL (embedded server, or the compose service in docker mode)
	@$(DBKIT) up

db-down: $(VENV_STAMP) ## Stop the PostgreSQL server (data is kept)
	@$(DBKIT) down

db-url: $(VENV_STAMP) ## Print the development database URL (FORMAT=libpq for psql; SHOW_PASSWORD=1)
	@$(DBKIT) url

db-psql: $(VENV_STAMP) ## Open psql on the development database
	@$(DBKIT) psql

db-upgrade: $(VENV_STAMP) ## alembic upgrade head on the development database, catching up through archived chains (REVISION=..., SQL=1 prints the SQL)
	@$(DBKIT) upgrade

db-current: $(VENV_STAMP) ## Show the development database's revision
	@$(DBKIT) current

db-history: $(VENV_STAMP) ## Show the migration history
	@$(DBKIT) history

db-reset: $(VENV_STAMP) ## Rebuild the development database from the chain (asks; CONFIRM=reset)
	@$(DBKIT) reset

db-migration-backup: $(VENV_STAMP) ## Back up the migrations (versions dir) into BACKUP_DIR
	@$(DBKIT) migration-backup

db-backup-full: $(VENV_STAMP) ## Back up migrations + database (FORMAT=plain for .sql; FORMAT=directory: pg_dump -Fd -j for big databases)
	@$(DBKIT) backup-full

db-backups: $(VENV_STAMP) ## List backups, newest first (kind, size, revision, verified)
	@$(DBKIT) backups

db-backup-verify: $(VENV_STAMP) ## Check a backup: checksums + test restore (BACKUP=<name>)
	@$(DBKIT) backup-verify

db-migration-restore: $(VENV_STAMP) ## Restore the migrations from a backup (BACKUP=<name>)
	@$(DBKIT) migration-restore

db-restore-full: $(VENV_STAMP) ## Restore database + migrations safely (BACKUP=<name>, CONFIRM=restore)
	@$(DBKIT) restore-full

db-backup-prune: $(VENV_STAMP) ## Delete all but the newest KEEP backups (KEEP=N, CONFIRM=prune)
	@$(DBKIT) backup-prune

db-validate-schema: $(VENV_STAMP) ## Compare the database with the app (JSON=1; exit 0 in sync, 1 drift, 2 could not check)
	@$(DBKIT) validate

db-squash-migrations: $(VENV_STAMP) ## Squash the chain into one proven revision (DRY_RUN=1, CONFIRM=squash, NEW_REVISION=1, ARCHIVE=0, RESET=1, UNTIL=<rev>)
	@$(DBKIT) squash

db-archive-prune: $(VENV_STAMP) ## Remove an archived chain every database has passed (ARCHIVE=<name>; asks; CONFIRM=prune)
	@$(DBKIT) archive-prune
