"""The database janitor: throwaway databases that are always dropped, and name swaps.

Every build dbkit needs for itself happens in a database made here, never in the user's
development database. Names carry our pid, so a run that was killed with -9 can be
recognised and swept by the next one.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
from psycopg2 import sql

from dbkit import tools
from dbkit.errors import DbkitError, ServerUnreachable, first_line
from dbkit.server import Server

SCRATCH_PREFIX = "dbkit_"
_SCRATCH_RE = re.compile(r"^dbkit_[a-z]+_(\d+)_[0-9a-f]{8}$")


def create_database(server: Server, name: str, *, template: str | None = None) -> None:
    conn = server.connect(server.maintenance_db)
    try:
        with conn.cursor() as cur:
            stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
            if template:
                stmt += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
            cur.execute(stmt)
    except psycopg2.Error as err:
        raise DbkitError(f"cannot create database {name}: {first_line(err)}") from None
    finally:
        conn.close()


def terminate_connections(cur: psycopg2.extensions.cursor, name: str) -> None:
    cur.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = %s AND pid <> pg_backend_pid()",
        (name,),
    )


def drop_database(server: Server, name: str) -> None:
    """Drop a database, closing its connections first; absent is fine."""
    conn = server.connect(server.maintenance_db)
    try:
        with conn.cursor() as cur:
            terminate_connections(cur, name)
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
    except psycopg2.Error as err:
        raise DbkitError(f"cannot drop database {name}: {first_line(err)}") from None
    finally:
        conn.close()


def scratch_name(purpose: str) -> str:
    purpose = re.sub(r"[^a-z]", "", purpose.lower())[:20] or "scratch"
    return f"{SCRATCH_PREFIX}{purpose}_{os.getpid()}_{secrets.token_hex(4)}"


@contextmanager
def scratch_database(server: Server, purpose: str = "scratch") -> Iterator[str]:
    """A fresh, uniquely named database, dropped on success, error or Ctrl-C."""
    name = scratch_name(purpose)
    create_database(server, name)
    try:
        yield name
    finally:
        drop_resolutely(server, name)


def drop_resolutely(server: Server, name: str) -> None:
    # A second Ctrl-C must not leave the scratch database behind: hold SIGINT while dropping.
    previous = signal.getsignal(signal.SIGINT)
    interrupted: list[int] = []
    try:
        signal.signal(signal.SIGINT, lambda signum, frame: interrupted.append(signum))
    except ValueError:  # not the main thread
        previous = None
    try:
        for attempt in range(3):
            try:
                drop_database(server, name)
                break
            except (DbkitError, ServerUnreachable):
                if attempt == 2:
                    raise
                time.sleep(0.5)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if interrupted:
        raise KeyboardInterrupt


def stale_scratch_databases(server: Server) -> list[str]:
    """Scratch databases whose owning dbkit process is gone (killed runs)."""
    conn = server.connect(server.maintenance_db)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database WHERE datname LIKE 'dbkit\\_%'")
            names = [row[0] for row in cur.fetchall()]
    finally:
        conn.close()
    stale = []
    for name in names:
        match = _SCRATCH_RE.match(name)
        if match and not tools.pid_alive(int(match.group(1))):
            stale.append(name)
    return stale


def sweep_stale(server: Server) -> list[str]:
    """Drop what killed runs left behind; only on a server on this machine (pids are ours)."""
    if not server.is_local():
        return []
    stale = stale_scratch_databases(server)
    for name in stale:
        drop_database(server, name)
    return stale


def swap_databases(server: Server, *, current: str, replacement: str, keep_as: str) -> None:
    """In one transaction: ``current`` becomes ``keep_as`` and ``replacement`` becomes
    ``current``. Either both renames happen or neither does."""
    conn = server.connect(server.maintenance_db, autocommit=False)
    try:
        for attempt in range(10):
            try:
                with conn.cursor() as cur:
                    # New sessions can slip in between terminate and rename; then we retry.
                    terminate_connections(cur, current)
                    terminate_connections(cur, replacement)
                    rename = "ALTER DATABASE {} RENAME TO {}"
                    cur.execute(sql.SQL(rename).format(
                        sql.Identifier(current), sql.Identifier(keep_as)))
                    cur.execute(sql.SQL(rename).format(
                        sql.Identifier(replacement), sql.Identifier(current)))
                conn.commit()
                return
            except psycopg2.errors.ObjectInUse:
                conn.rollback()
                if attempt == 9:
                    raise DbkitError(
                        f"database {current} keeps getting new connections; stop the app "
                        "and try again (nothing was changed)"
                    ) from None
                time.sleep(0.2 * (attempt + 1))
            except psycopg2.Error as err:
                conn.rollback()
                raise DbkitError(
                    f"cannot swap {replacement} into {current}: {first_line(err)} "
                    "(nothing was changed)"
                ) from None
    finally:
        conn.close()
