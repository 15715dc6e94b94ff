"""File-based ("static") evidence: providers, their panels, the genes on them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base
from app.models.mixins import CreatedAtMixin

SOURCE_TYPES = ("diagnostic_panel", "literature", "expert_list")


class StaticContentProvider(CreatedAtMixin, Base):
    __tablename__ = "static_content_providers"
    __table_args__ = (
        CheckConstraint(f"source_type IN {SOURCE_TYPES!r}", name="source_type"),
        {"comment": "Origins of file-based (static) evidence"},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    display_name: Mapped[str] = mapped_column(String(255))
    source_type: Mapped[str] = mapped_column(String(50))
    description: Mapped[str | None] = mapped_column(Text)
    scoring_metadata: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb")
    )
    is_active: Mapped[bool] = mapped_column(server_default=text("true"))
    scoring_weight: Mapped[Decimal] = mapped_column(
        Numeric(4, 2),
        server_default=text("1.00"),
        comment="Multiplier applied to this provider's evidence",
    )

    panels: Mapped[list[StaticContentPanel]] = relationship(
        back_populates="provider", passive_deletes=True
    )


class StaticContentPanel(Base):
    __tablename__ = "static_content_panels"
    __table_args__ = (UniqueConstraint("provider_id", "panel_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(
        ForeignKey("static_content_providers.id", ondelete="CASCADE")
    )
    panel_name: Mapped[str] = mapped_column(String(255))
    panel_version: Mapped[str | None] = mapped_column(String(50))
    gene_count: Mapped[int] = mapped_column(server_default=text("0"))
    panel_metadata: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb")
    )
    imported_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )

    provider: Mapped[StaticContentProvider] = relationship(back_populates="panels")
    genes: Mapped[list[StaticContentGene]] = relationship(
        back_populates="panel", passive_deletes=True
    )


class StaticContentGene(CreatedAtMixin, Base):
    __tablename__ = "static_content_genes"
    __table_args__ = (
        Index(
            "ix_static_content_genes_unmatched",
            "panel_id",
            postgresql_where=text("gene_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    panel_id: Mapped[int] = mapped_column(
        ForeignKey("static_content_panels.id", ondelete="CASCADE")
    )
    # Deferred: uploads insert rows first and resolve genes before COMMIT.
    gene_id: Mapped[int | None] = mapped_column(
        ForeignKey(
            "genes.id", ondelete="SET NULL", deferrable=True, initially="DEFERRED"
        ),
        index=True,
    )
    symbol_raw: Mapped[str] = mapped_column(
        String(100), comment="Symbol exactly as written in the uploaded file"
    )
    raw_data: Mapped[dict[str, Any] | None] = mapped_column(JSONB)

    panel: Mapped[StaticContentPanel] = relationship(back_populates="genes")
