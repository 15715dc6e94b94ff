"""Backups: what a backup holds, that it is private and complete or absent, listing, verify,
prune. Against the real embedded server, on a small project with real rows."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from backup_helpers import (
    TtyInput,
    execute,
    fill,
    folder_state,
    make_project,
    manifest,
    one_line_error,
    state,
    upgrade,
    versions_dir,
)

from conftest import REPO, run_cli
from dbkit import cli, safety
from dbkit.files import file_digest
from dbkit.pg import catalog
from dbkit.pg.embedded import EmbeddedServer
from dbkit.settings import load_settings


@pytest.fixture
def proj(project_dir: Path, pgdata: Path, fresh_db: str,
         server: EmbeddedServer) -> dict[str, str]:
    """A project with the fixture app, its database at head and filled with rows."""
    env = make_project(project_dir, pgdata, fresh_db)
    upgrade(env, server, fresh_db)
    fill(server, fresh_db, genes=120)
    return env


def backups_of(env: dict[str, str]) -> list[Path]:
    folder = Path(env["BACKUP_DIR"])
    return sorted(p for p in folder.iterdir()) if folder.exists() else []


def take(env: dict[str, str], cwd: Path, *argv: str) -> Path:
    before = set(backups_of(env))
    result = run_cli(["backup-full", *argv], env, cwd=cwd)
    assert result.code == 0, result.err
    (made,) = set(backups_of(env)) - before
    return made


def test_full_backup_holds_everything_and_describes_it(
    proj: dict[str, str], project_dir: Path, server: EmbeddedServer, fresh_db: str
) -> None:
    made = take(proj, project_dir)
    names = {p.relative_to(made).as_posix() for p in made.rglob("*")}
    assert names == {
        "migrations", "migrations/a1b2c3d4e5f6_catalogue.py",
        "migrations/b2c3d4e5f6a7_audit_and_views.py", "database_full.dump", "schema.sql",
        "migration_history.txt", "current_revision.txt", "manifest.json",
    }
    assert (made / "migrations" / "a1b2c3d4e5f6_catalogue.py").read_bytes() == (
        versions_dir(project_dir) / "a1b2c3d4e5f6_catalogue.py").read_bytes()
    assert (made / "current_revision.txt").read_text() == "b2c3d4e5f6a7 (head)\n"
    assert "a1b2c3d4e5f6 -> b2c3d4e5f6a7 (head)" in (made / "migration_history.txt").read_text()
    schema = (made / "schema.sql").read_text()
    assert "CREATE TABLE audit.change_log" in schema and "COPY public.genes" not in schema
    assert (made / "database_full.dump").read_bytes()[:5] == b"PGDMP"

    m = manifest(made)
    assert m["kind"] == "full" and m["format_version"] == 1 and m["dump_format"] == "custom"
    assert m["database"] == fresh_db and m["mode"] == "embedded"
    assert m["alembic_heads"] == ["b2c3d4e5f6a7"] and m["current_revision"] == ["b2c3d4e5f6a7"]
    assert m["server_version"].startswith(str(server.major))
    assert int(m["pg_dump_version"].split(".")[0]) >= server.major  # the newest client
    assert m["tool_version"] and m["git_commit"] is None  # the copied project is no git repo
    datetime.fromisoformat(m["created_at"])
    assert made.name == datetime.fromisoformat(m["created_at"]).strftime("%Y%m%d_%H%M%S")
    assert m["duration_s"] >= 0
    conn = server.connect(fresh_db)
    try:
        assert m["row_counts"] == catalog.table_row_counts(conn)
        assert m["schema_fingerprint"] == catalog.fingerprint(conn)
    finally:
        conn.close()
    assert m["row_counts"]["public.genes"] == 122 and m["row_counts"]["audit.change_log"] > 0
    # Every file but the manifest itself, with its real size and sha256.
    assert set(m["files"]) == {n for n in names if n not in ("migrations", "manifest.json")}
    for rel, facts in m["files"].items():
        assert file_digest(made / rel) == facts, rel


def test_backups_are_private(proj: dict[str, str], project_dir: Path) -> None:
    made = take(proj, project_dir)
    assert stat.S_IMODE(Path(proj["BACKUP_DIR"]).stat().st_mode) == 0o700
    for path in [made, *made.rglob("*")]:
        expected = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == expected, path


def test_plain_format_writes_the_seed_sql_file(proj: dict[str, str], project_dir: Path) -> None:
    made = take(proj, project_dir, "--format", "plain")
    assert (made / "database_full.sql").is_file() and not (made / "database_full.dump").exists()
    assert "COPY public.genes" in (made / "database_full.sql").read_text()
    assert manifest(made)["dump_format"] == "plain"


def test_directory_format_checksums_every_file_and_verifies(
    proj: dict[str, str], project_dir: Path, server: EmbeddedServer, fresh_db: str
) -> None:
    """FORMAT=directory: pg_dump -Fd -j into database_full.dir/, every file in the manifest,
    private, listed by db-backups, verified like a custom archive."""
    made = take(proj, project_dir, "--format", "directory")
    folder = made / "database_full.dir"
    assert folder.is_dir() and not (made / "database_full.dump").exists()
    inside = {p.relative_to(made).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert "database_full.dir/toc.dat" in inside and len(inside) >= 4  # one per table
    m = manifest(made)
    assert m["dump_format"] == "directory"
    assert inside <= set(m["files"])
    for rel in inside:
        assert file_digest(made / rel) == m["files"][rel], rel
    for path in [folder, *folder.rglob("*")]:
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path
    listed = [ln for ln in run_cli(["backups"], proj, cwd=project_dir).out.splitlines()
              if ln.startswith(made.name)]
    assert listed[0].split()[1] == "full-dir"

    result = run_cli(["backup-verify", "--backup", made.name], proj, cwd=project_dir)
    assert result.code == 0, result.err
    assert "pg_restore --list" in result.out and f"Backup {made.name} is good" in result.out
    assert manifest(made)["verification"]["ok"] is True


@pytest.mark.parametrize("damage", ["tamper", "extra", "remove"])
def test_a_damaged_directory_dump_is_refused(
    proj: dict[str, str], project_dir: Path, server: EmbeddedServer, fresh_db: str, damage: str
) -> None:
    made = take(proj, project_dir, "--format", "directory")
    execute(server, fresh_db, "DELETE FROM evidence")
    before = state(server, fresh_db)
    folder = made / "database_full.dir"
    data_file = max((p for p in folder.iterdir() if p.name != "toc.dat"),
                    key=lambda p: p.stat().st_size)
    rel = data_file.relative_to(made).as_posix()
    if damage == "tamper":  # the same size, one byte different
        data = bytearray(data_file.read_bytes())
        data[len(data) // 2] ^= 0x01
        data_file.write_bytes(bytes(data))
        expected = f"{rel}: sha256 does not match"
    elif damage == "extra":
        (folder / "9999.dat.gz").write_bytes(b"not from pg_dump")
        expected = "database_full.dir/9999.dat.gz is not listed in the manifest"
    else:
        data_file.unlink()
        expected = f"{rel}: missing"
    verify = run_cli(["backup-verify", "--backup", made.name], proj, cwd=project_dir)
    assert verify.code == 1 and expected in one_line_error(verify.err)
    restore = run_cli(["restore-full", "--yes", "--backup", made.name], proj, cwd=project_dir)
    assert restore.code == 1 and expected in one_line_error(restore.err)
    assert state(server, fresh_db) == before


def test_unknown_format_is_refused(proj: dict[str, str], project_dir: Path) -> None:
    result = run_cli(["backup-full"], {**proj, "FORMAT": "tar"}, cwd=project_dir)
    assert result.code == 2
    assert "FORMAT='tar' is not one of custom, plain" in one_line_error(result.err)
    assert not Path(proj["BACKUP_DIR"]).exists() or not backups_of(proj)


def test_migration_backup_needs_no_database(project_dir: Path, pgdata: Path) -> None:
    env = make_project(project_dir, pgdata, "no_such_database_here")
    result = run_cli(["migration-backup"], env, cwd=project_dir)
    assert result.code == 0, result.err
    (made,) = backups_of(env)
    assert sorted(p.name for p in made.iterdir()) == [
        "manifest.json", "migration_history.txt", "migrations"]
    m = manifest(made)
    assert m["kind"] == "migrations" and m["current_revision"] is None
    assert sorted(m["files"]) == ["migration_history.txt",
                                  "migrations/a1b2c3d4e5f6_catalogue.py",
                                  "migrations/b2c3d4e5f6a7_audit_and_views.py"]
    assert f"Migrations backed up to {made}" in result.out


def test_migration_backup_skips_caches_and_keeps_subfolders(project_dir: Path,
                                                            pgdata: Path) -> None:
    env = make_project(project_dir, pgdata, "unused")
    versions = versions_dir(project_dir)
    (versions / "__pycache__").mkdir()
    (versions / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (versions / "2024").mkdir()
    (versions / "2024" / "README").write_text("notes\n")
    assert run_cli(["migration-backup"], env, cwd=project_dir).code == 0
    (made,) = backups_of(env)
    assert (made / "migrations" / "2024" / "README").read_text() == "notes\n"
    assert not any("pycache" in p.as_posix() for p in made.rglob("*"))


def test_backups_in_the_same_second_do_not_collide(project_dir: Path, pgdata: Path) -> None:
    env = make_project(project_dir, pgdata, "unused")
    folder = Path(env["BACKUP_DIR"])
    folder.mkdir()
    now = datetime.now()
    # Every name of the next seconds is taken: whenever the backup runs, it must add a suffix.
    taken = {(now + timedelta(seconds=s)).strftime("%Y%m%d_%H%M%S") for s in range(-1, 30)}
    for name in taken:
        (folder / name).mkdir()
    for _ in range(2):
        assert run_cli(["migration-backup"], env, cwd=project_dir).code == 0
    made = sorted(p.name for p in folder.iterdir() if p.name not in taken)
    assert len(made) == 2
    assert made[0].rsplit("_", 1)[0] in taken and made[0].endswith("_2")
    assert made[1].endswith("_2") or made[1].endswith("_3")


def test_backup_dir_may_live_outside_the_project(proj: dict[str, str], project_dir: Path,
                                                 tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere" / "deep" / "backups"
    env = {**proj, "BACKUP_DIR": str(elsewhere)}
    made = take(env, project_dir)
    assert made.parent == elsewhere and manifest(made)["kind"] == "full"


def test_a_failing_backup_leaves_nothing_behind(proj: dict[str, str], project_dir: Path,
                                                server: EmbeddedServer, fresh_db: str) -> None:
    # pg_dump fails on a table it may not read; the draft folder must go with it.
    execute(server, fresh_db, "CREATE ROLE dbkit_test_reader_backup LOGIN",
            "CREATE TABLE secret_stuff (x int)", "REVOKE ALL ON secret_stuff FROM PUBLIC")
    try:
        env = {**proj, "DB_MODE": "url", "PG_BIN": "",  # (make test-matrix sets it)
               "DATABASE_URL": f"postgresql://dbkit_test_reader_backup@/{fresh_db}"
                               f"?host={server.socket_dir}"}
        result = run_cli(["backup-full"], env, cwd=project_dir)
    finally:
        execute(server, "postgres", "DROP OWNED BY dbkit_test_reader_backup")
        execute(server, fresh_db, "DROP TABLE secret_stuff",
                "DROP OWNED BY dbkit_test_reader_backup", "DROP ROLE dbkit_test_reader_backup")
    assert result.code != 0
    line = one_line_error(result.err)
    assert "permission denied" in line and "the unfinished backup was removed" in line
    assert backups_of(proj) == []


def test_a_backup_survives_a_broken_chain(proj: dict[str, str], project_dir: Path) -> None:
    (versions_dir(project_dir) / "c3d4_broken.py").write_text(
        'revision = "c3d4"\ndown_revision = "nope"\n')
    made = take(proj, project_dir)
    m = manifest(made)
    assert m["alembic_errors"] and "nope" in " ".join(m["alembic_errors"])
    assert (made / "migrations" / "c3d4_broken.py").is_file()
    assert "unknown: alembic history failed" in (made / "migration_history.txt").read_text()


@pytest.fixture
def tiny_backup_dir(tmp_path: Path):
    """A 64 KB tmpfs: a disk that fills up in the middle of a backup (needs root)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs",
                           str(mount)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_fails_in_one_line_and_leaves_no_backup(
    proj: dict[str, str], project_dir: Path, tiny_backup_dir: Path, server: EmbeddedServer,
    fresh_db: str,
) -> None:
    fill(server, fresh_db, genes=600, prefix="H")  # well over 64 KB of dump
    env = {**proj, "BACKUP_DIR": str(tiny_backup_dir)}
    result = run_cli(["backup-full"], env, cwd=project_dir)
    assert result.code == 2
    line = one_line_error(result.err)
    assert "No space left on device" in line and "the unfinished backup was removed" in line
    assert list(tiny_backup_dir.iterdir()) == []


def test_an_unwritable_backup_dir_is_one_line(proj: dict[str, str], project_dir: Path) -> None:
    blocker = project_dir / "not_a_dir"
    blocker.write_text("")
    result = run_cli(["backup-full"], {**proj, "BACKUP_DIR": str(blocker / "b")},
                     cwd=project_dir)
    assert result.code == 2
    assert "cannot write to BACKUP_DIR" in one_line_error(result.err)


def test_a_killed_backups_leftovers_are_swept_and_never_listed(
    proj: dict[str, str], project_dir: Path
) -> None:
    folder = Path(proj["BACKUP_DIR"])
    folder.mkdir()
    leftover = folder / f".tmp-backup-20200101_000000-{_dead_pid()}-0123abcd"
    leftover.mkdir()
    (leftover / "database_full.dump").write_bytes(b"PGDMP half")
    listed = run_cli(["backups"], proj, cwd=project_dir)
    assert "20200101" not in listed.out
    take(proj, project_dir)
    assert not leftover.exists()


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_backups_lists_newest_first_with_kind_size_revision_verified(
    proj: dict[str, str], project_dir: Path
) -> None:
    folder = Path(proj["BACKUP_DIR"])
    folder.mkdir()
    (folder / "20000101_000000").mkdir()  # a seed-era folder: no manifest
    (folder / "20000101_000000" / "database_full.sql").write_text("-- old\n")
    (folder / "README").write_text("not a backup\n")
    first = take(proj, project_dir)
    before = set(backups_of(proj))
    assert run_cli(["migration-backup"], proj, cwd=project_dir).code == 0
    (second,) = set(backups_of(proj)) - before
    assert run_cli(["backup-verify", "--backup", first.name], proj, cwd=project_dir).code == 0
    out = run_cli(["backups"], proj, cwd=project_dir).out
    lines = [ln for ln in out.splitlines() if ln[:1].isdigit()]
    assert [ln.split()[0] for ln in lines] == [second.name, first.name, "20000101_000000"]
    assert lines[0].split()[1] == "migrations" and "not verified" in lines[0]
    assert lines[1].split()[1] == "full" and "KB" in lines[1] and "b2c3d4e5f6a7" in lines[1]
    assert lines[1].endswith("verified") and "not" not in lines[1]
    assert "damaged" in lines[2] and "no manifest.json" in lines[2]
    assert "README" not in out


def test_verify_checks_everything_and_records_the_result(
    proj: dict[str, str], project_dir: Path
) -> None:
    made = take(proj, project_dir)
    result = run_cli(["backup-verify"], {**proj, "BACKUP": made.name}, cwd=project_dir)
    assert result.code == 0, result.err
    assert "pg_restore --list" in result.out and "entries" in result.out
    assert f"Backup {made.name} is good" in result.out
    check = manifest(made)["verification"]
    assert check["ok"] is True and datetime.fromisoformat(check["verified_at"])
    assert stat.S_IMODE((made / "manifest.json").stat().st_mode) == 0o600


@pytest.mark.parametrize("damage", ["flip", "truncate", "remove", "schema"])
def test_verify_finds_damage_and_records_it(
    proj: dict[str, str], project_dir: Path, damage: str
) -> None:
    made = take(proj, project_dir)
    dump = made / "database_full.dump"
    data = bytearray(dump.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x01
        dump.write_bytes(bytes(data))
    elif damage == "truncate":
        dump.write_bytes(bytes(data[: len(data) // 2]))
    elif damage == "remove":
        (made / "migrations" / "a1b2c3d4e5f6_catalogue.py").unlink()
    else:  # the manifest says more rows than the dump restores
        m = manifest(made)
        m["row_counts"]["public.genes"] += 1
        (made / "manifest.json").write_text(json.dumps(m))
    result = run_cli(["backup-verify", "--backup", made.name], proj, cwd=project_dir)
    assert result.code == 1
    line = one_line_error(result.err)
    if damage == "remove":  # a listed file that is not there: damaged before any check
        assert f"backup {made.name} is damaged: migrations/a1b2c3d4e5f6_catalogue.py: " \
            "missing" in line
        assert "damaged" in run_cli(["backups"], proj, cwd=project_dir).out
        return
    assert f"backup {made.name} FAILED verification" in line
    expected = {"flip": "sha256 does not match", "truncate": "bytes, manifest says",
                "remove": "missing", "schema": "public.genes: 122 rows, the manifest says 123"}
    assert expected[damage] in line
    check = manifest(made)["verification"]
    assert check["ok"] is False and expected[damage] in check["detail"]
    assert "FAILED" in run_cli(["backups"], proj, cwd=project_dir).out


def test_verify_without_a_name_off_a_terminal_says_how(proj: dict[str, str],
                                                       project_dir: Path) -> None:
    take(proj, project_dir)
    result = run_cli(["backup-verify"], proj, cwd=project_dir)
    assert result.code == 2
    assert "set BACKUP=<name>" in one_line_error(result.err)


def test_verify_offers_a_numbered_list_on_a_terminal(proj: dict[str, str],
                                                     project_dir: Path) -> None:
    made = take(proj, project_dir)
    out, err = io.StringIO(), io.StringIO()
    old = Path.cwd()
    os.chdir(project_dir)
    try:
        code = cli.run(["backup-verify"], out, err, environ=proj, stdin=TtyInput("1\n"))
    finally:
        os.chdir(old)
    assert code == 0, err.getvalue()
    assert f"    1  {made.name}" in out.getvalue()
    assert manifest(made)["verification"]["ok"] is True


def _three_backups(env: dict[str, str], cwd: Path) -> list[Path]:
    folder = Path(env["BACKUP_DIR"])
    folder.mkdir(exist_ok=True)
    for _ in range(3):
        assert run_cli(["migration-backup"], env, cwd=cwd).code == 0
    return sorted(backups_of(env), key=lambda p: (p.name[:15], int(p.name[16:] or 1)))


def test_prune_keeps_the_newest_and_lists_what_it_deletes(project_dir: Path,
                                                          pgdata: Path) -> None:
    env = make_project(project_dir, pgdata, "unused")
    made = _three_backups(env, project_dir)
    seed_era = Path(env["BACKUP_DIR"]) / "20000101_000000"
    seed_era.mkdir()
    result = run_cli(["backup-prune"], {**env, "KEEP": "1", "CONFIRM": "prune"}, cwd=project_dir)
    assert result.code == 0, result.err
    assert made[0].name in result.out and made[1].name in result.out
    assert sorted(backups_of(env)) == sorted([made[2], seed_era])  # the newest, and no guessing
    again = run_cli(["backup-prune"], {**env, "KEEP": "1", "CONFIRM": "prune"}, cwd=project_dir)
    assert "Nothing to prune" in again.out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"KEEP": "1"}, "not a terminal: set CONFIRM=prune"),
        ({"KEEP": "1", "CONFIRM": "yes"}, "CONFIRM='yes' does not match"),
        ({"KEEP": "0", "CONFIRM": "prune"}, "the newest one is always kept"),
        ({"KEEP": "two", "CONFIRM": "prune"}, "KEEP='two' is not a number"),
        ({"CONFIRM": "prune"}, "set KEEP=<n>"),
    ],
)
def test_prune_refuses_bad_input(project_dir: Path, pgdata: Path, extra: dict[str, str],
                                 message: str) -> None:
    env = make_project(project_dir, pgdata, "unused")
    made = _three_backups(env, project_dir)
    result = run_cli(["backup-prune"], {**env, **extra}, cwd=project_dir)
    assert result.code == 2
    assert message in one_line_error(result.err)
    assert backups_of(env) == made


def test_prune_waits_for_a_running_restore(project_dir: Path, pgdata: Path) -> None:
    env = make_project(project_dir, pgdata, "unused")
    made = _three_backups(env, project_dir)
    settings = load_settings(project_dir, env)
    with safety.project_lock(settings, "restore-full"):
        result = run_cli(["backup-prune"], {**env, "KEEP": "1", "CONFIRM": "prune"},
                         cwd=project_dir)
    assert result.code == 2
    assert "dbkit restore-full" in one_line_error(result.err)
    assert backups_of(env) == made


def test_make_targets_reach_the_verbs(proj: dict[str, str], project_dir: Path) -> None:
    made = take(proj, project_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(proj)
    proc = subprocess.run(["make", "-s", "-C", str(REPO), "db-backup-verify",
                           f"BACKUP={made.name}"], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert manifest(made)["verification"]["ok"] is True
    assert made.name in subprocess.run(["make", "-s", "-C", str(REPO), "db-backups"], env=env,
                                       capture_output=True, text=True).stdout


def test_state_helper_sees_row_changes(proj: dict[str, str], server: EmbeddedServer,
                                       fresh_db: str, project_dir: Path) -> None:
    """The restore tests rely on ``state``; it must notice a one-character change."""
    before = state(server, fresh_db)
    execute(server, fresh_db, "UPDATE genes SET notes = coalesce(notes, '') || 'x' WHERE id = 5")
    assert state(server, fresh_db) != before
    assert folder_state(versions_dir(project_dir))
