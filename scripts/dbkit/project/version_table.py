"""Alembic's version table, read with SQL (no env.py, no child process)."""

from __future__ import annotations

from psycopg2 import sql

from dbkit.pg.server import Server


def read_versions(server: Server, dbname: str,
                  known: set[str]) -> tuple[str | None, list[str]]:
    """Alembic's version table in ``dbname`` (``schema.table``) and the revisions it holds.

    Read with SQL, not through env.py (a process start per database): the table that has
    Alembic's ``version_num`` column and only revisions of this chain; ``alembic_version``
    first. (None, []) when there is none: the database is at base.
    """
    conn = server.connect(dbname)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT c.table_schema, c.table_name FROM information_schema.columns c "
                "JOIN information_schema.tables t ON t.table_schema = c.table_schema "
                "AND t.table_name = c.table_name WHERE c.column_name = 'version_num' "
                "AND t.table_type = 'BASE TABLE' "
                "ORDER BY c.table_name <> 'alembic_version', 1, 2")
            candidates = cur.fetchall()
            for schema, table in candidates:
                cur.execute(sql.SQL("SELECT version_num FROM {}.{}").format(
                    sql.Identifier(schema), sql.Identifier(table)))
                versions = sorted(str(row[0]) for row in cur.fetchall())
                if versions and set(versions) <= known or table == "alembic_version":
                    return f"{schema}.{table}", versions
    finally:
        conn.close()
    return None, []
