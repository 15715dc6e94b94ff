"""Squash and fresh install at growing sizes: long chains and big schemas.

Inputs, generated (seeded, so every run measures the same thing):

* ``chain N``: a synthetic chain of N revisions (``bench.gen_chain``: tables created,
  altered, renamed, dropped; indexes; views on views; functions and triggers; data
  migrations), N = 30, 100, 300;
* ``schema T``: one revision creating T tables with T/5 views, T/50 functions and triggers,
  and SQLAlchemy models for all of them (``bench.gen_schema``), T = 100, 300, 1,000.

For each, on a private embedded server, each timed from process start to exit:

* ``dbkit squash --dry-run`` (build, capture, render, the whole proof, report) against the
  two builds no squash can avoid: the old chain and the squashed revision each into an empty
  database (``alembic upgrade head`` in a fresh Alembic child, as dbkit runs it);
* for the chains, a fresh install three ways: ``alembic upgrade head`` of the whole chain,
  of the squashed revision, and ``psql -1 -f`` of a plain ``pg_dump`` of the database the
  chain built (the floor: no Python at all, and one transaction, as Alembic runs an upgrade
  on PostgreSQL); plus ``python -c pass`` (the interpreter alone). The upgrades run through
  ``bench.alembic_timed``, which also times their parts from inside: imports, reading the
  revision files, and the upgrade itself (the database time).

Rounds alternate what runs first; min and median of ``repeat`` runs are kept.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from bench import gen_chain, gen_schema, publish
from bench.common import Private, private_server, run_timed, say, squash_dry_run, stats
from dbkit.pg import scratch, tools
from dbkit.project.chain import AlembicProject

ROOT = Path(__file__).resolve().parent.parent
CHAINS = (30, 100, 300)
SCHEMAS = (100, 300, 1000)
# PostgreSQL's defaults: the squashed revision's downgrade() splits a big schema's drops when
# the lock table has no room for them (squash/drops.py), so 1,000 tables need no bigger one
# (max_locks_per_transaction = 256 until then). Settings here are applied before the run.
SERVER_SETTINGS: dict[str, str] = {}
QUICK_CHAINS = (30,)
QUICK_SCHEMAS = (100,)


def _timed_build(p: Private, project: AlembicProject) -> float:
    """``alembic upgrade head`` into an empty database in a child of its own, as dbkit runs
    it outside a squash (the child's start counted, the database's creation not)."""
    with scratch.scratch_database(p.server, "benchbuild") as db:
        started = time.perf_counter()
        project.upgrade(db, "head")
        return time.perf_counter() - started


def _squashed_copy(project: Path, folder: Path) -> Path:
    """The project with its versions directory replaced by the squashed one."""
    copy = project.with_name(project.name + "_squashed")
    shutil.copytree(project, copy, ignore=shutil.ignore_patterns("versions", "__pycache__"))
    shutil.copytree(folder / "versions", copy / "versions",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def _alembic(p: Private, project: Path, *args: str, db: str | None = None) -> float:
    env = p.env(project)
    if db is not None:
        env["DATABASE_URL"] = p.server.url(db, show_password=True)
    return run_timed([sys.executable, "-m", "alembic", "-c", str(project / "alembic.ini"),
                      *args], env=env, cwd=project, what=f"alembic {' '.join(args)}")[0]


def _psql_file(p: Private, dump: Path) -> float:
    with scratch.scratch_database(p.server, "benchpsql") as db:
        inv = p.server.tool("psql", ["-X", "-q", "-1", "-v", "ON_ERROR_STOP=1", "-f",
                                     str(dump), "-d", db], db)
        started = time.perf_counter()
        tools.run(inv, what="psql -f")
        return time.perf_counter() - started


def _into_empty(p: Private, project: Path, parts: dict[str, list[float]], name: str) -> float:
    """``alembic upgrade head`` into an empty database, from process start to exit; the
    parts timed inside (imports, reading the revision files, the upgrade) go to ``parts``."""
    with scratch.scratch_database(p.server, "benchinstall") as db:
        env = p.env(project, DATABASE_URL=p.server.url(db, show_password=True))
        took, stdout = run_timed([sys.executable, "-m", "bench.alembic_timed",
                                  str(project / "alembic.ini")], env=env, cwd=ROOT,
                                 what="alembic upgrade head")
    for part, seconds in json.loads(stdout.strip().splitlines()[-1]).items():
        if part != "revisions":
            parts.setdefault(f"{name}_{part}", []).append(seconds)
    return took


def fresh_install(p: Private, project: Path, squashed: Path, repeat: int) -> dict[str, Any]:
    """The chain, its squashed revision and psql -1 -f of a dump, each into an empty
    database; and the interpreter alone."""
    dump = project.with_name(project.name + ".sql")
    with scratch.scratch_database(p.server, "benchdump") as db:
        _alembic(p, project, "upgrade", "head", db=db)
        tools.run(p.server.tool("pg_dump", ["-f", str(dump)], db), what="pg_dump")
    parts: dict[str, list[float]] = {}
    steps = {
        "interpreter": lambda: run_timed([sys.executable, "-c", "pass"])[0],
        "replay_chain": lambda: _into_empty(p, project, parts, "replay_chain"),
        "squashed": lambda: _into_empty(p, squashed, parts, "squashed"),
        "psql_dump": lambda: _psql_file(p, dump),
    }
    runs: dict[str, list[float]] = {k: [] for k in steps}
    names = list(steps)
    for round_ in range(repeat):
        for name in names if round_ % 2 == 0 else reversed(names):
            runs[name].append(steps[name]())
    out: dict[str, Any] = {k: stats(v) for k, v in {**runs, **parts}.items()}
    out["dump_bytes"] = dump.stat().st_size
    return out


def measure(p: Private, kind: str, size: int, repeat: int) -> dict[str, Any]:
    project = p.work / f"{kind}_{size}"
    if kind == "chain":
        gen_chain.write(project, size)
    else:
        gen_schema.write_project(project, size)
    env = p.env(project)
    settings = p.settings(env)
    warm, folder = squash_dry_run(env, p.work)  # also writes the squashed revision
    report = json.loads((folder / "squash_report.json").read_text())
    squashed_dir = _squashed_copy(project, folder)
    old = AlembicProject(settings, p.server)
    new = AlembicProject(settings, p.server, version_locations=folder / "versions")
    runs: dict[str, list[float]] = {"squash": [], "build_old": [], "build_new": []}
    for round_ in range(repeat):
        order = ["build_old", "build_new", "squash"]
        for name in order if round_ % 2 == 0 else reversed(order):
            if name == "squash":
                runs[name].append(squash_dry_run(env, p.work)[0])
            else:
                runs[name].append(_timed_build(p, old if name == "build_old" else new))
    result: dict[str, Any] = {
        "kind": kind, "size": size, "repeat": repeat,
        "revisions": report["replaced"]["count"],
        "captured": report["captured"],
        "revision_bytes": report["file_size"],
        "warmup_s": round(warm, 3),
        **{k: stats(v) for k, v in runs.items()},
    }
    if kind == "chain":
        result["install"] = fresh_install(p, project, squashed_dir, repeat)
    return publish.derive(result)


def _line(r: dict[str, Any]) -> str:
    text = (f"{r['kind']:>6} {r['size']:>5}: squash {r['squash']['median']:6.2f} s, builds "
            f"{r['build_old']['median']:.2f} + {r['build_new']['median']:.2f} s -> "
            f"{r['squash_vs_builds']:.2f}x; {r['captured'].get('tables', 0)} tables, "
            f"{r['captured'].get('views', 0)} views")
    if "install" in r:
        i, d = r["install"], r["install"]["derived"]
        text += (f"\n{'':>14}install: replay {i['replay_chain']['median']:.2f} s, squashed "
                 f"{i['squashed']['median']:.2f} s, psql -f {i['psql_dump']['median']:.2f} s, "
                 f"interpreter {i['interpreter']['median']:.2f} s; squashed db time "
                 f"{d['squashed_db_s']:.2f} s = {d['squashed_db_vs_psql']:.2f}x psql")
    return text


def run(*, quick: bool = False, repeat: int = 3, chains: tuple[int, ...] | None = None,
        schemas: tuple[int, ...] | None = None) -> dict[str, Any]:
    chains = chains if chains is not None else (QUICK_CHAINS if quick else CHAINS)
    schemas = schemas if schemas is not None else (QUICK_SCHEMAS if quick else SCHEMAS)
    results = []
    with private_server("squash", settings=SERVER_SETTINGS) as p:
        for kind, sizes in (("chain", chains), ("schema", schemas)):
            for size in sizes:
                r = measure(p, kind, size, repeat)
                results.append(r)
                say(_line(r))
        server_version = p.server.version_num
    return {"inputs": results, "repeat": repeat, "server_version": server_version,
            "server_settings": SERVER_SETTINGS}


def main(argv: list[str]) -> None:
    run(quick="--quick" in argv)


if __name__ == "__main__":
    main(sys.argv[1:])
