"""Restoring migrations, or the database and its migrations, without ever making things worse.

The database restore changes nothing until the very end: the backup is checked, loaded into
a scratch database and compared with its manifest, the current database is backed up, and
only then do two names swap in one transaction. Killed at any moment before that swap, the
current database is exactly as it was; after it, the restored one is in place and the old
one is kept under ``<db>_before_restore_<timestamp>``.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from dbkit.backup.load import require_loadable, trial_restore
from dbkit.backup.manifest import MIGRATIONS, Backup, choose_backup, require_intact
from dbkit.backup.take import take_full_backup, take_migrations_backup
from dbkit.console import Console
from dbkit.errors import DbkitError
from dbkit.pg import scratch
from dbkit.pg.mode import get_server
from dbkit.pg.server import Server
from dbkit.project import versions
from dbkit.project.chain import AlembicProject
from dbkit.safety import confirm as ask
from dbkit.safety import guard_destructive, project_lock
from dbkit.settings import Settings

# Test hook, and the one environment read outside settings.py: with DBKIT_TEST_PAUSE_AT=<step>
# a restore prints "dbkit: paused at <step>" on stderr and waits there, so the kill -9 tests
# can stop it at exact points. Unset (always, for users) it does nothing.
PAUSE_ENV = "DBKIT_TEST_PAUSE_AT"
STEPS = ("locked", "swept", "checked", "scratch-created", "scratch-loaded",
         "safety-backup-done", "migrations-staged", "swapped", "migrations-restored")


def checkpoint(step: str) -> None:
    if os.environ.get(PAUSE_ENV) == step:
        sys.stderr.write(f"dbkit: paused at {step}\n")
        sys.stderr.flush()
        while True:
            time.sleep(3600)


# -- the versions directory ----------------------------------------------------------------
def backup_migrations(backup: Backup) -> dict[str, str]:
    prefix = MIGRATIONS + "/"
    return {rel[len(prefix):]: f["sha256"] for rel, f in backup.manifest["files"].items()
            if rel.startswith(prefix)}


def stage_migrations(backup: Backup, versions_dir: Path) -> Path:
    """The backup's migrations in a new folder beside the versions dir, ready to swap in."""
    return versions.stage(versions_dir, ((rel, backup.path / MIGRATIONS / rel)
                                         for rel in backup_migrations(backup)))


def swap_migrations(staged: Path, versions_dir: Path) -> None:
    shutil.rmtree(versions.swap_in(staged, versions_dir))  # old contents: backed up already


def recover_versions(versions_dir: Path, out: Console) -> None:
    for line in versions.recover(versions_dir.parent):
        out.result(line)


# -- databases -----------------------------------------------------------------------------
def previous_name(server: Server, dbname: str) -> str:
    """``<db>_before_restore_<timestamp>``, within PostgreSQL's 63 bytes, not yet taken."""
    suffix = f"_before_restore_{time.strftime('%Y%m%d_%H%M%S')}"
    for number in range(1, 100):
        tail = suffix if number == 1 else f"{suffix}_{number}"
        name = dbname.encode()[: 63 - len(tail)].decode(errors="ignore") + tail
        if not server.database_exists(name):
            return name
    raise DbkitError(f"too many databases named {dbname}{suffix}_N; drop some")



# -- verbs ---------------------------------------------------------------------------------
def migration_restore(settings: Settings, out: Console, *, backup: str = "") -> None:
    """Restore the migrations (versions directory) from a backup, saving the current first."""
    project = AlembicProject(settings, None)
    chosen = choose_backup(settings.backup_dir, out, backup, kinds=("full", "migrations"),
                           action="restore the migrations of")
    with project_lock(settings, "migration-restore"):
        require_intact(chosen, only=MIGRATIONS)
        versions_dir = Path(project.backup_info()["versions_dir"])
        recover_versions(versions_dir, out)
        if versions.file_hashes(versions_dir) == backup_migrations(chosen):
            out.result(f"{versions_dir} already holds the migrations of {chosen.name}; "
                       "nothing to do")
            return
        saved = take_migrations_backup(settings, out, project=project,
                                       note=f"saved before restoring {chosen.name}")
        with out.step(f"Restoring {len(backup_migrations(chosen))} files into {versions_dir}"):
            swap_migrations(stage_migrations(chosen, versions_dir), versions_dir)
    out.result(f"Migrations restored from {chosen.name}; the previous ones are in {saved.path}")
    out.result("The database was not touched: make db-current shows where it stands against "
               "the restored chain (make db-upgrade or make db-reset to apply it)")


def restore_full(settings: Settings, out: Console, *, backup: str = "",
                 confirm: str | None = None, keep_previous: bool = True) -> None:
    """Restore the database and migrations from a full backup (asks; CONFIRM=restore)."""
    server = get_server(settings)
    dbname = server.dev_db
    guard_destructive(settings, server, f"restore over {dbname}")
    chosen = choose_backup(settings.backup_dir, out, backup, kinds=("full",),
                           action="restore")
    server.ensure_running(out)
    project = AlembicProject(settings, server)
    exists = server.database_exists(dbname)
    _explain(out, server, chosen, exists=exists, keep_previous=keep_previous)
    ask(out, word="restore", given=confirm, what=f"replace {dbname} with backup {chosen.name}")

    previous = None
    with project_lock(settings, "restore-full"), ThreadPoolExecutor(max_workers=1) as pool:
        checkpoint("locked")
        swept = scratch.sweep_stale(server)
        if swept:
            out.say(f"Dropped {len(swept)} scratch databases left by interrupted runs")
        checkpoint("swept")
        # An Alembic child process takes a moment: it finds the versions dir meanwhile.
        reading = pool.submit(project.backup_info)
        with out.step(f"Checking the checksums of {len(chosen.manifest['files'])} files"):
            require_intact(chosen)
        require_loadable(chosen, server)
        checkpoint("checked")
        with scratch.scratch_database(server, "restore") as loaded:
            checkpoint("scratch-created")
            trial_restore(server, chosen, out, loaded)
            checkpoint("scratch-loaded")
            versions_dir = Path(reading.result()["versions_dir"])
            recover_versions(versions_dir, out)
            same = versions.file_hashes(versions_dir) == backup_migrations(chosen)
            _save_current(settings, server, out, project, chosen, exists=exists, same=same)
            checkpoint("safety-backup-done")
            staged = None if same else stage_migrations(chosen, versions_dir)
            checkpoint("migrations-staged")
            try:
                previous = _put_in_place(server, out, loaded, dbname, exists=exists)
            except BaseException:
                if staged is not None:
                    shutil.rmtree(staged, ignore_errors=True)
                raise
            checkpoint("swapped")
        if staged is not None:
            with out.step(f"Restoring the migrations into {versions_dir}"):
                swap_migrations(staged, versions_dir)
        checkpoint("migrations-restored")
        if previous and not keep_previous:
            previous = _drop_previous(server, out, previous)

    revision = ",".join(chosen.manifest.get("current_revision") or []) or "unknown"
    out.result(f"{dbname} restored from backup {chosen.name} (revision {revision})")
    out.result("Migrations " + ("were already identical" if same
                                else f"restored into {versions_dir}"))
    if previous:
        out.result(f"The previous database is kept as {previous}; when you no longer need it: "
                   f"make db-psql, then DROP DATABASE \"{previous}\";")


def _explain(out: Console, server: Server, chosen: Backup, *, exists: bool,
             keep_previous: bool) -> None:
    m = chosen.manifest
    revision = ",".join(m.get("current_revision") or []) or "unknown"
    out.say(f"Backup {chosen.name}: {m['database']} taken {m['created_at']}, revision {revision}")
    if not exists:
        fate = " (which does not exist yet)"
    elif keep_previous:
        fate = "; the current one is backed up first, then kept as <db>_before_restore_<time>"
    else:
        fate = "; the current one is backed up first, then dropped (KEEP_PREVIOUS=0)"
    out.say(f"It replaces {server.describe()}{fate}; and the migrations directory.")


def _save_current(settings: Settings, server: Server, out: Console, project: AlembicProject,
                  chosen: Backup, *, exists: bool, same: bool) -> None:
    """The safety backup: the current database and migrations (or just the migrations)."""
    note = f"safety backup before restoring {chosen.name}"
    if exists:
        safety = take_full_backup(settings, server, out, project=project, note=note)
        out.result(f"Safety backup of {server.dev_db} (and its migrations): {safety.path}")
        return
    out.say(f"{server.dev_db} does not exist yet, so there is nothing to back up")
    if not same:
        safety = take_migrations_backup(settings, out, project=project, note=note)
        out.result(f"Current migrations saved in {safety.path}")


def _put_in_place(server: Server, out: Console, loaded: str, dbname: str, *,
                  exists: bool) -> str | None:
    """The one moment that changes the database: both renames or neither. The old name."""
    if not exists:
        with out.step(f"Creating {dbname} from the restored database"):
            scratch.rename_database(server, loaded, dbname)
        return None
    previous = previous_name(server, dbname)
    with out.step(f"Swapping the restored database in for {dbname}"):
        scratch.swap_databases(server, current=dbname, replacement=loaded, keep_as=previous)
    return previous


def _drop_previous(server: Server, out: Console, previous: str) -> str | None:
    """KEEP_PREVIOUS=0; the restore is done either way, so a failure here is a warning."""
    try:
        with out.step(f"Dropping the previous database {previous} (KEEP_PREVIOUS=0)"):
            scratch.drop_database(server, previous)
    except DbkitError as err:
        out.result(f"warning: {err.message}")
        return previous
    return None
