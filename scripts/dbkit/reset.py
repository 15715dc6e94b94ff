"""Rebuild the development database from the migration chain."""

from __future__ import annotations

from dbkit import scratch
from dbkit.chain import AlembicProject
from dbkit.console import Console
from dbkit.safety import confirm as ask
from dbkit.safety import guard_destructive, project_lock
from dbkit.server import get_server
from dbkit.settings import Settings


def reset(settings: Settings, out: Console, *, confirm: str | None = None) -> None:
    """Drop and rebuild the development database with alembic upgrade head (asks first)."""
    server = get_server(settings)
    project = AlembicProject(settings, server)  # checks the Alembic config before any start
    server.ensure_running(out)
    project.single_head()
    guard_destructive(settings, server, f"reset {server.dev_db}")
    with project_lock(settings, "reset"):
        out.say(f"This deletes every row in {server.describe()} and rebuilds it from the chain.")
        ask(out, word="reset", given=confirm, what=f"reset {server.dev_db}")
        scratch.sweep_stale(server)
        # Build the new database first: if the chain fails, the old one is untouched.
        with scratch.scratch_database(server, "reset") as fresh:
            with out.step("Building a fresh database from the chain"):
                project.upgrade(fresh, "head")
            if server.database_exists(server.dev_db):
                # Named like a scratch database, so a run killed before the drop is swept.
                old = scratch.scratch_name("resetold")
                with out.step(f"Swapping it in for {server.dev_db}"):
                    scratch.swap_databases(server, current=server.dev_db, replacement=fresh,
                                           keep_as=old)
                scratch.drop_resolutely(server, old)
            else:
                scratch.create_database(server, server.dev_db, template=fresh)
    out.result(f"{server.dev_db} rebuilt at {', '.join(project.current(server.dev_db))}")
