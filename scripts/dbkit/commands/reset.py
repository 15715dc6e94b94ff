"""Rebuild the development database from the migration chain."""

from __future__ import annotations

from dbkit.console import Console
from dbkit.pg import scratch
from dbkit.pg.mode import get_server
from dbkit.project.chain import AlembicProject
from dbkit.safety import confirm as ask
from dbkit.safety import destructive_lock, guard_destructive
from dbkit.settings import Settings


def reset(settings: Settings, out: Console, *, confirm: str | None = None) -> None:
    """Drop and rebuild the development database with alembic upgrade head (asks first)."""
    server = get_server(settings)
    # Checks the Alembic config and the interpreter before any start.
    project = AlembicProject(settings, server, out=out)
    server.ensure_running(out)
    project.single_head()
    guard_destructive(settings, server, f"reset {server.dev_db}")
    with destructive_lock(settings, server, "reset"):
        out.say(f"This deletes every row in {server.describe()} and rebuilds it from the chain.")
        ask(out, word="reset", given=confirm, what=f"reset {server.dev_db}")
        scratch.sweep_stale(server)
        scratch.rebuild(server, server.dev_db, lambda db: project.upgrade(db, "head"), out)
    out.result(f"{server.dev_db} rebuilt at {', '.join(project.current(server.dev_db))}")
