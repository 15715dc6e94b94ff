"""Genes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Index, String, Text, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base
from app.models.mixins import TimestampMixin

if TYPE_CHECKING:
    from app.models.curation import GeneCuration
    from app.models.evidence import GeneEvidence


class Gene(TimestampMixin, Base):
    __tablename__ = "genes"
    __table_args__ = (
        Index(
            "ix_genes_approved_symbol_trgm",
            "approved_symbol",
            postgresql_using="gin",
            postgresql_ops={"approved_symbol": "gin_trgm_ops"},
        ),
        # Case-insensitive uniqueness; see migration 8f2d4b6a1c90.
        Index("uq_genes_approved_symbol_upper", text("upper(approved_symbol)"), unique=True),
        {"comment": "Genes evaluated for an association with kidney disease"},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    approved_symbol: Mapped[str] = mapped_column(
        String(50), comment="Current HGNC approved symbol"
    )
    hgnc_id: Mapped[str | None] = mapped_column(
        String(20),
        unique=True,
        comment="HGNC identifier including the prefix, e.g. HGNC:9008",
    )
    aliases: Mapped[list[str]] = mapped_column(
        ARRAY(Text), server_default=text("'{}'::text[]")
    )
    location: Mapped[str | None] = mapped_column(String(50))

    evidence: Mapped[list[GeneEvidence]] = relationship(
        back_populates="gene", passive_deletes=True
    )
    curation: Mapped[GeneCuration | None] = relationship(
        back_populates="gene", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"<Gene {self.approved_symbol}>"

