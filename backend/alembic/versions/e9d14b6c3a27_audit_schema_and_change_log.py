"""audit schema and change log

Curation decisions must be traceable for the publication. Audit data lives in
its own schema so application roles can be denied write access to it.

Revision ID: e9d14b6c3a27
Revises: 7f3b9d1e5a60
Create Date: 2024-09-18 16:44:21.381906

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "e9d14b6c3a27"
down_revision: str | Sequence[str] | None = "7f3b9d1e5a60"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LOG_CHANGE = """
CREATE OR REPLACE FUNCTION audit.log_change()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO audit.change_log (table_name, record_id, operation, old_data)
        VALUES (TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, OLD.id::text, TG_OP, to_jsonb(OLD));
        RETURN OLD;
    END IF;

    INSERT INTO audit.change_log (table_name, record_id, operation, old_data, new_data)
    VALUES (TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME,
            NEW.id::text,
            TG_OP,
            CASE WHEN TG_OP = 'UPDATE' THEN to_jsonb(OLD) END,
            to_jsonb(NEW));
    RETURN NEW;
END;
$$
"""


def upgrade() -> None:
    op.execute("CREATE SCHEMA IF NOT EXISTS audit")

    op.create_table(
        "change_log",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("table_name", sa.Text(), nullable=False),
        sa.Column("record_id", sa.Text(), nullable=False),
        sa.Column("operation", sa.String(length=10), nullable=False),
        sa.Column("old_data", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("new_data", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "changed_by",
            sa.Text(),
            server_default=sa.text("CURRENT_USER"),
            nullable=False,
            comment="Database role that made the change",
        ),
        sa.Column(
            "changed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "operation IN ('INSERT', 'UPDATE', 'DELETE')",
            name=op.f("ck_change_log_operation"),
        ),
        sa.PrimaryKeyConstraint("id", name="pk_change_log"),
        schema="audit",
        comment="Row-level change history written by audit.log_change()",
    )
    op.create_index(
        "ix_change_log_table_name_record_id",
        "change_log",
        ["table_name", "record_id"],
        schema="audit",
    )

    op.execute(LOG_CHANGE)
    op.execute(
        "CREATE TRIGGER trg_gene_curations_audit "
        "AFTER INSERT OR UPDATE OR DELETE ON public.gene_curations "
        "FOR EACH ROW EXECUTE FUNCTION audit.log_change()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER trg_gene_curations_audit ON public.gene_curations")
    op.execute("DROP FUNCTION audit.log_change()")
    op.drop_index("ix_change_log_table_name_record_id", table_name="change_log", schema="audit")
    op.drop_table("change_log", schema="audit")
    # Not CASCADE: if anything else ended up in the schema we want to know.
    op.execute("DROP SCHEMA audit")
