"""The proof: two databases are identical in schema, seeded rows and sequence positions.

Three independent comparisons, any one of which fails the proof:

1. ``pg_dump --schema-only`` text, normalised only for lines that carry no meaning
   (pg_dump's ``--`` comments, blank lines, the random ``\\restrict`` key of 17.6+);
2. the catalog snapshot (``catalog.diff_snapshots``), which names what differs;
3. every table's and materialized view's rows (count + md5 of the rows in sorted order,
   with the differing rows named) and every sequence's position.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psycopg2.extensions
from psycopg2 import sql

from dbkit.console import Console
from dbkit.errors import ChainBuildFailed, DbkitError, ProofFailed
from dbkit.pg import catalog, tools
from dbkit.pg.server import Server
from dbkit.project.chain import MODELS_HOLD_NO_TABLES, AlembicProject, ModelsHoldNoTables

_SHOWN = 40  # lines of a difference kept in the report


@dataclass
class ProofResult:
    """What the proof measured, for the report."""

    new_install_seconds: float = 0.0
    checks: list[str] = field(default_factory=list)
    snapshot: catalog.Snapshot | None = None  # what the squashed revision builds
    model_diff: list[dict[str, Any]] | None = None  # the models vs that (None: no models)
    model_diff_note: str | None = None  # set: said instead of model_diff (not computed, ...)


MODELS_NOT_FOUND = MODELS_HOLD_NO_TABLES


def _drift(future: Future, snapshot: catalog.Snapshot, version_key: str
           ) -> tuple[list[dict[str, Any]] | None, str | None]:
    """The models compared with B, or why not: drift never undoes a proof.

    env.py's target_metadata may hold no tables (models imported only by the old revision
    files, or never: warehouse's env.py imports only the module that defines its MetaData);
    then the comparison would call every table of B "removed", so the report says that once.
    """
    try:
        drift = future.result()
    except ModelsHoldNoTables as err:
        return None, err.message
    except Exception as err:  # noqa: BLE001 - any error of the project's models: one line
        reason = err.message if isinstance(err, DbkitError) else f"{type(err).__name__}: {err}"
        return None, f"not computed: {' '.join(reason.split())}"
    return drift, None


# pg_dump writes a column's options as "ALTER TABLE ONLY t ALTER COLUMN c SET (a=1, b=2);"
_COLUMN_OPTIONS = re.compile(r"^(ALTER TABLE ONLY .* ALTER COLUMN .* SET \()(.*)(\);)$")


def normalise_dump(text: str) -> list[str]:
    """pg_dump's schema text without what carries no meaning (comments, blanks, restrict key,
    the column options the server sets by itself: ``catalog.SERVER_ATTOPTIONS``)."""
    kept = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("--"):
            continue
        if line.startswith(("\\restrict ", "\\unrestrict ")):
            continue
        match = _COLUMN_OPTIONS.match(line)
        if match:
            options = catalog.user_attoptions(match.group(2).split(", "))
            if options is None:
                continue
            line = f"{match.group(1)}{', '.join(options)}{match.group(3)}"
        kept.append(line)
    return kept


def schema_dump(server: Server, dbname: str) -> list[str]:
    inv = server.tool("pg_dump", ["--schema-only", "--no-password"], dbname)
    proc = tools.run(inv, what=f"pg_dump --schema-only of {dbname}")
    return normalise_dump(proc.stdout.decode())


def data_state(conn: psycopg2.extensions.connection, version_key: str) -> dict[str, Any]:
    """Row count + md5 of the sorted rows of every table and populated materialized view
    (Alembic's version table aside), and every sequence's position."""
    state: dict[str, Any] = {"rows": {}, "sequences": {}}
    with conn.cursor() as cur:
        cur.execute("SET TimeZone = 'UTC'")
        for schema, name in catalog.relations(conn, catalog.TABLES + catalog.MATVIEWS,
                                              populated=True):
            if f"{schema}.{name}" == version_key:
                continue
            rel = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))
            cur.execute(sql.SQL(
                "SELECT count(*), md5(coalesce(string_agg(r, E'\\n' ORDER BY r), '')) "
                "FROM (SELECT t::text AS r FROM {} t) q").format(rel))
            count, digest = cur.fetchone()
            state["rows"][f"{schema}.{name}"] = [int(count), digest]
    state["sequences"] = {key: list(pos)
                          for key, pos in catalog.sequence_positions(conn).items()}
    return state


def _rows_of(conn: psycopg2.extensions.connection, key: str) -> list[str]:
    schema, _, name = key.partition(".")
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT t::text FROM {}.{} t ORDER BY 1").format(
            sql.Identifier(schema), sql.Identifier(name)))
        return [row[0] for row in cur.fetchall()]


def diff_data(a: dict[str, Any], b: dict[str, Any], conn_a: psycopg2.extensions.connection,
              conn_b: psycopg2.extensions.connection, *,
              names: tuple[str, str] = ("A", "B")) -> list[str]:
    """What differs in rows and sequence positions, naming the rows (a few per table)."""
    lines: list[str] = []
    for key in sorted(set(a["rows"]) | set(b["rows"])):
        ra, rb = a["rows"].get(key), b["rows"].get(key)
        if ra == rb:
            continue
        if ra is None or rb is None:
            lines.append(f"rows of {key}: only in {names[0] if rb is None else names[1]}")
            continue
        lines.append(f"rows of {key}: {ra[0]} in {names[0]} vs {rb[0]} in {names[1]}"
                     + (" (same count, different values)" if ra[0] == rb[0] else ""))
        rows_a, rows_b = _rows_of(conn_a, key), _rows_of(conn_b, key)
        only_a = [r for r in rows_a if r not in set(rows_b)]
        only_b = [r for r in rows_b if r not in set(rows_a)]
        lines += [f"  only in {names[0]}: {r}" for r in only_a[:5]]
        lines += [f"  only in {names[1]}: {r}" for r in only_b[:5]]
    for key in sorted(set(a["sequences"]) | set(b["sequences"])):
        sa_, sb = a["sequences"].get(key), b["sequences"].get(key)
        if sa_ != sb:
            lines.append(f"sequence {key} position: {_pos(sa_)} in {names[0]} vs {_pos(sb)} "
                         f"in {names[1]}")
    return lines


def _pos(value: list[Any] | None) -> str:
    if value is None:
        return "absent"
    return f"last_value={value[0]} is_called={'true' if value[1] else 'false'}"


@dataclass
class DbState:
    """One database as the proof sees it: schema dump, catalog snapshot, data."""

    name: str
    dump: list[str]
    snapshot: catalog.Snapshot
    data: dict[str, Any]


def read_state(server: Server, dbname: str, version_key: str) -> DbState:
    # pg_dump runs while the catalog and the rows are read: each waits mostly for the server.
    with ThreadPoolExecutor(max_workers=1) as pool:
        dump = pool.submit(schema_dump, server, dbname)
        conn = server.connect(dbname)
        try:
            snapshot, data = catalog.snapshot(conn), data_state(conn, version_key)
        finally:
            conn.close()
        return DbState(dbname, dump.result(), snapshot, data)


def differences(server: Server, a: DbState, b: DbState, *,
                names: tuple[str, str] = ("A", "B")) -> list[str]:
    """Every difference between two database states (empty: identical)."""
    problems: list[str] = []
    if a.dump != b.dump:
        delta = list(difflib.unified_diff(a.dump, b.dump, names[0], names[1], lineterm="", n=1))
        problems.append(f"pg_dump --schema-only differs ({len(delta)} diff lines):")
        problems += [f"  {line}" for line in delta[:_SHOWN]]
    problems += catalog.diff_snapshots(a.snapshot, b.snapshot, names=names)
    if a.data != b.data:
        conn_a, conn_b = server.connect(a.name), server.connect(b.name)
        try:
            problems += diff_data(a.data, b.data, conn_a, conn_b, names=names)
        finally:
            conn_a.close()
            conn_b.close()
    return problems


def leftovers(after_downgrade: catalog.Snapshot, baseline: catalog.Snapshot,
              version_key: str) -> list[str]:
    """What a downgraded database holds beyond an empty one and Alembic's version table."""
    snap = dict(after_downgrade)
    snap["tables"] = {k: v for k, v in snap["tables"].items() if k != version_key}
    return [f"left after downgrade: {line}"
            for line in catalog.diff_snapshots(baseline, snap, names=("empty", "downgraded"))]


def prove(
    server: Server,
    new: AlembicProject,
    *,
    a: str,
    b: str,
    baseline: catalog.Snapshot,
    version_key: str,
    out: Console,
    target: str = "head",
    revision: str | None = None,
) -> ProofResult:
    """B ← the new revision, identical to A; B down to base leaves nothing but Alembic's
    version table; B up again, identical to A again; then the models compared with B.

    Each "identical" is the full comparison (pg_dump, catalog, rows, sequence positions),
    made before B changes again, so a difference names the rows of the state that had it.
    ``new`` best runs in one warm child (AlembicChild) for its four operations; B must be empty
    on entry. Raises ProofFailed naming every difference. A partial squash builds B to
    ``target`` (its revision) and compares the models later, at head (squash/partial.py).
    """
    result = ProofResult()
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        with out.step("Building database B from the new revision"):
            state_a = pool.submit(read_state, server, a, version_key)  # meanwhile
            result.new_install_seconds = _checked(new.build, b, target, what="the new "
                                                  "revision does not build")
            _ran(new, revision, "B's build")
        with out.step("Comparing A with B"):
            problems = differences(server, state_a.result(), read_state(server, b, version_key))
            _fail_if(problems, "B (new revision) differs from A (old chain)")
            result.checks.append(
                "A and B identical: pg_dump schema, catalog, rows, sequence positions")
        with out.step("Downgrading B to base and upgrading it again"):
            _checked(new.downgrade, b, "base", what="downgrade() fails")
            _ran(new, revision, "B's downgrade")
            _fail_if(leftovers(catalog.snapshot_of(server, b), baseline, version_key),
                     "downgrade() leaves objects behind")
            result.checks.append("downgrade() leaves nothing but alembic_version")
            _checked(new.upgrade, b, target, what="upgrade() after downgrade() fails")
            _ran(new, revision, "B's upgrade after downgrade")
        with out.step("Comparing A with B again; meanwhile the models with B"):
            drift = pool.submit(new.model_diff, b) if target == "head" else None
            state_b = read_state(server, b, version_key)
            problems = differences(server, state_a.result(), state_b)
            _fail_if(problems, "after downgrade and upgrade again, B differs from A")
            result.checks.append("upgrade() after downgrade() identical to A again")
            result.snapshot = state_b.snapshot
            if drift is not None:  # reads only, as the comparison does
                result.model_diff, result.model_diff_note = _drift(drift, state_b.snapshot,
                                                                   version_key)
    except BaseException:
        # Ctrl-C or a failure: do not wait for a read under way (the caller ends the child
        # and drops the databases).
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return result


def _ran(new: AlembicProject, revision: str | None, what: str) -> None:
    """B ran the squashed revision and nothing else: the child's own report of the steps
    Alembic took (ran.py), not an assumption about which folder it read."""
    if revision is None:
        return
    ran = new.last_ran.revisions
    if ran != [revision]:
        shown = ", ".join(ran[:5]) + (" …" if len(ran) > 5 else "") if ran else "nothing"
        raise ProofFailed(f"proof failed: {what} ran {shown}, not the squashed revision "
                          f"{revision} alone")


def _checked(fn: Callable[..., Any], *args: str, what: str) -> Any:
    """An operation of the new revision; its failure fails the proof, saying ``what``."""
    try:
        return fn(*args)
    except ChainBuildFailed as err:
        failed = ProofFailed(f"proof failed: {what}: {err.message}", diff=[err.message],
                             trace=err.trace)
        failed.detail = None  # the line says it all; the failure report holds the traceback
        raise failed from None


def _fail_if(problems: list[str], what: str) -> None:
    if problems:
        raise ProofFailed(f"proof failed: {what} ({len(problems)} differences)", diff=problems)
