"""versions_archived/: the revision files a squash replaced, and the catch-up through them.

A squash copies the old revision files to ``versions_archived/<timestamp>/`` with an index,
``dbkit_archive.json``: the revisions they hold (oldest first), the revision their chain ends
at (``last``: the old head, or ``UNTIL``), the squashed revision that replaced them
(``squashed``: the same id unless ``NEW_REVISION=1``) and the sha256 of every file.

A database whose revision is in an archive catches up in stages (``plan``): the archived chain
from where it is to its ``last``, run with Alembic's ``version_locations`` pointed at the
archive; the version table set to ``squashed`` when that id differs; then the next archive
holding ``squashed`` (several squashes in a row), and at last the project's own versions
directory to the target. Every archive a catch-up runs is checked against its sha256 sums
before anything runs (``verify``).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from psycopg2 import sql

from dbkit.console import Console
from dbkit.errors import ConfigError
from dbkit.files import file_digest, fsync_dir, inside
from dbkit.pg.queries import quote_literal
from dbkit.pg.server import Server
from dbkit.project.chain import AlembicProject
from dbkit.project.ran import Expected, folder_files
from dbkit.project.version_table import read_versions
from dbkit.project.versions import file_hashes
from dbkit.settings import Settings

INDEX = "dbkit_archive.json"
FOLDER = "versions_archived"


@dataclass(frozen=True)
class Archive:
    path: Path
    revisions: tuple[str, ...]  # oldest first
    last: str  # the revision the archived chain ends at
    squashed: str  # the id of the revision that replaced it
    files: dict[str, str]  # relative path: sha256
    created_at: str
    versions_dir: Path | None = None  # the versions directory it was found beside

    def project(self, settings: Settings, server: Server | None, **kw: object
                ) -> AlembicProject:
        """The archived chain, run from this folder and from its indexed files only (an
        env.py that picks its own versions folder is steered here, or refused: ran.py)."""
        return AlembicProject(settings, server, version_locations=self.path,
                              stands_for=self.versions_dir,
                              expect=Expected(folder_files(self.path, self.files),
                                              f"the archive {self.path}"), **kw)

    @property
    def name(self) -> str:
        return self.path.name


def folder(versions_dir: Path) -> Path:
    """Where a project's archives live: ``versions_archived/`` beside its versions directory."""
    return versions_dir.parent / FOLDER


def where_said(versions_dir: Path, root: Path) -> str:
    """Where a squash archives the old files, as the plan says it: ``versions_archived/``
    beside the versions directory, wherever that is; inside a Python package (warehouse's
    ``warehouse/migrations/versions``) that package is named, for it then ships the archive
    too. ``root``: the folder of alembic.ini, where the search for a package stops."""
    place = folder(versions_dir)
    package = None
    for parent in place.parents:
        if parent == root or root not in parent.parents:
            break
        if (parent / "__init__.py").is_file():
            package = parent
    if package is None:
        return f"{place}/<timestamp>/"
    return (f"{place}/<timestamp>/ (beside {versions_dir.name}/, inside the Python package "
            f"{package.name}/: it ships with the package unless your packaging leaves it out)")


def make(versions_dir: Path, source: Path, rel_files: Iterable[str], *,
         revisions: Iterable[str], last: str, squashed: str) -> Path:
    """Copy ``rel_files`` from ``source`` into a new ``versions_archived/<timestamp>/`` and
    write its index (last, once every file is there); returns the archive."""
    stamp = datetime.now().strftime("%Y%m%d_%H%M%S")
    target = folder(versions_dir) / stamp
    n = 2
    while target.exists():
        target = target.with_name(f"{stamp}_{n}")
        n += 1
    target.mkdir(parents=True)
    for rel in rel_files:
        # The names come from the versions directory, or from a killed run's intent file.
        inside(target, rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(inside(source, rel), target / rel)
    index = {
        "revisions": list(revisions), "last": last, "squashed": squashed,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "files": {rel: file_digest(target / rel)["sha256"] for rel in sorted(rel_files)},
    }
    tmp = target / f".{INDEX}.tmp"
    tmp.write_text(json.dumps(index, indent=2) + "\n")
    os.replace(tmp, target / INDEX)
    fsync_dir(target)
    return target


def load(path: Path) -> Archive | None:
    """The archive in ``path``; None when it has no index (made before dbkit kept one)."""
    index = path / INDEX
    if not index.is_file():
        return None
    try:
        data = json.loads(index.read_text())
        return Archive(path=path, revisions=tuple(data["revisions"]), last=str(data["last"]),
                       squashed=str(data["squashed"]), files=dict(data["files"]),
                       created_at=str(data.get("created_at", "")))
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"the archive index {index} cannot be read: restore it from the "
                          "squash's backup, or remove that archive") from None


def archives(versions_dir: Path) -> list[Archive]:
    """Every indexed archive of the project, oldest first."""
    root = folder(versions_dir)
    if not root.is_dir():
        return []
    found = (load(p) for p in sorted(root.iterdir()) if p.is_dir())
    return [replace(a, versions_dir=versions_dir) for a in found if a is not None]


def verify(archive: Archive) -> None:
    """ConfigError, one line, unless every indexed file is there with its sha256."""
    for rel, digest in sorted(archive.files.items()):
        path = archive.path / rel
        if not path.is_file():
            raise ConfigError(f"the archive {archive.path} lacks {rel}: refusing to run it; "
                              "nothing was changed")
        if file_digest(path)["sha256"] != digest:
            raise ConfigError(f"the archive {archive.path} is not as the squash left it: {rel} "
                              "changed (sha256 differs); refusing to run it; nothing was "
                              "changed")


def undone(versions_dir: Path, found: list[Archive] | None = None) -> list[Archive]:
    """The archives whose every file is back in ``versions_dir``, byte for byte: the squash
    that made them was undone (a restore of a backup from before it). No database needs
    them (the versions directory runs the same chain); only a later return of that squash
    would."""
    found = archives(versions_dir) if found is None else found
    if not found:
        return []
    have = file_hashes(versions_dir)
    return [a for a in found if a.files and all(have.get(rel) == digest
                                                for rel, digest in a.files.items())]


def undone_advice(versions_dir: Path) -> list[str]:
    """What to tell the user after a restore that undid a squash: its archive stays."""
    lines = []
    for a in undone(versions_dir):
        lines.append(
            f"The archive {a.path} is of a squash this restore undid: its {len(a.revisions)} "
            "revisions are in the versions directory again, so no database needs it. Remove "
            f"it with make db-archive-prune ARCHIVE={a.name}, or keep it if you will put that "
            "squash back (databases left behind would catch up through it)")
    return lines


# -- the catch-up -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Stage:
    archive: Archive | None  # None: the project's own versions directory
    start: tuple[str, ...]  # the database's revisions when the stage begins (): base
    target: str
    stamp: str | None = None  # then the version table is set to this revision


def plan(current: Iterable[str], known: set[str], found: list[Archive],
         target: str = "head") -> list[Stage] | None:
    """The stages from ``current`` to ``target``; None when ``current`` is in no archive.

    ``known``: the revisions of the project's own versions directory. One stage when the
    database is on that chain already; else one per archive, newest archive first among
    those holding the database's revisions.
    """
    at = tuple(sorted(current))
    stages: list[Stage] = []
    used: set[Path] = set()
    while not set(at) <= known:
        holder = next((a for a in reversed(found)
                       if set(at) <= set(a.revisions) and a.path not in used), None)
        if holder is None:
            return None
        used.add(holder.path)
        stamp = holder.squashed if holder.squashed != holder.last else None
        stages.append(Stage(holder, at, holder.last, stamp))
        at = (holder.squashed,)
    stages.append(Stage(None, at, target))
    return stages


def archived_revisions(found: list[Archive]) -> set[str]:
    return {rev for a in found for rev in a.revisions}


def where(found: list[Archive], revisions: Iterable[str]) -> Archive | None:
    """The newest archive holding all of ``revisions``."""
    wanted = set(revisions)
    return next((a for a in reversed(found) if wanted and wanted <= set(a.revisions)), None)


def describe(stage: Stage) -> str:
    start = ", ".join(stage.start) or "base"
    if stage.archive is None:
        return f"{start} → {stage.target} with the versions directory"
    return (f"{start} → {stage.target} with the archived chain {stage.archive.path}"
            + (f", then stamped {stage.stamp} (the squashed revision's id)" if stage.stamp
               else ""))


def catch_up(settings: Settings, server: Server, dbname: str, stages: list[Stage],
             out: Console) -> None:
    """Run the stages on ``dbname``; every archive is verified before the first one runs."""
    for stage in stages:
        if stage.archive is not None:
            verify(stage.archive)
    for n, stage in enumerate(stages, 1):
        project = (stage.archive.project(settings, server) if stage.archive is not None
                   else AlembicProject(settings, server))
        with out.step(f"Stage {n}/{len(stages)}: {describe(stage)}"):
            project.upgrade(dbname, stage.target)
            if stage.stamp:
                _stamp(server, dbname, stage.target, stage.stamp)


def _stamp(server: Server, dbname: str, old: str, new: str) -> None:
    """The version table moved from ``old`` to ``new`` (the same schema under a new id)."""
    key, versions = read_versions(server, dbname, {old})
    if key is None or versions != [old]:
        raise ConfigError(f"{dbname} should be at {old} to be stamped {new}, but its version "
                          f"table holds {versions or 'nothing'}")
    schema, _, table = key.partition(".")
    conn = server.connect(dbname)
    try:
        with conn, conn.cursor() as cur:
            # Literals, not parameters: a % in the table's name is no placeholder.
            cur.execute(sql.SQL("UPDATE {}.{} SET version_num = {} WHERE version_num = {}")
                        .format(sql.Identifier(schema), sql.Identifier(table),
                                sql.Literal(new), sql.Literal(old)))
    finally:
        conn.close()


def offline_sql(settings: Settings, server: Server, dbname: str, stages: list[Stage],
                version_table: str = "alembic_version") -> str:
    """The SQL of the whole catch-up (``alembic upgrade --sql`` per stage), not run."""
    for stage in stages:
        if stage.archive is not None:
            verify(stage.archive)
    parts: list[str] = []
    for n, stage in enumerate(stages, 1):
        if len(stage.start) > 1:
            raise ConfigError(f"the database is at {', '.join(stage.start)}: Alembic's offline "
                              "mode starts from one revision; merge them first or run "
                              "make db-upgrade on it")
        project = (stage.archive.project(settings, server) if stage.archive is not None
                   else AlembicProject(settings, server))
        parts.append(f"-- dbkit catch-up, stage {n}/{len(stages)}: {describe(stage)}\n")
        parts.append(project.upgrade_sql(dbname, stage.start[0] if stage.start else None,
                                         stage.target))
        if stage.stamp:
            parts.append(f"UPDATE {version_table} SET version_num="
                         f"{quote_literal(stage.stamp)} "
                         f"WHERE version_num={quote_literal(stage.target)};\n\n")
    return "".join(parts)


def stages_for(project: AlembicProject, dbname: str, *, target: str = "head",
               current: Iterable[str] | None = None) -> list[Stage]:
    """The catch-up of ``dbname`` (at ``current``, else read from its version table) to
    ``target``: one stage when it is on the project's chain already."""
    revisions = project.revisions()
    known = {r.revision for r in revisions}
    versions_dir = revisions[0].path.parent if revisions else \
        Path(project.backup_info()["versions_dir"])
    found = archives(versions_dir)
    if current is None:
        assert project.server is not None
        current = read_versions(project.server, dbname, known | archived_revisions(found))[1]
    current = list(current)
    stages = plan(current, known, found, target)
    if stages is None:
        raise ConfigError(
            f"{dbname} is at {', '.join(current)}, a revision neither the versions directory "
            f"nor an indexed archive in {folder(versions_dir)} holds (pruned, or archived "
            "before dbkit indexed its archives): rebuild it (make db-reset) or upgrade it "
            "with the old chain from a backup first")
    return stages


def holding(root: Path, revisions: Iterable[str]) -> Archive | None:
    """The newest archive under the Alembic project's folder ``root`` (a few levels deep)
    holding all of ``revisions``; for readers that do not know the versions directory."""
    found: list[Archive] = []
    for depth in ("", "*/", "*/*/"):
        for path in sorted(root.glob(f"{depth}{FOLDER}")):
            if path.is_dir():
                found += archives(path.parent / "versions")
    found.sort(key=lambda a: a.created_at)
    return where(found, revisions)
