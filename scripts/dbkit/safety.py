"""The rules every destructive verb obeys: confirm, refuse production, protected databases or
a remote server, and one at a time (per checkout, and per database on the server)."""

from __future__ import annotations

import fcntl
import fnmatch
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg2

from dbkit.console import Console
from dbkit.errors import Refused, ServerUnreachable, first_line
from dbkit.pg.server import Server
from dbkit.settings import Settings, is_production

YES = "\x00--yes"  # not something CONFIRM=... can contain

# Test hook, and the one environment read outside settings.py: with DBKIT_TEST_PAUSE_AT=<step>
# a destructive run prints "dbkit: paused at <step>" on stderr and waits there, so the kill -9
# tests can stop it at exact points. Unset (always, for users) it does nothing.
PAUSE_ENV = "DBKIT_TEST_PAUSE_AT"

# pg_try_advisory_lock(int4, int4): this constant ("dbkt") and a hash of the database name.
_LOCK_CLASS = 0x64626B74


def checkpoint(step: str) -> None:
    if os.environ.get(PAUSE_ENV) == step:
        sys.stderr.write(f"dbkit: paused at {step}\n")
        sys.stderr.flush()
        while True:
            time.sleep(3600)


def guard_destructive(settings: Settings, server: Server, what: str) -> None:
    """Refuse protected databases always; production and non-local servers unless
    ALLOW_DESTRUCTIVE=1."""
    for pattern in settings.protected_databases:
        if fnmatch.fnmatchcase(server.dev_db, pattern):
            raise Refused(f"{server.dev_db} is protected (PROTECTED_DATABASES has {pattern}): "
                          f"refusing to {what}")
    if settings.allow_destructive:
        return
    if is_production(settings.environment):
        raise Refused(f"ENVIRONMENT={settings.environment} counts as production: refusing to "
                      f"{what} (set ALLOW_DESTRUCTIVE=1 if you really mean it)")
    if not server.is_local():
        raise Refused(f"{server.describe()} is not on this machine: refusing to {what} "
                      "(set ALLOW_DESTRUCTIVE=1 if you really mean it)")


def confirm(console: Console, *, word: str, given: str | None, what: str) -> None:
    console.confirm(word=word, given=word if given == YES else given, what=what)


@contextmanager
def project_lock(settings: Settings, verb: str) -> Iterator[None]:
    """One destructive dbkit run per project directory; a second one refuses at once."""
    # In dbkit's state folder (.dbkit/lock), made with its .gitignore on first use.
    path = (settings.state_dir or settings.project_dir) / "lock"
    settings.prepare(path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = Path(path).read_text().strip() or "another dbkit run"
            raise Refused(f"{holder} is running in this project; wait for it to finish") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"dbkit {verb} (pid {os.getpid()})".encode())
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def destructive_lock(settings: Settings, server: Server, verb: str) -> Iterator[None]:
    """The per-checkout lock, then the server's advisory lock on the database: a second
    destructive run on the same database, from any checkout or machine, refuses at once."""
    with project_lock(settings, verb), database_lock(server, verb):
        yield


@contextmanager
def database_lock(server: Server, verb: str) -> Iterator[None]:
    """``pg_try_advisory_lock`` keyed on the database name, on a connection of its own held
    for the whole run (it goes when the run does, even killed). The holder is named through
    its ``application_name``: verb, pid and host."""
    dbname = server.dev_db
    conn = server.connect(server.maintenance_db)
    try:
        try:
            host = socket.gethostname()[:24]
            with conn.cursor() as cur:
                cur.execute("SELECT set_config('application_name', %s, false)",
                            (f"dbkit {verb} pid {os.getpid()} host {host}"[:63],))
                cur.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))",
                            (_LOCK_CLASS, dbname))
                if not cur.fetchone()[0]:
                    raise Refused(f"{_holder(cur, dbname)} is running on database {dbname}; "
                                  "wait for it to finish")
        except psycopg2.Error as err:
            raise ServerUnreachable(f"cannot take the lock on {dbname}: "
                                    f"{first_line(err)}") from None
        yield
    finally:
        conn.close()


def _holder(cur: psycopg2.extensions.cursor, dbname: str) -> str:
    cur.execute(
        "SELECT a.application_name, a.pid, host(a.client_addr), a.client_hostname "
        "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s::bigint::oid "
        "AND l.objid = (hashtext(%s)::bigint & 4294967295)::oid AND l.objsubid = 2",
        (_LOCK_CLASS, dbname))
    row = cur.fetchone()
    if row is None:
        return "another dbkit run"
    app, backend, addr, client_host = row
    where = client_host or addr or "this machine (unix socket)"
    name = app if app.startswith("dbkit ") else f"{app or 'a session'} (not dbkit)"
    return f"{name} (server pid {backend}, from {where})"
