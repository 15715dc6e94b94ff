"""gene search indexes

Fuzzy symbol search in the gene browser was doing sequential scans with
ILIKE; add trigram support, a case-insensitive uniqueness guard on symbols,
and a GIN index for the JSONB containment filters used by the evidence API.

Revision ID: 8f2d4b6a1c90
Revises: 3c1e5a7b9d24
Create Date: 2024-02-06 16:03:51.877310

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "8f2d4b6a1c90"
down_revision: str | Sequence[str] | None = "3c1e5a7b9d24"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")

    op.create_index(
        "ix_genes_symbol_trgm",
        "genes",
        ["symbol"],
        postgresql_using="gin",
        postgresql_ops={"symbol": "gin_trgm_ops"},
    )
    # HGNC symbols are upper case, but curators paste "Pkd1" from papers.
    op.create_index(
        "uq_genes_symbol_upper",
        "genes",
        [sa.text("upper(symbol)")],
        unique=True,
    )
    op.create_index(
        "ix_gene_evidence_evidence_data",
        "gene_evidence",
        ["evidence_data"],
        postgresql_using="gin",
        postgresql_ops={"evidence_data": "jsonb_path_ops"},
    )
    op.create_index("ix_gene_evidence_source_name", "gene_evidence", ["source_name"])


def downgrade() -> None:
    op.drop_index("ix_gene_evidence_source_name", table_name="gene_evidence")
    op.drop_index("ix_gene_evidence_evidence_data", table_name="gene_evidence")
    op.drop_index("uq_genes_symbol_upper", table_name="genes")
    op.drop_index("ix_genes_symbol_trgm", table_name="genes")
    # This revision brought the extension in, so it takes it out again; a
    # downgrade to base must leave nothing of ours behind.
    op.execute("DROP EXTENSION IF EXISTS pg_trgm")
