# dbkit's db-* targets, for any project's Makefile. Three lines give them to yours:
#
#   DBKIT ?= dbkit
#   include $(shell $(DBKIT) make-include)
#   # (then: make db-help)
#
# `dbkit make-include` prints where this file is (`--snippet` prints the lines above). Every
# target is one call of dbkit, run where make runs; variables given on make's command line
# (BACKUP=..., CONFIRM=...) reach dbkit through the environment.
DBKIT ?= dbkit
DBKIT_TARGETS := db-up db-down db-url db-psql db-upgrade db-current db-history db-reset \
	db-migration-backup db-backup-full db-backups db-backup-verify db-migration-restore \
	db-restore-full db-backup-prune db-validate-schema db-squash-migrations db-archive-prune \
	db-check
.PHONY: db-help $(DBKIT_TARGETS)

db-help: ## List dbkit's db-* targets
	@$(DBKIT) make-include --targets

db-up: ## Start PostgreSQL (embedded server, or the compose service in docker mode)
	@$(DBKIT) up

db-down: ## Stop the PostgreSQL server (data is kept)
	@$(DBKIT) down

db-url: ## Print the development database URL (FORMAT=libpq for psql; SHOW_PASSWORD=1)
	@$(DBKIT) url

db-psql: ## Open psql on the development database
	@$(DBKIT) psql

db-upgrade: ## alembic upgrade head on the development database, catching up through archived chains (REVISION=..., SQL=1 prints the SQL)
	@$(DBKIT) upgrade

db-current: ## Show the development database's revision
	@$(DBKIT) current

db-history: ## Show the migration history
	@$(DBKIT) history

db-reset: ## Rebuild the development database from the chain (asks; CONFIRM=reset)
	@$(DBKIT) reset

db-migration-backup: ## Back up the migrations (versions dir) into BACKUP_DIR
	@$(DBKIT) migration-backup

db-backup-full: ## Back up migrations + database (FORMAT=plain for .sql; FORMAT=directory: pg_dump -Fd -j for big databases)
	@$(DBKIT) backup-full

db-backups: ## List backups, newest first (kind, size, revision, verified)
	@$(DBKIT) backups

db-backup-verify: ## Check a backup: checksums + test restore (BACKUP=<name>)
	@$(DBKIT) backup-verify

db-migration-restore: ## Restore the migrations from a backup (BACKUP=<name>)
	@$(DBKIT) migration-restore

db-restore-full: ## Restore database + migrations safely (BACKUP=<name>, CONFIRM=restore)
	@$(DBKIT) restore-full

db-backup-prune: ## Delete all but the newest KEEP backups (KEEP=N, CONFIRM=prune)
	@$(DBKIT) backup-prune

db-validate-schema: ## Compare the database with the app (JSON=1; exit 0 in sync, 1 drift, 2 could not check)
	@$(DBKIT) validate

db-squash-migrations: ## Squash the chain into one proven revision (DRY_RUN=1, CONFIRM=squash, NEW_REVISION=1, ARCHIVE=0, RESET=1, UNTIL=<rev>)
	@$(DBKIT) squash

db-archive-prune: ## Remove an archived chain every database has passed (ARCHIVE=<name>; asks; CONFIRM=prune)
	@$(DBKIT) archive-prune

db-check: ## CI check on scratch databases: squash still proven, models match migrations, one head, every downgrade works (JSON=1)
	@$(DBKIT) check
