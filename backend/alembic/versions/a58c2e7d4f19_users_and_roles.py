"""users and roles

Curators need accounts before the curation UI leaves the lab network.

Revision ID: a58c2e7d4f19
Revises: 7f3b9d1e5a60
Create Date: 2024-09-16 12:31:08.662514

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "a58c2e7d4f19"
down_revision: str | Sequence[str] | None = "7f3b9d1e5a60"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=255), nullable=False),
        sa.Column("username", sa.String(length=50), nullable=False),
        sa.Column("hashed_password", sa.String(length=255), nullable=False),
        sa.Column(
            "role",
            # create_table emits CREATE TYPE for this one; the drop is manual.
            postgresql.ENUM("admin", "curator", "viewer", name="user_role"),
            server_default="viewer",
            nullable=False,
        ),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("username", name="uq_users_username"),
    )
    # Logins are case-insensitive; a plain UNIQUE(email) would allow
    # "Jane@x.org" next to "jane@x.org".
    op.create_index("uq_users_email_lower", "users", [sa.text("lower(email)")], unique=True)
    op.execute(
        "CREATE TRIGGER trg_users_updated_at BEFORE UPDATE ON public.users "
        "FOR EACH ROW EXECUTE FUNCTION set_updated_at()"
    )


def downgrade() -> None:
    op.drop_index("uq_users_email_lower", table_name="users")
    op.drop_table("users")
    op.execute("DROP TYPE user_role")
