"""Alembic's autogenerate differences as plain data: what the database has, what the models say.

Runs inside the Alembic child (``dbkit.alembic_child``), where the diff tuples of
``compare_metadata`` still hold live SQLAlchemy objects; only strings leave the process.
Each record keeps ``op``, ``object`` and ``detail`` and adds ``kind`` (table, column, index,
...), ``db`` and ``app`` (what each side has, in SQL words; None when a side has nothing).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Computed, Enum, Identity, Index, MetaData, inspect
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.schema import ForeignKeyConstraint, UniqueConstraint

_CONSTRAINT_OPS = ("add_index", "remove_index", "add_constraint", "remove_constraint",
                   "add_fk", "remove_fk")


def describe(diff: Any, dialect: Dialect | None = None) -> list[dict[str, str | None]]:
    """One autogenerate difference (a tuple, or a list of column changes) as records."""
    if isinstance(diff, list):  # the changes to one column come as a list of tuples
        return [_one(d, dialect) for d in diff]
    return [_one(diff, dialect)]


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
            "object": name if schema == default_schema else f"{schema}.{name}",
            "detail": None, "kind": "type",
            "db": _enum(found) if found is not None else None, "app": _enum(labels),
        })
    return records


def _enum(labels: list[str]) -> str:
    return "ENUM (" + ", ".join("'" + label.replace("'", "''") + "'" for label in labels) + ")"


def _one(diff: tuple[Any, ...], dialect: Dialect | None) -> dict[str, str | None]:
    op = diff[0]
    out: dict[str, str | None] = {"op": op, "object": "", "detail": None, "kind": "other",
                                  "db": None, "app": None}
    adding = op.startswith("add_")
    if op in ("add_table", "remove_table"):
        out.update(kind="table", object=diff[1].fullname)
        n = len(diff[1].columns)
        out["app" if adding else "db"] = f"a table of {n} column{'' if n == 1 else 's'}"
    elif op in ("add_table_comment", "remove_table_comment"):
        table = diff[1]
        # Alembic keeps the text of a comment it would drop only in the operation, not in
        # the diff tuple: "a comment" is all we can say.
        out.update(kind="table", object=table.fullname,
                   db=_comment(diff[2]) if adding else "a comment",
                   app=_comment(table.comment) if adding else "no comment")
    elif op in ("add_column", "remove_column"):
        column = diff[3]
        out.update(kind="column", object=f"{_table(diff[1], diff[2])}.{column.name}",
                   detail=_type(column.type, dialect))
        out["app" if adding else "db"] = _column(column, dialect)
    elif op.startswith("modify_"):
        out.update(kind="column", object=f"{_table(diff[1], diff[2])}.{diff[3]}",
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
        out.update(object=f"{table.fullname + '.' if table is not None else ''}{name}",
                   detail=", ".join(cols) or None)
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
