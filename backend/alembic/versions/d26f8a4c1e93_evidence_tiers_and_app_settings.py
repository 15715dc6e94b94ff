"""evidence tiers and app settings

Tier thresholds and a few scoring knobs move out of code into tables so the
curation team can tune them without a deploy.

Revision ID: d26f8a4c1e93
Revises: 4e7b1f2a9d36
Create Date: 2024-08-05 17:26:33.905127

"""
import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "d26f8a4c1e93"
down_revision: str | Sequence[str] | None = "4e7b1f2a9d36"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIERS = [
    {"id": 1, "tier_name": "definitive", "min_score": 80, "sort_order": 1,
     "description": "Replicated association, multiple independent sources"},
    {"id": 2, "tier_name": "strong", "min_score": 60, "sort_order": 2,
     "description": "Consistent evidence across several sources"},
    {"id": 3, "tier_name": "moderate", "min_score": 40, "sort_order": 3,
     "description": "Supported by some sources, not yet replicated"},
    {"id": 4, "tier_name": "limited", "min_score": 20, "sort_order": 4,
     "description": "Single source or weak signal"},
    {"id": 5, "tier_name": "insufficient", "min_score": 0, "sort_order": 5,
     "description": "No usable evidence yet"},
]

SETTINGS = [
    {"key": "scoring.version", "value": 1,
     "description": "Bumped whenever the scoring views change meaning"},
    {"key": "scoring.min_sources_for_tier", "value": 2,
     "description": "Genes with fewer sources are never tiered above limited"},
    {"key": "ingestion.default_sources",
     "value": ["PanelApp", "ClinGen", "GenCC", "HPO", "PubTator"],
     "description": "Sources a scheduled pipeline run refreshes"},
]


def upgrade() -> None:
    tiers = op.create_table(
        "evidence_tiers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tier_name", sa.String(length=50), nullable=False),
        sa.Column("min_score", sa.Numeric(precision=5, scale=2), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("sort_order", sa.SmallInteger(), nullable=False),
        sa.CheckConstraint(
            "min_score >= 0 AND min_score <= 100",
            name=op.f("ck_evidence_tiers_min_score_range"),
        ),
        sa.PrimaryKeyConstraint("id", name="pk_evidence_tiers"),
        sa.UniqueConstraint("tier_name", name="uq_evidence_tiers_tier_name"),
        comment="Score thresholds; a gene gets the highest tier whose min_score it reaches",
    )
    op.create_table(
        "app_settings",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("value", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("key", name="pk_app_settings"),
    )
    op.execute(
        "CREATE TRIGGER trg_app_settings_updated_at BEFORE UPDATE ON public.app_settings "
        "FOR EACH ROW EXECUTE FUNCTION set_updated_at()"
    )

    op.bulk_insert(tiers, TIERS)
    op.execute(
        "SELECT setval(pg_get_serial_sequence('evidence_tiers', 'id'), "
        "(SELECT max(id) FROM evidence_tiers))"
    )
    # Values as JSON text: JSONB cannot be rendered for `alembic upgrade --sql`.
    settings_seed = sa.table(
        "app_settings",
        sa.column("key", sa.String),
        sa.column("value", sa.Text),
        sa.column("description", sa.Text),
    )
    op.bulk_insert(
        settings_seed,
        [{**row, "value": json.dumps(row["value"])} for row in SETTINGS],
    )


def downgrade() -> None:
    op.drop_table("app_settings")
    op.drop_table("evidence_tiers")
