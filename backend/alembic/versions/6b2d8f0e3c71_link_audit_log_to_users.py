"""link audit log to users

The API connects with one database role, so changed_by is always the same
value. The API now sets app.user_id per transaction; record it.

Revision ID: 6b2d8f0e3c71
Revises: 0c7e4a91b2f5
Create Date: 2024-10-14 11:18:50.287413

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "6b2d8f0e3c71"
down_revision: str | Sequence[str] | None = "0c7e4a91b2f5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LOG_CHANGE_V1 = """
CREATE OR REPLACE FUNCTION audit.log_change()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO audit.change_log (table_name, record_id, operation, old_data)
        VALUES (TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, OLD.id::text, TG_OP, to_jsonb(OLD));
        RETURN OLD;
    END IF;

    INSERT INTO audit.change_log (table_name, record_id, operation, old_data, new_data)
    VALUES (TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME,
            NEW.id::text,
            TG_OP,
            CASE WHEN TG_OP = 'UPDATE' THEN to_jsonb(OLD) END,
            to_jsonb(NEW));
    RETURN NEW;
END;
$$
"""

# current_setting(..., true) returns NULL when the API did not set it
# (psql sessions, the pipeline), which maps to "no user".
LOG_CHANGE_V2 = """
CREATE OR REPLACE FUNCTION audit.log_change()
RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    acting_user integer := NULLIF(current_setting('app.user_id', true), '')::integer;
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO audit.change_log (table_name, record_id, operation, old_data, user_id)
        VALUES (TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, OLD.id::text, TG_OP,
                to_jsonb(OLD), acting_user);
        RETURN OLD;
    END IF;

    INSERT INTO audit.change_log (table_name, record_id, operation, old_data, new_data, user_id)
    VALUES (TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME,
            NEW.id::text,
            TG_OP,
            CASE WHEN TG_OP = 'UPDATE' THEN to_jsonb(OLD) END,
            to_jsonb(NEW),
            acting_user);
    RETURN NEW;
END;
$$
"""


def upgrade() -> None:
    op.add_column(
        "change_log",
        sa.Column(
            "user_id",
            sa.Integer(),
            nullable=True,
            comment="Application user, from the app.user_id setting",
        ),
        schema="audit",
    )
    # Deleting an account must not delete history.
    op.create_foreign_key(
        "fk_change_log_user_id_users",
        "change_log",
        "users",
        ["user_id"],
        ["id"],
        source_schema="audit",
        referent_schema="public",
        ondelete="SET NULL",
    )
    op.create_index("ix_change_log_user_id", "change_log", ["user_id"], schema="audit")
    op.execute(LOG_CHANGE_V2)

    op.execute(
        """
        CREATE VIEW audit.recent_changes AS
        SELECT cl.id,
               cl.table_name,
               cl.record_id,
               cl.operation,
               cl.changed_at,
               u.username,
               cl.changed_by AS db_role
        FROM audit.change_log cl
        LEFT JOIN public.users u ON u.id = cl.user_id
        WHERE cl.changed_at > now() - interval '30 days'
        """
    )


def downgrade() -> None:
    op.execute("DROP VIEW audit.recent_changes")
    # The old function must be back before the column it no longer writes
    # disappears, or a concurrent write in between would fail.
    op.execute(LOG_CHANGE_V1)
    op.drop_index("ix_change_log_user_id", table_name="change_log", schema="audit")
    op.drop_constraint("fk_change_log_user_id_users", "change_log", schema="audit", type_="foreignkey")
    op.drop_column("change_log", "user_id", schema="audit")
