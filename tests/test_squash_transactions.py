"""The squashed revision's downgrade() under every transaction mode an env.py may choose.

Fixture ``projects/warehouse_shaped``: PyPI's warehouse env.py in shape (SETs on the
connection before ``context.configure()``, so the migrations run in a transaction of
env.py's own; ``transaction_per_migration=True``; an advisory lock) and a schema whose
downgrade takes more than ``drops.RUNTIME_ABOVE`` locks.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg2.errors
import pytest
from squash_helpers import copy_project, dry_run, report_of, squash_env, squashed_file

from conftest import FIXTURES, REPO, SERVER_ENV
from dbkit.console import Console
from dbkit.pg import scratch
from dbkit.pg.embedded import EmbeddedServer
from dbkit.project.chain import MODELS_HOLD_NO_TABLES
from dbkit.settings import load_settings
from dbkit.squash import drops

CASE = FIXTURES / "projects" / "warehouse_shaped"
PROOF = [
    "A and B identical: pg_dump schema, catalog, rows, sequence positions",
    "downgrade() leaves nothing but alembic_version",
    "upgrade() after downgrade() identical to A again",
]


def _versions(backend: Path) -> Path:
    return backend / "catalog" / "migrations" / "versions"


def test_a_big_schema_under_an_env_py_with_its_own_transaction_proves(
        pgdata: Path, fresh_db: str, project_dir: Path, tmp_path: Path) -> None:
    backend = copy_project(CASE, project_dir)
    result, folder = dry_run(squash_env(pgdata, fresh_db, project_dir, backend),
                             project_dir, tmp_path)
    assert result.code == 0, result.err + result.out
    assert folder is not None
    assert report_of(folder)["proof"] == PROOF
    down = squashed_file(folder / "versions").read_text().split("def downgrade() -> None:")[1]
    assert "_drop_all(" in down
    # env.py's MetaData holds no tables: said once, not as a difference per table and enum.
    report = report_of(folder)
    assert report["model_drift"] is None
    assert report["model_drift_note"] == MODELS_HOLD_NO_TABLES
    assert f"  model drift     {MODELS_HOLD_NO_TABLES}" in result.out.splitlines()
    # Where a real squash would archive the old files: in the package, as it will.
    assert ("  dry run: nothing in the project is touched (a real squash archives the old "
            f"files in {backend}/catalog/migrations/versions_archived/<timestamp>/ (beside "
            "versions/, inside the Python package catalog/: it ships with the package unless "
            "your packaging leaves it out))") in result.out.splitlines()


# -- a server whose lock table is small: the decision drop_all takes at run time -------------

SMALL = {"max_locks_per_transaction": "10", "max_connections": "20"}  # documented room: 200


@pytest.fixture(scope="module")
def small_server() -> Iterator[EmbeddedServer]:
    """A server of its own with the smallest lock table PostgreSQL allows, for this module."""
    root = Path(tempfile.mkdtemp(prefix="dbkit-small-locks-"))
    settings = load_settings(REPO, {"DB_MODE": "embedded", "PGDATA_DIR": str(root / "pgdata"),
                                    **SERVER_ENV}, env_file=Path("/nonexistent"))
    srv = EmbeddedServer(settings)
    srv.ensure_running()
    conn = srv.connect("postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        for name, value in SMALL.items():
            cur.execute(f"ALTER SYSTEM SET {name} = {value}")
    conn.close()
    quiet = Console(io.StringIO())
    srv.stop(quiet)
    srv.ensure_running()
    try:
        yield srv
    finally:
        srv.stop(quiet)
        shutil.rmtree(root, ignore_errors=True)


def _small_project(project_dir: Path, *, alembic_owns: bool) -> Path:
    """The warehouse-shaped fixture with 15 tables; ``alembic_owns``: env.py opens no
    transaction of its own (the Alembic template's shape, on psycopg 3)."""
    backend = copy_project(CASE, project_dir)
    first = _versions(backend) / "w1_catalog.py"
    first.write_text(first.read_text().replace("TABLES = 170", "TABLES = 15"))
    if alembic_owns:
        env_py = backend / "catalog" / "migrations" / "env.py"
        text = env_py.read_text()
        text = text.replace('connection.execute(text("SET statement_timeout = 5000"))\n', "")
        text = text.replace('connection.execute(text("SET lock_timeout = 4000"))\n', "")
        text = text.replace('url = options.pop("url")\n    connectable',
                            'url = options.pop("url").replace("+psycopg2:", "+psycopg:")\n'
                            '    connectable')
        assert "SET " not in text and "+psycopg:" in text
        env_py.write_text(text)
    return backend


def _squashed_in_place(small_server: EmbeddedServer, backend: Path, project_dir: Path,
                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A dry run on the small server (proven), its revision put in place of the old ones."""
    monkeypatch.setattr(drops, "RUNTIME_ABOVE", 50)
    db = scratch.scratch_name("test")
    small_server.create_database(db)
    env = squash_env(small_server.pgdata, db, project_dir, backend)
    result, folder = dry_run(env, project_dir, tmp_path)
    assert result.code == 0, result.err + result.out
    assert folder is not None and report_of(folder)["proof"] == PROOF
    proven = squashed_file(folder / "versions")
    assert "_drop_all(" in proven.read_text()
    for old in _versions(backend).glob("*.py"):
        old.unlink()
    shutil.copy(proven, _versions(backend) / proven.name)
    return _versions(backend) / proven.name


def _alembic(backend: Path, server: EmbeddedServer, db: str, *args: str
             ) -> subprocess.CompletedProcess:
    """Plain ``alembic`` on the project, as its owner runs it (URL in alembic.ini)."""
    ini = backend / "alembic.ini"
    url = server.sa_url(db).render_as_string(hide_password=False)
    ini.write_text(ini.read_text().replace(
        "url = %(sqlalchemy.url)s", f"url = {url.replace('%', '%%')}"))
    return subprocess.run([sys.executable, "-m", "alembic", *args], cwd=backend,
                          capture_output=True, text=True, timeout=300)


@contextmanager
def _lock_table_nearly_full(server: EmbeddedServer) -> Iterator[None]:
    """Another session holds all but 200 to 210 entries of the server's lock table: room for
    any one drop statement (DROP EXTENSION citext takes 106), not for all of them at once."""
    conn = server.connect("postgres")
    conn.autocommit = False
    try:
        with conn.cursor() as cur:
            n = 0
            while True:
                cur.execute(f"SAVEPOINT s{n}")
                try:
                    cur.execute("SELECT count(pg_advisory_xact_lock(k)) FROM "
                                "generate_series(%s, %s) k", (n * 10, n * 10 + 9))
                except psycopg2.errors.OutOfMemory:
                    assert n > 40, "the lock table filled too soon"
                    cur.execute(f"ROLLBACK TO SAVEPOINT s{n - 20}")
                    break
                n += 1
        yield
    finally:
        conn.rollback()
        conn.close()


def _tables(server: EmbeddedServer, db: str) -> int:
    conn = server.connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' "
                        "AND tablename <> 'alembic_version'")
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def test_with_no_room_and_alembic_owning_the_transaction_the_drops_are_split(
        small_server: EmbeddedServer, project_dir: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Drops that cannot all be held at once still go, in transactions of their own."""
    backend = _small_project(project_dir, alembic_owns=True)
    _squashed_in_place(small_server, backend, project_dir, tmp_path, monkeypatch)
    with scratch.scratch_database(small_server, "test") as db:
        up = _alembic(backend, small_server, db, "upgrade", "head")
        assert up.returncode == 0, up.stderr
        assert _tables(small_server, db) == 16
        with _lock_table_nearly_full(small_server):
            down = _alembic(backend, small_server, db, "downgrade", "base")
        assert down.returncode == 0, down.stderr
        assert _tables(small_server, db) == 0


def test_with_no_room_in_env_pys_own_transaction_it_stops_saying_what_to_raise(
        small_server: EmbeddedServer, project_dir: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """warehouse's shape: Alembic cannot commit, so the drops run in one transaction; when
    the lock table cannot hold them, the error says why and which setting to raise."""
    backend = _small_project(project_dir, alembic_owns=False)
    _squashed_in_place(small_server, backend, project_dir, tmp_path, monkeypatch)
    with scratch.scratch_database(small_server, "test") as db:
        up = _alembic(backend, small_server, db, "upgrade", "head")
        assert up.returncode == 0, up.stderr
        with _lock_table_nearly_full(small_server):
            down = _alembic(backend, small_server, db, "downgrade", "base")
        assert down.returncode != 0
        line = down.stderr.strip().splitlines()[-1]
        assert line.startswith("RuntimeError: downgrade() of w2_views needs about "), line
        assert "the server's lock table ran out (max_locks_per_transaction = 10 x 20 " \
               "connection slots); env.py runs the migrations in a transaction of its own" in line
        assert "Raise max_locks_per_transaction to " in line
        assert _tables(small_server, db) == 16  # nothing was dropped
