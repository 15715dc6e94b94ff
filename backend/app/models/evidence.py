"""Evidence rows per gene and source, and the tier thresholds scores map to."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base
from app.models.mixins import TimestampMixin

if TYPE_CHECKING:
    from app.models.gene import Gene


class GeneEvidence(TimestampMixin, Base):
    __tablename__ = "gene_evidence"
    __table_args__ = (
        UniqueConstraint("gene_id", "source_name", "source_detail"),
        Index(
            "ix_gene_evidence_evidence_data",
            "evidence_data",
            postgresql_using="gin",
            postgresql_ops={"evidence_data": "jsonb_path_ops"},
        ),
        {"comment": "One row per gene and evidence source"},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    gene_id: Mapped[int] = mapped_column(ForeignKey("genes.id", ondelete="CASCADE"))
    source_name: Mapped[str] = mapped_column(String(100), index=True)
    source_detail: Mapped[str] = mapped_column(
        String(255), server_default=text("''::character varying")
    )
    evidence_data: Mapped[dict[str, Any]] = mapped_column(
        JSONB,
        server_default=text("'{}'::jsonb"),
        comment="Source payload as delivered by the ingestion pipeline",
    )
    evidence_date: Mapped[date | None] = mapped_column(Date)

    gene: Mapped[Gene] = relationship(back_populates="evidence")


class EvidenceTier(Base):
    __tablename__ = "evidence_tiers"
    __table_args__ = (
        CheckConstraint("min_score >= 0 AND min_score <= 100", name="min_score_range"),
        {
            "comment": "Score thresholds; a gene gets the highest tier whose "
            "min_score it reaches"
        },
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tier_name: Mapped[str] = mapped_column(String(50), unique=True)
    min_score: Mapped[Decimal] = mapped_column(Numeric(5, 2))
    description: Mapped[str | None] = mapped_column(Text)
    sort_order: Mapped[int] = mapped_column(SmallInteger)
