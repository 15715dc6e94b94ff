"""Tiny settings object: the database URL comes from the process environment."""

from __future__ import annotations

import os
from pathlib import Path

from dotenv import load_dotenv

DEFAULT_DATABASE_URL = (
    "postgresql+psycopg2://kidney_user:kidney_password@localhost:5432/kidney_genetics"
)

BACKEND_DIR = Path(__file__).resolve().parents[2]

# A developer's backend/.env only fills gaps: override=False keeps any
# DATABASE_URL already in the environment (which is how dbkit points the app
# at its scratch databases) in charge.
load_dotenv(BACKEND_DIR / ".env", override=False)


class Settings:
    """Read-through view of the environment.

    Values are looked up on every access rather than captured at import, so a
    tool that imports the app once and then switches DATABASE_URL between
    databases gets the current value.
    """

    @property
    def DATABASE_URL(self) -> str:  # noqa: N802 - conventional settings name
        return os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL


settings = Settings()
