"""How long ``dbkit validate`` takes on a large generated schema, and how that grows.

A generated Alembic project per size: N tables (5 columns each, primary key, index, foreign
key to the previous table, server default), N/5 views joining two tables, N/50 functions and
N/50 triggers, all declared in the app's registry. The database is built to head, so every
run does the full work (Alembic's comparison of every table, every declared definition
rendered and compared). A run is the real command line, ``python -m dbkit validate``, from
process start to exit. Goal: <= 2 s at 500 tables + 100 views.

Usage: ``python -m bench.bench_validate [SIZES...]`` (default 100 250 500 1000) or
``make bench BENCH=validate``. ``python -m bench.bench_validate sample``: the sample backend
(24 revisions) with no registry, every check that applies (the models and the chain check):
the first run builds the chain and keeps it as a template, the next ones reuse it. Goal:
<= 1.5 s warm.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dbkit.console import Console
from dbkit.pg import scratch
from dbkit.pg.embedded import EmbeddedServer
from dbkit.project.chain import AlembicProject
from dbkit.settings import load_settings
from dbkit.validate import declared

SIZES = (100, 250, 500, 1000)
RUNS = 3
GOAL_TABLES, GOAL_SECONDS = 500, 2.0
RESULTS = Path(__file__).parent / "results"

ALEMBIC_INI = """[alembic]
script_location = %(here)s
prepend_sys_path = %(here)s
path_separator = os
sqlalchemy.url =
"""

ENV_PY = '''
from alembic import context
from app.db.objects import include_object
from app.models import metadata

context.configure(
    connection=context.config.attributes["connection"], target_metadata=metadata,
    compare_type=True, compare_server_default=True, include_object=include_object,
)
with context.begin_transaction():
    context.run_migrations()
'''

MODELS_PY = '''
from sqlalchemy import (Column, DateTime, ForeignKey, Integer, MetaData, Numeric, String,
                        Table, func)

N = {tables}
metadata = MetaData(naming_convention={{
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
}})
for i in range(N):
    columns = [
        Column("id", Integer, primary_key=True),
        Column("name", String(50), nullable=False, index=True),
        Column("score", Numeric(10, 2)),
        Column("created_at", DateTime(timezone=True), nullable=False,
               server_default=func.now()),
    ]
    if i:
        columns.append(Column("parent_id", ForeignKey(f"t{{i - 1:04d}}.id", ondelete="CASCADE")))
    Table(f"t{{i:04d}}", metadata, *columns)
'''

OBJECTS_PY = '''
N, V, F = {tables}, {views}, {functions}
SCHEMAS = ("public",)
VIEWS = {{
    f"public.v{{j:04d}}": f"""
        SELECT a.id, a.name, b.score, count(*) OVER (PARTITION BY a.name) AS same_name
        FROM t{{j:04d}} a JOIN t{{j + 1:04d}} b ON b.parent_id = a.id
        WHERE a.score > {{j}}
    """
    for j in range(V)
}}
MATERIALIZED_VIEWS = {{}}
FUNCTIONS = {{
    f"public.touch_{{k}}": f"""
CREATE OR REPLACE FUNCTION public.touch_{{k}}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.created_at := now() - interval '{{k}} seconds';
    RETURN NEW;
END;
$$"""
    for k in range(F)
}}
TRIGGERS = {{
    f"public.t{{k:04d}}.trg_touch_{{k}}": (
        f"CREATE TRIGGER trg_touch_{{k}} BEFORE UPDATE ON public.t{{k:04d}} "
        f"FOR EACH ROW EXECUTE FUNCTION touch_{{k}}()"
    )
    for k in range(F)
}}
MIGRATION_ONLY_TABLES = ()
_HIDDEN = set(VIEWS)


def include_object(obj, name, type_, reflected, compare_to):
    return not (type_ == "table" and f"public.{{name}}" in _HIDDEN)
'''

REVISION_PY = '''
from alembic import op

from app.db import objects
from app.models import metadata

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    metadata.create_all(op.get_bind())
    for name, body in objects.VIEWS.items():
        op.execute(f"CREATE VIEW {{name}} AS {{body}}")
    for sql in [*objects.FUNCTIONS.values(), *objects.TRIGGERS.values()]:
        op.execute(sql)


def downgrade():
    pass
'''


def write_project(root: Path, tables: int) -> dict[str, int]:
    """A generated Alembic project with ``tables`` tables and what goes with them."""
    counts = {"tables": tables, "views": tables // 5, "functions": max(1, tables // 50)}
    fmt = {"tables": tables, "views": counts["views"], "functions": counts["functions"]}
    (root / "versions").mkdir(parents=True)
    (root / "app" / "db").mkdir(parents=True)
    (root / "alembic.ini").write_text(ALEMBIC_INI)
    (root / "env.py").write_text(ENV_PY)
    (root / "app" / "__init__.py").write_text("")
    (root / "app" / "db" / "__init__.py").write_text("")
    (root / "app" / "models.py").write_text(MODELS_PY.format(**fmt))
    (root / "app" / "db" / "objects.py").write_text(OBJECTS_PY.format(**fmt))
    (root / "versions" / "0001_all.py").write_text(REVISION_PY.format())
    return counts


def measure(server: EmbeddedServer, pgdata: Path, work: Path, tables: int) -> dict[str, object]:
    project = work / f"project_{tables}"
    counts = write_project(project, tables)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update({"DB_MODE": "embedded", "PGDATA_DIR": str(pgdata), "BACKEND_DIR": str(project),
                "NO_COLOR": "1"})
    with scratch.scratch_database(server, "benchvalidate") as db:
        env["POSTGRES_DB"] = db
        settings = load_settings(work, env, env_file=Path("/nonexistent"))
        alembic = AlembicProject(settings, server)
        started = time.perf_counter()
        alembic.upgrade(db, "head")
        build = time.perf_counter() - started

        runs = []
        for _ in range(RUNS):
            started = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "dbkit", "validate"], env=env,
                                  cwd=work, capture_output=True, text=True)
            runs.append(time.perf_counter() - started)
            if proc.returncode != 0:
                raise SystemExit(f"validate exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")

        # Where the time goes: the Alembic child (env.py, models, compare_metadata) versus
        # rendering and comparing the declared definitions in dbkit's process.
        started = time.perf_counter()
        facts = alembic.validation_facts(db, settings.app_objects)
        child = time.perf_counter() - started
        registry = declared.Registry.from_json(settings.app_objects, facts["registry"])
        conn = server.connect(db, autocommit=False)
        started = time.perf_counter()
        try:
            found = declared.compare(conn, registry, ["public"])
        finally:
            conn.close()
        definitions = time.perf_counter() - started
        assert not found, found
    return {**counts, "build_s": round(build, 2), "runs_s": [round(r, 3) for r in runs],
            "median_s": round(statistics.median(runs), 3), "child_s": round(child, 3),
            "definitions_s": round(definitions, 3)}


SAMPLE_GOAL = 1.5


def measure_sample(server: EmbeddedServer, pgdata: Path, work: Path) -> dict[str, object]:
    backend = Path(__file__).resolve().parent.parent / "backend"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update({"DB_MODE": "embedded", "PGDATA_DIR": str(pgdata), "BACKEND_DIR": str(backend),
                "NO_COLOR": "1", "APP_OBJECTS": ""})
    with scratch.scratch_database(server, "benchsample") as db:
        env["POSTGRES_DB"] = db
        AlembicProject(load_settings(work, env, env_file=Path("/nonexistent")), server
                       ).upgrade(db, "head")
        runs = {}
        for label, extra in (("models only", {"CHECKS": "models"}), ("all checks", {})):
            times = []
            for _ in range(RUNS + 1):
                started = time.perf_counter()
                proc = subprocess.run([sys.executable, "-m", "dbkit", "validate"],
                                      env={**env, **extra}, cwd=work, capture_output=True,
                                      text=True)
                times.append(time.perf_counter() - started)
                if proc.returncode != 0:
                    raise SystemExit(f"validate exited {proc.returncode}:\n{proc.stdout}"
                                     f"{proc.stderr}")
            runs[label] = {"first_s": round(times[0], 3),
                           "warm_median_s": round(statistics.median(times[1:]), 3),
                           "warm_runs_s": [round(t, 3) for t in times[1:]]}
            print(f"sample, {label}: first {times[0]:.2f}s, warm median "
                  f"{statistics.median(times[1:]):.2f}s "
                  f"({' '.join(f'{t:.2f}' for t in times[1:])})", flush=True)
    warm = runs["all checks"]["warm_median_s"]
    print(f"goal <= {SAMPLE_GOAL:g} s warm: {'met' if warm <= SAMPLE_GOAL else 'NOT met'} "
          f"({warm:.2f} s)")
    return runs


def main(argv: list[str]) -> None:
    if argv == ["sample"]:
        with tempfile.TemporaryDirectory(prefix="dbkit-bench-validate-") as tmp:
            work = Path(tmp)
            settings = load_settings(work, {"DB_MODE": "embedded",
                                            "PGDATA_DIR": str(work / "pgdata")},
                                     env_file=Path("/nonexistent"))
            server = EmbeddedServer(settings)
            server.ensure_running()
            try:
                result = measure_sample(server, work / "pgdata", work)
            finally:
                server.stop(Console(io.StringIO()))
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "validate_sample.json").write_text(json.dumps(result, indent=2) + "\n")
        return
    sizes = [int(a) for a in argv] or list(SIZES)
    with tempfile.TemporaryDirectory(prefix="dbkit-bench-validate-") as tmp:
        work = Path(tmp)
        pgdata = work / "pgdata"
        settings = load_settings(work, {"DB_MODE": "embedded", "PGDATA_DIR": str(pgdata)},
                                 env_file=Path("/nonexistent"))
        server = EmbeddedServer(settings)
        server.ensure_running()
        results = []
        try:
            print(f"{'tables':>6} {'views':>5} {'funcs':>5}  {'median':>7}  {'child':>6}  "
                  f"{'defs':>5}  runs", flush=True)
            for tables in sizes:
                r = measure(server, pgdata, work, tables)
                results.append(r)
                print(f"{r['tables']:>6} {r['views']:>5} {r['functions']:>5}  "
                      f"{r['median_s']:>6.2f}s  {r['child_s']:>5.2f}s  {r['definitions_s']:>4.2f}s"
                      f"  {' '.join(f'{x:.2f}' for x in r['runs_s'])}", flush=True)
        finally:
            server.stop(Console(io.StringIO()))
    goal = next((r for r in results if r["tables"] == GOAL_TABLES), None)
    if goal is not None:
        verdict = "met" if goal["median_s"] <= GOAL_SECONDS else "NOT met"
        print(f"goal <= {GOAL_SECONDS:g} s at {GOAL_TABLES} tables + {goal['views']} views: "
              f"{verdict} ({goal['median_s']:.2f} s)")
    if len(results) > 1:
        first, last = results[0], results[-1]
        print(f"growth: {last['tables'] / first['tables']:.0f}x the tables -> "
              f"{last['median_s'] / first['median_s']:.1f}x the time")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "validate.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
