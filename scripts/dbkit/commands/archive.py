"""make db-archive-prune: remove an archived chain once every database has passed it."""

from __future__ import annotations

import os
import shutil

from dbkit.console import Console
from dbkit.errors import ConfigError, Refused
from dbkit.pg.mode import get_server
from dbkit.project import archive as archives
from dbkit.project.chain import AlembicProject
from dbkit.project.version_table import read_versions
from dbkit.safety import confirm as ask
from dbkit.safety import project_lock
from dbkit.settings import Settings


def archive_prune(settings: Settings, out: Console, *, archive: str = "",
                  confirm: str | None = None) -> None:
    """Remove an archived chain every database has passed (ARCHIVE=<name>; asks; CONFIRM=prune).

    Never automatic: only you know that staging, production and every laptop are past it.
    Refused while the development database is inside that archive (make db-upgrade first), or
    while an older archive's catch-up still runs through it (prune that one first).
    """
    server = get_server(settings)
    project = AlembicProject(settings, server)
    revisions = project.revisions()
    versions_dir = revisions[0].path.parent if revisions else \
        settings.alembic_config.parent / "versions"
    found = archives.archives(versions_dir)
    if not found:
        out.result(f"No archives in {archives.folder(versions_dir)}: nothing to prune")
        return
    by_name = {a.name: a for a in found}
    if not archive.strip():
        back = {a.path for a in archives.undone(versions_dir, found)}
        for a in found:
            out.result(f"  {a.name}  {len(a.revisions)} revisions, ending at {a.last} "
                       f"(squashed into {a.squashed}), archived {a.created_at}"
                       + ("; that squash was undone (its revisions are in the versions "
                          "directory again): no database needs it" if a.path in back else ""))
        raise ConfigError(f"say which archive: ARCHIVE=<name> ({', '.join(by_name)})")
    doomed = by_name.get(archive.strip())
    if doomed is None:
        raise ConfigError(f"ARCHIVE={archive}: no such archive in {archives.folder(versions_dir)}"
                          f" ({', '.join(by_name)})")
    older = [a.name for a in found if a is not doomed and a.squashed in doomed.revisions]
    if older:
        raise Refused(f"the archive {', '.join(older)} catches up through {doomed.name}: prune "
                      "it first")
    server.ensure_running(out)
    if server.database_exists(server.dev_db):
        known = {r.revision for r in revisions}
        current = read_versions(server, server.dev_db,
                                known | archives.archived_revisions(found))[1]
        stages = archives.plan(current, known, found) or []
        if any(s.archive is not None and s.archive.path == doomed.path for s in stages):
            raise Refused(f"{server.dev_db} is at {', '.join(current)}, inside the archive "
                          f"{doomed.name}: catch it up first (make db-upgrade)")
    out.result(f"The archive {doomed.path}: {len(doomed.revisions)} revisions "
               f"({doomed.revisions[0]} … {doomed.last}), squashed into {doomed.squashed}.")
    out.result("Without it, a database still at one of those revisions (staging, production, a "
               "laptop) cannot catch up with make db-upgrade any more.")
    ask(out, word="prune", given=confirm, what=f"remove the archive {doomed.name}")
    with project_lock(settings, "archive-prune"):
        gone = doomed.path.with_name(f".{doomed.name}.dbkit-prune-{os.getpid()}")
        os.rename(doomed.path, gone)  # no half-removed archive that still looks like one
        shutil.rmtree(gone)
    out.result(f"Removed the archive {doomed.name}")
