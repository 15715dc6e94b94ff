"""Backups against a server that asks for a password: docker mode through the stand-in
``docker`` (tests/fakes/docker), url mode, a wrong password, the server dying mid-dump, and
the password never showing up in any process's argv, log or backup file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from backup_helpers import (
    FAKES,
    NO_FILE,
    PasswordServer,
    change,
    fill,
    make_project,
    manifest,
    one_line_error,
    state,
    upgrade,
)

from conftest import run_dbkit
from dbkit.pg.mode import get_server
from dbkit.pg.server import Server
from dbkit.settings import load_settings

CONTAINER = "kidney_genetics_postgres"


@pytest.fixture(scope="module")
def pw_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PasswordServer]:
    srv = PasswordServer(tmp_path_factory.mktemp("pwserver"))
    srv.init()
    yield srv
    srv.stop("immediate")


@pytest.fixture
def db(pw_server: PasswordServer, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"kg_{request.node.name.split('[')[0][-40:].lower()}"
    pw_server.psql("postgres", f'CREATE DATABASE "{name}"')
    yield name
    pw_server.psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def url_server(pw: PasswordServer, dbname: str) -> Server:
    """How the test itself reaches the password server (for data and checks)."""
    return get_server(load_settings(Path("/"), {"DB_MODE": "url", "DATABASE_URL": pw.url(dbname)},
                                    env_file=NO_FILE))


def docker_env(pw: PasswordServer, project_dir: Path, pgdata: Path, dbname: str,
               tmp_path: Path, state_: dict[str, Any] | None = None) -> dict[str, str]:
    state_file = tmp_path / "docker-state.json"
    state_file.write_text(json.dumps(state_ or {"container": CONTAINER, "state": "healthy"}))
    (project_dir / "docker-compose.services.yml").write_text("services: {}\n")
    return make_project(
        project_dir, pgdata, dbname, DB_MODE="docker", POSTGRES_CONTAINER=CONTAINER,
        POSTGRES_PORT=str(pw.port), POSTGRES_USER=pw.user, POSTGRES_PASSWORD=pw.password,
        COMPOSE_FILE=str(project_dir / "docker-compose.services.yml"),
        PATH=f"{FAKES}{os.pathsep}{os.environ['PATH']}",
        FAKE_DOCKER_STATE=str(state_file), FAKE_DOCKER_LOG=str(tmp_path / "docker.log"),
        FAKE_DOCKER_BIN=str(pw.bin_dir), FAKE_DOCKER_PGHOST=str(pw.socket_dir),
        FAKE_DOCKER_PGPORT=str(pw.port),
    )


def docker_calls(env: dict[str, str]) -> list[list[str]]:
    log = Path(env["FAKE_DOCKER_LOG"])
    return [json.loads(line)["argv"] for line in log.read_text().splitlines()] if log.exists() \
        else []


def assert_no_secret_in(folder: Path, secret: str) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_docker_mode_backs_up_verifies_and_restores_through_docker_exec(
    pw_server: PasswordServer, db: str, project_dir: Path, pgdata: Path, tmp_path: Path
) -> None:
    env = docker_env(pw_server, project_dir, pgdata, db, tmp_path)
    srv = url_server(pw_server, db)
    upgrade({**env, "DB_MODE": "url", "DATABASE_URL": pw_server.url(db)}, srv, db)
    fill(srv, db, genes=100)
    original = state(srv, db)

    made = run_dbkit(["backup-full"], env, cwd=project_dir)
    assert made.returncode == 0, made.stderr
    (folder,) = Path(env["BACKUP_DIR"]).iterdir()
    assert manifest(folder)["mode"] == "docker"
    verified = run_dbkit(["backup-verify", "--backup", folder.name], env, cwd=project_dir)
    assert verified.returncode == 0, verified.stderr

    change(srv, db)
    restored = run_dbkit(["restore-full", "--yes", "--backup", folder.name], env, cwd=project_dir)
    assert restored.returncode == 0, restored.stderr
    assert state(srv, db) == original

    calls = docker_calls(env)
    execs = [c for c in calls if c[1] == "exec"]
    tools = {c[c.index(CONTAINER) + 1] for c in execs}
    assert {"pg_dump", "pg_restore"} <= tools
    for call in execs:
        assert call[2] == "-i" and "PGPASSWORD" in call  # forwarded by name only
    restores = [c for c in execs if "pg_restore" in c and "--list" not in c]
    assert restores and all("-j" not in c for c in restores)  # streamed: one job
    # The file was streamed, never copied into the container.
    assert not [c for c in calls if c[1] == "cp"]
    for call in calls:
        assert pw_server.password not in " ".join(call)
    for result in (made, verified, restored):
        assert pw_server.password not in result.stdout + result.stderr
    assert_no_secret_in(Path(env["BACKUP_DIR"]), pw_server.password)


def test_directory_format_is_refused_in_docker_mode_and_works_in_url_mode(
    pw_server: PasswordServer, db: str, project_dir: Path, pgdata: Path, tmp_path: Path
) -> None:
    """pg_dump -Fd writes a folder inside the container, which docker exec cannot stream:
    one line, nothing written. The same server in url mode: pg_dump -j's workers and
    pg_restore -j get the password from the environment too."""
    env = docker_env(pw_server, project_dir, pgdata, db, tmp_path)
    srv = url_server(pw_server, db)
    urlenv = {**env, "DB_MODE": "url", "DATABASE_URL": pw_server.url(db)}
    upgrade(urlenv, srv, db)
    fill(srv, db, genes=100)
    original = state(srv, db)
    backups = Path(env["BACKUP_DIR"])

    refused = run_dbkit(["backup-full"], {**env, "FORMAT": "directory"}, cwd=project_dir)
    assert refused.returncode == 2
    assert "FORMAT=directory is not available in docker mode" in one_line_error(refused.stderr)
    assert not backups.exists() or not list(backups.iterdir())

    made = run_dbkit(["backup-full", "--format", "directory"], urlenv, cwd=project_dir)
    assert made.returncode == 0, made.stderr
    (folder,) = backups.iterdir()
    assert (folder / "database_full.dir" / "toc.dat").is_file()
    change(srv, db)
    changed = state(srv, db)
    into_docker = run_dbkit(["restore-full", "--yes", "--backup", folder.name], env,
                            cwd=project_dir)
    assert into_docker.returncode == 2
    assert "docker mode cannot stream" in one_line_error(into_docker.stderr)
    assert state(srv, db) == changed
    restored = run_dbkit(["restore-full", "--yes", "--backup", folder.name], urlenv,
                         cwd=project_dir)
    assert restored.returncode == 0, restored.stderr
    assert state(srv, db) == original
    for result in (refused, made, into_docker, restored):
        assert pw_server.password not in result.stdout + result.stderr
    assert_no_secret_in(backups, pw_server.password)


def test_docker_mode_says_when_the_container_is_not_running(
    pw_server: PasswordServer, db: str, project_dir: Path, pgdata: Path, tmp_path: Path
) -> None:
    env = docker_env(pw_server, project_dir, pgdata, db, tmp_path,
                     {"container": CONTAINER, "state": "exited"})
    result = run_dbkit(["backup-full"], env, cwd=project_dir)
    assert result.returncode == 2
    assert f"container {CONTAINER} is exited; run make db-up" in one_line_error(result.stderr)
    assert not Path(env["BACKUP_DIR"]).exists() or not list(Path(env["BACKUP_DIR"]).iterdir())


def url_env(pw: PasswordServer, project_dir: Path, pgdata: Path, dbname: str,
            password: str | None = None) -> dict[str, str]:
    return make_project(project_dir, pgdata, dbname, DB_MODE="url",
                        DATABASE_URL=pw.url(dbname, password))


def test_a_wrong_password_is_one_line_and_writes_nothing(
    pw_server: PasswordServer, db: str, project_dir: Path, pgdata: Path
) -> None:
    env = url_env(pw_server, project_dir, pgdata, db, password="not-the-Password-42")
    result = run_dbkit(["backup-full"], env, cwd=project_dir)
    assert result.returncode == 2
    line = one_line_error(result.stderr)
    assert "password authentication failed" in line
    assert "not-the-Password-42" not in result.stdout + result.stderr
    assert not Path(env["BACKUP_DIR"]).exists() or not list(Path(env["BACKUP_DIR"]).iterdir())


def _block_dump(pw: PasswordServer, dbname: str) -> psycopg2.extensions.connection:
    """Hold a lock pg_dump must wait for: the backup is then reliably mid-dump."""
    srv = url_server(pw, dbname)
    conn = srv.connect(dbname, autocommit=False)
    with conn.cursor() as cur:
        cur.execute("LOCK TABLE evidence IN ACCESS EXCLUSIVE MODE")
    return conn


def _start_backup(env: dict[str, str], cwd: Path) -> subprocess.Popen:
    full = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    full.update(env)
    return subprocess.Popen([sys.executable, "-m", "dbkit", "backup-full"], env=full, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_pg_dump(pw: PasswordServer, dbname: str, proc: subprocess.Popen) -> None:
    srv = url_server(pw, dbname)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        conn = srv.connect("postgres")
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                        "'pg_dump' AND wait_event_type = 'Lock' AND datname = %s", (dbname,))
            waiting = cur.fetchone()[0]
        conn.close()
        if waiting:
            return
        time.sleep(0.1)
    raise AssertionError(f"pg_dump never started waiting: {proc.communicate()}")


def _argv_of_every_process() -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                    errors="replace"))
            except OSError:
                continue
    return found


def test_the_password_never_appears_in_any_argv_or_file(
    pw_server: PasswordServer, db: str, project_dir: Path, pgdata: Path
) -> None:
    env = url_env(pw_server, project_dir, pgdata, db)
    srv = url_server(pw_server, db)
    upgrade(env, srv, db)
    fill(srv, db, genes=50)
    blocker = _block_dump(pw_server, db)
    proc = _start_backup(env, project_dir)
    try:
        _wait_for_pg_dump(pw_server, db, proc)
        everything = _argv_of_every_process()
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        assert any("pg_dump" in argv for argv in everything)  # we looked while it ran
        assert not [a for a in everything if pw_server.password in a]
        assert pw_server.password not in ps
    finally:
        blocker.rollback()
        blocker.close()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert pw_server.password not in out + err
    (folder,) = Path(env["BACKUP_DIR"]).iterdir()
    assert_no_secret_in(folder, pw_server.password)
    assert manifest(folder)["row_counts"]["public.genes"] == 52


def test_the_server_dying_mid_dump_is_one_line_and_leaves_no_backup(
    pw_server: PasswordServer, db: str, project_dir: Path, pgdata: Path
) -> None:
    env = url_env(pw_server, project_dir, pgdata, db)
    srv = url_server(pw_server, db)
    upgrade(env, srv, db)
    fill(srv, db, genes=50)
    blocker = _block_dump(pw_server, db)
    proc = _start_backup(env, project_dir)
    try:
        _wait_for_pg_dump(pw_server, db, proc)
        pw_server.stop("immediate")
        out, err = proc.communicate(timeout=120)
    finally:
        blocker.close()
        pw_server.start()
    assert proc.returncode == 2, err
    line = one_line_error(err)
    assert "pg_dump failed" in line and "the unfinished backup was removed" in line
    assert list(Path(env["BACKUP_DIR"]).iterdir()) == []
