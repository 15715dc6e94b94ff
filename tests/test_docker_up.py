"""Docker mode, thin and tested beneath: `db-up` waits for the healthcheck, never a fixed sleep.

No Docker engine runs here, so a stand-in ``docker`` (tests/fakes/docker) answers on PATH.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import pytest

from conftest import REPO, run_dbkit


@pytest.fixture
def docker_env(tmp_path: Path) -> tuple[dict[str, str], Path, Path]:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shutil.copy(REPO / "tests" / "fakes" / "docker", bindir / "docker")
    (bindir / "docker").chmod(0o755)
    compose = tmp_path / "docker-compose.services.yml"
    shutil.copy(REPO / "docker-compose.services.yml", compose)
    state, log = tmp_path / "state.json", tmp_path / "docker.log"
    env = {
        "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
        "DB_MODE": "docker",
        "COMPOSE_FILE": str(compose),
        "POSTGRES_PASSWORD": "pw-not-in-argv",
        "POSTGRES_PORT": str(_free_port()),
        "FAKE_DOCKER_STATE": str(state),
        "FAKE_DOCKER_LOG": str(log),
        "NO_COLOR": "1",
    }
    return env, state, log


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _calls(log: Path) -> list[list[str]]:
    if not log.exists():
        return []
    return [json.loads(line)["argv"] for line in log.read_text().splitlines()]


def test_db_up_starts_the_service_and_waits_for_healthy(docker_env, tmp_path: Path) -> None:
    env, state, log = docker_env
    state.write_text(json.dumps({"state": "absent",
                                 "after_up": ["starting", "starting", "starting", "healthy"]}))
    proc = run_dbkit(["up"], env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Waiting for the healthcheck ... done" in proc.stdout
    calls = _calls(log)
    assert ["docker", "compose", "-f", env["COMPOSE_FILE"], "up", "-d", "postgres"] in calls
    inspects = [c for c in calls if c[1] == "inspect"]
    assert len(inspects) >= 4  # it polled through "starting" rather than sleeping blindly
    assert all("pw-not-in-argv" not in " ".join(c) for c in calls)


def test_db_up_finds_a_running_container(docker_env, tmp_path: Path) -> None:
    env, state, log = docker_env
    state.write_text(json.dumps({"state": "healthy"}))
    proc = run_dbkit(["up"], env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "already running" in proc.stdout
    assert not [c for c in _calls(log) if c[1] == "compose"]


def test_db_up_gives_up_after_the_timeout(docker_env, tmp_path: Path) -> None:
    env, state, _ = docker_env
    state.write_text(json.dumps({"state": "absent", "after_up": ["starting"]}))
    proc = run_dbkit(["up"], {**env, "DB_UP_TIMEOUT": "1"}, cwd=tmp_path)
    assert proc.returncode == 2
    assert "not healthy after 1 s (last state: starting)" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_db_up_reports_an_unhealthy_container(docker_env, tmp_path: Path) -> None:
    env, state, _ = docker_env
    state.write_text(json.dumps({"state": "absent", "after_up": ["starting", "unhealthy"]}))
    proc = run_dbkit(["up"], env, cwd=tmp_path)
    assert proc.returncode == 2
    assert "kidney_genetics_postgres is unhealthy" in proc.stderr


def test_db_up_refuses_a_port_already_in_use(docker_env, tmp_path: Path) -> None:
    env, state, log = docker_env
    state.write_text(json.dumps({"state": "absent"}))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = run_dbkit(["up"], {**env, "POSTGRES_PORT": str(port)}, cwd=tmp_path)
    assert proc.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in proc.stderr
    assert not [c for c in _calls(log) if c[1] == "compose"]


def test_db_down_keeps_the_volume(docker_env, tmp_path: Path) -> None:
    env, state, log = docker_env
    state.write_text(json.dumps({"state": "healthy"}))
    proc = run_dbkit(["down"], env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert ["docker", "compose", "-f", env["COMPOSE_FILE"], "down"] in _calls(log)
    assert not [c for c in _calls(log) if "-v" in c]


def test_auto_mode_uses_docker_when_the_container_runs(docker_env, tmp_path: Path) -> None:
    env, state, _ = docker_env
    state.write_text(json.dumps({"state": "healthy"}))
    proc = run_dbkit(["up"], {**env, "DB_MODE": "auto"}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Container kidney_genetics_postgres already running" in proc.stdout


def test_docker_mode_without_docker_cli_is_one_line(tmp_path: Path) -> None:
    proc = run_dbkit(["up"], {"DB_MODE": "docker", "PATH": "/nonexistent"}, cwd=tmp_path)
    assert proc.returncode == 2
    assert "docker not found on PATH" in proc.stderr


def test_psql_runs_inside_the_container_with_the_password_in_env_only(
    docker_env, tmp_path: Path, server, fresh_db: str
) -> None:
    env, state, log = docker_env
    state.write_text(json.dumps({"state": "healthy"}))
    env = {**env, "FAKE_DOCKER_BIN": str(server.bin_dir),
           "FAKE_DOCKER_PGHOST": str(server.socket_dir), "POSTGRES_USER": "postgres",
           "POSTGRES_DB": fresh_db}
    proc = run_dbkit(["psql"], env, cwd=tmp_path,
                     input="SELECT 'db=' || current_database();\n")
    assert proc.returncode == 0, proc.stderr
    assert f"db={fresh_db}" in proc.stdout
    execs = [c for c in _calls(log) if c[1] == "exec"]
    assert execs and "PGPASSWORD" in execs[0]
    assert "pw-not-in-argv" not in " ".join(" ".join(c) for c in _calls(log))
