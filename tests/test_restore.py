"""Restores: round trips, the migrations directory, every bad input refused with nothing
changed, and kill -9 at many moments leaving the current database intact."""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from backup_helpers import (
    TtyInput,
    backup,
    change,
    databases,
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

from conftest import base_env, copy_backend, run_cli
from dbkit import cli
from dbkit.backup.load import loadable_problem
from dbkit.backup.manifest import Backup, find_backup, read_manifest, write_manifest
from dbkit.backup.script import copy_without_settings
from dbkit.commands.restore import STEPS
from dbkit.files import file_digest
from dbkit.pg import catalog, scratch, tools
from dbkit.pg.embedded import EmbeddedServer

NEW_REVISION = '''"""added after the backup

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


def previous_databases(server: EmbeddedServer, dbname: str) -> list[str]:
    return sorted(d for d in databases(server) if d.startswith(f"{dbname}_before_restore_"))


def drop(server: EmbeddedServer, *names: str) -> None:
    for name in names:
        scratch.drop_database(server, name)


@pytest.fixture
def proj(project_dir: Path, pgdata: Path, fresh_db: str,
         server: EmbeddedServer) -> Iterator[dict[str, str]]:
    env = make_project(project_dir, pgdata, fresh_db)
    upgrade(env, server, fresh_db)
    fill(server, fresh_db, genes=150)
    yield env
    drop(server, *previous_databases(server, fresh_db))


@pytest.mark.parametrize("fmt", ["custom", "plain", "directory"])
def test_round_trip_brings_back_data_schema_and_migrations(
    proj: dict[str, str], project_dir: Path, server: EmbeddedServer, fresh_db: str, fmt: str
) -> None:
    original = state(server, fresh_db)
    original_versions = folder_state(versions_dir(project_dir))
    made = backup(proj, project_dir, "--format", fmt)

    change(server, fresh_db)
    (versions_dir(project_dir) / "c9d8e7f6a5b4_later.py").write_text(NEW_REVISION)
    changed = state(server, fresh_db)
    changed_versions = folder_state(versions_dir(project_dir))
    assert changed != original

    result = run_cli(["restore-full"], {**proj, "BACKUP": made.name, "CONFIRM": "restore"},
                     cwd=project_dir)
    assert result.code == 0, result.err
    assert state(server, fresh_db) == original
    assert folder_state(versions_dir(project_dir)) == original_versions

    # Nothing was lost on the way: the old database is kept (its one copy: no second dump of
    # it), and the safety backup holds its migrations and names where it is kept.
    (previous,) = previous_databases(server, fresh_db)
    assert state(server, previous) == changed
    assert f"The previous database is kept as {previous}" in result.out
    assert f'DROP DATABASE "{previous}"' in result.out
    assert f"Sessions connected to {fresh_db} are ended for the swap" in result.out
    safety = safety_backup(result.out)
    m = manifest(safety)
    assert m["kind"] == "migrations" and m["previous_database"] == previous
    assert m["note"] == f"safety backup before restoring {made.name}; the database is kept " \
        f"as {previous}"
    assert not any(rel.startswith("database_full") for rel in m["files"])
    assert_holds_migrations(safety, changed_versions)
    assert not [d for d in databases(server) if d.startswith(("dbkit_restore_", "dbkit_verify_"))]


def safety_backup(out: str) -> Path:
    line = next(ln for ln in out.splitlines() if ln.startswith("Safety backup"))
    return Path(line.rsplit(": ", 1)[1])


def assert_holds_migrations(safety: Path, versions: dict[str, bytes]) -> None:
    files = manifest(safety)["files"]
    assert (safety / "migrations" / "c9d8e7f6a5b4_later.py").read_text() == NEW_REVISION
    assert {f"migrations/{k}": v for k, v in versions.items()} == {
        rel: (safety / rel).read_bytes() for rel in files if rel.startswith("migrations/")}


BACKEND_ROWS = """
INSERT INTO genes (approved_symbol, hgnc_id, aliases, location)
SELECT 'GENE' || i, 'HGNC:' || i, ARRAY['AL' || i, 'x"y,' || i], '16p13.' || i
FROM generate_series(1, 200) i;
INSERT INTO users (email, username, hashed_password, role)
SELECT 'u' || i || '@example.org', 'user' || i, md5(i::text),
       (ARRAY['admin', 'curator', 'viewer']::user_role[])[1 + i % 3]
FROM generate_series(1, 12) i;
INSERT INTO gene_evidence (gene_id, source_name, source_detail, evidence_data, evidence_date)
SELECT g.id, 'PanelApp', 'panel ' || g.id,
       jsonb_build_object('score', g.id % 5, 'panels', jsonb_build_array(1, 2, NULL),
                          'note', CASE WHEN g.id % 50 = 0 THEN repeat('long note ', 20000) END),
       date '2024-01-01' + g.id
FROM genes g;
INSERT INTO gene_curations (gene_id, evidence_count, source_count, evidence_score,
                            source_scores)
SELECT id, 1, 1, id / 10.0, jsonb_build_object('PanelApp', id % 5) FROM genes WHERE id % 3 = 0;
INSERT INTO app_settings (key, value, description)
VALUES ('test.large', '{"nested": {"list": [1, "two", null]}}', repeat('large text ', 30000));
"""


def test_round_trip_on_the_sample_backend(
    project_dir: Path, pgdata: Path, fresh_db: str, server: EmbeddedServer
) -> None:
    """The kidney-genetics app: enums, JSONB, arrays, large text, triggers filling the audit
    schema, a populated materialized view, CHECK constraints PostgreSQL re-deparses."""
    copy_backend(project_dir / "backend")
    env = base_env(pgdata, fresh_db, project_dir, BACKEND_DIR=str(project_dir / "backend"))
    upgrade(env, server, fresh_db)
    conn = server.connect(fresh_db)
    with conn.cursor() as cur:
        cur.execute(BACKEND_ROWS)
        cur.execute("SELECT quote_ident(schemaname) || '.' || quote_ident(matviewname) "
                    "FROM pg_matviews")
        for (matview,) in cur.fetchall():
            cur.execute(f"REFRESH MATERIALIZED VIEW {matview}")
    conn.close()
    original = state(server, fresh_db)
    assert original["tables"]["audit.change_log"][0] > 0  # the triggers wrote the second schema
    original_schema = snapshot(server, fresh_db)
    # What any faithful dump + reload gives, made with the raw tools, not dbkit's code.
    with scratch.scratch_database(server, "reference") as reference:
        tools.run(server.tool("pg_dump", ["-Fc", "-f", str(project_dir / "ref.dump")],
                              fresh_db))
        if server.major >= 17:
            tools.run(server.tool("pg_restore", ["-d", reference, str(project_dir / "ref.dump")],
                                  reference))
        else:  # pg_restore 18 SETs transaction_timeout, unknown before 17: its script without
            script = project_dir / "ref.sql"
            tools.run(server.tool("pg_restore", ["-f", str(script), str(project_dir / "ref.dump")]))
            script.write_text(script.read_text().replace("SET transaction_timeout = 0;\n", "", 1))
            tools.run(server.tool("psql", ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(script)],
                                  reference))
        reloaded = state(server, reference)
    made = backup(env, project_dir)

    execute(server, fresh_db, "UPDATE gene_evidence SET evidence_data = '{}' WHERE id % 2 = 0",
            "DELETE FROM users WHERE role = 'viewer'",
            "DROP MATERIALIZED VIEW IF EXISTS gene_score_snapshot CASCADE")
    assert state(server, fresh_db) != original

    result = run_cli(["restore-full", "--yes", "--backup", made.name], env, cwd=project_dir)
    assert result.code == 0, result.err
    restored = state(server, fresh_db)
    assert restored["tables"] == original["tables"]
    assert restored == reloaded
    # PostgreSQL re-deparses `varchar IN (...)` CHECKs on reload; that is the only difference.
    differences = catalog.diff_snapshots(original_schema, snapshot(server, fresh_db))
    assert all(line.startswith("constraint ") and ": definition: " in line
               for line in differences), differences


def snapshot(server: EmbeddedServer, dbname: str) -> dict[str, Any]:
    conn = server.connect(dbname)
    try:
        return catalog.snapshot(conn)
    finally:
        conn.close()


def test_keep_previous_0_drops_the_old_database(
    proj: dict[str, str], project_dir: Path, server: EmbeddedServer, fresh_db: str
) -> None:
    original = state(server, fresh_db)
    made = backup(proj, project_dir)
    change(server, fresh_db)
    (versions_dir(project_dir) / "c9d8e7f6a5b4_later.py").write_text(NEW_REVISION)
    changed, changed_versions = state(server, fresh_db), folder_state(versions_dir(project_dir))
    result = run_cli(["restore-full", "--yes", "--no-keep-previous", "--backup", made.name],
                     proj, cwd=project_dir)
    assert result.code == 0, result.err
    assert previous_databases(server, fresh_db) == []
    assert "KEEP_PREVIOUS=0" in result.out and "kept as" not in result.out
    assert state(server, fresh_db) == original
    # The old database is dropped, so the safety backup is a whole one: it restores it.
    safety = safety_backup(result.out)
    m = manifest(safety)
    assert m["kind"] == "full" and "previous_database" not in m
    assert m["note"] == f"safety backup before restoring {made.name}"
    assert m["row_counts"]["public.genes"] == changed["tables"]["public.genes"][0]
    assert_holds_migrations(safety, changed_versions)
    back = run_cli(["restore-full", "--yes", "--no-keep-previous", "--backup", safety.name],
                   proj, cwd=project_dir)
    assert back.code == 0, back.err
    assert state(server, fresh_db) == changed
    assert folder_state(versions_dir(project_dir)) == changed_versions
    # ...and the env var does the same, as Make passes it.
    env = {**proj, "KEEP_PREVIOUS": "0", "CONFIRM": "restore", "BACKUP": made.name}
    assert run_cli(["restore-full"], env, cwd=project_dir).code == 0
    assert previous_databases(server, fresh_db) == []
    assert state(server, fresh_db) == original


def test_the_drop_advice_quotes_a_name_with_a_double_quote(
    project_dir: Path, pgdata: Path, server: EmbeddedServer
) -> None:
    # The advice is SQL the user pastes into psql: it must name the kept database, whatever
    # its name holds.
    name = f'dbkit_test_say "hi"_{os.getpid()}'
    server.create_database(name)
    try:
        env = make_project(project_dir, pgdata, name, CONFIRM="restore")
        upgrade(env, server, name)
        made = backup(env, project_dir)
        result = run_cli(["restore-full", "--backup", made.name], env, cwd=project_dir)
        assert result.code == 0, result.err
        (previous,) = previous_databases(server, name)
        quoted = '"' + previous.replace('"', '""') + '"'
        advice = next(ln for ln in result.out.splitlines() if "DROP DATABASE" in ln)
        assert advice.endswith(f"make db-psql, then DROP DATABASE {quoted};"), advice
        # Following it drops the kept database and nothing else.
        execute(server, server.maintenance_db, advice.split("then ", 1)[1])
        assert previous_databases(server, name) == []
        assert name in databases(server)
    finally:
        drop(server, name, *previous_databases(server, name))


def test_restore_creates_a_database_that_does_not_exist_yet(
    proj: dict[str, str], project_dir: Path, server: EmbeddedServer, fresh_db: str
) -> None:
    original = state(server, fresh_db)
    made = backup(proj, project_dir)
    env = {**proj, "POSTGRES_DB": "dbkit_test_brand_new"}
    try:
        result = run_cli(["restore-full", "--yes", "--backup", made.name], env, cwd=project_dir)
        assert result.code == 0, result.err
        assert state(server, "dbkit_test_brand_new") == original
        assert "does not exist yet, so there is nothing to back up" in result.out
        assert "Migrations were already identical" in result.out
    finally:
        drop(server, "dbkit_test_brand_new")


def test_migration_restore_saves_the_current_ones_first(
    proj: dict[str, str], project_dir: Path, server: EmbeddedServer, fresh_db: str
) -> None:
    made = backup(proj, project_dir)
    original = folder_state(versions_dir(project_dir))
    db_before = state(server, fresh_db)
    new_file = versions_dir(project_dir) / "c9d8e7f6a5b4_later.py"
    new_file.write_text(NEW_REVISION)
    (versions_dir(project_dir) / "a1b2c3d4e5f6_catalogue.py").write_text("# edited\n")
    edited = folder_state(versions_dir(project_dir))

    result = run_cli(["migration-restore", "--backup", made.name], proj, cwd=project_dir)
    assert result.code == 0, result.err
    assert folder_state(versions_dir(project_dir)) == original
    saved = Path(result.out.split("the previous ones are in ")[1].split()[0])
    assert manifest(saved)["kind"] == "migrations"
    assert {k: (saved / "migrations" / k).read_bytes() for k in edited} == edited
    assert state(server, fresh_db) == db_before  # the database is not touched
    assert not list(versions_dir(project_dir).parent.glob(".versions.dbkit-*"))

    again = run_cli(["migration-restore", "--backup", made.name], proj, cwd=project_dir)
    assert again.code == 0 and "nothing to do" in again.out


def test_migration_restore_offers_a_numbered_list_on_a_terminal(
    proj: dict[str, str], project_dir: Path
) -> None:
    older = backup(proj, project_dir)
    (versions_dir(project_dir) / "c9d8e7f6a5b4_later.py").write_text(NEW_REVISION)
    run_cli(["migration-backup"], proj, cwd=project_dir)
    out, err = io.StringIO(), io.StringIO()
    old_cwd = Path.cwd()
    os.chdir(project_dir)
    try:
        code = cli.run(["migration-restore"], out, err, environ=proj, stdin=TtyInput("2\n"))
    finally:
        os.chdir(old_cwd)
    assert code == 0, err.getvalue()
    listing = out.getvalue()
    assert listing.index("    1  ") < listing.index(f"    2  {older.name}")  # newest first
    assert not (versions_dir(project_dir) / "c9d8e7f6a5b4_later.py").exists()


def test_a_stale_half_swap_of_the_versions_dir_is_put_back(
    proj: dict[str, str], project_dir: Path
) -> None:
    """Killed between the two renames of the fallback swap: the next run puts it back."""
    made = backup(proj, project_dir)
    versions = versions_dir(project_dir)
    original = folder_state(versions)
    dead = subprocess.Popen(["true"])
    dead.wait()
    versions.rename(versions.with_name(f".versions.dbkit-old-{dead.pid}"))
    (versions.parent / f".versions.dbkit-new-{dead.pid}").mkdir()
    result = run_cli(["migration-restore", "--backup", made.name], proj, cwd=project_dir)
    assert result.code == 0, result.err
    assert folder_state(versions) == original and "nothing to do" in result.out
    assert not list(versions.parent.glob(".versions.dbkit-*"))


# -- bad input: one line, non-zero, nothing changed -----------------------------------------
@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory, pgdata: Path,
        server: EmbeddedServer) -> Iterator[dict[str, Any]]:
    """One project with a good backup, damaged copies of it, and a changed database."""
    project_dir = tmp_path_factory.mktemp("bad") / "project"
    project_dir.mkdir()
    with scratch.scratch_database(server, "restorebad") as dbname:
        env = make_project(project_dir, pgdata, dbname)
        upgrade(env, server, dbname)
        fill(server, dbname, genes=80)
        good = backup(env, project_dir)
        folder = Path(env["BACKUP_DIR"])
        run_cli(["migration-backup"], env, cwd=project_dir)
        (migrations_only,) = {p.name for p in folder.iterdir()} - {good.name}
        names = {"good": good.name, "migrations_only": migrations_only}

        def variant(key: str, name: str, damage: Any) -> None:
            target = folder / name
            shutil.copytree(good, target)
            damage(target)
            names[key] = name

        def flip(t: Path) -> None:
            data = bytearray((t / "database_full.dump").read_bytes())
            data[len(data) // 2] ^= 0x01
            (t / "database_full.dump").write_bytes(bytes(data))

        def truncate(t: Path) -> None:
            dump = t / "database_full.dump"
            dump.write_bytes(dump.read_bytes()[: dump.stat().st_size // 2])

        def truncate_and_resum(t: Path) -> None:  # damaged before it was checksummed
            truncate(t)
            made = Backup(t.name, t, read_manifest(t))
            made.manifest["files"]["database_full.dump"] = file_digest(t / "database_full.dump")
            write_manifest(t, made.manifest)

        def edit(**changes: Any) -> Any:
            def apply(t: Path) -> None:
                m = read_manifest(t)
                for key, value in changes.items():
                    if key == "rows":
                        m["row_counts"]["public.genes"] += value
                    else:
                        m[key] = value
                write_manifest(t, m)
            return apply

        variant("flipped", "20000101_000001", flip)
        variant("truncated", "20000101_000002", truncate)
        variant("corrupt_dump", "20000101_000003", truncate_and_resum)
        variant("wrong_rows", "20000101_000004", edit(rows=5))
        variant("newer_pg_dump", "20000101_000005", edit(pg_dump_version="99.1"))
        variant("newer_server", "20000101_000006", edit(server_version="99.0"))
        variant("no_manifest", "20000101_000007", lambda t: (t / "manifest.json").unlink())
        variant("bad_json", "20000101_000008", lambda t: (t / "manifest.json").write_text("{"))
        (folder / "20000101_000009").write_text("a file, not a folder\n")
        names["file"] = "20000101_000009"
        (folder / "20000101_000010").symlink_to(good)
        names["symlink"] = "20000101_000010"

        change(server, dbname)
        yield {"env": env, "cwd": project_dir, "names": names, "db": dbname,
               "state": state(server, dbname),
               "versions": folder_state(versions_dir(project_dir)),
               "backups": folder_state(folder), "databases": databases(server)}


BAD_RESTORES = [
    # (id, BACKUP (a key of names, or literal), extra env, exit code, message)
    ("dotdot", "../../etc", {}, 2, "BACKUP='../../etc' is not a backup name"),
    ("absolute", "/etc/passwd", {}, 2, "BACKUP='/etc/passwd' is not a backup name"),
    ("file", "file", {}, 2, "is a file, not a backup folder"),
    ("symlink", "symlink", {}, 2, "is a symbolic link, not a backup folder"),
    ("missing", "20991231_235959", {}, 2, "no backup named 20991231_235959"),
    ("no manifest", "no_manifest", {}, 1, "has no manifest.json"),
    ("bad manifest", "bad_json", {}, 1, "manifest.json is unreadable"),
    ("migrations only", "migrations_only", {}, 2, "is a migrations backup; restore needs a full"),
    ("flipped byte", "flipped", {}, 1, "database_full.dump: sha256 does not match"),
    ("truncated", "truncated", {}, 1, "database_full.dump: "),
    ("corrupt dump", "corrupt_dump", {}, 1, "does not restore: pg_restore failed"),
    ("rows differ", "wrong_rows", {}, 1, "restores to something else than it recorded"),
    ("newer pg_dump", "newer_pg_dump", {}, 2, "was written by pg_dump 99; the pg_restore"),
    ("newer server", "newer_server", {}, 2, "cannot load a dump into an older major version"),
    ("no confirm", "good", {"CONFIRM": None}, 2, "not a terminal: set CONFIRM=restore"),
    ("wrong word", "good", {"CONFIRM": "yes"}, 2, "CONFIRM='yes' does not match"),
    ("production", "good", {"ENVIRONMENT": "production"}, 2, "ENVIRONMENT=production"),
    ("remote", "good", {"DB_MODE": "url",
                        "DATABASE_URL": "postgresql://u:pw@db.example.invalid/kidney"},
     2, "is not on this machine"),
    ("no name", "", {}, 2, "set BACKUP=<name> to choose the backup to restore"),
]


@pytest.mark.parametrize(("backup_name", "extra", "code", "message"),
                         [case[1:] for case in BAD_RESTORES], ids=[c[0] for c in BAD_RESTORES])
def test_bad_restores_are_refused_and_change_nothing(
    bad: dict[str, Any], server: EmbeddedServer, backup_name: str, extra: dict[str, Any],
    code: int, message: str,
) -> None:
    env = {**bad["env"], "CONFIRM": "restore",
           "BACKUP": bad["names"].get(backup_name, backup_name)}
    env.update(extra)
    env = {k: v for k, v in env.items() if v is not None}
    result = run_cli(["restore-full"], env, cwd=bad["cwd"])
    assert result.code == code, result.err
    assert message in one_line_error(result.err)
    assert state(server, bad["db"]) == bad["state"]
    assert folder_state(versions_dir(bad["cwd"])) == bad["versions"]
    assert folder_state(Path(bad["env"]["BACKUP_DIR"])) == bad["backups"]
    assert databases(server) == bad["databases"]


@pytest.mark.parametrize(("backup_name", "message"), [
    ("../../etc", "is not a backup name"), ("file", "is a file"),
    ("no_manifest", "has no manifest.json"), ("20991231_235959", "no backup named"),
])
def test_bad_migration_restores_are_refused(bad: dict[str, Any], backup_name: str,
                                            message: str) -> None:
    env = {**bad["env"], "BACKUP": bad["names"].get(backup_name, backup_name)}
    result = run_cli(["migration-restore"], env, cwd=bad["cwd"])
    assert result.code in (1, 2)
    assert message in one_line_error(result.err)
    assert folder_state(versions_dir(bad["cwd"])) == bad["versions"]


def test_a_plain_dump_with_new_settings_loads_on_an_older_server(
    bad: dict[str, Any], tmp_path: Path
) -> None:
    """A real pg_dump 18 plain dump sets transaction_timeout, which PostgreSQL 14 rejects:
    loading it there leaves that line out (make test-matrix loads such dumps on 14)."""
    run_cli(["backup-full", "--format", "plain"], bad["env"], cwd=bad["cwd"])
    folder = Path(bad["env"]["BACKUP_DIR"])
    plain = max((p for p in folder.iterdir() if (p / "database_full.sql").exists()),
                key=lambda p: p.stat().st_mtime)
    try:
        made = find_backup(folder, plain.name)
        text = (plain / "database_full.sql").read_bytes()
        if b"\nSET transaction_timeout = 0;\n" not in text:  # pg_dump 18 of a 15: not always
            head, _, rest = text.partition(b"SET statement_timeout = 0;\n")
            text = head + b"SET statement_timeout = 0;\nSET transaction_timeout = 0;\n" + rest
        # pg_dump's own \restrict/\unrestrict lines go too: the loader puts its own key
        unkeyed = b"".join(line for line in text.splitlines(keepends=True)
                           if not re.match(rb"\\(un)?restrict \w+\s*$", line))
        for major, kept in ((14, False), (16, False), (17, True), (18, True)):
            out = io.BytesIO()
            copy_without_settings(io.BytesIO(text), out, major)
            assert (b"SET transaction_timeout" in out.getvalue()) is kept
            assert b"restrict " not in out.getvalue()
            assert out.getvalue() == unkeyed if kept else len(out.getvalue()) < len(unkeyed)
        assert loadable_problem(made, server_major=18, reader_major=18) is None
        made_by = int(made.manifest["pg_dump_version"].split(".")[0])  # 15's own on Debian's
        old_psql = loadable_problem(made, server_major=made_by, reader_major=made_by - 1)
        assert old_psql and f"written by pg_dump {made_by}" in old_psql
        custom = find_backup(folder, bad["names"]["good"])
        source = int(custom.manifest["server_version"].split(".")[0])
        older = loadable_problem(custom, server_major=source - 1, reader_major=18)
        assert older and "cannot load a dump into an older major version" in older
    finally:
        shutil.rmtree(plain)


def test_a_second_restore_waits_for_the_first(proj: dict[str, str], project_dir: Path,
                                              server: EmbeddedServer, fresh_db: str) -> None:
    made = backup(proj, project_dir)
    change(server, fresh_db)
    before = state(server, fresh_db)
    env = {**proj, "BACKUP": made.name, "CONFIRM": "restore"}
    first = start_restore(env, project_dir, pause_at="swept")
    try:
        assert wait_paused(first) == "swept"
        second = run_cli(["restore-full"], env, cwd=project_dir)
        assert second.code == 2
        assert f"dbkit restore-full (pid {first.pid}) is running" in one_line_error(second.err)
        assert state(server, fresh_db) == before
    finally:
        first.kill()
        first.wait()


# -- kill -9 -------------------------------------------------------------------------------
def start_restore(env: dict[str, str], cwd: Path, pause_at: str | None) -> subprocess.Popen:
    full = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    full.update(env)
    full.pop("DBKIT_TEST_PAUSE_AT", None)
    if pause_at:
        full["DBKIT_TEST_PAUSE_AT"] = pause_at
    return subprocess.Popen([sys.executable, "-m", "dbkit", "restore-full"], env=full, cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_paused(proc: subprocess.Popen) -> str:
    """The step a paused restore announced; fails if it ended instead."""
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("dbkit: paused at "):
            return line.split("paused at ", 1)[1].strip()
    proc.wait()
    raise AssertionError(f"the restore ended (exit {proc.returncode}) before pausing")


@pytest.mark.parametrize("step", ["scratch-loaded", "migrations-restored"])
def test_sigterm_is_handled_as_ctrl_c(proj: dict[str, str], project_dir: Path,
                                      server: EmbeddedServer, fresh_db: str, step: str) -> None:
    """SIGTERM (a CI timeout, kill) cleans up as Ctrl-C does: before the swap the database is
    as it was, after it the restore is finished; no scratch database left; exit 143."""
    made = backup(proj, project_dir)
    change(server, fresh_db)
    before, others = state(server, fresh_db), databases(server)
    env = {**proj, "BACKUP": made.name, "CONFIRM": "restore"}
    proc = start_restore(env, project_dir, pause_at=step)
    try:
        assert wait_paused(proc) == step
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM)" in err
    left = databases(server) - others
    if step == "scratch-loaded":
        assert state(server, fresh_db) == before and left == set()
    else:  # after the swap: restored, the old database kept as a Ctrl-C leaves it
        assert state(server, fresh_db) != before
        assert left == set(previous_databases(server, fresh_db)) and len(left) == 1


@pytest.mark.slow
def test_kill_9_at_any_moment_leaves_the_current_database_intact(
    proj: dict[str, str], project_dir: Path, server: EmbeddedServer, fresh_db: str
) -> None:
    versions = versions_dir(project_dir)
    original_versions = folder_state(versions)
    fill(server, fresh_db, genes=3000, prefix="K")  # a dump that takes a moment to load
    original = state(server, fresh_db)
    made = backup(proj, project_dir)
    change(server, fresh_db)
    (versions / "c9d8e7f6a5b4_later.py").write_text(NEW_REVISION)
    current = state(server, fresh_db)
    current_versions = folder_state(versions)
    env = {**proj, "BACKUP": made.name, "CONFIRM": "restore"}
    backup_dir = Path(proj["BACKUP_DIR"])

    def put_back_if_restored() -> bool:
        """After a kill and the next run that reads the versions directory (which finishes
        or undoes what the killed one left): database and migrations both as they were, or
        both restored with the old database kept. Nothing else, ever. Undo a finished swap
        so the next run starts the same."""
        assert run_cli(["history"], env, cwd=project_dir).code == 0
        now = state(server, fresh_db)
        kept = previous_databases(server, fresh_db)
        if now == current:
            assert kept == []
            assert folder_state(versions) == current_versions
            return False
        assert now == original, "the database is neither the old one nor the backup"
        (previous,) = kept
        assert state(server, previous) == current
        assert folder_state(versions) == original_versions, "database restored, migrations not"
        drop(server, fresh_db)
        execute(server, "postgres", f'ALTER DATABASE "{previous}" RENAME TO "{fresh_db}"')
        shutil.rmtree(versions)
        versions.mkdir()
        for rel, data in current_versions.items():
            (versions / rel).write_bytes(data)
        return True

    def backups_are_whole() -> None:
        """Any folder with a backup's name is a complete one (drafts are hidden .tmp-*)."""
        for folder in backup_dir.iterdir():
            if not folder.name.startswith(".tmp-"):
                assert find_backup(backup_dir, folder.name).kind in ("full", "migrations")

    kills: list[str] = []
    # 1. At each step boundary, via the pause hook; the step after the sweep proves that the
    # scratch databases of the run killed before are gone.
    leftovers: set[str] = set()
    for step in STEPS:
        proc = start_restore(env, project_dir, pause_at=step)
        assert wait_paused(proc) == step
        if STEPS.index(step) >= STEPS.index("swept"):
            assert not leftovers & databases(server), "stale scratch databases not swept"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills.append(step)
        leftovers = {d for d in databases(server) if d.startswith("dbkit_restore_")}
        put_back_if_restored()
        backups_are_whole()

    # 2. At moments spread over the working part of a run (the restore into scratch, the
    # comparison, the safety dump, the swaps), measured from the start of the process.
    def reach(step: str) -> float:
        started = time.monotonic()
        proc = start_restore(env, project_dir, pause_at=step)
        wait_paused(proc)
        took = time.monotonic() - started
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        put_back_if_restored()
        return took

    begin, end = reach("checked"), reach("migrations-restored")
    moments = 14
    for k in range(1, moments + 1):
        proc = start_restore(env, project_dir, pause_at=None)
        time.sleep(begin + (end - begin) * k / (moments + 1))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills.append(f"{k}/{moments + 1} of the way (exit {proc.returncode})")
        put_back_if_restored()
        backups_are_whole()
    assert len(kills) >= 20

    # 3. The next run sweeps everything the killed ones left, and restores.
    result = run_cli(["restore-full"], env, cwd=project_dir)
    assert result.code == 0, result.err
    assert state(server, fresh_db) == original
    assert folder_state(versions) == original_versions
    assert not [d for d in databases(server) if d.startswith("dbkit_restore_")]
    assert not [p for p in backup_dir.iterdir() if p.name.startswith(".tmp-")]
    assert not list(versions.parent.glob(".versions.dbkit-*"))
    backups_are_whole()
