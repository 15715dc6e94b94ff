# dbkit: every target calls Python; `make help` lists them. Variables given on the command
# line (BACKUP=..., CONFIRM=...) reach dbkit through the environment.
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV ?= .venv
DBKIT := $(VENV)/bin/dbkit
VENV_STAMP := $(VENV)/.dbkit-installed

.PHONY: help setup test test-matrix test-venvs lint format bench demo

help: ## Show this list
	@$(PYTHON) scripts/make_help.py $(MAKEFILE_LIST)

$(VENV_STAMP): pyproject.toml constraints.txt
	@$(PYTHON) scripts/setup_venv.py

setup: $(VENV_STAMP) ## Create .venv and install dbkit with its dev tools (uv if present, else pip)

TEST_JOBS ?= 2
test: $(VENV_STAMP) ## Run the test suite against a real (embedded) PostgreSQL (TEST_JOBS=2 workers)
	$(VENV)/bin/python -m pytest -n $(TEST_JOBS) $(PYTEST_ARGS)

test-matrix: $(VENV_STAMP) ## Server-facing tests on PostgreSQL 14-18 (MAJORS="14 15" for some)
	$(VENV)/bin/python scripts/test_matrix.py $(MAJORS)

test-venvs: ## Build the project interpreters the tests use (SQLAlchemy 1.4), once, in ~/.cache/dbkit
	@$(PYTHON) scripts/project_venvs.py

lint: $(VENV_STAMP) ## Check code style with ruff
	$(VENV)/bin/ruff check scripts tests bench backend/app

format: $(VENV_STAMP) ## Format code with ruff
	$(VENV)/bin/ruff format scripts tests bench backend/app

$(VENV)/.dbkit-installed-bench: pyproject.toml constraints.txt $(VENV_STAMP)
	@$(PYTHON) scripts/setup_venv.py --extra bench

bench: $(VENV)/.dbkit-installed-bench ## Benchmarks: results, table, chart in bench/results/ (QUICK=1: smallest sizes, ~3 min; BENCH="squash validate backup")
	$(VENV)/bin/python -m bench $(if $(filter-out 0,$(QUICK)),--quick) $(if $(REPEAT),--repeat $(REPEAT)) $(BENCH)

demo: $(VENV_STAMP) ## Tour: start the embedded server, build the sample database, show it
	@$(DBKIT) demo

# The db-* targets: the same file `dbkit make-include` gives any project's Makefile; here
# each one first makes sure .venv is installed.
include scripts/dbkit/dbkit.mk
db-help $(DBKIT_TARGETS): $(VENV_STAMP)
