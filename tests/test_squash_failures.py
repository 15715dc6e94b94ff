"""Failure at each step of a real squash: the versions directory stays byte for byte as it
was, no scratch database is left, and the user gets one clear line and a non-zero exit.

Steps are made to fail for real where a fixture can do it (a revision that raises, two
heads, Ctrl-C sent to a running dbkit) and by replacing one function otherwise (capture,
render, the check after the swap); the proof mismatch is a real proof of a damaged file.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from backup_helpers import folder_state, one_line_error
from squash_helpers import (
    copy_project,
    dry_run,
    scratch_databases,
    squash_env,
    squashed_file,
    versions_of,
)

from conftest import BACKEND, FIXTURES, Result, run_cli
from dbkit.pg.embedded import EmbeddedServer
from dbkit.squash import flow as squash
from dbkit.squash import render


@pytest.fixture
def project(pgdata: Path, fresh_db: str, project_dir: Path,
            server: EmbeddedServer) -> tuple[Path, dict[str, str], dict[str, bytes], set[str]]:
    """A copy of the rename_column fixture, a confirmed squash's env, and the state before."""
    backend = copy_project(FIXTURES / "rename_column", project_dir)
    env = squash_env(pgdata, fresh_db, project_dir, backend, CONFIRM="squash")
    return backend, env, folder_state(backend), scratch_databases(server)


def _unchanged(backend: Path, before: dict[str, bytes], server: EmbeddedServer,
               dbs_before: set[str]) -> None:
    assert folder_state(backend) == before
    assert not [p for p in backend.rglob(".versions.dbkit-*")], "staged folders are removed"
    assert scratch_databases(server) == dbs_before


def _squash_case(case: str, pgdata: Path, fresh_db: str, project_dir: Path,
                 server: EmbeddedServer) -> str:
    """A confirmed squash of a fixture that must fail: its stderr, once nothing changed."""
    backend = copy_project(FIXTURES / case, project_dir)
    before, dbs_before = folder_state(backend), scratch_databases(server)
    result = run_cli(["squash"], squash_env(pgdata, fresh_db, project_dir, backend,
                                            CONFIRM="squash"), cwd=project_dir)
    assert result.code == 2, result.out + result.err
    _unchanged(backend, before, server, dbs_before)
    return result.err


def test_a_revision_that_fails_is_named_and_nothing_changes(
        pgdata: Path, fresh_db: str, project_dir: Path, server: EmbeddedServer) -> None:
    err = _squash_case("broken_chain", pgdata, fresh_db, project_dir, server)
    # One line naming the revision; the migration's own traceback follows for its author.
    assert err.splitlines()[0].startswith(
        "dbkit squash: error: alembic upgrade head failed in revision 0aff00000002: "
        "DataError: (psycopg2.errors.DivisionByZero) division by zero")


def test_two_heads_are_refused_and_named(pgdata: Path, fresh_db: str, project_dir: Path,
                                         server: EmbeddedServer) -> None:
    line = one_line_error(_squash_case("two_heads", pgdata, fresh_db, project_dir, server))
    assert "0afe0000000a (head a)" in line and "0afe0000000b (head b)" in line
    assert "alembic merge" in line
    assert not (project_dir / "backups").exists()


def test_capture_refuses_what_it_cannot_reproduce(
        pgdata: Path, fresh_db: str, project_dir: Path, server: EmbeddedServer) -> None:
    err = _squash_case("unsupported", pgdata, fresh_db, project_dir, server)
    assert one_line_error(err) == (
        "dbkit squash: error: the chain creates objects dbkit cannot reproduce yet "
        "(partitioned or inherited table: public.measure, public.measure_2024; rule: "
        "public.event: no_delete); nothing was changed")


def test_target_pg_refuses_what_the_target_major_lacks(
        pgdata: Path, fresh_db: str, project_dir: Path, server: EmbeddedServer,
        tmp_path: Path) -> None:
    """TARGET_PG below a feature the chain uses: one line naming each feature, the major it
    needs and where; at the server's own major (the default) the same chain squashes."""
    if server.major < 15:
        pytest.skip(f"the fixture's chain needs PostgreSQL 15 (this is {server.major})")
    backend = copy_project(FIXTURES / "target_lacks", project_dir)
    before, dbs_before = folder_state(backend), scratch_databases(server)
    env = squash_env(pgdata, fresh_db, project_dir, backend, CONFIRM="squash", TARGET_PG="14")
    result = run_cli(["squash"], env, cwd=project_dir)
    assert result.code == 2, result.out + result.err
    expected = ("dbkit squash: error: TARGET_PG=14: the chain uses what PostgreSQL 14 does not "
                "have: UNIQUE NULLS NOT DISTINCT (PostgreSQL 15+): public.slot.uq_slot_room, "
                "public.slot.ux_slot_starts")
    if server.major >= 18:
        expected += ("; virtual generated columns (PostgreSQL 18+): public.slot.ends; "
                     "NOT ENFORCED constraints (PostgreSQL 18+): public.slot.ck_slot_room")
    assert one_line_error(result.err) == expected + (
        "; nothing was changed (raise TARGET_PG to the oldest major you run, or change the "
        "chain)")
    _unchanged(backend, before, server, dbs_before)
    if server.major >= 18:  # 17 lacks only what 18 added
        env["TARGET_PG"] = "17"
        line = one_line_error(run_cli(["squash"], env, cwd=project_dir).err)
        assert "NULLS NOT DISTINCT" not in line and "public.slot.ends" in line, line
    result, folder = dry_run({**env, "TARGET_PG": ""}, project_dir, tmp_path)
    assert result.code == 0, result.err + result.out
    text = squashed_file(folder / "versions").read_text()
    assert f"for PostgreSQL {server.major} and later (TARGET_PG)" in text
    assert "UNIQUE NULLS NOT DISTINCT (room, starts)" in text


MAINTAIN_REVISION = '''"""grant maintain

Revision ID: 0a1800000002
Revises: 0a1800000001
"""
from alembic import op

revision = "0a1800000002"
down_revision = "0a1800000001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("GRANT MAINTAIN ON secret TO dbkit_fixture_reader")


def downgrade() -> None:
    op.execute("REVOKE MAINTAIN ON secret FROM dbkit_fixture_reader")
'''


def test_target_pg_refuses_a_maintain_grant_not_the_owners_own(
        pgdata: Path, fresh_db: str, project_dir: Path, server: EmbeddedServer,
        tmp_path: Path) -> None:
    """From 17 on the owner of every table holds MAINTAIN by default: not a grant, so the
    grants fixture squashes for 14; a GRANT MAINTAIN to another role is refused for 16."""
    if server.major < 17:
        pytest.skip(f"MAINTAIN is PostgreSQL 17's (this is {server.major})")
    backend = copy_project(FIXTURES / "grants", project_dir)
    env = squash_env(pgdata, fresh_db, project_dir, backend, TARGET_PG="14")
    result, _ = dry_run(env, project_dir, tmp_path)
    assert result.code == 0, result.err + result.out
    (versions_of(backend) / "0a1800000002_grant_maintain.py").write_text(MAINTAIN_REVISION)
    result = run_cli(["squash"], {**env, "TARGET_PG": "16", "CONFIRM": "squash"},
                     cwd=project_dir)
    assert result.code == 2, result.out + result.err
    assert one_line_error(result.err) == (
        "dbkit squash: error: TARGET_PG=16: the chain uses what PostgreSQL 16 does not have: "
        "the MAINTAIN privilege (PostgreSQL 17+): public.secret; nothing was changed (raise "
        "TARGET_PG to the oldest major you run, or change the chain)")


def _squash_rendered(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], project_dir: Path,
                     edit: Callable[[str], str]) -> Result:
    """A confirmed squash whose rendered revision is changed by ``edit`` before the proof."""
    real = render.render_revision
    monkeypatch.setattr(render, "render_revision",
                        lambda *args, **kwargs: edit(real(*args, **kwargs)))
    return run_cli(["squash"], env, cwd=project_dir)


def test_render_failure(project, project_dir: Path, server: EmbeddedServer,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    backend, env, before, dbs_before = project

    def broken(*args: object, **kwargs: object) -> str:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(render, "render_revision", broken)
    result = run_cli(["squash"], env, cwd=project_dir)
    assert result.code == 2
    assert one_line_error(result.err) == "dbkit squash: error: No space left on device"
    _unchanged(backend, before, server, dbs_before)


def test_proof_mismatch_names_what_differs(project, project_dir: Path, server: EmbeddedServer,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A revision that loses one seed row and one index must not get past the proof."""
    backend, env, before, dbs_before = project

    def lossy(text: str) -> str:
        text = re.sub(r'\n *\{"id": 3, [^\n]*\},', "", text)
        return text.replace('op.execute("CREATE INDEX ix_person_name ON public.people USING '
                            'btree (full_name)")', "")

    result = _squash_rendered(monkeypatch, env, project_dir, lossy)
    assert result.code == 1
    assert one_line_error(result.err).startswith(
        "dbkit squash: error: proof failed: B (new revision) differs from A (old chain)")
    assert "index public.people.ix_person_name: only in A" in result.err
    assert "rows of public.people: 3 in A vs 2 in B" in result.err
    assert "only in A: (3,Grace,)" in result.err
    reports = list((project_dir / "backups").glob("*/squash_report.md"))
    assert len(reports) == 1 and "only in A: (3,Grace,)" in reports[0].read_text()
    _unchanged(backend, before, server, dbs_before)


def test_a_downgrade_that_leaves_objects_fails_the_proof(
        project, project_dir: Path, server: EmbeddedServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    backend, env, before, dbs_before = project
    result = _squash_rendered(monkeypatch, env, project_dir, lambda text: text.replace(
        'op.execute("DROP TABLE public.people")', "pass"))
    assert result.code == 1
    assert "downgrade() leaves objects behind" in one_line_error(result.err)
    assert "left after downgrade: table public.people: only in downgraded" in result.err
    _unchanged(backend, before, server, dbs_before)


def test_a_downgrade_that_fails_fails_the_proof(
        project, project_dir: Path, server: EmbeddedServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    backend, env, before, dbs_before = project
    result = _squash_rendered(monkeypatch, env, project_dir, lambda text: text.replace(
        "def downgrade() -> None:\n",
        "def downgrade() -> None:\n    raise RuntimeError('cannot go down')\n"))
    assert result.code == 1
    # What failed, and where the whole traceback of the project's Python is, in one line.
    reports = list((project_dir / "backups").glob("*/squash_report.md"))
    assert len(reports) == 1
    assert result.err == (
        "dbkit squash: error: proof failed: downgrade() fails: alembic downgrade base failed "
        "in revision 0a0100000003: RuntimeError: cannot go down (the whole traceback: "
        f"{reports[0]})\n")
    report = reports[0].read_text()
    assert "Traceback (most recent call last)" in report
    assert "_squashed_3_revisions.py\", line " in report and "in downgrade" in report
    _unchanged(backend, before, server, dbs_before)


def test_debug_prints_the_traceback_of_the_projects_python_not_dbkits(
        project, project_dir: Path, server: EmbeddedServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    backend, env, before, dbs_before = project
    real = render.render_revision
    monkeypatch.setattr(render, "render_revision", lambda *a, **kw: real(*a, **kw).replace(
        "def downgrade() -> None:\n",
        "def downgrade() -> None:\n    raise RuntimeError('cannot go down')\n"))
    result = run_cli(["--debug", "squash"], env, cwd=project_dir)
    assert result.code == 1
    trace, line = result.err.rstrip("\n").rsplit("\n", 1)
    assert trace.startswith("Traceback (most recent call last):")
    assert "in downgrade" in trace and trace.endswith("RuntimeError: cannot go down")
    assert "dbkit/squash/" not in trace and "dbkit/cli.py" not in trace  # not dbkit's own
    assert line.startswith("dbkit squash: error: proof failed: downgrade() fails: ")
    _unchanged(backend, before, server, dbs_before)


def test_an_upgrade_that_fails_after_the_downgrade_fails_the_proof(
        project, project_dir: Path, server: EmbeddedServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The first upgrade is identical to A and the downgrade leaves nothing the proof compares
    (a database setting); upgrading again is part of the proof all the same."""
    backend, env, before, dbs_before = project
    once = ('    op.execute("DO $$ BEGIN IF current_setting(\'dbkit.once\', true) = \'done\' '
            "THEN RAISE EXCEPTION 'upgraded twice'; END IF; EXECUTE 'ALTER DATABASE ' || "
            "quote_ident(current_database()) || ' SET dbkit.once = ''done'''; END $$\")\n")
    result = _squash_rendered(monkeypatch, env, project_dir, lambda text: text.replace(
        "def upgrade() -> None:\n", "def upgrade() -> None:\n" + once))
    assert result.code == 1, result.out + result.err
    line = one_line_error(result.err)
    assert line.startswith("dbkit squash: error: proof failed: upgrade() after downgrade() "
                           "fails: alembic upgrade head failed in revision 0a0100000003: ")
    assert "upgraded twice" in line
    _unchanged(backend, before, server, dbs_before)


def test_failure_after_the_swap_puts_the_old_versions_back(
        project, project_dir: Path, server: EmbeddedServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    backend, env, before, dbs_before = project
    monkeypatch.setattr(squash.AlembicProject, "heads", lambda self: ["somethingelse"])
    result = run_cli(["squash"], env, cwd=project_dir)
    assert result.code == 2
    assert "the old versions were put back" in one_line_error(result.err)
    assert not (backend / "versions_archived").exists()
    _unchanged(backend, before, server, dbs_before)


def test_ctrl_c_during_the_proof(pgdata: Path, fresh_db: str, project_dir: Path,
                                 server: EmbeddedServer) -> None:
    backend = copy_project(BACKEND, project_dir)
    before, dbs_before = folder_state(backend), scratch_databases(server)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(squash_env(pgdata, fresh_db, project_dir, backend, CONFIRM="squash"))
    proc = subprocess.Popen([sys.executable, "-m", "dbkit", "squash"], env=env, cwd=project_dir,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = ""
    assert proc.stdout is not None
    while "Building database B from the new revision" not in seen:
        char = proc.stdout.read(1)
        assert char, f"dbkit ended before the proof: {seen}{proc.stderr.read()}"  # type: ignore
        seen += char
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, seen + out + err
    assert "interrupted" in err
    _unchanged(backend, before, server, dbs_before)


def test_a_swap_killed_between_its_two_renames_is_undone_by_the_next_run(
        project, project_dir: Path, tmp_path: Path) -> None:
    backend, env, before, _ = project
    versions = versions_of(backend)
    # As a run killed after its first rename leaves it (pid 4194305 cannot be alive).
    versions.rename(versions.with_name(f".{versions.name}.dbkit-old-4194305"))
    (backend / f".{versions.name}.dbkit-new-4194305").mkdir()
    result = run_cli(["squash", "--dry-run"], env, cwd=project_dir)
    assert result.code == 0, result.err
    assert f"Put back {versions}" in result.err  # said before the verb, on stderr
    assert folder_state(backend) == before
