"""The tour: what dbkit does, on the sample backend, in one command."""

from __future__ import annotations

import time

from dbkit.console import Console
from dbkit.pg import scratch
from dbkit.pg.catalog import object_counts
from dbkit.pg.mode import get_server
from dbkit.project.chain import AlembicProject
from dbkit.settings import Settings
from dbkit.squash import flow as squash
from dbkit.validate import check as validate


def demo(settings: Settings, out: Console) -> None:
    """The tour: build the sample database, validate it, squash its chain (dry run).

    Starts the server, builds the development database from the chain and shows what was
    built, checks it against the app, then squashes the chain into one proven revision in a
    folder of its own: the backend is not changed.
    """
    server = get_server(settings)
    project = AlembicProject(settings, server, out=out)
    out.say(f"dbkit demo on {settings.alembic_config.parent} ({server.mode} mode)")
    server.start(out)
    revisions = project.revisions()
    head = project.single_head()
    out.say(f"Migration chain: {len(revisions)} revisions, head {head}")

    # The honest timing is a build from nothing, so it happens in a scratch database.
    with scratch.scratch_database(server, "demo") as fresh:
        started = time.perf_counter()
        with out.step("Building a fresh database from the whole chain"):
            project.upgrade(fresh, "head")
        took = time.perf_counter() - started
        conn = server.connect(fresh)
        try:
            counts = object_counts(conn)
        finally:
            conn.close()

    with out.step(f"Upgrading the development database {server.dev_db} to head"):
        project.upgrade(server.dev_db, "head")

    out.result("")
    out.result(f"The chain builds in {took:.2f} s:")
    for kind, count in counts.items():
        out.result(f"  {kind:<20} {count}")

    out.result("")
    out.result("Checking the database against the app (make db-validate-schema):")
    validate.run(settings, out)

    # The heart of dbkit: squash the chain into one revision and prove it identical. A dry
    # run writes into a folder of its own and leaves the sample backend as it is.
    out.result("")
    out.result("Squashing the chain (dry run: the backend is not changed):")
    squash.run(settings, out, dry_run=True)
