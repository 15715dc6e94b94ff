"""The database janitor: throwaway databases that are always dropped, and name swaps.

Every build dbkit needs for itself happens in a database made here, never in the user's
development database. Names carry our pid, so a run that was killed with -9 can be
recognised and swept by the next one.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg2
from psycopg2 import sql

from dbkit.console import Console
from dbkit.errors import DbkitError, ServerUnreachable, first_line
from dbkit.pg import tools
from dbkit.pg.server import Server
from dbkit.retry import no_interrupt, retry

SCRATCH_PREFIX = "dbkit_"
_SCRATCH_RE = re.compile(r"^dbkit_[a-z]+_(\d+)_[0-9a-f]{8}$")
# Template databases dbkit keeps on purpose (validate's built chains): never stale scratch.
TEMPLATE_PREFIX = "dbkit_tpl_"
_TEMPLATE_RE = re.compile(r"^dbkit_tpl_[0-9a-f]{20}$")


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
def scratch_database(server: Server, purpose: str = "scratch", *,
                     template: str | None = None) -> Iterator[str]:
    """A fresh, uniquely named database (a copy of ``template`` when given), dropped on
    success, error or Ctrl-C."""
    name = scratch_name(purpose)
    try:
        # Inside the try: a Ctrl-C during or right after CREATE DATABASE still drops it
        # (DROP ... IF EXISTS is harmless when the create never happened).
        server.create_database(name, template=template)
        yield name
    finally:
        drop_resolutely(server, name)


def drop_resolutely(server: Server, name: str) -> None:
    # A second Ctrl-C must not leave the scratch database behind: hold SIGINT while dropping.
    with no_interrupt():
        retry(lambda: drop_database(server, name), attempts=3, wait=0.5,
              on=(DbkitError, ServerUnreachable))


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
        if is_template(name):
            continue
        match = _SCRATCH_RE.match(name)
        if match and not tools.pid_alive(int(match.group(1))):
            stale.append(name)
    return stale


def is_template(name: str) -> bool:
    """A template database dbkit keeps (``dbkit_tpl_`` + 20 hex digits)."""
    return bool(_TEMPLATE_RE.match(name))


def template_name(key: str) -> str:
    """The template database for a key (any text: hashed into the name)."""
    return TEMPLATE_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:20]


def templates(server: Server) -> dict[str, str]:
    """dbkit's template databases on the server and their comments (what each holds)."""
    conn = server.connect(server.maintenance_db)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT d.datname, coalesce(shobj_description(d.oid, 'pg_database'), '') "
                        "FROM pg_database d WHERE d.datname LIKE 'dbkit\\_tpl\\_%'")
            return {name: comment for name, comment in cur.fetchall() if is_template(name)}
    finally:
        conn.close()


def keep_as_template(server: Server, built: str, name: str, comment: str) -> bool:
    """``built`` (a scratch database) becomes the template ``name``, with ``comment``.

    False when ``name`` exists already (another run made it first): ``built`` is then left
    as it is, for the caller to drop.
    """
    conn = server.connect(server.maintenance_db)
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(built), sql.Literal(comment)))
    finally:
        conn.close()
    try:
        rename_database(server, built, name)
    except DbkitError:
        if server.database_exists(name):
            return False
        raise
    return True


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
    rename_databases(server, [(current, keep_as), (replacement, current)])


def rename_database(server: Server, old: str, new: str) -> None:
    rename_databases(server, [(old, new)])


def rename_databases(server: Server, renames: list[tuple[str, str]]) -> None:
    """``ALTER DATABASE old RENAME TO new`` for each pair, all in one transaction."""
    conn = server.connect(server.maintenance_db, autocommit=False)

    def attempt() -> None:
        try:
            with conn.cursor() as cur:
                # New sessions can slip in between terminate and rename; then we retry.
                for old, _ in renames:
                    terminate_connections(cur, old)
                for old, new in renames:
                    cur.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                        sql.Identifier(old), sql.Identifier(new)))
            conn.commit()
        except psycopg2.Error:
            conn.rollback()
            raise

    def busy(err: BaseException) -> BaseException:
        return DbkitError(f"database {renames[0][0]} keeps getting new connections; stop the "
                          "app and try again (nothing was changed)")

    try:
        retry(attempt, attempts=10, wait=lambda n: 0.2 * (n + 1),
              on=psycopg2.errors.ObjectInUse, give_up=busy)
    except psycopg2.Error as err:
        old, new = renames[-1]
        raise DbkitError(f"cannot rename {old} to {new}: {first_line(err)} "
                         "(nothing was changed)") from None
    finally:
        conn.close()


def rebuild(server: Server, dbname: str, build: Callable[[str], None], out: Console) -> None:
    """Build a new ``dbname`` with ``build(scratch_name)`` and swap it in; the old one goes.

    The new database is built first: if ``build`` fails, the old one is untouched.
    """
    with scratch_database(server, "reset") as fresh:
        with out.step("Building a fresh database from the chain"):
            build(fresh)
        if server.database_exists(dbname):
            # Named like a scratch database, so a run killed before the drop is swept.
            old = scratch_name("resetold")
            # A database cannot be renamed while sessions use it: said as restore-full says it.
            out.say(f"Sessions connected to {dbname} are ended for the swap (open transactions "
                    "roll back; the app reconnects to the rebuilt database)")
            with out.step(f"Swapping it in for {dbname}"):
                swap_databases(server, current=dbname, replacement=fresh, keep_as=old)
            drop_resolutely(server, old)
        else:
            server.create_database(dbname, template=fresh)
