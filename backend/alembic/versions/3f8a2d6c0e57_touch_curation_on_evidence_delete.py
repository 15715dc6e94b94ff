"""touch curation on evidence delete

Deleting evidence (e.g. a retracted PanelApp rating) did not mark the
curation as changed: the trigger ignored DELETE, and the function only knew
NEW, which is NULL there. Cover all three operations.

Revision ID: 3f8a2d6c0e57
Revises: a4e2c8f6d091
Create Date: 2025-06-10 10:58:14.390521

"""
from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "3f8a2d6c0e57"
down_revision: str | Sequence[str] | None = "a4e2c8f6d091"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TOUCH_V1 = """
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

TOUCH_V2 = """
CREATE OR REPLACE FUNCTION public.touch_gene_curation()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE gene_curations SET updated_at = now() WHERE gene_id = OLD.gene_id;
    ELSE
        UPDATE gene_curations SET updated_at = now() WHERE gene_id = NEW.gene_id;
    END IF;
    RETURN NULL;
END;
$$
"""


def upgrade() -> None:
    op.execute(TOUCH_V2)
    op.execute("DROP TRIGGER trg_gene_evidence_touch_curation ON public.gene_evidence")
    op.execute(
        """
        CREATE TRIGGER trg_gene_evidence_touch_curation
        AFTER INSERT OR DELETE OR UPDATE ON public.gene_evidence
        FOR EACH ROW EXECUTE FUNCTION touch_gene_curation()
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER trg_gene_evidence_touch_curation ON public.gene_evidence")
    op.execute(
        """
        CREATE TRIGGER trg_gene_evidence_touch_curation
        AFTER INSERT OR UPDATE ON public.gene_evidence
        FOR EACH ROW EXECUTE FUNCTION touch_gene_curation()
        """
    )
    op.execute(TOUCH_V1)
