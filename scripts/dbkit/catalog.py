"""Reading what a database holds, straight from the PostgreSQL catalogs."""

from __future__ import annotations

import psycopg2.extensions
import psycopg2.sql

# Schemas that belong to PostgreSQL itself, never to a project.
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")
_USER_SCHEMA = (
    "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'"
)
# Objects created by an extension belong to the extension, not to the project.
_NOT_EXTENSION = (
    "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = {cls}::regclass "
    "AND d.objid = {oid} AND d.deptype = 'e')"
)


def object_counts(conn: psycopg2.extensions.connection) -> dict[str, int]:
    """How many of each kind of object the project's schemas hold, and how many rows."""
    rel = _NOT_EXTENSION.format(cls="'pg_class'", oid="c.oid")
    queries = {
        "schemas": f"SELECT count(*) FROM pg_namespace n WHERE {_USER_SCHEMA} "
                   "AND n.nspname <> 'public'",
        "tables": f"SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                  f"WHERE c.relkind IN ('r', 'p') AND {_USER_SCHEMA} AND {rel}",
        "views": f"SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                 f"WHERE c.relkind = 'v' AND {_USER_SCHEMA} AND {rel}",
        "materialized views": "SELECT count(*) FROM pg_class c JOIN pg_namespace n "
                              f"ON n.oid = c.relnamespace WHERE c.relkind = 'm' AND {_USER_SCHEMA}",
        "indexes": f"SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                   f"WHERE c.relkind = 'i' AND {_USER_SCHEMA} AND {rel}",
        "sequences": "SELECT count(*) FROM pg_class c JOIN pg_namespace n "
                     f"ON n.oid = c.relnamespace WHERE c.relkind = 'S' AND {_USER_SCHEMA} AND {rel}",
        "functions": "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                     f"WHERE {_USER_SCHEMA} AND "
                     + _NOT_EXTENSION.format(cls="'pg_proc'", oid="p.oid"),
        "triggers": "SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                    f"JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT t.tgisinternal "
                    f"AND {_USER_SCHEMA}",
        "types": "SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
                 f"WHERE t.typtype IN ('e', 'd', 'r') AND {_USER_SCHEMA} AND "
                 + _NOT_EXTENSION.format(cls="'pg_type'", oid="t.oid"),
        "extensions": "SELECT count(*) FROM pg_extension WHERE extname <> 'plpgsql'",
    }
    counts: dict[str, int] = {}
    with conn.cursor() as cur:
        for kind, query in queries.items():
            cur.execute(query)
            counts[kind] = int(cur.fetchone()[0])
        counts["rows"] = sum(table_row_counts(conn).values())
    return counts


def table_row_counts(conn: psycopg2.extensions.connection) -> dict[str, int]:
    """Exact row count of every ordinary table in the project's schemas, ``schema.table``."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n "
            f"ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') AND {_USER_SCHEMA} AND "
            + _NOT_EXTENSION.format(cls="'pg_class'", oid="c.oid")
            + " ORDER BY 1, 2"
        )
        tables = cur.fetchall()
        counts = {}
        for schema, name in tables:
            cur.execute(
                psycopg2.sql.SQL("SELECT count(*) FROM {}.{}").format(
                    psycopg2.sql.Identifier(schema), psycopg2.sql.Identifier(name)
                )
            )
            counts[f"{schema}.{name}"] = int(cur.fetchone()[0])
    return counts
