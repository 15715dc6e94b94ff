"""Which server this run talks to (DB_MODE)."""

from __future__ import annotations

from dbkit.errors import DbkitError
from dbkit.pg.docker import DockerServer, docker_container_running
from dbkit.pg.embedded import EmbeddedServer
from dbkit.pg.server import Server, UrlServer
from dbkit.settings import Settings


def resolve_mode(settings: Settings) -> str:
    """``auto``: docker when the compose container runs, else url when set, else embedded."""
    if settings.db_mode != "auto":
        return settings.db_mode
    if docker_container_running(settings):
        return "docker"
    if settings.database_url is not None:
        return "url"
    return "embedded"


def get_server(settings: Settings) -> Server:
    mode = resolve_mode(settings)
    return {"docker": DockerServer, "url": UrlServer, "embedded": EmbeddedServer}[mode](settings)


def chain_server(settings: Settings) -> Server | None:
    """The server whose URL a chain-only run (history, migration backups, no database
    opened) hands over: an env.py that picks its versions folder by the URL's dialect (a
    PostgreSQL and a SQLite chain side by side) must pick the one a database run picks.
    None when the settings name no usable server: such a run needs none."""
    try:
        return get_server(settings)
    except DbkitError:
        return None
