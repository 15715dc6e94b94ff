"""static content views

Revision ID: c83a5e1d0f47
Revises: 1b6f3d9e8c52
Create Date: 2024-06-03 10:05:12.448930

"""
from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "c83a5e1d0f47"
down_revision: str | Sequence[str] | None = "1b6f3d9e8c52"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Static evidence per gene, shaped like a regular evidence source so the
    # scoring views can take it in later.
    op.execute(
        """
        CREATE VIEW static_evidence_counts AS
        SELECT scg.gene_id,
               p.name AS source_name,
               count(DISTINCT scp.id) AS panel_count,
               max(scp.imported_at) AS last_imported_at
        FROM static_content_genes scg
        JOIN static_content_panels scp ON scp.id = scg.panel_id
        JOIN static_content_providers p ON p.id = scp.provider_id
        WHERE scg.gene_id IS NOT NULL AND p.is_active
        GROUP BY scg.gene_id, p.name
        """
    )
    op.execute(
        """
        CREATE VIEW static_panel_summary AS
        SELECT p.id AS provider_id,
               p.name AS provider_name,
               p.source_type,
               count(DISTINCT scp.id) AS panel_count,
               count(scg.id) AS gene_rows,
               count(scg.id) FILTER (WHERE scg.gene_id IS NULL) AS unmatched_rows
        FROM static_content_providers p
        LEFT JOIN static_content_panels scp ON scp.provider_id = p.id
        LEFT JOIN static_content_genes scg ON scg.panel_id = scp.id
        GROUP BY p.id, p.name, p.source_type
        """
    )
    op.execute(
        """
        CREATE VIEW unmatched_static_genes AS
        SELECT scg.id AS static_gene_id,
               scg.symbol_raw,
               p.name AS provider_name,
               scp.panel_name,
               scg.created_at
        FROM static_content_genes scg
        JOIN static_content_panels scp ON scp.id = scg.panel_id
        JOIN static_content_providers p ON p.id = scp.provider_id
        WHERE scg.gene_id IS NULL
        """
    )


def downgrade() -> None:
    op.execute("DROP VIEW unmatched_static_genes")
    op.execute("DROP VIEW static_panel_summary")
    op.execute("DROP VIEW static_evidence_counts")
