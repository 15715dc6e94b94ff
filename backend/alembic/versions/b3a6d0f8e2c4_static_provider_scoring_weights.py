"""static provider scoring weights

Commercial panels overlap heavily (the same genes on every panel), so they are
down-weighted; the expert list counts more. Existing providers get a NOT NULL
column through a server default, then the seeded rows are tuned.

Revision ID: b3a6d0f8e2c4
Revises: 5c9e1b3d7a40
Create Date: 2025-04-02 16:15:03.119874

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "b3a6d0f8e2c4"
down_revision: str | Sequence[str] | None = "5c9e1b3d7a40"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "static_content_providers",
        sa.Column(
            "scoring_weight",
            sa.Numeric(precision=4, scale=2),
            server_default="1.00",
            nullable=False,
            comment="Multiplier applied to this provider's evidence",
        ),
    )
    op.execute(
        "UPDATE static_content_providers SET scoring_weight = 0.50 "
        "WHERE source_type = 'diagnostic_panel'"
    )
    op.execute(
        "UPDATE static_content_providers SET scoring_weight = 1.50 "
        "WHERE name = 'expert_curation'"
    )
    op.execute(
        "UPDATE app_settings SET value = '2'::jsonb WHERE key = 'scoring.version'"
    )


def downgrade() -> None:
    op.execute(
        "UPDATE app_settings SET value = '1'::jsonb WHERE key = 'scoring.version'"
    )
    op.drop_column("static_content_providers", "scoring_weight")
