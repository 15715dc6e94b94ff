"""evidence tier replaces classification

gene_curations.classification was typed in by hand and drifted from the
scores. The tier is now derived from evidence_tiers in gene_scores and the
column goes away.

Revision ID: 8d4f0a2c6e15
Revises: 2e8c4a6f0b93
Create Date: 2025-02-11 14:03:19.228650

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "8d4f0a2c6e15"
down_revision: str | Sequence[str] | None = "2e8c4a6f0b93"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GENE_SCORES_COMMENT = (
    "COMMENT ON VIEW gene_scores IS "
    "'Per-gene evidence score as served by /api/genes; one row per gene'"
)

GENE_SCORES_WITH_CLASSIFICATION = """
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

GENE_SCORES_WITH_TIER = """
CREATE VIEW gene_scores AS
SELECT g.id AS gene_id,
       g.approved_symbol,
       g.hgnc_id,
       COALESCE(eas.source_count, 0) AS source_count,
       COALESCE(eas.percentage_score, 0) AS percentage_score,
       eas.source_scores,
       tier.tier_name AS evidence_tier,
       gc.updated_at AS curated_at
FROM genes g
LEFT JOIN evidence_aggregated_scores eas ON eas.gene_id = g.id
LEFT JOIN gene_curations gc ON gc.gene_id = g.id
LEFT JOIN LATERAL (
    SELECT et.tier_name
    FROM evidence_tiers et
    WHERE COALESCE(eas.percentage_score, 0) >= et.min_score
    ORDER BY et.min_score DESC
    LIMIT 1
) tier ON true
"""


def upgrade() -> None:
    op.execute("DROP VIEW gene_scores")
    op.drop_column("gene_curations", "classification")
    op.execute(GENE_SCORES_WITH_TIER)
    op.execute(GENE_SCORES_COMMENT)


def downgrade() -> None:
    op.execute("DROP VIEW gene_scores")
    # The hand-entered values are gone for good; the column comes back empty.
    op.add_column(
        "gene_curations",
        sa.Column("classification", sa.String(length=50), nullable=True),
    )
    op.execute(GENE_SCORES_WITH_CLASSIFICATION)
    op.execute(GENE_SCORES_COMMENT)
