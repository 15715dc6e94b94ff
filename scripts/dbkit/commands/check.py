"""dbkit check (make db-check): the migrations as CI must see them, on scratch databases."""

from __future__ import annotations

import json as jsonlib
from collections import Counter
from pathlib import Path

from dbkit.console import Console
from dbkit.settings import Settings
from dbkit.validate import ci


def check(settings: Settings, out: Console, *, json: bool = False, github_actions: bool = False,
          github_workspace: str = "") -> int:
    """Check the migrations for CI: one head, upgrade and downgrade work, models match.

    On throwaway databases only (the development database is never read): the chain has
    one head; it builds from empty; the models match what it built (autogenerate would
    write nothing); `alembic downgrade base` works and leaves nothing behind (a revision that
    does not downgrade is named); a squashed revision still builds exactly what its archived
    chain builds. One line per finding (`file:line: check: message`), `--json` for data, and
    GitHub Actions `::error` annotations when GITHUB_ACTIONS is set. Exit 0 when all pass, 1
    on any finding, 2 when the check could not run.
    """
    root = Path(github_workspace) if github_workspace else Path.cwd()
    progress = Console(out.err, quiet=out.quiet, secrets=out.secrets) if json else out
    report = ci.run(settings, progress)
    if json:
        out.result(jsonlib.dumps(ci.as_json(report, root), indent=2))
        return 1 if report.findings else 0
    for finding in report.findings:
        where = ci.relative(finding.file, root) or ""
        if github_actions:
            props = f"file={_prop(where)},line={finding.line}," if where else ""
            out.result(f"::error {props}title=dbkit check ({finding.check})::"
                       f"{_data(finding.message)}")
        else:
            place = f"{where}:{finding.line}: " if where else ""
            out.result(f"{place}{finding.check}: {finding.message}")
    for note in report.notes:
        out.result(f"note: {note}")
    if report.findings:
        counts = Counter(f.check for f in report.findings)
        out.result(f"dbkit check: {len(report.findings)} finding"
                   f"{'s' if len(report.findings) != 1 else ''} ("
                   + ", ".join(f"{c}: {counts[c]}" for c in ci.CHECKS if counts[c]) + ")")
        return 1
    out.result(f"dbkit check: ok ({', '.join(report.checked)})")
    return 0


def _data(text: str) -> str:
    """A workflow command's message: %, CR and LF escaped as GitHub reads them."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _prop(text: str) -> str:
    """A workflow command's property value: also ':' and ','."""
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def error_json(message: str) -> str:
    """What ``--json`` prints when the run stops before a report (a bad setting, no server)."""
    return jsonlib.dumps({"ok": False, "error": message, "checks": [], "findings": [],
                          "notes": []}, indent=2)
