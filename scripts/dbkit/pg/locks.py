"""Waiting on the application's locks: bounded by LOCK_WAIT_TIMEOUT, and said with who holds them.

A session of the app holding ``ACCESS EXCLUSIVE`` on one table (a migration in a shell, an
``ALTER`` in a transaction left open) would make dbkit's own reads (row counts, pg_dump's
``LOCK TABLE … IN ACCESS SHARE MODE``) wait as long as it is held, and Ctrl-C does not reach
a process blocked in libpq. Every connection dbkit opens carries ``lock_timeout`` and
pg_dump gets ``--lock-wait-timeout``; when one runs out, the one-line error names the
sessions that hold the locks, so the user knows what to end.
"""

from __future__ import annotations

import psycopg2

from dbkit.console import mask
from dbkit.pg.server import Server

LOCK_TIMEOUT = "55P03"  # lock_not_available: lock_timeout ran out, or NOWAIT
# How pg_dump and psql report it in their stderr
_SAYS = ("lock timeout", "could not obtain lock")


def timed_out(err: BaseException) -> bool:
    """Whether ``err`` (psycopg2's, or a client tool's one-line error) is a lock wait run out."""
    if isinstance(err, psycopg2.Error):
        return err.pgcode == LOCK_TIMEOUT
    if not hasattr(err, "message"):
        return False
    text = getattr(err, "message", str(err))
    # pg_dump's --lock-wait-timeout is a statement_timeout on its LOCK TABLE
    return any(s in text for s in _SAYS) or ("statement timeout" in text and "LOCK TABLE" in text)


def holders(server: Server, dbname: str) -> list[str]:
    """The other sessions holding strong locks in ``dbname``: pid, application, state, what."""
    try:
        conn = server.connect(dbname)
    except Exception:  # noqa: BLE001 - naming the holder is a courtesy; the error stands
        return []
    try:
        with conn.cursor() as cur:
            cur.execute("""
                SELECT a.pid, coalesce(nullif(a.application_name, ''), '?'), a.state,
                       string_agg(DISTINCT l.mode || ' on ' || coalesce(
                           l.relation::regclass::text, l.locktype), ', ')
                FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                WHERE l.granted AND a.datname = current_database()
                  AND a.pid <> pg_backend_pid()
                  AND l.mode IN ('AccessExclusiveLock', 'ExclusiveLock',
                                 'ShareRowExclusiveLock', 'ShareLock')
                  AND l.locktype IN ('relation', 'object')
                GROUP BY 1, 2, 3 ORDER BY 1""")
            return [f"pid {pid} ({app}, {state}) holds {what}"
                    for pid, app, state, what in cur.fetchall()]
    except psycopg2.Error:
        return []
    finally:
        conn.close()


def waited(server: Server, dbname: str, what: str) -> str:
    """The one line for a lock wait that ran out while dbkit was doing ``what``."""
    seconds = server.settings.lock_wait_timeout
    found = holders(server, dbname)
    who = "; ".join(found) if found else "another session (gone by now)"
    return mask(f"{what} waited LOCK_WAIT_TIMEOUT={seconds:g}s for a lock in {dbname} and "
                f"stopped: {who}; end that session or wait for it, then run again",
                server.secrets)

