"""include static sources in evidence

Static providers now count as evidence sources in their own right. The
source-count view changes shape (UNION with static_evidence_counts), which
CREATE OR REPLACE cannot do, so the whole scoring stack is rebuilt. The
per-gene score view for the API sits on top of it.

Revision ID: 4e7b1f2a9d36
Revises: c83a5e1d0f47
Create Date: 2024-06-24 14:12:07.331902

"""
from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "4e7b1f2a9d36"
down_revision: str | Sequence[str] | None = "c83a5e1d0f47"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PERCENTILES = """
CREATE VIEW evidence_count_percentiles AS
SELECT esc.gene_id,
       esc.symbol,
       esc.source_name,
       esc.source_count,
       percent_rank() OVER (
           PARTITION BY esc.source_name ORDER BY esc.source_count
       ) AS percentile_score
FROM evidence_source_counts esc
"""

SOURCE_COUNTS_OLD = """
CREATE VIEW evidence_source_counts AS
SELECT ge.gene_id,
       g.symbol,
       ge.source_name,
       count(*) AS evidence_rows,
       sum(CASE
               WHEN jsonb_typeof(ge.evidence_data -> 'panels') = 'array'
               THEN jsonb_array_length(ge.evidence_data -> 'panels')
               ELSE 1
           END) AS source_count
FROM gene_evidence ge
JOIN genes g ON g.id = ge.gene_id
GROUP BY ge.gene_id, g.symbol, ge.source_name
"""

AGGREGATED_OLD = """
CREATE VIEW evidence_aggregated_scores AS
SELECT ecp.gene_id,
       ecp.symbol,
       count(DISTINCT ecp.source_name) AS source_count,
       sum(ecp.percentile_score) AS raw_score,
       round((sum(ecp.percentile_score)
              / NULLIF((SELECT count(DISTINCT source_name) FROM gene_evidence), 0)
              * 100)::numeric, 2) AS percentage_score,
       jsonb_object_agg(ecp.source_name,
                        round(ecp.percentile_score::numeric, 3)) AS source_scores
FROM evidence_count_percentiles ecp
GROUP BY ecp.gene_id, ecp.symbol
"""

SOURCE_COUNTS_NEW = """
CREATE VIEW evidence_source_counts AS
SELECT ge.gene_id,
       g.symbol,
       ge.source_name,
       count(*) AS evidence_rows,
       sum(CASE
               WHEN jsonb_typeof(ge.evidence_data -> 'panels') = 'array'
               THEN jsonb_array_length(ge.evidence_data -> 'panels')
               ELSE 1
           END) AS source_count
FROM gene_evidence ge
JOIN genes g ON g.id = ge.gene_id
GROUP BY ge.gene_id, g.symbol, ge.source_name
UNION ALL
SELECT sec.gene_id,
       g.symbol,
       sec.source_name,
       sec.panel_count AS evidence_rows,
       sec.panel_count AS source_count
FROM static_evidence_counts sec
JOIN genes g ON g.id = sec.gene_id
"""

# The denominator is "number of sources that exist", which now includes the
# static providers, so it has to come from the union rather than the table.
AGGREGATED_NEW = """
CREATE VIEW evidence_aggregated_scores AS
SELECT ecp.gene_id,
       ecp.symbol,
       count(DISTINCT ecp.source_name) AS source_count,
       sum(ecp.percentile_score) AS raw_score,
       round((sum(ecp.percentile_score)
              / NULLIF((SELECT count(DISTINCT esc.source_name)
                        FROM evidence_source_counts esc), 0)
              * 100)::numeric, 2) AS percentage_score,
       jsonb_object_agg(ecp.source_name,
                        round(ecp.percentile_score::numeric, 3)) AS source_scores
FROM evidence_count_percentiles ecp
GROUP BY ecp.gene_id, ecp.symbol
"""

GENE_SCORES = """
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


def _drop_scoring_stack() -> None:
    op.execute("DROP VIEW evidence_aggregated_scores")
    op.execute("DROP VIEW evidence_count_percentiles")
    op.execute("DROP VIEW evidence_source_counts")


def upgrade() -> None:
    _drop_scoring_stack()
    op.execute(SOURCE_COUNTS_NEW)
    op.execute(PERCENTILES)
    op.execute(AGGREGATED_NEW)

    op.execute(GENE_SCORES)
    op.execute(
        "COMMENT ON VIEW gene_scores IS "
        "'Per-gene evidence score as served by /api/genes; one row per gene'"
    )


def downgrade() -> None:
    op.execute("DROP VIEW gene_scores")
    _drop_scoring_stack()
    op.execute(SOURCE_COUNTS_OLD)
    op.execute(PERCENTILES)
    op.execute(AGGREGATED_OLD)
