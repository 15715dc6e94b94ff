"""Big seed tables: rows in a compressed data file beside the squashed revision, loaded with
COPY (psycopg2 and psycopg 3), checked by sha256, proven like every other row."""

from __future__ import annotations

import gzip
import hashlib
import re
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from squash_helpers import (
    copy_project,
    dry_run,
    report_of,
    squash_env,
    squashed_file,
    versions_of,
)

from conftest import FIXTURES, run_cli
from dbkit.pg import scratch
from dbkit.pg.embedded import EmbeddedServer
from dbkit.project import versions as vdir
from dbkit.squash.prove import data_state

PROOF = [
    "A and B identical: pg_dump schema, catalog, rows, sequence positions",
    "downgrade() leaves nothing but alembic_version",
    "upgrade() after downgrade() identical to A again",
]


def _recorded(text: str) -> dict[str, str]:
    """{data file name: sha256} as the revision records them."""
    return dict(re.findall(r"_load_data_file\(\n\s+'([^']+)', \d+,\n.*\n\s+sha256='(\w+)'",
                           text))


def _upgrade(server: EmbeddedServer, backend: Path, versions: Path, dbname: str,
             driver: str = "psycopg2") -> None:
    """``alembic upgrade head`` in this process, as the user's project would run it."""
    cfg = Config(str(backend / "alembic.ini"))
    cfg.set_main_option("version_locations", str(versions))
    url = server.sa_url(dbname).set(drivername=f"postgresql+{driver}")
    cfg.set_main_option("sqlalchemy.url",
                        url.render_as_string(hide_password=False).replace("%", "%%"))
    command.upgrade(cfg, "head")


def _rows(server: EmbeddedServer, dbname: str) -> dict:
    conn = server.connect(dbname)
    try:
        return data_state(conn, "public.alembic_version")
    finally:
        conn.close()


def test_200k_rows_of_reference_data_squash_into_a_small_revision_and_a_data_file(
        pgdata: Path, fresh_db: str, project_dir: Path, tmp_path: Path) -> None:
    backend = copy_project(FIXTURES / "big_reference", project_dir)
    result, folder = dry_run(squash_env(pgdata, fresh_db, project_dir, backend),
                             project_dir, tmp_path)
    assert result.code == 0, result.err + result.out
    assert report_of(folder)["proof"] == PROOF
    revision = squashed_file(folder / "versions")
    text = revision.read_text()
    assert revision.stat().st_size < 200_000
    data = folder / "versions" / "0b1400000002_data" / "public.gene_ref.csv.gz"
    assert _recorded(text) == {data.name: hashlib.sha256(data.read_bytes()).hexdigest()}
    assert "'public.gene_ref.csv.gz', 200000," in text
    assert '{"id": 1, "name": "hgnc"}' in text  # a small table stays literals
    assert len(gzip.decompress(data.read_bytes()).splitlines()) >= 200_000
    report = report_of(folder)
    assert report["captured"]["seed rows"] == 200_003
    assert report["data_size"] == data.stat().st_size
    print(f"revision {revision.stat().st_size:,} bytes, data file {data.stat().st_size:,} bytes")


def test_hard_values_round_trip_through_the_data_files_with_both_drivers(
        pgdata: Path, fresh_db: str, project_dir: Path, server: EmbeddedServer,
        tmp_path: Path) -> None:
    backend = copy_project(FIXTURES / "copy_types", project_dir)
    result, folder = dry_run(
        squash_env(pgdata, fresh_db, project_dir, backend, SEED_DATA_FILE_ROWS="0"),
        project_dir, tmp_path)
    assert result.code == 0, result.err + result.out
    assert report_of(folder)["proof"] == PROOF  # psycopg2: dbkit's own driver
    text = squashed_file(folder / "versions").read_text()
    assert "op.bulk_insert" not in text
    folder_files = sorted(p.name for p in (folder / "versions" / "0c1400000001_data").iterdir())
    assert folder_files == ["public.nasty.csv.gz", "public.odd%2EName%20x.csv.gz"]
    assert set(_recorded(text)) == set(folder_files)
    # psycopg 3 loads the same rows as the old chain put there.
    with scratch.scratch_database(server, "test") as old, \
            scratch.scratch_database(server, "test") as new:
        _upgrade(server, backend, versions_of(backend), old)
        _upgrade(server, backend, folder / "versions", new, driver="psycopg")
        assert _rows(server, new)["rows"] == _rows(server, old)["rows"]
        assert _rows(server, new)["rows"]["public.nasty"][0] == 6


def test_a_changed_data_file_stops_the_upgrade_with_a_clear_message(
        pgdata: Path, fresh_db: str, project_dir: Path, server: EmbeddedServer,
        tmp_path: Path) -> None:
    backend = copy_project(FIXTURES / "copy_types", project_dir)
    result, folder = dry_run(
        squash_env(pgdata, fresh_db, project_dir, backend, SEED_DATA_FILE_ROWS="0"),
        project_dir, tmp_path)
    assert result.code == 0, result.err + result.out
    data = folder / "versions" / "0c1400000001_data" / "public.nasty.csv.gz"
    raw = data.read_bytes()
    data.write_bytes(gzip.compress(gzip.decompress(raw).replace(b"line one", b"line 0ne")))
    for driver in ("psycopg2", "psycopg"):
        with pytest.raises(RuntimeError, match=r"public\.nasty\.csv\.gz was changed or "
                                               r"damaged: its sha256 is \w+, revision "
                                               r"0c1400000001 recorded \w+; nothing was loaded"):
            _upgrade(server, backend, folder / "versions", fresh_db, driver=driver)
        conn = server.connect(fresh_db)
        try:
            with conn.cursor() as cur:  # the whole upgrade was rolled back
                cur.execute("SELECT count(*) FROM pg_class WHERE relname = 'nasty'")
                assert cur.fetchone()[0] == 0
        finally:
            conn.close()
    data.unlink()
    with pytest.raises(RuntimeError, match="the folder '0c1400000001_data' must travel with"):
        _upgrade(server, backend, folder / "versions", fresh_db)


@pytest.mark.parametrize("recursive", [False, True])
def test_alembic_never_takes_the_data_folder_for_revisions(tmp_path: Path,
                                                           recursive: bool) -> None:
    versions = tmp_path / "versions"
    (versions / "abc_data").mkdir(parents=True)
    (versions / "abc_data" / "public.t.csv.gz").write_bytes(gzip.compress(b"1\n"))
    (versions / "abc_squashed_2_revisions.py").write_text(
        'revision = "abc"\ndown_revision = None\nbranch_labels = None\ndepends_on = None\n'
        "def upgrade():\n    pass\ndef downgrade():\n    pass\n")
    cfg = Config()
    cfg.set_main_option("script_location", str(tmp_path))
    cfg.set_main_option("version_locations", str(versions))
    cfg.set_main_option("path_separator", "os")
    if recursive:
        cfg.set_main_option("recursive_version_locations", "true")
    script = ScriptDirectory.from_config(cfg)
    assert [r.revision for r in script.walk_revisions()] == ["abc"]


def test_the_data_folder_travels_with_the_swap_backup_archive_and_a_second_squash(
        pgdata: Path, fresh_db: str, project_dir: Path) -> None:
    backend = copy_project(FIXTURES / "copy_types", project_dir)
    versions = versions_of(backend)
    env = squash_env(pgdata, fresh_db, project_dir, backend, CONFIRM="squash",
                     SEED_DATA_FILE_ROWS="0")
    result = run_cli(["squash"], env, cwd=project_dir)
    assert result.code == 0, result.err + result.out
    first = vdir.file_hashes(versions)
    assert sorted(first) == ["0c1400000001_data/public.nasty.csv.gz",
                             "0c1400000001_data/public.odd%2EName%20x.csv.gz",
                             "0c1400000001_squashed_1_revisions.py"]
    # A second squash (of the squashed revision, same id) writes the folder anew from the
    # rows; the old one goes into the backup and the archive with its revision.
    result = run_cli(["squash"], dict(env, SEED_DATA_FILE_ROWS="1000"), cwd=project_dir)
    assert result.code == 0, result.err + result.out
    assert sorted(vdir.file_hashes(versions)) == ["0c1400000001_squashed_1_revisions.py"]
    assert not (versions / "0c1400000001_data").exists()
    backups = sorted(p for p in (project_dir / "backups").iterdir()
                     if not p.name.startswith("."))
    assert vdir.file_hashes(backups[-1] / "migrations") == first
    archived = sorted((versions.parent / "versions_archived").iterdir())
    assert {k: v for k, v in vdir.file_hashes(archived[-1]).items()
            if k != "dbkit_archive.json"} == first
