"""How many of each kind of object a squashed revision creates: the report's "captured"."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from dbkit.squash.depend import Node
from dbkit.squash.kinds import KIND


def count_objects(nodes: Iterable[Node], new: Callable[[str], dict[str, Any]],
                  version_key: str) -> dict[str, int]:
    """Counts under the registry's plurals, by name. ``new(section)``: the snapshot's objects
    of one section that an empty database does not have; ``version_key``: Alembic's table."""
    counts: dict[str, int] = {}

    def bump(kind: str, by: int = 1) -> None:
        if by:
            counts[kind] = counts.get(kind, 0) + by

    for node in nodes:
        if node.kind == "rows" and node.seed:
            bump(KIND["rows"].plural, node.seed.count)
            bump("tables with seed rows")
        elif KIND[node.kind].counted:
            bump(KIND[node.kind].plural)
    for info in new("types").values():
        if info["kind"] != "multirange":
            bump(f"{KIND['type'].plural} ({info['kind']})")
    for f in new("functions").values():
        bump("procedures" if f["kind"] == "procedure" else KIND["function"].plural)
    for key, table in new("tables").items():
        if key == version_key:
            continue
        bump("columns", len(table["columns"]))
        for con in table["constraints"].values():
            if con["type"] != "not null":
                bump(f"{KIND['constraint'].plural} ({con['type']})")
        bump(KIND["index"].plural,
             sum(1 for ix in table["indexes"].values() if not ix["constraint"]))
        bump(KIND["trigger"].plural, len(table["triggers"]))
        bump("comments", _comments(table))
    for section in ("views", "materialized_views"):
        for view in new(section).values():
            bump(KIND["trigger"].plural, len(view["triggers"]))
            bump(KIND["matview index"].plural, len(view.get("indexes", {})))
            bump("comments", _comments(view))
    return dict(sorted(counts.items()))


def _comments(obj: dict[str, Any]) -> int:
    """Comments on a table or view, its columns, constraints, indexes and triggers."""
    found = int(obj.get("comment") is not None)
    found += sum(1 for c in obj.get("columns", []) if c.get("comment") is not None)
    for part in ("constraints", "indexes", "triggers", "policies"):
        found += sum(1 for c in obj.get(part, {}).values() if c.get("comment") is not None)
    return found
