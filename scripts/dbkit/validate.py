"""``make db-validate-schema``: every difference between the live database and the app.

Three sources, one report:

1. the revision: the database's ``alembic_version`` against the project's head(s);
2. the models: Alembic's own comparison, run through the project's env.py in the Alembic
   child (so its ``include_object``, ``include_name``, ``compare_type`` and
   ``compare_server_default`` apply) - see ``dbkit.model_diff``;
3. what the app declares outside its models (views, materialized views, functions, triggers,
   migration-only tables) - see ``dbkit.declared``.

Exit codes: 0 in sync, 1 differences found, 2 could not check. Validate never writes: the
child's session is read-only and the definition comparison is rolled back.
"""

from __future__ import annotations

import json as jsonlib
from dataclasses import dataclass, field
from typing import Any

from dbkit import declared, drift
from dbkit.chain import AlembicProject
from dbkit.console import Console
from dbkit.declared import Registry
from dbkit.drift import CHANGED, EXTRA, MISSING, Difference
from dbkit.errors import AppNotLoadable, ConfigError, DbkitError, ServerUnreachable
from dbkit.server import get_server
from dbkit.settings import Settings

_PROBLEM_COLOUR = {MISSING: "red", EXTRA: "yellow"}


class ChildTraceback(Exception):
    """The traceback of a failure inside the Alembic child; ``--debug`` shows it as the cause."""


@dataclass
class RevisionCheck:
    """Where the database's alembic_version stands against the project's heads."""

    status: str  # in sync, behind, unknown revision, several heads, no version table
    database: list[str]
    heads: list[str]
    behind: int | None = None
    differences: list[Difference] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"status": self.status, "database": self.database, "heads": self.heads,
                "behind": self.behind}


def validate(settings: Settings, out: Console, *, json: bool = False) -> int:
    """Compare the database with the app: revision, models, views, functions, triggers.

    Exit 0 when they match, 1 when anything differs, 2 when the comparison could not run.
    --json (or JSON=1) prints the differences as data for CI.
    """
    settings.require_alembic()
    server = get_server(settings)
    server.ensure_running(out)
    dbname = server.dev_db
    if not server.database_exists(dbname):
        raise ConfigError(f"{server.describe(dbname)} does not exist: nothing to validate")
    if not json:
        out.say(f"Validating {server.describe(dbname)} against {settings.backend_dir}")
    facts = AlembicProject(settings, server).validation_facts(dbname, settings.app_objects)
    if "failure" in facts:
        raise _not_loadable(facts["failure"], settings)

    registry = (None if facts["registry"] is None
                else Registry.from_json(settings.app_objects, facts["registry"]))
    revision = check_revision(facts["current"], facts["heads"], facts["graph"],
                              has_table=facts["has_version_table"])
    differences = list(revision.differences)
    notes: list[str] = []
    if facts["diff"] is None:
        notes.append("models (the project's env.py sets no target_metadata)")
    else:
        differences += model_differences(facts["diff"], registry, facts["default_schema"])
    if registry is None:
        notes.append(f"views, functions and triggers (no objects registry "
                     f"{settings.app_objects} in the app; APP_OBJECTS names it)")
    else:
        conn = server.connect(dbname, autocommit=False)
        try:
            schemas = set(facts["model_schemas"]) | set(registry.schemas)
            differences += declared.compare(conn, registry, schemas)
        except declared.CompareError as err:
            raise DbkitError(f"could not compare definitions in {dbname}: {err}") from None
        finally:
            conn.close()

    if json:
        out.result(jsonlib.dumps(_report(dbname, revision, differences, registry, notes),
                                 indent=2))
    else:
        _print(out, dbname, revision, differences, notes, checked=_checked(facts, registry))
    return 1 if differences else 0


def _not_loadable(failure: dict[str, str], settings: Settings) -> DbkitError:
    """The child's failure as one line; its traceback rides along as the cause (--debug)."""
    what = {
        "database": "cannot read the database",
        "app": f"the app in {settings.backend_dir} does not load (env.py or its models)",
        "compare": "Alembic's comparison failed",
        "registry": f"the objects registry {settings.app_objects} does not load",
    }.get(failure["stage"], "the app does not load")
    kind = ServerUnreachable if failure["stage"] == "database" else AppNotLoadable
    where = f" ({failure['where']})" if failure.get("where") else ""
    error = kind(f"{what}: {failure['error']}{where}; --debug shows the traceback")
    error.__cause__ = ChildTraceback(failure["traceback"].rstrip())
    return error


# -- the revision ---------------------------------------------------------------------------------
def _ancestors(revs: list[str], graph: dict[str, list[str]]) -> set[str]:
    """The revisions given and every revision below them."""
    seen: set[str] = set()
    todo = list(revs)
    while todo:
        rev = todo.pop()
        if rev not in seen:
            seen.add(rev)
            todo.extend(graph.get(rev, ()))
    return seen


def check_revision(
    current: list[str], heads: list[str], graph: dict[str, list[str]], *, has_table: bool
) -> RevisionCheck:
    """Compare alembic_version with the chain: in sync, behind (by how many), unknown, ..."""
    current, heads = sorted(current), sorted(heads)
    found: list[Difference] = []
    head_text = ", ".join(heads) or "no revision"
    status = "in sync"
    behind: int | None = None
    if len(heads) > 1:
        status = "several heads"
        found.append(Difference(
            "revision", "alembic_version", "several heads", ", ".join(current) or "no revision",
            f"one head, but the project has {len(heads)} ({head_text}): merge them",
        ))
    unknown = [rev for rev in current if rev not in graph]
    if not has_table:
        status = "no version table"
        found.append(Difference("revision", "alembic_version", "no version table",
                                "no alembic_version table", f"{head_text} (head)"))
    elif unknown:
        status = "unknown revision"
        found.append(Difference(
            "revision", "alembic_version", "unknown revision",
            f"{', '.join(unknown)} (not in this chain: newer, deleted or squashed)",
            f"{head_text} (head)",
        ))
    else:
        behind = len(_ancestors(heads, graph) - _ancestors(current, graph))
        if behind:
            status = "behind" if status == "in sync" else status
            at = ", ".join(current) or "no revision (base)"
            found.append(Difference(
                "revision", "alembic_version", "behind",
                f"{at}, {behind} {'revision' if behind == 1 else 'revisions'} behind",
                f"{head_text} (head)",
            ))
    return RevisionCheck(status, current, heads, behind, found)


# -- the models -----------------------------------------------------------------------------------
def model_differences(
    records: list[dict[str, Any]], registry: Registry | None, default_schema: str | None
) -> list[Difference]:
    """Alembic's records as differences; an add and a remove of one object become a change."""
    keep = set(registry.migration_only_tables) if registry else set()
    pending: dict[tuple[str, str], list[Difference]] = {}
    for rec in records:
        op, kind, obj = rec["op"], rec["kind"], rec["object"]
        if op == "remove_table" and _qualified(obj, default_schema) in keep:
            continue  # declared by the app, just not as a model
        if op.startswith("modify_") or op.endswith("_comment"):
            problem = CHANGED
        elif op.startswith("add_"):
            problem = MISSING
        elif op.startswith("remove_"):
            problem = EXTRA
        else:
            problem = op
        pending.setdefault((kind, obj), []).append(
            Difference(kind, obj, problem, rec.get("db"), rec.get("app"))
        )
    found: list[Difference] = []
    for (kind, obj), diffs in pending.items():
        problems = sorted(d.problem for d in diffs)
        if problems == [EXTRA, MISSING]:
            # Alembic says "drop and create"; to a reader that is one changed object.
            db = next(d.database for d in diffs if d.problem == EXTRA)
            app = next(d.app for d in diffs if d.problem == MISSING)
            found.append(Difference(kind, obj, CHANGED, db, app))
        else:
            found.extend(diffs)
    return found


def _qualified(name: str, default_schema: str | None) -> str:
    return name if "." in name else f"{default_schema or 'public'}.{name}"


# -- output ---------------------------------------------------------------------------------------
def _checked(facts: dict[str, Any], registry: Registry | None) -> str:
    parts = []
    if facts["diff"] is not None:
        parts.append(f"{facts['model_tables']} model tables")
    if registry is not None:
        parts.append(f"{registry.size()} declared objects")
    return f" ({', '.join(parts)} checked)" if parts else ""


def _print(
    out: Console, dbname: str, revision: RevisionCheck, differences: list[Difference],
    notes: list[str], *, checked: str,
) -> None:
    for kind, diffs in drift.group(differences):
        out.result(out.paint(drift.plural(kind).capitalize(), "bold"))
        for d in diffs:
            colour = _PROBLEM_COLOUR.get(d.problem)
            line = f"  {d.line()}"
            out.result(out.paint(line, colour) if colour else line)
    for note in notes:
        out.result(f"Not checked: {note}")
    if differences:
        out.result(out.paint(f"Drift: {drift.summary(differences)} in {dbname}", "red"))
    else:
        at = ", ".join(revision.heads) or "base"
        out.result(out.paint(f"In sync: {dbname} matches the app at {at}{checked}", "green"))


def _report(
    dbname: str, revision: RevisionCheck, differences: list[Difference],
    registry: Registry | None, notes: list[str],
) -> dict[str, Any]:
    ordered = [d for _, diffs in drift.group(differences) for d in diffs]
    return {
        "ok": not differences,
        "database": dbname,
        "revision": revision.as_json(),
        "differences": [d.as_json() for d in ordered],
        "counts": drift.counts(differences),
        "registry": registry.module if registry else None,
        "notes": notes,
    }
