"""The small everyday verbs: start/stop the server, where is the database, upgrade, look."""

from __future__ import annotations

import os
from pathlib import Path

from dbkit.console import Console
from dbkit.errors import ChainBuildFailed, ConfigError, DbkitError
from dbkit.pg.docker import DockerServer
from dbkit.pg.embedded import EmbeddedServer
from dbkit.pg.mode import chain_server, get_server
from dbkit.pg.server import Server
from dbkit.project import archive
from dbkit.project.chain import AlembicProject
from dbkit.settings import Settings


def up(settings: Settings, out: Console) -> None:
    """Start the PostgreSQL server (embedded, or the compose service); finds a running one."""
    get_server(settings).start(out)


def down(settings: Settings, out: Console) -> None:
    """Stop the PostgreSQL server dbkit started (data is kept)."""
    get_server(settings).stop(out)


URL_FORMATS = ("sqlalchemy", "libpq")


def url(settings: Settings, out: Console, *, show_password: bool = False,
        format: str = "sqlalchemy") -> None:  # noqa: A002 - FORMAT, as for backup-full
    """Print the development database's connection URL (password masked unless asked).

    FORMAT=sqlalchemy (default): what an app's DATABASE_URL takes; FORMAT=libpq: what psql,
    pg_dump and other libpq tools take (``psql "$(make -s db-url FORMAT=libpq)"``).
    """
    kind = format.strip().lower()
    if kind not in URL_FORMATS:
        raise ConfigError(f"FORMAT={format!r} is not one of {', '.join(URL_FORMATS)}")
    server = get_server(settings)
    server.ensure_running(out)
    text = (server.libpq_url(show_password=show_password) if kind == "libpq"
            else server.url(show_password=show_password))
    if show_password:
        out.out.write(text + "\n")  # asked for in so many words: bypass masking
    else:
        out.result(text)


def psql(settings: Settings, out: Console) -> None:
    """Open a psql session on the development database (in any mode)."""
    server = get_server(settings)
    if isinstance(server, EmbeddedServer):
        server.ensure_running(out)  # ours to start; elsewhere psql reports its own errors
    inv = server.tool("psql", [])
    if isinstance(server, DockerServer) and os.isatty(0):
        inv.argv.insert(2, "-t")  # docker exec needs a tty for an interactive psql
    os.execvpe(inv.argv[0], inv.argv, inv.env)


def upgrade(settings: Settings, out: Console, *, revision: str = "head",
            sql: bool = False) -> None:
    """Apply migrations to the development database (alembic upgrade REVISION, default head).

    A database at a revision a squash replaced catches up through the archived chain
    (versions_archived/), stage by stage, then the versions directory. SQL=1 prints the SQL of
    the whole upgrade (Alembic's offline mode) for review instead of running it.
    """
    server = get_server(settings)
    # Checks the Alembic config and the interpreter before any start.
    project = AlembicProject(settings, server, out=out)
    server.ensure_running(out)
    db = server.dev_db
    exists = server.database_exists(db)
    stages = archive.stages_for(project, db, target=revision, current=None if exists else [])
    if sql:
        out.out.write(archive.offline_sql(settings, server, db, stages))
        return
    if not exists:
        server.create_database(db)
        out.say(f"Created database {db}")
    try:
        if len(stages) == 1:
            with out.step(f"Upgrading {db} to {revision}"):
                project.upgrade(db, revision)
        else:
            out.say(f"{db} is at {', '.join(stages[0].start)}, a revision a squash replaced: "
                    f"it catches up in {len(stages)} stages")
            archive.catch_up(settings, server, db, stages, out)
    except ChainBuildFailed as err:
        raise _stopped(err, server, project, db) from None
    out.result(f"{db} is at {', '.join(project.current(db)) or 'base'}")


def _stopped(err: ChainBuildFailed, server: Server, project: AlembicProject,
             db: str) -> ChainBuildFailed:
    """The failure, and where the database stopped: the revisions before the failing one
    stay applied, and the next upgrade goes on from there."""
    try:
        at = ", ".join(project.current(db)) or "base"
    except DbkitError:
        return err
    err.message = (f"{err.message}; {db} stopped at {at} (what ran before stays); fix the "
                   "revision and run make db-upgrade again: it goes on from there")
    return err


def current(settings: Settings, out: Console) -> None:
    """Show the development database's Alembic revision and whether it is the head."""
    server = get_server(settings)
    project = AlembicProject(settings, server, out=out)
    server.ensure_running(out)
    _require_database(server)
    revs = project.current(server.dev_db)
    revisions = project.revisions()
    known = {r.revision for r in revisions}
    heads = set(project.heads())
    # The folder env.py really loads (it may pick its own): its archives are beside it.
    versions_dir = revisions[0].path.parent if revisions else None
    if not revs:
        out.result("base (no revision applied)")
    for rev in revs:
        state = "head" if rev in heads else "behind head" if rev in known else _unknown(
            settings, rev, versions_dir)
        out.result(f"{rev} ({state})")


def _require_database(server: Server) -> None:
    """One line, as validate says it, instead of the driver's connection error."""
    if not server.database_exists(server.dev_db):
        raise ConfigError(f"{server.describe(server.dev_db)} does not exist: no revision to "
                          "show (make db-upgrade creates it and applies the migrations)")


def _unknown(settings: Settings, rev: str, versions_dir: Path | None) -> str:
    held = (archive.where(archive.archives(versions_dir), [rev]) if versions_dir else None) \
        or archive.holding(settings.alembic_config.parent, [rev])
    if held is not None:
        return (f"in the archived chain {held.path}, before a squash: `make db-upgrade` "
                "catches it up")
    return "not in this chain: newer, deleted or squashed"


def history(settings: Settings, out: Console) -> None:
    """Show the migration history (alembic history)."""
    out.result(AlembicProject(settings, chain_server(settings), out=out)
               .history_text().rstrip())
