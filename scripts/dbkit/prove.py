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
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg2.extensions
from psycopg2 import sql

from dbkit import catalog, tools
from dbkit.chain import AlembicProject
from dbkit.console import Console
from dbkit.errors import ProofFailed
from dbkit.server import Server

_SHOWN = 40  # lines of a difference kept in the report


@dataclass
class ProofResult:
    """What the proof measured, for the report."""

    new_install_seconds: float = 0.0
    reinstall_seconds: float = 0.0
    checks: list[str] = field(default_factory=list)


def normalise_dump(text: str) -> list[str]:
    """pg_dump's schema text without what carries no meaning (comments, blanks, restrict key)."""
    kept = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("--"):
            continue
        if line.startswith(("\\restrict ", "\\unrestrict ")):
            continue
        kept.append(line)
    return kept


def schema_dump(server: Server, dbname: str) -> list[str]:
    inv = server.tool("pg_dump", ["--schema-only", "--no-password"], dbname)
    proc = tools.run(inv, what=f"pg_dump --schema-only of {dbname}")
    return normalise_dump(proc.stdout.decode())


def _relations(conn: psycopg2.extensions.connection, skip: str) -> list[tuple[str, str]]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'm') "
            f"AND {catalog._USER_SCHEMA} AND {catalog._NOT_EXT_CLASS} "
            "AND (c.relkind <> 'm' OR c.relispopulated) ORDER BY 1, 2"
        )
        return [(s, n) for s, n in cur.fetchall() if f"{s}.{n}" != skip]


def data_state(conn: psycopg2.extensions.connection, version_key: str) -> dict[str, Any]:
    """Row count + md5 of the sorted rows of every relation, and every sequence's position."""
    state: dict[str, Any] = {"rows": {}, "sequences": {}}
    with conn.cursor() as cur:
        cur.execute("SET TimeZone = 'UTC'")
        for schema, name in _relations(conn, version_key):
            rel = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))
            cur.execute(sql.SQL(
                "SELECT count(*), md5(coalesce(string_agg(r, E'\\n' ORDER BY r), '')) "
                "FROM (SELECT t::text AS r FROM {} t) q").format(rel))
            count, digest = cur.fetchone()
            state["rows"][f"{schema}.{name}"] = [int(count), digest]
        cur.execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n "
            f"ON n.oid = c.relnamespace WHERE c.relkind = 'S' AND {catalog._USER_SCHEMA} "
            f"AND {catalog._NOT_EXT_CLASS} ORDER BY 1, 2")
        for schema, name in cur.fetchall():
            cur.execute(sql.SQL("SELECT last_value, is_called FROM {}.{}").format(
                sql.Identifier(schema), sql.Identifier(name)))
            last, called = cur.fetchone()
            state["sequences"][f"{schema}.{name}"] = [int(last), bool(called)]
    return state


def _rows_of(conn: psycopg2.extensions.connection, key: str) -> list[str]:
    schema, _, name = key.partition(".")
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT t::text FROM {}.{} t ORDER BY 1").format(
            sql.Identifier(schema), sql.Identifier(name)))
        return [row[0] for row in cur.fetchall()]


def diff_data(a: dict[str, Any], b: dict[str, Any], conn_a: psycopg2.extensions.connection,
              conn_b: psycopg2.extensions.connection) -> list[str]:
    """What differs in rows and sequence positions, naming the rows (a few per table)."""
    lines: list[str] = []
    for key in sorted(set(a["rows"]) | set(b["rows"])):
        ra, rb = a["rows"].get(key), b["rows"].get(key)
        if ra == rb:
            continue
        if ra is None or rb is None:
            lines.append(f"rows of {key}: only in {'A' if rb is None else 'B'}")
            continue
        lines.append(f"rows of {key}: {ra[0]} in A vs {rb[0]} in B"
                     + (" (same count, different values)" if ra[0] == rb[0] else ""))
        rows_a, rows_b = _rows_of(conn_a, key), _rows_of(conn_b, key)
        only_a = [r for r in rows_a if r not in set(rows_b)]
        only_b = [r for r in rows_b if r not in set(rows_a)]
        lines += [f"  only in A: {r}" for r in only_a[:5]]
        lines += [f"  only in B: {r}" for r in only_b[:5]]
    for key in sorted(set(a["sequences"]) | set(b["sequences"])):
        sa_, sb = a["sequences"].get(key), b["sequences"].get(key)
        if sa_ != sb:
            lines.append(f"sequence {key} position: {_pos(sa_)} in A vs {_pos(sb)} in B")
    return lines


def _pos(value: list[Any] | None) -> str:
    if value is None:
        return "absent"
    return f"last_value={value[0]} is_called={'true' if value[1] else 'false'}"


def compare(server: Server, a: str, b: str, *, version_key: str) -> list[str]:
    """Every difference between databases ``a`` and ``b`` (empty: identical)."""
    problems: list[str] = []
    dump_a, dump_b = schema_dump(server, a), schema_dump(server, b)
    if dump_a != dump_b:
        delta = list(difflib.unified_diff(dump_a, dump_b, "A (old chain)", "B (new revision)",
                                          lineterm="", n=1))
        problems.append(f"pg_dump --schema-only differs ({len(delta)} diff lines):")
        problems += [f"  {line}" for line in delta[:_SHOWN]]
    conn_a, conn_b = server.connect(a), server.connect(b)
    try:
        snap_a, snap_b = catalog.snapshot(conn_a), catalog.snapshot(conn_b)
        problems += catalog.diff_snapshots(snap_a, snap_b)
        problems += diff_data(data_state(conn_a, version_key), data_state(conn_b, version_key),
                              conn_a, conn_b)
    finally:
        conn_a.close()
        conn_b.close()
    return problems


def leftovers(server: Server, dbname: str, baseline: catalog.Snapshot,
              version_key: str) -> list[str]:
    """What a downgraded database holds beyond an empty one and Alembic's version table."""
    conn = server.connect(dbname)
    try:
        snap = catalog.snapshot(conn)
    finally:
        conn.close()
    snap["tables"].pop(version_key, None)
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
) -> ProofResult:
    """Build B from the new revision and prove it identical to A, down to base and up again.

    Raises ProofFailed naming every difference. B must be empty on entry.
    """
    result = ProofResult()
    with out.step("Building database B from the new revision"):
        started = time.perf_counter()
        new.upgrade(b, "head")
        result.new_install_seconds = time.perf_counter() - started
    with out.step("Comparing A and B: schema dump, catalog, rows, sequences"):
        problems = compare(server, a, b, version_key=version_key)
    _fail_if(problems, "B (new revision) differs from A (old chain)")
    result.checks.append("A and B identical: pg_dump schema, catalog, rows, sequence positions")

    with out.step("Downgrading B to base"):
        new.downgrade(b, "base")
        problems = leftovers(server, b, baseline, version_key)
    _fail_if(problems, "downgrade() leaves objects behind")
    result.checks.append("downgrade() leaves nothing but alembic_version")

    with out.step("Upgrading B again and comparing with A"):
        started = time.perf_counter()
        new.upgrade(b, "head")
        result.reinstall_seconds = time.perf_counter() - started
        problems = compare(server, a, b, version_key=version_key)
    _fail_if(problems, "B differs from A after downgrade and upgrade")
    result.checks.append("upgrade() after downgrade() identical to A again")
    return result


def _fail_if(problems: list[str], what: str) -> None:
    if problems:
        raise ProofFailed(f"proof failed: {what} ({len(problems)} differences)", diff=problems)
