"""dbkit on Alembic projects written the ways real ones are (tests/fixtures/projects/).

Each case is run as its owner runs it: its own env.py unchanged, its own settings, its own
.env and, for the SQLAlchemy 1.4 case, its own interpreter. For each: upgrade, a dry run, a
real squash with the development database present and at head, upgrade, validate and a full
backup afterwards. The guard case checks that another database is never touched.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from backup_helpers import execute, one_line_error, state
from squash_helpers import copy_project, dry_run, squash_env, versions_of

from conftest import REPO, Result, run_cli
from dbkit.console import Console
from dbkit.errors import ConfigError
from dbkit.pg import scratch
from dbkit.pg.embedded import EmbeddedServer
from dbkit.pg.server import Server
from dbkit.project import runner
from dbkit.project.chain import AlembicChild, AlembicProject, target_spec
from dbkit.settings import load_settings

CASES = Path(__file__).resolve().parent / "fixtures" / "projects"
sys.path.insert(0, str(REPO / "scripts"))
import project_venvs  # noqa: E402 - scripts/ is not a package

GUARD_LINE = "If your env.py builds its own URL"


def _ok(result: Result, what: str) -> Result:
    assert result.code == 0, f"{what}: {result.err}{result.out}"
    return result


def whole_life(server: Server, env: dict[str, str], project_dir: Path, tmp_path: Path,
               dbname: str) -> None:
    """upgrade → dry run → real squash (dev at head) → upgrade → validate → backup-full,
    with the development database unchanged by the squash and a fresh build from the
    squashed revision holding the seed row."""
    backend = Path(env["BACKEND_DIR"])
    _ok(run_cli(["upgrade"], env, cwd=project_dir), "upgrade")
    assert _rows(server, dbname) == [(1, "first")]
    dev_before = state(server, dbname)
    result, folder = dry_run(env, project_dir, tmp_path)
    _ok(result, "dry run")
    shutil.rmtree(folder)
    _ok(run_cli(["squash"], {**env, "CONFIRM": "squash"}, cwd=project_dir), "squash")
    assert state(server, dbname) == dev_before  # the squash never ran against the dev database
    files = sorted(p.name for p in versions_of(backend).glob("*.py"))
    assert files == ["c2_seed_squashed_2_revisions.py"], files
    _ok(run_cli(["upgrade"], env, cwd=project_dir), "upgrade after the squash")
    _ok(run_cli(["validate"], env, cwd=project_dir), "validate")
    _ok(run_cli(["backup-full"], env, cwd=project_dir), "backup-full")
    with scratch.scratch_database(server, "fresh") as fresh:
        _ok(run_cli(["upgrade"], {**env, "POSTGRES_DB": fresh}, cwd=project_dir),
            "a fresh install from the squashed revision")
        assert _rows(server, fresh) == [(1, "first")]


def _rows(server: Server, dbname: str) -> list[tuple]:
    conn = server.connect(dbname)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id, name FROM items ORDER BY id")
            return cur.fetchall()
    finally:
        conn.close()


# -- (a) settings cached at import + set_main_option ----------------------------------------------

def test_cached_settings_and_set_main_option(pgdata: Path, fresh_db: str, project_dir: Path,
                                             server: EmbeddedServer, tmp_path: Path) -> None:
    backend = copy_project(CASES / "cached_settings", project_dir)
    env = squash_env(pgdata, fresh_db, project_dir, backend)
    whole_life(server, env, project_dir, tmp_path, fresh_db)


def test_a_data_directory_with_a_space_and_a_percent(tmp_path: Path, project_dir: Path,
                                                   request: pytest.FixtureRequest) -> None:
    """The URL handed over survives ConfigParser and create_engine whatever the socket path."""
    # Short enough for the socket to live in the data directory itself (a deeper one moves
    # it to /tmp/dbkit-<digest>), wherever pytest's own temporary folder is.
    base = Path(tempfile.mkdtemp(prefix="d"))
    request.addfinalizer(lambda: shutil.rmtree(base, ignore_errors=True))
    pgdata = base / "pg data 100%" / "pgdata"
    backend = copy_project(CASES / "cached_settings", project_dir)
    env = squash_env(pgdata, "app", project_dir, backend)
    srv = EmbeddedServer(load_settings(project_dir, env))
    srv.ensure_running()
    try:
        assert "%" in str(srv.socket_dir) and " " in str(srv.socket_dir)
        spec = target_spec(load_settings(project_dir, env), srv, "app")
        assert "%" not in spec["url"] and spec["pghost"] == str(srv.socket_dir)
        _ok(run_cli(["upgrade"], env, cwd=project_dir), "upgrade")
        assert _ok(run_cli(["current"], env, cwd=project_dir), "current").out.strip() \
            .endswith("c2_seed (head)")
        _ok(run_cli(["validate"], env, cwd=project_dir), "validate")
        result, _ = dry_run(env, project_dir, tmp_path)
        _ok(result, "dry run")
    finally:
        srv.stop(Console(io.StringIO()))


# -- (b) the URL only in a variable named by URL_ENV ----------------------------------------------

def test_url_only_from_a_variable_in_url_env(pgdata: Path, fresh_db: str, project_dir: Path,
                                            server: EmbeddedServer, tmp_path: Path) -> None:
    backend = copy_project(CASES / "url_env_only", project_dir)
    env = squash_env(pgdata, fresh_db, project_dir, backend)
    # Without URL_ENV the app has no URL at all: dbkit says what the app said, exit 2.
    result = run_cli(["upgrade"], env, cwd=project_dir)
    assert result.code == 2 and "KeyError: 'APP_DB_URL'" in result.err, result.err
    whole_life(server, {**env, "URL_ENV": "APP_DB_URL"}, project_dir, tmp_path, fresh_db)


# -- (c) env.py ignores everything: the guard -----------------------------------------------------

def test_the_guard_keeps_another_database_untouched(
        pgdata: Path, fresh_db: str, project_dir: Path, server: EmbeddedServer,
        tmp_path: Path) -> None:
    backend = copy_project(CASES / "ignores_url", project_dir)
    env = squash_env(pgdata, fresh_db, project_dir, backend)
    with scratch.scratch_database(server, "other") as other:
        # The database the project's env.py really connects to: at the first revision, rows.
        execute(server, other,
                "CREATE TABLE precious (id int PRIMARY KEY, note text)",
                "INSERT INTO precious VALUES (1, 'keep me')",
                "CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)",
                "INSERT INTO alembic_version VALUES ('c1_items')")
        (backend / "other_db.txt").write_text(
            server.sa_url(other).render_as_string(hide_password=False))
        before = state(server, other)
        for argv in (["squash", "--dry-run"], ["squash"], ["upgrade"], ["current"],
                     ["validate"], ["backup-full"]):
            result = run_cli(argv, {**env, "CONFIRM": "squash"}, cwd=project_dir)
            assert result.code == 2, (argv, result.out, result.err)
            line = one_line_error(result.err)
            assert f"database {other!r}" in line and GUARD_LINE in line, (argv, line)
            assert state(server, other) == before, argv
        assert GUARD_LINE in (REPO / "README.md").read_text()
        # Its env.py changed the README's way, the same project works.
        (backend / "env.py").write_text((backend / "env.py").read_text().replace(
            'url = (Path(__file__).parent / "other_db.txt").read_text().strip()',
            'url = os.environ.get("DATABASE_URL") or '
            '(Path(__file__).parent / "other_db.txt").read_text().strip()').replace(
            "from pathlib import Path", "import os\nfrom pathlib import Path"))
        whole_life(server, env, project_dir, tmp_path, fresh_db)
        assert state(server, other) == before


def test_the_guard_refuses_the_same_name_on_another_server(server: EmbeddedServer,
                                                           project_dir: Path) -> None:
    """The name alone is not enough: the server's identity must match too."""
    settings = load_settings(project_dir, {"BACKEND_DIR": str(CASES / "cached_settings")})
    spec = target_spec(settings, server, "postgres", ("1", "5432"))  # another start time
    target = runner.Target(spec)
    conn = server.connect("postgres", autocommit=False)
    with pytest.raises(runner.WrongDatabase, match="on another server"):
        target.guard(conn, None)
    assert conn.closed and GUARD_LINE in (target.refused or "")


# -- (d) secrets from the project's own .env ------------------------------------------------------

def test_settings_from_the_projects_own_dotenv(pgdata: Path, fresh_db: str, project_dir: Path,
                                               server: EmbeddedServer, tmp_path: Path) -> None:
    backend = copy_project(CASES / "dotenv_secret", project_dir)
    env = squash_env(pgdata, fresh_db, project_dir, backend)
    whole_life(server, env, project_dir, tmp_path, fresh_db)
    # Without its secrets, the app's whole message: every field, not only the first line.
    (backend / ".env").write_text("FIRST_SUPERUSER=admin@example.com\n")
    result = run_cli(["upgrade"], env, cwd=project_dir)
    assert result.code == 2 and "Traceback" not in result.err
    assert "ValidationError: 2 validation errors for Settings" in result.err
    assert "SECRET_KEY\n  Field required" in result.err
    assert "SMTP_HOST\n  Field required" in result.err


def test_a_long_message_is_capped() -> None:
    text = runner.message(ValueError("\n".join(f"line {i}" for i in range(50))))
    assert text.startswith("ValueError: line 0\nline 1\n")
    assert "line 19\n... (30 more lines)" in text and "line 20" not in text


# -- (e) the project's own interpreter: SQLAlchemy 1.4 ---------------------------------------

@pytest.fixture(scope="session")
def sa14_python() -> Path:
    problem = project_venvs.build("sa14")
    if problem:
        pytest.skip(f"the SQLAlchemy 1.4 venv cannot be built ({problem}); "
                    "run `make test-venvs` where PyPI is reachable")
    return project_venvs.python_of("sa14")


def test_a_sqlalchemy_14_project_in_its_own_venv(
        sa14_python: Path, pgdata: Path, fresh_db: str, project_dir: Path,
        server: EmbeddedServer, tmp_path: Path) -> None:
    backend = copy_project(CASES / "sqlalchemy14", project_dir)
    # The project's .venv, found without being named (BACKEND_PYTHON unset).
    (backend / ".venv").symlink_to(sa14_python.parent.parent)
    env = squash_env(pgdata, fresh_db, project_dir, backend)
    result = _ok(run_cli(["current"], env, cwd=project_dir), "current")
    first = result.out.splitlines()[0]
    assert first.startswith(f"Project: {backend} (python: {backend}/.venv/bin/python, "
                            "the project's .venv; SQLAlchemy 1.4."), first
    assert "Alembic 1.13." in first
    whole_life(server, env, project_dir, tmp_path, fresh_db)


# -- BACKEND_PYTHON that cannot serve ----------------------------------------------------------

def test_a_backend_python_that_cannot_run_the_project(
        pgdata: Path, fresh_db: str, project_dir: Path, server: EmbeddedServer,
        tmp_path: Path) -> None:
    backend = copy_project(CASES / "cached_settings", project_dir)
    env = squash_env(pgdata, fresh_db, project_dir, backend)
    bare = tmp_path / "bare"
    subprocess.run([f"{sys.base_prefix}/bin/python3", "-m", "venv", "--without-pip", str(bare)],
                   check=True)  # a Python without Alembic
    for python, expected in ((tmp_path / "nope" / "python", "does not exist"),
                             (backend / "env.py", "is not an executable file"),
                             (bare / "bin" / "python", "cannot import Alembic and SQLAlchemy")):
        result = run_cli(["upgrade"], {**env, "BACKEND_PYTHON": str(python)}, cwd=project_dir)
        assert result.code == 2, result.err
        line = one_line_error(result.err)
        assert f"BACKEND_PYTHON {python}" in line and expected in line, line


def test_the_backend_python_found_by_default(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    backend = repo / "services" / "backend"
    backend.mkdir(parents=True)
    (repo / ".git").mkdir()
    settings = lambda: load_settings(tmp_path, {"BACKEND_DIR": str(backend)})  # noqa: E731
    assert settings().backend_python == Path(sys.executable)  # nothing found: dbkit's own
    outside = tmp_path / ".venv" / "bin"  # above the repository's root: not looked at
    outside.mkdir(parents=True)
    (outside / "python").symlink_to(sys.executable)
    assert settings().backend_python == Path(sys.executable)
    (repo / ".venv" / "bin").mkdir(parents=True)
    (repo / ".venv" / "bin" / "python").symlink_to(sys.executable)
    assert settings().backend_python == repo / ".venv" / "bin" / "python"
    assert settings().backend_python_source == f"the .venv in {repo}"
    (backend / ".venv" / "bin").mkdir(parents=True)
    (backend / ".venv" / "bin" / "python").symlink_to(sys.executable)
    assert settings().backend_python == backend / ".venv" / "bin" / "python"
    assert settings().backend_python_source == "the project's .venv"


def test_url_env_names_are_checked(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, {"URL_ENV": " APP_DB_URL, SQLALCHEMY_DATABASE_URI ,"})
    assert settings.url_env == ("APP_DB_URL", "SQLALCHEMY_DATABASE_URI")
    with pytest.raises(ConfigError, match="URL_ENV: 'APP DB' is not an environment variable"):
        load_settings(tmp_path, {"URL_ENV": "APP DB"})


def test_a_warm_child_serves_only_its_own_database(
        pgdata: Path, fresh_db: str, project_dir: Path, server: EmbeddedServer) -> None:
    """An operation on another database than the warm child's goes to a child of its own."""
    backend = copy_project(CASES / "cached_settings", project_dir)
    settings = load_settings(project_dir, squash_env(pgdata, fresh_db, project_dir, backend))
    with scratch.scratch_database(server, "other") as other, \
            AlembicChild(settings, server, other) as child:
        project = AlembicProject(settings, server, child=child)
        assert project.heads() == ["c2_seed"]  # imports the app: settings cached for `other`
        project.upgrade(fresh_db, "head")  # not in the warm child
        assert project.current(other) == []
        assert project.current(fresh_db) == ["c2_seed"]
        assert _rows(server, fresh_db) == [(1, "first")]


def test_outside_a_repository_only_the_folder_above_is_searched(tmp_path: Path) -> None:
    # No .git anywhere: a .venv two levels up (think /tmp/.venv) must not be picked, the
    # one just above the backend (the usual project root) is.
    backend = tmp_path / "a" / "project" / "backend"
    backend.mkdir(parents=True)
    far = tmp_path / "a" / ".venv" / "bin"
    far.mkdir(parents=True)
    (far / "python").symlink_to(sys.executable)
    settings = lambda: load_settings(tmp_path, {"BACKEND_DIR": str(backend)})  # noqa: E731
    assert settings().backend_python == Path(sys.executable)
    near = tmp_path / "a" / "project" / ".venv" / "bin"
    near.mkdir(parents=True)
    (near / "python").symlink_to(sys.executable)
    assert settings().backend_python == near / "python"


def test_a_bare_backend_python_name_is_looked_up_on_path(tmp_path: Path) -> None:
    name = Path(sys.executable).name  # e.g. python3.11, which is on PATH in the venv's bin
    env = {"BACKEND_DIR": str(tmp_path), "BACKEND_PYTHON": name,
           "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    assert load_settings(tmp_path, env, env_file=Path("/nonexistent")).backend_python \
        == Path(sys.executable).parent / name
