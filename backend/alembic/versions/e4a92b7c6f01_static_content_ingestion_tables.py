"""static content ingestion tables

Commercial diagnostic panels and hand-curated lists arrive as files, not via
an API. They get their own tables and are folded into scoring later.

Revision ID: e4a92b7c6f01
Revises: 5d0c8e2f7a13
Create Date: 2024-04-10 15:37:29.611048

"""
import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "e4a92b7c6f01"
down_revision: str | Sequence[str] | None = "5d0c8e2f7a13"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Ids are fixed: the upload scripts and the frontend's provider filter refer
# to them.
PROVIDERS = [
    {
        "id": 1,
        "name": "blueprint_genetics",
        "display_name": "Blueprint Genetics kidney panels",
        "source_type": "diagnostic_panel",
        "scoring_metadata": {"strategy": "panel_count"},
    },
    {
        "id": 2,
        "name": "invitae",
        "display_name": "Invitae nephrology panels",
        "source_type": "diagnostic_panel",
        "scoring_metadata": {"strategy": "panel_count"},
    },
    {
        "id": 3,
        "name": "natera_renasight",
        "display_name": "Natera Renasight",
        "source_type": "diagnostic_panel",
        "scoring_metadata": {"strategy": "panel_count"},
    },
    {
        "id": 4,
        "name": "literature_review",
        "display_name": "Curated literature review",
        "source_type": "literature",
        "scoring_metadata": {"strategy": "publication_count", "min_publications": 2},
    },
    {
        "id": 5,
        "name": "expert_curation",
        "display_name": "Nephrology expert gene list",
        "source_type": "expert_list",
        "scoring_metadata": {"strategy": "binary"},
    },
]


def upgrade() -> None:
    op.create_table(
        "static_content_providers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("display_name", sa.String(length=255), nullable=False),
        sa.Column("source_type", sa.String(length=50), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column(
            "scoring_metadata",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "source_type IN ('diagnostic_panel', 'literature', 'expert_list')",
            name=op.f("ck_static_content_providers_source_type"),
        ),
        sa.PrimaryKeyConstraint("id", name="pk_static_content_providers"),
        sa.UniqueConstraint("name", name="uq_static_content_providers_name"),
        comment="Origins of file-based (static) evidence",
    )

    op.create_table(
        "static_content_panels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("panel_name", sa.String(length=255), nullable=False),
        sa.Column("panel_version", sa.String(length=50), nullable=True),
        sa.Column("gene_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "panel_metadata",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "imported_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"],
            ["static_content_providers.id"],
            name="fk_static_content_panels_provider_id_static_content_providers",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_static_content_panels"),
        sa.UniqueConstraint(
            "provider_id",
            "panel_name",
            name="uq_static_content_panels_provider_id_panel_name",
        ),
    )

    op.create_table(
        "static_content_genes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("panel_id", sa.Integer(), nullable=False),
        sa.Column("gene_id", sa.Integer(), nullable=True),
        sa.Column(
            "symbol_raw",
            sa.String(length=100),
            nullable=False,
            comment="Symbol exactly as written in the uploaded file",
        ),
        sa.Column("raw_data", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["panel_id"],
            ["static_content_panels.id"],
            name="fk_static_content_genes_panel_id_static_content_panels",
            ondelete="CASCADE",
        ),
        # Uploads insert panel rows first and resolve genes in the same
        # transaction afterwards, so the check waits until COMMIT.
        sa.ForeignKeyConstraint(
            ["gene_id"],
            ["genes.id"],
            name="fk_static_content_genes_gene_id_genes",
            ondelete="SET NULL",
            deferrable=True,
            initially="DEFERRED",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_static_content_genes"),
    )
    op.create_index("ix_static_content_genes_gene_id", "static_content_genes", ["gene_id"])
    # The normalization job only ever looks at rows it has not matched yet.
    op.create_index(
        "ix_static_content_genes_unmatched",
        "static_content_genes",
        ["panel_id"],
        postgresql_where=sa.text("gene_id IS NULL"),
    )

    # JSONB has no literal renderer, which `alembic upgrade --sql` needs, so
    # the seed goes in as JSON text and PostgreSQL casts it on insert.
    seed = sa.table(
        "static_content_providers",
        sa.column("id", sa.Integer),
        sa.column("name", sa.String),
        sa.column("display_name", sa.String),
        sa.column("source_type", sa.String),
        sa.column("scoring_metadata", sa.Text),
    )
    op.bulk_insert(
        seed,
        [{**row, "scoring_metadata": json.dumps(row["scoring_metadata"])} for row in PROVIDERS],
    )
    # Explicit ids bypass the serial; move it past them.
    op.execute(
        "SELECT setval(pg_get_serial_sequence('static_content_providers', 'id'), "
        "(SELECT max(id) FROM static_content_providers))"
    )


def downgrade() -> None:
    op.drop_index("ix_static_content_genes_unmatched", table_name="static_content_genes")
    op.drop_index("ix_static_content_genes_gene_id", table_name="static_content_genes")
    op.drop_table("static_content_genes")
    op.drop_table("static_content_panels")
    op.drop_table("static_content_providers")
