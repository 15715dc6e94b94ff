"""docker mode: the compose service; client tools run inside the container, so they always
match the server's major version."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

from dbkit.console import Console, mask
from dbkit.errors import ConfigError, ServerUnreachable, ToolError
from dbkit.pg import tools
from dbkit.pg.server import Server
from dbkit.settings import Settings


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
            tail = mask(tools.stderr_tail(proc.stderr), self.secrets)
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


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False
