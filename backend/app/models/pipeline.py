"""Pipeline runs (table created as ingestion_runs, renamed in a4e2c8f6d091)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Identity,
    Index,
    Sequence,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, ENUM, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base

RunStatus = ENUM(
    "queued", "running", "succeeded", "failed", name="run_status", create_type=False
)

# A free-standing sequence (not owned by the column) so run numbers survive a
# table rebuild. Declared on the metadata so create_all() can build it for
# tests; autogenerate does not manage sequences.
PIPELINE_RUN_NUMBER_SEQ = Sequence(
    "pipeline_run_number_seq", start=10000, increment=10, metadata=Base.metadata
)


class PipelineRun(Base):
    __tablename__ = "pipeline_runs"
    __table_args__ = (
        CheckConstraint(
            "finished_at IS NULL OR finished_at >= started_at",
            name="finished_after_start",
        ),
        Index(
            "ix_pipeline_runs_active",
            "status",
            postgresql_where=text("status IN ('queued', 'running')"),
        ),
        {"comment": "One row per pipeline invocation (ingestion, scoring, export)"},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    run_number: Mapped[int] = mapped_column(
        BigInteger,
        server_default=PIPELINE_RUN_NUMBER_SEQ.next_value(),
        unique=True,
        comment="Human-facing run number",
    )
    status: Mapped[str] = mapped_column(
        RunStatus, server_default=text("'queued'::run_status")
    )
    sources: Mapped[list[str]] = mapped_column(
        ARRAY(String(100)), server_default=text("'{}'::character varying[]")
    )
    parameters: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    triggered_by: Mapped[str | None] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error_message: Mapped[str | None] = mapped_column(Text)
