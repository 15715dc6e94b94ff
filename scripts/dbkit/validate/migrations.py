"""The "database vs its migrations" check: the live database against a fresh build of its chain.

Needs nothing from the app. The chain is built, up to the revision the database is at (each
of its heads), in a scratch database on the same server; the two are compared with the
proof's catalog snapshots (``schema_diff``), and the rows the chain inserted are looked for
in the live database (``seed_check``: warnings, not drift).

Speed: where dbkit owns the scratch area (embedded mode, or ``ALLOW_TEMPLATE_CACHE=1``), a
build is kept as a template database ``dbkit_tpl_<hash>`` per (Alembic config, hash of the
versions directories and env.py, revisions, server major); a later run copies it with
``CREATE DATABASE ... TEMPLATE`` instead of running the chain. Templates of the same project
whose chain changed are dropped. Elsewhere every run builds into a scratch database that is
dropped afterwards.
"""

from __future__ import annotations

import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dbkit.errors import ChainBuildFailed, DbkitError
from dbkit.pg import catalog, scratch
from dbkit.pg.server import Server
from dbkit.project import versions
from dbkit.project.chain import AlembicProject
from dbkit.project.ran import Expected, hashes_of
from dbkit.project.version_table import read_versions
from dbkit.settings import Settings
from dbkit.validate import schema_diff, seed_check
from dbkit.validate.drift import Difference
from dbkit.validate.seed_check import SeedWarning

COMPARED, NOT_CHECKED = "compared", "not checked"
_KEEP_PER_PROJECT = 4  # templates (revisions) kept per project and chain


class CannotBuild(DbkitError):
    """The chain could not be built here (no CREATEDB, or the chain fails): not checked."""


@dataclass
class ChainResult:
    """The chain check's part of the report."""

    status: str  # COMPARED or NOT_CHECKED
    revisions: list[str]  # what the built database was taken to
    reason: str | None = None  # why not checked
    differences: list[Difference] = field(default_factory=list)
    seed_rows: list[SeedWarning] = field(default_factory=list)
    template: str | None = None  # "reused", "made", or None (no cache here)

    def as_json(self) -> dict[str, Any]:
        return {"status": self.status, "revisions": self.revisions, "reason": self.reason,
                "template": self.template,
                "differences": [d.as_json() for d in self.differences],
                "seed_rows": [w.as_json() for w in self.seed_rows]}


def not_checked(reason: str, revisions: list[str] | None = None) -> ChainResult:
    return ChainResult(NOT_CHECKED, revisions or [], reason)


class Prefetch:
    """Started before the Alembic child, so the two overlap: where a template for the
    database's revision is cached, a copy of it and both snapshots are made meanwhile.

    ``check`` takes the copy when the template is the one the facts call for; whatever is
    not taken is dropped on ``close`` (a context manager). Any failure here only means the
    check does the work itself.
    """

    def __init__(self, server: Server, settings: Settings, dbname: str, *,
                 start: bool = True) -> None:
        self.server, self.settings, self.dbname = server, settings, dbname
        self.template: str | None = None
        self.copy: str | None = None
        self.snapshots: tuple[catalog.Snapshot, catalog.Snapshot] | None = None
        self._pool = ThreadPoolExecutor(max_workers=1)
        self._future = None
        if start and (server.mode == "embedded" or settings.allow_template_cache):
            self._future = self._pool.submit(self._run)

    def _run(self) -> None:
        _, versions = read_versions(self.server, self.dbname, set())
        config = str(self.settings.alembic_config.resolve())
        candidates = []
        for name, comment in scratch.templates(self.server).items():
            try:
                data = json.loads(comment)
            except ValueError:
                continue
            if isinstance(data, dict) and data.get("config") == config and \
                    data.get("revisions") == sorted(versions) and \
                    data.get("major") == self.server.major:
                candidates.append((float(data.get("made") or 0), name))
        if not versions or not candidates:
            return
        self.template = max(candidates)[1]
        copy = scratch.scratch_name("validate")
        self.server.create_database(copy, template=self.template)
        self.copy = copy
        self.snapshots = _snapshots(self.server, self.dbname, copy)

    def take(self, template: str) -> tuple[str, tuple[Any, Any] | None] | None:
        """The copy of ``template`` and its snapshots, if that is what was prefetched."""
        if self._future is None:
            return None
        try:
            self._future.result()
        except Exception:  # noqa: BLE001 - the check then does it itself
            pass
        if self.copy is None or self.template != template:
            return None
        copy, self.copy = self.copy, None
        return copy, self.snapshots

    def close(self) -> None:
        if self._future is not None:
            try:
                self._future.result()
            except Exception:  # noqa: BLE001
                pass
        self._pool.shutdown()
        if self.copy is not None:
            scratch.drop_resolutely(self.server, self.copy)
            self.copy = None

    def __enter__(self) -> Prefetch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _snapshots(server: Server, live_db: str, built_db: str
               ) -> tuple[catalog.Snapshot, catalog.Snapshot]:
    """Both snapshots at once: each waits mostly for the server."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        built = pool.submit(catalog.snapshot_of, server, built_db)
        live = _live(server, live_db)
        try:
            return catalog.snapshot(live), built.result()
        finally:
            live.close()


def _live(server: Server, dbname: str) -> Any:
    """A read-only session on the live database."""
    conn = server.connect(dbname)
    with conn.cursor() as cur:
        cur.execute("SET default_transaction_read_only = on")
    return conn


def check(server: Server, settings: Settings, dbname: str, facts: dict[str, Any],
          prefetch: Prefetch | None = None) -> ChainResult:
    """Build the chain at ``dbname``'s revision and compare; CannotBuild when it cannot."""
    current = sorted(facts["current"])
    if not facts["has_version_table"]:
        return not_checked(f"no {facts['version_table']} table: the database's revision is "
                           "unknown")
    unknown = [rev for rev in current if rev not in facts["graph"]]
    if unknown:
        return not_checked(f"the database is at {', '.join(unknown)}, a revision this chain "
                           "does not contain (newer, deleted or squashed): nothing to build",
                           current)
    if not current:
        return not_checked("the database is at base (no revision): nothing to build")
    if server.mode == "embedded" or settings.allow_template_cache:
        return _with_template(server, settings, dbname, facts, current, prefetch)
    with _scratch(server, "validate") as built:
        _build(server, settings, built, current, facts.get("files"))
        return _compared(server, dbname, built, current, facts, template=None)


def _scratch(server: Server, purpose: str, template: str | None = None) -> Any:
    try:
        return scratch.scratch_database(server, purpose, template=template)
    except DbkitError as err:  # CREATE DATABASE refused: no CREATEDB privilege, ...
        raise CannotBuild(f"cannot create a scratch database on this server ({err.message})",
                          trace=err.trace) from None


def _build(server: Server, settings: Settings, dbname: str, revisions: list[str],
           files: dict[str, str] | None = None) -> None:
    """``dbname`` built to ``revisions``, from exactly ``files`` (revision: its file, as
    the child that read the chain saw them; ran.py), whatever env.py picks."""
    expect = (Expected(hashes_of(Path(p) for p in files.values()),
                       "the revisions env.py loads") if files else None)
    project = AlembicProject(settings, server, expect=expect)
    for rev in revisions:
        try:
            project.upgrade(dbname, rev)
        except ChainBuildFailed as err:
            raise CannotBuild(f"the chain does not build up to {rev} in a scratch database: "
                              f"{err.message}", trace=err.trace) from None


def _compared(server: Server, dbname: str, built: str, revisions: list[str],
              facts: dict[str, Any], *, template: str | None,
              snapshots: tuple[Any, Any] | None = None) -> ChainResult:
    differences, seeds = compare(server, dbname, built, facts["version_table"], snapshots)
    return ChainResult(COMPARED, revisions, None, differences, seeds, template)


def compare(server: Server, live_db: str, built_db: str, version_table: str,
            snapshots: tuple[catalog.Snapshot, catalog.Snapshot] | None = None,
            ) -> tuple[list[Difference], list[SeedWarning]]:
    """What differs between the live database and the built one, and the seed rows gone.

    The live database is only read (a read-only session); the built one is where PostgreSQL
    re-renders expressions, in a transaction rolled back. ``snapshots``: (live, built)
    when taken already.
    """
    live_snap, built_snap = snapshots or _snapshots(server, live_db, built_db)
    live = _live(server, live_db)
    built = server.connect(built_db)
    try:
        found = schema_diff.compare(live_snap, built_snap)
        alike = schema_diff.rerender(built, [f.expression for f in found if f.expression])
        differences = [f.difference for f in found
                       if f.expression is None or f.expression not in alike]
        seeds = seed_check.compare(live, built, live_snap, built_snap, skip=version_table)
    finally:
        live.close()
        built.close()
    return differences, seeds


# -- the template cache -----------------------------------------------------------------------

def chain_hash(paths: list[str]) -> str:
    """sha256 over the versions directories' files (``project.versions.file_hashes``) and
    env.py."""
    digest = hashlib.sha256()
    for top in paths:
        root = Path(top)
        files = versions.file_hashes(root) if root.is_dir() else \
            {root.name: hashlib.sha256(root.read_bytes()).hexdigest()}
        digest.update(json.dumps([top, files], sort_keys=True).encode())
    return digest.hexdigest()


def _with_template(server: Server, settings: Settings, dbname: str, facts: dict[str, Any],
                   revisions: list[str], prefetch: Prefetch | None) -> ChainResult:
    config = str(settings.alembic_config.resolve())
    chain = chain_hash(facts["chain_files"])
    meta = {"dbkit": "validate template", "config": config, "chain": chain,
            "revisions": revisions, "major": server.major}
    name = scratch.template_name(json.dumps(meta, sort_keys=True))
    taken = prefetch.take(name) if prefetch is not None else None
    if taken is not None:
        copy, snapshots = taken
        try:
            return _compared(server, dbname, copy, revisions, facts, template="reused",
                             snapshots=snapshots)
        finally:
            scratch.drop_resolutely(server, copy)
    existing = scratch.templates(server)
    _drop_stale(server, existing, meta, keep=name)
    if name in existing:
        with _scratch(server, "validate", template=name) as built:
            return _compared(server, dbname, built, revisions, facts, template="reused")
    built = scratch.scratch_name("validatetpl")  # swept if this run is killed
    try:
        server.create_database(built)
    except DbkitError as err:
        raise CannotBuild(f"cannot create a scratch database on this server ({err.message})",
                          trace=err.trace) from None
    kept = False
    try:
        _build(server, settings, built, revisions, facts.get("files"))
        result = _compared(server, dbname, built, revisions, facts, template="made")
        kept = scratch.keep_as_template(server, built, name,
                                        json.dumps({**meta, "made": time.time()}))
        return result
    finally:
        if not kept:
            scratch.drop_resolutely(server, built)


def _drop_stale(server: Server, existing: dict[str, str], meta: dict[str, Any],
                keep: str) -> None:
    """Templates of this project for another chain or server major, and the oldest beyond
    a few revisions; templates dbkit cannot read the comment of are dropped too."""
    mine: list[tuple[float, str]] = []
    for name, comment in existing.items():
        if name == keep:
            continue
        try:
            data = json.loads(comment)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            _drop(server, name)
        elif data.get("config") == meta["config"]:
            if data.get("chain") != meta["chain"] or data.get("major") != meta["major"]:
                _drop(server, name)
            else:
                mine.append((float(data.get("made") or 0), name))
    for _, name in sorted(mine, reverse=True)[_KEEP_PER_PROJECT - 1:]:
        _drop(server, name)


def _drop(server: Server, name: str) -> None:
    try:
        scratch.drop_database(server, name)
    except DbkitError:
        pass  # in use by another run this moment: the next run drops it
