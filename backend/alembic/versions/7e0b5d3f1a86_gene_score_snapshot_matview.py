"""gene score snapshot matview

The score views take ~4 s on the full gene set, too slow for the gene
browser. Cache them in a materialized view that the pipeline refreshes after
each run. The unique index is what REFRESH ... CONCURRENTLY requires.

Revision ID: 7e0b5d3f1a86
Revises: 3f8a2d6c0e57
Create Date: 2025-07-21 15:22:09.864437

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "7e0b5d3f1a86"
down_revision: str | Sequence[str] | None = "3f8a2d6c0e57"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REFRESH_INTERVAL_KEY = "snapshot.refresh_interval_minutes"

# Kept unindented: PostgreSQL stores function bodies verbatim.
REFRESH_FUNCTION = """
CREATE OR REPLACE FUNCTION public.refresh_gene_score_snapshot()
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    REFRESH MATERIALIZED VIEW CONCURRENTLY public.gene_score_snapshot;
END;
$$
"""


def upgrade() -> None:
    op.execute(
        """
        CREATE MATERIALIZED VIEW gene_score_snapshot AS
        SELECT gs.gene_id,
               gs.approved_symbol,
               gs.hgnc_id,
               gs.source_count,
               gs.percentage_score,
               gs.evidence_tier,
               now() AS refreshed_at
        FROM gene_scores gs
        """
    )
    op.execute(
        "CREATE UNIQUE INDEX uq_gene_score_snapshot_gene_id "
        "ON gene_score_snapshot (gene_id)"
    )
    op.execute(
        "CREATE INDEX ix_gene_score_snapshot_percentage_score "
        "ON gene_score_snapshot (percentage_score DESC)"
    )
    op.execute(
        "COMMENT ON MATERIALIZED VIEW gene_score_snapshot IS "
        "'Cached gene_scores; refresh with refresh_gene_score_snapshot()'"
    )
    op.execute(REFRESH_FUNCTION)

    settings = sa.table(
        "app_settings",
        sa.column("key", sa.String),
        sa.column("value", sa.Text),  # JSON text; see d26f8a4c1e93
        sa.column("description", sa.Text),
    )
    op.bulk_insert(
        settings,
        [
            {
                "key": REFRESH_INTERVAL_KEY,
                "value": "60",
                "description": "Minimum minutes between two snapshot refreshes",
            }
        ],
    )


def downgrade() -> None:
    op.execute(f"DELETE FROM app_settings WHERE key = '{REFRESH_INTERVAL_KEY}'")
    op.execute("DROP FUNCTION public.refresh_gene_score_snapshot()")
    op.execute("DROP MATERIALIZED VIEW gene_score_snapshot")
