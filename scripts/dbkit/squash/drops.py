"""The squashed revision's ``downgrade()``: everything dropped in reverse, in every
transaction mode an env.py may choose.

What limits it is PostgreSQL's lock table. Dropping an object locks it and everything the
drop deletes with it (a table: its indexes, TOAST table, row and array types, sequences,
defaults, constraints, foreign-key triggers: 16 locks for a table of 5 columns, a serial key,
an index and a foreign key, measured on 15 and 18), each held to the end of the transaction,
and all sessions share one table, documented to hold max_locks_per_transaction ×
(max_connections + max_prepared_transactions) locks: 6,400 with the defaults. The real table
is larger (the product counts every backend slot and shared memory has slack): one
transaction held 12,000 drop locks on a default 15.20 and 13,600 on a default 18.6.

The upgrade() of the same revision creates every object in one transaction, in every mode
(Alembic runs one migration in one transaction at least), and creating takes about as many
locks as dropping (1,610 for 100 such tables vs 1,709 to drop them). So dropping everything in
the migration's own transaction needs no more headroom than the upgrade had, and works
whatever env.py did with the connection, including a connection already in a transaction of
env.py's own (warehouse's: ``SET statement_timeout`` before ``context.configure()`` with
SQLAlchemy 2's autobegin), where Alembic cannot commit and ``autocommit_block()`` fails its
assertion. Only a big schema (past ``RUNTIME_ABOVE`` estimated locks) gets ``_drop_all``,
which reads the server's real settings when it runs: it splits the drops into transactions
of their own only when they do not fit in what the documented table has free *and* Alembic
owns the transaction (a commit is Alembic's to make); else it drops in the one transaction
and, should the server still run out, says which setting to raise.
"""

from __future__ import annotations

from typing import Any

from dbkit.squash.ddl import Capture
from dbkit.squash.depend import Node

# Up to this many estimated locks the drops are plain op.execute lines (a reviewer reads
# them as they are): a tenth of a default server's documented lock table, and less than
# the upgrade itself took. Past it, ``_drop_all`` decides at run time.
RUNTIME_ABOVE = 2000
_INDENT = "    "


def lock_weight(node: Node, snap: dict[str, Any]) -> int:
    """About how many locks dropping ``node`` takes (an estimate on the high side)."""
    if node.kind == "table":
        table = snap["tables"][node.key]
        foreign = sum(1 for c in table["constraints"].values() if c["type"] == "foreign key")
        return (5 + len(table["columns"]) + len(table["indexes"]) + len(table["constraints"])
                + 3 * foreign + len(table["triggers"]) + len(table["policies"]))
    if node.kind in ("view", "materialized view"):
        group = "views" if node.kind == "view" else "materialized_views"
        view = snap[group].get(node.key, {})
        return 5 + len(view.get("indexes", {})) + len(view.get("triggers", {}))
    if node.kind == "extension":
        return 200  # every object of the extension goes with it
    return 2


def downgrade_body(cap: Capture, execute: Any, literal: Any) -> tuple[list[str], bool]:
    """downgrade()'s lines, and whether the file needs ``HELPER`` (``execute(stmt, indent)``
    renders one op.execute line, ``literal(stmt, indent)`` a statement as a Python string)."""
    drops = [n for n in reversed(cap.nodes) if n.drop]
    if not drops:
        return [f"{_INDENT}pass"], False
    weights = [lock_weight(n, cap.snapshot) for n in drops]
    total = sum(weights)
    if total <= RUNTIME_ABOVE:
        return [execute(n.drop or "", _INDENT) for n in drops], False
    inner = _INDENT * 2
    lines = [
        f"{_INDENT}# Dropping all of this takes about {total:,} locks, each held until its",
        f"{_INDENT}# transaction ends, in a lock table all sessions share (PostgreSQL documents",
        f"{_INDENT}# max_locks_per_transaction x (max_connections + max_prepared_transactions)",
        f"{_INDENT}# entries: 6,400 with the defaults). upgrade() took about as many in one",
        f"{_INDENT}# transaction, so _drop_all (at the end of this file) drops in the migration's",
        f"{_INDENT}# own transaction, whatever env.py chose (per migration, one for the run, or",
        f"{_INDENT}# a connection already in a transaction of its own). Only when the server's",
        f"{_INDENT}# settings leave too little room and Alembic owns the transaction does it",
        f"{_INDENT}# commit between batches, through autocommit_block().",
        f"{_INDENT}_drop_all({total}, [",
    ]
    for node, weight in zip(drops, weights, strict=True):
        text = literal(node.drop or "", inner)
        if "\n" in text:
            lines.append(f"{inner}({weight},")
            lines.append(f"{text}),")
        else:
            lines.append(f"{inner}({weight}, {text}),")
    lines.append(f"{_INDENT}])")
    return lines, True


IMPORTS = ["from contextlib import ExitStack"]

# The revision's own code: it runs in the user's project, with its driver, dbkit absent.
HELPER = '''

# The lock table's documented size (max_locks_per_transaction, and the backend slots it is
# multiplied by), and how many of its entries every session holds now (fast-path locks
# live elsewhere).
_LOCK_ROOM = """
SELECT current_setting('max_locks_per_transaction')::int,
       current_setting('max_connections')::int
       + current_setting('max_prepared_transactions')::int,
       (SELECT count(*) FROM pg_locks WHERE NOT fastpath)
"""


def _drop_all(locks: int, drops: list[tuple[int, str]]) -> None:
    """Run ``drops`` ((estimated locks, statement), in order) in the migration's transaction,
    or in batches of their own when the server's lock table has too little room for
    ``locks`` and Alembic may commit (see downgrade())."""
    context = op.get_context()
    if context.as_sql:  # offline: no server to ask; one with the default settings
        per, slots, held = 64, 100, 0
    else:
        per, slots, held = op.get_bind().execute(sa.text(_LOCK_ROOM)).one()
    room = per * slots - held
    with ExitStack() as stack:
        if locks > room:
            try:
                stack.enter_context(context.autocommit_block())
            except Exception:  # noqa: BLE001 - env.py's own transaction: not ours to commit
                pass
            else:
                batch: list[str] = []
                used = 0
                for weight, statement in drops:
                    if batch and used + weight > max(room // 2, 1):
                        op.execute(";\\n".join(batch))  # one query: one transaction
                        batch, used = [], 0
                    batch.append(statement)
                    used += weight
                op.execute(";\\n".join(batch))
                return
        try:
            for _, statement in drops:
                op.execute(statement)
        except sa.exc.DBAPIError as err:
            code = getattr(err.orig, "pgcode", None) or getattr(err.orig, "sqlstate", None)
            if code != "53200":  # out of shared memory: the lock table is full
                raise
            enough = -(-2 * locks // slots // 64) * 64
            why = ("env.py runs the migrations in a transaction of its own (the connection "
                   "was in one when it called context.configure()), which Alembic cannot "
                   "commit, so the drops cannot be split" if locks > room else
                   f"other sessions held {held:,} of its entries when it began")
            raise RuntimeError(
                f"downgrade() of {revision} needs about {locks:,} locks in one transaction "
                f"and the server's lock table ran out (max_locks_per_transaction = {per} x "
                f"{slots} connection slots); {why}. Raise max_locks_per_transaction to "
                f"{enough} (ALTER SYSTEM, then restart the server)"
                + (", or run nothing on the connection before context.begin_transaction()"
                   if locks > room else "")) from err
'''


def helper() -> list[str]:
    """``_drop_all``'s source, for the end of the revision file."""
    return HELPER.splitlines()
