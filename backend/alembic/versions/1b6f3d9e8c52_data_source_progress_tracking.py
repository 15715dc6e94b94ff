"""data source progress tracking

Revision ID: 1b6f3d9e8c52
Revises: e4a92b7c6f01
Create Date: 2024-05-08 13:58:40.093225

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "1b6f3d9e8c52"
down_revision: str | Sequence[str] | None = "e4a92b7c6f01"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

source_status = postgresql.ENUM(
    "idle", "running", "completed", "failed", name="source_status", create_type=False
)

SOURCES = ["PanelApp", "ClinGen", "GenCC", "HPO", "PubTator", "Literature"]


def upgrade() -> None:
    op.execute("CREATE TYPE source_status AS ENUM ('idle', 'running', 'completed', 'failed')")

    progress = op.create_table(
        "data_source_progress",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_name", sa.String(length=100), nullable=False),
        sa.Column("status", source_status, server_default="idle", nullable=False),
        sa.Column(
            "progress_percent",
            sa.Numeric(precision=5, scale=2),
            server_default="0",
            nullable=False,
        ),
        sa.Column("current_operation", sa.Text(), nullable=True),
        sa.Column("items_processed", sa.Integer(), server_default="0", nullable=False),
        sa.Column("items_total", sa.Integer(), nullable=True),
        sa.Column(
            "stats",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "progress_percent >= 0 AND progress_percent <= 100",
            name=op.f("ck_data_source_progress_percent_range"),
        ),
        sa.PrimaryKeyConstraint("id", name="pk_data_source_progress"),
        sa.UniqueConstraint("source_name", name="uq_data_source_progress_source_name"),
    )
    op.execute(
        "CREATE TRIGGER trg_data_source_progress_updated_at "
        "BEFORE UPDATE ON public.data_source_progress "
        "FOR EACH ROW EXECUTE FUNCTION set_updated_at()"
    )

    # The progress page lists every known source, even before its first run.
    op.bulk_insert(progress, [{"source_name": name} for name in SOURCES])


def downgrade() -> None:
    op.drop_table("data_source_progress")
    op.execute("DROP TYPE source_status")
