"""A proof that cannot be fooled (issue 20), on a project shaped like Prefect's server
database (``projects/env_picks_versions``): alembic.ini names no version_locations and env.py
picks its revisions' folder at run time. dbkit once staged the squashed revision, env.py
replaced the staged folder with its own, and "Dry run: proven" compared the old chain with
itself.

What each scratch database really received is read from the fixture's own record
(``FIXTURE_RAN_LOG``: env.py's on_version_apply writes database, step, revision and file),
not from dbkit's report of itself.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from backup_helpers import one_line_error
from squash_helpers import copy_project, dry_run, squash_env

from conftest import FIXTURES, run_cli, run_dbkit
from dbkit.project import chain

CASE = FIXTURES / "projects" / "env_picks_versions"
CHAIN = ["p1_flow", "p2_flow_run", "p3_tags"]


@pytest.fixture
def flows(pgdata: Path, fresh_db: str, project_dir: Path, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict[str, str], Path]:
    """The project copied, its env, and the fixture's record of every step (the project's
    child inherits dbkit's environment: the record's path goes there)."""
    backend = copy_project(CASE, project_dir)
    log = tmp_path / "ran.log"
    log.touch()
    monkeypatch.setenv("FIXTURE_RAN_LOG", str(log))
    return backend, squash_env(pgdata, fresh_db, project_dir, backend), log


def versions(backend: Path) -> Path:
    return backend / "flows" / "migrations" / "versions" / "postgresql"


def received(log: Path, prefix: str) -> list[tuple[str, str, Path]]:
    """(up/down, revision, file) of every step that ran in the databases named ``prefix``…"""
    steps = []
    for line in log.read_text().splitlines():
        db, kind, rev, path = line.split(" ", 3)
        if db.startswith(prefix):
            steps.append((kind, rev, Path(path).resolve()))
    return steps


def test_the_dry_run_builds_b_from_the_staged_revision_env_py_would_have_replaced(
        flows: Any, project_dir: Path, tmp_path: Path) -> None:
    backend, env, log = flows
    result, output = dry_run(env, project_dir, tmp_path)
    assert result.code == 0, result.err + result.out
    assert "Dry run: proven" in result.out
    assert (f"env.py chooses where its revisions are: {versions(backend)} (alembic.ini names "
            f"{backend / 'flows' / 'migrations' / 'versions'}); dbkit counts, squashes and "
            "replaces the revisions there") in result.out
    assert "3 revisions, p1_flow (flow) … p3_tags" in result.out
    assert output is not None
    squashed = output / "postgresql" / "p3_tags_squashed_3_revisions.py"
    assert squashed.is_file()
    # A ran the old chain's files, B the squashed file and nothing else: built, down, up.
    assert received(log, "dbkit_squasha") == [
        ("up", rev, (versions(backend) / f"{rev}.py").resolve()) for rev in CHAIN]
    assert received(log, "dbkit_squashb") == [
        ("up", "p3_tags", squashed.resolve()), ("down", "p3_tags", squashed.resolve()),
        ("up", "p3_tags", squashed.resolve())]


def test_until_builds_b_from_the_staged_folder_and_its_kept_revisions(
        flows: Any, project_dir: Path) -> None:
    backend, env, log = flows
    result = run_cli(["squash", "--dry-run", "--until", "p2_flow_run"], env, cwd=project_dir)
    assert result.code == 0, result.err + result.out
    assert "Dry run: proven" in result.out
    b = received(log, "dbkit_squashb")
    assert [(kind, rev) for kind, rev, _ in b] == [
        ("up", "p2_flow_run"), ("down", "p2_flow_run"), ("up", "p2_flow_run"),
        ("up", "p3_tags")]
    # Every file B ran is in the dry run's folder, none in the project's.
    assert not [path for _, _, path in b if versions(backend) in path.parents]
    assert len({path.parent for _, _, path in b}) == 1


def test_script_location_moved_by_env_py_is_honoured(
        flows: Any, project_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend, env, log = flows
    monkeypatch.setenv("FIXTURE_PICK", "script_dir")
    result, output = dry_run(env, project_dir, tmp_path)
    assert result.code == 0, result.err + result.out
    assert (f"env.py chooses where its revisions are: {backend / 'flows' / 'by_dir' / 'versions'}"
            in result.out)
    assert output is not None
    assert {path for _, _, path in received(log, "dbkit_squashb")} == {
        (output / "versions" / "p3_tags_squashed_3_revisions.py").resolve()}


def test_a_folder_env_py_picks_only_online_is_refused_before_anything_runs(
        flows: Any, project_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """env.py counts one folder offline and runs another online (here a copy of the chain):
    what would run is not what was counted, so nothing is proven against it."""
    backend, env, log = flows
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(versions(backend), elsewhere)
    monkeypatch.setenv("FIXTURE_VERSIONS", str(elsewhere))
    before = sorted(p.name for p in versions(backend).iterdir())
    result = run_cli(["squash", "--dry-run"], env, cwd=project_dir)
    assert result.code == 2, result.err + result.out
    line = one_line_error(result.err)
    assert (f"Alembic would run revision p1_flow from {(elsewhere / 'p1_flow.py').resolve()}, "
            f"which is not one of the files dbkit expects (in {versions(backend).resolve()})"
            ) in line
    assert line.endswith("refused before anything ran")
    assert received(log, "") == []
    assert sorted(p.name for p in versions(backend).iterdir()) == before
    assert "proven" not in result.out


# Each mutation takes away one of the proof's defences against a B built from other files
# than the staged ones, and lets env.py point B back at the old chain: every one of them,
# alone, must still fail the proof (so each defence is tested, not only the first).
def _without(*keys: str, parent_check: bool = True) -> Any:
    real = chain.AlembicProject._watched
    real_expected = chain.AlembicProject.expected

    def watched(self: chain.AlembicProject, spec: dict, dbname: Any, what: str) -> Any:
        spec = {k: v for k, v in spec.items() if k not in keys}
        return real(self, spec, dbname, what)

    def expected(self: chain.AlembicProject) -> Any:
        return real_expected(self) if parent_check else None

    return watched, expected


@pytest.mark.parametrize(("keys", "parent_check", "says"), [
    # the child is not told to steer env.py's folder: it refuses the old chain's files
    (("stands_for",), True, "which is not one of the files dbkit expects"),
    # nor told which files it may run: dbkit reads the child's report of what ran
    (("stands_for", "allow"), True, "ran revision p1_flow from"),
    # nor does dbkit check the files: the revisions B ran are not the squashed one alone
    (("stands_for", "allow"), False, "B's build ran p1_flow, p2_flow_run, p3_tags, not the "
                                     "squashed revision p3_tags alone"),
], ids=["no-steering", "no-allow-list", "no-file-check"])
def test_b_pointed_at_the_old_chain_fails_the_proof(
        flows: Any, project_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        keys: tuple[str, ...], parent_check: bool, says: str) -> None:
    backend, env, log = flows
    watched, expected = _without(*keys, parent_check=parent_check)
    monkeypatch.setattr(chain.AlembicProject, "_watched", watched)
    monkeypatch.setattr(chain.AlembicProject, "expected", expected)
    before = {p.name: p.read_bytes() for p in versions(backend).iterdir() if p.is_file()}
    result, _ = dry_run(env, project_dir, tmp_path)
    assert result.code != 0, result.out
    assert "proven" not in result.out.replace("not proven", "")
    assert says in result.err, result.err
    assert {p.name: p.read_bytes() for p in versions(backend).iterdir() if p.is_file()} == before


def test_squash_swaps_the_folder_env_py_loads_and_a_lagging_database_catches_up(
        flows: Any, project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend, env, log = flows
    lag = {**env, "POSTGRES_DB": env["POSTGRES_DB"] + "_lag"}
    assert run_cli(["upgrade", "--revision", "p1_flow"], lag, cwd=project_dir).code == 0
    result = run_cli(["squash"], {**env, "CONFIRM": "squash"}, cwd=project_dir)
    assert result.code == 0, result.err + result.out
    assert sorted(p.name for p in versions(backend).glob("*.py")) == [
        "p3_tags_squashed_3_revisions.py"]
    assert (backend / "flows/migrations/versions/sqlite/s1_sqlite.py").is_file()  # untouched
    archived = sorted((backend / "flows/migrations/versions/versions_archived").iterdir())
    assert len(archived) == 1
    current = run_cli(["current"], lag, cwd=project_dir)
    assert f"p1_flow (in the archived chain {archived[0]}" in current.out, current.out
    sql = run_cli(["upgrade", "--sql"], lag, cwd=project_dir)
    assert sql.code == 0, sql.err
    assert "-- Running upgrade p1_flow -> p2_flow_run" in sql.out
    log.write_text("")
    up = run_cli(["upgrade"], lag, cwd=project_dir)
    assert up.code == 0, up.err + up.out
    assert received(log, lag["POSTGRES_DB"]) == [
        ("up", rev, (archived[0] / f"{rev}.py").resolve()) for rev in CHAIN[1:]]
    check = run_cli(["check"], env, cwd=project_dir)
    assert check.code == 0, check.err + check.out
    assert "squash" in check.out.splitlines()[-1]


def test_validate_checks_the_chain_env_py_loads(flows: Any, project_dir: Path) -> None:
    backend, env, log = flows
    assert run_cli(["upgrade"], env, cwd=project_dir).code == 0
    result = run_cli(["validate"], env, cwd=project_dir)
    assert result.code == 0, result.err + result.out
    assert f"In sync: {env['POSTGRES_DB']} matches the app at p3_tags" in result.out
    assert "its migrations checked" in result.out
    assert "p3_tags (head)" in run_cli(["current"], env, cwd=project_dir).out


def test_history_needs_no_database_even_with_revision_environment(
        flows: Any, project_dir: Path) -> None:
    backend, env, log = flows
    result = run_cli(["history"], env, cwd=project_dir)
    assert result.code == 0, result.err
    assert result.out.splitlines()[-3:] == [
        "p2_flow_run -> p3_tags (head), flow tags, and a view",
        "p1_flow -> p2_flow_run, flow_run and its state",
        "<base> -> p1_flow, flow"]


def test_runs_that_open_no_database_pick_the_folder_a_database_run_picks(
        flows: Any, project_dir: Path) -> None:
    """Found on Prefect: with no URL handed over, its env.py fell back to SQLite and picked
    versions/sqlite, so migration-backup saved, and migration-restore overwrote, the wrong
    folder and a real squash's check after the swap read the wrong heads."""
    backend, env, log = flows
    pg = backend / "flows" / "migrations" / "versions" / "postgresql"
    made = run_cli(["migration-backup"], env, cwd=project_dir)
    assert made.code == 0, made.err
    (folder,) = [p for p in Path(env["BACKUP_DIR"]).iterdir() if not p.name.startswith(".")]
    saved = sorted(p.name for p in (folder / "migrations").iterdir() if p.suffix == ".py")
    assert saved == sorted(p.name for p in pg.glob("*.py")), saved
    restored = run_cli(["migration-restore", "--backup", folder.name], env, cwd=project_dir)
    assert restored.code == 0, restored.err
    assert sorted(p.name for p in (pg.parent / "sqlite").glob("*.py")) == ["s1_sqlite.py"]


def test_an_upgrade_that_fails_halfway_says_where_it_stopped_and_goes_on_next_time(
        flows: Any, project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend, env, log = flows
    monkeypatch.setenv("FIXTURE_BREAK", "p3_tags")
    result = run_cli(["upgrade"], env, cwd=project_dir)
    assert result.code == 2
    assert one_line_error(result.err).endswith(
        f"RuntimeError: broken on purpose; {env['POSTGRES_DB']} stopped at p2_flow_run (what "
        "ran before stays); fix the revision and run make db-upgrade again: it goes on from "
        "there")
    monkeypatch.delenv("FIXTURE_BREAK")
    again = run_cli(["upgrade"], env, cwd=project_dir)
    assert again.code == 0, again.err
    # Recorded once applied: p1 and p2 by the first run, only p3 by the second.
    assert [rev for _, rev, _ in received(log, env["POSTGRES_DB"])] == CHAIN


@pytest.mark.parametrize("argv", [["current"], ["--debug", "current"]])
def test_exit_codes_do_not_depend_on_debug(project_dir: Path, argv: list[str]) -> None:
    env = {"DB_MODE": "url", "NO_COLOR": "1", "BACKEND_DIR": str(CASE),
           "DATABASE_URL": "postgresql://someone:Secr3tPw@127.0.0.1:1/nowhere"}
    result = run_dbkit(argv, env, cwd=project_dir)
    assert result.returncode == 2, result.stderr
    assert "cannot connect to database 'nowhere'" in result.stderr
    assert "Secr3tPw" not in result.stderr + result.stdout
