"""``make db-validate-schema``: every difference between the live database and the app.

Three sources, one report:

1. the revision: the database's ``alembic_version`` against the project's head(s);
2. the models: Alembic's own comparison, run through the project's env.py in the Alembic
   child (so its ``include_object``, ``include_name``, ``compare_type`` and
   ``compare_server_default`` apply) - see ``project/runner.py``;
3. what the app declares outside its models (views, materialized views, functions, triggers,
   migration-only tables) - see ``dbkit.declared`` - and, so nothing hides there, the
   tables and views in schemas the app does not use.

The registry is optional only under its default name (``app.db.objects``): a name set in
APP_OBJECTS that does not import is an error, an empty APP_OBJECTS turns those checks off.
Every object is named with its schema (``public.genes.symbol``).

Exit codes: 0 in sync, 1 differences found, 2 could not check (with --json, the report then
carries the error). Validate never writes: the child's session is read-only and the
definition comparison is rolled back.
"""

from __future__ import annotations

import json as jsonlib
from dataclasses import dataclass, field
from typing import Any

from dbkit.console import Console
from dbkit.errors import AppNotLoadable, ConfigError, DbkitError
from dbkit.pg.mode import get_server
from dbkit.pg.server import Server
from dbkit.project import archive
from dbkit.project.chain import AlembicProject, reachable
from dbkit.settings import CHECK_NAMES, DEFAULTS, Settings
from dbkit.validate import declared, drift, migrations
from dbkit.validate.declared import Registry
from dbkit.validate.drift import CHANGED, EXTRA, MISSING, Difference
from dbkit.validate.migrations import ChainResult

_PROBLEM_COLOUR = {MISSING: "red", EXTRA: "yellow"}
_NO_REGISTRY = "views, functions and triggers"
_CHAIN = "database vs its migrations"


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


def empty_report(checks: list[str], error: str | None = None) -> dict[str, Any]:
    """The JSON report's keys, as CI always gets them (``error``: could not check)."""
    return {
        "ok": False, "error": error, "database": None, "revision": None, "differences": [],
        "counts": drift.counts([]), "registry": None, "notes": [], "checks": checks,
        "migrations": migrations.not_checked("not run").as_json(),
    }


def run(settings: Settings, out: Console, *, json: bool = False) -> int:
    """Every check; ``commands/validate.py`` is its verb (and says what the exit codes mean)."""
    report = empty_report(list(settings.checks or CHECK_NAMES))
    try:
        return _validate(settings, out, report, json=json)
    except DbkitError as err:
        if json:
            # CI reads stdout: it gets the same keys, with the one line cli.py prints.
            report.update(ok=False, error=out.mask(err.message))
            out.result(jsonlib.dumps(report, indent=2))
            err.reported = True
        raise


def _validate(settings: Settings, out: Console, report: dict[str, Any], *, json: bool) -> int:
    """``validate`` proper; fills ``report`` as it learns (the JSON form, also on failure)."""
    settings.require_alembic()
    server = get_server(settings)
    # With --json, stdout carries the report alone: progress (starting a server) goes to stderr.
    progress = Console(out.err, quiet=out.quiet, secrets=out.secrets) if json else out
    server.ensure_running(progress)
    dbname = report["database"] = server.dev_db
    if not server.database_exists(dbname):
        raise ConfigError(f"{server.describe(dbname)} does not exist: nothing to validate")
    if not json:
        out.say(f"Validating {server.describe(dbname)} against {settings.backend_dir}")
    chosen = settings.checks or CHECK_NAMES
    module = settings.app_objects.strip() if "registry" in chosen else ""
    # The chain check's slow part (copying a cached build, reading both catalogs) runs
    # while the Alembic child imports the app and compares the models.
    with migrations.Prefetch(server, settings, dbname, start="chain" in chosen) as prefetch:
        return _checks(settings, server, dbname, module, chosen, prefetch, out, report,
                       json=json, progress=progress)


def _checks(
    settings: Settings, server: Server, dbname: str, module: str, chosen: tuple[str, ...],
    prefetch: migrations.Prefetch, out: Console, report: dict[str, Any], *, json: bool,
    progress: Console,
) -> int:
    facts = AlembicProject(settings, server, out=progress).validation_facts(dbname, module)
    if "failure" in facts:
        raise _not_loadable(facts["failure"], settings, module, dbname)
    why_not = ("the project's env.py sets no target_metadata" if "models" in chosen
               else "CHECKS leaves them out")
    if "models" not in chosen:
        facts["diff"] = None
    elif (empty := _models_hold_no_tables(facts)) is not None:
        why_not, facts["diff"] = empty, None

    notes: list[str] = report["notes"]
    registry = _registry(facts["registry"], module, settings, notes) \
        if "registry" in chosen else None
    if facts["diff"] is None:
        if registry is None and "chain" not in chosen:
            models = why_not if "models" in chosen \
                else f"CHECKS={','.join(chosen)} leaves the models out"
            raise ConfigError(
                f"nothing to validate against: {models} and the app has no objects registry "
                "(APP_OBJECTS); only the revision could be checked"
            )
        notes.insert(0, f"models ({why_not})")
    if "registry" not in chosen:
        notes.append(f"{_NO_REGISTRY} (CHECKS leaves the registry out)")
    report["registry"] = registry.module if registry else None

    unknown = [rev for rev in facts["current"] if rev not in facts["graph"]]
    revision = check_revision(facts["current"], facts["heads"], facts["graph"],
                              has_table=facts["has_version_table"], table=facts["version_table"],
                              archived=archive.holding(settings.alembic_config.parent, unknown)
                              if unknown else None)
    report["revision"] = revision.as_json()
    differences = list(revision.differences)
    if facts["diff"] is not None:
        differences += from_models(facts["diff"], registry)
    differences += _from_database(server, dbname, facts, registry, differences)
    chain = _from_chain(server, settings, dbname, facts, differences, notes, prefetch,
                        chosen=chosen, explicit=bool(settings.checks))
    report["migrations"] = chain.as_json()
    found = differences + chain.differences

    report.update(ok=not found, differences=[d.as_json() for d in _ordered(differences)],
                  counts=drift.counts(found))
    if json:
        out.result(jsonlib.dumps(report, indent=2))
    else:
        _print(out, dbname, revision, differences, chain, notes,
               checked=_checked(facts, registry, chain))
    return 1 if found else 0


def _models_hold_no_tables(facts: dict[str, Any]) -> str | None:
    """Why the models are not compared when env.py's target_metadata holds no tables while
    the database has some (None: they are). Alembic would call every table "removed" (and
    a plugin such as alembic-postgresql-enum every enum dropped): that says the models were
    never imported, once, not which tables."""
    if facts["diff"] is None or facts["model_tables"]:
        return None
    tables = sum(1 for d in facts["diff"] if d.get("op") == "remove_table")
    if not tables:
        return None
    return (f"the models env.py gives hold no tables, and the database has {tables}: "
            "env.py's target_metadata is empty; import your models in env.py")


def _from_chain(
    server: Server, settings: Settings, dbname: str, facts: dict[str, Any],
    found: list[Difference], notes: list[str], prefetch: migrations.Prefetch, *,
    chosen: tuple[str, ...], explicit: bool,
) -> ChainResult:
    """The chain check; what the models or the registry said already is not said again."""
    if "chain" not in chosen:
        result = migrations.not_checked("CHECKS leaves it out")
    else:
        try:
            result = migrations.check(server, settings, dbname, facts, prefetch)
        except migrations.CannotBuild as err:
            if explicit:  # asked for by name: not being able to is an error
                raise
            result = migrations.not_checked(err.message)
    if result.reason is not None:
        notes.append(f"{_CHAIN} ({result.reason})")
    said = {_plain(d.object) for d in found}
    result.differences = [d for d in result.differences if _plain(d.object) not in said]
    return result


def _plain(name: str) -> str:
    """An object's name without a function's arguments (the registry names it either way)."""
    return name.split("(", 1)[0]


def _registry(
    data: dict[str, Any] | None, module: str, settings: Settings, notes: list[str]
) -> Registry | None:
    """The app's registry; a missing one is a note only when nobody asked for it by name."""
    if not module:
        notes.append(f"{_NO_REGISTRY} (APP_OBJECTS is empty: the registry checks are off)")
        return None
    if data is not None:
        return Registry.from_json(module, data)
    if module != DEFAULTS["APP_OBJECTS"]:
        raise ConfigError(
            f"APP_OBJECTS={module}: no such module in the app in {settings.backend_dir} "
            "(leave APP_OBJECTS empty to skip the registry checks)"
        )
    notes.append(f"{_NO_REGISTRY} (no objects registry {module} in the app; "
                 "APP_OBJECTS names it)")
    return None


def _from_database(
    server: Server, dbname: str, facts: dict[str, Any], registry: Registry | None,
    found: list[Difference],
) -> list[Difference]:
    """The declared definitions, and the tables and views in schemas the app does not use.

    Each source speaks for its own kind: the models for tables, the registry for views.
    """
    schemas = {facts["default_schema"], *facts["model_schemas"]}
    if registry is not None:
        schemas |= registry.schemas_used()
    conn = server.connect(dbname, autocommit=False)
    try:
        differences = declared.compare(conn, registry, schemas) if registry else []
        outside = declared.outside_schemas(
            conn, schemas, tables=facts["diff"] is not None, views=registry is not None,
            ignore=[facts["version_table"]],
        )
    except declared.CompareError as err:
        raise DbkitError(f"could not compare definitions in {dbname}: {err}") from None
    finally:
        conn.close()
    # A project whose env.py compares every schema has these from Alembic already.
    seen = {(d.kind, d.object) for d in found}
    return differences + [d for d in outside if (d.kind, d.object) not in seen]


def _not_loadable(
    failure: dict[str, str], settings: Settings, module: str, dbname: str
) -> DbkitError:
    """The child's failure as one line; its traceback rides along for --debug."""
    stage = failure["stage"]
    what = {
        "database": f"cannot read the database {dbname}",
        "app": f"the app in {settings.backend_dir} does not load (env.py or its models)",
        "compare": "Alembic's comparison failed",
        "registry": f"the objects registry {module} does not load",
        "registry shape": f"the objects registry {module} is not usable",
    }.get(stage, "the app does not load")
    where = f" ({failure['where']})" if failure.get("where") else ""
    # The traceback helps where the app's code failed, not where the database said no.
    hint = "" if stage in ("database", "registry shape") else "; --debug shows the traceback"
    kind = DbkitError if stage == "database" else AppNotLoadable
    return kind(f"{what}: {failure['error']}{where}{hint}", trace=failure["traceback"])


# -- the revision ---------------------------------------------------------------------------------

def check_revision(
    current: list[str], heads: list[str], graph: dict[str, list[str]], *, has_table: bool,
    table: str = "public.alembic_version", archived: archive.Archive | None = None,
) -> RevisionCheck:
    """Compare alembic_version (``table``) with the chain: in sync, behind (by how many), ..."""
    current, heads = sorted(current), sorted(heads)
    found: list[Difference] = []
    head_text = ", ".join(heads) or "no revision"
    status = "in sync"
    behind: int | None = None
    if len(heads) > 1:
        status = "several heads"
        found.append(Difference(
            "revision", table, "several heads", ", ".join(current) or "no revision",
            f"one head, but the project has {len(heads)} ({head_text}): merge them",
        ))
    unknown = [rev for rev in current if rev not in graph]
    if not has_table:
        status = "no version table"
        found.append(Difference("revision", table, "no version table",
                                f"no {table} table", f"{head_text} (head)"))
    elif unknown and archived is not None:
        status = "behind"
        found.append(Difference(
            "revision", table, "behind",
            f"{', '.join(current)}, in the archived chain {archived.path} of a squash: "
            "make db-upgrade catches it up",
            f"{head_text} (head)",
        ))
    elif unknown:
        status = "unknown revision"
        found.append(Difference(
            "revision", table, "unknown revision",
            f"{', '.join(unknown)} (not in this chain: newer, deleted or squashed)",
            f"{head_text} (head)",
        ))
    else:
        behind = len(reachable(heads, graph) - reachable(current, graph))
        if behind:
            status = "behind" if status == "in sync" else status
            at = ", ".join(current) or "no revision (base)"
            found.append(Difference(
                "revision", table, "behind",
                f"{at}, {behind} {'revision' if behind == 1 else 'revisions'} behind",
                f"{head_text} (head)",
            ))
    return RevisionCheck(status, current, heads, behind, found)


# -- the models -----------------------------------------------------------------------------------
def from_models(records: list[dict[str, Any]], registry: Registry | None) -> list[Difference]:
    """Alembic's records as differences; an add and a remove of one object become a change."""
    keep = set(registry.migration_only_tables) if registry else set()
    pending: dict[tuple[str, str], list[Difference]] = {}
    for rec in records:
        op, kind, obj = rec["op"], rec["kind"], rec["object"]
        if op == "remove_table" and obj in keep:
            continue  # declared by the app, just not as a model
        problem = _problem(op)
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
            # dbkit's own enum check and a plugin's (alembic-postgresql-enum) may both say it.
            found.extend({(d.problem, d.database, d.app): d for d in diffs}.values())
    return found


def _problem(op: str) -> str:
    """Alembic's operation (or a plugin's: ``create_enum``, ``drop_enum``,
    ``change_enum_variants``) as what the database lacks, has extra, or has otherwise."""
    if op.startswith(("modify_", "change_")) or op.endswith("_comment"):
        return CHANGED
    if op.startswith(("add_", "create_")):
        return MISSING
    if op.startswith(("remove_", "drop_")):
        return EXTRA
    return op


# -- output ---------------------------------------------------------------------------------------
def _checked(facts: dict[str, Any], registry: Registry | None, chain: ChainResult) -> str:
    parts = []
    if facts["diff"] is not None:
        parts.append(f"{facts['model_tables']} model tables")
    if registry is not None:
        parts.append(f"{registry.size()} declared objects")
    if chain.status == migrations.COMPARED:
        parts.append("its migrations")
    return f" ({', '.join(parts)} checked)" if parts else ""


def _print(
    out: Console, dbname: str, revision: RevisionCheck, differences: list[Difference],
    chain: ChainResult, notes: list[str], *, checked: str,
) -> None:
    for kind, diffs in drift.group(differences):
        out.result(out.paint(drift.plural(kind).capitalize(), "bold"))
        _lines(out, diffs)
    if chain.differences:
        out.result(out.paint(_CHAIN[0].upper() + _CHAIN[1:], "bold"))
        _lines(out, _ordered(chain.differences))
    if chain.seed_rows:
        out.result(out.paint("Seed rows changed by hand (warnings, not drift)", "bold"))
        for w in chain.seed_rows:
            out.result(out.paint(f"  {w.line()}", "yellow"))
    if chain.status == migrations.COMPARED:
        how = {"reused": "a cached build", "made": "a fresh build, kept as a template"
               }.get(chain.template or "", "a fresh build in a scratch database")
        out.result(f"Checked: {_CHAIN} at {', '.join(chain.revisions)} ({how})")
    for note in notes:
        out.result(f"Not checked: {note}")
    found = differences + chain.differences
    if found:
        out.result(out.paint(f"Drift in {dbname}: {drift.summary(found)}", "red"))
    else:
        at = ", ".join(revision.heads) or "base"
        out.result(out.paint(f"In sync: {dbname} matches the app at {at}{checked}", "green"))


def _lines(out: Console, diffs: list[Difference]) -> None:
    for d in diffs:
        colour = _PROBLEM_COLOUR.get(d.problem)
        line = f"  {d.line()}"
        out.result(out.paint(line, colour) if colour else line)


def _ordered(differences: list[Difference]) -> list[Difference]:
    return [d for _, diffs in drift.group(differences) for d in diffs]
