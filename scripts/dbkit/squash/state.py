"""What one squash run knows: the plan preflight made, and the outcome the report tells."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dbkit.pg import catalog
from dbkit.project.chain import Revision


@dataclass
class Plan:
    """What preflight found: the chain, its versions directory, the development database."""

    head: str
    revisions: list[Revision]  # oldest first
    versions_dir: Path
    revision_files: list[Path]
    hashes: dict[str, str]  # the versions directory before we touch it
    dev_exists: bool
    dev_current: list[str] | None  # None: no such database; []: at base
    until: str | None = None  # UNTIL=: the last revision squashed (a partial squash)
    kept: list[Revision] = field(default_factory=list)  # after ``until``, oldest first

    @property
    def first(self) -> Revision:
        return self.revisions[0]

    @property
    def top(self) -> str:
        """The last revision squashed: the head, or UNTIL."""
        return self.until or self.head

    @property
    def lagging(self) -> list[str]:
        """The development database's revisions the squash replaces without being its top
        (it then catches up through the archive)."""
        below = {r.revision for r in self.revisions} - {self.top}
        return [rev for rev in self.dev_current or () if rev in below]


@dataclass
class Outcome:
    """Everything the report says."""

    revision: str
    new_revision: bool
    file: Path | None = None
    file_size: int = 0
    data_size: int = 0  # bytes of its data files (<revision>_data/, big seed tables)
    counts: dict[str, int] = field(default_factory=dict)
    old_chain_seconds: float = 0.0
    new_revision_seconds: float = 0.0
    checks: list[str] = field(default_factory=list)
    backup: Path | None = None
    output: Path | None = None
    archived: Path | None = None
    drift: list[dict[str, Any]] | None = None
    drift_note: str | None = None  # set: the report says this instead of the drift
    b_snapshot: catalog.Snapshot | None = None
    adopt: list[str] = field(default_factory=list)
    took: float = 0.0
    # Views and materialized views and the relations each reads (the report's diagram).
    view_graph: list[dict[str, Any]] = field(default_factory=list)
