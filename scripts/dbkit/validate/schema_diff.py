"""Two catalog snapshots (``pg.catalog.snapshot``) compared object by object, as Differences.

The proof's ``catalog.diff_snapshots`` says *that* two databases differ, in lines for the
squash report; validate needs each difference as a record a developer can act on: the kind
(``index``, ``check constraint``, ``trigger``...), the schema-qualified name, and the two
definitions. The live database is side ``database``, a fresh build of the chain side
``migrations``.

Expressions PostgreSQL may print differently for the same meaning (a restored database's
``varchar IN (...)`` checks, ``= ANY (ARRAY[...])``) come with an ``Expression``: the caller
renders both texts once through the server (``rerender``) and drops the difference when the
renderings agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from dbkit.validate.drift import CHANGED, EXTRA, MIGRATIONS, MISSING, Difference, table_size

_CONSTRAINT_KINDS = {
    "primary key": "primary key", "unique": "unique constraint", "foreign key": "foreign key",
    "check": "check constraint", "exclusion": "exclusion constraint",
    "not null": "not null constraint",
}
_ENABLED = {"O": "enabled", "D": "disabled", "R": "enabled on replicas only",
            "A": "enabled always"}
# A column's definition proper; its other attributes (comment, grants...) are said by name.
_COLUMN_CORE = ("type", "not_null", "default", "identity", "generated", "generated_kind",
                "collation")
_NESTED = ("columns", "constraints", "indexes", "triggers", "policies")
_TOP = (  # snapshot key, kind
    ("schemas", "schema"), ("extensions", "extension"), ("types", "type"),
    ("sequences", "sequence"), ("tables", "table"), ("views", "view"),
    ("materialized_views", "materialized view"), ("functions", "function"),
)


@dataclass(frozen=True)
class Expression:
    """An expression that differs only in text, maybe: re-rendered by the server to tell."""

    what: str  # check, default, index, view
    relation: str  # schema.name of the table or view it belongs to
    column: str | None  # for a default
    database: str
    migrations: str


@dataclass(frozen=True)
class Found:
    difference: Difference
    expression: Expression | None = None


def compare(live: dict[str, Any], built: dict[str, Any]) -> list[Found]:
    """Every difference between the live database's snapshot and the built chain's."""
    found: list[Found] = []
    for key, kind in _TOP:
        a, b = live.get(key) or {}, built.get(key) or {}
        for name in sorted(set(a) | set(b)):
            if name not in b:
                found.append(_one(kind, name, EXTRA, _whole(kind, a[name]), None))
            elif name not in a:
                found.append(_one(kind, name, MISSING, None, _whole(kind, b[name])))
            elif a[name] != b[name]:
                found += _changed(kind, name, a[name], b[name])
    found = _without_owned_sequences(found)
    unsupported_a, unsupported_b = live.get("unsupported") or {}, built.get("unsupported") or {}
    for kind in sorted(set(unsupported_a) | set(unsupported_b)):
        names_a, names_b = set(unsupported_a.get(kind, ())), set(unsupported_b.get(kind, ()))
        found += [_one(kind, n, EXTRA, None, None) for n in sorted(names_a - names_b)]
        found += [_one(kind, n, MISSING, None, None) for n in sorted(names_b - names_a)]
    return found


def _without_owned_sequences(found: list[Found]) -> list[Found]:
    """A table only one side has takes its serial sequence with it: one line, the table's."""
    whole = {(f.difference.object, f.difference.problem) for f in found
             if f.difference.kind == "table" and f.difference.problem in (EXTRA, MISSING)}
    kept = []
    for f in found:
        d = f.difference
        text = d.database if d.problem == EXTRA else d.app
        if d.kind == "sequence" and text and " owned by " in text:
            owner = text.split(" owned by ", 1)[1].rsplit(".", 1)[0].replace('"', "")
            if (owner, d.problem) in whole:
                continue
        kept.append(f)
    return kept


def _one(kind: str, name: str, problem: str, db: str | None, mig: str | None,
         expression: Expression | None = None) -> Found:
    return Found(Difference(kind, name, problem, db, mig, MIGRATIONS), expression)


def _whole(kind: str, entry: dict[str, Any]) -> str:
    """What an object is, said in one phrase (for an object only one side has)."""
    if kind == "table":
        return table_size(len(entry.get("columns") or []))
    if kind in ("view", "materialized view", "function", "procedure", "index", "trigger"):
        text = entry.get("definition") or f"a {kind}"
        if kind == "trigger" and entry.get("enabled") not in (None, "O"):
            text += f" ({_ENABLED.get(entry['enabled'], entry['enabled'])})"
        return text
    if kind == "column":
        return _column(entry)
    if kind.endswith(("constraint", "key")):
        return str(entry.get("definition"))
    if kind == "type":
        if entry.get("kind") == "enum":
            return "ENUM (" + ", ".join(_quote(x) for x in entry.get("labels") or []) + ")"
        if entry.get("kind") == "domain":
            return f"DOMAIN {entry.get('base')}"
        return f"a {entry.get('kind')} type"
    if kind == "extension":
        return f"version {entry.get('version')} in schema {entry.get('schema')}"
    if kind == "sequence":
        owner = f" owned by {entry['owned_by']}" if entry.get("owned_by") else ""
        return f"a sequence of {entry.get('type')}{owner}"
    if kind == "policy":
        return _policy(entry)
    return f"a {kind}"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _column(col: dict[str, Any]) -> str:
    text = str(col.get("type"))
    if col.get("collation"):
        text += f" COLLATE {col['collation']}"
    if col.get("not_null"):
        text += " NOT NULL"
    if col.get("default") is not None:
        text += f" DEFAULT {col['default']}"
    if col.get("identity"):
        text += f" GENERATED {col['identity'].upper()} AS IDENTITY"
    if col.get("generated"):
        stored = (col.get("generated_kind") or "").upper()
        text += f" GENERATED ALWAYS AS ({col['generated']}) {stored}"
    return text


def _policy(p: dict[str, Any]) -> str:
    text = f"{'PERMISSIVE' if p.get('permissive') else 'RESTRICTIVE'} FOR {p.get('command')} TO "
    text += ", ".join(p.get("roles") or [])
    if p.get("using"):
        text += f" USING ({p['using']})"
    if p.get("with_check"):
        text += f" WITH CHECK ({p['with_check']})"
    return text


def _attr(key: str, value: Any) -> str:
    """One attribute of an object, said in words."""
    if key == "comment":
        return f"comment {_quote(value)}" if value is not None else "no comment"
    if key == "acl":
        return "grants " + ", ".join(value) if value is not None else "default grants"
    if key == "enabled":
        return _ENABLED.get(value, f"enabled={value}")
    words = key.replace("_", " ")
    if value is None or value is False:
        return f"no {words}" if value is None else f"not {words}"
    if value is True:
        return words
    if isinstance(value, list):
        return f"{words} " + ", ".join(str(v) for v in value)
    return f"{words} {value}"


def _attrs(a: dict[str, Any], b: dict[str, Any], keys: list[str]) -> tuple[str, str]:
    return ("; ".join(_attr(k, a.get(k)) for k in keys),
            "; ".join(_attr(k, b.get(k)) for k in keys))


def _changed(kind: str, name: str, a: dict[str, Any], b: dict[str, Any]) -> list[Found]:
    """An object both sides have, that differs: itself, then what it holds (tables, views)."""
    if kind == "function" and (a.get("kind") or "function") != "function":
        kind = str(a.get("kind"))
    keys = [k for k in sorted(set(a) | set(b)) if k not in _NESTED and a.get(k) != b.get(k)]
    found: list[Found] = []
    if keys:
        expression = None
        if keys == ["definition"] and kind in ("view", "materialized view"):
            expression = Expression("view", name, None, a["definition"], b["definition"])
        if kind == "type" and keys == ["labels"] or keys == ["definition"]:
            db, mig = _whole(kind, a), _whole(kind, b)
        else:
            db, mig = _attrs(a, b, keys)
        found.append(_one(kind, name, CHANGED, db, mig, expression))
    if kind in ("table", "view", "materialized view"):
        found += _columns(name, a.get("columns") or [], b.get("columns") or [])
        for key, nested_kind in (("constraints", "constraint"), ("indexes", "index"),
                                 ("triggers", "trigger"), ("policies", "policy")):
            found += _nested(nested_kind, name, a.get(key) or {}, b.get(key) or {})
        found = _fold(found, a, b)
    return found


def _columns(table: str, a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[Found]:
    found: list[Found] = []
    by_a, by_b = {c["name"]: c for c in a}, {c["name"]: c for c in b}
    for col in sorted(set(by_a) | set(by_b)):
        name = f"{table}.{col}"
        ca, cb = by_a.get(col), by_b.get(col)
        if cb is None:
            found.append(_one("column", name, EXTRA, _column(ca or {}), None))
        elif ca is None:
            found.append(_one("column", name, MISSING, None, _column(cb)))
        elif ca != cb:
            keys = [k for k in sorted(set(ca) | set(cb)) if ca.get(k) != cb.get(k)]
            expression = None
            if keys == ["default"] and ca.get("default") and cb.get("default"):
                expression = Expression("default", table, col, ca["default"], cb["default"])
            if all(k in _COLUMN_CORE for k in keys):
                found.append(_one("column", name, CHANGED, _column(ca), _column(cb), expression))
            else:
                found.append(_one("column", name, CHANGED, *_attrs(ca, cb, keys)))
    common = [c for c in by_a if c in by_b]
    if common != [c for c in by_b if c in by_a]:
        found.append(_one("table", table, CHANGED, "columns in order " + ", ".join(common),
                          "columns in order " + ", ".join(c for c in by_b if c in by_a)))
    return found


def _nested(kind: str, table: str, a: dict[str, Any], b: dict[str, Any]) -> list[Found]:
    """Constraints, indexes, triggers or policies of one table: ``schema.table.name``."""
    found: list[Found] = []
    for item in sorted(set(a) | set(b)):
        name = f"{table}.{item}"
        ea, eb = a.get(item), b.get(item)
        this = kind
        if kind == "constraint":
            this = _CONSTRAINT_KINDS.get((ea or eb or {}).get("type"), "constraint")
        if eb is None:
            found.append(_one(this, name, EXTRA, _whole(this, ea or {}), None))
        elif ea is None:
            found.append(_one(this, name, MISSING, None, _whole(this, eb)))
        elif ea != eb:
            keys = [k for k in sorted(set(ea) | set(eb)) if ea.get(k) != eb.get(k)]
            expression = None
            if keys == ["definition"] and this == "check constraint":
                expression = Expression("check", table, None, ea["definition"], eb["definition"])
            elif keys == ["definition"] and this == "index":
                expression = Expression("index", table, None, ea["definition"], eb["definition"])
            if keys == ["definition"]:
                found.append(_one(this, name, CHANGED, _whole(this, ea), _whole(this, eb),
                                  expression))
            else:
                found.append(_one(this, name, CHANGED, *_attrs(ea, eb, keys)))
    return found


def _fold(found: list[Found], a: dict[str, Any], b: dict[str, Any]) -> list[Found]:
    """One line per change: a constraint's own index, a column's not-null constraint, go."""
    said = {f.difference.object for f in found if f.difference.kind != "index"}
    columns = any(f.difference.kind == "column" for f in found)
    kept = []
    for f in found:
        d = f.difference
        if d.kind == "index" and d.object in said:
            continue  # the index of a primary key / unique / exclusion constraint
        if d.kind == "not null constraint" and columns:
            continue  # said with the column (PostgreSQL 18 names NOT NULL constraints)
        kept.append(f)
    return kept


# -- re-rendering through the server ---------------------------------------------------------

def _rel(name: str) -> sql.Composable:
    schema, _, rel = name.partition(".")
    return sql.Identifier(schema, rel)


def _render(cur: psycopg2.extensions.cursor, e: Expression, text: str) -> str:
    """``text`` as PostgreSQL prints it after reading it once, in the built database."""
    if e.what == "check":
        cur.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT dbkit_rerender {}").format(
            _rel(e.relation), sql.SQL(text.replace(" NOT VALID", "") + " NOT VALID")))
        cur.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                    "WHERE conname = 'dbkit_rerender' AND conrelid = %s::regclass",
                    (e.relation,))
    elif e.what == "default":
        cur.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET DEFAULT {}").format(
            _rel(e.relation), sql.Identifier(e.column or ""), sql.SQL(text)))
        cur.execute("SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d JOIN pg_attribute a"
                    " ON a.attrelid = d.adrelid AND a.attnum = d.adnum "
                    "WHERE d.adrelid = %s::regclass AND a.attname = %s", (e.relation, e.column))
    elif e.what == "index":
        head, sep, rest = text.partition(" ON ")
        words = head.split(" ")
        words[-1] = "dbkit_rerender"  # CREATE [UNIQUE] INDEX name
        cur.execute(" ".join(words) + sep + rest)
        cur.execute("SELECT pg_get_indexdef(c.oid) FROM pg_class c WHERE c.relname = "
                    "'dbkit_rerender' AND c.relkind = 'i' AND c.relnamespace = "
                    "(SELECT relnamespace FROM pg_class WHERE oid = %s::regclass)",
                    (e.relation,))
    else:  # view or materialized view: a temporary view of the same query
        cur.execute(sql.SQL("CREATE TEMPORARY VIEW dbkit_rerender AS {}").format(
            sql.SQL(text.rstrip().rstrip(";"))))
        cur.execute("SELECT pg_get_viewdef('pg_temp.dbkit_rerender'::regclass)")
    return str(cur.fetchone()[0])


def rerender(conn: psycopg2.extensions.connection, expressions: list[Expression]
             ) -> set[Expression]:
    """The expressions whose two texts PostgreSQL renders alike: not differences.

    Each text is read once by the server (in ``conn``, the built database, with an empty
    search_path so every name stays qualified) inside a transaction that is rolled back. Two
    texts are alike when one equals the other's rendering or both render the same.
    """
    alike: set[Expression] = set()
    if not expressions:
        return alike
    previous = conn.autocommit
    conn.autocommit = False
    try:
        with conn.cursor() as cur:
            cur.execute("SET LOCAL search_path = ''")
            for e in expressions:
                rendered = []
                for text in (e.database, e.migrations):
                    cur.execute("SAVEPOINT dbkit_rerender")
                    try:
                        rendered.append(_render(cur, e, text))
                    except psycopg2.Error:
                        rendered.append(None)
                    cur.execute("ROLLBACK TO SAVEPOINT dbkit_rerender")
                a, b = rendered
                if a is not None and (a == b or a == e.migrations) or \
                        b is not None and b == e.database:
                    alike.add(e)
    finally:
        conn.rollback()
        conn.autocommit = previous
    return alike
