"""evidence scoring views

Scores are computed in SQL so the API and the nightly export agree:
per-source counts -> percentile within the source -> aggregate per gene.

Revision ID: b71e09c3d5a2
Revises: 8f2d4b6a1c90
Create Date: 2024-02-27 11:20:44.019583

"""
from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "b71e09c3d5a2"
down_revision: str | Sequence[str] | None = "8f2d4b6a1c90"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A panel source lists the panels a gene is on; every other source counts
    # once per row.
    op.execute(
        """
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
    )
    op.execute(
        """
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
    )
    op.execute(
        """
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
    )
    op.execute(
        """
        CREATE VIEW gene_evidence_summary AS
        SELECT g.id AS gene_id,
               g.symbol,
               count(ge.id) AS evidence_count,
               array_agg(DISTINCT ge.source_name ORDER BY ge.source_name)
                   FILTER (WHERE ge.source_name IS NOT NULL) AS sources,
               max(ge.evidence_date) AS latest_evidence_date,
               max(ge.updated_at) AS last_updated
        FROM genes g
        LEFT JOIN gene_evidence ge ON ge.gene_id = g.id
        GROUP BY g.id, g.symbol
        """
    )


def downgrade() -> None:
    op.execute("DROP VIEW gene_evidence_summary")
    op.execute("DROP VIEW evidence_aggregated_scores")
    op.execute("DROP VIEW evidence_count_percentiles")
    op.execute("DROP VIEW evidence_source_counts")
