"""Differences between a database and the app: one record per difference, text and JSON forms.

Each difference says what the database has and what the app expects, so the same record reads
well as a line for people (``column public.genes.symbol: database has VARCHAR(50), app expects
VARCHAR(100)``) and as data for CI.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass

# The order kinds are reported in: the revision first (it explains much of the rest), then
# the model objects from the outside in, then what the app declares outside its models.
KINDS = (
    "revision", "schema", "extension", "type", "sequence", "table", "column", "primary key",
    "index", "unique constraint", "foreign key", "check constraint", "exclusion constraint",
    "not null constraint", "policy", "view", "materialized view", "function", "procedure",
    "trigger",
)
_PLURALS = {"index": "indexes", "materialized view": "materialized views", "revision": "revision",
            "policy": "policies"}
# Who the database is compared with: the app (models, registry) or a fresh build of its own
# migrations (the chain check); the wording of a line follows.
APP, MIGRATIONS = "app", "migrations"
_WORDS = {APP: ("app expects", "app declares no such"),
          MIGRATIONS: ("migrations build", "migrations build no such")}

MISSING, EXTRA, CHANGED = "missing", "extra", "changed"
_LONG = 90  # values longer than this are shown as the stretch where the two sides part


@dataclass(frozen=True)
class Difference:
    """One way the database differs from the app."""

    kind: str  # one of KINDS (or another word for what Alembic reported)
    object: str  # schema-qualified: "public.genes.symbol", "public.alembic_version"
    problem: str  # missing / extra / changed, or for the revision: behind, unknown, ...
    database: str | None  # what the database has; None: nothing
    app: str | None  # what the app (or the migrations) expects; None: nothing
    source: str = APP  # APP or MIGRATIONS: what the database is compared with

    def line(self) -> str:
        """The one line people read."""
        head = f"{self.kind} {self.object}"
        expects, declares_none = _WORDS[self.source]
        if self.problem == MISSING:
            want = self.app or "it"
            if self.source == MIGRATIONS and self.app:  # built definitions can be long
                want = _cut(_squash(self.app), 0)
            return f"{head}: database has no such {self.kind}, {expects} {want}"
        if self.problem == EXTRA:
            has = _cut(_squash(self.database), 0) if self.database else "it"
            return f"{head}: database has {has}, {declares_none} {self.kind}"
        db, app = _excerpts(self.database or "nothing", self.app or "nothing")
        return f"{head}: database has {db}, {expects} {app}"

    def as_json(self) -> dict[str, str | None]:
        """``kind, object, problem, database, app``; ``migrations`` in place of ``app`` for
        the chain check."""
        data = asdict(self)
        source = data.pop("source")
        if source == MIGRATIONS:
            data[MIGRATIONS] = data.pop("app")
        return data


def plural(kind: str, n: int = 2) -> str:
    if n == 1:
        return kind
    return _PLURALS.get(kind, kind + "s")


def kind_order(kind: str) -> tuple[int, str]:
    return (KINDS.index(kind) if kind in KINDS else len(KINDS), kind)


def group(differences: list[Difference]) -> list[tuple[str, list[Difference]]]:
    """Differences grouped by kind, kinds in report order, objects sorted within a kind."""
    kinds = sorted({d.kind for d in differences}, key=kind_order)
    return [
        (kind, sorted((d for d in differences if d.kind == kind), key=lambda d: d.object))
        for kind in kinds
    ]


def _by_kind(differences: list[Difference]) -> dict[str, int]:
    found = Counter(d.kind for d in differences)
    return {k: found[k] for k in sorted(found, key=kind_order)}


def counts(differences: list[Difference]) -> dict[str, object]:
    by_problem = Counter(d.problem for d in differences)
    return {
        "total": len(differences),
        "by_kind": _by_kind(differences),
        "by_problem": dict(sorted(by_problem.items())),
    }


def summary(differences: list[Difference]) -> str:
    """``3 differences (revision: 1, views: 2)``: the count under each group's heading."""
    n = len(differences)
    parts = [f"{plural(k, c)}: {c}" for k, c in _by_kind(differences).items()]
    return f"{n} {'difference' if n == 1 else 'differences'} ({', '.join(parts)})"


def table_size(columns: int) -> str:
    """``a table of 3 columns``: how a table is described when only one side has it."""
    return f"a table of {columns} column{'' if columns == 1 else 's'}"


def _squash(text: str) -> str:
    return " ".join(text.split())


def _excerpts(a: str, b: str) -> tuple[str, str]:
    """Short values as they are; long ones (view bodies) cut to where the two sides part."""
    a, b = _squash(a), _squash(b)
    if len(a) <= _LONG and len(b) <= _LONG:
        return a, b
    start = 0
    while start < min(len(a), len(b)) and a[start] == b[start]:
        start += 1
    # Start a little before the first difference, at a word boundary.
    start = max(0, a.rfind(" ", 0, max(0, start - 20)) + 1)
    return _cut(a, start), _cut(b, start)


def _cut(text: str, start: int) -> str:
    piece = text[start:start + _LONG]
    return f"{'…' if start else ''}{piece}{'…' if start + _LONG < len(text) else ''}"
