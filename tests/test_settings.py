"""Settings: parsed once from the environment and .env; bad values get one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from dbkit.errors import ConfigError
from dbkit.settings import load_settings

NO_FILE = Path("/nonexistent/.env")
REPO = Path(__file__).resolve().parent.parent


def test_this_repository_describes_the_kidney_genetics_project() -> None:
    # This repository's [tool.dbkit]: the sample backend, .pgdata and backups at its root.
    s = load_settings(REPO, {}, env_file=NO_FILE)
    assert s.db_mode == "auto"
    assert s.backend_dir == REPO / "backend"
    assert s.alembic_config == REPO / "backend" / "alembic.ini"
    assert s.backup_dir == REPO / "backups"
    assert s.pgdata_dir == REPO / ".pgdata"
    assert s.postgres_container == "kidney_genetics_postgres"
    assert s.allow_destructive is False


def test_a_project_without_settings_is_the_folder_dbkit_stands_in(tmp_path: Path) -> None:
    (tmp_path / "alembic.ini").write_text("[alembic]\nscript_location = migrations\n")
    s = load_settings(tmp_path, {})
    assert s.backend_dir == tmp_path and s.alembic_config == tmp_path / "alembic.ini"
    assert s.alembic_how == "the current folder"
    # dbkit's own state: one folder of the project, not scattered about it.
    assert s.state_dir == tmp_path / ".dbkit"
    assert s.pgdata_dir == tmp_path / ".dbkit" / "pgdata"
    assert s.backup_dir == tmp_path / ".dbkit" / "backups"


def test_environment_overrides_dotenv_file(tmp_path: Path) -> None:
    (tmp_path / "dbkit.env").write_text("BACKEND_DIR=from_file\nPOSTGRES_DB=filedb\n")
    s = load_settings(tmp_path, {"POSTGRES_DB": "envdb"}, env_file=tmp_path / "dbkit.env")
    assert s.backend_dir == tmp_path / "from_file"
    assert s.postgres_db == "envdb"


def test_backup_dir_may_live_outside_the_project(tmp_path: Path) -> None:
    s = load_settings(tmp_path, {"BACKUP_DIR": "/var/backups/kidney"}, env_file=NO_FILE)
    assert s.backup_dir == Path("/var/backups/kidney")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DB_MODE": "cloud"}, "DB_MODE='cloud' is not one of auto, docker, url, embedded"),
        ({"DB_MODE": "url"}, "DB_MODE=url needs DATABASE_URL"),
        ({"DATABASE_URL": "not a url"}, "DATABASE_URL does not parse"),
        ({"DATABASE_URL": "mysql://u:p@h/db"}, "dbkit works with PostgreSQL only"),
        ({"DATABASE_URL": "postgresql://u:p@h"}, "names no database"),
        ({"ALLOW_DESTRUCTIVE": "maybe"}, "ALLOW_DESTRUCTIVE='maybe' is not a yes/no value"),
        ({"POSTGRES_PORT": "99999"}, "POSTGRES_PORT=99999 is out of range"),
        ({"POSTGRES_PORT": "abc"}, "POSTGRES_PORT='abc' is not a number"),
        ({"PG_BIN": "/no/such/dir"}, "PG_BIN=/no/such/dir is not a directory"),
    ],
)
def test_bad_values_are_refused_with_a_clear_message(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path, env, env_file=NO_FILE)
    assert message in info.value.message
    assert "\n" not in info.value.message


def test_password_in_url_never_reaches_the_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path, {"DATABASE_URL": "mysql://u:hunter2@h/db"}, env_file=NO_FILE)
    assert "hunter2" not in info.value.message


def test_backend_without_alembic_ini_is_named(tmp_path: Path) -> None:
    (tmp_path / "backend").mkdir()
    s = load_settings(tmp_path, {}, env_file=NO_FILE)
    with pytest.raises(ConfigError, match="no Alembic config at .*alembic.ini"):
        s.require_alembic()


def test_url_drivers_are_normalised_to_psycopg2(tmp_path: Path) -> None:
    s = load_settings(tmp_path, {"DATABASE_URL": "postgresql+asyncpg://u:p@h:5433/db"},
                      env_file=NO_FILE)
    assert s.database_url is not None
    assert s.database_url.drivername == "postgresql+psycopg2"


def test_a_dotenv_line_that_does_not_parse_is_named(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.dbkit]\nenv-file = ".env"\n')
    (tmp_path / ".env").write_text("BACKEND_DIR=backend\nthis is not a setting\n")
    with pytest.raises(ConfigError, match=r"\.env line 2 does not parse"):
        load_settings(tmp_path, {})
