"""``dbkit check``: what a CI run must refuse, found on scratch databases only.

Nothing here reads or writes the development database: CI has none. On the server dbkit
reaches (its embedded one by default) the chain is built into a throwaway database, and:

- **heads**: the chain has one head (an unmerged branch fails CI);
- **upgrade**: ``alembic upgrade heads`` runs from an empty database;
- **models**: Alembic's comparison of the models with what the migrations built is empty
  (autogenerate would write nothing);
- **downgrade**: ``alembic downgrade base`` runs, and leaves nothing but Alembic's version
  table; a revision that raises, or leaves objects behind, is named (found by upgrading a
  second database one revision at a time until the leftovers appear);
- **squash**: a squashed revision still builds exactly what its archived chain builds
  (``versions_archived/<name>/``: its files' sha256, then both built and compared as the
  squash's proof compares: pg_dump schema, catalog, rows, sequence positions).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from dbkit.console import Console
from dbkit.errors import ChainBuildFailed, ConfigError
from dbkit.pg import catalog, scratch
from dbkit.pg.mode import get_server
from dbkit.pg.server import Server
from dbkit.project import archive
from dbkit.project.chain import AlembicChild, AlembicProject, Revision
from dbkit.project.ran import Expected, hashes_of
from dbkit.project.version_table import read_versions
from dbkit.settings import Settings
from dbkit.squash import partial, prove
from dbkit.validate.check import from_models

CHECKS = ("heads", "upgrade", "models", "downgrade", "squash")
_MAX_SQUASH_LINES = 20  # findings per archive: the first differences say enough
# A squash freezes the values its chain set from the clock (now()) into the squashed
# revision; the archived chain built today sets today's. Timestamps from this long before
# the archive was made are read as "set by the clock" on both sides.
_CLOCK_MARGIN = timedelta(hours=1)


@dataclass(frozen=True)
class Finding:
    """One problem, one line: which check, what, and the file (and line) to look at."""

    check: str
    message: str
    file: Path | None = None
    line: int | None = None


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was not applicable, and why
    checked: list[str] = field(default_factory=list)

    def add(self, check: str, message: str, path: Path | None = None,
            marker: str | None = None) -> None:
        line = _line_of(path, marker) if path is not None else None
        self.findings.append(Finding(check, message, path, line))


def _line_of(path: Path, marker: str | None) -> int:
    """The line where ``marker`` starts in ``path`` (``def downgrade``), for a CI annotation
    to point at; 1 when it is not there. Only where to point: nothing is parsed."""
    if marker:
        try:
            for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if text.lstrip().startswith(marker):
                    return n
        except (OSError, UnicodeDecodeError):
            pass
    return 1


def _named(rev: Revision) -> str:
    doc = rev.doc.strip().splitlines()[0] if rev.doc.strip() else ""
    return f"{rev.revision} ({doc})" if doc else rev.revision


def run(settings: Settings, out: Console) -> Report:
    """Every check; ``commands/check.py`` is its verb (and prints the report)."""
    settings.require_alembic()
    server = get_server(settings)
    server.ensure_running(out)
    project = AlembicProject(settings, server, out=out)
    revisions = project.revisions()
    # Every build below runs exactly the revision files counted here (ran.py).
    project.expect = _expect(revisions)
    if not revisions:
        raise ConfigError(f"the Alembic project at {settings.alembic_config.parent} has no "
                          "revisions: nothing to check")
    report = Report()
    _heads(revisions, report)
    versions_dir = Path(project.backup_info()["versions_dir"])
    _chain(settings, server, revisions, versions_dir, out, report)
    _squash(settings, server, project, revisions, versions_dir, out, report)
    return report


def _expect(revisions: list[Revision]) -> Expected:
    """Builds run exactly the revision files counted (ran.py), whatever env.py picks."""
    return Expected(hashes_of(r.path for r in revisions), "the revisions env.py loads")


def _heads(revisions: list[Revision], report: Report) -> None:
    report.checked.append("heads")
    parents = {p for r in revisions for p in r.down_revision}
    heads = [r for r in revisions if r.revision not in parents]
    if len(heads) > 1:
        ids = " ".join(h.revision for h in heads)
        report.add("heads", f"the chain has {len(heads)} heads: "
                   f"{', '.join(_named(h) for h in heads)}; join them with "
                   f"`alembic merge -m \"merge heads\" {ids}`", heads[0].path, "revision")


def _chain(settings: Settings, server: Server, revisions: list[Revision], versions_dir: Path,
           out: Console, report: Report) -> None:
    """upgrade, models and downgrade, on one scratch database."""
    by_id = {r.revision: r for r in revisions}
    with scratch.scratch_database(server, "check") as a, \
            AlembicChild(settings, server, a, out=out) as child:
        built = AlembicProject(settings, server, child=child, expect=_expect(revisions))
        baseline = catalog.snapshot_of(server, a)
        report.checked.append("upgrade")
        try:
            with out.step(f"Building the chain ({len(revisions)} revisions) in a scratch "
                          "database"):
                built.build(a, "heads")
        except ChainBuildFailed as err:
            rev = by_id.get(err.revision or "")
            report.add("upgrade", f"alembic upgrade heads fails"
                       f"{' in revision ' + _named(rev) if rev else ''}: "
                       f"{_one_line(err.error or err.message)}",
                       rev.path if rev else settings.alembic_config, "def upgrade")
            report.notes.append("models, downgrade: not checked (the chain does not build)")
            return
        key, _ = read_versions(server, a, set(by_id))
        version_key = key or "public.alembic_version"
        with out.step("Comparing the models with what the migrations built"):
            _models(built, server, a, version_key, versions_dir, report)
        with out.step("Downgrading to base"):
            _downgrade(settings, server, built, a, baseline, version_key, revisions, out,
                       report)


def _models(built: AlembicProject, server: Server, a: str, version_key: str,
            versions_dir: Path, report: Report) -> None:
    env_py = versions_dir.parent / "env.py"
    where = env_py if env_py.is_file() else None
    try:
        drift = built.model_diff(a)
    except ChainBuildFailed as err:
        report.checked.append("models")
        reason = _one_line(err.error or err.message)
        report.add("models", f"the models could not be compared: {reason}", where,
                   "target_metadata")
        return
    if drift is None:
        report.notes.append("models: not compared (env.py sets no target_metadata)")
        return
    report.checked.append("models")
    tables = set(catalog.snapshot_of(server, a)["tables"]) - {version_key}
    if drift and tables and all(d.get("op") == "remove_table" for d in drift) \
            and {d.get("object") for d in drift} == tables:
        report.add("models", f"env.py's target_metadata holds none of the {len(tables)} "
                   "tables the migrations build: import your models in env.py", where,
                   "target_metadata")
        return
    for diff in from_models(drift, None):
        report.add("models", f"models and migrations disagree (autogenerate would write a "
                   f"revision): {diff.line()}", where, "target_metadata")


def _downgrade(settings: Settings, server: Server, built: AlembicProject, a: str,
               baseline: catalog.Snapshot, version_key: str, revisions: list[Revision],
               out: Console, report: Report) -> None:
    by_id = {r.revision: r for r in revisions}
    report.checked.append("downgrade")
    try:
        built.downgrade(a, "base")
    except ChainBuildFailed as err:
        rev = by_id.get(err.revision or "")
        report.add("downgrade", f"revision {_named(rev) if rev else '?'} does not downgrade: "
                   f"{_one_line(err.error or err.message)}",
                   rev.path if rev else settings.alembic_config, "def downgrade")
        return
    left = _objects(catalog.snapshot_of(server, a), baseline, version_key)
    if not left:
        return
    culprits = _who_made(settings, server, revisions, left, out)
    for rev_id, names in culprits.items():
        rev = by_id.get(rev_id)
        report.add("downgrade", f"revision {_named(rev) if rev else '?'}: downgrade() does "
                   f"not undo its upgrade(); downgrade to base leaves {', '.join(names)}",
                   rev.path if rev else settings.alembic_config, "def downgrade")


def _objects(snap: catalog.Snapshot, baseline: catalog.Snapshot,
             version_key: str) -> dict[str, str]:
    """What ``snap`` holds beyond ``baseline``: ``{key: "table public.x"}``."""
    found: dict[str, str] = {}
    for kind, items in snap.items():
        before = baseline.get(kind) or {}
        if isinstance(items, dict):
            for name in items:
                if name not in before and not (kind == "tables" and name == version_key):
                    found[f"{kind}:{name}"] = f"{kind.rstrip('s').replace('_', ' ')} {name}"
        elif isinstance(items, list):
            for item in items:
                if item not in before:
                    found[f"{kind}:{item}"] = f"{kind.replace('_', ' ')} {item}"
    return found


def _who_made(settings: Settings, server: Server, revisions: list[Revision],
              left: dict[str, str], out: Console) -> dict[str, list[str]]:
    """Which revision's upgrade made each leftover: a second scratch database upgraded one
    revision at a time (oldest first) until each has appeared. Only on a failing check."""
    culprit: dict[str, list[str]] = {}
    todo = dict(left)
    with out.step("Finding which revisions leave objects behind"), \
            scratch.scratch_database(server, "check_steps") as c, \
            AlembicChild(settings, server, c, out=out) as child:
        stepper = AlembicProject(settings, server, child=child, expect=_expect(revisions))
        baseline = catalog.snapshot_of(server, c)
        for rev in reversed(revisions):  # Alembic walks head -> base; this is base -> head
            try:
                stepper.upgrade(c, rev.revision)
            except ChainBuildFailed:
                break
            present = _objects(catalog.snapshot_of(server, c), baseline, "")
            for key in [k for k in todo if k in present]:
                culprit.setdefault(rev.revision, []).append(todo.pop(key))
            if not todo:
                break
    if todo:
        culprit.setdefault("", []).extend(todo.values())
    return culprit


def _squash(settings: Settings, server: Server, project: AlembicProject,
            revisions: list[Revision], versions_dir: Path, out: Console,
            report: Report) -> None:
    by_id = {r.revision: r for r in revisions}
    found = [a for a in archive.archives(versions_dir) if a.squashed in by_id]
    if not found:
        report.notes.append(f"squash: nothing to prove (no archived chain in "
                            f"{archive.folder(versions_dir)} for a revision of this chain)")
        return
    report.checked.append("squash")
    for arch in found:
        squashed = by_id[arch.squashed]
        try:
            archive.verify(arch)
        except ConfigError as err:
            report.add("squash", err.message.replace("; refusing to run it; nothing was "
                                                      "changed", ""),
                       arch.path / archive.INDEX)
            continue
        with out.step(f"Proving {arch.squashed} against its archived chain {arch.name}"):
            problems = _prove_archive(settings, server, project, arch, out)
        for line in [p for p in problems if not p.startswith("  ")][:_MAX_SQUASH_LINES]:
            report.add("squash", f"squashed revision {_named(squashed)} no longer builds what "
                       f"its archived chain {arch.name} builds: {line}", squashed.path,
                       "def upgrade")


def _prove_archive(settings: Settings, server: Server, project: AlembicProject,
                   arch: archive.Archive, out: Console) -> list[str]:
    """The archived chain to its end in X, the versions directory to the squashed revision
    in Y, compared (pg_dump, catalog, rows, sequences): the differences (empty: proven)."""
    old = arch.project(settings, server, out=out)
    with scratch.scratch_database(server, "check_x") as x, \
            scratch.scratch_database(server, "check_y") as y:
        try:
            old.upgrade(x, arch.last)
        except ChainBuildFailed as err:
            return [f"the archived chain does not build: {_one_line(err.error or err.message)}"]
        if sorted(old.last_ran.revisions) != sorted(arch.revisions):
            return [f"the archived chain ran {len(old.last_ran.revisions)} revisions, not "
                    f"the {len(arch.revisions)} its index names"]
        try:
            project.upgrade(y, arch.squashed)
        except ChainBuildFailed as err:
            return [f"it does not build: {_one_line(err.error or err.message)}"]
        if project.last_ran.revisions != [arch.squashed]:
            ran = ", ".join(project.last_ran.revisions) or "nothing"
            return [f"the versions directory ran {ran}, not {arch.squashed} alone"]
        key, _ = read_versions(server, x, set(arch.revisions))
        version_key = key or "public.alembic_version"
        since = _since(arch)
        states = [prove.read_state(server, db, version_key) for db in (x, y)]
        if since is not None:
            states = [partial.timeless(server, s, version_key, since) for s in states]
        return prove.differences(server, *states, names=("archived chain", "squashed"))


def _since(arch: archive.Archive) -> datetime | None:
    try:
        return datetime.fromisoformat(arch.created_at) - _CLOCK_MARGIN
    except ValueError:
        return None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def as_json(report: Report, root: Path) -> dict[str, Any]:
    return {
        "ok": not report.findings,
        "error": None,
        "checks": report.checked,
        "findings": [{"check": f.check, "message": f.message,
                      "file": relative(f.file, root), "line": f.line}
                     for f in report.findings],
        "notes": report.notes,
    }


def relative(path: Path | None, root: Path) -> str | None:
    if path is None:
        return None
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)
