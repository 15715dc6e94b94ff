"""evidence_date as date

All sources now deliver ISO dates; values that are not a full date (a bare
year, empty strings) carried no usable information and become NULL.
gene_evidence_summary reads the column, and PostgreSQL refuses to change the
type of a column a view depends on, so the view is dropped around the change.

Revision ID: 2e8c4a6f0b93
Revises: f1a7c3e9b5d2
Create Date: 2025-01-20 10:27:46.513378

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "2e8c4a6f0b93"
down_revision: str | Sequence[str] | None = "f1a7c3e9b5d2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Same text before and after: only the type of latest_evidence_date changes.
GENE_EVIDENCE_SUMMARY = """
CREATE VIEW gene_evidence_summary AS
SELECT g.id AS gene_id,
       g.approved_symbol AS symbol,
       count(ge.id) AS evidence_count,
       array_agg(DISTINCT ge.source_name ORDER BY ge.source_name)
           FILTER (WHERE ge.source_name IS NOT NULL) AS sources,
       max(ge.evidence_date) AS latest_evidence_date,
       max(ge.updated_at) AS last_updated
FROM genes g
LEFT JOIN gene_evidence ge ON ge.gene_id = g.id
GROUP BY g.id, g.approved_symbol
"""


def upgrade() -> None:
    op.execute("DROP VIEW gene_evidence_summary")
    op.alter_column(
        "gene_evidence",
        "evidence_date",
        type_=sa.Date(),
        existing_type=sa.String(length=32),
        existing_nullable=True,
        postgresql_using=(
            "CASE WHEN evidence_date ~ '^\\d{4}-\\d{2}-\\d{2}$' "
            "THEN evidence_date::date END"
        ),
    )
    op.execute(GENE_EVIDENCE_SUMMARY)


def downgrade() -> None:
    op.execute("DROP VIEW gene_evidence_summary")
    op.alter_column(
        "gene_evidence",
        "evidence_date",
        type_=sa.String(length=32),
        existing_type=sa.Date(),
        existing_nullable=True,
        postgresql_using="to_char(evidence_date, 'YYYY-MM-DD')",
    )
    op.execute(GENE_EVIDENCE_SUMMARY)
