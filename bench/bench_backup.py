"""Backup and restore speed on a generated database of at least 1 GB, against the raw tools.

Builds, on a private embedded server in a temporary directory (never the project's .pgdata):
a small Alembic project and a ``records`` table of wide rows (text, text[], JSONB, numeric,
timestamps) with a primary key, a btree and a GIN index, plus an ``events`` table in a second
schema, until ``pg_database_size`` passes the target. Then, in one run, each timed from
process start to exit:

* ``pg_dump -Fc`` (raw) vs ``dbkit backup-full``                 goal <= 1.1x
* ``pg_restore -j2`` (raw, into a new database) vs ``dbkit restore-full`` into a database that
  does not exist yet (no safety backup needed)                   goal <= 1.1x
* ``dbkit restore-full`` over the existing database, which it keeps (the default: the safety
  backup is the migrations and a manifest naming the kept database)  goal <= 1.3x
* the same with ``KEEP_PREVIOUS=0``, which dumps the old database before dropping it (what
  every restore over a database cost before; reported for information)
* the seed's way, ``psql < database_full.sql`` (plain dump), vs ``pg_restore -j2``
* ``FORMAT=directory``: ``pg_dump -Fd -j2`` (raw) vs ``dbkit backup-full FORMAT=directory``,
  ``dbkit backup-verify`` of it, ``pg_restore -j2`` of the folder (raw) vs ``dbkit
  restore-full`` of it into a new database, whose row counts and schema fingerprint must
  equal the source's (the >= 1 GB round trip)

Each pair runs ``--repeat`` times (default 2) in alternating order after a CHECKPOINT, and
the best of each is kept: on a shared 2-core machine the order alone moves a result by 10%.

Usage: ``python -m bench.bench_backup [--gb 1.0] [--repeat N] [--keep]`` or
``make bench BENCH=backup`` (``--gb 0.2`` for a quick look). Results go to
bench/results/backup.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import machine
from dbkit.console import Console
from dbkit.pg import catalog, scratch, tools
from dbkit.pg.embedded import EmbeddedServer
from dbkit.settings import load_settings

RESULTS = Path(__file__).parent / "results"
GOAL = 1.1
GOAL_OVER = 1.3
DB = "bench"
BATCH = 250_000

ALEMBIC_INI = """[alembic]
script_location = %(here)s/alembic
path_separator = os
sqlalchemy.url =
"""

ENV_PY = """
from alembic import context

context.configure(connection=context.config.attributes["connection"])
with context.begin_transaction():
    context.run_migrations()
"""

REVISION_PY = '''
"""records and events

Revision ID: 0001
"""
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.execute("CREATE TYPE event_kind AS ENUM ('created', 'updated', 'scored')")
    op.execute("""
        CREATE TABLE records (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            symbol text NOT NULL,
            tags text[] NOT NULL,
            payload jsonb NOT NULL,
            body text NOT NULL,
            score numeric(10, 3),
            created_at timestamptz NOT NULL DEFAULT now()
        )""")
    op.execute("CREATE SCHEMA audit")
    op.execute("""
        CREATE TABLE audit.events (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            record_id bigint NOT NULL REFERENCES records (id),
            kind event_kind NOT NULL,
            detail jsonb
        )""")


def downgrade():
    pass
'''

FILL_RECORDS = """
INSERT INTO records (symbol, tags, payload, body, score)
SELECT 'SYM' || i, ARRAY['t' || (i %% 97), 't' || (i %% 13), 'g' || (i %% 1009)],
       jsonb_build_object('i', i, 'source', 'panel-' || (i %% 50), 'hash', md5(i::text),
                          'list', jsonb_build_array(i %% 7, i %% 11, md5((i * 7)::text))),
       md5(i || 'a') || ' ' || md5(i || 'b') || ' ' || md5(i || 'c') || ' ' || md5(i || 'd')
       || ' ' || md5(i || 'e') || ' ' || md5(i || 'f') || ' ' || md5(i || 'g') || ' '
       || md5(i || 'h') || ' ' || md5(i || 'i') || ' ' || md5(i || 'j'),
       (i %% 100000) / 7.0
FROM generate_series(%s, %s) i
"""

FILL_EVENTS = """
INSERT INTO audit.events (record_id, kind, detail)
SELECT id, (ARRAY['created', 'updated', 'scored']::event_kind[])[1 + id % 3],
       jsonb_build_object('by', 'user' || (id % 17))
FROM records WHERE id % 4 = 0
"""

INDEXES = [
    "CREATE INDEX ix_records_symbol ON records (symbol)",
    "CREATE INDEX ix_records_payload ON records USING gin (payload jsonb_path_ops)",
    "CREATE INDEX ix_events_record ON audit.events (record_id)",
]


def write_project(root: Path) -> None:
    versions = root / "alembic" / "versions"
    versions.mkdir(parents=True)
    (root / "alembic.ini").write_text(ALEMBIC_INI)
    (root / "alembic" / "env.py").write_text(ENV_PY)
    (versions / "0001_records.py").write_text(REVISION_PY)


def build(server: EmbeddedServer, env: dict[str, str], work: Path, gb: float) -> int:
    """The generated database; its size in bytes."""
    server.create_database(DB)
    run_dbkit(["upgrade"], env, work)
    conn = server.connect(DB)
    try:
        with conn.cursor() as cur:
            start, size = 1, 0
            while size < gb * 1024**3 * 0.8:  # the indexes bring the rest
                cur.execute(FILL_RECORDS, (start, start + BATCH - 1))
                start += BATCH
                cur.execute("SELECT pg_database_size(current_database())")
                size = cur.fetchone()[0]
            cur.execute(FILL_EVENTS)
            for statement in INDEXES:
                cur.execute(statement)
            cur.execute("SELECT pg_database_size(current_database())")
            size = cur.fetchone()[0]
            while size < gb * 1024**3:
                cur.execute(FILL_RECORDS, (start, start + BATCH // 5 - 1))
                start += BATCH // 5
                cur.execute("SELECT pg_database_size(current_database())")
                size = cur.fetchone()[0]
            # Set hint bits now, so the first timed reader does not pay for writing them.
            cur.execute("VACUUM (FREEZE, ANALYZE)")
            cur.execute("CHECKPOINT")
            cur.execute("SELECT pg_database_size(current_database())")
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def run_dbkit(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "dbkit", *argv], env=env, cwd=cwd,
                          capture_output=True, text=True)
    took = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"dbkit {' '.join(argv)} exited {proc.returncode}:\n"
                         f"{proc.stdout}{proc.stderr}")
    return took


def timed(server: EmbeddedServer, tool: str, args: list[str], dbname: str, *,
          stdin: Path | None = None) -> float:
    inv = server.tool(tool, args, dbname)
    started = time.perf_counter()
    if stdin is not None:
        with stdin.open("rb") as fh:
            tools.run(inv, stdin=fh, stdout=subprocess.DEVNULL, what=tool)
    else:
        tools.run(inv, stdout=subprocess.DEVNULL, what=tool)
    return time.perf_counter() - started


def newest_backup(folder: Path) -> Path:
    return max((p for p in folder.iterdir() if not p.name.startswith(".")),
               key=lambda p: p.stat().st_mtime)


def settle(server: EmbeddedServer) -> None:
    """Write out what the previous step left dirty, so it is not billed to the next one."""
    conn = server.connect("postgres")
    try:
        with conn.cursor() as cur:
            cur.execute("CHECKPOINT")
    finally:
        conn.close()
    os.sync()


def measure(server: EmbeddedServer, env: dict[str, str], work: Path, repeat: int
            ) -> dict[str, Any]:
    backups = Path(env["BACKUP_DIR"])
    raw_dump = work / "raw.dump"
    plain = work / "database_full.sql"
    r: dict[str, list[float]] = {k: [] for k in (
        "pg_dump", "backup", "pg_restore", "restore_new", "restore_over", "restore_over_keep0",
        "psql", "pg_dump_dir", "backup_dir", "verify_dir", "pg_restore_dir", "restore_dir")}

    def dump(side: str) -> None:
        if side == "raw":
            raw_dump.unlink(missing_ok=True)
            r["pg_dump"].append(timed(server, "pg_dump", ["-Fc", "-f", str(raw_dump)], DB))
        else:
            r["backup"].append(run_dbkit(["backup-full"], env, work))

    def restore(side: str) -> None:
        if side == "raw":
            with scratch.scratch_database(server, "benchraw") as target:
                r["pg_restore"].append(timed(server, "pg_restore",
                                             ["-j", "2", "-d", target, str(raw_dump)], target))
        else:
            new_env = {**env, "POSTGRES_DB": "bench_new", "BACKUP": made.name,
                       "CONFIRM": "restore"}
            r["restore_new"].append(run_dbkit(["restore-full"], new_env, work))
            scratch.drop_database(server, "bench_new")

    # Alternate the order each round: whichever runs second pays for the first's writeback.
    for round_ in range(repeat):
        for side in ("raw", "dbkit") if round_ % 2 == 0 else ("dbkit", "raw"):
            settle(server)
            dump(side)
        print(f"  dump: raw {r['pg_dump'][-1]:.1f} s, dbkit {r['backup'][-1]:.1f} s", flush=True)
    made = newest_backup(backups)
    for round_ in range(repeat):
        for side in ("raw", "dbkit") if round_ % 2 == 0 else ("dbkit", "raw"):
            settle(server)
            restore(side)
        print(f"  restore: raw {r['pg_restore'][-1]:.1f} s, dbkit {r['restore_new'][-1]:.1f} s",
              flush=True)

    # Over the existing database: kept (the default), and dropped after a safety dump.
    over_env = {**env, "BACKUP": made.name, "CONFIRM": "restore"}
    for round_ in range(repeat):
        for keep in ("1", "0") if round_ % 2 == 0 else ("0", "1"):
            settle(server)
            key = "restore_over" if keep == "1" else "restore_over_keep0"
            r[key].append(run_dbkit(["restore-full"], {**over_env, "KEEP_PREVIOUS": keep},
                                    work))
            for kept in databases(server, f"{DB}_before_restore_"):
                scratch.drop_database(server, kept)
        print(f"  restore over the existing database: kept {r['restore_over'][-1]:.1f} s, "
              f"KEEP_PREVIOUS=0 {r['restore_over_keep0'][-1]:.1f} s", flush=True)

    timed(server, "pg_dump", ["-f", str(plain)], DB)
    with scratch.scratch_database(server, "benchpsql") as target:
        settle(server)
        r["psql"].append(timed(server, "psql", ["-X", "-q", "-d", target], target, stdin=plain))
    print(f"  psql < database_full.sql: {r['psql'][-1]:.1f} s", flush=True)

    round_trip = measure_directory(server, env, work, repeat, r)

    best = {k: min(v) for k, v in r.items()}
    return {
        "runs_s": {k: [round(x, 2) for x in v] for k, v in r.items()},
        "best_s": {k: round(v, 2) for k, v in best.items()},
        "backup_ratio": round(best["backup"] / best["pg_dump"], 3),
        "restore_ratio": round(best["restore_new"] / best["pg_restore"], 3),
        "restore_over_ratio": round(best["restore_over"] / best["pg_restore"], 3),
        "restore_over_keep0_ratio": round(best["restore_over_keep0"] / best["pg_restore"], 3),
        "psql_ratio": round(best["psql"] / best["pg_restore"], 3),
        "backup_dir_ratio": round(best["backup_dir"] / best["pg_dump_dir"], 3),
        "restore_dir_ratio": round(best["restore_dir"] / best["pg_restore_dir"], 3),
        "directory_round_trip": round_trip,
        "dump_bytes": {"custom": raw_dump.stat().st_size, "plain": plain.stat().st_size,
                       "directory": round_trip["bytes"],
                       "dbkit_backup": sum(f["size"] for f in json.loads(
                           (made / "manifest.json").read_text())["files"].values())},
    }


def measure_directory(server: EmbeddedServer, env: dict[str, str], work: Path, repeat: int,
                      r: dict[str, list[float]]) -> dict[str, Any]:
    """FORMAT=directory against pg_dump -Fd -j2 / pg_restore -j2, and the round trip: the
    restored database's row counts and schema fingerprint equal the source's."""
    backups = Path(env["BACKUP_DIR"])
    raw_dir = work / "raw.dir"
    made: Path | None = None
    for round_ in range(repeat):
        for side in ("raw", "dbkit") if round_ % 2 == 0 else ("dbkit", "raw"):
            settle(server)
            if side == "raw":
                shutil.rmtree(raw_dir, ignore_errors=True)
                r["pg_dump_dir"].append(timed(server, "pg_dump", [
                    "-Fd", "-j", "2", "-f", str(raw_dir)], DB))
            else:
                if made is not None:
                    shutil.rmtree(made)
                r["backup_dir"].append(run_dbkit(["backup-full", "--format", "directory"],
                                                 env, work))
                made = newest_backup(backups)
        print(f"  directory dump: raw {r['pg_dump_dir'][-1]:.1f} s, "
              f"dbkit {r['backup_dir'][-1]:.1f} s", flush=True)
    assert made is not None
    settle(server)
    r["verify_dir"].append(run_dbkit(["backup-verify", "--backup", made.name], env, work))
    print(f"  directory backup-verify: {r['verify_dir'][-1]:.1f} s", flush=True)
    target = f"{DB}_dir"
    for round_ in range(repeat):
        for side in ("raw", "dbkit") if round_ % 2 == 0 else ("dbkit", "raw"):
            settle(server)
            if side == "raw":
                with scratch.scratch_database(server, "benchrawdir") as raw_target:
                    r["pg_restore_dir"].append(timed(server, "pg_restore", [
                        "-j", "2", "-d", raw_target, str(raw_dir)], raw_target))
            else:
                scratch.drop_database(server, target)
                r["restore_dir"].append(run_dbkit(["restore-full"], {
                    **env, "POSTGRES_DB": target, "BACKUP": made.name, "CONFIRM": "restore"},
                    work))
        print(f"  directory restore: raw {r['pg_restore_dir'][-1]:.1f} s, "
              f"dbkit {r['restore_dir'][-1]:.1f} s", flush=True)
    source, restored = facts(server, DB), facts(server, target)
    scratch.drop_database(server, target)
    files = json.loads((made / "manifest.json").read_text())["files"]
    in_dir = {k: v for k, v in files.items() if k.startswith("database_full.dir/")}
    result = {"identical": source == restored, "tables": len(source["rows"]),
              "rows": sum(source["rows"].values()), "files": len(in_dir),
              "bytes": sum(f["size"] for f in in_dir.values())}
    print(f"  round trip: {result['rows']} rows in {result['tables']} tables, "
          f"{result['files']} files, identical: {result['identical']}", flush=True)
    if not result["identical"]:
        raise SystemExit("the directory-format round trip changed the database")
    return result


def facts(server: EmbeddedServer, dbname: str) -> dict[str, Any]:
    conn = server.connect(dbname)
    try:
        return {"rows": catalog.table_row_counts(conn), "schema": catalog.fingerprint(conn)}
    finally:
        conn.close()


def databases(server: EmbeddedServer, prefix: str) -> list[str]:
    conn = server.connect("postgres")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database WHERE starts_with(datname, %s)",
                        (prefix,))
            return [row[0] for row in cur.fetchall()]
    finally:
        conn.close()


def report(result: dict[str, Any]) -> None:
    best = result["best_s"]

    def verdict(ratio: float) -> str:
        return "met" if ratio <= GOAL else "NOT met"

    rows = [
        ("pg_dump -Fc (raw)", best["pg_dump"], "", ""),
        ("dbkit backup-full", best["backup"], f"{result['backup_ratio']:.2f}x",
         verdict(result["backup_ratio"])),
        ("pg_restore -j2 (raw, new database)", best["pg_restore"], "", ""),
        ("dbkit restore-full (new database)", best["restore_new"],
         f"{result['restore_ratio']:.2f}x", verdict(result["restore_ratio"])),
        ("dbkit restore-full (over existing, kept)", best["restore_over"],
         f"{result['restore_over_ratio']:.2f}x",
         "met" if result["restore_over_ratio"] <= GOAL_OVER else f"NOT met (<= {GOAL_OVER}x)"),
        ("dbkit restore-full (over existing, KEEP_PREVIOUS=0)", best["restore_over_keep0"],
         f"{result['restore_over_keep0_ratio']:.2f}x", "info"),
        ("psql < database_full.sql (the seed's way)", best["psql"],
         f"{result['psql_ratio']:.2f}x", "info"),
        ("pg_dump -Fd -j2 (raw)", best["pg_dump_dir"], "", ""),
        ("dbkit backup-full FORMAT=directory", best["backup_dir"],
         f"{result['backup_dir_ratio']:.2f}x", verdict(result["backup_dir_ratio"])),
        ("dbkit backup-verify (directory)", best["verify_dir"], "", "info"),
        ("pg_restore -j2 of the folder (raw, new database)", best["pg_restore_dir"], "", ""),
        ("dbkit restore-full (directory, new database)", best["restore_dir"],
         f"{result['restore_dir_ratio']:.2f}x", verdict(result["restore_dir_ratio"])),
    ]
    print(f"\n{'operation':<52} {'seconds':>8} {'vs raw':>7}  goal <= {GOAL}x")
    for name, seconds, ratio, met in rows:
        print(f"{name:<52} {seconds:>8.1f} {ratio:>7}  {met}")
    trip = result["directory_round_trip"]
    print(f"directory round trip: {trip['rows']} rows in {trip['tables']} tables, "
          f"{trip['files']} files, identical: {trip['identical']}")
    sizes = result["dump_bytes"]
    print(f"database {result['database_bytes'] / 1024**3:.2f} GB; custom dump "
          f"{sizes['custom'] / 1024**2:.0f} MB, plain dump {sizes['plain'] / 1024**2:.0f} MB, "
          f"directory dump {sizes['directory'] / 1024**2:.0f} MB; "
          f"machine: {result['machine']['cores']} cores, {result['machine']['cpu']}; load "
          f"average {result['load_average_start'][0]} at the start, "
          f"{result['load_average_end'][0]} at the end")


def run(*, gb: float = 1.0, repeat: int = 2, keep: bool = False) -> dict[str, Any]:
    """Build the database, time each pair; the results (also printed)."""
    work = Path(tempfile.mkdtemp(prefix="dbkit-bench-backup-"))
    pgdata = work / "pgdata"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update({"DB_MODE": "embedded", "PGDATA_DIR": str(pgdata), "POSTGRES_DB": DB,
                "BACKEND_DIR": str(work / "project"), "BACKUP_DIR": str(work / "backups"),
                "NO_COLOR": "1"})
    env.pop("DATABASE_URL", None)
    server = EmbeddedServer(load_settings(work, env, env_file=Path("/nonexistent")))
    try:
        server.ensure_running()
        write_project(work / "project")
        started = time.perf_counter()
        print(f"Building a {gb:g} GB database in {work} ...", flush=True)
        size = build(server, env, work, gb)
        print(f"  {size / 1024**3:.2f} GB in {time.perf_counter() - started:.0f} s", flush=True)
        load_start = [round(x, 2) for x in os.getloadavg()]
        result = measure(server, env, work, repeat)
        result.update(database_bytes=size, machine=machine(), repeat=repeat,
                      server_version=server.version_num, load_average_start=load_start,
                      load_average_end=[round(x, 2) for x in os.getloadavg()])
    finally:
        server.stop(Console(io.StringIO()))
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    report(result)
    return result


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench_backup", description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0, help="database size to build")
    parser.add_argument("--repeat", type=int, default=2,
                        help="timed runs of each, in alternating order (best kept)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    result = run(gb=args.gb, repeat=args.repeat, keep=args.keep)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "backup.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
