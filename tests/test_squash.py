"""make db-squash-migrations on the sample backend, and the pieces the proof stands on.

The sample backend must squash and prove with zero differences, seed rows included; a real
squash replaces the versions directory (other files kept), archives and backs up the old
files, and tells what the development database needs.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from backup_helpers import execute, folder_state, one_line_error, state
from sqlalchemy.dialects import postgresql
from squash_helpers import (
    copy_project,
    dry_run,
    report_of,
    run_tty,
    scratch_databases,
    squash_env,
    squashed_file,
    versions_of,
)

from conftest import BACKEND, FIXTURES, run_cli
from dbkit.errors import ChainBuildFailed, ConfigError
from dbkit.files import inside, safe_name
from dbkit.pg import catalog, scratch
from dbkit.pg.embedded import EmbeddedServer
from dbkit.project import archive
from dbkit.project import versions as vdir
from dbkit.project.chain import AlembicChild, AlembicProject
from dbkit.settings import load_settings
from dbkit.squash import prove
from dbkit.squash.render import escape_binds, py_value

# -- the catalog snapshot ------------------------------------------------------------------------

def test_fingerprint_ignores_the_database_name_and_dropped_column_holes(
        server: EmbeddedServer) -> None:
    schema = ("CREATE TYPE mood AS ENUM ('ok', 'meh')",
              "CREATE VIEW v AS SELECT a, c FROM t",
              "CREATE INDEX ix_t_c ON t (lower(c)) WHERE a > 0",
              "COMMENT ON COLUMN t.c IS 'see'")
    with scratch.scratch_database(server, "fpone") as one, \
            scratch.scratch_database(server, "fptwo") as two:
        execute(server, one, "CREATE TABLE t (a int PRIMARY KEY, c text DEFAULT 'x', m int)",
                "ALTER TABLE t ADD COLUMN gone int", "ALTER TABLE t DROP COLUMN gone",
                *schema[:1], "ALTER TABLE t ADD COLUMN mood mood", *schema[1:])
        # The same schema reached without holes, under another database name.
        execute(server, two, "CREATE TABLE t (a int PRIMARY KEY, c text DEFAULT 'x', m int)",
                *schema[:1], "ALTER TABLE t ADD COLUMN mood mood", *schema[1:])
        conn_one, conn_two = server.connect(one), server.connect(two)
        try:
            assert catalog.fingerprint(conn_one) == catalog.fingerprint(conn_two)
            execute(server, two, "ALTER TABLE t ALTER COLUMN c SET DEFAULT 'y'")
            assert catalog.fingerprint(conn_one) != catalog.fingerprint(conn_two)
        finally:
            conn_one.close()
            conn_two.close()
        diff = catalog.diff_snapshots(catalog.snapshot_of(server, one),
                                      catalog.snapshot_of(server, two))
    assert diff == ["table public.t: column c: default: \"'x'::text\" in A vs \"'y'::text\" in B"]


def test_diff_snapshots_names_kind_object_and_attribute(server: EmbeddedServer) -> None:
    with scratch.scratch_database(server, "diffone") as one, \
            scratch.scratch_database(server, "difftwo") as two:
        execute(server, one, "CREATE TABLE t (a int, b text)", "CREATE INDEX ix_a ON t (a)",
                "CREATE VIEW v AS SELECT a FROM t")
        execute(server, two, "CREATE TABLE t (b text, a int)", "CREATE INDEX ix_a ON t (a DESC)")
        diff = catalog.diff_snapshots(catalog.snapshot_of(server, one),
                                      catalog.snapshot_of(server, two))
    assert "table public.t: columns ['a', 'b'] in A vs ['b', 'a'] in B" in diff
    assert "view public.v: only in A" in diff
    assert any(line.startswith("index public.t.ix_a: definition:") for line in diff), diff


def test_a_warm_child_runs_operations_in_turn_and_says_when_it_died(
        pgdata: Path, fresh_db: str, project_dir: Path, server: EmbeddedServer) -> None:
    """The squash runs each versions directory's operations in one child started early."""
    backend = copy_project(FIXTURES / "rename_column", project_dir)
    settings = load_settings(project_dir, squash_env(pgdata, fresh_db, project_dir, backend))

    def tables() -> set[str]:
        conn = server.connect(fresh_db)
        try:
            return set(catalog.table_row_counts(conn))
        finally:
            conn.close()

    with AlembicChild(settings, server, fresh_db) as child:
        project = AlembicProject(settings, server, child=child)
        assert project.heads() == ["0a0100000003"]
        assert project.build(fresh_db) > 0
        assert "public.people" in tables()
        with pytest.raises(ChainBuildFailed, match="alembic upgrade nosuchrev failed"):
            project.upgrade(fresh_db, "nosuchrev")
        assert project.current(fresh_db) == ["0a0100000003"]  # a failure leaves it working
        project.downgrade(fresh_db, "0a0100000002")
        assert project.current(fresh_db) == ["0a0100000002"]
        child.kill()
        ended = r"^alembic heads crashed: the project.s Python \(.*\) ended without an answer"
        with pytest.raises(ChainBuildFailed, match=ended + r": exit -9$"):
            project.heads()


# -- rendering helpers -----------------------------------------------------------------------------

@pytest.mark.parametrize("statement", [
    "SELECT 'key:value', ':x', 'a::text', $$ :y $$",
    "SELECT E'\\\\:z', 'x\\:q' , ':a:b', '%', 'it''s'",
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 WHERE 'a:' || ':b' <> '' $$",
])
def test_escaped_statement_reaches_postgresql_verbatim(statement: str) -> None:
    """op.execute wraps strings in text(): after escaping, SQLAlchemy sends them as written."""
    compiled = sa.text(escape_binds(statement)).compile(dialect=postgresql.dialect())
    assert not compiled.params
    assert str(compiled).replace("%%", "%") == statement


def test_python_literals_round_trip() -> None:
    values = [None, True, 3, -0.1, 1e300, Decimal("1.50"), "it's \\ a \"q\"\n\tline", [1, None],
              {"a": [1, 2.5, {"b": None}], "c": "x:y", "d": False}, ["a", "b c"]]
    for value in values:
        assert ast.literal_eval(py_value(value).replace("Decimal(", "(")) == (
            str(value) if isinstance(value, Decimal) else value)


# -- the sample backend ----------------------------------------------------------------------------

def test_sample_backend_squashes_and_proves_with_zero_differences_including_seed_rows(
        pgdata: Path, fresh_db: str, project_dir: Path, server: EmbeddedServer,
        tmp_path: Path) -> None:
    backend = copy_project(BACKEND, project_dir)
    env = squash_env(pgdata, fresh_db, project_dir, backend)
    before = folder_state(backend)
    dbs_before = scratch_databases(server)
    result, folder = dry_run(env, project_dir, tmp_path)
    assert result.code == 0, result.err
    assert folder is not None and "Dry run: proven" in result.out
    assert folder_state(backend) == before, "a dry run touches nothing in the project"
    assert scratch_databases(server) == dbs_before
    report = report_of(folder)
    assert len(report["proof"]) == 3
    assert report["captured"]["seed rows"] > 0
    assert report["captured"]["materialized views"] >= 1
    assert report["captured"]["views"] >= 8
    assert report["model_drift"] == []
    text = squashed_file(folder / "versions").read_text()
    for expected in ("down_revision = None", "op.bulk_insert(", "CREATE MATERIALIZED VIEW",
                     "CREATE TRIGGER", "CREATE OR REPLACE FUNCTION", "CREATE SCHEMA audit",
                     "pg_catalog.setval(", "def downgrade() -> None:"):
        assert expected in text, expected

    # Independently of the proof: the squashed file and a new run of the chain give the same
    # schema and as many rows (their values differ where the chain inserted now()).
    settings = load_settings(project_dir, env)
    with scratch.scratch_database(server, "chain") as chain, \
            scratch.scratch_database(server, "squashed") as squashed:
        AlembicProject(settings, server).upgrade(chain, "head")
        AlembicProject(settings, server, version_locations=folder / "versions").upgrade(
            squashed, "head")
        conn_chain, conn_squashed = server.connect(chain), server.connect(squashed)
        try:
            assert catalog.fingerprint(conn_chain) == catalog.fingerprint(conn_squashed)
            rows = catalog.table_row_counts(conn_chain)
            assert rows == catalog.table_row_counts(conn_squashed)
            assert sum(rows.values()) - rows["public.alembic_version"] == report["captured"][
                "seed rows"]
            with conn_chain.cursor() as cur:
                cur.execute("""
                    SELECT schemaname || '.' || viewname FROM pg_views
                     WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
                    UNION ALL SELECT schemaname || '.' || matviewname FROM pg_matviews""")
                views = sorted(name for name, in cur.fetchall())
        finally:
            conn_chain.close()
            conn_squashed.close()

    # squash_report.md is Markdown: tables, the proof, and every view in a Mermaid diagram.
    md = (folder / "squash_report.md").read_text()
    for header in ("## Summary", "| kind | count |", "| views | ", "## Proof",
                   "| fresh install, squashed revision |", "```mermaid\nflowchart LR"):
        assert header in md, header
    assert md.count("- [x] ") == 3
    diagram = md.split("```mermaid", 1)[1].split("```", 1)[0]
    assert len(views) == 11  # the sample's 10 views and 1 materialized view
    for view in views:
        assert f'"{view}"' in diagram, view
    assert {v["name"] for v in report["view_graph"]} == set(views)
    assert all(v["depends_on"] for v in report["view_graph"])
    assert " --> " in diagram


def test_squash_replaces_the_versions_directory_and_keeps_the_old_files(
        pgdata: Path, fresh_db: str, project_dir: Path, server: EmbeddedServer) -> None:
    backend = copy_project(BACKEND, project_dir)
    versions = versions_of(backend)
    (versions / "__init__.py").write_text("# kept by the squash\n")
    (versions / "README.txt").write_text("not a revision\n")
    env = squash_env(pgdata, fresh_db, project_dir, backend, CONFIRM="squash")
    settings = load_settings(project_dir, env)
    old = AlembicProject(settings, server)
    head = old.heads()[0]
    count = len(old.revisions())
    old.upgrade(fresh_db, "head")
    hashes = vdir.file_hashes(versions)
    before_dev = state(server, fresh_db)
    dbs_before = scratch_databases(server)

    result = run_cli(["squash"], env, cwd=project_dir)

    assert result.code == 0, result.err
    assert sorted(p.name for p in versions.iterdir() if p.name != "__pycache__") == sorted([
        "README.txt", "__init__.py", f"{head}_squashed_{count}_revisions.py"])
    assert (versions / "__init__.py").read_text() == "# kept by the squash\n"
    new = AlembicProject(settings, server)
    assert new.heads() == [head]
    assert [r.down_revision for r in new.revisions()] == [()]
    # The old files: in the backup and in versions_archived/<timestamp>/, byte for byte.
    archived = list((versions.parent / "versions_archived").iterdir())
    assert len(archived) == 1
    old_files = {k: v for k, v in hashes.items() if k not in ("__init__.py", "README.txt")}
    index = json.loads((archived[0] / "dbkit_archive.json").read_text())
    assert {k: v for k, v in vdir.file_hashes(archived[0]).items()
            if k != "dbkit_archive.json"} == old_files == index["files"]
    assert index["last"] == index["squashed"] == head and len(index["revisions"]) == count
    made = [p for p in (project_dir / "backups").iterdir() if not p.name.startswith(".")]
    assert len(made) == 1
    assert vdir.file_hashes(made[0] / "migrations") == hashes
    manifest = json.loads((made[0] / "manifest.json").read_text())
    assert {"squash_report.md", "squash_report.json"} <= set(manifest["files"])
    assert (made[0] / "squash_report.md").stat().st_mode & 0o777 == 0o600
    # The development database was at the old head: nothing to do, schema identical.
    assert "already at the squashed revision" in result.out
    assert "schema is identical to a fresh build" in result.out
    assert state(server, fresh_db) == before_dev
    assert new.current(fresh_db) == [head]
    assert scratch_databases(server) == dbs_before


def test_new_revision_id_prints_the_stamp_line_and_archive_0_keeps_no_copy(
        pgdata: Path, fresh_db: str, project_dir: Path, server: EmbeddedServer) -> None:
    backend = copy_project(FIXTURES / "rename_column", project_dir)
    env = squash_env(pgdata, fresh_db, project_dir, backend, CONFIRM="squash",
                     NEW_REVISION="1", ARCHIVE="0")
    settings = load_settings(project_dir, env)
    AlembicProject(settings, server).upgrade(fresh_db, "head")
    result = run_cli(["squash"], env, cwd=project_dir)
    assert result.code == 0, result.err
    new = AlembicProject(settings, server)
    (rev,) = new.heads()
    assert rev != "0a0100000003"
    assert f"stamp --purge {rev}" in result.out
    assert not (backend / "versions_archived").exists()
    # Following the printed advice works: the database then sits at the new revision.
    cfg = Config(str(backend / "alembic.ini"))
    engine = sa.create_engine(server.sa_url(fresh_db))
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.stamp(cfg, rev, purge=True)
    finally:
        engine.dispose()
    assert new.current(fresh_db) == [rev]


def test_a_development_database_behind_head_is_told_what_to_do_or_rebuilt(
        pgdata: Path, fresh_db: str, project_dir: Path, server: EmbeddedServer) -> None:
    backend = copy_project(FIXTURES / "rename_column", project_dir)
    env = squash_env(pgdata, fresh_db, project_dir, backend, CONFIRM="squash")
    settings = load_settings(project_dir, env)
    AlembicProject(settings, server).upgrade(fresh_db, "0a0100000001")
    result = run_cli(["squash", "--dry-run"], env, cwd=project_dir)
    assert result.code == 0, result.err
    assert "behind 0a0100000003: afterwards `make db-upgrade` catches it up" in result.out
    assert ("is at 0a0100000001, older than 0a0100000003 (the squashed revision): after the "
            "real squash, `make db-upgrade` catches it up") in result.out
    assert "None" not in result.out
    no_archive = run_cli(["squash", "--dry-run"], dict(env, ARCHIVE="0"), cwd=project_dir)
    assert no_archive.code == 0, no_archive.err
    assert "a squash with ARCHIVE=0 keeps no archive to catch it up through" in no_archive.out
    assert "None" not in no_archive.out

    result = run_cli(["squash"], dict(env, RESET="1"), cwd=project_dir)
    assert result.code == 0, result.err
    assert "rebuilt from the squashed revision" in result.out
    assert AlembicProject(settings, server).current(fresh_db) == ["0a0100000003"]
    conn = server.connect(fresh_db)
    try:
        assert catalog.table_row_counts(conn)["public.people"] == 3  # seed rows included
    finally:
        conn.close()


def test_interactive_run_asks_for_the_word_and_waits_for_enter(
        pgdata: Path, fresh_db: str, project_dir: Path) -> None:
    backend = copy_project(FIXTURES / "merge_revision", project_dir)
    env = squash_env(pgdata, fresh_db, project_dir, backend)
    versions = versions_of(backend)
    before = folder_state(versions)

    cancelled = run_tty(["squash"], env, project_dir, "no\n")
    assert cancelled.code == 2
    # The question goes to stderr (so `> log` still shows it), then the one error line.
    prompt = "Type 'squash' to squash the migration chain: "
    assert cancelled.err.startswith(prompt)
    assert "cancelled: nothing was changed" in one_line_error(cancelled.err[len(prompt):])
    assert folder_state(versions) == before
    assert not (project_dir / "backups").exists()

    accepted = run_tty(["squash"], env, project_dir, "squash\n\n")
    assert accepted.code == 0, accepted.err
    assert "Type 'squash' to squash the migration chain" in accepted.err
    assert "press Enter to replace the versions directory" in accepted.err
    assert folder_state(versions) != before


def test_without_a_terminal_and_without_confirm_it_refuses_before_doing_anything(
        pgdata: Path, fresh_db: str, project_dir: Path, server: EmbeddedServer) -> None:
    backend = copy_project(FIXTURES / "rename_column", project_dir)
    env = squash_env(pgdata, fresh_db, project_dir, backend)
    before = folder_state(backend)
    dbs_before = scratch_databases(server)
    result = run_cli(["squash"], env, cwd=project_dir)
    assert result.code == 2
    assert "CONFIRM=squash" in one_line_error(result.err)
    wrong = run_cli(["squash"], dict(env, CONFIRM="yes"), cwd=project_dir)
    assert wrong.code == 2 and "does not match" in one_line_error(wrong.err)
    assert folder_state(backend) == before
    assert not (project_dir / "backups").exists()
    assert scratch_databases(server) == dbs_before


# Alembic takes any string as a revision id; the squash keeps the head's id by default.
UNSAFE_IDS = ["../../pwnrev", '..\\pwn" rev']


@pytest.mark.parametrize("rev_id", UNSAFE_IDS, ids=["dot-dot-slash", "backslash-quote"])
def test_a_head_revision_id_that_is_a_path_writes_nothing_outside_the_versions_directory(
        rev_id: str, pgdata: Path, fresh_db: str, project_dir: Path, server: EmbeddedServer,
        tmp_path: Path) -> None:
    backend = copy_project(FIXTURES / "rename_column", project_dir)
    versions = versions_of(backend)
    head = versions / "0a0100000003_rename_person_to_people.py"
    head.write_text(head.read_text().replace('revision = "0a0100000003"',
                                             f"revision = {rev_id!r}"))
    # SEED_DATA_FILE_ROWS=0: the seed rows go to a data folder named from the id too.
    env = squash_env(pgdata, fresh_db, project_dir, backend, CONFIRM="squash",
                     SEED_DATA_FILE_ROWS="0")
    settings = load_settings(project_dir, env)
    AlembicProject(settings, server).upgrade(fresh_db, "head")
    named, data = f"{safe_name(rev_id)}_squashed_3_revisions.py", f"{safe_name(rev_id)}_data"
    assert "/" not in named and "\\" not in named and not named.startswith(".")

    def written() -> list[Path]:
        return sorted(p for p in tmp_path.rglob("*") if "pwn" in p.name)

    before = folder_state(backend)
    result, folder = dry_run(env, project_dir, tmp_path)
    assert result.code == 0, result.err + result.out
    assert folder is not None and folder_state(backend) == before
    assert written() == [folder / "versions" / data, folder / "versions" / named]
    shutil.rmtree(folder)

    result = run_cli(["squash"], env, cwd=project_dir)
    assert result.code == 0, result.err + result.out
    assert sorted(vdir.file_hashes(versions)) == [f"{data}/public.people.csv.gz", named]
    assert written() == [versions / data, versions / named]
    module = ast.parse((versions / named).read_text())
    assert [n.value.value for n in module.body if isinstance(n, ast.Assign)
            and getattr(n.targets[0], "id", "") == "revision"] == [rev_id]
    new = AlembicProject(settings, server)
    assert new.heads() == [rev_id] and new.current(fresh_db) == [rev_id]

    # Squashed again: its data folder is found under the same safe name, and goes into the
    # backup and the archive with its revision.
    squashed = vdir.file_hashes(versions)
    result = run_cli(["squash"], dict(env, SEED_DATA_FILE_ROWS="1000"), cwd=project_dir)
    assert result.code == 0, result.err + result.out
    assert sorted(vdir.file_hashes(versions)) == [f"{safe_name(rev_id)}_squashed_1_revisions.py"]
    archived = sorted((versions.parent / "versions_archived").iterdir())
    assert {k: v for k, v in vdir.file_hashes(archived[-1]).items()
            if k != "dbkit_archive.json"} == squashed
    assert all(p.is_relative_to(versions) or p.is_relative_to(versions.parent /
                                                              "versions_archived")
               or p.is_relative_to(project_dir / "backups") for p in written()), written()


def test_names_made_from_revision_ids_are_one_plain_component(tmp_path: Path) -> None:
    nasty = ["../../pwnrev", "..", ".", ".hidden", "a/b", "a\\b", "x\x00y", "", "-rf",
             "ü", "a" * 300, "a..b"]
    names = [safe_name(text) for text in nasty]
    for name in names:
        assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]*-[0-9a-f]{8}", name), name
        assert inside(tmp_path, name) == tmp_path / name
    assert len(set(names)) == len(names)
    assert [safe_name(t) for t in ("0a0100000003", "abc_def-1", "1.0")] == [
        "0a0100000003", "abc_def-1", "1.0"]  # ids that are plain names keep them
    (tmp_path / "out").symlink_to("/tmp")
    for rel in ("../x", "a/../../x", "out/x", "", "."):
        with pytest.raises(ConfigError, match="is not inside"):
            inside(tmp_path, rel)


def test_an_archive_refuses_a_file_name_from_outside_the_versions_directory(
        tmp_path: Path) -> None:
    # The names may come from a killed run's intent file (project/recovery.py).
    versions, old = tmp_path / "app" / "versions", tmp_path / "old"
    versions.mkdir(parents=True)
    old.mkdir()
    (old / "a.py").write_text("x")
    (tmp_path / "secret").write_text("s")
    with pytest.raises(ConfigError, match="is not inside"):
        archive.make(versions, old, ["a.py", "../secret"], revisions=["a"], last="a",
                     squashed="a")
    assert sorted(p.name for p in tmp_path.rglob("secret")) == ["secret"]


def test_column_options_the_server_sets_are_not_the_users() -> None:
    """Debian's 15.20 stores pg_attver=<n> on every column, n differing per table: it is
    neither captured nor compared, in the catalog snapshot or in pg_dump's text."""
    assert catalog.user_attoptions(["pg_attver=22158952"]) is None
    assert catalog.user_attoptions(["pg_attver=1", "n_distinct=5"]) == ["n_distinct=5"]
    assert catalog.user_attoptions(None) is None
    a = prove.normalise_dump(
        "ALTER TABLE ONLY public.t ALTER COLUMN id SET (pg_attver=22158952);\n"
        "ALTER TABLE ONLY public.t ALTER COLUMN x SET (pg_attver=22158952, n_distinct=5);\n")
    b = prove.normalise_dump(
        "ALTER TABLE ONLY public.t ALTER COLUMN x SET (n_distinct=5, pg_attver=42);\n")
    assert a == b == ["ALTER TABLE ONLY public.t ALTER COLUMN x SET (n_distinct=5);"]
