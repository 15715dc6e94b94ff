"""gene normalization log

The symbol normalization job is a set of SQL statements run by the pipeline,
and it is the only reader and writer of this table, so there is deliberately
no ORM model for it (env.py keeps autogenerate away from it).

Revision ID: c5f1e7a3b9d8
Revises: 7e0b5d3f1a86
Create Date: 2025-08-26 11:46:31.052279

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "c5f1e7a3b9d8"
down_revision: str | Sequence[str] | None = "7e0b5d3f1a86"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gene_normalization_log",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("static_gene_id", sa.Integer(), nullable=True),
        sa.Column("input_symbol", sa.String(length=100), nullable=False),
        sa.Column("resolved_gene_id", sa.Integer(), nullable=True),
        sa.Column("method", sa.String(length=30), nullable=False),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "logged_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "method IN ('exact', 'alias', 'previous_symbol', 'manual', 'unresolved')",
            name=op.f("ck_gene_normalization_log_method"),
        ),
        sa.ForeignKeyConstraint(
            ["static_gene_id"],
            ["static_content_genes.id"],
            name="fk_gene_normalization_log_static_gene_id_static_content_genes",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["resolved_gene_id"],
            ["genes.id"],
            name="fk_gene_normalization_log_resolved_gene_id_genes",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_gene_normalization_log"),
        comment="Symbol resolution decisions of the normalization job (no ORM model)",
    )
    op.create_index(
        "ix_gene_normalization_log_input_symbol_upper",
        "gene_normalization_log",
        [sa.text("upper(input_symbol)")],
    )
    op.create_index(
        "ix_gene_normalization_log_logged_at", "gene_normalization_log", ["logged_at"]
    )


def downgrade() -> None:
    op.drop_table("gene_normalization_log")
