"""make db-squash-migrations: the whole chain as one revision, proven identical before use.

build → capture → render → prove → swap → adopt → report (architecture, section 3). The
new versions directory is staged beside the old one and proven (Alembic pointed at it with
``version_locations``) before two renames put it in place; a failure or Ctrl-C at any step
leaves the versions directory byte for byte as it was (checked against sha256 sums) and no
scratch database behind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from psycopg2 import sql

from dbkit import __version__, backup, capture, catalog, manifest, prove, render, reset, scratch
from dbkit.chain import AlembicProject, Revision
from dbkit.console import Console
from dbkit.errors import (
    ChainBuildFailed,
    ConfigError,
    DbkitError,
    ProofFailed,
    ServerUnreachable,
)
from dbkit.safety import YES, guard_destructive, project_lock
from dbkit.safety import confirm as ask
from dbkit.server import Server, get_server
from dbkit.settings import Settings

WORD = "squash"
_STAGED = re.compile(r"^\.(.+)\.dbkit-(new|old)-(\d+)$")


@dataclass
class Plan:
    """What preflight found: the chain, its versions directory, the development database."""

    head: str
    revisions: list[Revision]  # oldest first
    versions_dir: Path
    revision_files: list[Path]
    hashes: dict[str, str]  # the versions directory before we touch it
    dev_exists: bool
    dev_current: list[str] | None  # None: no such database

    @property
    def first(self) -> Revision:
        return self.revisions[0]


@dataclass
class Outcome:
    """Everything the report says."""

    revision: str
    new_revision: bool
    file: Path | None = None
    file_size: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    old_chain_seconds: float = 0.0
    new_revision_seconds: float = 0.0
    checks: list[str] = field(default_factory=list)
    backup: Path | None = None
    output: Path | None = None
    archived: Path | None = None
    drift: list[dict[str, Any]] | None = None
    b_snapshot: catalog.Snapshot | None = None
    adopt: list[str] = field(default_factory=list)
    took: float = 0.0


# -- the verb ---------------------------------------------------------------------------------

def squash(
    settings: Settings,
    out: Console,
    *,
    confirm: str | None = None,
    dry_run: bool = False,
    new_revision: bool = False,
    archive: bool = True,
    reset: bool = False,
) -> int:
    """Squash the migration chain into one revision proven identical to it (asks; CONFIRM=squash).

    DRY_RUN=1 builds, renders and proves into a folder of its own and touches nothing in the
    project. NEW_REVISION=1 gives the squashed revision a fresh id (every existing database
    then needs an `alembic stamp --purge`); by default it keeps the old head's id. ARCHIVE=0
    skips the copy of the old files in versions_archived/ (the backup always has them).
    RESET=1 rebuilds the development database from the squashed revision afterwards.
    """
    started = time.perf_counter()
    server = get_server(settings)
    server.ensure_running(out)
    project = AlembicProject(settings, server)
    plan = preflight(settings, server, project)
    if not dry_run:
        guard_destructive(settings, server, "squash the migration chain")
    rev_id = uuid.uuid4().hex[:12] if new_revision else plan.head
    _show_plan(out, settings, server, plan, rev_id, dry_run=dry_run, archive=archive,
               reset=reset)
    if not dry_run:
        ask(out, word=WORD, given=confirm, what="squash the migration chain")
    outcome = Outcome(revision=rev_id, new_revision=new_revision)
    with project_lock(settings, "squash"):
        recover_interrupted_swap(plan.versions_dir, out)
        scratch.sweep_stale(server)
        if dry_run:
            outcome.output = Path(tempfile.mkdtemp(prefix="dbkit-squash-"))
            os.chmod(outcome.output, 0o700)
            out.say(f"Dry run: everything goes to {outcome.output}; the project is not touched.")
            staged = outcome.output / plan.versions_dir.name
        else:
            made = _backup(settings, server, project, plan, out)
            outcome.backup = made.path
            staged = _sibling(plan.versions_dir, "new")
        try:
            _stage(plan, staged)
            _build_and_prove(settings, server, project, plan, staged, outcome, out)
            if not dry_run:
                _review(out, outcome)
                outcome.archived = swap(settings, plan, staged, made, outcome, archive=archive,
                                        out=out)
        except BaseException as err:
            if not dry_run:
                _discard(staged)
                _require_unchanged(plan)
            if isinstance(err, ProofFailed):
                _failure_report(outcome.output or outcome.backup, err, out)
            raise
    if reset and not dry_run:
        # The squash's confirmation covers the rebuild it announced.
        reset_dev(settings, out)
    outcome.adopt = adopt(settings, server, plan, outcome, reset=reset and not dry_run)
    outcome.took = time.perf_counter() - started
    report(out, settings, plan, outcome, dry_run=dry_run)
    return 0


# -- preflight --------------------------------------------------------------------------------

def preflight(settings: Settings, server: Server, project: AlembicProject) -> Plan:
    """One head, one readable versions directory, the server answers; nothing is changed."""
    heads = project.heads()
    if not heads:
        raise ConfigError(f"the Alembic project at {project.config.parent} has no revisions")
    revisions = list(reversed(project.revisions()))  # oldest first
    if len(heads) > 1:
        docs = {r.revision: r.doc for r in revisions}
        named = ", ".join(f"{h} ({docs.get(h, '').strip() or 'no message'})"
                          for h in sorted(heads))
        raise ConfigError(
            f"the chain has {len(heads)} heads: {named}. Join them into one first with "
            f"`alembic merge -m \"merge heads\" {' '.join(sorted(heads))}` (or squash from an "
            "existing merge revision), then run the squash again"
        )
    dirs = project.versions_dirs()
    if len(dirs) != 1:
        raise ConfigError(
            "the revisions live in several directories ("
            + ", ".join(str(d) for d in dirs) + "); dbkit squashes one versions directory"
        )
    versions = dirs[0]
    if not os.access(versions, os.R_OK | os.W_OK | os.X_OK):
        raise ConfigError(f"the versions directory {versions} is not readable and writable")
    files = [r.path for r in revisions]
    outside = [p for p in files if versions not in p.parents]
    if outside:
        raise ConfigError(f"revision {outside[0]} is outside {versions}")
    dev_exists = server.database_exists(server.dev_db)
    current: list[str] | None = None
    if dev_exists:
        try:
            current = project.current(server.dev_db)
        except ChainBuildFailed:
            current = None
    return Plan(head=heads[0], revisions=revisions, versions_dir=versions,
                revision_files=files, hashes=backup.migration_files(versions),
                dev_exists=dev_exists, dev_current=current)


def _show_plan(out: Console, settings: Settings, server: Server, plan: Plan, rev_id: str, *,
               dry_run: bool, archive: bool, reset: bool) -> None:
    last = plan.revisions[-1]
    out.say(f"Squash the migration chain of {settings.alembic_config}:")
    out.say(f"  {len(plan.revisions)} revisions, {plan.first.revision} "
            f"({plan.first.doc.strip() or 'no message'}) … {last.revision} "
            f"({last.doc.strip() or 'no message'}, head)")
    same = rev_id == plan.head
    out.say(f"  into one revision {rev_id}"
            + (" (the head's id: databases at head need nothing)" if same else
               " (a new id: every existing database then needs `alembic stamp --purge`)"))
    out.say("  steps: back up → build the old chain in scratch database A → capture what it "
            "built → write one revision → build it in scratch database B and prove A = B "
            "(schema, rows, sequences; down to base and up again)"
            + ("" if dry_run else f" → replace {plan.versions_dir}"))
    if dry_run:
        out.say("  dry run: nothing in the project is touched")
    elif archive:
        out.say(f"  the old files go into the backup and "
                f"{plan.versions_dir.parent / 'versions_archived'}/<timestamp>/")
    else:
        out.say("  the old files go into the backup (ARCHIVE=0: no versions_archived copy)")
    out.say(f"  development database {server.dev_db}: {_dev_state(plan)}"
            + ("; rebuilt from the squashed revision afterwards (RESET=1)" if reset else ""))
    if plan.dev_current and plan.dev_current != [plan.head] and not reset:
        out.say(out.paint(
            f"  warning: {server.dev_db} is behind the head; after the squash it cannot be "
            "upgraded by the chain any more. Upgrade it first (make db-upgrade), or rebuild "
            "it afterwards (RESET=1)", "yellow"))


def _dev_state(plan: Plan) -> str:
    if not plan.dev_exists:
        return "does not exist"
    if plan.dev_current is None:
        return "revision unknown (alembic current failed)"
    if not plan.dev_current:
        return "empty (no revision applied)"
    where = ", ".join(plan.dev_current)
    return f"at {where}" + (" (head)" if plan.dev_current == [plan.head] else " (behind head)")


# -- backup -----------------------------------------------------------------------------------

def _backup(settings: Settings, server: Server, project: AlembicProject, plan: Plan,
            out: Console) -> manifest.Backup:
    """The same backup as db-backup-full (migrations only when there is no database yet)."""
    note = f"before dbkit squash of {len(plan.revisions)} revisions (head {plan.head})"
    if plan.dev_exists:
        made = backup.take_full_backup(settings, server, out, project=project, note=note)
    else:
        made = backup.take_migrations_backup(settings, out, project=project, note=note)
    saved = {rel[len(manifest.MIGRATIONS) + 1:]: info["sha256"]
             for rel, info in made.manifest["files"].items()
             if rel.startswith(manifest.MIGRATIONS + "/")}
    if saved != plan.hashes:
        raise DbkitError(f"the backup {made.path} does not hold the versions directory as it "
                         "is (it changed during the backup?); nothing was changed")
    out.say(f"Backup: {made.path}")
    return made


# -- build, capture, render, prove -------------------------------------------------------------

def _stage(plan: Plan, staged: Path) -> None:
    """The new versions directory without its revision: every other file kept (__init__.py)."""
    staged.mkdir(mode=0o755)
    revision_files = {p.resolve() for p in plan.revision_files}
    for path in sorted(plan.versions_dir.rglob("*")):
        rel = path.relative_to(plan.versions_dir)
        if "__pycache__" in rel.parts or path.suffix == ".pyc":
            continue
        if path.is_dir():
            (staged / rel).mkdir(exist_ok=True)
        elif path.resolve() not in revision_files:
            (staged / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, staged / rel)


def _build_and_prove(settings: Settings, server: Server, project: AlembicProject, plan: Plan,
                     staged: Path, outcome: Outcome, out: Console) -> None:
    with scratch.scratch_database(server, "squasha") as a, \
            scratch.scratch_database(server, "squashb") as b:
        conn = server.connect(a)
        try:
            baseline = catalog.snapshot(conn)
        finally:
            conn.close()
        with out.step(f"Building database A from the old chain ({len(plan.revisions)} "
                      "revisions)"):
            t0 = time.perf_counter()
            project.upgrade(a, "head")
            outcome.old_chain_seconds = time.perf_counter() - t0
            version_table = project.version_table(a)
            version_key = _landed(server, a, version_table, plan.head)
        with out.step("Capturing what the chain built"):
            conn = server.connect(a)
            try:
                captured = capture.capture(conn, baseline=baseline, version_table=version_table)
            finally:
                conn.close()
        outcome.counts = captured.counts
        with out.step("Writing the squashed revision"):
            text = render.render_revision(
                captured, revision=outcome.revision, replaced=_replaced(plan),
                branch_labels=tuple(sorted({lb for r in plan.revisions
                                            for lb in r.branch_labels})),
            )
            path = staged / render.file_name(outcome.revision, len(plan.revisions))
            path.write_text(text)
            outcome.file, outcome.file_size = path, path.stat().st_size
        new = AlembicProject(settings, server, version_locations=staged)
        heads = new.heads()
        if heads != [outcome.revision]:
            raise DbkitError(f"Alembic reads the new versions directory as heads {heads}, "
                             f"not {outcome.revision}; nothing was changed")
        proof = prove.prove(server, new, a=a, b=b, baseline=baseline, version_key=version_key,
                            out=out)
        outcome.new_revision_seconds = proof.new_install_seconds
        outcome.checks = proof.checks
        with out.step("Comparing the models with the squashed schema (alembic check)"):
            outcome.drift = new.model_diff(b)
        conn = server.connect(b)
        try:
            outcome.b_snapshot = catalog.snapshot(conn)
        finally:
            conn.close()


def _landed(server: Server, dbname: str, version_table: tuple[str | None, str],
            head: str) -> str:
    """The chain must have run in ``dbname``: an env.py that ignores the connection (and the
    URL) dbkit gives it would build some other database, and the capture would be empty."""
    conn = server.connect(dbname)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT (current_schemas(false))[1]")
            schema = version_table[0] or cur.fetchone()[0] or "public"
            cur.execute("SELECT to_regclass(%s)", (f'"{schema}"."{version_table[1]}"',))
            found = cur.fetchone()[0] is not None
            versions: list[str] = []
            if found:
                cur.execute(sql.SQL("SELECT version_num FROM {}.{}").format(
                    sql.Identifier(schema), sql.Identifier(version_table[1])))
                versions = [row[0] for row in cur.fetchall()]
    finally:
        conn.close()
    if versions != [head]:
        raise ChainBuildFailed(
            f"alembic upgrade head did not land in the scratch database dbkit gave it (its "
            f"{schema}.{version_table[1]} holds {versions or 'nothing'}): the project's env.py "
            "must use config.attributes['connection'] or the sqlalchemy.url it is given"
        )
    return f"{schema}.{version_table[1]}"


def _replaced(plan: Plan) -> render.Replaced:
    last = plan.revisions[-1]
    return render.Replaced(
        count=len(plan.revisions), first=plan.first.revision,
        first_doc=plan.first.doc.strip(), last=last.revision, last_doc=last.doc.strip(),
    )


def _review(out: Console, outcome: Outcome) -> None:
    out.result("")
    out.result(f"Proven: {outcome.file} ({outcome.file_size:,} bytes)")
    for kind, count in outcome.counts.items():
        out.result(f"  {kind:<28} {count}")
    out.pause("Review it, then press Enter to replace the versions directory "
              "(Ctrl-C: nothing is changed) ")


# -- swap -------------------------------------------------------------------------------------

def _sibling(versions: Path, role: str, pid: int | None = None) -> Path:
    return versions.with_name(f".{versions.name}.dbkit-{role}-{pid or os.getpid()}")


@contextmanager
def _no_interrupt() -> Iterator[None]:
    """Hold Ctrl-C for the two renames: they happen both, or neither."""
    caught: list[int] = []
    try:
        previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    except ValueError:  # not the main thread
        previous = None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def swap(settings: Settings, plan: Plan, staged: Path, made: manifest.Backup, outcome: Outcome,
         *, archive: bool, out: Console) -> Path | None:
    """Put the proven versions directory in place; the old files to the archive, else gone.

    Returns the archive folder (None with ARCHIVE=0). Anything that fails before the old
    folder is retired puts the original back.
    """
    versions = plan.versions_dir
    old = _sibling(versions, "old")
    with out.step(f"Replacing {versions}"):
        with _no_interrupt():
            os.rename(versions, old)
            try:
                os.rename(staged, versions)
            except BaseException:
                os.rename(old, versions)
                raise
        _fsync_dir(versions.parent)
        try:
            heads = AlembicProject(settings, None).heads()
            if heads != [outcome.revision]:
                raise DbkitError(f"after the swap Alembic sees heads {heads}, not "
                                 f"{outcome.revision}; the old versions were put back")
            if outcome.file is not None:
                outcome.file = versions / outcome.file.name
        except BaseException:
            with _no_interrupt():
                shutil.rmtree(versions)
                os.rename(old, versions)
            raise
    archived = None
    if archive:
        stamp = datetime.now().strftime("%Y%m%d_%H%M%S")
        archived = versions.parent / "versions_archived" / stamp
        n = 2
        while archived.exists():
            archived = archived.with_name(f"{stamp}_{n}")
            n += 1
        for path in plan.revision_files:
            target = archived / path.relative_to(versions)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(old / path.relative_to(versions), target)
    shutil.rmtree(old)
    out.say(f"The old revision files are in the backup {made.path / manifest.MIGRATIONS}"
            + (f" and in {archived}" if archived else ""))
    return archived


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _discard(staged: Path) -> None:
    if staged.exists():
        shutil.rmtree(staged, ignore_errors=True)


def _require_unchanged(plan: Plan) -> None:
    """After a failure: the versions directory must be byte for byte what it was."""
    now = backup.migration_files(plan.versions_dir) if plan.versions_dir.is_dir() else {}
    if now != plan.hashes:
        changed = sorted(set(now.items()) ^ set(plan.hashes.items()))
        raise DbkitError(
            f"the versions directory {plan.versions_dir} is not as it was "
            f"({len(changed)} files differ): restore it from the backup's migrations/ folder"
        )


def recover_interrupted_swap(versions: Path, out: Console) -> None:
    """Undo what a killed run left between its two renames; drop its staged folders."""
    for sibling in sorted(versions.parent.glob(f".{versions.name}.dbkit-*")):
        match = _STAGED.match(sibling.name)
        if not match or match.group(1) != versions.name:
            continue
        role, pid = match.group(2), int(match.group(3))
        if pid != os.getpid() and scratch._pid_alive(pid):
            continue
        if role == "old" and not versions.exists():
            os.rename(sibling, versions)
            out.result(f"Put back {versions} from a squash that was killed while swapping")
        else:
            shutil.rmtree(sibling, ignore_errors=True)


# -- adopt ------------------------------------------------------------------------------------

def reset_dev(settings: Settings, out: Console) -> None:
    reset.reset(settings, out, confirm=YES)


def adopt(settings: Settings, server: Server, plan: Plan, outcome: Outcome, *,
          reset: bool) -> list[str]:
    """What the development database needs now (never changed here; RESET=1 rebuilt it)."""
    dev = server.dev_db
    ini = settings.alembic_config
    if reset:
        state = "rebuilt from the squashed revision (RESET=1)"
    elif not plan.dev_exists:
        return [f"{dev} does not exist: `make db-upgrade` builds it from the squashed revision"]
    elif plan.dev_current is None:
        return [f"the revision of {dev} could not be read; check it with `make db-current`"]
    elif not plan.dev_current:
        return [f"{dev} is empty: `make db-upgrade` builds it from the squashed revision"]
    elif plan.dev_current != [plan.head]:
        where = outcome.archived or (outcome.backup / manifest.MIGRATIONS if outcome.backup
                                     else None)
        lines = [
            f"{dev} is at {', '.join(plan.dev_current)}, older than the old head {plan.head}: "
            "it cannot follow the squash. Either rebuild it from the squashed revision (its "
            "rows are lost): `make db-reset CONFIRM=reset`, or keep its rows by upgrading it "
            "with the old chain first:",
            f"  cd {ini.parent} && python -c \"from alembic import command; "
            f"from alembic.config import Config; c = Config('{ini.name}'); "
            f"c.set_main_option('version_locations', '{where}'); "
            f"command.upgrade(c, '{plan.head}')\"",
        ]
        if outcome.new_revision:
            lines.append(f"  then: alembic -c {ini} stamp --purge {outcome.revision}")
        return lines
    else:
        state = "at the old head"
    lines: list[str] = []
    if outcome.new_revision and not reset:
        lines.append(f"{dev} is at the old head {plan.head}; the squashed revision has a new "
                     f"id: stamp every database that was at the head with")
        lines.append(f"  alembic -c {ini} stamp --purge {outcome.revision}")
    else:
        lines.append(f"{dev} is already at the squashed revision {outcome.revision} ({state}): "
                     "nothing to do")
    if outcome.b_snapshot is not None:
        try:
            conn = server.connect(dev)
        except ServerUnreachable:
            return lines
        try:
            differences = catalog.diff_snapshots(catalog.snapshot(conn), outcome.b_snapshot,
                                                 names=(dev, "squashed"))
        finally:
            conn.close()
        if differences:
            lines.append(f"{dev}'s schema differs from a fresh build of the squashed revision "
                         f"in {len(differences)} places (reported, not changed):")
            lines += [f"  {d}" for d in differences[:20]]
            if len(differences) > 20:
                lines.append(f"  ... and {len(differences) - 20} more (squash_report.json)")
        else:
            lines.append(f"{dev}'s schema is identical to a fresh build of the squashed revision")
    return lines


# -- report -----------------------------------------------------------------------------------

def _ratio(old: float, new: float) -> str:
    return f"{old / new:.1f}x faster" if new > 0 else ""


def report(out: Console, settings: Settings, plan: Plan, outcome: Outcome, *,
           dry_run: bool) -> None:
    """Terminal summary, and squash_report.md + squash_report.json beside the backup."""
    folder = outcome.output if dry_run else outcome.backup
    data = {
        "dbkit_version": __version__,
        "dry_run": dry_run,
        "project": str(settings.alembic_config),
        "replaced": {"count": len(plan.revisions), "first": plan.first.revision,
                     "last": plan.head,
                     "revisions": [r.revision for r in plan.revisions]},
        "revision": outcome.revision,
        "new_revision_id": outcome.new_revision,
        "file": str(outcome.file) if outcome.file else None,
        "file_size": outcome.file_size,
        "captured": outcome.counts,
        "fresh_install_seconds": {"old_chain": round(outcome.old_chain_seconds, 3),
                                  "new_revision": round(outcome.new_revision_seconds, 3)},
        "proof": outcome.checks,
        "backup": str(outcome.backup) if outcome.backup else None,
        "output": str(outcome.output) if outcome.output else None,
        "archived": str(outcome.archived) if outcome.archived else None,
        "model_drift": outcome.drift,
        "development_database": outcome.adopt,
        "took_seconds": round(outcome.took, 3),
    }
    lines = _report_lines(data, dry_run=dry_run)
    out.result("")
    for line in lines:
        out.result(line)
    if folder is None:
        return
    md = folder / "squash_report.md"
    js = folder / "squash_report.json"
    manifest.write_private(md, ("\n".join(["# Squash report", "", *lines]) + "\n").encode())
    manifest.write_private(js, (json.dumps(data, indent=2) + "\n").encode())
    if not dry_run:
        # The report belongs to the backup: list it in the manifest with its checksum.
        current = manifest.read_manifest(folder)
        for path in (md, js):
            current["files"][path.name] = manifest.file_digest(path)
        manifest.write_manifest(folder, current)
    out.result(f"Report: {md} (and {js.name})")


def _failure_report(folder: Path | None, err: ProofFailed, out: Console) -> None:
    """A failed proof's differences, in full, where the report would have gone."""
    if folder is None or not folder.is_dir():
        return
    path = folder / "squash_report.md"
    text = "\n".join(["# Squash report: proof FAILED", "", err.message,
                      "Nothing in the project was changed. What differed:", "",
                      *[f"    {line}" for line in err.diff]])
    manifest.write_private(path, (text + "\n").encode())
    out.result(f"What differed, in full: {path}")


def _report_lines(data: dict[str, Any], *, dry_run: bool) -> list[str]:
    times = data["fresh_install_seconds"]
    lines = [
        ("Dry run: proven, nothing in the project was changed" if dry_run else
         "Squashed and proven"),
        f"  replaced        {data['replaced']['count']} revisions, "
        f"{data['replaced']['first']} … {data['replaced']['last']}",
        f"  revision        {data['revision']}"
        + (" (new id)" if data["new_revision_id"] else " (the old head's id)"),
        f"  file            {data['file']} ({data['file_size']:,} bytes)",
        f"  fresh install   old chain {times['old_chain']:.2f} s, new revision "
        f"{times['new_revision']:.2f} s ({_ratio(times['old_chain'], times['new_revision'])})",
        "  proof           " + "; ".join(data["proof"]),
    ]
    if data["backup"]:
        lines.append(f"  backup          {data['backup']}")
    if data["output"]:
        lines.append(f"  output folder   {data['output']}")
    if data["archived"]:
        lines.append(f"  archived        {data['archived']}")
    lines.append("  captured:")
    lines += [f"    {kind:<30} {count}" for kind, count in data["captured"].items()]
    drift = data["model_drift"]
    if drift is None:
        lines.append("  model drift     the project declares no models (no target_metadata)")
    elif not drift:
        lines.append("  model drift     none: the models match the squashed schema")
    else:
        lines.append(f"  model drift     {len(drift)} differences between the models and the "
                     "squashed schema (reported, not fixed):")
        for d in drift[:30]:
            detail = f" ({d['detail']})" if d.get("detail") else ""
            lines.append(f"    {d.get('op', '?')} {d.get('object', '')}{detail}")
        if len(drift) > 30:
            lines.append(f"    ... and {len(drift) - 30} more (squash_report.json)")
    lines.append("  development database:")
    lines += [f"    {line}" for line in data["development_database"]]
    lines.append(f"  took            {data['took_seconds']:.1f} s")
    return lines
