"""Runs one Alembic operation on the user's project, in a process of its own.

Why a child process: the project's ``env.py`` imports the project's models, configures
logging and may keep module state; a fresh interpreter per operation (or per session: the
operations of one project on one versions directory) keeps two projects (or two versions of
one project) from ever meeting in ``sys.modules``.

Input is one JSON object per line on stdin (``config``, ``op``, ``args``, ``url``), so the
database password never appears in argv; each is answered by one JSON line on stdout.
"""

from __future__ import annotations

import gc
import io
import json
import os
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from dbkit.validate import model_diff


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


def _model_diffs(ctx: Any) -> list[dict[str, str | None]] | None:
    """What autogenerate would change to make the database match the models (None: none)."""
    metadata = ctx.opts.get("target_metadata")
    return None if metadata is None else model_diff.model_differences(ctx, metadata)


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
    started = time.perf_counter()
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
        elif op == "backup_info":
            data = _backup_info(cfg, script, out, url)
        elif op == "validate":
            data = model_diff.validation_facts(cfg, script, url, args[0], _with_env)
        elif op == "upgrade_sql":
            # Offline (``alembic upgrade --sql``): the SQL, not run; no connection is made.
            cfg.output_buffer = io.StringIO()
            command.upgrade(cfg, args[0], sql=True)
            data = cfg.output_buffer.getvalue()
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
    # The operation's own time: dbkit reports build times without the interpreter's start.
    return {"ok": True, "output": out.getvalue(), "data": data,
            "seconds": time.perf_counter() - started}


def _one_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


def main() -> None:
    # stdout carries only our JSON answers: whatever the project prints goes to stderr.
    answer = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    # One operation per line, answered by one line, until the end of the input: a session
    # (chain.AlembicChild) starts this process early and sends operations as they come.
    failed = False
    for line in iter(sys.stdin.readline, ""):
        if line.strip():
            result = run(json.loads(line))
            failed = failed or not result["ok"]
            answer.write(json.dumps(result) + "\n")
            answer.flush()
    answer.close()
    # Exit without a last collection of everything the project imported (a tenth of a
    # second that dbkit waits for); atexit handlers still run.
    gc.freeze()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
