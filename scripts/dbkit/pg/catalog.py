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
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psycopg2.extensions
import psycopg2.sql

from dbkit.pg import queries, shapes
from dbkit.pg.queries import NOT_EXT_CLASS, NOT_EXTENSION, USER_SCHEMA
from dbkit.pg.shapes import Row

__all__ = ["NOT_EXTENSION", "NOT_EXT_CLASS", "USER_SCHEMA"]

if TYPE_CHECKING:
    from dbkit.pg.server import Server

# Schemas that belong to PostgreSQL itself, never to a project.
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")
# pg_class.relkind letters of what ``relations`` lists.
TABLES, VIEWS, MATVIEWS, SEQUENCES = ("r", "p"), ("v",), ("m",), ("S",)

Snapshot = shapes.Snapshot

# Column options (pg_attribute.attoptions) that the server sets by itself, not the user:
# Debian's PostgreSQL 15.20 stores pg_attver=<n> on every column (a different n per table,
# and ALTER ... SET cannot change it). They are neither captured, nor compared, nor
# fingerprinted; the proof's pg_dump text drops them too (prove.normalise_dump).
SERVER_ATTOPTIONS = ("pg_attver",)
# The column options a user sets (ALTER TABLE ... ALTER COLUMN ... SET (...)): captured,
# reproduced and compared. Any other option a chain leaves is refused by the squash.
USER_ATTOPTIONS = ("n_distinct", "n_distinct_inherited")


def user_attoptions(options: list[str] | None) -> list[str] | None:
    """A column's options without the server's own, sorted; None when none is left."""
    kept = sorted(o for o in options or () if o.split("=", 1)[0] not in SERVER_ATTOPTIONS)
    return kept or None


def _sql(name: str) -> str:
    return queries.load(__file__, name)


def _rows(conn: psycopg2.extensions.connection, query: str, args: Any = None) -> list[Row]:
    with conn.cursor() as cur:
        cur.execute(query, args)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def object_counts(conn: psycopg2.extensions.connection) -> dict[str, int]:
    """How many of each kind of object the project's schemas hold, and how many rows."""
    counts = {kind: int(n) for kind, n in _rows(conn, _sql("counts"))[0].items()}
    counts["rows"] = sum(table_row_counts(conn).values())
    return counts


def relations(conn: psycopg2.extensions.connection, kinds: Iterable[str], *,
              populated: bool = False) -> list[tuple[str, str]]:
    """(schema, name) of the project's relations of ``kinds`` (relkind letters: ``TABLES``,
    ``MATVIEWS``, ...), by name; ``populated``: only materialized views that hold data."""
    with conn.cursor() as cur:
        cur.execute(_sql("relations"), {"kinds": list(kinds), "populated": populated})
        return [(schema, name) for schema, name in cur.fetchall()]


def table_row_counts(conn: psycopg2.extensions.connection) -> dict[str, int]:
    """Exact row count of every ordinary table in the project's schemas, ``schema.table``."""
    counts = {}
    with conn.cursor() as cur:
        for schema, name in relations(conn, TABLES):
            cur.execute(
                psycopg2.sql.SQL("SELECT count(*) FROM {}.{}").format(
                    psycopg2.sql.Identifier(schema), psycopg2.sql.Identifier(name)
                )
            )
            counts[f"{schema}.{name}"] = int(cur.fetchone()[0])
    return counts


def sequence_positions(conn: psycopg2.extensions.connection) -> dict[str, tuple[int, bool]]:
    """Every sequence's position, ``schema.name`` -> (last_value, is_called)."""
    positions = {}
    with conn.cursor() as cur:
        for schema, name in relations(conn, SEQUENCES):
            cur.execute(psycopg2.sql.SQL("SELECT last_value, is_called FROM {}.{}").format(
                psycopg2.sql.Identifier(schema), psycopg2.sql.Identifier(name)))
            last, called = cur.fetchone()
            positions[f"{schema}.{name}"] = (int(last), bool(called))
    return positions


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


def _qual(schema: str, name: str) -> str:
    return f"{schema}.{name}"


def _acl(value: Any) -> list[str] | None:
    """An ACL as a sorted list of aclitem strings; None means the default privileges."""
    if value is None:
        return None
    items = value if isinstance(value, list) else str(value).strip("{}").split(",")
    return sorted(str(i) for i in items if i)


def _by_name(rows: list[Row]) -> dict[str, Any]:
    return {r.pop("name"): r for r in rows}


def snapshot(conn: psycopg2.extensions.connection) -> Snapshot:
    """A canonical, JSON-able description of every object in the project's schemas.

    Owner-free and name-free (the database's own name appears nowhere). Objects that belong
    to an extension are left out; the extension itself (name, version, schema) is in.
    Its shape: ``pg.shapes.Snapshot``.
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


def _schemas(conn: psycopg2.extensions.connection) -> dict[str, shapes.Schema]:
    return {r["name"]: {"comment": r["comment"], "acl": _acl(r["acl"])}
            for r in _rows(conn, _sql("schemas"))}


def _extensions(conn: psycopg2.extensions.connection) -> dict[str, shapes.Extension]:
    rows = _rows(conn, """
        SELECT e.extname AS name, e.extversion AS version, n.nspname AS schema
        FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace ORDER BY 1""")
    return {r["name"]: {"version": r["version"], "schema": r["schema"]} for r in rows}


_TYPE_KINDS = {"e": "enum", "d": "domain", "c": "composite", "r": "range", "m": "multirange"}


def _types(conn: psycopg2.extensions.connection) -> dict[str, shapes.Type]:
    """Enums (labels in order), domains (base, default, constraints), composites, ranges."""
    types: dict[str, shapes.Type] = {}
    for r in _rows(conn, _sql("types")):
        entry: shapes.Type = {"kind": _TYPE_KINDS[r["kind"]], "comment": r["comment"],
                              "acl": _acl(r["acl"])}
        oid = int(r["oid"])
        if r["kind"] == "e":
            entry["labels"] = list(r["labels"])
        elif r["kind"] == "d":
            entry.update(base=r["base"], default=r["default"], not_null=r["not_null"],
                         collation=r["collation"],
                         constraints=_by_name(_rows(conn, _sql("domain_constraints"), (oid,))))
        elif r["kind"] == "c":
            entry["attributes"] = _rows(conn, _sql("composite_attributes"), (oid,))
        elif r["kind"] == "r":
            found = _rows(conn, _sql("range"), (oid,))
            entry["range"] = found[0] if found else {}
        types[_qual(r["schema"], r["name"])] = entry
    return types


def _sequences(conn: psycopg2.extensions.connection) -> dict[str, shapes.Sequence]:
    """Every sequence, with what owns it: a column (serial/OWNED BY) or an identity column."""
    out = {}
    for r in _rows(conn, _sql("sequences")):
        key = _qual(r.pop("schema"), r.pop("name"))
        r["acl"] = _acl(r["acl"])
        out[key] = r
    return out


def _per_relation(conn: psycopg2.extensions.connection, name: str,
                  relids: list[int]) -> dict[int, list[Row]]:
    """One query ``name`` for all of ``relids`` at once (the relations' parts: columns,
    indexes, ...), its rows by relation OID, in the query's order (``relid`` removed).

    One round trip per kind, not per relation: at 1,000 tables, 5 queries instead of 5,000.
    """
    found: dict[int, list[Row]] = {relid: [] for relid in relids}
    if relids:
        for r in _rows(conn, _sql(name), (relids,)):
            found[r.pop("relid")].append(r)
    return found


def _tables(conn: psycopg2.extensions.connection) -> dict[str, shapes.Table]:
    rows = _rows(conn, _sql("tables"))
    relids = [r["oid"] for r in rows]
    columns = _columns(conn, relids)
    constraints = _per_relation(conn, "constraints", relids)
    indexes = _per_relation(conn, "indexes", relids)
    triggers = _per_relation(conn, "triggers", relids)
    policies = _policies(conn, relids)
    tables = {}
    for r in rows:
        oid = r.pop("oid")
        key = _qual(r.pop("schema"), r.pop("name"))
        r["kind"] = "partitioned table" if r["kind"] == "p" else "table"
        r["parents"] = list(r["parents"])
        r["acl"] = _acl(r["acl"])
        r["options"] = sorted(r["options"]) if r["options"] else None
        r["columns"] = columns[oid]
        r["constraints"] = _by_name(constraints[oid])
        r["indexes"] = _by_name(indexes[oid])
        r["triggers"] = _by_name(triggers[oid])
        r["policies"] = policies[oid]
        tables[key] = r
    return tables


def _columns(conn: psycopg2.extensions.connection,
             relids: list[int]) -> dict[int, list[Row]]:
    """Each relation's columns in order of appearance: attnum gaps left by dropped columns
    do not matter."""
    found = _per_relation(conn, "columns", relids)
    for rows in found.values():
        for r in rows:
            r["acl"] = _acl(r["acl"])
            r["options"] = user_attoptions(r["options"])
    return found


def _policies(conn: psycopg2.extensions.connection,
              relids: list[int]) -> dict[int, dict[str, shapes.Policy]]:
    found = {}
    for relid, rows in _per_relation(conn, "policies", relids).items():
        for r in rows:
            r["roles"] = list(r["roles"])
        found[relid] = _by_name(rows)
    return found


_VIEW_COLUMN = ("name", "type", "default", "comment", "collation", "acl")


def _views(conn: psycopg2.extensions.connection, relkind: str) -> dict[str, shapes.View]:
    rows = _rows(conn, _sql("views"), (relkind,))
    relids = [r["oid"] for r in rows]
    columns = _columns(conn, relids)
    indexes = _per_relation(conn, "indexes", relids) if relkind == "m" else {}
    triggers = _per_relation(conn, "triggers", relids)
    views = {}
    for r in rows:
        oid = r.pop("oid")
        key = _qual(r.pop("schema"), r.pop("name"))
        r["acl"] = _acl(r["acl"])
        r["options"] = sorted(r["options"]) if r["options"] else None
        r["columns"] = [{k: v for k, v in col.items() if k in _VIEW_COLUMN}
                        for col in columns[oid]]
        if relkind == "m":
            r["indexes"] = _by_name(indexes[oid])
        else:
            del r["populated"]
        r["triggers"] = _by_name(triggers[oid])
        views[key] = r
    return views


def _functions(conn: psycopg2.extensions.connection) -> dict[str, shapes.Function]:
    """Functions and procedures with their full definition; aggregates by signature only."""
    out = {}
    for r in _rows(conn, _sql("functions")):
        key = f"{_qual(r.pop('schema'), r.pop('name'))}({r.pop('arguments')})"
        r["acl"] = _acl(r["acl"])
        out[key] = r
    return out


def unsupported_objects(conn: psycopg2.extensions.connection) -> dict[str, list[str]]:
    """Objects of kinds the squash cannot reproduce yet, by kind (empty when none)."""
    found: dict[str, list[str]] = {}
    with conn.cursor() as cur:
        cur.execute(_sql("unsupported"))
        for kind, name in cur.fetchall():
            found.setdefault(kind, []).append(str(name))
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
