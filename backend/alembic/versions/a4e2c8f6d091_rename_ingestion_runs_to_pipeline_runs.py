"""rename ingestion_runs to pipeline_runs

Runs now also cover scoring and export steps, not just ingestion. Renaming
the table leaves its sequences, constraints, indexes and the history view
with the old prefix, so those are renamed too to keep names predictable.

Revision ID: a4e2c8f6d091
Revises: b3a6d0f8e2c4
Create Date: 2025-05-19 13:36:42.675190

"""
from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "a4e2c8f6d091"
down_revision: str | Sequence[str] | None = "b3a6d0f8e2c4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEQUENCES = [
    ("ingestion_runs_id_seq", "pipeline_runs_id_seq"),
    # The column default stores the sequence's OID, so it follows the rename.
    ("ingestion_run_number_seq", "pipeline_run_number_seq"),
]
CONSTRAINTS = [
    ("pk_ingestion_runs", "pk_pipeline_runs"),
    ("uq_ingestion_runs_run_number", "uq_pipeline_runs_run_number"),
    ("ck_ingestion_runs_finished_after_start", "ck_pipeline_runs_finished_after_start"),
]
INDEXES = [
    ("ix_ingestion_runs_started_at", "ix_pipeline_runs_started_at"),
    ("ix_ingestion_runs_active", "ix_pipeline_runs_active"),
]


def _rename_dependents(*, forward: bool) -> None:
    def pairs(renames: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return renames if forward else [(new, old) for old, new in renames]

    for old, new in pairs(SEQUENCES):
        op.execute(f"ALTER SEQUENCE {old} RENAME TO {new}")
    for old, new in pairs(CONSTRAINTS):
        op.execute(f"ALTER TABLE pipeline_runs RENAME CONSTRAINT {old} TO {new}")
    for old, new in pairs(INDEXES):
        op.execute(f"ALTER INDEX {old} RENAME TO {new}")


def upgrade() -> None:
    op.rename_table("ingestion_runs", "pipeline_runs")
    _rename_dependents(forward=True)
    op.execute("ALTER VIEW ingestion_run_history RENAME TO pipeline_run_history")
    op.execute(
        "COMMENT ON TABLE pipeline_runs IS "
        "'One row per pipeline invocation (ingestion, scoring, export)'"
    )


def downgrade() -> None:
    op.execute(
        "COMMENT ON TABLE pipeline_runs IS 'One row per ingestion pipeline invocation'"
    )
    op.execute("ALTER VIEW pipeline_run_history RENAME TO ingestion_run_history")
    _rename_dependents(forward=False)
    op.rename_table("pipeline_runs", "ingestion_runs")
