"""After a squash, a database at an older revision catches up through the archived chain.

The sample backend is squashed once for the module (the databases that lag behind are built
before, each with a row of its own); the small rename_column fixture is squashed twice in a
row for the chained archives, the tampered archive, SQL=1 and archive-prune.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from backup_helpers import execute, one_line_error
from squash_helpers import copy_project, squash_env, versions_of

from conftest import BACKEND, FIXTURES, run_cli
from dbkit.pg import catalog, scratch
from dbkit.pg.embedded import EmbeddedServer
from dbkit.project import archive
from dbkit.project.chain import AlembicProject
from dbkit.settings import load_settings

HEAD = "0a9d4c2e8f61"
# One before the branch point, one on each branch of the merge 0c7e4a91b2f5.
LAGGING = {"d26f8a4c1e93": "before the merge", "a58c2e7d4f19": "users branch",
           "e9d14b6c3a27": "audit branch"}


def _db(tag: str) -> str:
    return f"catchup_{tag}_{secrets.token_hex(3)}"


def _one(server: EmbeddedServer, dbname: str, query: str) -> Any:
    conn = server.connect(dbname)
    try:
        with conn.cursor() as cur:
            cur.execute(query)
            return cur.fetchone()[0]
    finally:
        conn.close()


def _tables(server: EmbeddedServer, dbname: str) -> dict[str, int]:
    conn = server.connect(dbname)
    try:
        return catalog.table_row_counts(conn)
    finally:
        conn.close()


@pytest.fixture(scope="module")
def sample(server: EmbeddedServer, pgdata: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The sample squashed (real run), databases left behind at LAGGING, a fresh install."""
    project_dir = tmp_path_factory.mktemp("catchup") / "project"
    project_dir.mkdir()
    backend = copy_project(BACKEND, project_dir)
    env = squash_env(pgdata, _db("dev"), project_dir, backend, CONFIRM="squash")
    settings = load_settings(project_dir, env)
    made: list[str] = []
    try:
        old = AlembicProject(settings, server)
        behind = {}
        for rev in LAGGING:
            name = _db(rev[:6])
            server.create_database(name)
            made.append(name)
            old.upgrade(name, rev)
            execute(server, name, "INSERT INTO genes (symbol) VALUES ('OWN1')")
            behind[rev] = name
        result = run_cli(["squash"], env, cwd=project_dir)
        assert result.code == 0, result.err
        fresh = _db("fresh")
        server.create_database(fresh)
        made.append(fresh)
        AlembicProject(settings, server).upgrade(fresh, "head")
        yield {"env": env, "project_dir": project_dir, "backend": backend, "behind": behind,
               "fresh": fresh, "settings": settings, "squash": result}
    finally:
        for name in made:
            scratch.drop_database(server, name)


@pytest.mark.parametrize("rev", sorted(LAGGING), ids=lambda r: LAGGING[r].replace(" ", "_"))
def test_a_database_behind_catches_up_through_the_archive_and_keeps_its_rows(
        sample: dict[str, Any], server: EmbeddedServer, rev: str) -> None:
    db = sample["behind"][rev]
    assert "`make db-upgrade` catches it up" not in sample["squash"].out  # dev did not exist
    where = run_cli(["current"], dict(sample["env"], POSTGRES_DB=db), cwd=sample["project_dir"])
    assert f"{rev} (in the archived chain " in where.out
    assert "`make db-upgrade` catches it up" in where.out
    result = run_cli(["upgrade"], dict(sample["env"], POSTGRES_DB=db),
                     cwd=sample["project_dir"])
    assert result.code == 0, result.err
    assert f"{db} is at {rev}, a revision a squash replaced" in result.out
    assert "Stage 1/2" in result.out and "with the archived chain" in result.out
    assert "Stage 2/2" in result.out and f"{db} is at {HEAD}" in result.out
    assert AlembicProject(sample["settings"], server).current(db) == [HEAD]
    # Its own row came through, renamed column and all; without it, it is a fresh install.
    assert _one(server, db, "SELECT count(*) FROM genes WHERE approved_symbol = 'OWN1'") == 1
    execute(server, db, "DELETE FROM genes WHERE approved_symbol = 'OWN1'")
    assert catalog.diff_snapshots(catalog.snapshot_of(server, sample["fresh"]),
                                  catalog.snapshot_of(server, db)) == []
    assert _tables(server, db) == _tables(server, sample["fresh"])  # seed rows included
    again = run_cli(["upgrade"], dict(sample["env"], POSTGRES_DB=db), cwd=sample["project_dir"])
    assert again.code == 0 and "Stage" not in again.out


def test_validate_says_a_database_in_the_archive_catches_up(
        sample: dict[str, Any], server: EmbeddedServer) -> None:
    db = _db("validate")
    server.create_database(db)
    try:
        AlembicProject(sample["settings"], server,
                       version_locations=next(archive.folder(versions_of(sample["backend"]))
                                              .iterdir())).upgrade(db, "3c1e5a7b9d24")
        result = run_cli(["validate", "--json"], dict(sample["env"], POSTGRES_DB=db,
                                                      CHECKS="chain"),
                         cwd=sample["project_dir"])
        report = json.loads(result.out)
        assert report["revision"]["status"] == "behind", report["revision"]
        assert any("make db-upgrade catches it up" in d["database"]
                   for d in report["differences"]), report["differences"]
    finally:
        scratch.drop_database(server, db)


# -- two squashes in a row, tampering, SQL=1, prune (the small rename_column chain) ----------

NEXT = '''"""add notes

Revision ID: 0a0100000004
Revises: 0a0100000003
"""
from alembic import op

revision = "0a0100000004"
down_revision = "0a0100000003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE people ADD COLUMN notes text DEFAULT 'none'")


def downgrade() -> None:
    op.execute("ALTER TABLE people DROP COLUMN notes")
'''


@pytest.fixture(scope="module")
def twice(server: EmbeddedServer, pgdata: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """rename_column squashed, a revision added, squashed again (NEW_REVISION=1 the second
    time: the catch-up then stamps); databases left at its first revision."""
    project_dir = tmp_path_factory.mktemp("twice") / "project"
    project_dir.mkdir()
    backend = copy_project(FIXTURES / "rename_column", project_dir)
    env = squash_env(pgdata, _db("dev"), project_dir, backend, CONFIRM="squash")
    settings = load_settings(project_dir, env)
    made: list[str] = []
    try:
        early = {}
        for use in ("catch", "tamper", "sql", "prune"):
            name = _db(use)
            server.create_database(name)
            made.append(name)
            AlembicProject(settings, server).upgrade(name, "0a0100000001")
            execute(server, name, "INSERT INTO person (name) VALUES ('Own')")
            early[use] = name
        first = run_cli(["squash"], env, cwd=project_dir)
        assert first.code == 0, first.err
        (versions_of(backend) / "0a0100000004_add_notes.py").write_text(NEXT)
        second = run_cli(["squash"], dict(env, NEW_REVISION="1"), cwd=project_dir)
        assert second.code == 0, second.err
        (head,) = AlembicProject(settings, server).heads()
        fresh = _db("fresh")
        server.create_database(fresh)
        made.append(fresh)
        AlembicProject(settings, server).upgrade(fresh, "head")
        yield {"env": env, "project_dir": project_dir, "backend": backend, "early": early,
               "fresh": fresh, "head": head, "settings": settings}
    finally:
        for name in made:
            scratch.drop_database(server, name)


def test_two_squashes_in_a_row_chain_their_archives(
        twice: dict[str, Any], server: EmbeddedServer) -> None:
    found = archive.archives(versions_of(twice["backend"]))
    assert [(a.revisions, a.last) for a in found] == [
        (("0a0100000001", "0a0100000002", "0a0100000003"), "0a0100000003"),
        (("0a0100000003", "0a0100000004"), "0a0100000004")]
    assert found[1].squashed == twice["head"] != "0a0100000004"
    db = twice["early"]["catch"]
    result = run_cli(["upgrade"], dict(twice["env"], POSTGRES_DB=db), cwd=twice["project_dir"])
    assert result.code == 0, result.err
    assert "catches up in 3 stages" in result.out
    assert f"then stamped {twice['head']}" in result.out
    assert AlembicProject(twice["settings"], server).current(db) == [twice["head"]]
    assert _one(server, db, "SELECT notes FROM people WHERE full_name = 'Own'") == "none"
    execute(server, db, "DELETE FROM people WHERE full_name = 'Own'")
    assert catalog.diff_snapshots(catalog.snapshot_of(server, twice["fresh"]),
                                  catalog.snapshot_of(server, db)) == []
    assert _tables(server, db) == _tables(server, twice["fresh"])


def test_a_tampered_archive_is_refused_before_anything_runs(
        twice: dict[str, Any], server: EmbeddedServer, tmp_path: Path) -> None:
    # A copy of the project: the archive of the module's project stays as the squash left it.
    project_dir = tmp_path / "project"
    project_dir.mkdir()
    backend = copy_project(twice["backend"], project_dir)
    first = archive.archives(versions_of(backend))[0]
    victim = first.path / "0a0100000002_rename_name_to_full_name.py"
    victim.write_text(victim.read_text() + "\n# changed\n")
    db = twice["early"]["tamper"]
    env = dict(twice["env"], POSTGRES_DB=db, BACKEND_DIR=str(backend),
               BACKUP_DIR=str(project_dir / "backups"))
    before = catalog.snapshot_of(server, db)
    for argv in (["upgrade"], ["upgrade", "--sql"]):
        result = run_cli(argv, env, cwd=project_dir)
        assert result.code == 2
        line = one_line_error(result.err)
        assert "0a0100000002_rename_name_to_full_name.py changed (sha256 differs)" in line
        assert "nothing was changed" in line
    assert catalog.diff_snapshots(before, catalog.snapshot_of(server, db)) == []
    assert _one(server, db, "SELECT version_num FROM alembic_version") == "0a0100000001"


def test_sql_1_prints_the_whole_catch_up_and_runs_nothing(
        twice: dict[str, Any], server: EmbeddedServer) -> None:
    db = twice["early"]["sql"]
    result = run_cli(["upgrade"], dict(twice["env"], POSTGRES_DB=db, SQL="1"),
                     cwd=twice["project_dir"])
    assert result.code == 0, result.err
    sql = result.out
    assert "-- dbkit catch-up, stage 1/3" in sql and "-- dbkit catch-up, stage 3/3" in sql
    assert "ALTER TABLE person RENAME name TO full_name" in sql
    assert "ALTER TABLE person RENAME TO people" in sql
    assert "ADD COLUMN notes" in sql
    assert f"UPDATE alembic_version SET version_num='{twice['head']}'" in sql
    assert _one(server, db, "SELECT version_num FROM alembic_version") == "0a0100000001"


def test_sql_1_quotes_the_revision_ids_of_its_stamp(monkeypatch: pytest.MonkeyPatch) -> None:
    # The printed SQL is run as it stands: an id with a quote must not end its literal.
    class Chain:
        def __init__(self, *args: object, **kwargs: object) -> None:
            pass

        def upgrade_sql(self, *args: object) -> str:
            return ""

    monkeypatch.setattr(archive, "AlembicProject", Chain)
    stages = [archive.Stage(None, ("o'ld",), "o'ld", stamp="it's; DROP TABLE t; --")]
    sql = archive.offline_sql(None, None, "db", stages)  # type: ignore[arg-type]
    assert "UPDATE alembic_version SET version_num='it''s; DROP TABLE t; --' WHERE " \
        "version_num='o''ld';" in sql


def test_archive_prune_asks_and_refuses_while_a_database_needs_the_archive(
        twice: dict[str, Any], server: EmbeddedServer) -> None:
    names = [a.name for a in archive.archives(versions_of(twice["backend"]))]
    db = twice["early"]["prune"]
    env = dict(twice["env"], POSTGRES_DB=db)
    cwd = twice["project_dir"]
    unnamed = run_cli(["archive-prune"], env, cwd=cwd)
    assert unnamed.code == 2 and "ARCHIVE=<name>" in one_line_error(unnamed.err)
    later = run_cli(["archive-prune"], dict(env, ARCHIVE=names[1], CONFIRM="prune"), cwd=cwd)
    assert later.code == 2
    assert f"{names[0]} catches up through {names[1]}: prune it first" in one_line_error(
        later.err)
    inside = run_cli(["archive-prune"], dict(env, ARCHIVE=names[0], CONFIRM="prune"), cwd=cwd)
    assert inside.code == 2
    assert f"inside the archive {names[0]}" in one_line_error(inside.err)
    assert run_cli(["upgrade"], env, cwd=cwd).code == 0
    unasked = run_cli(["archive-prune"], dict(env, ARCHIVE=names[0]), cwd=cwd)
    assert unasked.code == 2 and "CONFIRM=prune" in one_line_error(unasked.err)
    assert len(archive.archives(versions_of(twice["backend"]))) == 2
    done = run_cli(["archive-prune"], dict(env, ARCHIVE=names[0], CONFIRM="prune"), cwd=cwd)
    assert done.code == 0, done.err
    assert [a.name for a in archive.archives(versions_of(twice["backend"]))] == names[1:]


def test_a_restore_that_undoes_a_squash_says_its_archive_is_no_longer_needed(
        server: EmbeddedServer, pgdata: Path, fresh_db: str, project_dir: Path) -> None:
    """restore-full of the backup taken before a squash puts the old chain back; the
    archive stays (the squash may come back), and the restore and db-archive-prune say
    that nothing needs it and how to remove it."""
    backend = copy_project(FIXTURES / "rename_column", project_dir)
    env = squash_env(pgdata, fresh_db, project_dir, backend, CONFIRM="squash")
    assert run_cli(["upgrade"], env, cwd=project_dir).code == 0
    result = run_cli(["squash"], env, cwd=project_dir)
    assert result.code == 0, result.err
    (before_squash,) = sorted(p for p in (project_dir / "backups").iterdir() if p.is_dir())
    (made,) = archive.archives(versions_of(backend))
    restored = run_cli(["restore-full"], {**env, "BACKUP": before_squash.name,
                                          "CONFIRM": "restore"}, cwd=project_dir)
    assert restored.code == 0, restored.err + restored.out
    assert (f"The archive {made.path} is of a squash this restore undid: its 3 revisions are "
            "in the versions directory again, so no database needs it. Remove it with make "
            f"db-archive-prune ARCHIVE={made.name}, or keep it if you will put that squash "
            "back (databases left behind would catch up through it)") in restored.out
    listing = run_cli(["archive-prune"], env, cwd=project_dir)
    assert listing.code == 2
    assert "that squash was undone (its revisions are in the versions directory again): no " \
           "database needs it" in listing.out
    pruned = run_cli(["archive-prune"], {**env, "ARCHIVE": made.name, "CONFIRM": "prune"},
                     cwd=project_dir)
    assert pruned.code == 0, pruned.err
    assert not made.path.exists()
    assert run_cli(["current"], env, cwd=project_dir).out.splitlines()[-1].endswith("(head)")
