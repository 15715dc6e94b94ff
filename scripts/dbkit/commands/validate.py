"""make db-validate-schema."""

from __future__ import annotations

import json as jsonlib

from dbkit.console import Console
from dbkit.settings import Settings
from dbkit.validate import check


def validate(settings: Settings, out: Console, *, json: bool = False) -> int:
    """Compare the database with the app: revision, models, views, functions, triggers.

    Exit 0 when they match, 1 when anything differs, 2 when the comparison could not run.
    --json (or JSON=1) prints the differences as data for CI, also when it could not run.
    """
    return check.run(settings, out, json=json)


def error_json(message: str) -> str:
    """What ``--json`` prints when the run stops before validate starts (a bad setting)."""
    return jsonlib.dumps(check.empty_report([], error=message), indent=2)
