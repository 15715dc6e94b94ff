"""Per-gene curation state."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import CheckConstraint, Float, ForeignKey, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base
from app.models.mixins import TimestampMixin

if TYPE_CHECKING:
    from app.models.gene import Gene


class GeneCuration(TimestampMixin, Base):
    """One row per gene.

    updated_at also moves when the gene's evidence changes (trigger
    trg_gene_evidence_touch_curation), and every change is written to
    audit.change_log.
    """

    __tablename__ = "gene_curations"
    __table_args__ = (
        CheckConstraint(
            "evidence_score IS NULL OR evidence_score BETWEEN 0 AND 100",
            name="evidence_score_range",
        ),
        {"comment": "Aggregated curation state per gene"},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    gene_id: Mapped[int] = mapped_column(
        ForeignKey("genes.id", ondelete="CASCADE"), unique=True
    )
    evidence_count: Mapped[int] = mapped_column(server_default=text("0"))
    source_count: Mapped[int] = mapped_column(server_default=text("0"))
    evidence_score: Mapped[float | None] = mapped_column(Float)
    source_scores: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb")
    )

    gene: Mapped[Gene] = relationship(back_populates="curation")
