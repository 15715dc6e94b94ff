"""Runs one Alembic operation on the user's project, in a process of its own.

Why a child process: the project's ``env.py`` imports the project's models, configures
logging and may keep module state; a fresh interpreter per operation keeps two projects
(or two versions of one project) from ever meeting in ``sys.modules``.

Input is one JSON object on stdin (``config``, ``op``, ``args``, ``url``, ``result``), so the
database password never appears in argv. The outcome is written as JSON to ``result``.
"""

from __future__ import annotations

import io
import json
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect
from sqlalchemy.pool import NullPool

from dbkit import declared, model_diff


def _with_env(cfg: Config, fn: Any) -> Any:
    """Run the project's env.py with ``fn(rev, context)`` as the migration function."""
    script = ScriptDirectory.from_config(cfg)
    box: dict[str, Any] = {}

    def capture(rev: Any, context: Any) -> list:
        box["value"] = fn(context)
        return []

    with EnvironmentContext(cfg, script, fn=capture, dont_mutate=True):
        script.run_env()
    return box.get("value")


def _describe_diff(diff: Any, dialect: Any = None) -> list[dict[str, str | None]]:
    """One autogenerate difference as plain data (op, object, detail, kind, db, app).

    A column with several changes gives several records, one per change.
    """
    return model_diff.describe(diff, dialect)


def _failing_revision(err: BaseException, script: ScriptDirectory) -> str | None:
    """The revision whose file is deepest in the traceback: the one that broke."""
    try:
        by_path = {Path(s.path).resolve(): s.revision for s in script.walk_revisions()}
    except Exception:  # noqa: BLE001 - a broken chain has no map; the error says enough
        return None
    found = None
    for frame, _ in traceback.walk_tb(err.__traceback__):
        found = by_path.get(Path(frame.f_code.co_filename).resolve(), found)
    return found


@contextmanager
def _connection(url: str) -> Iterator[Any]:
    """A connection with no transaction open, as plain ``alembic`` gives env.py.

    Alembic then runs its own transactions (per run, or per migration when the project asks
    for ``transaction_per_migration``), and ``autocommit_block()`` works. Whatever the
    project's env.py leaves open is committed at the end, like a successful CLI run.
    """
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            yield conn
            if conn.in_transaction():
                conn.commit()
    finally:
        engine.dispose()


def _as_list(value: str | tuple[str, ...] | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _backup_info(
    cfg: Config, script: ScriptDirectory, out: io.StringIO, url: str | None
) -> dict[str, Any]:
    """What a backup records about the project, in one child process instead of four.

    Only the versions directory is required: a backup must still be possible when the chain
    or the app is broken (that is when people need one), so the rest records its error.
    """
    info: dict[str, Any] = {
        "versions_dir": script.versions,  # raises when several version_locations are set
        "heads": None, "history": None, "current": None, "errors": [],
    }
    try:
        info["heads"] = list(script.get_heads())
        command.history(cfg)
        info["history"] = out.getvalue()
    except Exception as err:  # noqa: BLE001 - recorded, the backup goes on
        info["errors"].append(f"alembic history: {type(err).__name__}: {err}")
    if url:
        try:
            with _connection(url) as conn:
                cfg.attributes["connection"] = conn
                info["current"] = list(_with_env(cfg, lambda ctx: ctx.get_current_heads()))
        except Exception as err:  # noqa: BLE001 - recorded, the backup goes on
            info["errors"].append(f"alembic current: {type(err).__name__}: {err}")
    return info


def _validation_facts(
    cfg: Config, script: ScriptDirectory, url: str, registry: str
) -> dict[str, Any]:
    """Everything ``dbkit validate`` needs from the project, in one process and one session.

    The chain (heads, revision graph), the database's revision, Alembic's comparison run
    through the project's env.py, and the app's objects registry. The session is read-only,
    so no hook of the project can write. A failure comes back as data, with the stage it
    happened in: ``database`` (no connection), ``app`` (env.py or the app does not
    import), ``compare``, ``registry``.
    """
    facts: dict[str, Any] = {
        "heads": list(script.get_heads()),
        "graph": {s.revision: _as_list(s.down_revision) for s in script.walk_revisions()},
    }
    stage = ["database"]

    def inspect_db(ctx: Any) -> None:
        stage[0] = "compare"
        facts["has_version_table"] = inspect(ctx.connection).has_table(
            ctx.version_table, schema=ctx.version_table_schema
        )
        facts["current"] = list(ctx.get_current_heads())
        default_schema = ctx.dialect.default_schema_name
        metadata = ctx.opts.get("target_metadata")
        metadatas = metadata if isinstance(metadata, (list, tuple)) else [metadata]
        facts["default_schema"] = default_schema
        tables = [t for m in metadatas if m is not None for t in m.tables.values()]
        facts["model_tables"] = len(tables)
        facts["model_schemas"] = sorted({t.schema or default_schema for t in tables})
        facts["diff"] = None if metadata is None else [
            record for d in compare_metadata(ctx, metadata)
            for record in _describe_diff(d, ctx.dialect)
        ] + model_diff.enum_records([m for m in metadatas if m is not None], ctx.connection,
                                    default_schema)

    engine = create_engine(
        url, poolclass=NullPool,
        connect_args={"options": "-c default_transaction_read_only=on"},
    )
    try:
        with engine.connect() as conn:
            stage[0] = "app"
            cfg.attributes["connection"] = conn
            _with_env(cfg, inspect_db)
            conn.rollback()
        if "current" not in facts:
            raise RuntimeError("env.py never called context.run_migrations() online")
        stage[0] = "registry"
        facts["registry"] = declared.load_registry(registry, str(Path(cfg.config_file_name)
                                                                 .resolve().parent))
    except Exception as err:  # noqa: BLE001 - the parent says what failed, in one line
        text = str(err).strip()
        project = Path(cfg.config_file_name).resolve().parent
        # The deepest line of the project's own code: where the developer has to look.
        frames = [f for f in traceback.extract_tb(err.__traceback__)
                  if Path(f.filename).resolve().is_relative_to(project)]
        where = (f"{Path(frames[-1].filename).resolve().relative_to(project)}, "
                 f"line {frames[-1].lineno}") if frames else None
        facts["failure"] = {
            "stage": stage[0],
            "error": f"{type(err).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": "),
            "where": where,
            "traceback": traceback.format_exc(),
        }
    finally:
        engine.dispose()
    return facts


def _model_diffs(ctx: Any) -> list[dict[str, str | None]] | None:
    """What autogenerate would change to make the database match the models (None: none)."""
    metadata = ctx.opts.get("target_metadata")
    if metadata is None:
        return None
    return [record for d in compare_metadata(ctx, metadata)
            for record in _describe_diff(d, ctx.dialect)]


def _roundtrip(cfg: Config, url: str) -> dict[str, Any]:
    """upgrade head, downgrade base, upgrade head, each committed; what the downgrade left;
    then the models compared with the result (``diff``).

    One process for the squash proof's round trip and model check instead of four (each
    start costs the project's imports). The snapshot after the downgrade is dbkit's.
    """
    from dbkit import catalog

    result: dict[str, Any] = {"after_downgrade": None, "upgrade_again_error": None,
                              "model_diff": None}
    for step in ("upgrade", "downgrade", "snapshot", "upgrade again", "diff"):
        with _connection(url) as conn:
            cfg.attributes["connection"] = conn
            if step == "upgrade":
                command.upgrade(cfg, "head")
            elif step == "downgrade":
                command.downgrade(cfg, "base")
            elif step == "snapshot":
                result["after_downgrade"] = catalog.snapshot(
                    conn.connection.driver_connection)
            elif step == "upgrade again":
                try:
                    command.upgrade(cfg, "head")
                except Exception as err:  # noqa: BLE001 - reported after the leftovers
                    result["upgrade_again_error"] = f"{type(err).__name__}: {err}"
                    break
            else:
                result["model_diff"] = _with_env(cfg, _model_diffs)
    return result


def run(spec: dict[str, Any]) -> dict[str, Any]:
    config_path = Path(spec["config"]).resolve()
    out = io.StringIO()
    cfg = Config(str(config_path), stdout=out)
    # Projects run `alembic` from the directory holding alembic.ini; so do we.
    os.chdir(config_path.parent)
    url = spec.get("url")
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
        os.environ["DATABASE_URL"] = url
    if spec.get("version_locations"):
        # The squash proves a new versions directory before it replaces the project's. Only
        # this one option is split on the deprecated separator, so a path with spaces stays
        # whole; a project that sets path_separator splits on that instead.
        cfg.set_main_option("version_locations", spec["version_locations"].replace("%", "%%"))
        if cfg.get_main_option("path_separator") is None:
            cfg.set_main_option("version_path_separator", "newline")
    op, args = spec["op"], spec.get("args", [])
    script: ScriptDirectory | None = None
    data: Any = None
    try:
        script = ScriptDirectory.from_config(cfg)
        if op == "heads":
            data = list(script.get_heads())
        elif op == "revisions":
            data = [
                {
                    "revision": s.revision,
                    "down_revision": _as_list(s.down_revision),
                    "path": s.path,
                    "doc": s.doc,
                    "branch_labels": sorted(s.branch_labels or ()),
                }
                for s in script.walk_revisions()
            ]
        elif op == "history":
            command.history(cfg)
        elif op == "roundtrip":
            data = _roundtrip(cfg, url)
        elif op == "backup_info":
            data = _backup_info(cfg, script, out, url)
        elif op == "declared":
            data = declared.load_registry(args[0], str(config_path.parent))
        elif op == "validate":
            data = _validation_facts(cfg, script, url, args[0])
        else:
            with _connection(url) as conn:
                cfg.attributes["connection"] = conn
                if op == "upgrade":
                    command.upgrade(cfg, *args)
                elif op == "downgrade":
                    command.downgrade(cfg, *args)
                elif op == "stamp":
                    command.stamp(cfg, *args)
                elif op == "current":
                    data = list(_with_env(cfg, lambda ctx: ctx.get_current_heads()))
                elif op == "diff":
                    data = _with_env(cfg, _model_diffs)
                else:
                    raise ValueError(f"unknown operation {op}")
    except BaseException as err:  # noqa: BLE001 - everything goes back to the parent as data
        return {
            "ok": False,
            "error": _one_line(err),
            "revision": _failing_revision(err, script) if script else None,
            "traceback": traceback.format_exc(),
            "output": out.getvalue(),
        }
    return {"ok": True, "output": out.getvalue(), "data": data}


def _one_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


def main() -> None:
    spec = json.loads(sys.stdin.read())
    # stdout carries only our JSON answer: whatever the project prints goes to stderr.
    answer = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    result = run(spec)
    answer.write(json.dumps(result))
    answer.close()
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
