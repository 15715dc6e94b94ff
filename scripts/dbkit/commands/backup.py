"""Taking, listing and pruning backups: the verbs around backup/take.py."""

from __future__ import annotations

import os
import secrets
import shutil

from dbkit.backup.manifest import describe, human_size, list_backups
from dbkit.backup.take import TMP_PREFIX, take_full_backup, take_migrations_backup
from dbkit.console import Console
from dbkit.errors import ConfigError
from dbkit.pg.mode import get_server
from dbkit.safety import confirm as ask
from dbkit.safety import project_lock
from dbkit.settings import Settings


# -- verbs ---------------------------------------------------------------------------------
def migration_backup(settings: Settings, out: Console) -> None:
    """Back up the migrations (the versions directory) into BACKUP_DIR/<timestamp>/."""
    made = take_migrations_backup(settings, out)
    out.result(f"Migrations backed up to {made.path} ({len(made.manifest['files']) - 1} files)")


def backup_full(settings: Settings, out: Console, *, format: str = "custom") -> None:  # noqa: A002
    """Back up migrations and the whole database (FORMAT=plain for a .sql dump, FORMAT=directory
    for pg_dump -Fd -j<cores> into a folder, for big databases)."""
    server = get_server(settings)
    server.ensure_running(out)
    made = take_full_backup(settings, server, out, fmt=format.strip().lower())
    tables = len(made.manifest["row_counts"])
    rows = sum(made.manifest["row_counts"].values())
    out.result(f"Full backup of {server.dev_db} written to {made.path}")
    out.result(f"  {tables} tables, {rows} rows, {human_size(made.size)}; "
               f"verify it with: make db-backup-verify BACKUP={made.name}")


def backups(settings: Settings, out: Console) -> None:
    """List the backups, newest first: name, kind, size, revision, verified or not."""
    found = list_backups(settings.backup_dir)
    if not found:
        out.result(f"No backups in {settings.backup_dir}")
        return
    out.result(f"Backups in {settings.backup_dir} (newest first):")
    out.result(f"{'NAME':<18} {'KIND':<10} {'SIZE':>9}  {'REVISION':<14} CHECKED")
    for name, made, why in found:
        out.result(describe(made) if made is not None else f"{name:<18} {'?':<10} "
                   f"{'':>9}  {'':<14} damaged: {why}")


def backup_prune(settings: Settings, out: Console, *, keep: str = "",
                 confirm: str | None = None) -> None:
    """Delete all but the newest KEEP backups (asks; CONFIRM=prune)."""
    if not keep.strip():
        raise ConfigError("set KEEP=<n>: how many of the newest backups to keep")
    try:
        count = int(keep)
    except ValueError:
        raise ConfigError(f"KEEP={keep!r} is not a number") from None
    if count < 1:
        raise ConfigError(f"KEEP={keep} would delete every backup; the newest one is always kept "
                          "(use KEEP=1 or more)")
    finished = [made for _, made, _ in list_backups(settings.backup_dir) if made is not None]
    doomed = finished[count:]
    if not doomed:
        out.result(f"Nothing to prune: {len(finished)} backups, KEEP={count}")
        return
    out.result(f"Keeping the newest {count} by creation time (UTC, from each manifest): "
               + ", ".join(made.name for made in finished[:count]))
    out.result(f"Deleting {len(doomed)}:")
    for made in doomed:
        out.result(f"  {describe(made)}  created {made.manifest.get('created_at')}")
    ask(out, word="prune", given=confirm, what=f"delete {len(doomed)} backups")
    # The lock: a restore reading one of these backups holds it until it is done.
    with project_lock(settings, "backup-prune"):
        for made in doomed:
            # Rename first: a prune killed half-way leaves an unfinished folder, never a
            # backup that looks complete but is not.
            doomed_path = made.path.with_name(
                f"{TMP_PREFIX}prune-{made.name}-{os.getpid()}-{secrets.token_hex(4)}")
            os.rename(made.path, doomed_path)
            shutil.rmtree(doomed_path)
    out.result(f"Deleted {len(doomed)} backups; {count} kept in {settings.backup_dir}")
