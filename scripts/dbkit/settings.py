"""One settings object, built once from the environment and ``.env`` at the edge, passed down."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dbkit import discover
from dbkit.errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

MODES = ("auto", "docker", "url", "embedded")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}

# Every setting, its default and one line of documentation; .env.example and the README agree.
DEFAULTS: dict[str, str] = {
    "DB_MODE": "auto",
    "DATABASE_URL": "",
    "BACKEND_DIR": "",
    "ALEMBIC_CONFIG": "",
    "STATE_DIR": ".dbkit",
    "BACKUP_DIR": "",
    "PGDATA_DIR": "",
    "POSTGRES_CONTAINER": "kidney_genetics_postgres",
    "COMPOSE_FILE": "docker-compose.services.yml",
    "POSTGRES_USER": "kidney_user",
    "POSTGRES_PASSWORD": "",
    "POSTGRES_DB": "",
    "POSTGRES_PORT": "5432",
    "DB_UP_TIMEOUT": "60",
    "LOCK_WAIT_TIMEOUT": "60",
    "MIGRATION_TIMEOUT": "0",
    "PG_BIN": "",
    "ENVIRONMENT": "development",
    "PROTECTED_DATABASES": "",
    "ALLOW_DESTRUCTIVE": "0",
    "APP_OBJECTS": "app.db.objects",
    "CHECKS": "",
    "ALLOW_TEMPLATE_CACHE": "0",
    "SEED_DATA_FILE_ROWS": "1000",
    "SEED_DATA_FILE_BYTES": "100000",
    "BACKEND_PYTHON": "",
    "URL_ENV": "",
    "TARGET_PG": "",
    "TRUST_LANGUAGES": "",
    "TRUST_BACKUPS": "0",
}
# The checks db-validate-schema can run (CHECKS chooses; empty: all that apply).
CHECK_NAMES = ("models", "chain", "registry")


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything dbkit needs to know about the project and where its database lives."""

    project_dir: Path
    db_mode: str
    database_url: URL | None
    backend_dir: Path
    alembic_config: Path
    backup_dir: Path
    pgdata_dir: Path
    postgres_container: str
    compose_file: Path
    postgres_user: str
    postgres_password: str = field(repr=False)
    postgres_db: str
    postgres_port: int
    db_up_timeout: float
    lock_wait_timeout: float  # seconds a migration's statement may wait on a lock (0: no limit)
    migration_timeout: float  # seconds one migration operation may take (0: no limit)
    pg_bin: Path | None
    environment: str
    protected_databases: tuple[str, ...]
    allow_destructive: bool
    app_objects: str
    checks: tuple[str, ...] = ()  # chosen by CHECKS; () means all that apply
    allow_template_cache: bool = False
    # restores: untrusted languages (plpython3u, c) whose functions a backup may create
    trust_languages: tuple[str, ...] = ()
    trust_backups: bool = False  # TRUST_BACKUPS=1: load as the server's user, after the scan

    @property
    def trust(self) -> tuple[str, ...]:
        """What a backup's load may do beyond the default (backup/sqlscan.py)."""
        return (*self.trust_languages, *(("*",) if self.trust_backups else ()))
    # squash: a table with more seed rows, or more bytes of them, goes to a data file (COPY)
    seed_data_file_rows: int = 1000
    seed_data_file_bytes: int = 100000
    backend_python: Path
    backend_python_source: str  # how it was chosen, said with it ("the project's .venv")
    url_env: tuple[str, ...] = ()
    target_pg: int | None = None  # TARGET_PG: the oldest major a squashed revision is for
    # Where dbkit stands (discover.py): [tool.alembic]'s pyproject.toml, how the Alembic
    # project was found, dbkit's state folder, and where each setting's value came from.
    alembic_toml: Path | None = None
    alembic_how: str = ""
    state_dir: Path | None = None
    sources: discover.Sources | None = field(default=None, repr=False, compare=False)

    def origin(self, name: str) -> str:
        """Where a setting's value came from, said with it ("the app's .env (/x/.env)")."""
        return self.sources.origin(name) if self.sources is not None else "the environment"

    def require_alembic(self) -> Path:
        """The Alembic ini file, or a one-line error saying what is missing."""
        if not self.backend_dir.is_dir():
            raise ConfigError(f"BACKEND_DIR {self.backend_dir} is not a directory")
        if not self.alembic_config.is_file() and self.alembic_toml is None:
            raise ConfigError(
                f"no Alembic config at {self.alembic_config} ({self.alembic_how or 'default'}; "
                "no [tool.alembic] in pyproject.toml either): run dbkit from the folder of "
                "your alembic.ini, or give -c path/to/alembic.ini (ALEMBIC_CONFIG), or set "
                "BACKEND_DIR (backend-dir in [tool.dbkit])"
            )
        return self.alembic_config

    def prepare(self, path: Path) -> None:
        """Before writing ``path``: dbkit's state folder, with its .gitignore, if it is in it."""
        if self.state_dir is not None:
            discover.state_folder(path, self.state_dir)

    def require_python(self) -> Path:
        """The project's interpreter, or a one-line error saying what is wrong with it."""
        python = self.backend_python
        if not python.exists():
            raise ConfigError(f"BACKEND_PYTHON {python} does not exist (set BACKEND_PYTHON to "
                              "the python of the project's virtual environment)")
        if python.is_dir() or not os.access(python, os.X_OK):
            raise ConfigError(f"BACKEND_PYTHON {python} is not an executable file")
        return python


def find_backend_python(backend_dir: Path) -> tuple[Path, str]:
    """The project's interpreter: its own .venv, or one in a folder above it up to the
    repository's root (the nearest folder with .git); outside a repository only the folder
    just above it (a stray /tmp/.venv must never be picked). Else dbkit's own Python.
    Returns it and how it was found."""
    start = backend_dir.resolve()
    above = [start, *start.parents]
    root = next((f for f in above if (f / ".git").exists()), None)
    searched = above[: above.index(root) + 1] if root is not None else above[:2]
    for folder in searched:
        candidate = folder / ".venv" / "bin" / "python"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate, ("the project's .venv" if folder == start
                               else f"the .venv in {folder}")
    return Path(sys.executable), "dbkit's own: no .venv found for the project"


def _url_env(raw: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in raw.split(",") if n.strip())
    for name in names:
        if not name.isidentifier() or not name.isascii():
            raise ConfigError(f"URL_ENV: {name!r} is not an environment variable name "
                              "(a comma list such as SQLALCHEMY_DATABASE_URI,APP_DB_URL)")
    return names



# ENVIRONMENT values that mean production (and any value starting with "prod"), compared
# without case or spaces; destructive verbs refuse them. Documented in .env.example.
PRODUCTION = ("prod", "production", "prd", "live")


def is_production(environment: str) -> bool:
    value = "".join(environment.split()).lower()
    return value in PRODUCTION or value.startswith("prod")


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name}={raw!r} is not a yes/no value (use 1 or 0)")


def _number(name: str, raw: str, *, low: float, high: float, kind: type = int) -> float:
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={raw} is out of range ({low:g} to {high:g})")
    return value


def parse_database_url(raw: str) -> URL:
    """A PostgreSQL SQLAlchemy URL, or a one-line error (with the password masked)."""
    # Nothing of a URL that does not parse is shown: where its password starts and ends is
    # exactly what cannot be known (a typo'd "@" leaves it anywhere).
    expected = "expected postgresql://user:password@host:5432/dbname; the value is not shown"
    # Imported here: SQLAlchemy takes a quarter of a second to import, and most runs of
    # dbkit's own process never need it (the Alembic child has its own).
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(raw)
    except (ArgumentError, ValueError):
        raise ConfigError(f"DATABASE_URL does not parse as a database URL ({expected})") from None
    if url.port is not None and not 1 <= url.port <= 65535:
        raise ConfigError(f"DATABASE_URL has port {url.port}, out of range (1 to 65535)")
    if url.get_backend_name() not in ("postgresql", "postgres"):
        raise ConfigError(
            f"DATABASE_URL is for {url.get_backend_name()!r}; dbkit works with PostgreSQL only"
        )
    if not url.database:
        raise ConfigError("DATABASE_URL names no database (…/dbname at its end)")
    # psycopg2 is the one driver we ship; a URL written for asyncpg still names the same server.
    return url.set(drivername="postgresql+psycopg2")


def load_settings(
    project_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    env_file: Path | None = None,
    overrides: Mapping[str, str] | None = None,
) -> Settings:
    """Build the settings for a run standing in ``project_dir`` (default: the current
    folder): ``overrides`` (``-c``), the environment, dbkit's settings file, ``[tool.dbkit]``,
    the app's ``.env`` (its database only), the defaults; see discover.py."""
    start = (project_dir or Path.cwd()).resolve()
    environ = os.environ if environ is None else environ
    src = discover.sources(start, environ, DEFAULTS, env_file=env_file, overrides=overrides)
    project_dir = src.project_dir
    get = src.get

    def path(name: str) -> Path:
        value = Path(get(name)).expanduser()
        return value if value.is_absolute() else src.base(name) / value

    mode = get("DB_MODE").strip().lower() or "auto"
    if mode not in MODES:
        raise ConfigError(f"DB_MODE={get('DB_MODE')!r} is not one of {', '.join(MODES)}")
    raw_url = get("DATABASE_URL").strip()
    try:
        url = parse_database_url(raw_url) if raw_url else None
    except ConfigError as err:
        raise ConfigError(f"{err.message} (DATABASE_URL from {src.origin('DATABASE_URL')})"
                          ) from None
    if mode == "url" and url is None:
        raise ConfigError("DB_MODE=url needs DATABASE_URL")
    place = discover.locate_alembic(src, path)
    backend_dir, alembic_config = place.folder, place.ini
    state_dir, state_paths = _state_paths(get, path)
    if get("BACKEND_PYTHON").strip():
        raw_python = get("BACKEND_PYTHON").strip()
        # A bare name (python3.12) is looked up on PATH, as a shell would; a path is a path.
        found = (shutil.which(raw_python, path=environ.get("PATH")) if "/" not in raw_python
                 else None)
        backend_python = Path(found) if found else path("BACKEND_PYTHON")
        python_source = "BACKEND_PYTHON"
    else:
        backend_python, python_source = find_backend_python(backend_dir)
    pg_bin = path("PG_BIN") if get("PG_BIN") else None
    if pg_bin is not None and not pg_bin.is_dir():
        raise ConfigError(f"PG_BIN={pg_bin} is not a directory")
    return Settings(
        project_dir=project_dir,
        db_mode=mode,
        database_url=url,
        backend_dir=backend_dir,
        alembic_config=alembic_config,
        backup_dir=state_paths["BACKUP_DIR"],
        pgdata_dir=state_paths["PGDATA_DIR"],
        postgres_container=get("POSTGRES_CONTAINER"),
        compose_file=path("COMPOSE_FILE"),
        postgres_user=get("POSTGRES_USER"),
        postgres_password=get("POSTGRES_PASSWORD"),
        postgres_db=get("POSTGRES_DB") or database_name(project_dir),
        postgres_port=int(_number("POSTGRES_PORT", get("POSTGRES_PORT"), low=1, high=65535)),
        db_up_timeout=_number("DB_UP_TIMEOUT", get("DB_UP_TIMEOUT"), low=1, high=3600, kind=float),
        lock_wait_timeout=_number("LOCK_WAIT_TIMEOUT", get("LOCK_WAIT_TIMEOUT"), low=0,
                                  high=604800, kind=float),
        migration_timeout=_number("MIGRATION_TIMEOUT", get("MIGRATION_TIMEOUT"), low=0,
                                  high=604800, kind=float),
        pg_bin=pg_bin,
        environment=get("ENVIRONMENT").strip(),
        protected_databases=tuple(p.strip() for p in get("PROTECTED_DATABASES").split(",")
                                  if p.strip()),
        allow_destructive=_bool("ALLOW_DESTRUCTIVE", get("ALLOW_DESTRUCTIVE")),
        app_objects=get("APP_OBJECTS"),
        checks=_checks(get("CHECKS")),
        allow_template_cache=_bool("ALLOW_TEMPLATE_CACHE", get("ALLOW_TEMPLATE_CACHE")),
        trust_languages=tuple(p.strip() for p in get("TRUST_LANGUAGES").split(",") if p.strip()),
        trust_backups=_bool("TRUST_BACKUPS", get("TRUST_BACKUPS")),
        seed_data_file_rows=int(_number("SEED_DATA_FILE_ROWS", get("SEED_DATA_FILE_ROWS"),
                                        low=0, high=10**12)),
        seed_data_file_bytes=int(_number("SEED_DATA_FILE_BYTES", get("SEED_DATA_FILE_BYTES"),
                                         low=0, high=10**15)),
        backend_python=backend_python,
        backend_python_source=python_source,
        url_env=_url_env(get("URL_ENV")),
        target_pg=int(_number("TARGET_PG", get("TARGET_PG"), low=14, high=99))
        if get("TARGET_PG").strip() else None,
        alembic_toml=place.toml,
        alembic_how=place.how,
        state_dir=state_dir,
        sources=src,
    )


def database_name(project_dir: Path) -> str:
    """The development database's default name: the project's folder name, as an
    identifier (``my-app`` -> ``my_app``), so two projects on one server do not meet."""
    name = "".join(c if c.isalnum() else "_" for c in project_dir.name.lower()).strip("_")
    return (name if name[:1].isalpha() else f"db_{name}")[:63] if name else "app"


# The settings whose default is a folder inside dbkit's state folder (STATE_DIR).
STATE_DEFAULTS = {"BACKUP_DIR": "backups", "PGDATA_DIR": "pgdata"}


def _state_paths(get: Callable[[str], str], path: Callable[..., Path]
                 ) -> tuple[Path, dict[str, Path]]:
    """dbkit's state folder and the folders that default to living in it: one git-ignored
    folder of the project (``.dbkit/``) holds the embedded server, the backups and the lock,
    unless a setting puts one elsewhere."""
    state_dir = path("STATE_DIR")
    return state_dir, {name: (path(name) if get(name).strip() else state_dir / sub)
                       for name, sub in STATE_DEFAULTS.items()}


def _checks(raw: str) -> tuple[str, ...]:
    """CHECKS=models,chain,registry as a tuple in that order; empty: all that apply."""
    names = [n.strip().lower() for n in raw.replace(" ", ",").split(",") if n.strip()]
    unknown = [n for n in names if n not in CHECK_NAMES]
    if unknown:
        raise ConfigError(f"CHECKS={raw!r}: {', '.join(unknown)} is not a check "
                          f"(choose from {', '.join(CHECK_NAMES)})")
    return tuple(n for n in CHECK_NAMES if n in names)
