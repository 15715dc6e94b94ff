"""dbkit make-include: dbkit's db-* Make targets for another project's Makefile."""

from __future__ import annotations

import functools
import re
from pathlib import Path

from dbkit.console import Console

INCLUDE = Path(__file__).resolve().parent.parent / "dbkit.mk"
_TARGET = re.compile(r"^([a-z][a-z0-9-]*):[^=]*?##\s*(.+)$")
SNIPPET = """\
# dbkit's db-* targets (make db-help lists them)
DBKIT ?= dbkit
include $(shell $(DBKIT) make-include)
"""


def make_include(settings: object, out: Console, *, snippet: bool = False,
                 targets: bool = False) -> None:
    """Print the path of dbkit's Makefile include: `include $(shell dbkit make-include)`.

    --snippet prints the three lines to paste into a Makefile instead; --targets lists the
    targets it defines with their help. Needs no project: it runs on every make call.
    """
    if snippet:
        out.out.write(SNIPPET)
    elif targets:
        for line in INCLUDE.read_text(encoding="utf-8").splitlines():
            match = _TARGET.match(line)
            if match:
                out.out.write(f"  make {match.group(1):<24} {match.group(2)}\n")
    else:
        out.out.write(f"{INCLUDE}\n")


@functools.cache
def verbs_of_targets() -> dict[str, str]:
    """make target → dbkit verb, as the include file says (``db-backup-verify`` →
    ``backup-verify``)."""
    found: dict[str, str] = {}
    current = None
    for line in INCLUDE.read_text().splitlines():
        head = re.match(r"^(db-[a-z-]+):", line)
        if head:
            current = head.group(1)
            continue
        call = re.match(r"^\t@\$\(DBKIT\) ([a-z-]+)", line)
        if call and current:
            found[current] = call.group(1)
            current = None
    return found
