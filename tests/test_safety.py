"""Issue 11: backups and restores that cannot be turned against the user. One test per
finding of the hostile review, each reproducing it and asserting the new behaviour."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from backup_helpers import (
    change,
    databases,
    fill,
    folder_state,
    make_project,
    one_line_error,
    state,
    upgrade,
    versions_dir,
)
from squash_helpers import copy_project, squash_env, versions_of

from conftest import BACKEND, run_cli
from dbkit.backup.manifest import read_manifest, write_manifest
from dbkit.files import file_digest
from dbkit.pg import scratch
from dbkit.pg.embedded import EmbeddedServer
from dbkit.project import archive
from dbkit.project import versions as vdir

LATER = '''"""added after the backup

Revision ID: c9d8e7f6a5b4
Revises: b2c3d4e5f6a7
"""

revision = "c9d8e7f6a5b4"
down_revision = "b2c3d4e5f6a7"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
'''


def take(env: dict[str, str], cwd: Path, verb: str = "backup-full") -> Path:
    folder = Path(env["BACKUP_DIR"])
    before = set(folder.iterdir()) if folder.exists() else set()
    result = run_cli([verb], env, cwd=cwd)
    assert result.code == 0, result.err
    (made,) = set(folder.iterdir()) - before
    return made


def previous_databases(server: EmbeddedServer, dbname: str) -> list[str]:
    return sorted(d for d in databases(server) if d.startswith(f"{dbname}_before_restore_"))


@pytest.fixture
def proj(project_dir: Path, pgdata: Path, fresh_db: str, server: EmbeddedServer):
    env = make_project(project_dir, pgdata, fresh_db)
    upgrade(env, server, fresh_db)
    fill(server, fresh_db, genes=60)
    yield env
    for name in previous_databases(server, fresh_db):
        scratch.drop_database(server, name)


def start(verb: str, env: dict[str, str], cwd: Path, pause_at: str) -> subprocess.Popen:
    full = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    full.update(env, DBKIT_TEST_PAUSE_AT=pause_at)
    return subprocess.Popen([sys.executable, "-m", "dbkit", verb], env=full, cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_paused(proc: subprocess.Popen) -> None:
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("dbkit: paused at "):
            return
    proc.wait()
    raise AssertionError(f"ended (exit {proc.returncode}) before pausing")


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


# -- 1. a manifest key that writes outside the versions directory ---------------------------
@pytest.mark.parametrize("verb", ["migration-restore", "restore-full"])
def test_1_a_manifest_key_outside_the_backup_is_refused_and_nothing_is_written(
    proj: dict[str, str], project_dir: Path, server: EmbeddedServer, fresh_db: str, verb: str
) -> None:
    made = take(proj, project_dir)
    m = read_manifest(made)
    (made / "env.py").write_text("print('owned')\n")
    m["files"]["migrations/../env.py"] = file_digest(made / "env.py")
    (made / "manifest.json").write_text(json.dumps(m))  # the attacker's manifest
    (versions_dir(project_dir) / "c9d8e7f6a5b4_later.py").write_text(LATER)
    app = project_dir / "app"
    before = folder_state(app)
    db_before = state(server, fresh_db)
    result = run_cli([verb], {**proj, "BACKUP": made.name, "CONFIRM": "restore"},
                     cwd=project_dir)
    assert result.code == 1, result.out + result.err
    line = one_line_error(result.err)
    assert f"backup {made.name} is damaged" in line
    assert "manifest entry 'migrations/../env.py' goes outside the backup" in line
    assert folder_state(app) == before  # env.py untouched, versions untouched
    assert state(server, fresh_db) == db_before


# -- 2. database and migrations change together or not at all -------------------------------
def _restore_case(proj: dict[str, str], project_dir: Path, server: EmbeddedServer,
                  fresh_db: str) -> tuple[Path, dict[str, Any], dict[str, bytes]]:
    """A backup, then the database and migrations change: what a restore would undo."""
    made = take(proj, project_dir)
    original = state(server, fresh_db), folder_state(versions_dir(project_dir))
    change(server, fresh_db)
    (versions_dir(project_dir) / "c9d8e7f6a5b4_later.py").write_text(LATER)
    return made, original[0], original[1]


def test_2a_a_read_only_mounted_versions_dir_is_refused_before_the_database_is_touched(
    proj: dict[str, str], project_dir: Path, server: EmbeddedServer, fresh_db: str
) -> None:
    if not shutil.which("unshare") or subprocess.run(
            ["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("needs unshare -m (mount namespaces) to mount the versions dir read-only")
    made, _, _ = _restore_case(proj, project_dir, server, fresh_db)
    current = state(server, fresh_db)
    versions = versions_dir(project_dir)
    current_versions = folder_state(versions)
    full = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    full.update(proj, BACKUP=made.name, CONFIRM="restore")
    script = (f'mount --bind "{versions}" "{versions}" && '
              f'mount -o remount,bind,ro "{versions}" && exec "$0" -m dbkit restore-full')
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script, sys.executable], env=full,
                          cwd=project_dir, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "is a mount point: a rename cannot replace it" in one_line_error(proc.stderr)
    assert state(server, fresh_db) == current
    assert previous_databases(server, fresh_db) == []
    assert folder_state(versions) == current_versions
    assert not list(versions.parent.glob(".versions.dbkit-*"))


def test_2b_a_symlinked_versions_dir_is_restored_through_its_target_and_stays_a_link(
    proj: dict[str, str], project_dir: Path, server: EmbeddedServer, fresh_db: str,
    tmp_path: Path
) -> None:
    versions = versions_dir(project_dir)
    target = tmp_path / "elsewhere" / "versions"
    target.parent.mkdir()
    shutil.move(versions, target)
    versions.symlink_to(target)
    made, original, original_versions = _restore_case(proj, project_dir, server, fresh_db)
    result = run_cli(["restore-full"], {**proj, "BACKUP": made.name, "CONFIRM": "restore"},
                     cwd=project_dir)
    assert result.code == 0, result.err
    assert versions.is_symlink() and versions.resolve() == target
    assert folder_state(target) == original_versions
    assert state(server, fresh_db) == original
    assert not list(target.parent.glob(".versions.dbkit-*"))


@pytest.mark.parametrize("step", ["migrations-staged", "swapped"])
def test_2c_killed_around_the_database_swap_both_are_old_or_both_new_after_the_next_run(
    proj: dict[str, str], project_dir: Path, server: EmbeddedServer, fresh_db: str, step: str
) -> None:
    made, original, original_versions = _restore_case(proj, project_dir, server, fresh_db)
    current, current_versions = state(server, fresh_db), folder_state(versions_dir(project_dir))
    proc = start("restore-full", {**proj, "BACKUP": made.name, "CONFIRM": "restore"},
                 project_dir, step)
    wait_paused(proc)
    kill(proc)
    # The next verb that reads the versions directory finishes (or undoes) it, and says so.
    result = run_cli(["history"], proj, cwd=project_dir)
    assert result.code == 0, result.err
    versions_now = folder_state(versions_dir(project_dir))
    if step == "swapped":
        assert "Finished an interrupted restore-full" in result.err
        assert state(server, fresh_db) == original and versions_now == original_versions
    else:
        assert "interrupted before it changed anything" in result.err
        assert state(server, fresh_db) == current and versions_now == current_versions
    assert not list(versions_dir(project_dir).parent.glob(".versions.dbkit-*"))


# -- 3. no password in any output, whatever the DATABASE_URL ---------------------------------
SECRET = "S3cretPw9x"
URL_SHAPES = {
    "typo'd @": f"postgresql://user:{SECRET}/localhost:5432/db",
    "no @": f"postgresql://user:{SECRET}",
    "no scheme": f"user:{SECRET}@localhost:5432/db",
    "bad port": f"postgresql://user:{SECRET}@localhost:notaport/db",
    "port out of range": f"postgresql://user:{SECRET}@127.0.0.1:99999/db",
    "unknown driver": f"postgresql+nodriver://user:{SECRET}@127.0.0.1:1/db",
    "ipv6": f"postgresql://user:{SECRET}@[::1]:1/db",
    "bare ipv6": f"postgresql://user:{SECRET}@::1:1/db",
    "not postgres": f"mysql://user:{SECRET}@127.0.0.1/db",
    "only the password": SECRET,
}


@pytest.mark.parametrize("url", URL_SHAPES.values(), ids=URL_SHAPES.keys())
@pytest.mark.parametrize("argv", [["url"], ["current"], ["validate", "--json"],
                                  ["backup-full"], ["restore-full", "--backup", "x"]])
def test_3_no_malformed_database_url_shows_its_password(
    project_dir: Path, pgdata: Path, url: str, argv: list[str]
) -> None:
    env = {"DB_MODE": "url", "DATABASE_URL": url, "BACKEND_DIR": str(BACKEND),
           "BACKUP_DIR": str(project_dir / "backups"), "NO_COLOR": "1"}
    result = run_cli(argv, env, cwd=project_dir)
    if result.code != 0:
        one_line_error(result.err)
    assert SECRET not in result.out and SECRET not in result.err
    if argv[0] == "validate" and result.out.strip():
        assert SECRET not in json.dumps(json.loads(result.out))


# -- 4. prune keeps the newest across time zones --------------------------------------------
def test_4_prune_keeps_the_newest_by_utc_creation_time_across_time_zones(
    project_dir: Path, pgdata: Path
) -> None:
    env = make_project(project_dir, pgdata, "unused")
    first = take(env, project_dir, "migration-backup")
    # New folder names are UTC, and say the manifest's time.
    created = datetime.fromisoformat(read_manifest(first)["created_at"])
    assert created.utcoffset().total_seconds() == 0
    assert first.name == created.astimezone(timezone.utc).strftime("%Y%m%d_%H%M%S")
    # Two old local-time backups: taken at 07:00 UTC in UTC+5 (name 12:00), then at 09:00 UTC
    # in UTC (name 09:00). By name the older one looks newer.
    folder = first.parent
    older, newer = folder / "20250301_120000", folder / "20250301_090000"
    for path, when in ((older, "2025-03-01T12:00:00+05:00"), (newer, "2025-03-01T09:00:00+00:00")):
        shutil.copytree(first, path)
        m = read_manifest(path)
        m["created_at"] = when
        write_manifest(path, m)
    shutil.rmtree(first)
    listing = run_cli(["backups"], env, cwd=project_dir).out
    assert listing.index(newer.name) < listing.index(older.name)
    result = run_cli(["backup-prune"], {**env, "KEEP": "1", "CONFIRM": "prune"}, cwd=project_dir)
    assert result.code == 0, result.err
    deleting = result.out[result.out.index("Deleting 1:"):]
    assert older.name in deleting and newer.name not in deleting
    assert newer.is_dir() and not older.exists()


# -- 5. one destructive run per database, from any checkout ---------------------------------
def test_5_a_second_checkout_on_the_same_database_is_refused_with_the_holder(
    proj: dict[str, str], project_dir: Path, server: EmbeddedServer, fresh_db: str,
    tmp_path: Path, pgdata: Path
) -> None:
    made = take(proj, project_dir)
    other_dir = tmp_path / "other-checkout"
    other_dir.mkdir()
    other = make_project(other_dir, pgdata, fresh_db)  # another clone, the same database
    before = state(server, fresh_db)
    first = start("restore-full", {**proj, "BACKUP": made.name, "CONFIRM": "restore"},
                  project_dir, "locked")
    try:
        wait_paused(first)
        for verb, extra in (("restore-full", {"BACKUP": made.name, "CONFIRM": "restore"}),
                            ("reset", {"CONFIRM": "reset"})):
            (other_dir / "backups").mkdir(exist_ok=True)
            if verb == "restore-full":
                shutil.copytree(made, other_dir / "backups" / made.name, dirs_exist_ok=True)
            second = run_cli([verb], {**other, **extra}, cwd=other_dir)
            assert second.code == 2, second.err
            line = one_line_error(second.err)
            assert f"dbkit restore-full pid {first.pid} host " in line
            assert f"is running on database {fresh_db}" in line
        assert state(server, fresh_db) == before
    finally:
        kill(first)


# -- 6. a squash killed while swapping ------------------------------------------------------
def test_6a_killed_between_the_two_renames_the_next_read_puts_the_versions_back(
    proj: dict[str, str], project_dir: Path
) -> None:
    versions = versions_dir(project_dir)
    original = folder_state(versions)
    dead = subprocess.Popen(["true"])
    dead.wait()
    versions.rename(versions.with_name(f".versions.dbkit-old-{dead.pid}"))
    result = run_cli(["current"], proj, cwd=project_dir)
    assert result.code == 0, result.err
    assert f"dbkit: Put back {versions}" in result.err
    assert "not in this chain" not in result.out and "b2c3d4e5f6a7" in result.out
    assert folder_state(versions) == original


def test_6b_a_squash_killed_while_replacing_is_finished_by_the_next_run(
    project_dir: Path, pgdata: Path, fresh_db: str
) -> None:
    backend = copy_project(BACKEND, project_dir)
    versions = versions_of(backend)
    old = vdir.file_hashes(versions)
    env = squash_env(pgdata, fresh_db, project_dir, backend, CONFIRM="squash")
    assert run_cli(["upgrade"], env, cwd=project_dir).code == 0
    proc = start("squash", env, project_dir, "squash-replaced")
    wait_paused(proc)
    kill(proc)
    result = run_cli(["current"], env, cwd=project_dir)
    assert result.code == 0, result.err
    (backup,) = [p for p in (project_dir / "backups").iterdir() if not p.name.startswith(".")]
    archived = list((versions.parent / "versions_archived").iterdir())
    assert len(archived) == 1
    assert f"Finished an interrupted squash of {versions}" in result.err
    assert str(archived[0]) in result.err and str(backup / "migrations") in result.err
    kept = vdir.file_hashes(archived[0])
    index = kept.pop("dbkit_archive.json")  # the catch-up's index, written by the recovery too
    assert index and len(kept) > 1 and kept.items() <= old.items()
    assert archive.load(archived[0]).files == kept
    assert len([p for p in versions.glob("*.py") if p.name != "__init__.py"]) == 1
    assert not list(versions.parent.glob(".versions.dbkit-*"))


# -- 7. production spelled otherwise, and protected databases --------------------------------
@pytest.mark.parametrize("extra", [
    {"ENVIRONMENT": "prod-eu"}, {"ENVIRONMENT": "live"}, {"ENVIRONMENT": "prd"},
    {"ENVIRONMENT": "production-2"}, {"ENVIRONMENT": " PROD "}, {"ENVIRONMENT": "Live"},
    {"PROTECTED_DATABASES": "other,dbkit_test_*"},
    {"PROTECTED_DATABASES": "dbkit_test_*", "ALLOW_DESTRUCTIVE": "1"},
], ids=lambda e: ",".join(f"{k}={v}" for k, v in e.items()))
def test_7_production_spellings_and_protected_databases_refuse_reset(
    proj: dict[str, str], project_dir: Path, server: EmbeddedServer, fresh_db: str,
    extra: dict[str, str]
) -> None:
    before = state(server, fresh_db)
    result = run_cli(["reset"], {**proj, "CONFIRM": "reset", **extra}, cwd=project_dir)
    assert result.code == 2
    line = one_line_error(result.err)
    assert "counts as production" in line or "is protected" in line
    assert state(server, fresh_db) == before


# -- 8. files a manifest does not list ------------------------------------------------------
@pytest.mark.parametrize("damage", ["extra file", "dump is a symlink", "folder is a symlink"])
def test_8_a_backup_with_unlisted_files_or_symlinks_is_damaged_everywhere(
    proj: dict[str, str], project_dir: Path, server: EmbeddedServer, fresh_db: str,
    tmp_path: Path, damage: str
) -> None:
    made = take(proj, project_dir)
    if damage == "extra file":
        (made / "migrations" / "zz_extra.py").write_text("# not in the manifest\n")
        entry = "migrations/zz_extra.py is not listed in the manifest"
    elif damage == "dump is a symlink":
        outside = tmp_path / "outside.dump"
        shutil.copy(made / "database_full.dump", outside)
        (made / "database_full.dump").unlink()
        (made / "database_full.dump").symlink_to(outside)  # same bytes: checksums pass
        entry = "database_full.dump is a symbolic link"
    else:
        outside = tmp_path / "migrations"
        shutil.move(made / "migrations", outside)
        (made / "migrations").symlink_to(outside)
        entry = "migrations is a symbolic link"
    change(server, fresh_db)
    before = state(server, fresh_db)
    env = {**proj, "BACKUP": made.name, "CONFIRM": "restore"}
    for verb in ("restore-full", "backup-verify", "migration-restore"):
        result = run_cli([verb], env, cwd=project_dir)
        assert result.code == 1, (verb, result.err)
        line = one_line_error(result.err)
        assert f"backup {made.name} is damaged: {entry}" in line, (verb, line)
    listing = run_cli(["backups"], proj, cwd=project_dir).out
    assert f"damaged: backup {made.name} is damaged: {entry}" in listing
    assert state(server, fresh_db) == before
