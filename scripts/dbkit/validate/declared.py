"""What the app declares outside its models, and whether the database has exactly that.

The registry is one module of the app (``APP_OBJECTS``, default ``app.db.objects``) exporting
``SCHEMAS``, ``VIEWS`` and ``MATERIALIZED_VIEWS`` (``"schema.name"`` -> SELECT body),
``FUNCTIONS`` (``"schema.name"`` -> CREATE FUNCTION), ``TRIGGERS`` (``"schema.table.trigger"``
-> CREATE TRIGGER) and ``MIGRATION_ONLY_TABLES``. It is imported only inside the Alembic child
process (``project/runner.py``, ``load_registry``), never into dbkit's own process, which gets
it as JSON.

Definitions are compared the way PostgreSQL renders them. Each declared view, function and
trigger is created under a throwaway name in this session's temporary schema, inside one
transaction that is always rolled back: its body resolves against the live tables, and
``pg_get_viewdef`` / ``pg_get_triggerdef`` / ``pg_proc`` then render both sides alike, so
whitespace and formatting do not count. Nothing is created in the app's schemas and nothing
outlives the transaction.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions

from dbkit.errors import first_line
from dbkit.pg import queries
from dbkit.pg.queries import NOT_EXT_CLASS, NOT_EXTENSION
from dbkit.validate.drift import CHANGED, EXTRA, MISSING, Difference, table_size


@dataclass(frozen=True, kw_only=True)
class Registry:
    """The app's declared objects, keyed by their schema-qualified names."""

    module: str
    schemas: tuple[str, ...] = ()
    views: dict[str, str] = field(default_factory=dict)
    materialized_views: dict[str, str] = field(default_factory=dict)
    functions: dict[str, str] = field(default_factory=dict)
    triggers: dict[str, str] = field(default_factory=dict)
    migration_only_tables: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, module: str, data: dict[str, Any]) -> Registry:
        return cls(
            module=module,
            schemas=tuple(data.get("SCHEMAS", ())),
            views=dict(data.get("VIEWS", {})),
            materialized_views=dict(data.get("MATERIALIZED_VIEWS", {})),
            functions=dict(data.get("FUNCTIONS", {})),
            triggers=dict(data.get("TRIGGERS", {})),
            migration_only_tables=tuple(data.get("MIGRATION_ONLY_TABLES", ())),
        )

    def schemas_used(self) -> set[str]:
        """Every schema the registry names, declared or implied by an object's name."""
        names = [*self.views, *self.materialized_views, *self.functions, *self.triggers,
                 *self.migration_only_tables]
        return set(self.schemas) | {n.split(".", 1)[0] for n in names}

    def size(self) -> int:
        return (len(self.views) + len(self.materialized_views) + len(self.functions)
                + len(self.triggers) + len(self.migration_only_tables))


# -- in dbkit's process: compare with the live database -----------------------------------------
@dataclass(frozen=True)
class _Relation:
    kind: str  # pg_class.relkind
    quoted: str  # schema.name as PostgreSQL renders it in definitions
    viewdef: str | None


@dataclass
class _Live:
    schemas: set[str]
    relations: dict[str, _Relation]
    functions: dict[str, dict[str, dict[str, str]]]  # schema.name -> identity args -> attributes
    triggers: dict[str, str]  # schema.table.trigger -> pg_get_triggerdef


class CompareError(Exception):
    """The comparison itself could not run (lock timeout, lost connection, no temp rights)."""


_USER_SCHEMAS = "n.nspname = ANY(%(schemas)s)"
_NOT_EXT_PROC = NOT_EXTENSION.format(cls="'pg_proc'", oid="p.oid")
_TRIGGERS = """
SELECT n.nspname || '.' || c.relname || '.' || t.tgname, pg_get_triggerdef(t.oid)
FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE NOT t.tgisinternal AND {where}
"""
_TEMP = "n.oid = pg_my_temp_schema() AND {col} LIKE 'dbkit\\_{prefix}%'"

_NAME = r'(?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*)'
_QUALIFIED = rf"{_NAME}(?:\s*\.\s*{_NAME})?"
_LEADING = r"(?:\s|--[^\n]*\n|/\*.*?\*/)*"
_FUNCTION_HEAD = re.compile(
    rf"^({_LEADING}CREATE\s+(?:OR\s+REPLACE\s+)?(?:FUNCTION|PROCEDURE)\s+)({_QUALIFIED})(\s*\()",
    re.I | re.S,
)
_TRIGGER_ON = re.compile(rf"(\bON\s+)({_QUALIFIED})", re.I)
_WITH_DATA = re.compile(r"\s+WITH\s+(?:NO\s+)?DATA\s*$", re.I)
_KINDS = {"r": "table", "p": "table", "v": "view", "m": "materialized view"}
_VOLATILITY = {"i": "IMMUTABLE", "s": "STABLE", "v": "VOLATILE"}
_PARALLEL = {"s": "PARALLEL SAFE", "r": "PARALLEL RESTRICTED", "u": "PARALLEL UNSAFE"}
_REJECTED = "a definition PostgreSQL rejects here"


def _functions(where: str) -> str:
    return queries.load(__file__, "functions").format(where=where)


def compare(
    conn: psycopg2.extensions.connection, registry: Registry, schemas: Iterable[str]
) -> list[Difference]:
    """Every difference between the declared objects and the database; nothing is kept.

    ``conn`` must not be in autocommit mode: all work happens in one transaction that is
    rolled back, whatever happens. ``schemas`` are the app's schemas (where extras count).
    """
    names = sorted(set(schemas) | registry.schemas_used())
    with _reading(conn) as cur:
        live = _read_live(cur, names)
        _require_temp_rights(cur)
        return [
            *_compare_schemas(registry, live),
            *_compare_tables(registry, live),
            *_compare_views(cur, registry, live),
            *_compare_functions(cur, registry, live),
            *_compare_triggers(cur, registry, live),
        ]


def outside_schemas(
    conn: psycopg2.extensions.connection, schemas: Iterable[str], *, tables: bool,
    views: bool, ignore: Iterable[str] = (),
) -> list[Difference]:
    """Tables (``tables``) and views (``views``) in schemas the app does not use: extra.

    Alembic compares only the schemas it is shown and the registry speaks for the app's own
    schemas, so a table left in a schema neither names would go unseen. PostgreSQL's own
    schemas and what extensions create do not count; ``ignore`` names relations that are
    nobody's drift (Alembic's version table). Read in a transaction that is rolled back.
    """
    kinds = [*(("r", "p") if tables else ()), *(("v", "m") if views else ())]
    if not kinds:
        return []
    with _reading(conn) as cur:
        cur.execute(queries.load(__file__, "outside"), {"kinds": kinds, "schemas": sorted(schemas),
                               "ignore": sorted(ignore)})
        rows = cur.fetchall()
    return [Difference(_KINDS[kind], name, EXTRA,
                       viewdef.strip() if viewdef else table_size(columns), None)
            for name, kind, viewdef, columns in rows]


@contextmanager
def _reading(conn: psycopg2.extensions.connection) -> Iterator[psycopg2.extensions.cursor]:
    """A cursor in one transaction that is always rolled back.

    A lock wait, a cancelled query or a lost connection become CompareError.
    """
    try:
        with conn.cursor() as cur:
            # A migration holding a lock must not make us hang; we would rather fail.
            cur.execute("SET LOCAL lock_timeout = '10s'")
            yield cur
    except (psycopg2.OperationalError, psycopg2.errors.QueryCanceled,
            psycopg2.errors.LockNotAvailable) as err:
        raise CompareError(first_line(err)) from None
    finally:
        if not conn.closed:
            conn.rollback()


def _read_live(cur: psycopg2.extensions.cursor, schemas: list[str]) -> _Live:
    params = {"schemas": schemas}
    cur.execute("SELECT nspname FROM pg_namespace n WHERE " + _USER_SCHEMAS, params)
    present = {row[0] for row in cur.fetchall()}
    cur.execute(queries.load(__file__, "relations"), params)
    relations = {key: _Relation(kind, quoted, viewdef.strip() if viewdef else None)
                 for key, kind, quoted, viewdef in cur}
    proc_where = f"{_USER_SCHEMAS} AND {_NOT_EXT_PROC}"
    cur.execute(_functions(proc_where), params)
    functions: dict[str, dict[str, dict[str, str]]] = {}
    for row in cur.fetchall():
        functions.setdefault(row[0], {})[row[1]] = _function_attributes(row)
    trigger_where = f"{_USER_SCHEMAS} AND {NOT_EXT_CLASS}"
    cur.execute(_TRIGGERS.format(where=trigger_where), params)
    return _Live(present, relations, functions, dict(cur.fetchall()))


def _require_temp_rights(cur: psycopg2.extensions.cursor) -> None:
    error = _attempt(cur, "CREATE TEMP TABLE dbkit_probe ()")
    if error:
        raise CompareError(f"this role cannot create temporary objects ({error})")


def _attempt(cur: psycopg2.extensions.cursor, statement: str) -> str | None:
    """Run one statement under a savepoint; PostgreSQL's error line if it rejects it."""
    cur.execute("SAVEPOINT dbkit_attempt")
    try:
        cur.execute(statement)
    except (psycopg2.OperationalError, psycopg2.errors.QueryCanceled,
            psycopg2.errors.LockNotAvailable):
        raise
    except psycopg2.Error as err:
        cur.execute("ROLLBACK TO SAVEPOINT dbkit_attempt")
        return first_line(err)
    cur.execute("RELEASE SAVEPOINT dbkit_attempt")
    return None


# -- schemas and tables -------------------------------------------------------------------------
def _compare_schemas(registry: Registry, live: _Live) -> list[Difference]:
    return [Difference("schema", name, MISSING, None, None)
            for name in registry.schemas if name not in live.schemas]


def _compare_tables(registry: Registry, live: _Live) -> list[Difference]:
    # Extra tables come from Alembic's comparison (which honours the app's include_object);
    # here only the tables the app keeps outside its models must exist.
    found = []
    for name in registry.migration_only_tables:
        rel = live.relations.get(name)
        if rel is None:
            found.append(Difference("table", name, MISSING, None, "a migration-only table"))
        elif rel.kind not in ("r", "p"):
            found.append(Difference("table", name, CHANGED, f"a {_KINDS[rel.kind]}", "a table"))
    return found


# -- views and materialized views ---------------------------------------------------------------
def _compare_views(
    cur: psycopg2.extensions.cursor, registry: Registry, live: _Live
) -> list[Difference]:
    declared = {name: ("view", body) for name, body in registry.views.items()}
    declared.update(
        {name: ("materialized view", body) for name, body in registry.materialized_views.items()}
    )
    found: list[Difference] = []
    temp: dict[str, str] = {}  # throwaway name -> declared name
    rejected: dict[str, str] = {}
    for i, (name, (kind, body)) in enumerate(declared.items()):
        rel = live.relations.get(name)
        if rel is None:
            found.append(Difference(kind, name, MISSING, None, None))
        elif _KINDS[rel.kind] != kind:
            found.append(Difference(kind, name, CHANGED, f"a {_KINDS[rel.kind]}", f"a {kind}"))
        else:
            body = _WITH_DATA.sub("", body.strip().rstrip(";").rstrip())
            error = _attempt(cur, f"CREATE TEMP VIEW dbkit_v{i} AS {body}")
            if error:
                rejected[name] = error
            else:
                temp[f"dbkit_v{i}"] = name
    cur.execute(
        "SELECT c.relname, pg_get_viewdef(c.oid) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE "
        + _TEMP.format(col="c.relname", prefix="v")
    )
    rendered = {temp[relname]: viewdef.strip() for relname, viewdef in cur.fetchall()
                if relname in temp}
    for name, (kind, _) in declared.items():
        rel = live.relations.get(name)
        if name in rejected:
            found.append(Difference(kind, name, CHANGED, rel.viewdef if rel else None,
                                    f"{_REJECTED} ({rejected[name]})"))
        elif name in rendered and rendered[name] != (rel.viewdef if rel else None):
            found.append(Difference(kind, name, CHANGED, rel.viewdef if rel else None,
                                    rendered[name]))
    for name, rel in live.relations.items():
        if rel.kind in ("v", "m") and name not in declared:
            found.append(Difference(_KINDS[rel.kind], name, EXTRA, rel.viewdef, None))
    return found


# -- functions ----------------------------------------------------------------------------------
def _function_attributes(row: tuple[Any, ...]) -> dict[str, str]:
    (_, _, arguments, result, language, kind, volatility, strict, definer, parallel,
     leakproof, config, body) = row
    return {
        "arguments": f"({arguments})",
        "returns": result or ("nothing (procedure)" if kind == "p" else ""),
        "language": language,
        "volatility": _VOLATILITY.get(volatility, volatility),
        "null input": "STRICT" if strict else "CALLED ON NULL INPUT",
        "security": "SECURITY DEFINER" if definer else "SECURITY INVOKER",
        "parallel": _PARALLEL.get(parallel, parallel),
        "leakproof": "LEAKPROOF" if leakproof else "NOT LEAKPROOF",
        "settings": config or "none",
        # Whitespace in a body does not change what it does; anything else does.
        "body": " ".join((body or "").split()),
    }


def _compare_functions(
    cur: psycopg2.extensions.cursor, registry: Registry, live: _Live
) -> list[Difference]:
    found: list[Difference] = []
    temp: dict[str, str] = {}
    rejected: dict[str, str] = {}
    for i, (name, text) in enumerate(registry.functions.items()):
        if name not in live.functions:
            found.append(Difference("function", name, MISSING, None, None))
            continue
        statement, count = _FUNCTION_HEAD.subn(rf"\g<1>pg_temp.dbkit_f{i}\g<3>", text, count=1)
        error = (_attempt(cur, statement) if count
                 else "not a CREATE FUNCTION statement")
        if error:
            rejected[name] = error
        else:
            temp[f"pg_temp.dbkit_f{i}"] = name
    cur.execute(_functions(_TEMP.format(col="p.proname", prefix="f")))
    rendered: dict[str, tuple[str, dict[str, str]]] = {}
    for row in cur.fetchall():
        short = "pg_temp." + row[0].split(".", 1)[1]
        if short in temp:
            rendered[temp[short]] = (row[1], _function_attributes(row))
    matched: set[tuple[str, str]] = set()
    for name in registry.functions:
        overloads = live.functions.get(name)
        if overloads is None:
            continue
        have = "; ".join(f"{name}({args})" for args in overloads)
        if name in rejected:
            found.append(Difference("function", name, CHANGED, have,
                                    f"{_REJECTED} ({rejected[name]})"))
            matched.update((name, args) for args in overloads)
            continue
        if name not in rendered:  # created, yet not as a function we can find
            found.append(Difference("function", name, CHANGED, have, _REJECTED))
            continue
        args, want = rendered[name]
        if args not in overloads:
            found.append(Difference("function", name, CHANGED, have, f"{name}({args})"))
            matched.update((name, a) for a in overloads)
            continue
        matched.add((name, args))
        got = overloads[args]
        differing = [key for key in want if want[key] != got[key]]
        if differing:
            found.append(Difference(
                "function", f"{name}({args})", CHANGED,
                "; ".join(f"{key} {got[key]}" for key in differing),
                "; ".join(f"{key} {want[key]}" for key in differing),
            ))
    for name, overloads in live.functions.items():
        for args, attrs in overloads.items():
            if (name, args) not in matched:
                found.append(Difference("function", f"{name}({args})", EXTRA,
                                        f"a function returning {attrs['returns']}", None))
    return found


# -- triggers -----------------------------------------------------------------------------------
def _compare_triggers(
    cur: psycopg2.extensions.cursor, registry: Registry, live: _Live
) -> list[Difference]:
    found: list[Difference] = []
    temp: dict[str, tuple[str, str]] = {}  # throwaway table -> (declared name, live table)
    rejected: dict[str, str] = {}
    for i, (name, text) in enumerate(registry.triggers.items()):
        table_name = name.rsplit(".", 1)[0]
        table = live.relations.get(table_name)
        if name not in live.triggers or table is None:
            what = None if table is not None else f"no table {table_name}"
            found.append(Difference("trigger", name, MISSING, what, None))
            continue
        # A copy of the table's columns to hang the declared trigger on; a view for
        # INSTEAD OF triggers, which only views may have.
        copy = (f"CREATE TEMP VIEW dbkit_t{i} AS SELECT * FROM {table.quoted}"
                if table.kind == "v" else f"CREATE TEMP TABLE dbkit_t{i} (LIKE {table.quoted})")
        statement, count = _TRIGGER_ON.subn(rf"\g<1>pg_temp.dbkit_t{i}", text, count=1)
        error = _attempt(cur, copy) or (
            _attempt(cur, statement) if count else "not a CREATE TRIGGER statement"
        )
        if error:
            rejected[name] = error
        else:
            temp[f"dbkit_t{i}"] = (name, table.quoted)
    cur.execute(
        "SELECT c.relname, pg_get_triggerdef(t.oid) FROM pg_trigger t "
        "JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE NOT t.tgisinternal AND " + _TEMP.format(col="c.relname", prefix="t")
    )
    rendered: dict[str, str] = {}
    for relname, definition in cur.fetchall():
        if relname in temp:
            name, quoted = temp[relname]
            # Put the live table's name where the throwaway copy's is (pg_temp or pg_temp_N).
            rendered[name] = re.sub(
                rf"\bON pg_temp(?:_\d+)?\.{relname}\b", lambda _m, q=quoted: f"ON {q}",
                definition, count=1,
            )
    for name in registry.triggers:
        have = live.triggers.get(name)
        if name in rejected:
            found.append(Difference("trigger", name, CHANGED, have,
                                    f"{_REJECTED} ({rejected[name]})"))
        elif name in rendered and rendered[name] != have:
            found.append(Difference("trigger", name, CHANGED, have, rendered[name]))
    for name, definition in live.triggers.items():
        if name not in registry.triggers:
            found.append(Difference("trigger", name, EXTRA, definition, None))
    return found
