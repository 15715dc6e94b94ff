"""make db-validate-schema."""

from __future__ import annotations

from dbkit.console import Console
from dbkit.settings import Settings
from dbkit.validate import check


def validate(settings: Settings, out: Console, *, json: bool = False) -> int:
    """Compare the database with the app: revision, models, views, functions, triggers.

    Exit 0 when they match, 1 when anything differs, 2 when the comparison could not run.
    --json (or JSON=1) prints the differences as data for CI, also when it could not run.
    """
    return check.run(settings, out, json=json)
