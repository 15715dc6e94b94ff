"""Reading what a database holds, straight from the PostgreSQL catalogs.

``snapshot`` describes every object in the project's schemas as plain, JSON-able data that
does not depend on the database's name, object OIDs, owners or dropped-column holes; two
databases with the same schema give equal snapshots and the same ``fingerprint``.
``diff_snapshots`` names what differs. Names in definitions are schema-qualified: the
snapshot is read with an empty ``search_path`` (as pg_dump does), so it is exact whatever
the session's path.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psycopg2.extensions
import psycopg2.sql

if TYPE_CHECKING:
    from dbkit.server import Server

# Schemas that belong to PostgreSQL itself, never to a project.
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")
# A project's schemas: not PostgreSQL's own (pg_catalog, pg_toast, temporary schemas, ...).
USER_SCHEMA = (
    "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'"
)
# Objects created by an extension belong to the extension, not to the project.
NOT_EXTENSION = (
    "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = {cls}::regclass "
    "AND d.objid = {oid} AND d.deptype = 'e')"
)
NOT_EXT_CLASS = NOT_EXTENSION.format(cls="'pg_class'", oid="c.oid")

Snapshot = dict[str, Any]

# Column options (pg_attribute.attoptions) that the server sets by itself, not the user:
# Debian's PostgreSQL 15.20 stores pg_attver=<n> on every column (a different n per table,
# and ALTER ... SET cannot change it). They are neither captured, nor compared, nor
# fingerprinted; the proof's pg_dump text drops them too (prove.normalise_dump).
SERVER_ATTOPTIONS = ("pg_attver",)


def user_attoptions(options: list[str] | None) -> list[str] | None:
    """A column's options without the server's own, sorted; None when none is left."""
    kept = sorted(o for o in options or () if o.split("=", 1)[0] not in SERVER_ATTOPTIONS)
    return kept or None


def object_counts(conn: psycopg2.extensions.connection) -> dict[str, int]:
    """How many of each kind of object the project's schemas hold, and how many rows."""
    rel = NOT_EXT_CLASS
    queries = {
        "schemas": f"SELECT count(*) FROM pg_namespace n WHERE {USER_SCHEMA} "
                   "AND n.nspname <> 'public'",
        "tables": f"SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                  f"WHERE c.relkind IN ('r', 'p') AND {USER_SCHEMA} AND {rel}",
        "views": f"SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                 f"WHERE c.relkind = 'v' AND {USER_SCHEMA} AND {rel}",
        "materialized views": "SELECT count(*) FROM pg_class c JOIN pg_namespace n "
                              f"ON n.oid = c.relnamespace WHERE c.relkind = 'm' AND {USER_SCHEMA}",
        "indexes": f"SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                   f"WHERE c.relkind = 'i' AND {USER_SCHEMA} AND {rel}",
        "sequences": "SELECT count(*) FROM pg_class c JOIN pg_namespace n "
                     f"ON n.oid = c.relnamespace WHERE c.relkind = 'S' AND {USER_SCHEMA} "
                     f"AND {rel}",
        "functions": "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                     f"WHERE {USER_SCHEMA} AND "
                     + NOT_EXTENSION.format(cls="'pg_proc'", oid="p.oid"),
        "triggers": "SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                    f"JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT t.tgisinternal "
                    f"AND {USER_SCHEMA}",
        "types": "SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
                 f"WHERE t.typtype IN ('e', 'd', 'r') AND {USER_SCHEMA} AND "
                 + NOT_EXTENSION.format(cls="'pg_type'", oid="t.oid"),
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
            f"ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') AND {USER_SCHEMA} AND "
            + NOT_EXT_CLASS
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


# -- the snapshot ---------------------------------------------------------------------------

@contextmanager
def qualified_names(conn: psycopg2.extensions.connection) -> Iterator[None]:
    """Run with an empty search_path so every name the catalog prints is schema-qualified."""
    with conn.cursor() as cur:
        cur.execute("SELECT current_setting('search_path')")
        previous = cur.fetchone()[0]
        cur.execute("SELECT set_config('search_path', '', false)")
    try:
        yield
    finally:
        if not conn.closed:
            if conn.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_INERROR:
                conn.rollback()
            with conn.cursor() as cur:
                cur.execute("SELECT set_config('search_path', %s, false)", (previous,))


def _rows(conn: psycopg2.extensions.connection, query: str) -> list[dict[str, Any]]:
    with conn.cursor() as cur:
        cur.execute(query)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _qual(schema: str, name: str) -> str:
    return f"{schema}.{name}"


def _acl(value: Any) -> list[str] | None:
    """An ACL as a sorted list of aclitem strings; None means the default privileges."""
    if value is None:
        return None
    items = value if isinstance(value, list) else str(value).strip("{}").split(",")
    return sorted(str(i) for i in items if i)


# Shared SQL fragments. ``c`` is a pg_class row, ``n`` its namespace.
_REL = (
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    f"WHERE {USER_SCHEMA} AND {NOT_EXT_CLASS}"
)
_DESC = (
    "(SELECT d.description FROM pg_description d WHERE d.classoid = '{cls}'::regclass "
    "AND d.objoid = {oid} AND d.objsubid = {sub})"
)


def _comment(cls: str, oid: str, sub: str = "0") -> str:
    return _DESC.format(cls=cls, oid=oid, sub=sub)


def snapshot(conn: psycopg2.extensions.connection) -> Snapshot:
    """A canonical, JSON-able description of every object in the project's schemas.

    Owner-free and name-free (the database's own name appears nowhere). Objects that belong
    to an extension are left out; the extension itself (name, version, schema) is in.
    """
    with qualified_names(conn):
        snap: Snapshot = {
            "schemas": _schemas(conn),
            "extensions": _extensions(conn),
            "types": _types(conn),
            "sequences": _sequences(conn),
            "tables": _tables(conn),
            "views": _views(conn, "v"),
            "materialized_views": _views(conn, "m"),
            "functions": _functions(conn),
            "unsupported": unsupported_objects(conn),
        }
    # A JSON round trip turns tuples into lists: the snapshot compares equal to a stored one.
    return json.loads(canonical_json(snap))


def snapshot_of(server: Server, dbname: str) -> Snapshot:
    """``snapshot`` of one database on a server, on a connection of its own."""
    conn = server.connect(dbname)
    try:
        return snapshot(conn)
    finally:
        conn.close()


def canonical_json(snap: Snapshot) -> str:
    return json.dumps(snap, sort_keys=True, separators=(",", ":"), default=str)


def fingerprint(conn: psycopg2.extensions.connection) -> str:
    """sha256 of the canonical snapshot: equal for any two databases with the same schema."""
    return hashlib.sha256(canonical_json(snapshot(conn)).encode()).hexdigest()


def _schemas(conn: psycopg2.extensions.connection) -> dict[str, Any]:
    rows = _rows(conn, f"""
        SELECT n.nspname AS name, {_comment('pg_namespace', 'n.oid')} AS comment,
               n.nspacl::text[] AS acl
        FROM pg_namespace n
        WHERE {USER_SCHEMA} AND {NOT_EXTENSION.format(cls="'pg_namespace'", oid="n.oid")}
        ORDER BY 1""")
    return {r["name"]: {"comment": r["comment"], "acl": _acl(r["acl"])} for r in rows}


def _extensions(conn: psycopg2.extensions.connection) -> dict[str, Any]:
    rows = _rows(conn, """
        SELECT e.extname AS name, e.extversion AS version, n.nspname AS schema
        FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace ORDER BY 1""")
    return {r["name"]: {"version": r["version"], "schema": r["schema"]} for r in rows}


def _types(conn: psycopg2.extensions.connection) -> dict[str, Any]:
    """Enums (labels in order), domains (base, default, constraints), composites, ranges."""
    types: dict[str, Any] = {}
    not_ext = NOT_EXTENSION.format(cls="'pg_type'", oid="t.oid")
    rows = _rows(conn, f"""
        SELECT n.nspname AS schema, t.typname AS name, t.typtype AS kind, t.oid AS oid,
               {_comment('pg_type', 't.oid')} AS comment, t.typacl::text[] AS acl,
               CASE WHEN t.typtype = 'e' THEN ARRAY(
                   SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid
                   ORDER BY e.enumsortorder) END AS labels,
               CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END
                   AS base,
               t.typdefault AS default, t.typnotnull AS not_null,
               CASE WHEN t.typcollation <> 0 AND t.typcollation <> bt.typcollation THEN
                   (SELECT quote_ident(cn.nspname) || '.' || quote_ident(co.collname)
                    FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace
                    WHERE co.oid = t.typcollation) END AS collation
        FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        LEFT JOIN pg_type bt ON bt.oid = t.typbasetype
        LEFT JOIN pg_class rc ON rc.oid = t.typrelid
        WHERE {USER_SCHEMA} AND {not_ext}
          AND (t.typtype IN ('e', 'd', 'r', 'm') OR (t.typtype = 'c' AND rc.relkind = 'c'))
        ORDER BY 1, 2""")
    for r in rows:
        entry: dict[str, Any] = {"kind": {"e": "enum", "d": "domain", "c": "composite",
                                          "r": "range", "m": "multirange"}[r["kind"]],
                                 "comment": r["comment"], "acl": _acl(r["acl"])}
        if r["kind"] == "e":
            entry["labels"] = list(r["labels"])
        elif r["kind"] == "d":
            entry.update(base=r["base"], default=r["default"], not_null=r["not_null"],
                         collation=r["collation"], constraints=_domain_constraints(conn, r["oid"]))
        elif r["kind"] == "c":
            entry["attributes"] = _composite_attributes(conn, r["oid"])
        elif r["kind"] == "r":
            entry["range"] = _range(conn, r["oid"])
        types[_qual(r["schema"], r["name"])] = entry
    return types


def _domain_constraints(conn: psycopg2.extensions.connection, oid: int) -> dict[str, Any]:
    rows = _rows(conn, f"""
        SELECT co.conname AS name, pg_get_constraintdef(co.oid) AS definition,
               co.convalidated AS validated, {_comment('pg_constraint', 'co.oid')} AS comment
        FROM pg_constraint co WHERE co.contypid = {int(oid)} ORDER BY 1""")
    return {r.pop("name"): r for r in rows}


def _composite_attributes(conn: psycopg2.extensions.connection, oid: int) -> list[Any]:
    rows = _rows(conn, f"""
        SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
               {_comment('pg_class', 'a.attrelid', 'a.attnum')} AS comment
        FROM pg_type t JOIN pg_attribute a ON a.attrelid = t.typrelid
        WHERE t.oid = {int(oid)} AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum""")
    return rows


def _range(conn: psycopg2.extensions.connection, oid: int) -> dict[str, Any]:
    rows = _rows(conn, f"""
        SELECT format_type(r.rngsubtype, NULL) AS subtype,
               (SELECT quote_ident(on_.nspname) || '.' || quote_ident(oc.opcname)
                FROM pg_opclass oc JOIN pg_namespace on_ ON on_.oid = oc.opcnamespace
                WHERE oc.oid = r.rngsubopc) AS subtype_opclass,
               NULLIF(r.rngcanonical, 0)::regproc::text AS canonical,
               NULLIF(r.rngsubdiff, 0)::regproc::text AS subtype_diff,
               format_type(r.rngmultitypid, NULL) AS multirange
        FROM pg_range r WHERE r.rngtypid = {int(oid)}""")
    return rows[0] if rows else {}


def _sequences(conn: psycopg2.extensions.connection) -> dict[str, Any]:
    """Every sequence, with what owns it: a column (serial/OWNED BY) or an identity column."""
    rows = _rows(conn, f"""
        SELECT n.nspname AS schema, c.relname AS name,
               format_type(s.seqtypid, NULL) AS type, s.seqstart AS start,
               s.seqincrement AS increment, s.seqmin AS min, s.seqmax AS max,
               s.seqcache AS cache, s.seqcycle AS cycle, c.relpersistence = 'u' AS unlogged,
               (SELECT quote_ident(tn.nspname) || '.' || quote_ident(tc.relname) || '.'
                       || quote_ident(a.attname)
                FROM pg_depend d JOIN pg_class tc ON tc.oid = d.refobjid
                JOIN pg_namespace tn ON tn.oid = tc.relnamespace
                JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                  AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i'))
                   AS owned_by,
               EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                       AND d.objid = c.oid AND d.deptype = 'i') AS identity,
               {_comment('pg_class', 'c.oid')} AS comment, c.relacl::text[] AS acl
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_sequence s ON s.seqrelid = c.oid
        WHERE c.relkind = 'S' AND {USER_SCHEMA} AND {NOT_EXT_CLASS}
        ORDER BY 1, 2""")
    out = {}
    for r in rows:
        key = _qual(r.pop("schema"), r.pop("name"))
        r["acl"] = _acl(r["acl"])
        out[key] = r
    return out


def _tables(conn: psycopg2.extensions.connection) -> dict[str, Any]:
    rows = _rows(conn, f"""
        SELECT c.oid, n.nspname AS schema, c.relname AS name, c.relkind AS kind,
               c.relpersistence = 'u' AS unlogged, c.reloptions AS options,
               c.relrowsecurity AS row_security, c.relforcerowsecurity AS force_row_security,
               c.relreplident AS replica_identity, c.relispartition AS is_partition,
               CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END AS partition_key,
               CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END
                   AS partition_bound,
               ARRAY(SELECT i.inhparent::regclass::text FROM pg_inherits i
                     WHERE i.inhrelid = c.oid ORDER BY i.inhseqno) AS parents,
               {_comment('pg_class', 'c.oid')} AS comment, c.relacl::text[] AS acl
        {_REL} AND c.relkind IN ('r', 'p')
        ORDER BY 2, 3""")
    tables = {}
    for r in rows:
        oid = r.pop("oid")
        key = _qual(r.pop("schema"), r.pop("name"))
        r["kind"] = "partitioned table" if r["kind"] == "p" else "table"
        r["parents"] = list(r["parents"])
        r["acl"] = _acl(r["acl"])
        r["options"] = sorted(r["options"]) if r["options"] else None
        r["columns"] = _columns(conn, oid)
        r["constraints"] = _constraints(conn, oid)
        r["indexes"] = _indexes(conn, oid)
        r["triggers"] = _triggers(conn, oid)
        r["policies"] = _policies(conn, oid)
        tables[key] = r
    return tables


def _columns(conn: psycopg2.extensions.connection, relid: int) -> list[dict[str, Any]]:
    """Columns in order of appearance: attnum gaps left by dropped columns do not matter."""
    rows = _rows(conn, f"""
        SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
               CASE WHEN a.attgenerated = '' THEN pg_get_expr(ad.adbin, ad.adrelid) END
                   AS default,
               a.attnotnull AS not_null,
               CASE a.attidentity WHEN 'a' THEN 'always' WHEN 'd' THEN 'by default' END
                   AS identity,
               CASE WHEN a.attgenerated <> '' THEN pg_get_expr(ad.adbin, ad.adrelid) END
                   AS generated,
               CASE a.attgenerated WHEN 's' THEN 'stored' WHEN 'v' THEN 'virtual' END
                   AS generated_kind,
               CASE WHEN a.attcollation <> t.typcollation THEN
                   (SELECT quote_ident(cn.nspname) || '.' || quote_ident(co.collname)
                    FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace
                    WHERE co.oid = a.attcollation) END AS collation,
               NULLIF(a.attstorage, t.typstorage) AS storage,
               NULLIF(NULLIF(a.attstattarget::int, -1), NULL) AS statistics,
               NULLIF(a.attcompression::text, '') AS compression,
               a.attoptions AS options,
               {_comment('pg_class', 'a.attrelid', 'a.attnum')} AS comment,
               a.attacl::text[] AS acl
        FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
        LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
        WHERE a.attrelid = {int(relid)} AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum""")
    for r in rows:
        r["acl"] = _acl(r["acl"])
        r["options"] = user_attoptions(r["options"])
    return rows


def _constraints(conn: psycopg2.extensions.connection, relid: int) -> dict[str, Any]:
    """Named constraints of a table (constraint triggers are listed with the triggers)."""
    rows = _rows(conn, f"""
        SELECT co.conname AS name,
               CASE co.contype WHEN 'p' THEN 'primary key' WHEN 'u' THEN 'unique'
                   WHEN 'c' THEN 'check' WHEN 'f' THEN 'foreign key' WHEN 'x' THEN 'exclusion'
                   WHEN 'n' THEN 'not null' ELSE co.contype::text END AS type,
               pg_get_constraintdef(co.oid) AS definition,
               co.condeferrable AS deferrable, co.condeferred AS deferred,
               co.convalidated AS validated, co.conislocal AS local,
               {_comment('pg_constraint', 'co.oid')} AS comment
        FROM pg_constraint co
        WHERE co.conrelid = {int(relid)} AND co.contype <> 't'
        ORDER BY 1""")
    return {r.pop("name"): r for r in rows}


def _indexes(conn: psycopg2.extensions.connection, relid: int) -> dict[str, Any]:
    rows = _rows(conn, f"""
        SELECT ic.relname AS name, pg_get_indexdef(i.indexrelid) AS definition,
               EXISTS (SELECT 1 FROM pg_constraint co WHERE co.conindid = i.indexrelid
                       AND co.conrelid = i.indrelid AND co.contype IN ('p', 'u', 'x'))
                   AS constraint,
               i.indisclustered AS clustered, i.indisreplident AS replica_identity,
               {_comment('pg_class', 'ic.oid')} AS comment
        FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
        WHERE i.indrelid = {int(relid)}
          AND {NOT_EXTENSION.format(cls="'pg_class'", oid="ic.oid")}
        ORDER BY 1""")
    return {r.pop("name"): r for r in rows}


def _triggers(conn: psycopg2.extensions.connection, relid: int) -> dict[str, Any]:
    rows = _rows(conn, f"""
        SELECT t.tgname AS name, pg_get_triggerdef(t.oid) AS definition,
               t.tgenabled::text AS enabled, {_comment('pg_trigger', 't.oid')} AS comment
        FROM pg_trigger t
        WHERE t.tgrelid = {int(relid)} AND NOT t.tgisinternal
          AND {NOT_EXTENSION.format(cls="'pg_trigger'", oid="t.oid")}
        ORDER BY 1""")
    return {r.pop("name"): r for r in rows}


def _policies(conn: psycopg2.extensions.connection, relid: int) -> dict[str, Any]:
    rows = _rows(conn, f"""
        SELECT p.polname AS name, p.polcmd::text AS command, p.polpermissive AS permissive,
               ARRAY(SELECT CASE WHEN r = 0 THEN 'public' ELSE quote_ident(pg_get_userbyid(r))
                            END FROM unnest(p.polroles) r ORDER BY 1) AS roles,
               pg_get_expr(p.polqual, p.polrelid) AS using,
               pg_get_expr(p.polwithcheck, p.polrelid) AS with_check,
               {_comment('pg_policy', 'p.oid')} AS comment
        FROM pg_policy p WHERE p.polrelid = {int(relid)} ORDER BY 1""")
    for r in rows:
        r["roles"] = list(r["roles"])
    return {r.pop("name"): r for r in rows}


def _views(conn: psycopg2.extensions.connection, relkind: str) -> dict[str, Any]:
    rows = _rows(conn, f"""
        SELECT c.oid, n.nspname AS schema, c.relname AS name,
               pg_get_viewdef(c.oid) AS definition, c.reloptions AS options,
               c.relispopulated AS populated,
               {_comment('pg_class', 'c.oid')} AS comment, c.relacl::text[] AS acl
        {_REL} AND c.relkind = '{relkind}'
        ORDER BY 2, 3""")
    views = {}
    for r in rows:
        oid = r.pop("oid")
        key = _qual(r.pop("schema"), r.pop("name"))
        r["acl"] = _acl(r["acl"])
        r["options"] = sorted(r["options"]) if r["options"] else None
        r["columns"] = [
            {k: v for k, v in col.items() if k in ("name", "type", "default", "comment",
                                                   "collation", "acl")}
            for col in _columns(conn, oid)
        ]
        if relkind == "m":
            r["indexes"] = _indexes(conn, oid)
        else:
            del r["populated"]
        r["triggers"] = _triggers(conn, oid)
        views[key] = r
    return views


def _functions(conn: psycopg2.extensions.connection) -> dict[str, Any]:
    """Functions and procedures with their full definition; aggregates by signature only."""
    not_ext = NOT_EXTENSION.format(cls="'pg_proc'", oid="p.oid")
    rows = _rows(conn, f"""
        SELECT n.nspname AS schema, p.proname AS name,
               pg_get_function_identity_arguments(p.oid) AS arguments,
               CASE p.prokind WHEN 'f' THEN 'function' WHEN 'p' THEN 'procedure'
                   WHEN 'w' THEN 'window function' WHEN 'a' THEN 'aggregate' END AS kind,
               CASE WHEN p.prokind <> 'a' THEN pg_get_functiondef(p.oid) END AS definition,
               {_comment('pg_proc', 'p.oid')} AS comment, p.proacl::text[] AS acl
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE {USER_SCHEMA} AND {not_ext}
        ORDER BY 1, 2, 3""")
    out = {}
    for r in rows:
        key = f"{_qual(r.pop('schema'), r.pop('name'))}({r.pop('arguments')})"
        r["acl"] = _acl(r["acl"])
        out[key] = r
    return out


# What dbkit cannot yet reproduce: listed so a squash refuses clearly instead of losing it.
_UNSUPPORTED = {
    "rule": "SELECT n.nspname || '.' || c.relname || ': ' || r.rulename FROM pg_rewrite r "
            "JOIN pg_class c ON c.oid = r.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace "
            f"WHERE r.rulename <> '_RETURN' AND {USER_SCHEMA}",
    "extended statistics": "SELECT n.nspname || '.' || s.stxname FROM pg_statistic_ext s "
                           "JOIN pg_namespace n ON n.oid = s.stxnamespace "
                           f"WHERE {USER_SCHEMA}",
    "foreign table": f"SELECT n.nspname || '.' || c.relname {_REL} AND c.relkind = 'f'",
    "operator": "SELECT n.nspname || '.' || o.oprname FROM pg_operator o JOIN pg_namespace n "
                f"ON n.oid = o.oprnamespace WHERE {USER_SCHEMA} AND "
                + NOT_EXTENSION.format(cls="'pg_operator'", oid="o.oid"),
    "collation": "SELECT n.nspname || '.' || co.collname FROM pg_collation co JOIN pg_namespace n "
                 f"ON n.oid = co.collnamespace WHERE {USER_SCHEMA} AND "
                 + NOT_EXTENSION.format(cls="'pg_collation'", oid="co.oid"),
    "text search configuration": "SELECT n.nspname || '.' || t.cfgname FROM pg_ts_config t "
                                 f"JOIN pg_namespace n ON n.oid = t.cfgnamespace WHERE "
                                 f"{USER_SCHEMA} AND "
                                 + NOT_EXTENSION.format(cls="'pg_ts_config'", oid="t.oid"),
    "event trigger": "SELECT evtname FROM pg_event_trigger e WHERE "
                     + NOT_EXTENSION.format(cls="'pg_event_trigger'", oid="e.oid"),
    "default privileges": "SELECT coalesce(n.nspname, '(all schemas)') || ': ' "
                          "|| d.defaclobjtype::text FROM pg_default_acl d "
                          "LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace",
    "publication": "SELECT pubname FROM pg_publication",
}


def unsupported_objects(conn: psycopg2.extensions.connection) -> dict[str, list[str]]:
    """Objects of kinds the squash cannot reproduce yet, by kind (empty when none)."""
    found: dict[str, list[str]] = {}
    for kind, query in _UNSUPPORTED.items():
        with conn.cursor() as cur:
            cur.execute(query + " ORDER BY 1")
            names = [str(row[0]) for row in cur.fetchall()]
        if names:
            found[kind] = names
    return found


# -- comparing two snapshots -----------------------------------------------------------------

_KIND_NAMES = {
    "schemas": "schema", "extensions": "extension", "types": "type", "sequences": "sequence",
    "tables": "table", "views": "view", "materialized_views": "materialized view",
    "functions": "function", "unsupported": "unsupported objects",
    "constraints": "constraint", "indexes": "index", "triggers": "trigger",
    "policies": "policy", "attributes": "attribute",
}


def diff_snapshots(a: Snapshot, b: Snapshot, *, names: tuple[str, str] = ("A", "B")) -> list[str]:
    """What differs between two snapshots, one line each: object kind, name, attribute, values.

    Columns are compared by their order of appearance, never by attnum.
    """
    lines: list[str] = []
    for kind in sorted(set(a) | set(b)):
        _diff_objects(_KIND_NAMES.get(kind, kind), a.get(kind) or {}, b.get(kind) or {},
                      "", lines, names)
    return lines


def _diff_objects(kind: str, a: dict[str, Any], b: dict[str, Any], where: str,
                  lines: list[str], names: tuple[str, str]) -> None:
    for name in sorted(set(a) | set(b)):
        label = f"{kind} {where}{name}"
        if name not in b:
            lines.append(f"{label}: only in {names[0]}")
        elif name not in a:
            lines.append(f"{label}: only in {names[1]}")
        elif a[name] != b[name]:
            _diff_value(label, a[name], b[name], lines, names)


def _diff_value(label: str, a: Any, b: Any, lines: list[str], names: tuple[str, str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            va, vb = a.get(key), b.get(key)
            if va == vb:
                continue
            if key in _KIND_NAMES and isinstance(va or {}, dict) and isinstance(vb or {}, dict):
                _diff_objects(_KIND_NAMES[key], va or {}, vb or {}, f"{label.split(' ', 1)[1]}.",
                              lines, names)
            elif key in ("columns", "attributes") and isinstance(va, list):
                _diff_columns(label, va or [], vb or [], lines, names)
            else:
                _diff_value(f"{label}: {key}", va, vb, lines, names)
        return
    lines.append(f"{label}: {a!r} in {names[0]} vs {b!r} in {names[1]}")


def _diff_columns(label: str, a: list[dict[str, Any]], b: list[dict[str, Any]],
                  lines: list[str], names: tuple[str, str]) -> None:
    order_a = [c["name"] for c in a]
    order_b = [c["name"] for c in b]
    if order_a != order_b:
        lines.append(f"{label}: columns {order_a} in {names[0]} vs {order_b} in {names[1]}")
    by_name_b = {c["name"]: c for c in b}
    for col in a:
        other = by_name_b.get(col["name"])
        if other is not None and other != col:
            _diff_value(f"{label}: column {col['name']}", col, other, lines, names)
