"""A generated Alembic project of N tables with 20 % views, the same for the same N.

N tables (5 columns each, primary key, index, foreign key to the previous table, server
default) declared as SQLAlchemy models, N/5 views joining two tables, N/50 functions and
N/50 triggers, all declared in the app's registry (``app.db.objects``), created by one
revision. Used by ``bench_validate`` (validate against the models and the registry) and
``bench_squash`` (a big schema squashed).
"""

from __future__ import annotations

from pathlib import Path

ALEMBIC_INI = """[alembic]
script_location = %(here)s
prepend_sys_path = %(here)s
path_separator = os
sqlalchemy.url =
"""

ENV_PY = '''
from alembic import context
from app.db.objects import include_object
from app.models import metadata

context.configure(
    connection=context.config.attributes["connection"], target_metadata=metadata,
    compare_type=True, compare_server_default=True, include_object=include_object,
)
with context.begin_transaction():
    context.run_migrations()
'''

MODELS_PY = '''
from sqlalchemy import (Column, DateTime, ForeignKey, Integer, MetaData, Numeric, String,
                        Table, func)

N = {tables}
metadata = MetaData(naming_convention={{
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
}})
for i in range(N):
    columns = [
        Column("id", Integer, primary_key=True),
        Column("name", String(50), nullable=False, index=True),
        Column("score", Numeric(10, 2)),
        Column("created_at", DateTime(timezone=True), nullable=False,
               server_default=func.now()),
    ]
    if i:
        columns.append(Column("parent_id", ForeignKey(f"t{{i - 1:04d}}.id", ondelete="CASCADE")))
    Table(f"t{{i:04d}}", metadata, *columns)
'''

OBJECTS_PY = '''
N, V, F = {tables}, {views}, {functions}
SCHEMAS = ("public",)
VIEWS = {{
    f"public.v{{j:04d}}": f"""
        SELECT a.id, a.name, b.score, count(*) OVER (PARTITION BY a.name) AS same_name
        FROM t{{j:04d}} a JOIN t{{j + 1:04d}} b ON b.parent_id = a.id
        WHERE a.score > {{j}}
    """
    for j in range(V)
}}
MATERIALIZED_VIEWS = {{}}
FUNCTIONS = {{
    f"public.touch_{{k}}": f"""
CREATE OR REPLACE FUNCTION public.touch_{{k}}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.created_at := now() - interval '{{k}} seconds';
    RETURN NEW;
END;
$$"""
    for k in range(F)
}}
TRIGGERS = {{
    f"public.t{{k:04d}}.trg_touch_{{k}}": (
        f"CREATE TRIGGER trg_touch_{{k}} BEFORE UPDATE ON public.t{{k:04d}} "
        f"FOR EACH ROW EXECUTE FUNCTION touch_{{k}}()"
    )
    for k in range(F)
}}
MIGRATION_ONLY_TABLES = ()
_HIDDEN = set(VIEWS)


def include_object(obj, name, type_, reflected, compare_to):
    return not (type_ == "table" and f"public.{{name}}" in _HIDDEN)
'''

REVISION_PY = '''
from alembic import op

from app.db import objects
from app.models import metadata

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    metadata.create_all(op.get_bind())
    for name, body in objects.VIEWS.items():
        op.execute(f"CREATE VIEW {{name}} AS {{body}}")
    for sql in [*objects.FUNCTIONS.values(), *objects.TRIGGERS.values()]:
        op.execute(sql)


def downgrade():
    pass
'''


def write_project(root: Path, tables: int) -> dict[str, int]:
    """A generated Alembic project with ``tables`` tables and what goes with them."""
    counts = {"tables": tables, "views": tables // 5, "functions": max(1, tables // 50)}
    fmt = {"tables": tables, "views": counts["views"], "functions": counts["functions"]}
    (root / "versions").mkdir(parents=True)
    (root / "app" / "db").mkdir(parents=True)
    (root / "alembic.ini").write_text(ALEMBIC_INI)
    (root / "env.py").write_text(ENV_PY)
    (root / "app" / "__init__.py").write_text("")
    (root / "app" / "db" / "__init__.py").write_text("")
    (root / "app" / "models.py").write_text(MODELS_PY.format(**fmt))
    (root / "app" / "db" / "objects.py").write_text(OBJECTS_PY.format(**fmt))
    (root / "versions" / "0001_all.py").write_text(REVISION_PY.format())
    return counts
