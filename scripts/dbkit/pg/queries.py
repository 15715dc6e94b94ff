"""Named catalog queries: ``sql/<name>.sql`` beside the module that reads them, loaded once.

Like schemainspect's ``pg/sql/*.sql``: a query longer than a few lines is a file of its own,
named for what it reads. Files may use the shared fragments below as ``{user_schema}`` and
``{not_ext_class}``; other ``{name}`` fields are left for the caller's ``str.format`` and
literal braces are doubled.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import psycopg2.extensions

# A project's schemas: not PostgreSQL's own (pg_catalog, pg_toast, temporary schemas, ...).
USER_SCHEMA = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_'"
# Objects created by an extension belong to the extension, not to the project.
NOT_EXTENSION = (
    "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = {cls}::regclass "
    "AND d.objid = {oid} AND d.deptype = 'e')"
)
NOT_EXT_CLASS = NOT_EXTENSION.format(cls="'pg_class'", oid="c.oid")

_FRAGMENTS = {"user_schema": USER_SCHEMA, "not_ext_class": NOT_EXT_CLASS}


class _Keep(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


@functools.cache
def load(module_file: str, name: str) -> str:
    """The query ``name`` from the ``sql`` folder beside ``module_file`` (a ``__file__``)."""
    text = (Path(module_file).parent / "sql" / f"{name}.sql").read_text()
    return text.format_map(_Keep(_FRAGMENTS))


def fetch(conn: psycopg2.extensions.connection, query: Any, args: Any = None) -> list[tuple]:
    """Every row of one query (``args``: its parameters, as ``cursor.execute`` takes them)."""
    with conn.cursor() as cur:
        cur.execute(query, args)
        return cur.fetchall()


# SQL dbkit prints for the user to run (advice, SQL=1): written out here, for there is no
# connection to ask (psycopg2.sql needs one), and pasted into psql it must name exactly
# the object meant, whatever its name holds.
def quote_ident(name: str) -> str:
    """``name`` as a SQL identifier: in double quotes, any inside doubled."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """``value`` as a SQL string literal (standard_conforming_strings: backslashes plain)."""
    return "'" + value.replace("'", "''") + "'"
