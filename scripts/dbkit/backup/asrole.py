"""A backup loads as a role that cannot reach beyond its scratch database.

The scan (``sqlscan``) refuses what pg_dump never writes, but a function body pg_dump does
write (plpgsql, SQL) may call ``COPY … TO PROGRAM``, ``pg_read_file`` or ``lo_import`` when a
CHECK, a DEFAULT, an index or a trigger runs it during the load: as a superuser, that is the
server's OS user. So the load connects as a fresh role with no rights of its own
(``NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS``, member of nothing), which owns only the
scratch database it loads into; its password is random, never shown, and the server keeps
only its SCRAM verifier. What such a role cannot do and a dump needs, the superuser does,
each statement checked to be of a form that runs no code:

after the load the database is taken back (and whatever its owner set on it undone), then
the owners (``ALTER … OWNER TO``: the role cannot give away what it owns), the grants (as
though the owner gave them, as pg_restore run by a superuser does),
``ALTER DEFAULT PRIVILEGES FOR ROLE`` and ``COMMENT ON EXTENSION``; then every object still
the role's goes to the superuser and the role is dropped. The role creates the extensions
a database's owner may create (trusted ones: pgcrypto, citext, pg_trgm, hstore …); a backup
needing another (postgis, postgres_fdw), or anything else only a superuser may create, loads
only with ``TRUST_BACKUPS=1``.

A server user who is not a superuser loads as itself: it already cannot do those things.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from dbkit.backup.sqlscan import Scanned
from dbkit.console import mask
from dbkit.errors import BackupCorrupt
from dbkit.pg import catalog
from dbkit.pg.server import Server
from dbkit.pg.tools import Invocation, pid_alive

PREFIX = "dbkit_load_"


@dataclass
class Role:
    name: str
    password: str = ""

    def tool(self, inv: Invocation) -> Invocation:
        """The same client tool, connecting as this role."""
        env = {**inv.env, "PGUSER": self.name, "PGPASSWORD": self.password}
        return Invocation(inv.argv, env, (*inv.secrets, self.password))


@dataclass
class Loaded:
    """What the load learnt as the loading role: the row count of every table, read while
    the role owned them (a superuser's count could run the backup's code: a partial index's
    predicate, evaluated by the planner)."""
    counts: dict[str, int] | None = None


@contextmanager
def loading_role(server: Server, dbname: str, scanned: Scanned,
                 loaded: Loaded) -> Iterator[Role | None]:
    """A role to load ``dbname`` as (None: the server's user is no superuser, load as it);
    on success the row counts are read as it, then the superuser's part is done; always the
    database is taken back and the role dropped."""
    role = Role(f"{PREFIX}{os.getpid()}_{secrets.token_hex(4)}", secrets.token_urlsafe(24))
    conn = server.connect(dbname, pinned=True)
    created = False
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            superuser = bool((cur.fetchone() or (False,))[0])
        if not superuser:
            yield None
            return
        with conn.cursor() as cur:
            verifier = psycopg2.extensions.encrypt_password(role.password, role.name, conn,
                                                            "scram-sha-256")
            # INHERIT: a database's owner has the rights of pg_database_owner only through it
            # (15+: the owner of schema public); the role is member of nothing else
            cur.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                                "NOREPLICATION NOBYPASSRLS PASSWORD {}").format(
                sql.Identifier(role.name), sql.Literal(verifier)))
            created = True
            cur.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                sql.Identifier(dbname), sql.Identifier(role.name)))
        yield role
        counter = server.connect(dbname, as_role=(role.name, role.password), pinned=True)
        try:
            loaded.counts = catalog.table_row_counts(counter)
        finally:
            counter.close()
        _take_back(conn, dbname)
        with conn.cursor() as cur:
            for statement in scanned.deferred:
                _run(cur, statement.text, server)
    finally:
        try:
            if created:
                _take_back(conn, dbname)
                drop_role(server, conn, role.name)
        except psycopg2.Error:
            pass  # the next run's sweep drops it (sweep_roles), with its scratch database
        finally:
            conn.close()


def _take_back(conn: psycopg2.extensions.connection, dbname: str) -> None:
    """Whatever the role, as the database's owner, set on it during the load (a search_path
    for every later session, IS_TEMPLATE that blocks its drop, a connection limit) undone,
    and the database the superuser's again."""
    name = sql.Identifier(dbname)
    with conn.cursor() as cur:
        cur.execute(sql.SQL("ALTER DATABASE {} OWNER TO CURRENT_USER").format(name))
        cur.execute(sql.SQL("ALTER DATABASE {} IS_TEMPLATE false ALLOW_CONNECTIONS true "
                            "CONNECTION LIMIT -1").format(name))
        cur.execute(sql.SQL("ALTER DATABASE {} RESET ALL").format(name))


def _run(cur: psycopg2.extensions.cursor, text: str, server: Server) -> None:
    try:
        cur.execute(text)  # no parameters: a % in a name stays as it is
    except psycopg2.Error as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise BackupCorrupt(f"does not restore: {mask(first, server.secrets)} (in {text[:80]})"
                            ) from None


def drop_role(server: Server, conn: psycopg2.extensions.connection, name: str) -> None:
    """What the role still owns in ``conn``'s database (and that database) goes to the
    superuser; its grants go; then the role."""
    with conn.cursor() as cur:
        cur.execute(sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER").format(sql.Identifier(name)))
        cur.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        cur.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def sweep_roles(server: Server) -> list[str]:
    """Roles of killed loads (their pid gone) that own nothing any more: dropped."""
    conn = server.connect(server.maintenance_db)
    dropped = []
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE %s",
                        (PREFIX.replace("_", "\\_") + "%",))
            names = [row[0] for row in cur.fetchall()]
            for name in names:
                pid = name[len(PREFIX):].split("_", 1)[0]
                if pid.isdigit() and pid_alive(int(pid)):
                    continue
                try:
                    cur.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))
                    dropped.append(name)
                except psycopg2.Error:
                    pass  # it still owns something in a database being dropped: next run
    finally:
        conn.close()
    return dropped

