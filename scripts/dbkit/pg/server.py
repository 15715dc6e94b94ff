"""Who owns the PostgreSQL server, and how to reach it: embedded, docker, or any URL.

One ``Server`` object per run. It knows the connection parameters of any database on that
server, starts and stops the server where that is ours to do, and builds client-tool
invocations whose version matches the server (inside the container in docker mode).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from dbkit.console import Console, mask
from dbkit.errors import DbkitError, ServerUnreachable, first_line
from dbkit.pg import tools
from dbkit.retry import retry
from dbkit.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

_LOCAL_HOSTS = {"", "localhost", "127.0.0.1", "::1"}
_CORE_PARAMS = ("host", "port", "user", "password", "dbname")
# libpq options a URL may carry (?sslmode=require ...), and the variables client tools read.
_LIBPQ_ENV = {
    "sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT", "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY", "sslcrl": "PGSSLCRL", "options": "PGOPTIONS",
    "application_name": "PGAPPNAME", "connect_timeout": "PGCONNECT_TIMEOUT",
    "target_session_attrs": "PGTARGETSESSIONATTRS", "channel_binding": "PGCHANNELBINDING",
    "gssencmode": "PGGSSENCMODE", "passfile": "PGPASSFILE", "service": "PGSERVICE",
}
_STARTING = ("the database system is starting up", "the database system is not yet accepting")


class _Starting(Exception):
    """The server is still starting up: worth another try (``args[0]``: the error to give)."""


class Server(ABC):
    """A PostgreSQL server and the way to reach it."""

    mode: str

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    # -- where ------------------------------------------------------------------------------
    @property
    def dev_db(self) -> str:
        """The development database: the one users mean when they say "the database"."""
        return self.settings.postgres_db

    @abstractmethod
    def params(self, dbname: str | None = None) -> dict[str, str]:
        """libpq parameters (host, port, user, password, dbname) for a database here."""

    def is_local(self) -> bool:
        host = self.params().get("host", "")
        return host in _LOCAL_HOSTS or host.startswith("/")

    def url(self, dbname: str | None = None, *, show_password: bool = False) -> str:
        """A SQLAlchemy URL for a database on this server, password masked unless asked."""
        return self.sa_url(dbname).render_as_string(hide_password=not show_password)

    def libpq_url(self, dbname: str | None = None, *, show_password: bool = False) -> str:
        """A libpq connection URI (what ``psql`` and ``pg_dump`` take), password masked
        unless asked. A unix socket goes in ``?host=`` with its port: psql reads no
        SQLAlchemy driver name, and without them tries ``/tmp/.s.PGSQL.5432``."""
        p = self.params(dbname)
        user = quote(p.get("user") or "", safe="")
        if user and p.get("password"):
            user += ":" + (quote(p["password"], safe="") if show_password else "***")
        host, port = p.get("host") or "", p.get("port") or ""
        query = {k: v for k, v in p.items() if k not in _CORE_PARAMS and v}
        netloc = ""
        if host.startswith("/"):
            query = {"host": host, **({"port": port} if port else {}), **query}
        elif host:
            netloc = (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "")
        text = (f"postgresql://{user + '@' if user else ''}{netloc}/"
                f"{quote(p['dbname'], safe='')}")
        if query:
            text += "?" + "&".join(f"{quote(k, safe='')}={quote(v, safe='/')}"
                                   for k, v in query.items())
        return text

    def sa_url(self, dbname: str | None = None) -> URL:
        from sqlalchemy.engine import URL  # only here: importing SQLAlchemy takes a while

        p = self.params(dbname)
        host = p.get("host") or None
        query = {k: v for k, v in p.items() if k not in _CORE_PARAMS and v}
        if host and host.startswith("/"):
            query["host"], host = host, None
        return URL.create(
            "postgresql+psycopg2",
            username=p.get("user") or None,
            password=p.get("password") or None,
            host=host,
            port=int(p["port"]) if p.get("port") and host else None,
            database=p["dbname"],
            query=query,
        )

    @property
    def secrets(self) -> tuple[str, ...]:
        """The password this server is reached with (masked wherever text goes out)."""
        password = self.params().get("password", "")
        return (password,) if password else ()

    # -- connections ------------------------------------------------------------------------
    def connect(
        self, dbname: str | None = None, *, autocommit: bool = True, wait: float = 10.0,
        as_role: tuple[str, str] | None = None, pinned: bool = False,
    ) -> psycopg2.extensions.connection:
        """Connect, retrying while the server says it is starting up; one-line errors.
        ``as_role``: (user, password) instead of the server's own (backup/asrole.py).
        ``pinned``: search_path pg_catalog, pg_temp, so a name or operator of a loaded
        backup's own (``public.!~(name, name)``) never stands in for the catalog's in
        dbkit's queries on it (CVE-2018-1058)."""
        p = {"connect_timeout": "5", "application_name": "dbkit"}
        p.update({k: v for k, v in self.params(dbname).items() if v})
        if as_role is not None:
            p["user"], p["password"] = as_role
        # Every wait on the app's locks is bounded (pg/locks.py), the URL's own options kept.
        seconds = self.settings.lock_wait_timeout
        bound = f"-c lock_timeout={int(seconds * 1000)}" if seconds > 0 else ""
        if pinned:
            bound = f"{bound} -c search_path=pg_catalog,pg_temp".strip()
        if bound:
            p["options"] = f"{p['options']} {bound}" if p.get("options") else bound
        def attempt() -> psycopg2.extensions.connection:
            try:
                conn = psycopg2.connect(**p)
            except psycopg2.OperationalError as err:
                message = mask(str(err).strip().splitlines()[0], self.secrets)
                failure = ServerUnreachable(f"cannot connect to {self.describe(dbname)}: {message}")
                raise (_Starting(failure) if any(s in message for s in _STARTING) else failure) \
                    from None
            conn.autocommit = autocommit
            return conn

        return retry(attempt, attempts=max(1, round(wait / 0.2)), wait=0.2, on=_Starting,
                     give_up=lambda err: err.args[0])

    def describe(self, dbname: str | None = None) -> str:
        p = self.params(dbname)
        where = p.get("host") or "localhost"
        if p.get("port") and not where.startswith("/"):
            where += f":{p['port']}"
        return f"database {p['dbname']!r} on {where} ({self.mode})"

    @cached_property
    def version_num(self) -> int:
        conn = self.connect(self.maintenance_db)
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW server_version_num")
                return int(cur.fetchone()[0])
        finally:
            conn.close()

    @property
    def major(self) -> int:
        return self.version_num // 10000

    @cached_property
    def maintenance_db(self) -> str:
        """A database to connect to for CREATE/DROP/RENAME DATABASE.

        postgres or template1 where the role may connect; the development database only as a
        last resort (it cannot be renamed from a session connected to it).
        """
        for candidate in ("postgres", "template1", self.dev_db):
            try:
                self.connect(candidate, wait=0).close()
                return candidate
            except ServerUnreachable as err:
                last = err
        raise last

    def database_exists(self, dbname: str) -> bool:
        conn = self.connect(self.maintenance_db)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,))
                return cur.fetchone() is not None
        finally:
            conn.close()

    def create_database(self, name: str, *, template: str | None = None) -> None:
        conn = self.connect(self.maintenance_db)
        try:
            with conn.cursor() as cur:
                stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
                if template:
                    stmt += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
                cur.execute(stmt)
        except psycopg2.Error as err:
            raise DbkitError(f"cannot create database {name}: {first_line(err)}") from None
        finally:
            conn.close()

    # -- lifecycle --------------------------------------------------------------------------
    def ensure_running(self, console: Console | None = None) -> None:
        """Make sure the server answers (starting it where that is ours to do)."""
        self.connect(self.maintenance_db).close()

    def start(self, console: Console) -> None:
        self.ensure_running(console)
        console.result(f"PostgreSQL {self.major} ({self.mode}) is up: {self.describe()}")

    def stop(self, console: Console) -> None:
        console.result(f"{self.mode} mode: the server is not ours to stop ({self.describe()})")

    # -- client tools -----------------------------------------------------------------------
    @abstractmethod
    def tool(self, name: str, args: list[str], dbname: str | None = None) -> tools.Invocation:
        """An invocation of a client tool against a database on this server."""

    def _libpq_env(self, dbname: str | None) -> dict[str, str]:
        p = self.params(dbname)
        env = {
            "PGHOST": p.get("host", ""),
            "PGPORT": p.get("port", ""),
            "PGUSER": p.get("user", ""),
            "PGPASSWORD": p.get("password", ""),
            "PGDATABASE": p["dbname"],
        }
        env.update({var: p[key] for key, var in _LIBPQ_ENV.items() if p.get(key)})
        return env


class _LocalToolsServer(Server):
    """Client tools run on this machine, from a directory checked against the server."""

    def _tool_dirs(self) -> tuple[list[Path], bool]:
        return tools.candidate_dirs(self.settings.pg_bin, tools.embedded_bin_dir()), bool(
            self.settings.pg_bin
        )

    def _located(self, name: str) -> tuple[Path, int]:
        """Where ``name`` is and its major version; looked up (and checked) once per run."""
        found = self.__dict__.setdefault("_tools_found", {})
        if name not in found:
            dirs, explicit = self._tool_dirs()
            found[name] = tools.find_tool(name, self.major, dirs, explicit=explicit)
        return found[name]

    def tool_path(self, name: str) -> Path:
        return self._located(name)[0]

    def tool_version(self, name: str) -> int:
        return self._located(name)[1]

    def tool(self, name: str, args: list[str], dbname: str | None = None) -> tools.Invocation:
        return tools.Invocation(
            [str(self.tool_path(name)), *args],
            tools.clean_env(self._libpq_env(dbname or self.dev_db)),
            self.secrets,
        )


class UrlServer(_LocalToolsServer):
    """Any server named by DATABASE_URL; the development database is the URL's."""

    mode = "url"

    @property
    def dev_db(self) -> str:
        assert self.settings.database_url is not None
        return str(self.settings.database_url.database)

    def params(self, dbname: str | None = None) -> dict[str, str]:
        url = self.settings.database_url
        assert url is not None
        host = url.host or str(url.query.get("host") or "")
        options = {k: str(v) for k, v in url.query.items() if k in _LIBPQ_ENV}
        return {
            **options,
            "host": host,
            "port": str(url.port or ""),
            "user": url.username or "",
            "password": str(url.password or ""),
            "dbname": dbname or self.dev_db,
        }
