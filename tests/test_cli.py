"""The everyday verbs as a user types them: exit codes, messages, and what the database holds."""

from __future__ import annotations

from pathlib import Path

import psycopg2
import pytest

from conftest import BACKEND, copy_backend, run_cli, run_dbkit
from dbkit.pg import scratch
from dbkit.pg.embedded import EmbeddedServer
from dbkit.project.chain import AlembicProject
from dbkit.safety import project_lock
from dbkit.settings import Settings, load_settings


def _has_table(server: EmbeddedServer, db: str, name: str) -> bool:
    conn = server.connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass(%s) IS NOT NULL", (name,))
            return bool(cur.fetchone()[0])
    finally:
        conn.close()


def _mark(server: EmbeddedServer, db: str) -> None:
    conn = server.connect(db)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE precious (x int); INSERT INTO precious VALUES (42)")
    conn.close()


def test_upgrade_current_history(env: dict[str, str], project_dir: Path,
                                 settings: Settings, server: EmbeddedServer) -> None:
    head = AlembicProject(settings, server).single_head()
    res = run_cli(["current"], env, cwd=project_dir)
    assert res.code == 0 and "base (no revision applied)" in res.out
    res = run_cli(["upgrade"], env, cwd=project_dir)
    assert res.code == 0, res.err
    assert f"is at {head}" in res.out
    res = run_cli(["current"], env, cwd=project_dir)
    project, result = res.out.strip().splitlines()
    assert project.startswith(f"Project: {BACKEND} (python: ") and "SQLAlchemy " in project
    assert result == f"{head} (head)"
    res = run_cli(["history"], env, cwd=project_dir)
    assert res.code == 0 and head in res.out and "merge" in res.out.lower()


def test_reset_without_terminal_or_confirm_refuses_and_keeps_data(
    env: dict[str, str], project_dir: Path, server: EmbeddedServer
) -> None:
    _mark(server, env["POSTGRES_DB"])
    res = run_cli(["reset"], env, cwd=project_dir)
    assert res.code == 2
    assert "not a terminal: set CONFIRM=reset" in res.err
    assert _has_table(server, env["POSTGRES_DB"], "precious")


def test_reset_with_wrong_word_refuses(env: dict[str, str], project_dir: Path,
                                       server: EmbeddedServer) -> None:
    _mark(server, env["POSTGRES_DB"])
    res = run_cli(["reset"], {**env, "CONFIRM": "yes"}, cwd=project_dir)
    assert res.code == 2 and "does not match" in res.err
    assert _has_table(server, env["POSTGRES_DB"], "precious")


def test_reset_rebuilds_from_the_chain(env: dict[str, str], project_dir: Path,
                                       settings: Settings, server: EmbeddedServer) -> None:
    _mark(server, env["POSTGRES_DB"])
    res = run_cli(["reset"], {**env, "CONFIRM": "reset"}, cwd=project_dir)
    assert res.code == 0, res.err
    db = env["POSTGRES_DB"]
    assert not _has_table(server, db, "precious")
    assert _has_table(server, db, "genes")
    assert AlembicProject(settings, server).current(db) == AlembicProject(
        settings, server).heads()


def test_reset_says_it_ends_the_sessions_of_the_database(
    env: dict[str, str], project_dir: Path, server: EmbeddedServer
) -> None:
    # The app's sessions are ended by the swap: a reset says so, as restore-full does.
    db = env["POSTGRES_DB"]
    app = server.connect(db)
    try:
        res = run_cli(["reset", "--yes"], env, cwd=project_dir)
        assert res.code == 0, res.err
        said = [ln for ln in res.out.splitlines() if "Sessions connected to" in ln]
        assert said == [f"Sessions connected to {db} are ended for the swap (open "
                        "transactions roll back; the app reconnects to the rebuilt "
                        "database)"], res.out
        with pytest.raises(psycopg2.OperationalError), app.cursor() as cur:
            cur.execute("SELECT 1")
    finally:
        app.close()
    # A database that is not there yet has no sessions to end: nothing to say.
    new = {**env, "POSTGRES_DB": f"{db}_new"}
    try:
        res = run_cli(["reset", "--yes"], new, cwd=project_dir)
        assert res.code == 0, res.err
        assert "Sessions connected to" not in res.out
    finally:
        scratch.drop_database(server, f"{db}_new")


def test_reset_refuses_production(env: dict[str, str], project_dir: Path,
                                  server: EmbeddedServer) -> None:
    _mark(server, env["POSTGRES_DB"])
    res = run_cli(["reset", "--yes"], {**env, "ENVIRONMENT": "production"}, cwd=project_dir)
    assert res.code == 2 and "ENVIRONMENT=production counts as production: refusing" in res.err
    assert _has_table(server, env["POSTGRES_DB"], "precious")


def test_reset_whose_chain_fails_leaves_the_database_alone(
    env: dict[str, str], project_dir: Path, server: EmbeddedServer, tmp_path: Path
) -> None:
    backend = copy_backend(tmp_path / "backend")
    broken = next((backend / "alembic" / "versions").glob("0a9d4c2e8f61_*.py"))
    text = broken.read_text().replace("def upgrade() -> None:\n",
                                      "def upgrade() -> None:\n    op.execute('SELECT 1/0')\n", 1)
    broken.write_text(text)
    _mark(server, env["POSTGRES_DB"])
    res = run_cli(["reset", "--yes"], {**env, "BACKEND_DIR": str(backend)}, cwd=project_dir)
    assert res.code == 2
    assert "failed in revision 0a9d4c2e8f61" in res.err and "division by zero" in res.err
    assert _has_table(server, env["POSTGRES_DB"], "precious")


def test_second_destructive_run_is_refused_while_one_holds_the_lock(
    env: dict[str, str], project_dir: Path, server: EmbeddedServer
) -> None:
    _mark(server, env["POSTGRES_DB"])
    with project_lock(load_settings(project_dir, env), "restore-full"):
        res = run_cli(["reset", "--yes"], env, cwd=project_dir)
    assert res.code == 2
    assert "dbkit restore-full (pid" in res.err and "is running in this project" in res.err
    assert _has_table(server, env["POSTGRES_DB"], "precious")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"DB_MODE": "cloud"}, "DB_MODE='cloud' is not one of"),
        ({"BACKEND_DIR": "/nonexistent"}, "BACKEND_DIR /nonexistent is not a directory"),
    ],
)
def test_bad_settings_are_one_line_without_traceback(
    env: dict[str, str], project_dir: Path, extra: dict[str, str], message: str
) -> None:
    proc = run_dbkit(["history"], {**env, **extra}, cwd=project_dir)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_backend_dir_without_alembic_ini(env: dict[str, str], project_dir: Path,
                                         tmp_path: Path) -> None:
    empty = tmp_path / "app"
    empty.mkdir()
    res = run_cli(["history"], {**env, "BACKEND_DIR": str(empty)}, cwd=project_dir)
    assert res.code == 2
    assert f"no Alembic config at {empty}/alembic.ini" in res.err


def test_url_masks_the_password_unless_asked(env: dict[str, str], project_dir: Path,
                                             server: EmbeddedServer) -> None:
    url = f"postgresql://postgres:s3cret@/{env['POSTGRES_DB']}?host={server.socket_dir}"
    user_env = {**env, "DB_MODE": "url", "DATABASE_URL": url}
    res = run_cli(["url"], user_env, cwd=project_dir)
    assert res.code == 0, res.err
    assert "s3cret" not in res.out and "***" in res.out
    res = run_cli(["url", "--show-password"], user_env, cwd=project_dir)
    assert "s3cret" in res.out


def test_demo_builds_and_reports(env: dict[str, str], project_dir: Path,
                                 server: EmbeddedServer) -> None:
    res = run_cli(["demo"], env, cwd=project_dir)
    assert res.code == 0, res.err
    assert "Migration chain: 24 revisions" in res.out
    assert "views                10" in res.out
    assert _has_table(server, env["POSTGRES_DB"], "genes")


def test_psql_opens_a_session_on_the_development_database(
    env: dict[str, str], project_dir: Path
) -> None:
    proc = run_dbkit(["psql"], env, cwd=project_dir,
                     input="SELECT 'in ' || current_database();\n")
    assert proc.returncode == 0, proc.stderr
    assert f"in {env['POSTGRES_DB']}" in proc.stdout


def test_upgrade_creates_a_missing_development_database(
    env: dict[str, str], project_dir: Path, server: EmbeddedServer
) -> None:
    from dbkit.pg import scratch

    name = scratch.scratch_name("missing")
    try:
        res = run_cli(["upgrade"], {**env, "POSTGRES_DB": name}, cwd=project_dir)
        assert res.code == 0, res.err
        assert f"Created database {name}" in res.out
        assert _has_table(server, name, "genes")
    finally:
        scratch.drop_database(server, name)


def _broken_env_py(tmp_path: Path) -> Path:
    backend = copy_backend(tmp_path / "backend")
    env_py = backend / "alembic" / "env.py"
    env_py.write_text(env_py.read_text().replace(
        "config = context.config\n",
        "config = context.config\nraise RuntimeError('boom in env.py')\n", 1))
    return backend


def test_a_failing_env_py_is_one_line_and_its_traceback_only_with_debug(
    env: dict[str, str], project_dir: Path, tmp_path: Path
) -> None:
    user_env = {**env, "BACKEND_DIR": str(_broken_env_py(tmp_path))}
    plain = run_dbkit(["current"], user_env, cwd=project_dir)
    assert plain.returncode == 2
    assert plain.stderr == "dbkit current: error: alembic current failed: RuntimeError: " \
                           "boom in env.py\n"
    debug = run_dbkit(["--debug", "current"], user_env, cwd=project_dir)
    assert debug.returncode != 0
    assert "Traceback" in debug.stderr and "env.py" in debug.stderr


def test_migrations_that_need_autocommit_run_as_with_plain_alembic(
    env: dict[str, str], project_dir: Path, tmp_path: Path, server: EmbeddedServer
) -> None:
    backend = copy_backend(tmp_path / "backend")
    (backend / "alembic" / "versions" / "eeee00000001_concurrent_index.py").write_text(
        '"""concurrent index"""\n'
        "from alembic import op\n\n"
        'revision = "eeee00000001"\ndown_revision = "0a9d4c2e8f61"\n'
        "branch_labels = None\ndepends_on = None\n\n\n"
        "def upgrade() -> None:\n"
        "    with op.get_context().autocommit_block():\n"
        '        op.execute("CREATE INDEX CONCURRENTLY ix_genes_created ON genes (created_at)")\n'
        "\n\ndef downgrade() -> None:\n"
        '    op.execute("DROP INDEX ix_genes_created")\n'
    )
    res = run_cli(["upgrade"], {**env, "BACKEND_DIR": str(backend)}, cwd=project_dir)
    assert res.code == 0, res.err
    assert _has_table(server, env["POSTGRES_DB"], "ix_genes_created")


def test_an_option_variable_of_another_verb_does_not_break_this_one(
    env: dict[str, str], project_dir: Path
) -> None:
    res = run_cli(["current"], {**env, "JSON": "pretty", "REVISION": "abc123"}, cwd=project_dir)
    assert res.code == 0, res.err
    res = run_cli(["validate"], {**env, "JSON": "pretty"}, cwd=project_dir)
    assert res.code == 2 and "JSON='pretty' is not a yes/no value" in res.err


def test_current_names_a_revision_that_is_not_in_the_chain(
    env: dict[str, str], project_dir: Path, server: EmbeddedServer
) -> None:
    assert run_cli(["upgrade"], env, cwd=project_dir).code == 0
    conn = server.connect(env["POSTGRES_DB"])
    with conn.cursor() as cur:
        cur.execute("UPDATE alembic_version SET version_num = 'deadbeef0000'")
    conn.close()
    res = run_cli(["current"], env, cwd=project_dir)
    assert res.out.strip().splitlines()[-1] == (
        "deadbeef0000 (not in this chain: newer, deleted or squashed)")


def test_confirm_cannot_be_faked_through_the_environment(
    env: dict[str, str], project_dir: Path, server: EmbeddedServer
) -> None:
    _mark(server, env["POSTGRES_DB"])
    res = run_cli(["reset"], {**env, "CONFIRM": "--yes"}, cwd=project_dir)
    assert res.code == 2 and "does not match" in res.err
    assert _has_table(server, env["POSTGRES_DB"], "precious")


def test_reset_leaves_no_old_copy_behind(env: dict[str, str], project_dir: Path,
                                         server: EmbeddedServer) -> None:
    before = _all_databases(server)
    assert run_cli(["reset", "--yes"], env, cwd=project_dir).code == 0
    assert _all_databases(server) == before


def _all_databases(server: EmbeddedServer) -> set[str]:
    conn = server.connect("postgres")
    with conn.cursor() as cur:
        cur.execute("SELECT datname FROM pg_database")
        names = {r[0] for r in cur.fetchall()}
    conn.close()
    return names


@pytest.mark.parametrize(("under_make", "advice"), [
    (True, "verify it with: make db-backup-verify BACKUP="),
    (False, "verify it with: BACKUP="),
])
def test_advice_names_what_the_user_types(env: dict[str, str], project_dir: Path,
                                          under_make: bool, advice: str) -> None:
    """Under make (MAKELEVEL set) the make target; run as dbkit itself, the verb."""
    if not under_make:
        env = {k: v for k, v in env.items() if k != "MAKELEVEL"}
    result = run_cli(["backup-full"], env, cwd=project_dir)
    assert result.code == 0, result.err
    line = next(x for x in result.out.splitlines() if "verify it with" in x)
    assert advice in line, line
    assert line.endswith("dbkit backup-verify") != under_make, line
