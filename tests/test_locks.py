"""A session of the app holding a lock never hangs a verb: dbkit's own waits are bounded by
LOCK_WAIT_TIMEOUT, and the one line names the session that holds the lock."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from backup_helpers import fill, make_project, one_line_error, upgrade

from conftest import run_cli
from dbkit.pg import scratch
from dbkit.pg.embedded import EmbeddedServer


@contextmanager
def locked_project(tmp_path: Path, pgdata: Path,
                   server: EmbeddedServer) -> Iterator[tuple[dict[str, str], Path, str]]:
    """A project at head with rows (LOCK_WAIT_TIMEOUT=2): its env, folder and database."""
    project_dir = tmp_path / "project"
    project_dir.mkdir()
    with scratch.scratch_database(server, "locked") as dbname:
        env = make_project(project_dir, pgdata, dbname, LOCK_WAIT_TIMEOUT="2")
        upgrade(env, server, dbname)
        fill(server, dbname, genes=10)
        yield env, project_dir, dbname


@contextmanager
def held_lock(server: EmbeddedServer, dbname: str) -> Iterator[int]:
    """A session ('the-app') holding ACCESS EXCLUSIVE on genes: its pid."""
    holder = server.connect(dbname, autocommit=False)
    try:
        with holder.cursor() as cur:
            cur.execute("SET application_name = 'the-app'")
            cur.execute("LOCK TABLE genes IN ACCESS EXCLUSIVE MODE")
            cur.execute("SELECT pg_backend_pid()")
            yield cur.fetchone()[0]
    finally:
        holder.rollback()
        holder.close()


def test_backup_full_stops_at_a_held_lock_and_names_the_holder(
        tmp_path: Path, pgdata: Path, server: EmbeddedServer) -> None:
    with locked_project(tmp_path, pgdata, server) as (env, project_dir, dbname):
        with held_lock(server, dbname) as pid:
            started = time.monotonic()
            result = run_cli(["backup-full"], env, cwd=project_dir)
            took = time.monotonic() - started
        line = one_line_error(result.err)
        assert result.code == 2, result.err  # it could not run: 2
        assert "waited LOCK_WAIT_TIMEOUT=2s" in line and f"pid {pid} (the-app" in line, line
        assert "AccessExclusiveLock on genes" in line, line
        assert took < 60, took  # not as long as the lock was held: it was never let go
        backups = Path(env["BACKUP_DIR"])
        assert not backups.exists() or not [p for p in backups.iterdir()
                                            if not p.name.startswith(".")]
        # the lock gone, the same command works
        again = run_cli(["backup-full"], env, cwd=project_dir)
        assert again.code == 0, again.err


def test_squash_and_validate_do_not_wait_on_a_held_lock(
        tmp_path: Path, pgdata: Path, server: EmbeddedServer) -> None:
    """A squash dry run and validate read the development database too: bounded the same."""
    results = {}
    with locked_project(tmp_path, pgdata, server) as (env, project_dir, dbname), \
            held_lock(server, dbname):
        for verb in (["squash", "--dry-run"], ["validate"]):
            started = time.monotonic()
            result = run_cli(verb, env, cwd=project_dir)
            results[verb[0]] = (result, time.monotonic() - started)
    for verb, (result, took) in results.items():
        line = one_line_error(result.err)
        assert result.code == 2, (verb, result.err)
        assert "waited LOCK_WAIT_TIMEOUT=2s" in line and "AccessExclusiveLock on genes" in line
        assert "internal error" not in result.err
        assert took < 60, (verb, took)
