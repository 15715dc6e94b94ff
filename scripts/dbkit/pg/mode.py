"""Which server this run talks to (DB_MODE)."""

from __future__ import annotations

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
