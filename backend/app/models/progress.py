"""Live progress of each data source's ingestion."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, Numeric, String, Text, func, text
from sqlalchemy.dialects.postgresql import ENUM, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base

# The type is owned by the migrations ('paused' was added later with
# ALTER TYPE ... ADD VALUE), hence create_type=False.
SourceStatus = ENUM(
    "idle",
    "running",
    "completed",
    "failed",
    "paused",
    name="source_status",
    create_type=False,
)


class DataSourceProgress(Base):
    __tablename__ = "data_source_progress"
    __table_args__ = (
        CheckConstraint(
            "progress_percent >= 0 AND progress_percent <= 100", name="percent_range"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source_name: Mapped[str] = mapped_column(String(100), unique=True)
    status: Mapped[str] = mapped_column(
        SourceStatus, server_default=text("'idle'::source_status")
    )
    progress_percent: Mapped[Decimal] = mapped_column(
        Numeric(5, 2), server_default=text("0")
    )
    current_operation: Mapped[str | None] = mapped_column(Text)
    items_processed: Mapped[int] = mapped_column(server_default=text("0"))
    items_total: Mapped[int | None]
    stats: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb")
    )
    last_error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
