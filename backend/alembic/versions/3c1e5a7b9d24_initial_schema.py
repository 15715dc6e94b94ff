"""initial schema

Revision ID: 3c1e5a7b9d24
Revises:
Create Date: 2024-01-15 10:42:18.204117

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "3c1e5a7b9d24"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Shared by every table with an updated_at column; the ORM's onupdate only
# covers writes that go through the ORM, the pipeline uses raw COPY/UPDATEs.
SET_UPDATED_AT = """
CREATE OR REPLACE FUNCTION public.set_updated_at()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$
"""

UPDATED_AT_TABLES = ("genes", "gene_evidence", "gene_curations")


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
    ]


def upgrade() -> None:
    op.create_table(
        "genes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("symbol", sa.String(length=50), nullable=False),
        sa.Column(
            "hgnc_id",
            sa.String(length=20),
            nullable=True,
            comment="HGNC identifier including the prefix, e.g. HGNC:9008",
        ),
        sa.Column(
            "aliases",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'::text[]"),
            nullable=False,
        ),
        sa.Column("location", sa.String(length=50), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_genes"),
        sa.UniqueConstraint("hgnc_id", name="uq_genes_hgnc_id"),
        comment="Genes evaluated for an association with kidney disease",
    )

    op.create_table(
        "gene_evidence",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("gene_id", sa.Integer(), nullable=False),
        sa.Column("source_name", sa.String(length=100), nullable=False),
        sa.Column(
            "source_detail",
            sa.String(length=255),
            server_default="",
            nullable=False,
        ),
        sa.Column(
            "evidence_data",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
            comment="Source payload as delivered by the ingestion pipeline",
        ),
        # Sources hand us free-form dates ("2023", "2023-04-01", ""), so we
        # keep the raw string for now.
        sa.Column("evidence_date", sa.String(length=32), nullable=True),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["gene_id"],
            ["genes.id"],
            name="fk_gene_evidence_gene_id_genes",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_gene_evidence"),
        sa.UniqueConstraint(
            "gene_id",
            "source_name",
            "source_detail",
            name="uq_gene_evidence_gene_id_source_name_source_detail",
        ),
        comment="One row per gene and evidence source",
    )

    op.create_table(
        "gene_curations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("gene_id", sa.Integer(), nullable=False),
        sa.Column("evidence_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("source_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("evidence_score", sa.Float(), nullable=True),
        sa.Column("classification", sa.String(length=50), nullable=True),
        sa.Column(
            "source_scores",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        *_timestamps(),
        # op.f(): the name is final. Without it the "ck" naming convention of
        # the models' metadata (which alembic applies to migration ops too)
        # would prefix it a second time.
        sa.CheckConstraint(
            "evidence_score IS NULL OR evidence_score BETWEEN 0 AND 100",
            name=op.f("ck_gene_curations_evidence_score_range"),
        ),
        sa.ForeignKeyConstraint(
            ["gene_id"],
            ["genes.id"],
            name="fk_gene_curations_gene_id_genes",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_gene_curations"),
        sa.UniqueConstraint("gene_id", name="uq_gene_curations_gene_id"),
        comment="Aggregated curation state per gene",
    )

    op.execute(SET_UPDATED_AT)
    for table in UPDATED_AT_TABLES:
        op.execute(
            f"CREATE TRIGGER trg_{table}_updated_at BEFORE UPDATE ON public.{table} "
            "FOR EACH ROW EXECUTE FUNCTION set_updated_at()"
        )


def downgrade() -> None:
    # Dropping the tables takes their triggers with them.
    op.drop_table("gene_curations")
    op.drop_table("gene_evidence")
    op.drop_table("genes")
    op.execute("DROP FUNCTION IF EXISTS public.set_updated_at()")
