"""percentiles use cume_dist

percent_rank() gives the lowest-count genes of a source 0 even when most
genes tie at that count, which hid single-panel genes entirely. cume_dist()
scores ties by their share of the source instead. Same columns and types, so
CREATE OR REPLACE works in place under the dependent views and the snapshot.

Scores shift upwards with cume_dist, so the tier thresholds are raised in the
same step to keep tier sizes roughly where curators expect them.

Revision ID: 0a9d4c2e8f61
Revises: c5f1e7a3b9d8
Create Date: 2025-10-13 14:30:52.917046

"""
from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0a9d4c2e8f61"
down_revision: str | Sequence[str] | None = "c5f1e7a3b9d8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PERCENTILES = """
CREATE OR REPLACE VIEW evidence_count_percentiles AS
SELECT esc.gene_id,
       esc.symbol,
       esc.source_name,
       esc.source_count,
       {fn}() OVER (
           PARTITION BY esc.source_name ORDER BY esc.source_count
       ) AS percentile_score
FROM evidence_source_counts esc
"""

# tier_name -> (old min_score, new min_score)
TIER_THRESHOLDS = {
    "definitive": (80, 85),
    "strong": (60, 70),
    "moderate": (40, 50),
    "limited": (20, 25),
}


def upgrade() -> None:
    op.execute(PERCENTILES.format(fn="cume_dist"))
    for tier, (_, new) in TIER_THRESHOLDS.items():
        op.execute(f"UPDATE evidence_tiers SET min_score = {new} WHERE tier_name = '{tier}'")


def downgrade() -> None:
    for tier, (old, _) in TIER_THRESHOLDS.items():
        op.execute(f"UPDATE evidence_tiers SET min_score = {old} WHERE tier_name = '{tier}'")
    op.execute(PERCENTILES.format(fn="percent_rank"))
