"""Row-level change history in the ``audit`` schema.

Rows are written by the audit.log_change() trigger function, never by the
application; the model exists for reading them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class ChangeLog(Base):
    __tablename__ = "change_log"
    __table_args__ = (
        CheckConstraint("operation IN ('INSERT', 'UPDATE', 'DELETE')", name="operation"),
        Index("ix_change_log_table_name_record_id", "table_name", "record_id"),
        {
            "schema": "audit",
            "comment": "Row-level change history written by audit.log_change()",
        },
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    table_name: Mapped[str] = mapped_column(Text)
    record_id: Mapped[str] = mapped_column(Text)
    operation: Mapped[str] = mapped_column(String(10))
    old_data: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    new_data: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    changed_by: Mapped[str] = mapped_column(
        Text,
        server_default=text("CURRENT_USER"),
        comment="Database role that made the change",
    )
    changed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    # Deleting an account must not delete history.
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"),
        index=True,
        comment="Application user, from the app.user_id setting",
    )
