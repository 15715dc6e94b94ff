"""How long ``dbkit validate`` takes on a large generated schema, and how that grows.

A generated project per size (``bench.gen_schema``: N tables, N/5 views, N/50 functions and
triggers, all declared in the app's registry). The database is built to head, so every run
does the full work (Alembic's comparison of every table, every declared definition rendered
and compared). A run is the real command line, ``python -m dbkit validate``, from process
start to exit. Goals: <= 2 s at 500 tables + 100 views; time per table at 1,000 tables
<= 1.2x the time per table at 100.

Usage: ``python -m bench.bench_validate [SIZES...]`` (default 100 500 1000) or
``make bench BENCH=validate``. ``python -m bench.bench_validate sample``: the sample backend
(24 revisions) with no registry, every check that applies (the models and the chain check):
the first run builds the chain and keeps it as a template, the next ones reuse it. Goal:
<= 1.5 s warm.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import Private, private_server, run_timed, say, stats
from bench.gen_schema import write_project
from dbkit.pg import scratch
from dbkit.project.chain import AlembicProject
from dbkit.validate import declared

SIZES = (100, 500, 1000)
QUICK_SIZES = (100,)
SAMPLE_GOAL = 1.5
RESULTS = Path(__file__).parent / "results"


def measure(p: Private, tables: int, repeat: int) -> dict[str, Any]:
    project = p.work / f"validate_{tables}"
    counts = write_project(project, tables)
    with scratch.scratch_database(p.server, "benchvalidate") as db:
        env = p.env(project, POSTGRES_DB=db)
        settings = p.settings(env)
        alembic = AlembicProject(settings, p.server)
        started = time.perf_counter()
        alembic.upgrade(db, "head")
        build = time.perf_counter() - started
        runs = [run_timed([sys.executable, "-m", "dbkit", "validate"], env=env, cwd=p.work,
                          what="dbkit validate")[0] for _ in range(repeat)]
        # Where the time goes: the Alembic child (env.py, models, compare_metadata) versus
        # rendering and comparing the declared definitions in dbkit's process.
        started = time.perf_counter()
        facts = alembic.validation_facts(db, settings.app_objects)
        child = time.perf_counter() - started
        registry = declared.Registry.from_json(settings.app_objects, facts["registry"])
        conn = p.server.connect(db, autocommit=False)
        started = time.perf_counter()
        try:
            found = declared.compare(conn, registry, ["public"])
        finally:
            conn.close()
        definitions = time.perf_counter() - started
        assert not found, found
    return {**counts, "build_s": round(build, 2), "validate": stats(runs),
            "child_s": round(child, 3), "definitions_s": round(definitions, 3)}


def run(*, quick: bool = False, repeat: int = 3, sizes: tuple[int, ...] | None = None
        ) -> dict[str, Any]:
    sizes = sizes or (QUICK_SIZES if quick else SIZES)
    results = []
    with private_server("validate") as p:
        say(f"{'tables':>6} {'views':>5} {'funcs':>5}  {'median':>7} {'min':>6}  {'child':>6}"
            f"  {'defs':>5}")
        for tables in sizes:
            r = measure(p, tables, repeat)
            results.append(r)
            v = r["validate"]
            say(f"{r['tables']:>6} {r['views']:>5} {r['functions']:>5}  {v['median']:>6.2f}s "
                f"{v['min']:>5.2f}s  {r['child_s']:>5.2f}s  {r['definitions_s']:>4.2f}s")
    return {"sizes": results, "repeat": repeat}


def measure_sample(p: Private, repeat: int = 3) -> dict[str, Any]:
    backend = Path(__file__).resolve().parent.parent / "backend"
    with scratch.scratch_database(p.server, "benchsample") as db:
        env = p.env(backend, APP_OBJECTS="", POSTGRES_DB=db)
        AlembicProject(p.settings(env), p.server).upgrade(db, "head")
        runs = {}
        for label, extra in (("models only", {"CHECKS": "models"}), ("all checks", {})):
            times = [run_timed([sys.executable, "-m", "dbkit", "validate"],
                               env={**env, **extra}, cwd=p.work, what="dbkit validate")[0]
                     for _ in range(repeat + 1)]
            runs[label] = {"first_s": round(times[0], 3),
                           "warm_median_s": round(statistics.median(times[1:]), 3),
                           "warm_runs_s": [round(t, 3) for t in times[1:]]}
            say(f"sample, {label}: first {times[0]:.2f}s, warm median "
                f"{statistics.median(times[1:]):.2f}s "
                f"({' '.join(f'{t:.2f}' for t in times[1:])})")
    warm = runs["all checks"]["warm_median_s"]
    say(f"goal <= {SAMPLE_GOAL:g} s warm: {'met' if warm <= SAMPLE_GOAL else 'NOT met'} "
        f"({warm:.2f} s)")
    return runs


def main(argv: list[str]) -> None:
    if argv == ["sample"]:
        with private_server("validate") as p:
            result = measure_sample(p)
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "validate_sample.json").write_text(json.dumps(result, indent=2) + "\n")
        return
    run(sizes=tuple(int(a) for a in argv) or None)


if __name__ == "__main__":
    main(sys.argv[1:])
