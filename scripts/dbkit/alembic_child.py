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
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool


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


def _describe_diff(diff: Any) -> dict[str, str]:
    """One autogenerate difference as plain data: op, object and a readable detail."""
    if isinstance(diff, list):  # column modifications come as a list of tuples
        diff = diff[0]
    op = diff[0]
    out: dict[str, str] = {"op": op}
    if op in ("add_table", "remove_table"):
        table = diff[1]
        out["object"] = table.fullname
    elif op in ("add_column", "remove_column"):
        out["object"] = f"{diff[1] + '.' if diff[1] else ''}{diff[2]}.{diff[3].name}"
        out["detail"] = str(diff[3].type)
    elif op.startswith("modify_"):
        schema, table, column = diff[1], diff[2], diff[3]
        out["object"] = f"{schema + '.' if schema else ''}{table}.{column}"
        out["detail"] = f"{diff[-2]!r} -> {diff[-1]!r}"
    elif op in ("add_index", "remove_index", "add_constraint", "remove_constraint",
                "add_fk", "remove_fk"):
        obj = diff[1]
        table = getattr(obj, "table", None)
        out["object"] = f"{table.fullname + '.' if table is not None else ''}{obj.name}"
        cols = getattr(obj, "columns", None)
        if cols is not None:
            out["detail"] = ", ".join(str(c.name) for c in cols)
    else:
        out["object"] = ""
        out["detail"] = repr(diff[1:])
    return out


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


def _as_list(value: str | tuple[str, ...] | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


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
        else:
            engine = create_engine(url, poolclass=NullPool)
            try:
                with engine.begin() as conn:
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
                        def diffs(ctx: Any) -> Any:
                            metadata = ctx.opts.get("target_metadata")
                            if metadata is None:
                                return None
                            return [_describe_diff(d) for d in compare_metadata(ctx, metadata)]

                        data = _with_env(cfg, diffs)
                    else:
                        raise ValueError(f"unknown operation {op}")
            finally:
                engine.dispose()
    except BaseException as err:  # noqa: BLE001 - everything goes back to the parent as data
        return {
            "ok": False,
            "error": f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}",
            "revision": _failing_revision(err, script) if script else None,
            "traceback": traceback.format_exc(),
            "output": out.getvalue(),
        }
    return {"ok": True, "output": out.getvalue(), "data": data}


def main() -> None:
    spec = json.loads(sys.stdin.read())
    result = run(spec)
    Path(spec["result"]).write_text(json.dumps(result))
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
