"""Where dbkit stands: the project found as alembic finds it, [tool.dbkit], the app's .env."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_cli
from dbkit.errors import ConfigError
from dbkit.settings import load_settings

INI = "[alembic]\nscript_location = migrations\n"


def test_tool_dbkit_is_found_from_a_subfolder_and_the_environment_wins(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "app"\n\n[tool.dbkit]\nbackend-dir = "backend"\n'
        'url_env = ["APP_DB_URL", "SQLALCHEMY_DATABASE_URI"]\nALLOW_TEMPLATE_CACHE = true\n'
        'lock-wait-timeout = 5\n')
    (tmp_path / "backend").mkdir()
    (tmp_path / "backend" / "alembic.ini").write_text(INI)
    (tmp_path / "docs").mkdir()
    s = load_settings(tmp_path / "docs", {"LOCK_WAIT_TIMEOUT": "7"})
    assert s.project_dir == tmp_path and s.backend_dir == tmp_path / "backend"
    assert s.url_env == ("APP_DB_URL", "SQLALCHEMY_DATABASE_URI")
    assert s.allow_template_cache is True and s.lock_wait_timeout == 7
    assert s.origin("LOCK_WAIT_TIMEOUT") == "the environment"
    assert s.origin("BACKEND_DIR") == f"[tool.dbkit] in {tmp_path / 'pyproject.toml'}"
    assert s.state_dir == tmp_path / ".dbkit"


def test_an_unknown_tool_dbkit_key_is_named(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.dbkit]\nbackend-dri = "backend"\n')
    with pytest.raises(ConfigError, match="'backend-dri' is not a dbkit setting"):
        load_settings(tmp_path, {})


def test_the_apps_env_gives_its_database_and_nothing_of_dbkits(tmp_path: Path) -> None:
    (tmp_path / "alembic.ini").write_text(INI)
    (tmp_path / ".env").write_text(
        "DATABASE_URL=postgresql://app:s3cret-pw@localhost:5432/app\nPOSTGRES_PASSWORD=other\n"
        "POSTGRES_DB=app_compose\nBACKUP_DIR=/somewhere/else\n")
    s = load_settings(tmp_path, {})
    assert s.database_url is not None and s.database_url.database == "app"
    assert s.origin("DATABASE_URL") == f"the app's .env ({tmp_path / '.env'})"
    # The app's compose settings and anything else are not dbkit's.
    assert s.postgres_password == "" and s.postgres_db == tmp_path.name.lower().replace("-", "_")
    assert s.backup_dir == tmp_path / ".dbkit" / "backups"


def test_a_bad_url_in_the_apps_env_names_where_it_came_from(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DATABASE_URL=postgresql://app:pw@localhost:99999/app\n")
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path, {})
    assert info.value.message.endswith(f"(DATABASE_URL from the app's .env ({tmp_path}/.env))")


def test_alembic_config_from_c_relative_to_where_dbkit_stands(tmp_path: Path) -> None:
    (tmp_path / "svc").mkdir()
    (tmp_path / "svc" / "db.ini").write_text(INI)
    s = load_settings(tmp_path, {}, overrides={"ALEMBIC_CONFIG": "svc/db.ini"})
    assert s.alembic_config == tmp_path / "svc" / "db.ini"
    assert s.backend_dir == tmp_path / "svc"
    assert s.alembic_how == "ALEMBIC_CONFIG from the command line (-c)"


def test_tool_alembic_alone_is_an_alembic_project(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.alembic]\nscript_location = "migrations"\n')
    s = load_settings(tmp_path, {})
    assert s.alembic_toml == tmp_path / "pyproject.toml"
    assert s.require_alembic() == tmp_path / "alembic.ini"  # absent, and not needed


def test_no_project_here_is_one_line(tmp_path: Path) -> None:
    result = run_cli(["history"], {"NO_COLOR": "1"}, cwd=tmp_path)
    assert result.code == 2
    assert result.err.startswith(f"dbkit history: error: no Alembic config at {tmp_path}/"
                                 "alembic.ini (the current folder; no [tool.alembic]")
    assert "give -c path/to/alembic.ini" in result.err
    assert not (tmp_path / ".dbkit").exists()  # nothing written where nothing was asked


def test_make_include_reads_no_setting(tmp_path: Path) -> None:
    # It runs inside every make of a project: a broken .env or stray variable must not matter.
    (tmp_path / "pyproject.toml").write_text("[tool.dbkit]\nnot-a-setting = 1\n")
    result = run_cli(["make-include"], {"TARGETS": "all", "SNIPPET": "maybe"}, cwd=tmp_path)
    assert result.code == 0 and result.out.strip().endswith("dbkit/dbkit.mk")
