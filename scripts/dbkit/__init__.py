"""dbkit: squash, back up, restore and validate Alembic + PostgreSQL projects."""

__version__ = "0.1.0"
