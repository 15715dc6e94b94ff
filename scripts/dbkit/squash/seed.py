"""The rows a chain leaves in its tables, as Python values that round-trip exactly.

Values are read in PostgreSQL's text form, with the session settings that make that form
exact and stable (``SESSION``), and turned into Python only where that is lossless: ints,
booleans, text, ``Decimal``, floats that print back the same, JSON whose numbers survive
Python floats, one-dimensional int/text arrays. Everything else stays text, which the server
reads back into the same value when the revision inserts it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg2.extensions
from psycopg2 import sql

# Settings under which every value's text form is exact and does not depend on the session.
SESSION = (
    "SET TimeZone = 'UTC'", "SET DateStyle = 'ISO, YMD'", "SET IntervalStyle = 'postgres'",
    "SET extra_float_digits = 1", "SET bytea_output = 'hex'",
)


class _JsonNull:
    """A jsonb value that is JSON ``null`` (as opposed to SQL NULL)."""

    def __repr__(self) -> str:
        return "JSON_NULL"


JSON_NULL = _JsonNull()


@dataclass
class SeedColumn:
    name: str
    qname: str  # quoted for SQL
    type: str  # format_type
    kind: str  # how the renderer writes values: bool int numeric float text json array raw
    identity_always: bool = False


@dataclass
class SeedRows:
    """The rows one table held right after the chain ran, values already in Python form."""

    table: str  # quoted, qualified
    schema: str
    name: str
    columns: list[SeedColumn]
    rows: list[list[Any]]
    # Over the limits (``read_rows``): the rows as gzip'd CSV, loaded by COPY, and not in rows
    data: bytes | None = None
    count: int = 0

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data or b"").hexdigest()


def regclass_name(schema: str, name: str) -> str:
    """A ``schema.name`` string that ``::regclass`` reads back exactly (both quoted)."""
    return '"' + schema.replace('"', '""') + '"."' + name.replace('"', '""') + '"'


_INT_TYPES = {"smallint", "integer", "bigint"}
_TEXT_TYPES = ("text", "character varying", "character", "name", "citext")


def _value_kind(type_name: str, type_kind: str, elem_kind: str | None) -> str:
    """How a column's values are written in the revision (see ``render``)."""
    base = re.sub(r"\(.*\)", "", type_name)
    if type_name == "boolean":
        return "bool"
    if type_name in _INT_TYPES:
        return "int"
    if base == "numeric":
        return "numeric"
    if type_name in ("double precision", "real"):
        return "float"
    if type_name == "jsonb":
        return "jsonb"
    if base.startswith(_TEXT_TYPES) and not base.endswith("[]") or type_kind == "e":
        return "text"
    if base.endswith("[]") and elem_kind in ("int", "text"):
        return f"{elem_kind} array"
    return "raw"


def read_rows(conn: psycopg2.extensions.connection, names: tuple[str, str],
              table: dict[str, Any], ident: Callable[[str], str],
              limits: tuple[int, int] | None = None) -> SeedRows | None:
    """The rows of one table as Python values that round-trip exactly (None: empty table).

    Values are read in PostgreSQL's text form (session settings fixed in ``SESSION``) and
    turned into Python only where that is lossless; the rest stays text, which the server
    reads back into the same value. A table with more rows, or more bytes of row text, than
    ``limits`` (rows, bytes) is read instead as CSV by COPY (PostgreSQL's own text form,
    NULL unquoted and '' quoted), gzip'd into ``data``, for a data file loaded by COPY.
    """
    schema, name = names
    regname = regclass_name(schema, name)
    relation = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT count(*), coalesce(sum(octet_length(src::text)), 0) "
                            "FROM {} AS src").format(relation))
        count, size = cur.fetchone()
        if count == 0:
            return None
        cur.execute("""
            SELECT a.attname, t.typtype, et.typtype, format_type(t.typelem, NULL)
            FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
            LEFT JOIN pg_type et ON et.oid = t.typelem AND t.typlen = -1
            WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
              AND a.attgenerated = ''
            ORDER BY a.attnum""", (regname,))
        meta = {row[0]: row[1:] for row in cur.fetchall()}
        cur.execute("""
            SELECT a.attname FROM pg_index i
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
            WHERE i.indrelid = %s::regclass AND i.indisprimary
            ORDER BY array_position(i.indkey::int2[], a.attnum)""", (regname,))
        pkey = [row[0] for row in cur.fetchall()]
    columns: list[SeedColumn] = []
    for col in table["columns"]:
        if col["name"] not in meta:
            continue  # generated columns compute themselves
        typtype, elem_typtype, elem_type = meta[col["name"]]
        elem_kind = None
        if elem_typtype and elem_typtype != "e":
            elem_kind = "int" if elem_type in _INT_TYPES else (
                "text" if elem_type in ("text", "character varying") else None)
        columns.append(SeedColumn(
            name=col["name"], qname=ident(col["name"]), type=col["type"],
            kind=_value_kind(col["type"], typtype, elem_kind),
            identity_always=col["identity"] == "always",
        ))
    select = sql.SQL(", ").join(
        sql.SQL("src.{}::text").format(sql.Identifier(c.name)) for c in columns)
    # A stable order: by primary key when there is one, else by every column's text.
    if pkey:
        order = sql.SQL(", ").join(sql.SQL("src.{}").format(sql.Identifier(c)) for c in pkey)
    else:
        order = sql.SQL(", ").join(sql.SQL(str(i + 1)) for i in range(len(columns)))
    if limits is not None and (count > limits[0] or size > limits[1]):
        return SeedRows(table=f"{ident(schema)}.{ident(name)}", schema=schema, name=name,
                        columns=columns, rows=[], count=count,
                        data=_csv(conn, select, relation, order))
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT {} FROM {} AS src ORDER BY {}").format(select, relation, order))
        texts = cur.fetchall()
    rows = [[_value(c.kind, v) for c, v in zip(columns, row, strict=True)] for row in texts]
    for i, col in enumerate(columns):
        if col.kind == "jsonb":
            if all(_json_exact(r[i]) for r in rows if r[i] is not None):
                for r in rows:
                    if r[i] is not None:
                        r[i] = json.loads(r[i])
                        r[i] = JSON_NULL if r[i] is None else r[i]
            else:
                col.kind = "raw"  # a number would not survive Python floats: keep the text
        elif col.kind.endswith("array") and any(isinstance(r[i], str) for r in rows):
            col.kind = "raw"  # one value needs PostgreSQL's own spelling: all of them do
            for r, text in zip(rows, texts, strict=True):
                r[i] = text[i]
    return SeedRows(table=f"{ident(schema)}.{ident(name)}", schema=schema, name=name,
                    columns=columns, rows=rows, count=len(rows))


def _csv(conn: psycopg2.extensions.connection, select: sql.Composable,
         relation: sql.Composable, order: sql.Composable) -> bytes:
    """The rows as gzip'd UTF-8 CSV, in the same stable order (the same bytes on every run:
    the gzip header carries no time)."""
    buffer = io.BytesIO()
    query = sql.SQL("COPY (SELECT {} FROM {} AS src ORDER BY {}) TO STDOUT "
                    "WITH (FORMAT csv, ENCODING 'UTF8')").format(select, relation, order)
    with conn.cursor() as cur:
        cur.copy_expert(query.as_string(conn), buffer)
    return gzip.compress(buffer.getvalue(), compresslevel=6, mtime=0)


def _value(kind: str, text: str | None) -> Any:
    if text is None:
        return None
    if kind == "bool":
        return text == "true"
    if kind == "int":
        return int(text)
    if kind == "numeric":
        return Decimal(text) if text not in ("NaN", "Infinity", "-Infinity") else text
    if kind == "float":
        value = float(text)
        return value if value == value and abs(value) != float("inf") else text
    if kind.endswith("array"):
        return _array(text, kind)
    return text


def _json_exact(text: str) -> bool:
    """Whether the JSON survives a trip through Python: every float prints back the same."""
    ok = True

    def check(token: str) -> float:
        nonlocal ok
        value = float(token)
        if repr(value) != token:
            ok = False
        return value

    json.loads(text, parse_float=check)
    return ok


def _array(text: str, kind: str) -> Any:
    """A one-dimensional int/text array as a Python list; anything harder stays as text."""
    if not (text.startswith("{") and text.endswith("}")) or "{" in text[1:-1]:
        return text
    inner = text[1:-1]
    if inner == "":
        return []
    if kind == "int array":
        items = inner.split(",")
        return [None if i == "NULL" else int(i) for i in items]
    if '"' in inner or "\\" in inner:
        return text  # quoted elements: keep PostgreSQL's own spelling
    return [None if i == "NULL" else i for i in inner.split(",")]
