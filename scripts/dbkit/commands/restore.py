"""Restoring migrations, or the database and its migrations, without ever making things worse.

The database restore changes nothing until the very end: the backup is checked, loaded into
a scratch database and compared with its manifest, a safety backup is taken, and only then
do two names swap in one transaction. Killed at any moment before that swap, the current
database is exactly as it was; after it, the restored one is in place and the old one is
kept under ``<db>_before_restore_<timestamp>``.

One copy of the old database is enough: when it is kept (the default) the safety backup holds
its migrations and a manifest naming the kept database; only KEEP_PREVIOUS=0, which drops it,
pays for a full dump of it first.
"""

from __future__ import annotations

import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from dbkit.backup import asrole
from dbkit.backup.load import require_loadable, trial_restore
from dbkit.backup.manifest import MIGRATIONS, Backup, choose_backup, require_intact
from dbkit.backup.take import take_full_backup, take_migrations_backup
from dbkit.console import Console
from dbkit.errors import DbkitError
from dbkit.pg import scratch
from dbkit.pg.mode import chain_server, get_server
from dbkit.pg.queries import quote_ident
from dbkit.pg.server import Server
from dbkit.project import archive as archives
from dbkit.project import versions
from dbkit.project.chain import AlembicProject
from dbkit.retry import no_interrupt
from dbkit.safety import checkpoint, destructive_lock, guard_destructive, project_lock
from dbkit.safety import confirm as ask
from dbkit.settings import Settings

STEPS = ("locked", "swept", "checked", "scratch-created", "scratch-loaded",
         "safety-backup-done", "migrations-staged", "swapped", "migrations-restored")


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
    # The old contents were backed up already; failing to remove them harms nothing (the
    # next run sweeps them).
    shutil.rmtree(versions.swap_in(staged, versions_dir), ignore_errors=True)


# -- databases -----------------------------------------------------------------------------
def previous_name(server: Server, dbname: str) -> str:
    """``<db>_before_restore_<UTC timestamp>``, within PostgreSQL's 63 bytes, not yet taken."""
    suffix = f"_before_restore_{time.strftime('%Y%m%d_%H%M%S', time.gmtime())}"
    for number in range(1, 100):
        tail = suffix if number == 1 else f"{suffix}_{number}"
        name = dbname.encode()[: 63 - len(tail)].decode(errors="ignore") + tail
        if not server.database_exists(name):
            return name
    raise DbkitError(f"too many databases named {dbname}{suffix}_N; drop some")



# -- verbs ---------------------------------------------------------------------------------
def migration_restore(settings: Settings, out: Console, *, backup: str = "") -> None:
    """Restore the migrations (versions directory) from a backup, saving the current first."""
    project = AlembicProject(settings, chain_server(settings), out=out)
    chosen = choose_backup(settings.backup_dir, out, backup, kinds=("full", "migrations"),
                           action="restore the migrations of")
    with project_lock(settings, "migration-restore"):
        require_intact(chosen, only=MIGRATIONS)
        versions_dir = Path(project.backup_info()["versions_dir"])
        versions.require_swappable(versions_dir)
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
    for line in archives.undone_advice(versions_dir):
        out.result(line)


def restore_full(settings: Settings, out: Console, *, backup: str = "",
                 confirm: str | None = None, keep_previous: bool = True) -> None:
    """Restore the database and migrations from a full backup (asks; CONFIRM=restore)."""
    server = get_server(settings)
    dbname = server.dev_db
    guard_destructive(settings, server, f"restore over {dbname}")
    chosen = choose_backup(settings.backup_dir, out, backup, kinds=("full",),
                           action="restore")
    server.ensure_running(out)
    project = AlembicProject(settings, server, out=out)
    exists = server.database_exists(dbname)
    _explain(out, server, chosen, exists=exists, keep_previous=keep_previous)
    ask(out, word="restore", given=confirm, what=f"replace {dbname} with backup {chosen.name}")

    previous = None
    interrupted = False
    with destructive_lock(settings, server, "restore-full"), \
            ThreadPoolExecutor(max_workers=1) as pool:
        checkpoint("locked")
        swept = scratch.sweep_stale(server)
        asrole.sweep_roles(server)
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
            trial_restore(server, chosen, out, loaded, settings.trust)
            checkpoint("scratch-loaded")
            versions_dir = Path(reading.result()["versions_dir"])
            # Everything that could stop the migrations from following the database is
            # checked now, while nothing has changed.
            versions.require_swappable(versions_dir)
            same = versions.file_hashes(versions_dir) == backup_migrations(chosen)
            previous = previous_name(server, dbname) if exists else None
            _save_current(settings, server, out, project, chosen, info=reading.result(),
                          previous=previous, keep_previous=keep_previous, same=same)
            checkpoint("safety-backup-done")
            staged = None if same else _stage_for_restore(chosen, versions_dir, dbname,
                                                           previous, loaded)
            checkpoint("migrations-staged")
            # The database swap and the migrations swap: both or neither. Ctrl-C waits until
            # both are done; a kill -9 between them is finished by the next dbkit run (the
            # intent written above says how).
            try:
                with no_interrupt():
                    try:
                        _put_in_place(server, out, loaded, dbname, previous)
                    except BaseException:
                        _discard(staged, versions_dir)
                        raise
                    checkpoint("swapped")
                    if staged is not None:
                        _migrations_follow(staged, versions_dir, chosen, dbname, previous, out)
            except KeyboardInterrupt:
                interrupted = True
        checkpoint("migrations-restored")
        if previous and not keep_previous:
            previous = _drop_previous(server, out, previous)

    revision = ",".join(chosen.manifest.get("current_revision") or []) or "unknown"
    out.result(f"{dbname} restored from backup {chosen.name} (revision {revision})")
    out.result("Migrations " + ("were already identical" if same
                                else f"restored into {versions_dir}"))
    if previous:
        out.result(f"The previous database is kept as {previous}; when you no longer need it: "
                   f"make db-psql, then DROP DATABASE {quote_ident(previous)};")
    if interrupted:
        out.result("(Ctrl-C came while the database and migrations were being swapped: both "
                   "were finished first)")
    if not same:
        for line in archives.undone_advice(versions_dir):
            out.result(line)


def _explain(out: Console, server: Server, chosen: Backup, *, exists: bool,
             keep_previous: bool) -> None:
    m = chosen.manifest
    revision = ",".join(m.get("current_revision") or []) or "unknown"
    out.say(f"Backup {chosen.name}: {m['database']} taken {m['created_at']}, revision {revision}")
    if not exists:
        fate = " (which does not exist yet)"
    elif keep_previous:
        fate = ("; the current one is kept as <db>_before_restore_<time> (its migrations are "
                "backed up first)")
    else:
        fate = "; the current one is backed up first, then dropped (KEEP_PREVIOUS=0)"
    out.say(f"It replaces {server.describe()}{fate}; and the migrations directory.")


def _save_current(settings: Settings, server: Server, out: Console, project: AlembicProject,
                  chosen: Backup, *, info: dict[str, Any], previous: str | None,
                  keep_previous: bool, same: bool) -> None:
    """The safety backup, never two copies of the same database: a full backup when the
    current database will be dropped (KEEP_PREVIOUS=0); when it is kept under ``previous``,
    the migrations and a manifest naming that database (the kept database is its copy)."""
    note = f"safety backup before restoring {chosen.name}"
    if previous is not None and not keep_previous:
        safety = take_full_backup(settings, server, out, project=project, note=note)
        out.result(f"Safety backup of {server.dev_db} (and its migrations): {safety.path}")
        return
    if previous is not None:
        safety = take_migrations_backup(
            settings, out, project=project, info=info,
            note=f"{note}; the database is kept as {previous}",
            extra={"previous_database": previous, "database": server.dev_db})
        out.result(f"Safety backup of the migrations (the database itself will be kept as "
                   f"{previous}): {safety.path}")
        return
    out.say(f"{server.dev_db} does not exist yet, so there is nothing to back up")
    if not same:
        safety = take_migrations_backup(settings, out, project=project, info=info, note=note)
        out.result(f"Current migrations saved in {safety.path}")


def _stage_for_restore(chosen: Backup, versions_dir: Path, dbname: str, previous: str | None,
                       loaded: str) -> Path:
    """The backup's migrations staged beside the versions directory, checked to be
    swappable, and the intent that lets the next run finish the swap if this one is killed."""
    staged = stage_migrations(chosen, versions_dir)
    try:
        if staged.stat().st_dev != versions.real_dir(versions_dir).stat().st_dev:
            raise DbkitError(f"cannot stage the migrations beside {versions_dir} on the same "
                             "device; nothing was changed")
        versions.write_intent(versions_dir, {
            "kind": "restore", "database": dbname, "keep_as": previous, "loaded": loaded,
            "staged": str(staged), "backup": chosen.name,
            "new_hashes": backup_migrations(chosen)})
    except BaseException:
        _discard(staged, versions_dir)
        raise
    return staged


def _discard(staged: Path | None, versions_dir: Path) -> None:
    """Nothing was swapped: the staged copy and the intent go."""
    if staged is not None:
        shutil.rmtree(staged, ignore_errors=True)
        versions.clear_intent(versions_dir)


def _migrations_follow(staged: Path, versions_dir: Path, chosen: Backup, dbname: str,
                       previous: str | None, out: Console) -> None:
    """After the database swap: the migrations swap, or exactly what state things are in."""
    try:
        with out.step(f"Restoring the migrations into {versions_dir}"):
            swap_migrations(staged, versions_dir)
    except (OSError, DbkitError) as err:
        reason = err.message if isinstance(err, DbkitError) else f"{err.strerror}: {err.filename}"
        _discard(staged, versions_dir)
        kept = f" (the previous one is kept as {previous})" if previous else ""
        raise DbkitError(
            f"{dbname} was restored from backup {chosen.name}{kept}, but its migrations were "
            f"not ({reason}); {versions_dir} still holds the current ones. Run "
            f"make db-migration-restore BACKUP={chosen.name} to restore them") from None
    versions.clear_intent(versions_dir)


def _put_in_place(server: Server, out: Console, loaded: str, dbname: str,
                  previous: str | None) -> None:
    """The one moment that changes the database: both renames or neither."""
    if previous is None:
        with out.step(f"Creating {dbname} from the restored database"):
            scratch.rename_database(server, loaded, dbname)
        return
    # A database cannot be renamed while sessions use it: say so rather than surprise the app.
    out.say(f"Sessions connected to {dbname} are ended for the swap (open transactions roll "
            "back; the app reconnects to the restored database)")
    with out.step(f"Swapping the restored database in for {dbname}"):
        scratch.swap_databases(server, current=dbname, replacement=loaded, keep_as=previous)


def _drop_previous(server: Server, out: Console, previous: str) -> str | None:
    """KEEP_PREVIOUS=0; the restore is done either way, so a failure here is a warning."""
    try:
        with out.step(f"Dropping the previous database {previous} (KEEP_PREVIOUS=0)"):
            scratch.drop_database(server, previous)
    except DbkitError as err:
        out.result(f"warning: {err.message}")
        return previous
    return None
