"""Finishing what a killed run left half done in the versions directory.

One place, called (by ``cli``) before every verb that reads the versions directory: a swap
killed between its two renames is put back, the leftovers of killed runs are removed, and
the intent a killed run left (``versions.write_intent``) is carried out:

* restore-full, killed after its database swap: the migrations are swapped in too; killed
  before it: its staged copy goes. Which one is read from the server (the swap is one
  transaction: the name the old database was to be kept under exists, or it does not).
* squash, killed after its swap: the old revision files are archived as the run would have
  done (or the backup holding them is named); killed before it: nothing had changed.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from dbkit.errors import DbkitError
from dbkit.pg.mode import get_server
from dbkit.project import archive, versions
from dbkit.settings import Settings


def repair(settings: Settings) -> list[str]:
    """Repair and finish under the Alembic project's folder; each thing done, one line."""
    root = settings.alembic_config.parent
    if not root.is_dir():
        return []

    def finish(intent: dict[str, Any]) -> tuple[list[str], bool]:
        if intent.get("kind") == "restore":
            return _finish_restore(settings, intent)
        if intent.get("kind") == "squash":
            return _finish_squash(intent), True
        return [f"Removed an intent of an unknown kind left by dbkit pid {intent.get('pid')}"
                ], True

    return versions.recover(root, finish)


def _hashes(folder: Path) -> dict[str, str] | None:
    return versions.file_hashes(folder) if folder.is_dir() and not folder.is_symlink() \
        else None


def _finish_restore(settings: Settings, intent: dict[str, Any]) -> tuple[list[str], bool]:
    vd, staged = Path(intent["versions_dir"]), Path(intent["staged"])
    db, keep_as, loaded = intent["database"], intent.get("keep_as"), intent["loaded"]
    name, new = intent["backup"], intent["new_hashes"]
    try:
        server = get_server(settings)
        server.ensure_running()
        swapped = not server.database_exists(loaded) and server.database_exists(keep_as or db)
    except DbkitError as err:
        return [f"warning: a restore-full of {db} from backup {name} was killed after staging "
                "its migrations; whether its database swap happened cannot be checked "
                f"({err.message}). Run this again once the server answers"], False
    if not swapped:
        shutil.rmtree(staged, ignore_errors=True)
        return [f"A restore-full of {db} from backup {name} was interrupted before it changed "
                "anything; its staged migrations were removed"], True
    if _hashes(vd) == new:
        done = "its migrations were already in place"
    elif _hashes(staged) == new:
        old = versions.swap_in(staged, vd)
        shutil.rmtree(old, ignore_errors=True)
        done = f"its migrations are now restored into {vd} too"
    else:
        return [f"warning: a restore-full restored {db} from backup {name} and was killed "
                f"before restoring its migrations, which cannot be finished from what it left: "
                f"run make db-migration-restore BACKUP={name}"], True
    shutil.rmtree(staged, ignore_errors=True)
    return [f"Finished an interrupted restore-full: {db} had been restored from backup {name}; "
            + done], True


def _finish_squash(intent: dict[str, Any]) -> list[str]:
    vd, pid = Path(intent["versions_dir"]), int(intent["pid"])
    backup = Path(intent["backup"]) / "migrations"
    now = _hashes(vd)
    if now == intent["old_hashes"]:
        return [f"A squash was interrupted before it replaced {vd}, which is as it was (the "
                f"backup it took: {backup.parent})"]
    if now != intent["new_hashes"]:
        return [f"warning: an interrupted squash left {vd} neither as it was nor squashed: "
                f"restore it with make db-migration-restore BACKUP={backup.parent.name}"]
    holder = next((p for p in (versions.sibling(vd, "old", pid), versions.sibling(vd, "new", pid))
                   if _hashes(p) == intent["old_hashes"]), None)
    if holder is None:
        return [f"Finished an interrupted squash of {vd}: the old revision files are in the "
                f"backup {backup} (no archive was made; the report was not written)"]
    archived = None
    if intent.get("archive"):
        index = intent.get("archive_index") or {}
        archived = archive.make(vd, holder, intent["revision_files"],
                                revisions=index.get("revisions", []),
                                last=index.get("last", ""), squashed=index.get("squashed", ""))
    shutil.rmtree(holder, ignore_errors=True)
    where = f"archived in {archived} and kept" if archived else "kept"
    return [f"Finished an interrupted squash of {vd}: the old revision files are {where} in "
            f"the backup {backup} (the report was not written)"]
