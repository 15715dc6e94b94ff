"""Words dbkit said wrong, or not at all, on PyPI's warehouse (issue 17, part 3), each on the
fixture shaped like it (``projects/warehouse_shaped``): an env.py whose MetaData holds no
tables, an enum comparator shaped like alembic-postgresql-enum, and ``current`` on a
database that does not exist."""

from __future__ import annotations

import json
from pathlib import Path

from backup_helpers import one_line_error
from squash_helpers import copy_project, squash_env

from conftest import FIXTURES, Result, run_cli

CASE = FIXTURES / "projects" / "warehouse_shaped"
EMPTY_MODELS = ("Not checked: models (the models env.py gives hold no tables, and the database "
                "has 171: env.py's target_metadata is empty; import your models in env.py)")


def _upgraded(pgdata: Path, db: str, project_dir: Path) -> tuple[Path, dict[str, str]]:
    backend = copy_project(CASE, project_dir)
    env = squash_env(pgdata, db, project_dir, backend)
    result = run_cli(["upgrade"], env, cwd=project_dir)
    assert result.code == 0, result.err + result.out
    return backend, env


def _importing_the_models(backend: Path) -> None:
    """env.py as its owner would fix it: the models imported, so the MetaData holds them."""
    env_py = backend / "catalog" / "migrations" / "env.py"
    env_py.write_text(env_py.read_text().replace(
        "from catalog import db\n", "from catalog import db, models  # noqa: F401\n"))


def test_models_that_hold_no_tables_are_said_once_and_not_compared(
        pgdata: Path, fresh_db: str, project_dir: Path) -> None:
    _, env = _upgraded(pgdata, fresh_db, project_dir)
    result = run_cli(["validate"], env, cwd=project_dir)
    assert result.code == 0, result.err + result.out
    assert EMPTY_MODELS in result.out.splitlines()
    assert "app declares no such" not in result.out
    assert "In sync:" in result.out.splitlines()[-1]  # the chain check still ran
    report = json.loads(run_cli(["validate", "--json"], env, cwd=project_dir).out)
    assert report["differences"] == [] and report["ok"] is True
    assert EMPTY_MODELS.removeprefix("Not checked: ") in report["notes"]


def test_a_plugins_enum_difference_is_named_on_the_side_that_has_it(
        pgdata: Path, fresh_db: str, project_dir: Path) -> None:
    """alembic-postgresql-enum's drop_enum: the database has the enum, the models do not."""
    backend, env = _upgraded(pgdata, fresh_db, project_dir)
    _importing_the_models(backend)
    result: Result = run_cli(["validate"], env, cwd=project_dir)
    assert result.code == 1, result.err + result.out
    lines = [line.strip() for line in result.out.splitlines()]
    assert ("type public.packagetype: database has ENUM ('sdist', 'bdist_wheel', 'bdist_egg'), "
            "app declares no such type") in lines
    assert ("type public.releasestatus: database has ENUM ('active', 'yanked'), "
            "app declares no such type") in lines
    assert not [line for line in lines if line.startswith("other ")]
    report = json.loads(run_cli(["validate", "--json"], env, cwd=project_dir).out)
    enums = [d for d in report["differences"] if d["kind"] == "type"]
    assert enums == [
        {"kind": "type", "object": "public.packagetype", "problem": "extra",
         "database": "ENUM ('sdist', 'bdist_wheel', 'bdist_egg')", "app": None},
        {"kind": "type", "object": "public.releasestatus", "problem": "extra",
         "database": "ENUM ('active', 'yanked')", "app": None},
    ]


def test_current_on_a_database_that_does_not_exist_is_one_line(
        pgdata: Path, project_dir: Path) -> None:
    backend = copy_project(CASE, project_dir)
    env = squash_env(pgdata, "no_such_warehouse", project_dir, backend)
    result = run_cli(["current"], env, cwd=project_dir)
    assert result.code == 2
    line = one_line_error(result.err)
    assert line == ("dbkit current: error: database 'no_such_warehouse' on "
                    f"{pgdata} (embedded) does not exist: no revision to show (make "
                    "db-upgrade creates it and applies the migrations)"), line
    assert len(result.err.strip().splitlines()) == 1
    validate = run_cli(["validate"], env, cwd=project_dir)
    assert one_line_error(validate.err).startswith(
        f"dbkit validate: error: database 'no_such_warehouse' on {pgdata} (embedded) does not "
        "exist: ")


def test_a_partial_squash_archives_where_it_says(
        pgdata: Path, fresh_db: str, project_dir: Path) -> None:
    """The migrations live in a package (catalog/migrations/versions): the archive goes
    beside them, inside the package, and the plan says exactly that path."""
    backend, env = _upgraded(pgdata, fresh_db, project_dir)
    result = run_cli(["squash"], {**env, "CONFIRM": "squash", "UNTIL": "w1_catalog"},
                     cwd=project_dir)
    assert result.code == 0, result.err + result.out
    folder = backend / "catalog" / "migrations" / "versions_archived"
    (made,) = [p for p in folder.iterdir() if p.is_dir()]
    assert sorted(p.name for p in made.glob("*.py")) == ["w1_catalog.py"]
    assert (f"  the old files go into the backup and {folder}/<timestamp>/ (beside versions/, "
            "inside the Python package catalog/: it ships with the package unless your "
            "packaging leaves it out)") in result.out.splitlines()
    assert f"in {made}" in result.out
    assert not (backend / "versions_archived").exists()
