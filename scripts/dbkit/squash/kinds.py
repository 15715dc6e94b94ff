"""The kinds of object a squashed revision creates: one table that every step reads.

``depend`` orders by ``rank`` and the ``follows_owner`` / ``after_rows`` rules, ``render``
writes ``section`` as the header above each run of objects, ``counts.count_objects`` and the report
count under ``plural``. Adding a kind touches this table (and the code that captures it).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Kind:
    """One kind of node in the revision (``Node.kind`` is its ``name``)."""

    name: str  # "matview index"
    plural: str  # what the report counts it as: "indexes"
    section: str  # the revision's header above objects of this kind
    rank: int  # reading order among objects whose dependencies are met (lower first)
    counted: bool = False  # the report counts one per node (else ``count_objects`` works it out)
    part: bool = False  # part of a relation: key is "<relation>.<name>", needs the relation
    follows_owner: bool = False  # placed right after its relation when it can be
    after_rows: bool = False  # must not see the seed inserts, or is filled from the rows
    in_pg_depend: str = ""  # what ``pg_depend`` calls it when that differs ("index")


# Reading order (ties only: dependencies always win). Indexes and policies follow their table;
# data comes after the structure, then what must not see the seed inserts (foreign keys,
# triggers) or needs the rows (materialized views).
KINDS: tuple[Kind, ...] = (
    Kind(name="role", plural="roles", rank=-1, counted=True,
         section="roles (server-wide: made if missing, never dropped)"),
    Kind(name="schema", plural="schemas", section="schemas", rank=0, counted=True),
    Kind(name="extension", plural="extensions", section="extensions", rank=1, counted=True),
    Kind(name="type", plural="types", section="types", rank=2),
    Kind(name="sequence", plural="sequences", section="sequences", rank=3, counted=True),
    Kind(name="function", plural="functions", section="functions and procedures", rank=4),
    Kind(name="table", plural="tables", section="tables, their indexes and policies", rank=5,
         counted=True),
    Kind(name="index", plural="indexes", section="tables, their indexes and policies", rank=5,
         part=True, follows_owner=True),
    Kind(name="policy", plural="policies", section="tables, their indexes and policies", rank=5,
         counted=True, part=True, follows_owner=True),
    Kind(name="view", plural="views", section="views", rank=7, counted=True),
    Kind(name="rows", plural="seed rows", section="seed rows", rank=8),
    Kind(name="setval", plural="sequence positions", section="sequence positions", rank=9,
         counted=True, after_rows=True),
    Kind(name="constraint", plural="constraints",
         section="foreign keys and constraints added after the data", rank=10, after_rows=True),
    Kind(name="matview", plural="materialized views",
         section="materialized views and their indexes", rank=11, counted=True,
         after_rows=True),
    Kind(name="matview index", plural="indexes", section="materialized views and their indexes",
         rank=11, part=True, follows_owner=True, in_pg_depend="index"),
    Kind(name="trigger", plural="triggers", section="triggers", rank=12, part=True,
         after_rows=True),
)

KIND: dict[str, Kind] = {k.name: k for k in KINDS}

# What the review line before the swap names, in this order.
HEADLINE: tuple[str, ...] = tuple(
    KIND[k].plural for k in ("table", "view", "matview", "function", "trigger", "rows"))
