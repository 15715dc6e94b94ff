"""What every benchmark shares: a private server, timing, statistics, the machine."""

from __future__ import annotations

import io
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dbkit.console import Console
from dbkit.pg.embedded import EmbeddedServer
from dbkit.settings import Settings, load_settings


def machine() -> dict[str, Any]:
    model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text()
                  .splitlines() if ln.startswith("model name")), platform.processor())
    memory = next((ln.split()[1] for ln in Path("/proc/meminfo").read_text().splitlines()
                   if ln.startswith("MemTotal")), "0")
    return {"cores": len(os.sched_getaffinity(0)), "cpu": model,
            "memory_gb": round(int(memory) / 1024**2, 1), "python": platform.python_version(),
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def stats(runs: list[float]) -> dict[str, Any]:
    """min, median and every run, in seconds."""
    return {"min": round(min(runs), 3), "median": round(statistics.median(runs), 3),
            "runs": [round(r, 3) for r in runs]}


@dataclass
class Private:
    """An embedded server in a temporary directory (never the project's .pgdata)."""

    work: Path
    server: EmbeddedServer
    base_env: dict[str, str]

    def env(self, project: Path | None = None, **extra: str) -> dict[str, str]:
        env = dict(self.base_env)
        if project is not None:
            env["BACKEND_DIR"] = str(project)
        env.update(extra)
        return env

    def settings(self, env: dict[str, str]) -> Settings:
        return load_settings(self.work, env, env_file=Path("/nonexistent"))


@contextmanager
def private_server(prefix: str, *, keep: bool = False,
                   settings: dict[str, str] | None = None) -> Iterator[Private]:
    """``settings``: server settings (ALTER SYSTEM) applied with a restart before use."""
    work = Path(tempfile.mkdtemp(prefix=f"dbkit-bench-{prefix}-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update({"DB_MODE": "embedded", "PGDATA_DIR": str(work / "pgdata"),
                "POSTGRES_DB": "bench", "BACKUP_DIR": str(work / "backups"),
                "NO_COLOR": "1", "TMPDIR": str(work)})
    env.pop("DATABASE_URL", None)
    server = EmbeddedServer(load_settings(work, env, env_file=Path("/nonexistent")))
    try:
        server.ensure_running()
        if settings:
            conn = server.connect("postgres")
            try:
                with conn.cursor() as cur:
                    for name, value in settings.items():
                        cur.execute(f"ALTER SYSTEM SET {name} = %s", (value,))
            finally:
                conn.close()
            server.stop(Console(io.StringIO()))
            server.ensure_running()
        yield Private(work, server, env)
    finally:
        server.stop(Console(io.StringIO()))
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def run_timed(argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
              what: str = "") -> tuple[float, str]:
    """Seconds from process start to exit, and its stdout; a failure stops the benchmark."""
    started = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    took = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"bench: {what or argv[0]} exited {proc.returncode}:\n"
                         f"{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return took, proc.stdout


def squash_dry_run(env: dict[str, str], cwd: Path) -> tuple[float, Path]:
    """One ``dbkit squash --dry-run`` as a user runs it: its seconds, the folder it wrote."""
    took, stdout = run_timed([sys.executable, "-m", "dbkit", "squash", "--dry-run"], env=env,
                             cwd=cwd, what="dbkit squash --dry-run")
    match = re.search(r"everything goes to (\S+);", stdout)
    assert match, stdout
    return took, Path(match.group(1))


def say(text: str) -> None:
    print(text, flush=True)
