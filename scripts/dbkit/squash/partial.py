"""A partial squash (``UNTIL=<rev>``): base..rev become one revision keeping rev's id, the
revisions after rev stay as they are (their ``down_revision`` already names rev).

``split`` says whether rev is a point every path from base to every head passes through;
``prove_whole`` is the proof's second half: the whole new versions directory at head against
the whole old chain at head.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

import psycopg2.extensions
from psycopg2 import sql

from dbkit.console import Console
from dbkit.errors import ConfigError
from dbkit.pg import catalog
from dbkit.pg.server import Server
from dbkit.project.chain import AlembicProject, Revision, reachable
from dbkit.squash import prove


def split(revisions: list[Revision], until: str) -> tuple[list[Revision], list[Revision]]:
    """(base..until, the revisions after it), both oldest first; ConfigError, one line, when
    ``until`` is unknown, not below every head, or inside a branch that merges later."""
    by_id = {r.revision: r for r in revisions}
    matches = [r for r in by_id if r.startswith(until)] if until not in by_id else [until]
    if len(matches) != 1:
        raise ConfigError(f"UNTIL={until}: " + (
            "no such revision in the chain" if not matches else
            f"names {len(matches)} revisions ({', '.join(sorted(matches))}); give more of it"))
    rev = matches[0]
    parents = {r.revision: set(r.down_revision) for r in revisions}
    children: dict[str, set[str]] = {}
    for child, ups in parents.items():
        for up in ups:
            children.setdefault(up, set()).add(child)
    below, above = reachable([rev], parents), reachable([rev], children)
    heads = sorted(r for r in by_id if r not in children)
    missed = [h for h in heads if h not in above]
    if missed:
        raise ConfigError(f"UNTIL={rev} is not an ancestor of every head ({', '.join(missed)} "
                          "does not descend from it): a partial squash keeps one chain after it")
    aside = sorted(set(by_id) - below - above)
    if aside:
        raise ConfigError(f"UNTIL={rev} sits inside a branch that merges later ({', '.join(aside)} "
                          "runs beside it): choose a revision every path passes through, such "
                          "as the branch point or the merge")
    order = [r.revision for r in revisions]  # oldest first
    return ([by_id[r] for r in order if r in below], [by_id[r] for r in order if r in above
                                                      and r != rev])


def rows_since(conn: psycopg2.extensions.connection, version_key: str,
               since: datetime) -> dict[str, list[Any]]:
    """Row count + md5 of every table's and populated materialized view's sorted rows, a
    timestamp at or after ``since`` read as "set during the run": the revisions kept after
    UNTIL ran in A and in B at different moments, and ``now()`` differs by that much."""
    found: dict[str, list[Any]] = {}
    with conn.cursor() as cur:
        cur.execute("SET TimeZone = 'UTC'")
        for schema, name in catalog.relations(conn, catalog.TABLES + catalog.MATVIEWS,
                                              populated=True):
            key = f"{schema}.{name}"
            if key == version_key:
                continue
            cur.execute("SELECT a.attname, format_type(a.atttypid, NULL) FROM pg_attribute a "
                        "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT "
                        "a.attisdropped ORDER BY a.attnum",
                        (sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))
                         .as_string(conn),))
            # ``since`` as a literal, not a parameter: psycopg2 would read a % in a quoted
            # column name as a placeholder of its own.
            cols = [sql.SQL("CASE WHEN t.{c} >= {since} THEN 'set during the run' ELSE "
                            "t.{c}::text END").format(c=sql.Identifier(col),
                                                      since=sql.Literal(since))
                    if kind.startswith("timestamp") else
                    sql.SQL("t.{}::text").format(sql.Identifier(col)) for col, kind in
                    cur.fetchall()]
            row = sql.SQL("ROW({})::text").format(sql.SQL(", ").join(cols)) if cols \
                else sql.SQL("''")
            cur.execute(sql.SQL(
                "SELECT count(*), md5(coalesce(string_agg(r, E'\\n' ORDER BY r), '')) FROM "
                "(SELECT {} AS r FROM {}.{} t) q").format(
                    row, sql.Identifier(schema), sql.Identifier(name)))
            count, digest = cur.fetchone()
            found[key] = [int(count), digest]
    return found


def prove_whole(server: Server, old: AlembicProject, new: AlembicProject, *, a: str, b: str,
                version_key: str, out: Console, kept: list[str] | None = None
                ) -> tuple[list[str], catalog.Snapshot, Any, str | None]:
    """A (old chain, at UNTIL) and B (new directory, at UNTIL) both taken to head, then
    compared: pg_dump schema, catalog, every row (see ``rows_since``), sequence positions.
    Returns the check made, B's snapshot, the model drift and its note."""
    since = datetime.now(timezone.utc)
    with out.step("Upgrading A (old chain) and B (new versions directory) to head"):
        with ThreadPoolExecutor(max_workers=1) as pool:
            old_up = pool.submit(old.upgrade, a, "head")
            prove._checked(new.upgrade, b, "head", what="the revisions kept after the "
                           "squashed one do not build on it")
            old_up.result()
        if kept is not None:  # both ran the kept revisions, and only those
            for project, what in ((old, "A (old chain) to head"), (new, "B to head")):
                if sorted(project.last_ran.revisions) != sorted(kept):
                    raise prove.ProofFailed(
                        f"proof failed: {what} ran {len(project.last_ran.revisions)} "
                        f"revisions, not the {len(kept)} kept after UNTIL")
    with out.step("Comparing A with B at head; meanwhile the models with B"):
        with ThreadPoolExecutor(max_workers=2) as pool:
            drift = pool.submit(new.model_diff, b)
            state_a = pool.submit(prove.read_state, server, a, version_key)
            state_b = prove.read_state(server, b, version_key)
            problems = prove.differences(
                server, timeless(server, state_a.result(), version_key, since),
                timeless(server, state_b, version_key, since))
            prove._fail_if(problems, "at head, the new versions directory differs from the old "
                           "chain")
            found, note = prove._drift(drift, state_b.snapshot, version_key)
    return (["whole versions directory at head identical to the old chain at head (values the "
             "revisions after UNTIL set from the clock aside)"], state_b.snapshot, found, note)


def timeless(server: Server, state: prove.DbState, version_key: str,
              since: datetime) -> prove.DbState:
    """``state`` with its rows read by ``rows_since``."""
    conn = server.connect(state.name)
    try:
        rows = rows_since(conn, version_key, since)
    finally:
        conn.close()
    return prove.DbState(state.name, state.dump, state.snapshot,
                         {**state.data, "rows": rows})
