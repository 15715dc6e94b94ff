"""Squash speed on the sample backend, against the two builds no squash can avoid.

On a private embedded server in a temporary directory (never the project's .pgdata), with a
private copy of backend/, each timed from process start to exit, median of ``--repeat``:

* ``dbkit squash --dry-run`` (build, capture, render, the whole proof, report)
  vs the sum of the two irreducible builds: the old chain into an empty database plus the
  squashed revision into an empty database (``alembic upgrade head`` each)    goal <= 2x
* a fresh install with the squashed revision vs replaying the chain (the same two builds)

Usage: ``python -m bench.bench_squash [--repeat N] [--keep]`` or ``make bench BENCH=squash``.
Results go to bench/results/squash.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.bench_backup import machine
from dbkit.console import Console
from dbkit.pg import scratch
from dbkit.pg.embedded import EmbeddedServer
from dbkit.project.chain import AlembicProject
from dbkit.settings import load_settings

RESULTS = Path(__file__).parent / "results"
BACKEND = Path(__file__).resolve().parent.parent / "backend"
GOAL = 2.0


def timed(fn: Callable[[], Any], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times


def timed_builds(server: EmbeddedServer, project: AlembicProject, repeat: int) -> list[float]:
    """``alembic upgrade head`` into an empty database, each in a child of its own as dbkit
    runs it outside a squash (the child's start counted, the database's creation not)."""
    times = []
    for _ in range(repeat):
        with scratch.scratch_database(server, "bench") as db:
            started = time.perf_counter()
            project.upgrade(db, "head")
            times.append(time.perf_counter() - started)
    return times


def squash_dry_run(env: dict[str, str], cwd: Path) -> Path:
    """One ``dbkit squash --dry-run`` as a user runs it; the folder it wrote into."""
    proc = subprocess.run([sys.executable, "-m", "dbkit", "squash", "--dry-run"], env=env,
                          cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"bench_squash: the squash failed: {proc.stderr.strip()}")
    match = re.search(r"everything goes to (\S+);", proc.stdout)
    assert match, proc.stdout
    return Path(match.group(1))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench_squash", description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of each (median)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="dbkit-bench-squash-"))
    project = work / "backend"
    shutil.copytree(BACKEND, project, ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update({"DB_MODE": "embedded", "PGDATA_DIR": str(work / "pgdata"),
                "POSTGRES_DB": "bench", "BACKEND_DIR": str(project),
                "BACKUP_DIR": str(work / "backups"), "NO_COLOR": "1", "TMPDIR": str(work)})
    settings = load_settings(work, env, env_file=Path("/nonexistent"))
    server = EmbeddedServer(settings)
    try:
        server.ensure_running()
        chain = AlembicProject(settings, server)
        revisions = len(chain.revisions())
        print(f"Sample backend: {revisions} revisions; warming up ...", flush=True)
        folder = squash_dry_run(env, work)  # also writes the squashed revision we time below
        squashed = AlembicProject(settings, server, version_locations=folder / "versions")

        runs = {"old_chain_build": timed_builds(server, chain, args.repeat),
                "new_revision_build": timed_builds(server, squashed, args.repeat),
                "squash_dry_run": timed(lambda: squash_dry_run(env, work), args.repeat)}
        old_chain, new_revision, squash = (statistics.median(runs[k]) for k in (
            "old_chain_build", "new_revision_build", "squash_dry_run"))
        result = {
            "revisions": revisions,
            "repeat": args.repeat,
            "median_s": {"squash_dry_run": round(squash, 3),
                         "old_chain_build": round(old_chain, 3),
                         "new_revision_build": round(new_revision, 3)},
            "runs_s": {k: [round(t, 3) for t in v] for k, v in runs.items()},
            "squash_vs_builds": round(squash / (old_chain + new_revision), 2),
            "fresh_install_speedup": round(old_chain / new_revision, 2),
            "goal": GOAL,
            "machine": machine(),
            "server_version": server.version_num,
            "revision_bytes": sum(p.stat().st_size for p in (folder / "versions").iterdir()),
        }
    finally:
        server.stop(Console(io.StringIO()))
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    report(result)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "squash.json").write_text(json.dumps(result, indent=2) + "\n")


def report(result: dict[str, Any]) -> None:
    t = result["median_s"]
    builds = t["old_chain_build"] + t["new_revision_build"]
    ratio = result["squash_vs_builds"]
    print(f"\n{'(median of ' + str(result['repeat']) + ')':<58} {'seconds':>8}")
    print(f"{'old chain into an empty database (' + str(result['revisions']) + ' revisions)':<58}"
          f" {t['old_chain_build']:>8.2f}")
    print(f"{'squashed revision into an empty database':<58} {t['new_revision_build']:>8.2f}")
    print(f"{'  sum of the two irreducible builds':<58} {builds:>8.2f}")
    print(f"{'dbkit squash --dry-run (build, capture, render, prove)':<58} "
          f"{t['squash_dry_run']:>8.2f}")
    print(f"squash / builds = {ratio:.2f}x (goal <= {result['goal']:g}x: "
          f"{'met' if ratio <= result['goal'] else 'NOT met'}); fresh install "
          f"{result['fresh_install_speedup']:.2f}x faster with the squashed revision; "
          f"machine: {result['machine']['cores']} cores, {result['machine']['cpu']}")


if __name__ == "__main__":
    main(sys.argv[1:])
