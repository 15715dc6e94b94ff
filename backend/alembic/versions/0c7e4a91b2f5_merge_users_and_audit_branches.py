"""merge users and audit branches

Users (a58c2e7d4f19) and the audit schema (e9d14b6c3a27) were developed in
parallel off the same revision; nothing conflicts, this only joins the heads.

Revision ID: 0c7e4a91b2f5
Revises: a58c2e7d4f19, e9d14b6c3a27
Create Date: 2024-09-24 09:02:37.416590

"""
from collections.abc import Sequence

# revision identifiers, used by Alembic.
revision: str = "0c7e4a91b2f5"
down_revision: str | Sequence[str] | None = ("a58c2e7d4f19", "e9d14b6c3a27")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
