"""Identifiers and literals of the SQL the squashed revision runs."""

from __future__ import annotations

import re

import psycopg2.extensions


class Quoter:
    """PostgreSQL's quote_ident, with the server's own keyword list."""

    def __init__(self, conn: psycopg2.extensions.connection) -> None:
        with conn.cursor() as cur:
            cur.execute("SELECT word FROM pg_get_keywords() WHERE catcode <> 'U'")
            self.keywords = {row[0] for row in cur.fetchall()}

    def ident(self, name: str) -> str:
        if re.fullmatch(r"[a-z_][a-z0-9_$]*", name) and name not in self.keywords:
            return name
        return '"' + name.replace('"', '""') + '"'

    def qual(self, schema: str, name: str) -> str:
        return f"{self.ident(schema)}.{self.ident(name)}"


# ``varchar_col IN ('a', 'b')`` is stored as an array of varchar coerced to text[] as a whole;
# PostgreSQL prints it as ``(ARRAY['a'::character varying, ...])::text[]``, which parses back
# into per-element casts and prints differently (pg_dump has the same round-trip flaw). Spelling
# the array's own type out first parses back into the tree that prints the original text.
_VARCHAR_ARRAY = re.compile(
    r"\(ARRAY\[((?:'(?:[^']|'')*'::character varying(?:, )?)+)\]\)::text\[\]")


def reparsable(expression: str) -> str:
    """Catalog-printed SQL rewritten where printing and parsing do not round-trip."""
    return _VARCHAR_ARRAY.sub(r"((ARRAY[\1])::character varying[])::text[]", expression)


def literal(value: str) -> str:
    """A SQL string literal (standard_conforming_strings: backslashes are plain)."""
    return "'" + value.replace("'", "''") + "'"


INT_BOUNDS = {
    "smallint": (-32768, 32767),
    "integer": (-2147483648, 2147483647),
    "bigint": (-9223372036854775808, 9223372036854775807),
}


def names(qualified: str | None) -> list[str]:
    """``"My Schema".t."c.d"`` → ``["My Schema", "t", "c.d"]``: each name unquoted once."""
    if not qualified:
        return []
    parts = re.findall(r'"((?:[^"]|"")*)"|([^."]+)', qualified)
    return [a.replace('""', '"') if a else b for a, b in parts]


def plain(qualified: str | None) -> str:
    """``"My Schema".t.c`` → ``My Schema.t.c`` (keys are unquoted)."""
    return ".".join(names(qualified))


def owner_table(owned_by: str) -> str:
    """The key of the table of ``schema.table.column`` (a dot in the column's name is its
    own)."""
    return ".".join(names(owned_by)[:-1])


def owner_column(owned_by: str) -> str:
    """The column of ``schema.table.column``, unquoted."""
    return names(owned_by)[-1]
