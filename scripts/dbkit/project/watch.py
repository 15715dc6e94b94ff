"""A migration must not hang dbkit: while a child works on a database, dbkit watches it.

``watch`` is a context manager around one Alembic operation. A thread of dbkit's own looks
at the server every quarter of a second (``pg_stat_activity``, ``pg_blocking_pids``) and ends
the operation (``on_timeout``: the child is killed) when

* a statement of the migration has waited on another session's lock for more than
  ``lock_wait`` seconds (``LOCK_WAIT_TIMEOUT``), or
* the whole operation has taken more than ``total`` seconds (``MIGRATION_TIMEOUT``).

On leaving, the context raises ``MigrationStuck``: one line naming the blocked statement and
the query of the session that blocks it (or the time limit). 0 turns a limit off.

Which sessions are the migration's: those in the database that began after the watch did
(the child connects afresh for every operation). In a scratch database that is every session;
in the development database an app's session that was already connected is never blamed, and
a statement of the app blocked *by* the migration is not the migration waiting. The watch
holds no connection to the watched database (it reads from the maintenance database), so it
never stands in the way of dropping it, and it connects only once an operation has lasted
longer than one look.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg2

from dbkit.errors import DbkitError
from dbkit.pg.server import Server

_EVERY = 0.25  # seconds between two looks
_SHOWN = 200  # characters of a statement shown in the one line

# The database's sessions that wait on a lock, each with one session that holds it.
_BLOCKED = """
SELECT w.pid, w.query, b.pid, b.state, b.query, b.datname,
       b.backend_start >= %(since)s::timestamptz AS opened_meanwhile
FROM pg_stat_activity w
CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) WITH ORDINALITY AS k(pid, n)
JOIN pg_stat_activity b ON b.pid = k.pid
WHERE w.datname = %(db)s AND w.pid <> pg_backend_pid()
  AND w.backend_start >= %(since)s::timestamptz
ORDER BY w.pid, k.n
"""


class MigrationStuck(DbkitError):
    """A migration waited on a lock too long, or took longer than MIGRATION_TIMEOUT."""


@dataclass
class _Seen:
    since: float  # monotonic time the wait was first seen
    statement: str
    blocker: str
    own: bool = False  # the blocker began during the operation: the migration's own


def _short(sql: str | None) -> str:
    text = " ".join((sql or "").split())
    return text if len(text) <= _SHOWN else text[:_SHOWN - 1] + "…"


class _Watcher(threading.Thread):
    def __init__(self, server: Server, dbname: str, on_timeout: Callable[[], None], *,
                 lock_wait: float, total: float, what: str) -> None:
        super().__init__(name=f"dbkit-watch-{dbname}", daemon=True)
        self.server, self.dbname, self.on_timeout = server, dbname, on_timeout
        self.lock_wait, self.total, self.what = lock_wait, total, what
        self.done = threading.Event()
        self.started_at = time.monotonic()
        self.finding: str | None = None
        self._conn: psycopg2.extensions.connection | None = None
        self._since: str | None = None  # the server's clock when the watch began
        self._connected = False
        self._seen: dict[tuple[int, str], _Seen] = {}

    def run(self) -> None:
        try:
            while not self.done.wait(_EVERY):
                if not self._connected:
                    self._connect()
                finding, blocked = self._look()
                if finding is not None:
                    self.finding = finding
                    self.on_timeout()  # first the child, so that it answers nothing more
                    if blocked is not None:
                        self._terminate(blocked)
                    return
        finally:
            if self._conn is not None:
                self._conn.close()

    def _connect(self) -> None:
        """Once the operation lasts longer than one look (most never do): a connection to
        the maintenance database, and the server's clock when the watch began."""
        self._connected = True
        try:
            self._conn = self.server.connect(self.server.maintenance_db, wait=1.0)
            with self._conn.cursor() as cur:
                # A second of margin: the child's sessions begin after the watch did.
                cur.execute("SELECT (clock_timestamp() - make_interval(secs => %s))::text",
                            (time.monotonic() - self.started_at + 1.0,))
                self._since = str(cur.fetchone()[0])
        except (DbkitError, psycopg2.Error):
            self._since = None  # no watching of locks; the time limit still holds

    def _look(self) -> tuple[str | None, int | None]:
        """What ends the operation (None: nothing yet), and the blocked session to end."""
        now = time.monotonic()
        if self.total and now - self.started_at > self.total:
            return (f"{self.what} took more than MIGRATION_TIMEOUT={self.total:g} s and was "
                    "stopped (raise MIGRATION_TIMEOUT, or 0 for no limit)"), None
        if not self.lock_wait or self._conn is None or self._since is None:
            return None, None
        try:
            with self._conn.cursor() as cur:
                cur.execute(_BLOCKED, {"db": self.dbname, "since": self._since})
                rows = cur.fetchall()
        except psycopg2.Error:
            return None, None
        waiting: dict[tuple[int, str], _Seen] = {}
        for pid, query, b_pid, b_state, b_query, b_db, b_meanwhile in rows:
            key = (pid, query or "")
            if key in waiting:
                continue  # the first blocker is named
            seen = self._seen.get(key) or _Seen(now, _short(query), "")
            where = "" if b_db == self.dbname else f" in database {b_db}"
            seen.blocker = (f"session {b_pid}{where} ({b_state or 'no state'}), whose "
                            f"{'last ' if b_state != 'active' else ''}query is "
                            f"\"{_short(b_query)}\"")
            seen.own = bool(b_meanwhile)
            waiting[key] = seen
            if now - seen.since > self.lock_wait:
                return (f"{self.what} waited more than LOCK_WAIT_TIMEOUT={self.lock_wait:g} s "
                        f"for a lock and was stopped: its statement \"{seen.statement}\" is "
                        f"blocked by {seen.blocker}. " + (
                            "That session was opened during the migration, most likely by "
                            "the migration itself (a second connection): run every statement "
                            "on op.get_bind()" if seen.own else
                            "End that session (or let it commit), or raise LOCK_WAIT_TIMEOUT")
                        ), pid
        self._seen = waiting
        return None, None

    def _terminate(self, pid: int) -> None:
        """The blocked session is the migration's: it must not stay queued for the lock
        (and block every session behind it) once its client is gone."""
        try:
            assert self._conn is not None
            with self._conn.cursor() as cur:
                cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
        except psycopg2.Error:
            pass


@contextmanager
def watch(server: Server, dbname: str, on_timeout: Callable[[], None], *,
          lock_wait: float, total: float, what: str = "the migration") -> Iterator[None]:
    """Watch ``dbname`` while the body runs; see the module's docstring."""
    if not lock_wait and not total:
        yield
        return
    watcher = _Watcher(server, dbname, on_timeout, lock_wait=lock_wait, total=total, what=what)
    watcher.start()
    try:
        yield
    except BaseException as err:
        _end(watcher)
        if watcher.finding is not None:
            raise MigrationStuck(watcher.finding, trace=getattr(err, "trace", None)) from None
        raise
    _end(watcher)
    if watcher.finding is not None:
        raise MigrationStuck(watcher.finding)


def _end(watcher: _Watcher) -> None:
    watcher.done.set()
    watcher.join()

