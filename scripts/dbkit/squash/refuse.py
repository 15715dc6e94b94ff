"""What a squash refuses before writing anything, one line each: what dbkit cannot reproduce
yet (``unsupported``), and what the PostgreSQL major the revision is written for lacks.

TARGET_PG: the squashed revision is written for the oldest PostgreSQL major the user runs.

The SQL comes from the catalog of the server the chain was built on, and what dbkit renders
from it is portable to every major from 14 on (tested: captured on 18 and proven on 14,
and the other way round). A chain that uses what the target major cannot express is refused
before anything is written, one line naming the feature, the major it needs and the objects:

* ``UNIQUE NULLS NOT DISTINCT`` (15), unlogged sequences (15), views with
  ``security_invoker`` (15), the ``MAINTAIN`` privilege (17), virtual generated columns,
  ``NOT ENFORCED`` constraints, ``NOT NULL … NOT VALID`` and temporal keys
  (``WITHOUT OVERLAPS`` / ``PERIOD``) (18).

What has a portable form that means exactly the same is rendered that way and not refused:
a NOT NULL constraint with a name of its own (PostgreSQL 18 names them) is written
``CONSTRAINT name NOT NULL``, which 14 to 17 accept and build as the plain ``NOT NULL``
they have (no name to keep), and 18 builds with its name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from dbkit.errors import CannotSquash
from dbkit.pg import catalog, shapes


def unsupported(snap: shapes.Snapshot, version_key: str) -> None:
    """Objects dbkit cannot reproduce yet (``pg/sql/unsupported.sql`` and the tables')."""
    found = {kind: names for kind, names in snap.get("unsupported", {}).items()}
    for key, table in snap["tables"].items():
        if key == version_key:
            continue
        if table["kind"] != "table" or table["parents"] or table["is_partition"]:
            found.setdefault("partitioned or inherited table", []).append(key)
        for col in table["columns"]:  # options a user cannot set are not reproduced
            if {o.split("=", 1)[0] for o in col["options"] or ()} - set(catalog.USER_ATTOPTIONS):
                found.setdefault("column options", []).append(f"{key}.{col['name']}")
    if found:
        what = "; ".join(f"{kind}: {', '.join(names[:5])}" for kind, names in sorted(found.items()))
        raise CannotSquash(
            f"the chain creates objects dbkit cannot reproduce yet ({what}); nothing was changed"
        )


# -- TARGET_PG --------------------------------------------------------------------------------
Finder = Callable[[shapes.Snapshot, str], Iterator[str]]
_ACLITEM = re.compile(r"^(?P<grantee>.*)=(?P<privileges>[A-Za-z*]*)/(?P<grantor>.*)$")


def _constraints(snap: shapes.Snapshot, version_key: str
                 ) -> Iterator[tuple[str, shapes.Constraint]]:
    for key, table in snap["tables"].items():
        if key != version_key:
            for name, con in table["constraints"].items():
                yield f"{key}.{name}", con


def _indexes(snap: shapes.Snapshot) -> Iterator[tuple[str, shapes.Index]]:
    for section in ("tables", "materialized_views"):
        for key, rel in snap[section].items():
            for name, ix in rel.get("indexes", {}).items():
                yield f"{key}.{name}", ix


def _nulls_not_distinct(snap: shapes.Snapshot, version_key: str) -> Iterator[str]:
    yield from (k for k, c in _constraints(snap, version_key)
                if "NULLS NOT DISTINCT" in c["definition"])
    yield from (k for k, ix in _indexes(snap) if not ix["constraint"]
                and "NULLS NOT DISTINCT" in ix["definition"])


def _unlogged_sequences(snap: shapes.Snapshot, version_key: str) -> Iterator[str]:
    # An unlogged table's identity sequence is unlogged with it (a table option since 9.1).
    yield from (k for k, s in snap["sequences"].items() if s["unlogged"] and not s["identity"])


def _security_invoker(snap: shapes.Snapshot, version_key: str) -> Iterator[str]:
    yield from (k for k, v in snap["views"].items()
                if any(o.startswith("security_invoker=") for o in v.get("options") or ()))


def _maintain(snap: shapes.Snapshot, version_key: str) -> Iterator[str]:
    """``grantee=arwdDxtm/grantor``: ``m`` is MAINTAIN. The owner's own entry has it by
    default from 17 on (nothing rendered); a GRANT of it to another role, or its REVOKE from
    the owner, is rendered and means nothing before 17."""
    for section in ("tables", "views", "materialized_views"):
        for key, rel in snap[section].items():
            for item in rel.get("acl") or ():
                match = _ACLITEM.match(item)
                if key != version_key and match and (
                        ("m" in match["privileges"]) != (match["grantee"] == match["grantor"])):
                    yield key
                    break


def _virtual_columns(snap: shapes.Snapshot, version_key: str) -> Iterator[str]:
    for key, table in snap["tables"].items():
        yield from (f"{key}.{c['name']}" for c in table["columns"]
                    if c["generated_kind"] == "virtual")


def _not_enforced(snap: shapes.Snapshot, version_key: str) -> Iterator[str]:
    yield from (k for k, c in _constraints(snap, version_key)
                if c["definition"].endswith("NOT ENFORCED"))


def _not_null_not_valid(snap: shapes.Snapshot, version_key: str) -> Iterator[str]:
    yield from (k for k, c in _constraints(snap, version_key)
                if c["type"] == "not null" and not c["validated"])


def _temporal_keys(snap: shapes.Snapshot, version_key: str) -> Iterator[str]:
    yield from (k for k, c in _constraints(snap, version_key)
                if " WITHOUT OVERLAPS" in c["definition"] or "PERIOD " in c["definition"])


# (the major that has it, what it is, where the snapshot shows it)
FEATURES: list[tuple[int, str, Finder]] = [
    (15, "UNIQUE NULLS NOT DISTINCT", _nulls_not_distinct),
    (15, "unlogged sequences", _unlogged_sequences),
    (15, "views with security_invoker", _security_invoker),
    (17, "the MAINTAIN privilege", _maintain),
    (18, "virtual generated columns", _virtual_columns),
    (18, "NOT ENFORCED constraints", _not_enforced),
    (18, "NOT NULL constraints NOT VALID", _not_null_not_valid),
    (18, "temporal keys (WITHOUT OVERLAPS, PERIOD)", _temporal_keys),
]


def lacking(snap: shapes.Snapshot, target: int, version_key: str, server_major: int
            ) -> list[str]:
    """What the chain built (on ``server_major``) that PostgreSQL ``target`` cannot express,
    one entry a feature."""
    found = []
    for since, what, finder in FEATURES:
        if target < since <= server_major:
            names = sorted(set(finder(snap, version_key)))
            if names:
                more = f", … ({len(names)})" if len(names) > 3 else ""
                found.append(f"{what} (PostgreSQL {since}+): {', '.join(names[:3])}{more}")
    return found


def target_lacks(snap: shapes.Snapshot, target: int, version_key: str,
                 server_major: int) -> None:
    found = lacking(snap, target, version_key, server_major)
    if found:
        raise CannotSquash(
            f"TARGET_PG={target}: the chain uses what PostgreSQL {target} does not have: "
            f"{'; '.join(found)}; nothing was changed (raise TARGET_PG to the oldest major "
            "you run, or change the chain)")
