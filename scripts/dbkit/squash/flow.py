"""make db-squash-migrations: the whole chain as one revision, proven identical before use.

build → capture → render → prove → swap → adopt → report (architecture, section 3). The
new versions directory is staged beside the old one and proven (Alembic pointed at it with
``version_locations``) before two renames put it in place; a failure or Ctrl-C at any step
leaves the versions directory byte for byte as it was (checked against sha256 sums) and no
scratch database behind.

Long because the steps share one plan and one clean-up stack: split, each part would pass
the stack and the plan around and the order of undo would be harder to read.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from dbkit.backup import manifest
from dbkit.backup import take as backup
from dbkit.console import Console
from dbkit.errors import (
    ChainBuildFailed,
    ConfigError,
    DbkitError,
    ProofFailed,
)
from dbkit.files import fsync_dir, inside
from dbkit.pg import catalog, scratch
from dbkit.pg.mode import chain_server, get_server
from dbkit.pg.server import Server
from dbkit.project import archive as archives
from dbkit.project import versions as vdir
from dbkit.project.chain import AlembicChild, AlembicProject, one_head
from dbkit.project.ran import Expected, folder_files
from dbkit.project.version_table import read_versions
from dbkit.safety import checkpoint, destructive_lock, guard_destructive, project_lock
from dbkit.safety import confirm as ask
from dbkit.settings import Settings
from dbkit.squash import datafile, partial, prove, render
from dbkit.squash import ddl as capture
from dbkit.squash.adopt import adopt, reset_dev
from dbkit.squash.kinds import HEADLINE
from dbkit.squash.report import failure_report, report, view_graph
from dbkit.squash.state import Outcome, Plan

WORD = "squash"
_PURPOSES = ("squasha", "squashb")


# -- the run ----------------------------------------------------------------------------------

def run(settings: Settings, out: Console, *, confirm: str | None = None, dry_run: bool = False,
        new_revision: bool = False, archive: bool = True, reset: bool = False,
        until: str = "") -> int:
    """The whole squash; ``commands/squash.py`` is its verb (and says what the options do)."""
    started = time.perf_counter()
    if until and new_revision:
        raise ConfigError("UNTIL= and NEW_REVISION=1 do not go together: the revisions kept "
                          "after UNTIL name its id as their down_revision")
    server = get_server(settings)
    server.ensure_running(out)
    settings.require_alembic()  # a project that is not there is said before anything starts
    outcome = Outcome(revision="", new_revision=new_revision)
    lock = project_lock(settings, "squash") if dry_run else \
        destructive_lock(settings, server, "squash")
    with lock, ExitStack() as children, \
            ExitStack() as databases:
        # One warm child per target database, started now (A: old chain, B: new revision);
        # the backup's read of the development database gets a child of its own.
        names = [scratch.scratch_name(p) for p in _PURPOSES]
        old_child, new_child = (children.enter_context(
            AlembicChild(settings, server, name, out=out)) for name in names)
        old_chain = AlembicProject(settings, server, child=old_child)
        for line in vdir.recover(settings.alembic_config.parent):
            out.result(line)
        # The scratch databases A and B are created while other work goes on (a dry run
        # needs no confirmation, so from the start; else once confirmed, during the backup).
        chain_a: Future | None = None
        if dry_run:
            ready = _scratch(databases, server, names, old_child, new_child)
        plan = preflight(settings, server, old_chain, until=until.strip() or None)
        # A is built from exactly the files counted, B from exactly the files staged: an
        # env.py that picks its own folders is steered to them or refused (ran.py).
        old_chain.expect = Expected(folder_files(plan.versions_dir, plan.hashes),
                                    f"the versions directory {plan.versions_dir}")
        chose = chosen_folders(old_chain)
        if chose:
            out.say(chose)
        if dry_run:
            # Nothing to confirm: the old chain is built while the run goes on (not during a
            # backup: its timing is reported and must not compete with pg_dump).
            chain_a = _in_background(_build_chain, server, old_chain, ready,
                                     plan.until or "head")
        if not dry_run:
            guard_destructive(settings, server, "squash the migration chain")
        outcome.revision = uuid.uuid4().hex[:12] if new_revision else plan.top
        _show_plan(out, settings, server, plan, outcome.revision, dry_run=dry_run,
                   archive=archive, reset=reset)
        if not dry_run:
            ask(out, word=WORD, given=confirm, what="squash the migration chain")
        scratch.sweep_stale(server)
        if dry_run:
            outcome.output = Path(tempfile.mkdtemp(prefix="dbkit-squash-"))
            os.chmod(outcome.output, 0o700)
            out.say(f"Dry run: everything goes to {outcome.output}; the project is not touched.")
            staged = outcome.output / plan.versions_dir.name
        else:
            vdir.require_swappable(plan.versions_dir)
            ready = _scratch(databases, server, names, old_child, new_child)
            made = _backup(settings, server, old_chain, plan, out)
            outcome.backup = made.path
            staged = vdir.sibling(plan.versions_dir, "new")
        new = AlembicProject(settings, server, version_locations=staged,
                             stands_for=plan.versions_dir, child=new_child, out=out)
        try:
            _stage(plan, staged)
            _build_and_prove(server, old_chain, new, plan, staged, outcome, out, ready,
                             chain_a)
            databases.close()  # nothing waits for the user with scratch databases open
            if not dry_run:
                _review(out, outcome)
                _intend(plan, staged, made, archive=archive, squashed=outcome.revision)
                old = swap(settings, plan, staged, outcome, out=out)
        except BaseException as err:
            if not dry_run:
                _discard(staged)
                _require_unchanged(plan)
                vdir.clear_intent(plan.versions_dir)
            if isinstance(err, ProofFailed):
                failure_report(outcome.output or outcome.backup, err, out)
            elif dry_run and outcome.output is not None:
                # Nothing in it that the error points to (a failed proof keeps its folder:
                # the report of what differed, and the revision that was proven, are there).
                _discard(outcome.output)
            raise
        if not dry_run:
            # The squash is in place: what is left cannot undo it, only tidy up.
            outcome.archived = retire(plan, old, made, archive=archive, out=out,
                                      squashed=outcome.revision)
            vdir.clear_intent(plan.versions_dir)
    if reset and not dry_run:
        # The squash's confirmation covers the rebuild it announced.
        reset_dev(settings, server, out)
    outcome.adopt = adopt(settings, server, plan, outcome, reset=reset and not dry_run,
                          dry_run=dry_run, archive=archive)
    outcome.took = time.perf_counter() - started
    report(out, settings, plan, outcome, dry_run=dry_run)
    return 0


# -- preflight --------------------------------------------------------------------------------

def preflight(settings: Settings, server: Server, project: AlembicProject, *,
              until: str | None = None) -> Plan:
    """One head, one readable versions directory, the server answers; nothing is changed.
    With ``until``: the part squashed and the revisions kept (squash/partial.py)."""
    revisions = list(reversed(project.revisions()))  # oldest first
    squashed, kept = partial.split(revisions, until) if until else (revisions, [])
    head = one_head(revisions, project.config.parent)
    until = squashed[-1].revision if until else None
    dirs = sorted({r.path.parent for r in revisions})
    if len(dirs) != 1:
        raise ConfigError(
            "the revisions live in several directories ("
            + ", ".join(str(d) for d in dirs) + "); dbkit squashes one versions directory"
        )
    versions = dirs[0]
    if not os.access(versions, os.R_OK | os.W_OK | os.X_OK):
        raise ConfigError(f"the versions directory {versions} is not readable and writable")
    dev_exists = server.database_exists(server.dev_db)
    known = {r.revision for r in revisions}
    return Plan(head=head, revisions=squashed, versions_dir=versions, until=until, kept=kept,
                revision_files=datafile.with_data(squashed),
                hashes=vdir.file_hashes(versions), dev_exists=dev_exists,
                dev_current=read_versions(server, server.dev_db, known)[1]
                if dev_exists else None)


def _show_plan(out: Console, settings: Settings, server: Server, plan: Plan, rev_id: str, *,
               dry_run: bool, archive: bool, reset: bool) -> None:
    last = plan.revisions[-1]
    out.say(f"Squash the migration chain of {settings.alembic_config}:")
    out.say(f"  {len(plan.revisions)} revisions, {plan.first.revision} "
            f"({plan.first.doc.strip() or 'no message'}) … {last.revision} "
            f"({last.doc.strip() or 'no message'}, {'UNTIL' if plan.until else 'head'})")
    if plan.kept:
        out.say(f"  the {len(plan.kept)} revisions after it, up to the head {plan.head}, are "
                "kept as they are")
    same = rev_id == plan.top
    out.say(f"  into one revision {rev_id}"
            + (f" (the {'UNTIL' if plan.until else 'head'} revision's id: databases at it "
               "need nothing)" if same else
               " (a new id: every existing database then needs `alembic stamp --purge`)"))
    out.say("  steps: " + ("" if dry_run else "back up → ") + "build the old chain in "
            "scratch database A → capture what it built → write one revision → prove a "
            "database built from it identical to A (schema, rows, sequences; down to base and "
            "up again)" + (" → the whole new versions directory identical to the old chain "
                           "at head" if plan.kept else "")
            + ("" if dry_run else f" → replace {plan.versions_dir}"))
    where = archives.where_said(plan.versions_dir, settings.alembic_config.parent)
    if dry_run:
        out.say("  dry run: nothing in the project is touched"
                + (f" (a real squash archives the old files in {where})" if archive else ""))
    elif archive:
        out.say(f"  the old files go into the backup and {where}")
    else:
        out.say("  the old files go into the backup (ARCHIVE=0: no versions_archived copy)")
    out.say(f"  development database {server.dev_db}: {_dev_state(plan)}"
            + ("; rebuilt from the squashed revision afterwards (RESET=1)" if reset else ""))
    if plan.lagging and not reset:
        out.say(f"  {server.dev_db} is behind {plan.top}: afterwards `make db-upgrade` catches "
                "it up through the archived chain" if archive else out.paint(
                    f"  warning: {server.dev_db} is behind {plan.top}; with ARCHIVE=0 no "
                    "archive can catch it up after the squash. Upgrade it first (make "
                    "db-upgrade), or rebuild it afterwards (RESET=1)", "yellow"))


def _dev_state(plan: Plan) -> str:
    if not plan.dev_exists:
        return "does not exist"
    if not plan.dev_current:
        return "empty (no revision applied)"
    where = ", ".join(plan.dev_current)
    return f"at {where}" + (" (head)" if plan.dev_current == [plan.head] else " (behind head)")


# -- backup -----------------------------------------------------------------------------------

def _backup(settings: Settings, server: Server, project: AlembicProject, plan: Plan,
            out: Console) -> manifest.Backup:
    """The same backup as db-backup-full (migrations only when there is no database yet)."""
    note = (f"before dbkit squash of {len(plan.revisions)} revisions "
            + (f"(until {plan.until}, head {plan.head})" if plan.until else f"(head {plan.head})"))
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
    data_dirs = {p.parent for p in revision_files} - {plan.versions_dir.resolve()}
    for path in sorted(plan.versions_dir.rglob("*")):
        rel = path.relative_to(plan.versions_dir)
        if "__pycache__" in rel.parts or path.suffix == ".pyc":
            continue
        if path.is_dir():
            if path.resolve() not in data_dirs:  # the old revisions' data folders go
                (staged / rel).mkdir(exist_ok=True)
        elif path.resolve() not in revision_files:
            (staged / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, staged / rel)


def _in_background(fn: Callable[..., Any], *args: Any) -> Future:
    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(fn, *args)
    pool.shutdown(wait=False)
    return future


def _build_chain(server: Server, project: AlembicProject, ready: Callable[[int], list[str]],
                 target: str) -> tuple[str, catalog.Snapshot, float]:
    """A ← the old chain to ``target``: its name, its snapshot while still empty, the
    build's seconds."""
    a, = ready(1)
    baseline = catalog.snapshot_of(server, a)
    seconds = project.build(a, target)
    if project.child is not None:
        project.child.finish()  # it has nothing more to do: let it end meanwhile
    return a, baseline, seconds


def _build_and_prove(server: Server, project: AlembicProject, new: AlembicProject, plan: Plan,
                     staged: Path, outcome: Outcome, out: Console,
                     ready: Callable[[int], list[str]], chain_a: Future | None) -> None:
    """A ← old chain (maybe already under way), capture, render into ``staged``, prove with
    B, built by ``new`` (see ``prove``)."""
    # While A is built, B's child reads B's revision (none: B is new): that first operation
    # imports the project's env.py and models, which B's build, waiting for A, then need not.
    b_current = _in_background(lambda: new.current(ready(2)[1]))
    with out.step(f"Building database A from the old chain ({len(plan.revisions)} "
                  "revisions)"):
        a, baseline, outcome.old_chain_seconds = (
            chain_a.result() if chain_a is not None
            else _build_chain(server, project, ready, plan.until or "head"))
        version_key, version_table = _landed(server, a, plan)
    with out.step("Capturing what the chain built"):
        conn = server.connect(a)
        try:
            captured = capture.capture(conn, baseline=baseline, version_table=version_table,
                                       data_files=datafile.limits(project.settings),
                                       target=project.settings.target_pg or server.major)
        finally:
            conn.close()
    outcome.counts = captured.counts
    outcome.view_graph = view_graph(captured.nodes)
    with out.step("Writing the squashed revision"):
        text = render.render_revision(
            captured, revision=outcome.revision, replaced=_replaced(plan),
            branch_labels=tuple(sorted({lb for r in plan.revisions
                                        for lb in r.branch_labels})),
        )
        path = inside(staged, render.file_name(outcome.revision, len(plan.revisions)))
        path.write_text(text)
        outcome.file, outcome.file_size = path, path.stat().st_size
        outcome.data_size = datafile.write(staged, outcome.revision, captured.nodes)
    _, b = ready(2)
    if b_current.result():
        raise DbkitError(f"the scratch database {b} is not empty")
    ran_only(project, [r.revision for r in plan.revisions], "A (the old chain)")
    proof = prove.prove(server, new, a=a, b=b, baseline=baseline, version_key=version_key,
                        out=out, target=outcome.revision if plan.kept else "head",
                        revision=outcome.revision)
    landed_b = read_versions(server, b, {outcome.revision})
    if landed_b != (version_key, [outcome.revision]):
        raise ProofFailed(f"proof failed: B is at {landed_b[1]} in {landed_b[0]}, not at "
                          f"{outcome.revision} in {version_key}")
    outcome.new_revision_seconds = proof.new_install_seconds
    outcome.checks = proof.checks
    outcome.drift, outcome.drift_note = proof.model_diff, proof.model_diff_note
    outcome.b_snapshot = proof.snapshot
    if plan.kept:  # a partial squash: the whole new directory against the whole old chain
        checks, outcome.b_snapshot, outcome.drift, outcome.drift_note = partial.prove_whole(
            server, AlembicProject(project.settings, server, expect=project.expect), new,
            a=a, b=b, version_key=version_key, out=out, kept=[r.revision for r in plan.kept])
        outcome.checks += checks


def _scratch(databases: ExitStack, server: Server, names: list[str],
             *children: AlembicChild) -> Callable[[int], list[str]]:
    """The scratch databases (see ``_made_meanwhile``), dropped when ``databases`` closes,
    after the children are stopped: killed if the run failed (one may be running a
    migration in them), else finished (they hold no connection between operations, and
    are waited for once the databases are gone)."""
    ready = databases.enter_context(_made_meanwhile(server, names))
    for child in children:
        databases.push(child.stop)
    return ready


@contextmanager
def _made_meanwhile(server: Server, names: list[str]) -> Iterator[Callable[[int], list[str]]]:
    """Scratch databases ``names`` created one after the other in the background (CREATE
    DATABASE takes a quarter of a second), always dropped. Yields ``ready(n)``: the first n
    names, once those exist."""
    pool = ThreadPoolExecutor(max_workers=1)
    creating = [pool.submit(server.create_database, name) for name in names]
    pool.shutdown(wait=False)

    def ready(count: int) -> list[str]:
        for future in creating[:count]:
            future.result()
        return names[:count]

    try:
        yield ready
    finally:
        for future in creating:
            future.cancel()
            if not future.cancelled():
                future.exception()  # a database being created cannot be dropped yet
        # Dropped side by side: each waits mostly for the server.
        with ThreadPoolExecutor(max_workers=len(names)) as dropping:
            list(dropping.map(lambda name: scratch.drop_database(server, name), names))


def chosen_folders(project: AlembicProject) -> str | None:
    """One line when env.py loads its revisions from other folders than alembic.ini names."""
    ran = project.last_ran
    if not ran.env:
        return None
    return (f"env.py chooses where its revisions are: {', '.join(ran.env)} (alembic.ini "
            f"names {', '.join(ran.given) or 'none'}); dbkit counts, squashes and replaces "
            "the revisions there")


def ran_only(project: AlembicProject, revisions: list[str], what: str) -> None:
    """The last operation of ``project`` ran exactly ``revisions`` (each once): else the
    proof would be about other revisions than the ones it names."""
    ran = project.last_ran.revisions
    if sorted(ran) != sorted(revisions):
        shown = ", ".join(ran[:5]) + (" …" if len(ran) > 5 else "") if ran else "none"
        raise ProofFailed(f"proof failed: {what} ran {len(ran)} revisions ({shown}), not the "
                          f"{len(revisions)} it names")


def _landed(server: Server, dbname: str, plan: Plan) -> tuple[str, tuple[str | None, str]]:
    """The chain must have run in ``dbname``: an env.py that ignores the connection (and the
    URL) dbkit gives it would build some other database, and the capture would be empty.

    Returns Alembic's version table as ``schema.table`` and as (schema, table).
    """
    key, versions = read_versions(server, dbname, {r.revision for r in plan.revisions})
    if key is None or versions != [plan.top]:
        raise ChainBuildFailed(
            f"alembic upgrade {plan.top} did not land in the scratch database dbkit gave it (its "
            f"version table holds {versions or 'nothing'}): the project's env.py must use "
            "config.attributes['connection'] or the sqlalchemy.url it is given"
        )
    schema, _, table = key.partition(".")
    return key, (schema, table)


def _replaced(plan: Plan) -> render.Replaced:
    last = plan.revisions[-1]
    return render.Replaced(
        count=len(plan.revisions), first=plan.first.revision,
        first_doc=plan.first.doc.strip(), last=last.revision, last_doc=last.doc.strip(),
    )


def _review(out: Console, outcome: Outcome) -> None:
    """The proven file and what it holds, then Enter (on a terminal) before the swap."""
    held = ", ".join(f"{outcome.counts[k]} {k}" for k in HEADLINE if outcome.counts.get(k))
    out.result(f"Proven: {outcome.file} ({outcome.file_size:,} bytes): {held}")
    out.pause("Review it, then press Enter to replace the versions directory "
              "(Ctrl-C: nothing is changed) ")


# -- swap -------------------------------------------------------------------------------------

def swap(settings: Settings, plan: Plan, staged: Path, outcome: Outcome, *,
         out: Console) -> Path:
    """Put the proven versions directory in place; returns where the old one now is.

    Two renames with Ctrl-C held between them; if Alembic then does not read exactly the
    squashed revision from the project, the original is put back.
    """
    versions_dir = plan.versions_dir
    with out.step(f"Replacing {versions_dir}"):
        old = vdir.swap_in(staged, versions_dir)
        fsync_dir(vdir.real_dir(versions_dir).parent)
        checkpoint("squash-replaced")
        try:
            heads = AlembicProject(settings, chain_server(settings), out=out).heads()
            expected = plan.head if plan.kept else outcome.revision
            if heads != [expected]:
                raise DbkitError(f"after the swap Alembic sees heads {heads}, not "
                                 f"{expected}; the old versions were put back")
        except BaseException:
            shutil.rmtree(vdir.swap_in(old, versions_dir))
            raise
    if outcome.file is not None:
        outcome.file = versions_dir / outcome.file.name
    return old


def _intend(plan: Plan, staged: Path, made: manifest.Backup, *, archive: bool,
            squashed: str) -> None:
    """What a run killed from here on meant to do: the next dbkit run finishes it
    (project/recovery.py)."""
    vdir.write_intent(plan.versions_dir, {
        "kind": "squash", "backup": str(made.path), "archive": archive,
        "old_hashes": plan.hashes, "new_hashes": vdir.file_hashes(staged),
        "revision_files": [p.relative_to(plan.versions_dir).as_posix()
                           for p in plan.revision_files],
        "archive_index": {"revisions": [r.revision for r in plan.revisions],
                          "last": plan.top, "squashed": squashed}})


def retire(plan: Plan, old: Path, made: manifest.Backup, *, archive: bool,
           out: Console, squashed: str) -> Path | None:
    """The old revision files: copied to versions_archived/<timestamp>/ with their index
    (unless ARCHIVE=0; project/archive.py), then the old folder goes; the backup has held
    them since before anything changed."""
    archived = None
    try:
        if archive:
            archived = archives.make(
                plan.versions_dir, old,
                [p.relative_to(plan.versions_dir).as_posix() for p in plan.revision_files],
                revisions=[r.revision for r in plan.revisions], last=plan.top,
                squashed=squashed)
        shutil.rmtree(old)
    except OSError as err:
        raise DbkitError(
            f"the squash is in place, but the old files could not be archived ({err}); they "
            f"are in {old} and in the backup {made.path / manifest.MIGRATIONS}") from None
    out.say(f"The old revision files are in the backup {made.path / manifest.MIGRATIONS}"
            + (f" and in {archived}" if archived else ""))
    return archived


def _discard(staged: Path) -> None:
    if staged.exists():
        shutil.rmtree(staged, ignore_errors=True)


def _require_unchanged(plan: Plan) -> None:
    """After a failure: the versions directory must be byte for byte what it was."""
    now = vdir.file_hashes(plan.versions_dir) if plan.versions_dir.is_dir() else {}
    if now != plan.hashes:
        changed = sorted(set(now.items()) ^ set(plan.hashes.items()))
        raise DbkitError(
            f"the versions directory {plan.versions_dir} is not as it was "
            f"({len(changed)} files differ): restore it from the backup's migrations/ folder"
        )
