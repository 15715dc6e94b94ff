"""Alembic's autogenerate differences as plain data: what the database has, what the models say.

Runs inside the Alembic child (``dbkit.alembic_child``), where the diff tuples of
``compare_metadata`` still hold live SQLAlchemy objects; only strings leave the process.
Each record keeps ``op``, ``object`` and ``detail`` and adds ``kind`` (table, column, index,
...), ``db`` and ``app`` (what each side has, in SQL words; None when a side has nothing).
Object names are always schema-qualified (``public.genes.symbol``).

``model_differences`` is the one comparison both ``validate`` and the squash use;
``validation_facts`` gathers everything else ``validate`` asks of the project, in the child.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Computed, Enum, Identity, Index, MetaData, create_engine, inspect
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool
from sqlalchemy.schema import ForeignKeyConstraint, UniqueConstraint

from dbkit.validate import declared
from dbkit.validate.drift import table_size

_CONSTRAINT_OPS = ("add_index", "remove_index", "add_constraint", "remove_constraint",
                   "add_fk", "remove_fk")


def model_differences(context: Any, metadata: MetaData | list[MetaData]) -> list[dict[str, Any]]:
    """Everything that differs between the models and the database ``context`` is bound to.

    Alembic's own comparison (so the project's ``include_object``, ``compare_type`` and the
    like apply) plus the enum labels, which Alembic does not compare.
    """
    dialect = context.dialect
    metadatas = list(metadata) if isinstance(metadata, (list, tuple)) else [metadata]
    records = [record for d in compare_metadata(context, metadata)
               for record in describe(d, dialect)]
    return records + enum_records(metadatas, context.connection, dialect.default_schema_name)


def describe(diff: Any, dialect: Dialect | None = None) -> list[dict[str, str | None]]:
    """One autogenerate difference (a tuple, or a list of column changes) as records.

    Names without a schema get the connection's default schema (``dialect``'s).
    """
    default_schema = dialect.default_schema_name if dialect is not None else None
    if isinstance(diff, list):  # the changes to one column come as a list of tuples
        return [_one(d, dialect, default_schema) for d in diff]
    return [_one(diff, dialect, default_schema)]


def enum_records(
    metadatas: list[MetaData], conn: Connection, default_schema: str | None
) -> list[dict[str, str | None]]:
    """The models' native enum types against the database's: missing, or other labels.

    Alembic's comparison does not look at enum labels, yet "the migration added a value the
    model lacks" (or the reverse) is a classic drift.
    """
    wanted: dict[tuple[str | None, str], list[str]] = {}
    for metadata in metadatas:
        for table in metadata.tables.values():
            for column in table.columns:
                type_ = column.type
                if isinstance(type_, Enum) and type_.native_enum and type_.name:
                    wanted[(type_.schema or default_schema, type_.name)] = list(type_.enums)
    if not wanted:
        return []
    have = {(e["schema"], e["name"]): list(e["labels"])
            for e in inspect(conn).get_enums(schema="*")}
    records: list[dict[str, str | None]] = []
    for (schema, name), labels in sorted(wanted.items(), key=lambda kv: (kv[0][0] or "", kv[0][1])):
        found = have.get((schema, name))
        if found == labels:
            continue
        records.append({
            "op": "modify_enum" if found is not None else "add_type",
            "object": _table(schema, name), "detail": None, "kind": "type",
            "db": _enum(found) if found is not None else None, "app": _enum(labels),
        })
    return records


# -- what validate asks of the project ----------------------------------------------------------
RunEnv = Callable[[Config, Callable[[Any], Any]], Any]


def validation_facts(
    cfg: Config, script: ScriptDirectory, url: str, registry: str, run_env: RunEnv
) -> dict[str, Any]:
    """Everything ``dbkit validate`` needs from the project, in one process and one session.

    The chain (heads, revision graph), the database's revision, the models compared with the
    database (``model_differences`` through the project's env.py, run by ``run_env``) and
    the objects registry (none asked for when ``registry`` is empty). The session is
    read-only, so no hook of the project can write. A failure comes back as data, with the
    stage it happened in: ``app`` (env.py or the models do not import), ``database`` (a
    query failed: no connection, no privilege), ``compare``, ``registry`` (does not import)
    or ``registry shape`` (imports, but is not a registry).
    """
    project = Path(cfg.config_file_name).resolve().parent
    facts: dict[str, Any] = {
        "heads": list(script.get_heads()),
        "graph": {s.revision: _down_revisions(s.down_revision) for s in script.walk_revisions()},
        # What a build of the chain depends on: its versions directories and env.py.
        "chain_files": [str(Path(p)) for p in script._version_locations]
        + [str(Path(script.dir) / "env.py")],
    }
    stage = ["database"]

    def inspect_db(ctx: Any) -> None:
        stage[0] = "compare"
        default_schema = ctx.dialect.default_schema_name
        facts["has_version_table"] = inspect(ctx.connection).has_table(
            ctx.version_table, schema=ctx.version_table_schema
        )
        facts["version_table"] = _table(ctx.version_table_schema or default_schema,
                                        ctx.version_table)
        facts["current"] = list(ctx.get_current_heads())
        metadata = ctx.opts.get("target_metadata")
        metadatas = metadata if isinstance(metadata, (list, tuple)) else [metadata]
        tables = [t for m in metadatas if m is not None for t in m.tables.values()]
        facts["default_schema"] = default_schema
        facts["model_tables"] = len(tables)
        facts["model_schemas"] = sorted({t.schema or default_schema for t in tables})
        facts["diff"] = None if metadata is None else model_differences(ctx, metadata)

    engine = create_engine(
        url, poolclass=NullPool,
        connect_args={"options": "-c default_transaction_read_only=on"},
    )
    try:
        with engine.connect() as conn:
            # From here until inspect_db runs, env.py imports the app and configures Alembic.
            stage[0] = "app"
            cfg.attributes["connection"] = conn
            run_env(cfg, inspect_db)
            conn.rollback()
        if "current" not in facts:
            raise RuntimeError("env.py never called context.run_migrations() online")
        stage[0] = "registry"
        facts["registry"] = declared.load_registry(registry, str(project)) if registry else None
    except Exception as err:  # noqa: BLE001 - the parent says what failed, in one line
        facts["failure"] = failure(err, stage[0], project)
    finally:
        engine.dispose()
    return facts


def failure(err: BaseException, stage: str, project: Path) -> dict[str, str | None]:
    """A failure as the parent reports it: stage, one line, where in the project, traceback.

    A query the database refused is a database error whatever was running (Alembic reading
    alembic_version, or env.py itself); the location is then of no use.
    """
    where = None
    if isinstance(err, DBAPIError):
        stage = "database"
        cause: BaseException = err.orig if err.orig is not None else err
        error = _one_line(type(cause).__name__, str(cause))
    elif isinstance(err, declared.RegistryError):
        stage, error = "registry shape", str(err)
    elif isinstance(err, SyntaxError):
        # The file that does not compile never ran: it is in no frame, only in the error.
        error = _one_line(type(err).__name__, str(err.msg))
        if err.filename and not err.filename.startswith("<"):
            where = _place(err.filename, err.lineno, project)
    else:
        error = _one_line(type(err).__name__, str(err))
    if where is None and stage != "database":
        # The deepest line of the project's own code: where the developer has to look.
        # Frames named <frozen ...> or <string> are Python's, not files of the project.
        frames = [f for f in traceback.extract_tb(err.__traceback__)
                  if not f.filename.startswith("<")
                  and Path(f.filename).resolve().is_relative_to(project)]
        if frames:
            where = _place(frames[-1].filename, frames[-1].lineno, project)
    return {"stage": stage, "error": error, "where": where,
            "traceback": "".join(traceback.format_exception(err))}


def _one_line(kind: str, text: str) -> str:
    text = text.strip()
    return f"{kind}: {text.splitlines()[0] if text else ''}".rstrip(": ")


def _place(filename: str, lineno: int | None, project: Path) -> str:
    path = Path(filename).resolve()
    shown = path.relative_to(project) if path.is_relative_to(project) else path
    return f"{shown}, line {lineno}" if lineno else str(shown)


def _down_revisions(value: str | tuple[str, ...] | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _enum(labels: list[str]) -> str:
    return "ENUM (" + ", ".join("'" + label.replace("'", "''") + "'" for label in labels) + ")"


def _one(
    diff: tuple[Any, ...], dialect: Dialect | None, default_schema: str | None
) -> dict[str, str | None]:
    op = diff[0]

    def qualified(schema: str | None, name: str) -> str:
        return _table(schema or default_schema, name)

    out: dict[str, str | None] = {"op": op, "object": "", "detail": None, "kind": "other",
                                  "db": None, "app": None}
    adding = op.startswith("add_")
    if op in ("add_table", "remove_table"):
        out.update(kind="table", object=qualified(diff[1].schema, diff[1].name))
        out["app" if adding else "db"] = table_size(len(diff[1].columns))
    elif op in ("add_table_comment", "remove_table_comment"):
        table = diff[1]
        # Alembic keeps the text of a comment it would drop only in the operation, not in
        # the diff tuple: "a comment" is all we can say.
        out.update(kind="table", object=qualified(table.schema, table.name),
                   db=_comment(diff[2]) if adding else "a comment",
                   app=_comment(table.comment) if adding else "no comment")
    elif op in ("add_column", "remove_column"):
        column = diff[3]
        out.update(kind="column", object=f"{qualified(diff[1], diff[2])}.{column.name}",
                   detail=_type(column.type, dialect))
        out["app" if adding else "db"] = _column(column, dialect)
    elif op.startswith("modify_"):
        out.update(kind="column", object=f"{qualified(diff[1], diff[2])}.{diff[3]}",
                   detail=f"{diff[-2]!r} -> {diff[-1]!r}")
        show = {
            "modify_type": lambda v: _type(v, dialect),
            "modify_nullable": lambda v: "NULL" if v else "NOT NULL",
            "modify_default": lambda v: _default(v, dialect) or "no default",
            "modify_comment": _comment,
        }.get(op, repr)
        out.update(db=show(diff[-2]), app=show(diff[-1]))
    elif op in _CONSTRAINT_OPS:
        obj = diff[1]
        table = getattr(obj, "table", None)
        cols = [str(c.name) for c in getattr(obj, "columns", ())]
        name = obj.name or f"({', '.join(cols)})"
        owner = f"{qualified(table.schema, table.name)}." if table is not None else ""
        out.update(object=f"{owner}{name}", detail=", ".join(cols) or None)
        if isinstance(obj, Index):
            out.update(kind="index")
            text = _index(obj, dialect)
        elif isinstance(obj, ForeignKeyConstraint):
            out.update(kind="foreign key")
            text = _foreign_key(obj)
        elif isinstance(obj, UniqueConstraint):
            out.update(kind="unique constraint")
            text = f"UNIQUE ({', '.join(cols)})"
        else:
            out.update(kind="constraint")
            text = f"{type(obj).__name__} ({', '.join(cols)})"
        out["app" if adding else "db"] = text
    else:
        out["detail"] = repr(diff[1:])
        out["app"] = repr(diff[1:])
    return out


def _table(schema: str | None, name: str) -> str:
    """``schema.name``; a bare name only where no schema is known (not PostgreSQL)."""
    return f"{schema}.{name}" if schema else name


def _sql(clause: Any, dialect: Dialect | None) -> str:
    if isinstance(clause, str):
        return clause
    text = getattr(clause, "text", None)  # text() clauses: their SQL as written
    if isinstance(text, str):
        return text
    try:
        return str(clause.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    except Exception:  # noqa: BLE001 - an odd construct still deserves a readable line
        return str(clause)


def _type(type_: Any, dialect: Dialect | None) -> str:
    try:
        return str(type_.compile(dialect=dialect))
    except Exception:  # noqa: BLE001 - a type this dialect cannot render: say what it is
        return repr(type_)


def _comment(text: str | None) -> str:
    return f"comment {text!r}" if text else "no comment"


def _default(value: Any, dialect: Dialect | None) -> str | None:
    """A server default as SQL: DEFAULT ..., an identity, or a generated expression."""
    if value is None:
        return None
    if isinstance(value, Identity):
        return f"GENERATED {'ALWAYS' if value.always else 'BY DEFAULT'} AS IDENTITY"
    if isinstance(value, Computed):
        return f"GENERATED ALWAYS AS ({_sql(value.sqltext, dialect)})"
    arg = getattr(value, "arg", value)
    if isinstance(arg, str):
        # A plain string server_default is a literal: that is how it reaches the table.
        return "DEFAULT '" + arg.replace("'", "''") + "'"
    return f"DEFAULT {_sql(arg, dialect)}"


def _column(column: Column[Any], dialect: Dialect | None) -> str:
    parts = [_type(column.type, dialect)]
    if not column.nullable:
        parts.append("NOT NULL")
    default = _default(column.server_default, dialect)
    if default:
        parts.append(default)
    return " ".join(parts)


def _index(index: Index, dialect: Dialect | None) -> str:
    ops = index.dialect_kwargs.get("postgresql_ops") or {}
    exprs = []
    for e in index.expressions:
        name = e.name if isinstance(e, Column) else _sql(e, dialect)
        exprs.append(f"{name} {ops[name]}" if name in ops else name)
    text = f"{'UNIQUE ' if index.unique else ''}INDEX ({', '.join(exprs)})"
    using = index.dialect_kwargs.get("postgresql_using")
    if using:
        text += f" USING {using}"
    where = index.dialect_kwargs.get("postgresql_where")
    if where is not None:
        text += f" WHERE {_sql(where, dialect)}"
    return text


def _foreign_key(fk: ForeignKeyConstraint) -> str:
    targets = [e.target_fullname for e in fk.elements]
    referred = targets[0].rsplit(".", 1)[0] if targets else "?"
    text = (f"FOREIGN KEY ({', '.join(fk.column_keys)}) REFERENCES {referred} "
            f"({', '.join(t.rsplit('.', 1)[-1] for t in targets)})")
    for clause, value in (("ON DELETE", fk.ondelete), ("ON UPDATE", fk.onupdate)):
        if value and value.upper() != "NO ACTION":
            text += f" {clause} {value.upper()}"
    if fk.deferrable:
        text += " DEFERRABLE"
    if fk.initially:
        text += f" INITIALLY {fk.initially.upper()}"
    return text
