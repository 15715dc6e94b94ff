"""make db-squash-migrations UNTIL=<rev>: base..rev as one revision keeping rev's id, the
revisions after it untouched; proven against the chain up to rev and, whole, at head."""

from __future__ import annotations

from pathlib import Path

import pytest
from backup_helpers import execute, folder_state, one_line_error
from squash_helpers import (
    copy_project,
    dry_run,
    report_of,
    scratch_databases,
    squash_env,
    squashed_file,
    versions_of,
)

from conftest import BACKEND, FIXTURES, run_cli
from dbkit.pg import catalog, scratch
from dbkit.pg.embedded import EmbeddedServer
from dbkit.project import archive
from dbkit.project.chain import AlembicProject
from dbkit.settings import load_settings

HEAD = "0a9d4c2e8f61"
# (UNTIL, revisions squashed): the branch point, the merge, a revision after the merge.
POINTS = {"7f3b9d1e5a60": 10, "0c7e4a91b2f5": 13, "2e8c4a6f0b93": 16}


@pytest.mark.parametrize("until", sorted(POINTS))
def test_until_squashes_base_to_rev_and_proves_the_whole_chain_at_head(
        pgdata: Path, fresh_db: str, project_dir: Path, server: EmbeddedServer,
        tmp_path: Path, until: str) -> None:
    backend = copy_project(BACKEND, project_dir)
    env = squash_env(pgdata, fresh_db, project_dir, backend, UNTIL=until)
    before = folder_state(backend)
    dbs_before = scratch_databases(server)
    result, folder = dry_run(env, project_dir, tmp_path)
    assert result.code == 0, result.err
    assert folder is not None
    assert f"{POINTS[until]} revisions" in result.out
    assert f"the {24 - POINTS[until]} revisions after it, up to the head {HEAD}" in result.out
    assert folder_state(backend) == before and scratch_databases(server) == dbs_before
    report = report_of(folder)
    # The summary names the squashed range (up to UNTIL, not the head) and whose id it keeps.
    assert report["replaced"]["last"] == until and report["replaced"]["until"] == until
    assert f"… {until}; the {24 - POINTS[until]} revisions after it are kept" in result.out
    assert f"{until} (UNTIL's id)" in result.out and "old head's id" not in result.out
    assert any("whole versions directory at head identical" in c for c in report["proof"])
    assert report["model_drift"] == []
    staged = folder / "versions"
    new = squashed_file(staged)
    assert new.name == f"{until}_squashed_{POINTS[until]}_revisions.py"
    # The revisions after UNTIL are there, byte for byte; those up to it are not.
    settings = load_settings(project_dir, env)
    old_revs = AlembicProject(settings, server).revisions()
    new_revs = AlembicProject(settings, server, version_locations=staged).revisions()
    assert len(new_revs) == 24 - POINTS[until] + 1
    by_name = {p.name: p for p in versions_of(backend).iterdir()}
    for rev in new_revs:
        if rev.revision != until:
            assert rev.path.read_bytes() == by_name[rev.path.name].read_bytes()
    assert {r.revision for r in new_revs} < {r.revision for r in old_revs}


def test_a_real_partial_squash_keeps_the_later_files_and_a_database_below_catches_up(
        pgdata: Path, fresh_db: str, project_dir: Path, server: EmbeddedServer) -> None:
    backend = copy_project(BACKEND, project_dir)
    env = squash_env(pgdata, fresh_db, project_dir, backend, UNTIL="0c7e4a91b2f5",
                     CONFIRM="squash")
    settings = load_settings(project_dir, env)
    AlembicProject(settings, server).upgrade(fresh_db, "7f3b9d1e5a60")
    execute(server, fresh_db, "INSERT INTO genes (symbol) VALUES ('OWN1')")
    result = run_cli(["squash"], env, cwd=project_dir)
    assert result.code == 0, result.err
    assert "`make db-upgrade` catches it up" in result.out
    (found,) = archive.archives(versions_of(backend))
    assert found.last == found.squashed == "0c7e4a91b2f5" and len(found.revisions) == 13
    assert AlembicProject(settings, server).heads() == [HEAD]
    up = run_cli(["upgrade"], env, cwd=project_dir)
    assert up.code == 0, up.err
    assert "Stage 2/2: 0c7e4a91b2f5 → head with the versions directory" in up.out
    assert AlembicProject(settings, server).current(fresh_db) == [HEAD]
    execute(server, fresh_db, "DELETE FROM genes WHERE approved_symbol = 'OWN1'")
    with scratch.scratch_database(server, "fresh") as fresh:
        AlembicProject(settings, server).upgrade(fresh, "head")
        assert catalog.diff_snapshots(catalog.snapshot_of(server, fresh),
                                      catalog.snapshot_of(server, fresh_db)) == []


@pytest.mark.parametrize(("fixture", "until", "says"), [
    (BACKEND, "deadbeef0000", "UNTIL=deadbeef0000: no such revision in the chain"),
    (BACKEND, "a58c2e7d4f19", "UNTIL=a58c2e7d4f19 sits inside a branch that merges later "
                              "(e9d14b6c3a27 runs beside it)"),
    (FIXTURES / "two_heads", "0afe0000000a", "UNTIL=0afe0000000a is not an ancestor of every "
                                             "head (0afe0000000b does not descend from it)"),
], ids=["unknown", "inside-a-branch", "not-below-every-head"])
def test_until_refuses_a_revision_not_every_path_passes_through(
        pgdata: Path, fresh_db: str, project_dir: Path, server: EmbeddedServer,
        tmp_path: Path, fixture: Path, until: str, says: str) -> None:
    backend = copy_project(fixture, project_dir)
    env = squash_env(pgdata, fresh_db, project_dir, backend, UNTIL=until, CONFIRM="squash")
    before = folder_state(backend)
    dbs_before = scratch_databases(server)
    for argv in (["squash"], ["squash", "--dry-run"]):
        result = run_cli(argv, env, cwd=project_dir)
        assert result.code == 2
        assert says in one_line_error(result.err)
    assert folder_state(backend) == before and scratch_databases(server) == dbs_before
    assert not (project_dir / "backups").exists()
    both = run_cli(["squash"], dict(env, NEW_REVISION="1"), cwd=project_dir)
    assert both.code == 2 and "UNTIL= and NEW_REVISION=1" in one_line_error(both.err)
