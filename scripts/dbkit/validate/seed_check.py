"""The rows the chain inserted (seed rows), looked for in the live database.

The live database holds data, so rows are not compared; but a row the migrations inserted
(a setting, a lookup value) that is gone or different in the live database was deleted or
edited by hand. That is a warning, not drift: settings tables are edited on purpose.

Rows are matched by primary key (the live table is read through its index, so a seeded
table with millions of rows costs a lookup per seed row); a table without one by whole row.
Only the columns both sides have are compared (a column added by hand is a schema
difference, said elsewhere), and not those filled by a default that differs from run to run
(``now()``, ``gen_random_uuid()``): the build ran today, the live database long ago.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

import psycopg2.extensions
from psycopg2 import sql

from dbkit.pg.catalog import NOT_EXT_CLASS, USER_SCHEMA

DELETED, CHANGED = "deleted", "changed"
_SESSION = ("SET TimeZone = 'UTC'", "SET DateStyle = 'ISO, YMD'",
            "SET IntervalStyle = 'postgres'", "SET extra_float_digits = 1",
            "SET bytea_output = 'hex'")
# A default that is not a constant: a function call or a SQL value function. Serial keys
# (nextval) are kept: the same chain numbers its seed rows alike.
_VARYING_DEFAULT = re.compile(
    r"\(|\b(CURRENT_(TIMESTAMP|DATE|TIME|USER|ROLE|SCHEMA)|LOCAL(TIMESTAMP|TIME)|SESSION_USER"
    r"|USER)\b")


def _varies(column: dict[str, Any]) -> bool:
    default = column.get("default")
    if default is None or default.startswith("nextval("):
        return False
    return bool(_VARYING_DEFAULT.search(re.sub(r"'(?:[^']|'')*'", "", default)))


@dataclass(frozen=True)
class SeedWarning:
    table: str  # schema.table
    key: str  # (id)=(3), or the whole row for a table without a primary key
    problem: str  # deleted / changed
    database: str | None  # the row in the live database (changed)
    migrations: str  # the row the migrations inserted

    def line(self) -> str:
        head = f"seed row {self.table} {self.key}"
        if self.problem == DELETED:
            return f"{head}: deleted by hand (migrations insert {self.migrations})"
        return f"{head}: database has {self.database}, migrations insert {self.migrations}"

    def as_json(self) -> dict[str, str | None]:
        return asdict(self)


def _seeded_tables(conn: psycopg2.extensions.connection) -> list[tuple[str, str]]:
    """Tables of the built database that hold rows: every one of them the chain filled."""
    with conn.cursor() as cur:
        cur.execute("SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n "
                    f"ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') AND {USER_SCHEMA} "
                    f"AND {NOT_EXT_CLASS} ORDER BY 1, 2")
        tables = cur.fetchall()
        if not tables:
            return []
        cur.execute(sql.SQL(" UNION ALL ").join(
            sql.SQL("SELECT {}, EXISTS (SELECT FROM {})").format(
                sql.Literal(i), sql.Identifier(schema, name))
            for i, (schema, name) in enumerate(tables)))
        return [tables[i] for i, filled in cur.fetchall() if filled]


def _primary_key(conn: psycopg2.extensions.connection, table: str) -> list[tuple[str, str]]:
    """The primary key's columns and their types, in key order."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_index i "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) "
            "WHERE i.indrelid = %s::regclass AND i.indisprimary "
            "ORDER BY array_position(i.indkey::int2[], a.attnum)", (table,))
        return [(str(n), str(t)) for n, t in cur.fetchall()]


def compare(live: psycopg2.extensions.connection, built: psycopg2.extensions.connection,
            live_snapshot: dict[str, Any], built_snapshot: dict[str, Any],
            skip: str) -> list[SeedWarning]:
    """Every seed row of ``built`` that ``live`` no longer has as it was inserted."""
    for conn in (live, built):
        with conn.cursor() as cur:
            for statement in _SESSION:
                cur.execute(statement)
    warnings: list[SeedWarning] = []
    live_tables, built_tables = live_snapshot["tables"], built_snapshot["tables"]
    for schema, name in _seeded_tables(built):
        table = f"{schema}.{name}"
        if table == skip or table not in live_tables:
            continue  # Alembic's version table; a missing table is a schema difference
        live_cols = {c["name"] for c in live_tables[table]["columns"]}
        columns = [c["name"] for c in built_tables[table]["columns"]
                   if c["name"] in live_cols and not _varies(c)]
        warnings += _compare_table(live, built, table, sql.Identifier(schema, name), columns)
    return warnings


def _compare_table(live: psycopg2.extensions.connection, built: psycopg2.extensions.connection,
                   table: str, rel: sql.Identifier, columns: list[str]) -> list[SeedWarning]:
    # Values go in as literals, never as parameters: psycopg2 would read a % in a quoted
    # name (a column "c %(x)s") as a placeholder of its own.
    key = [(n, t) for n, t in _primary_key(built, rel.as_string(built)) if n in columns]
    row = sql.SQL("ROW({})::text").format(
        sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in columns))
    if not key:  # no primary key: a row is its own key
        with built.cursor() as cur:
            cur.execute(sql.SQL("SELECT DISTINCT {} FROM {} t").format(row, rel))
            seeded = [r[0] for r in cur.fetchall()]
        with live.cursor() as cur:
            cur.execute(sql.SQL("SELECT DISTINCT {} FROM {} t WHERE {} = ANY ({}::text[])")
                        .format(row, rel, row, sql.Literal(seeded)))
            present = {r[0] for r in cur.fetchall()}
        return [SeedWarning(table, r, DELETED, None, r) for r in seeded if r not in present]
    key_text = sql.SQL("ARRAY[{}]::text[]").format(
        sql.SQL(", ").join(sql.SQL("t.{}::text").format(sql.Identifier(n)) for n, _ in key))
    with built.cursor() as cur:
        cur.execute(sql.SQL("SELECT {}, {} FROM {} t").format(key_text, row, rel))
        seeded = {tuple(k): r for k, r in cur.fetchall()}
    keys = list(seeded)
    arrays = [[k[i] for k in keys] for i in range(len(key))]
    match = sql.SQL(" AND ").join(
        sql.SQL("t.{} = u.{}::{}").format(sql.Identifier(n), sql.Identifier(f"k{i}"),
                                           sql.SQL(t))
        for i, (n, t) in enumerate(key))
    unnest = sql.SQL("unnest({}) u({})").format(
        sql.SQL(", ").join(sql.SQL("{}::text[]").format(sql.Literal(a)) for a in arrays),
        sql.SQL(", ").join(sql.Identifier(f"k{i}") for i in range(len(key))))
    with live.cursor() as cur:
        cur.execute(sql.SQL("SELECT {}, {} FROM {} t JOIN {} ON {}").format(
            key_text, row, rel, unnest, match))
        present = {tuple(k): r for k, r in cur.fetchall()}
    names = ", ".join(n for n, _ in key)
    found = []
    for k, r in seeded.items():
        label = f"({names})=({', '.join(k)})"
        if k not in present:
            found.append(SeedWarning(table, label, DELETED, None, r))
        elif present[k] != r:
            found.append(SeedWarning(table, label, CHANGED, present[k], r))
    return sorted(found, key=lambda w: w.key)
