"""touch curation on evidence change

The curation UI sorts by "recently changed"; a curation must count as changed
when any of its gene's evidence changes, not only when the curation row is
edited.

Revision ID: 5d0c8e2f7a13
Revises: b71e09c3d5a2
Create Date: 2024-03-19 09:14:02.550761

"""
from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "5d0c8e2f7a13"
down_revision: str | Sequence[str] | None = "b71e09c3d5a2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE OR REPLACE FUNCTION public.touch_gene_curation()
        RETURNS trigger
        LANGUAGE plpgsql
        AS $$
        BEGIN
            UPDATE gene_curations
               SET updated_at = now()
             WHERE gene_id = NEW.gene_id;
            RETURN NEW;
        END;
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER trg_gene_evidence_touch_curation
        AFTER INSERT OR UPDATE ON public.gene_evidence
        FOR EACH ROW EXECUTE FUNCTION touch_gene_curation()
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER trg_gene_evidence_touch_curation ON public.gene_evidence")
    op.execute("DROP FUNCTION public.touch_gene_curation()")
