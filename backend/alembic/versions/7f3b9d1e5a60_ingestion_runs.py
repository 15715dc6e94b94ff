"""ingestion runs

Record every pipeline invocation. Operators refer to runs by a short run
number in Slack and tickets, separate from the surrogate key.

Revision ID: 7f3b9d1e5a60
Revises: d26f8a4c1e93
Create Date: 2024-08-28 08:49:55.170342

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "7f3b9d1e5a60"
down_revision: str | Sequence[str] | None = "d26f8a4c1e93"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

run_status = postgresql.ENUM(
    "queued", "running", "succeeded", "failed", name="run_status", create_type=False
)


def upgrade() -> None:
    op.execute("CREATE TYPE run_status AS ENUM ('queued', 'running', 'succeeded', 'failed')")
    # Steps of 10 leave room to hand-number re-runs (10010 -> 10011) when a
    # run is repeated manually. Not owned by the column on purpose: the number
    # space must survive a table rebuild.
    op.execute("CREATE SEQUENCE ingestion_run_number_seq START WITH 10000 INCREMENT BY 10")

    op.create_table(
        "ingestion_runs",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column(
            "run_number",
            sa.BigInteger(),
            server_default=sa.text("nextval('ingestion_run_number_seq')"),
            nullable=False,
            comment="Human-facing run number",
        ),
        sa.Column("status", run_status, server_default="queued", nullable=False),
        sa.Column(
            "sources",
            postgresql.ARRAY(sa.String(length=100)),
            server_default=sa.text("'{}'::character varying[]"),
            nullable=False,
        ),
        sa.Column("parameters", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("triggered_by", sa.String(length=100), nullable=True),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "finished_at IS NULL OR finished_at >= started_at",
            name=op.f("ck_ingestion_runs_finished_after_start"),
        ),
        sa.PrimaryKeyConstraint("id", name="pk_ingestion_runs"),
        sa.UniqueConstraint("run_number", name="uq_ingestion_runs_run_number"),
        comment="One row per ingestion pipeline invocation",
    )
    op.create_index("ix_ingestion_runs_started_at", "ingestion_runs", ["started_at"])
    # The scheduler polls for unfinished runs every few seconds; finished
    # runs are the vast majority and stay out of this index.
    op.create_index(
        "ix_ingestion_runs_active",
        "ingestion_runs",
        ["status"],
        postgresql_where=sa.text("status IN ('queued', 'running')"),
    )

    op.execute(
        """
        CREATE VIEW ingestion_run_history AS
        SELECT r.id,
               r.run_number,
               r.status,
               r.sources,
               r.triggered_by,
               r.started_at,
               r.finished_at,
               r.finished_at - r.started_at AS duration
        FROM ingestion_runs r
        ORDER BY r.started_at DESC
        """
    )


def downgrade() -> None:
    op.execute("DROP VIEW ingestion_run_history")
    op.drop_index("ix_ingestion_runs_active", table_name="ingestion_runs")
    op.drop_index("ix_ingestion_runs_started_at", table_name="ingestion_runs")
    op.drop_table("ingestion_runs")
    op.execute("DROP SEQUENCE ingestion_run_number_seq")
    op.execute("DROP TYPE run_status")
