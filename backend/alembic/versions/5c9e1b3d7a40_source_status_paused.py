"""source status paused

Operators can pause a long PubTator import instead of killing it.

Revision ID: 5c9e1b3d7a40
Revises: 8d4f0a2c6e15
Create Date: 2025-03-05 09:41:57.802615

"""
from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "5c9e1b3d7a40"
down_revision: str | Sequence[str] | None = "8d4f0a2c6e15"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Allowed inside a transaction since PostgreSQL 12, but the new label
    # cannot be *used* before that transaction commits. Nothing later in the
    # chain refers to 'paused', so an upgrade to head in one go is fine.
    op.execute("ALTER TYPE source_status ADD VALUE IF NOT EXISTS 'paused' AFTER 'failed'")


def downgrade() -> None:
    # PostgreSQL cannot drop an enum label: build the old type and move the
    # column over. Compare as text so this also works in the same transaction
    # as the upgrade that added the label.
    op.execute("UPDATE data_source_progress SET status = 'idle' WHERE status::text = 'paused'")
    op.execute("ALTER TYPE source_status RENAME TO source_status_old")
    op.execute("CREATE TYPE source_status AS ENUM ('idle', 'running', 'completed', 'failed')")
    op.execute("ALTER TABLE data_source_progress ALTER COLUMN status DROP DEFAULT")
    op.execute(
        "ALTER TABLE data_source_progress ALTER COLUMN status "
        "TYPE source_status USING status::text::source_status"
    )
    op.execute("ALTER TABLE data_source_progress ALTER COLUMN status SET DEFAULT 'idle'")
    op.execute("DROP TYPE source_status_old")
