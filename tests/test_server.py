"""Reaching PostgreSQL: the embedded server, url mode, client tools and the scratch janitor."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, run_cli, run_dbkit
from dbkit.errors import ServerUnreachable, ToolError
from dbkit.pg import scratch
from dbkit.pg.embedded import EmbeddedServer
from dbkit.pg.mode import get_server
from dbkit.pg.server import UrlServer
from dbkit.pg.tools import embedded_bin_dir
from dbkit.settings import load_settings

NO_FILE = Path("/nonexistent/.env")


def _databases(server: EmbeddedServer) -> set[str]:
    conn = server.connect("postgres")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database")
            return {r[0] for r in cur.fetchall()}
    finally:
        conn.close()


# -- scratch databases ---------------------------------------------------------------------
def test_scratch_database_is_dropped_after_use(server: EmbeddedServer) -> None:
    with scratch.scratch_database(server, "unit") as name:
        assert name in _databases(server)
        server.connect(name).close()
    assert name not in _databases(server)


def test_scratch_database_is_dropped_on_exception_even_with_open_connections(
    server: EmbeddedServer,
) -> None:
    with pytest.raises(RuntimeError), scratch.scratch_database(server, "unit") as name:
        server.connect(name)  # left open on purpose: the janitor must terminate it
        raise RuntimeError("boom")
    assert name not in _databases(server)


def test_scratch_database_is_dropped_on_keyboard_interrupt(server: EmbeddedServer) -> None:
    with pytest.raises(KeyboardInterrupt), scratch.scratch_database(server, "unit") as name:
        raise KeyboardInterrupt
    assert name not in _databases(server)


def test_scratch_database_is_dropped_when_a_process_gets_sigint(
    server: EmbeddedServer, pgdata: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "name"
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from dbkit.pg import scratch\n"
        "from dbkit.pg.embedded import EmbeddedServer\n"
        "from dbkit.settings import load_settings\n"
        f"s = load_settings(Path({str(REPO)!r}), {{'DB_MODE': 'embedded', "
        f"'PGDATA_DIR': {str(pgdata)!r}}}, env_file=Path('/nonexistent'))\n"
        "with scratch.scratch_database(EmbeddedServer(s), 'sig') as name:\n"
        f"    Path({str(marker)!r}).write_text(name)\n"
        "    time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
    for _ in range(200):
        if marker.exists() and marker.read_text():
            break
        subprocess.run(["sleep", "0.05"])
    name = marker.read_text()
    assert name in _databases(server)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)
    assert name not in _databases(server)


def test_stale_scratch_databases_of_dead_processes_are_swept(server: EmbeddedServer) -> None:
    child = subprocess.Popen(["true"])
    child.wait()
    stale = f"dbkit_unit_{child.pid}_deadbeef"
    server.create_database(stale)
    mine = scratch.scratch_name("unit")
    server.create_database(mine)
    try:
        swept = scratch.sweep_stale(server)
        assert stale in swept
        assert mine not in swept
        assert mine in _databases(server)
    finally:
        scratch.drop_database(server, mine)
        scratch.drop_database(server, stale)


def test_swap_renames_both_or_neither(server: EmbeddedServer) -> None:
    with scratch.scratch_database(server, "cur") as cur, scratch.scratch_database(
        server, "new"
    ) as new:
        conn = server.connect(new)
        with conn.cursor() as c:
            c.execute("CREATE TABLE marker (x int)")
        conn.close()
        keep = cur + "_old"
        scratch.swap_databases(server, current=cur, replacement=new, keep_as=keep)
        try:
            assert {cur, keep} <= _databases(server)
            assert new not in _databases(server)
            conn = server.connect(cur)
            with conn.cursor() as c:
                c.execute("SELECT to_regclass('marker') IS NOT NULL")
                assert c.fetchone()[0] is True
            conn.close()
        finally:
            scratch.drop_database(server, keep)


# -- the embedded server ------------------------------------------------------------------
def test_db_up_is_idempotent_and_db_down_stops(tmp_path: Path) -> None:
    env = {"DB_MODE": "embedded", "PGDATA_DIR": str(tmp_path / "pg"), "POSTGRES_DB": "kg",
           "NO_COLOR": "1"}
    first = run_dbkit(["up"], env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "Starting embedded PostgreSQL" in first.stdout
    assert (tmp_path / "pg" / "PG_VERSION").is_file()
    assert oct((tmp_path / "pg").stat().st_mode)[-3:] == "700"
    second = run_dbkit(["up"], env, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "already running" in second.stdout
    url = run_dbkit(["url"], env, cwd=tmp_path)
    assert url.stdout.strip().endswith(f"/kg?host={str(tmp_path / 'pg').replace('/', '%2F')}")
    down = run_dbkit(["down"], env, cwd=tmp_path)
    assert down.returncode == 0, down.stderr
    assert "Stopping embedded PostgreSQL" in down.stdout
    assert not (tmp_path / "pg" / "postmaster.pid").exists()
    again = run_dbkit(["down"], env, cwd=tmp_path)
    assert again.returncode == 0 and "not running" in again.stdout


def test_pgdata_held_by_another_process_is_refused(tmp_path: Path) -> None:
    pgdata = tmp_path / "pg"
    pgdata.mkdir(mode=0o700)
    (pgdata / "PG_VERSION").write_text("18\n")
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        (pgdata / "postmaster.pid").write_text(f"{sleeper.pid}\n{pgdata}\n")
        env = {"DB_MODE": "embedded", "PGDATA_DIR": str(pgdata), "NO_COLOR": "1"}
        res = run_cli(["up"], env, cwd=tmp_path)
        assert res.code == 2
        assert f"in use by process {sleeper.pid}" in res.err
        assert res.err.count("\n") == 1 and "Traceback" not in res.err
    finally:
        sleeper.kill()


def test_pgdata_from_another_major_version_is_refused(tmp_path: Path) -> None:
    pgdata = tmp_path / "pg"
    pgdata.mkdir(mode=0o700)
    (pgdata / "PG_VERSION").write_text("14\n")
    if os.geteuid() == 0:
        import pwd

        user = pwd.getpwnam("dbkit")
        os.chown(pgdata, user.pw_uid, user.pw_gid)
    res = run_cli(["up"], {"DB_MODE": "embedded", "PGDATA_DIR": str(pgdata)}, cwd=tmp_path)
    assert res.code == 2
    assert "holds a PostgreSQL 14 cluster but the binaries are 18" in res.err


def test_auto_mode_picks_embedded_without_docker_or_url(tmp_path: Path) -> None:
    s = load_settings(tmp_path, {"PATH": "/nonexistent"}, env_file=NO_FILE)
    assert isinstance(get_server(s), EmbeddedServer)
    s = load_settings(tmp_path, {"DATABASE_URL": "postgresql://u@h/db"}, env_file=NO_FILE)
    assert isinstance(get_server(s), UrlServer)


# -- url mode ------------------------------------------------------------------------------
def _url_env(server: EmbeddedServer, dbname: str, **extra: str) -> dict[str, str]:
    url = f"postgresql://postgres@/{dbname}?host={server.socket_dir}"
    return {"DB_MODE": "url", "DATABASE_URL": url, "NO_COLOR": "1", **extra}


def test_url_mode_reaches_the_server_and_finds_matching_tools(
    server: EmbeddedServer, fresh_db: str, tmp_path: Path
) -> None:
    s = load_settings(tmp_path, _url_env(server, fresh_db), env_file=NO_FILE)
    srv = get_server(s)
    assert srv.dev_db == fresh_db
    assert srv.tool_version("pg_dump") >= srv.major
    proc = subprocess.run(**_tool_kwargs(srv.tool("psql", ["-Atc", "select current_database()"])))
    assert proc.stdout.strip() == fresh_db


def _tool_kwargs(inv) -> dict:  # noqa: ANN001
    return {"args": inv.argv, "env": inv.env, "capture_output": True, "text": True}


def test_url_that_does_not_answer_is_one_line(tmp_path: Path) -> None:
    env = {"DB_MODE": "url", "DATABASE_URL": "postgresql://u:s3cret@127.0.0.1:1/db"}
    res = run_cli(["url"], env, cwd=tmp_path)
    assert res.code == 2
    assert res.err.startswith("dbkit url: error: cannot connect to database 'db' on 127.0.0.1:1")
    assert "s3cret" not in res.err + res.out


def test_pg_bin_without_pg_dump_is_named(
    server: EmbeddedServer, fresh_db: str, tmp_path: Path
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    s = load_settings(tmp_path, _url_env(server, fresh_db, PG_BIN=str(empty)), env_file=NO_FILE)
    with pytest.raises(ToolError, match=f"pg_dump not found in PG_BIN={empty}"):
        get_server(s).tool("pg_dump", [])


def test_client_older_than_server_is_refused(
    server: EmbeddedServer, fresh_db: str, tmp_path: Path
) -> None:
    old = tmp_path / "oldbin"
    old.mkdir()
    fake = old / "pg_dump"
    fake.write_text("#!/bin/sh\necho 'pg_dump (PostgreSQL) 14.11'\n")
    fake.chmod(0o755)
    s = load_settings(tmp_path, _url_env(server, fresh_db, PG_BIN=str(old)), env_file=NO_FILE)
    with pytest.raises(ToolError, match="pg_dump is older than the server .PostgreSQL 18.*is 14"):
        get_server(s).tool("pg_dump", [])


def test_wrong_password_is_reported_without_it(server: EmbeddedServer, tmp_path: Path) -> None:
    # The embedded server trusts its socket; a TCP-less host that does not exist stands in.
    s = load_settings(
        tmp_path,
        {"DB_MODE": "url", "DATABASE_URL": "postgresql://u:hunter2@/db?host=/nonexistent"},
        env_file=NO_FILE,
    )
    with pytest.raises(ServerUnreachable) as info:
        get_server(s).connect()
    assert "hunter2" not in info.value.message


def test_embedded_binaries_come_from_the_wheel() -> None:
    found = embedded_bin_dir()
    assert found is not None and (found / "pg_dump").is_file()


def test_url_options_such_as_sslmode_are_kept_everywhere(
    server: EmbeddedServer, fresh_db: str, tmp_path: Path
) -> None:
    url = (f"postgresql://postgres@/{fresh_db}?host={server.socket_dir}"
           "&sslmode=prefer&options=-csearch_path%3Daudit")
    s = load_settings(tmp_path, {"DB_MODE": "url", "DATABASE_URL": url}, env_file=NO_FILE)
    srv = get_server(s)
    assert "sslmode=prefer" in srv.url()
    inv = srv.tool("psql", ["-Atc", "SHOW search_path"])
    assert inv.env["PGSSLMODE"] == "prefer"
    assert subprocess.run(**_tool_kwargs(inv)).stdout.strip() == "audit"
    conn = srv.connect()
    with conn.cursor() as cur:
        cur.execute("SHOW search_path")
        assert cur.fetchone()[0] == "audit"
    conn.close()


def test_masking_hides_passwords_without_garbling_text() -> None:
    from dbkit.pg.tools import mask

    assert mask("postgresql://kidney_user:postgres@db/x", ["postgres"]) == (
        "postgresql://kidney_user:***@db/x")
    assert mask("password authentication failed for user a", ["a"]) == (
        "password authentication failed for user ***")
    assert mask("Embedded PostgreSQL already running", ["a"]) == (
        "Embedded PostgreSQL already running")
    assert mask("postgresql://u:S3cr%23t%40x@h/db", ["S3cr#t@x"]) == "postgresql://u:***@h/db"


def test_a_symlinked_socket_directory_is_refused(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60) / "pgdata"  # too long for a socket path
    s = load_settings(tmp_path, {"DB_MODE": "embedded", "PGDATA_DIR": str(deep)},
                      env_file=NO_FILE)
    srv = EmbeddedServer(s)
    victim = tmp_path / "victim"
    victim.mkdir()
    srv.socket_dir.symlink_to(victim)
    try:
        res = run_cli(["up"], {"DB_MODE": "embedded", "PGDATA_DIR": str(deep)}, cwd=tmp_path)
        assert res.code == 2
        assert "is not a private directory of the server's user" in res.err
        assert victim.stat().st_uid == os.geteuid() and not any(victim.iterdir())
    finally:
        srv.socket_dir.unlink()


def test_a_directory_that_is_not_a_cluster_is_never_taken_over(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.txt").write_text("mine")
    res = run_cli(["up"], {"DB_MODE": "embedded", "PGDATA_DIR": str(home)}, cwd=tmp_path)
    assert res.code == 2 and "is not empty and is not a PostgreSQL data directory" in res.err
    assert home.stat().st_uid == os.geteuid()


def test_pgdata_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    afile = tmp_path / "file"
    afile.write_text("x")
    res = run_cli(["up"], {"DB_MODE": "embedded", "PGDATA_DIR": str(afile)}, cwd=tmp_path)
    assert res.code == 2 and "exists and is not a directory" in res.err


def test_no_server_is_started_before_the_alembic_config_is_checked(tmp_path: Path) -> None:
    env = {"DB_MODE": "embedded", "PGDATA_DIR": str(tmp_path / "pg")}
    res = run_cli(["current"], env, cwd=tmp_path)
    assert res.code == 2 and "BACKEND_DIR" in res.err
    assert not (tmp_path / "pg").exists()
