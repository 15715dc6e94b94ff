"""dbkit as a user installs it: a wheel built from this repository, installed into fresh
virtual environments outside it, run from a user's repository (tests/fixtures/userrepo) with
no settings at all, its Makefile given the db-* targets by the three-line include, and
`dbkit check` failing on each thing CI must refuse.

Every package comes from the wheelhouse `make test-venvs` fills (~/.cache/dbkit/wheelhouse),
so no index is asked; the wheel is built once per session.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
USERREPO = Path(__file__).resolve().parent / "fixtures" / "userrepo"
sys.path.insert(0, str(REPO / "scripts"))
import project_venvs  # noqa: E402 - scripts/ is not a package

pytestmark = pytest.mark.skipif(bool(os.environ.get("DBKIT_TEST_PG_BIN")),
                                reason="install tests run once, with the wheel's server")


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None = None,
         timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"{proc.args} exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def user_env(**extra: str) -> dict[str, str]:
    """A user's shell: nothing of dbkit's, nothing of this repository's test settings."""
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    env.update(NO_COLOR="1", **extra)
    return env


@pytest.fixture(scope="session")
def wheelhouse() -> Path:
    problem = project_venvs.fill_wheelhouse()
    if problem:
        pytest.fail(f"the wheelhouse cannot be filled (make test-venvs): {problem}")
    return project_venvs.wheelhouse()


@pytest.fixture(scope="session")
def wheel(wheelhouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dbkit's wheel, built once per session from a clean copy of the repository's files."""
    src = tmp_path_factory.mktemp("src")
    files = _ok(_run(["git", "ls-files", "-co", "--exclude-standard"], REPO)).stdout.split()
    for rel in files:
        if (REPO / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, src / rel)
    out = tmp_path_factory.mktemp("wheel")
    _ok(_run([project_venvs.pip_python(), "-m", "pip", "wheel", "--quiet",
              "--disable-pip-version-check", "--no-deps", "--no-index", "--find-links",
              str(wheelhouse), "-w", str(out), str(src)], src))
    found = list(out.glob("dbkit-*.whl"))
    assert len(found) == 1, found
    return found[0]


@pytest.fixture(scope="module")
def shelf(wheel: Path, wheelhouse: Path, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[Path]:
    """The user's repository with its own .venv (its SQLAlchemy 1.4 and Alembic 1.13), into
    which the user ran `pip install dbkit-….whl`."""
    root = tmp_path_factory.mktemp("user") / "shelf"
    shutil.copytree(USERREPO, root)
    pip = [str(root / ".venv/bin/python"), "-m", "pip", "install", "--quiet",
           "--disable-pip-version-check", "--no-index", "--find-links", str(wheelhouse)]
    _ok(_run([sys.executable, "-m", "venv", str(root / ".venv")], root))
    _ok(_run([*pip, *project_venvs.PROJECT_WHEELS], root))
    _ok(_run([*pip, str(wheel)], root))
    _ok(_run(["git", "init", "-q"], root))
    yield root
    _run([str(root / ".venv/bin/dbkit"), "down"], root, user_env())


def dbkit(root: Path, *argv: str, cwd: Path | None = None, **env: str
          ) -> subprocess.CompletedProcess:
    return _run([str(root / ".venv/bin/dbkit"), *argv], cwd or root, user_env(**env))


def test_installed_beside_the_projects_own_packages(shelf: Path) -> None:
    # Ranges, not pins: pip kept the project's SQLAlchemy and Alembic.
    listed = _ok(_run([str(shelf / ".venv/bin/python"), "-m", "pip", "list",
                       "--disable-pip-version-check", "--format=json"], shelf)).stdout
    versions = {p["name"].lower(): p["version"] for p in json.loads(listed)}
    assert versions["sqlalchemy"].startswith("1.4.") and versions["alembic"].startswith("1.13.")
    assert versions["dbkit"] == "0.1.0"


def test_every_verb_from_the_projects_folder_with_no_settings(shelf: Path) -> None:
    versions = sorted(p.name for p in (shelf / "migrations/versions").glob("*.py"))
    up = _ok(dbkit(shelf, "upgrade"))
    assert "Created database shelf" in up.stdout and "shelf is at a3" in up.stdout
    assert (f"Project: {shelf} (python: {shelf}/.venv/bin/python, the project's .venv; "
            f"SQLAlchemy 1.4.54") in up.stdout
    assert f"database: dbkit's embedded server, data in {shelf}/.dbkit/pgdata" in up.stdout
    assert "a3 (head)" in _ok(dbkit(shelf, "current")).stdout
    assert "In sync: shelf matches the app at a3" in _ok(dbkit(shelf, "validate")).stdout
    dry = _ok(dbkit(shelf, "squash", "--dry-run"))
    assert "the models match the squashed schema" in dry.stdout
    assert sorted(p.name for p in (shelf / "migrations/versions").glob("*.py")) == versions
    full = _ok(dbkit(shelf, "backup-full"))
    name = next(line.split("BACKUP=")[1].split()[0] for line in full.stdout.splitlines()
                if "BACKUP=" in line)
    # run as dbkit itself, the advice is the verb: what the user types there
    assert f"verify it with: BACKUP={name} dbkit backup-verify" in full.stdout
    assert (shelf / ".dbkit/backups" / name / "manifest.json").is_file()
    _ok(dbkit(shelf, "backup-verify", BACKUP=name))
    # dbkit's state is one folder that git ignores by itself; nothing else was written.
    assert (shelf / ".dbkit/.gitignore").read_text().splitlines()[-1] == "*"
    status = _ok(_run(["git", "status", "--porcelain", "--untracked-files=all"], shelf)).stdout
    assert ".dbkit" not in status
    assert sorted(p.name for p in shelf.iterdir()) == sorted(
        [".dbkit", ".git", ".venv", *(p.name for p in USERREPO.iterdir())])


def test_the_makefile_include_gives_the_db_targets(shelf: Path) -> None:
    make = ["make", "--no-print-directory", f"DBKIT={shelf}/.venv/bin/dbkit"]
    helped = _ok(_run([*make, "db-help"], shelf, user_env())).stdout
    assert "make db-squash-migrations" in helped and "make db-check" in helped
    assert "hello from shelf" in _ok(_run([*make, "hello"], shelf, user_env())).stdout
    _ok(_run([*make, "db-upgrade"], shelf, user_env()))
    assert "a3 (head)" in _ok(_run([*make, "db-current"], shelf, user_env())).stdout
    # A make variable reaches dbkit as before (BACKUP=..., FORMAT=...).
    assert "?host=" in _ok(_run([*make, "db-url", "FORMAT=libpq"], shelf, user_env())).stdout
    snippet = _ok(dbkit(shelf, "make-include", "--snippet")).stdout
    assert "include $(shell $(DBKIT) make-include)" in snippet
    assert Path(_ok(dbkit(shelf, "make-include")).stdout.strip()).is_file()


# -- dbkit check ----------------------------------------------------------------------------------
@pytest.fixture
def project(shelf: Path, tmp_path: Path) -> Iterator[Path]:
    """A copy of the user's repository to break, with the same .venv."""
    root = tmp_path / "shelf"
    shutil.copytree(USERREPO, root)
    (root / ".venv").symlink_to(shelf / ".venv")
    yield root
    dbkit(root, "down")


def _check(root: Path, *argv: str, **env: str) -> subprocess.CompletedProcess:
    proc = dbkit(root, "check", *argv, **env)
    assert proc.returncode in (0, 1), proc.stderr
    return proc


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_check_passes_on_a_clean_project(project: Path) -> None:
    proc = _check(project)
    assert proc.returncode == 0
    assert proc.stdout.splitlines()[-1] == "dbkit check: ok (heads, upgrade, models, downgrade)"
    data = json.loads(_check(project, "--json").stdout)
    assert data["ok"] is True and data["findings"] == []


def test_check_fails_on_several_heads(project: Path) -> None:
    (project / "migrations/versions/b1_isbn.py").write_text(
        '"""isbn"""\nimport sqlalchemy as sa\nfrom alembic import op\n\nrevision = "b1"\n'
        'down_revision = "a2"\nbranch_labels = None\ndepends_on = None\n\n\n'
        'def upgrade():\n    op.create_index("ix_books_title", "books", ["title"])\n\n\n'
        'def downgrade():\n    op.drop_index("ix_books_title", "books")\n')
    proc = _check(project)
    assert proc.returncode == 1
    lines = [ln for ln in proc.stdout.splitlines() if ": heads: " in ln]
    assert len(lines) == 1 and "the chain has 2 heads" in lines[0]
    assert "alembic merge" in lines[0]


def test_check_names_a_revision_whose_downgrade_fails(project: Path) -> None:
    path = project / "migrations/versions/a3_longer_titles.py"
    _edit(path, 'def downgrade():\n', 'def downgrade():\n    raise NotImplementedError('
          '"no way back")\n')
    proc = _check(project, GITHUB_ACTIONS="true")
    assert proc.returncode == 1
    line = path.read_text().splitlines().index("def downgrade():") + 1
    assert (f"::error file=migrations/versions/a3_longer_titles.py,line={line},"
            "title=dbkit check (downgrade)::revision a3 (longer titles, notes) does not "
            "downgrade: NotImplementedError: no way back") in proc.stdout.splitlines()


def test_check_names_a_revision_whose_downgrade_leaves_objects(project: Path) -> None:
    _edit(project / "migrations/versions/a1_authors.py", '    op.drop_table("authors")',
          "    pass")
    data = json.loads(_check(project, "--json").stdout)
    assert data["ok"] is False
    found = [f for f in data["findings"] if f["check"] == "downgrade"]
    assert len(found) == 1
    assert found[0]["file"] == "migrations/versions/a1_authors.py"
    assert found[0]["message"].startswith("revision a1 (authors): downgrade() does not undo")
    assert "table public.authors" in found[0]["message"]


def test_check_fails_when_models_and_migrations_disagree(project: Path) -> None:
    _edit(project / "shelf/models.py", "    notes = Column(Text)\n",
          "    notes = Column(Text)\n    isbn = Column(String(20))\n")
    proc = _check(project)
    assert proc.returncode == 1
    found = [ln for ln in proc.stdout.splitlines() if ": models: " in ln]
    assert len(found) == 1 and "public.books.isbn" in found[0]
    assert found[0].startswith("migrations/env.py:")


def test_check_proves_a_squash_and_fails_once_it_is_edited(project: Path) -> None:
    _ok(dbkit(project, "squash", CONFIRM="squash"))
    proc = _check(project)
    assert proc.returncode == 0, proc.stdout
    assert proc.stdout.splitlines()[-1] == ("dbkit check: ok (heads, upgrade, models, "
                                            "downgrade, squash)")
    squashed, = (project / "migrations/versions").glob("a3_squashed_*.py")
    _edit(squashed, "def upgrade() -> None:\n", "def upgrade() -> None:\n    op.execute("
          "\"COMMENT ON TABLE public.authors IS 'edited after the squash'\")\n")
    proc = _check(project)
    assert proc.returncode == 1
    found = [ln for ln in proc.stdout.splitlines() if ": squash: " in ln]
    assert found and all("no longer builds what its archived chain" in ln for ln in found)
    assert any("authors" in ln for ln in found)


# -- uv tool install ---------------------------------------------------------------------------
def test_uv_tool_install_runs_the_projects_own_interpreter(
        wheel: Path, wheelhouse: Path, tmp_path: Path) -> None:
    tools = tmp_path / "tools"
    _ok(_run([sys.executable, "-m", "venv", str(tools)], tmp_path))
    _ok(_run([str(tools / "bin/python"), "-m", "pip", "install", "--quiet",
              "--disable-pip-version-check", "--no-index", "--find-links", str(wheelhouse),
              "uv"], tmp_path))
    bin_dir = tmp_path / "bin"
    env = user_env(UV_TOOL_DIR=str(tmp_path / "uv-tools"), UV_TOOL_BIN_DIR=str(bin_dir),
                   UV_CACHE_DIR=str(Path.home() / ".cache/dbkit/uv"), UV_NO_CONFIG="1",
                   UV_PYTHON=sys.executable)
    _ok(_run([str(tools / "bin/uv"), "tool", "install", "--no-index", "--find-links",
              str(wheelhouse), str(wheel)], tmp_path, env))
    root = tmp_path / "shelf"
    shutil.copytree(USERREPO, root)
    sa14 = project_venvs.python_of("sa14").parent.parent
    if project_venvs.build("sa14") is not None:
        pytest.skip("the SQLAlchemy 1.4 project venv cannot be built (make test-venvs)")
    (root / ".venv").symlink_to(sa14)
    run_env = user_env(PATH=f"{bin_dir}:{os.environ['PATH']}")
    try:
        up = _ok(_run(["dbkit", "upgrade"], root, run_env))
        assert f"(python: {root}/.venv/bin/python, the project's .venv; SQLAlchemy 1.4" \
            in up.stdout
        assert "a3 (head)" in _ok(_run(["dbkit", "current"], root, run_env)).stdout
        assert _run(["dbkit", "check"], root, run_env).returncode == 0
    finally:
        _run(["dbkit", "down"], root, run_env)
