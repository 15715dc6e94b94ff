"""Helpers shared by the squash tests: a private copy of an Alembic project, a squash run,
and what it left behind."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from backup_helpers import TtyInput, databases

from conftest import Result, base_env, run_cli
from dbkit import cli
from dbkit.pg.server import Server


def copy_project(src: Path, project_dir: Path) -> Path:
    """A private copy of an Alembic project (the squash rewrites its versions directory)."""
    dest = project_dir / "backend"
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def versions_of(backend: Path) -> Path:
    """The versions directory of a fixture (``versions/``) or the sample backend."""
    flat = backend / "versions"
    return flat if flat.is_dir() else backend / "alembic" / "versions"


def squash_env(pgdata: Path, dbname: str, project_dir: Path, backend: Path,
               **extra: str) -> dict[str, str]:
    return base_env(pgdata, dbname, project_dir, BACKEND_DIR=str(backend), **extra)


def scratch_databases(server: Server) -> set[str]:
    return {name for name in databases(server) if name.startswith("dbkit_")}


def dry_run(env: dict[str, str], project_dir: Path, tmp_path: Path) -> tuple[Result, Path | None]:
    """``dbkit squash --dry-run`` in-process; its output folder (None when it failed early)."""
    saved = tempfile.tempdir
    tempfile.tempdir = str(tmp_path)  # the dry run's folder of its own goes under tmp_path
    try:
        result = run_cli(["squash", "--dry-run"], env, cwd=project_dir)
    finally:
        tempfile.tempdir = saved
    match = re.search(r"everything goes to (\S+);", result.out)
    return result, Path(match.group(1)) if match else None


def run_tty(argv: list[str], env: dict[str, str], cwd: Path, typed: str) -> Result:
    """Like run_cli, with ``typed`` as the answers of someone at a terminal."""
    out, err = io.StringIO(), io.StringIO()
    old = Path.cwd()
    os.chdir(cwd)
    try:
        code = cli.run(argv, out, err, environ=env, stdin=TtyInput(typed))
    finally:
        os.chdir(old)
    return Result(code, out.getvalue(), err.getvalue())


def report_of(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "squash_report.json").read_text())


def squashed_file(folder: Path) -> Path:
    files = sorted(folder.glob("*_squashed_*_revisions.py"))
    assert len(files) == 1, files
    return files[0]
