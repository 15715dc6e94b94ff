"""rename gene symbol to approved_symbol

"symbol" was ambiguous next to aliases and raw panel symbols; HGNC calls it
the approved symbol. Views that only select the column follow the rename on
their own (PostgreSQL stores them parsed), but gene_scores exposes it under
its column name and is rebuilt so the API sees approved_symbol.

Revision ID: f1a7c3e9b5d2
Revises: 6b2d8f0e3c71
Create Date: 2024-11-04 15:51:29.744082

"""
from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "f1a7c3e9b5d2"
down_revision: str | Sequence[str] | None = "6b2d8f0e3c71"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GENE_SCORES_COMMENT = (
    "COMMENT ON VIEW gene_scores IS "
    "'Per-gene evidence score as served by /api/genes; one row per gene'"
)

GENE_SCORES_OLD = """
CREATE VIEW gene_scores AS
SELECT g.id AS gene_id,
       g.symbol,
       g.hgnc_id,
       COALESCE(eas.source_count, 0) AS source_count,
       COALESCE(eas.percentage_score, 0) AS percentage_score,
       eas.source_scores,
       gc.classification,
       gc.updated_at AS curated_at
FROM genes g
LEFT JOIN evidence_aggregated_scores eas ON eas.gene_id = g.id
LEFT JOIN gene_curations gc ON gc.gene_id = g.id
"""

GENE_SCORES_NEW = """
CREATE VIEW gene_scores AS
SELECT g.id AS gene_id,
       g.approved_symbol,
       g.hgnc_id,
       COALESCE(eas.source_count, 0) AS source_count,
       COALESCE(eas.percentage_score, 0) AS percentage_score,
       eas.source_scores,
       gc.classification,
       gc.updated_at AS curated_at
FROM genes g
LEFT JOIN evidence_aggregated_scores eas ON eas.gene_id = g.id
LEFT JOIN gene_curations gc ON gc.gene_id = g.id
"""

INDEX_RENAMES = [
    ("ix_genes_symbol_trgm", "ix_genes_approved_symbol_trgm"),
    ("uq_genes_symbol_upper", "uq_genes_approved_symbol_upper"),
]


def upgrade() -> None:
    # A view column cannot be renamed by CREATE OR REPLACE.
    op.execute("DROP VIEW gene_scores")
    op.alter_column(
        "genes",
        "symbol",
        new_column_name="approved_symbol",
        comment="Current HGNC approved symbol",
        existing_nullable=False,
    )
    for old, new in INDEX_RENAMES:
        op.execute(f"ALTER INDEX {old} RENAME TO {new}")
    op.execute(GENE_SCORES_NEW)
    op.execute(GENE_SCORES_COMMENT)


def downgrade() -> None:
    op.execute("DROP VIEW gene_scores")
    for old, new in INDEX_RENAMES:
        op.execute(f"ALTER INDEX {new} RENAME TO {old}")
    op.alter_column(
        "genes",
        "approved_symbol",
        new_column_name="symbol",
        comment=None,
        existing_comment="Current HGNC approved symbol",
        existing_nullable=False,
    )
    op.execute(GENE_SCORES_OLD)
    op.execute(GENE_SCORES_COMMENT)
