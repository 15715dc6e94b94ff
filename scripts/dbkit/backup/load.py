"""Checking a backup: checksums, can this server load it, and a test restore compared with
the manifest. Restore runs the same checks before it changes anything."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import tempfile
import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import psycopg2
import psycopg2.errors
import psycopg2.extensions

from dbkit.backup import asrole, sqlscan
from dbkit.backup.manifest import (
    DUMP_PLAIN,
    Backup,
    check_files,
    summary,
)
from dbkit.backup.script import copy_without_settings, psql_restricts, unknown_settings
from dbkit.console import Console
from dbkit.errors import BackupCorrupt, DbkitError, Refused, ToolError
from dbkit.pg import catalog, scratch, tools
from dbkit.pg.server import Server


def _major(version: str | None) -> int | None:
    match = re.match(r"(\d+)", version or "")
    return int(match.group(1)) if match else None


def loadable_problem(
    backup: Backup, *, server_major: int, reader_major: int
) -> str | None:
    """Why this server (and its pg_restore or psql, ``reader_major``) cannot load the dump."""
    dump = backup.dump
    assert dump is not None
    made_by = _major(backup.manifest.get("pg_dump_version"))
    source = _major(backup.manifest.get("server_version"))
    if source is not None and source > server_major:
        return (f"backup {backup.name} is of a PostgreSQL {source} database and this server is "
                f"{server_major}; PostgreSQL cannot load a dump into an older major version")
    tool = reader_tool(dump)
    if made_by is not None and made_by > reader_major:
        return (f"backup {backup.name} was written by pg_dump {made_by}; the {tool} that "
                f"would load it here is {reader_major}, too old to read it")
    return None


def reader_tool(dump: Path) -> str:
    """What loads a dump: psql for a plain one, pg_restore for an archive (custom, directory)."""
    return "psql" if dump.name == DUMP_PLAIN else "pg_restore"


def require_loadable(backup: Backup, server: Server) -> None:
    dump = backup.dump
    assert dump is not None
    _require_streamable(backup, server)
    reader = server.tool_version(reader_tool(dump))
    problem = loadable_problem(backup, server_major=server.major, reader_major=reader)
    if problem:
        raise Refused(f"{problem}; nothing was changed")


def _require_streamable(backup: Backup, server: Server) -> None:
    """Docker mode streams a dump into the container through stdin: one file, not a folder."""
    dump = backup.dump
    if dump is not None and dump.is_dir() and server.mode == "docker":
        raise Refused(f"backup {backup.name} is a directory dump (FORMAT=directory), which "
                      "docker mode cannot stream into the container; restore it in embedded "
                      "or url mode; nothing was changed")


def list_archive(server: Server, backup: Backup) -> int:
    """``pg_restore --list``: the archive's table of contents reads; how many entries."""
    dump = backup.dump
    assert dump is not None and reader_tool(dump) == "pg_restore"
    if server.mode == "docker" and not dump.is_dir():
        with dump.open("rb") as fh:
            proc = tools.run(server.tool("pg_restore", ["--list"]), stdin=fh,
                             what="pg_restore --list")
    else:
        proc = tools.run(server.tool("pg_restore", ["--list", str(dump)]),
                         what="pg_restore --list")
    lines = proc.stdout.decode(errors="replace").splitlines()
    return sum(1 for line in lines if line.strip() and not line.startswith(";"))


def restore_jobs() -> int:
    """pg_restore -j: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


@contextmanager
def _archive_script(server: Server, dump: Path, args: list[str],
                    dbname: str | None = None) -> Iterator[BinaryIO]:
    """pg_restore's SQL script of an archive (``pg_restore -f -``), streamed, nothing loaded.
    When the reader stops early, pg_restore is stopped too; when pg_restore itself failed
    (a truncated archive also ends its script mid-statement) its error is the one raised."""
    docker = server.mode == "docker"
    inv = server.tool("pg_restore", ["--no-password", *args, "-f", "-",
                                     *([] if docker else [str(dump)])], dbname)
    with (dump.open("rb") if docker else open(os.devnull, "rb")) as archive, \
            tempfile.TemporaryFile() as errors:
        try:
            proc = subprocess.Popen(inv.argv, env=inv.env, stdout=subprocess.PIPE,
                                    stderr=errors, stdin=archive)
        except OSError as err:
            raise ToolError(f"cannot run {inv.argv[0]}: {err.strerror}") from err
        assert proc.stdout is not None

        def failed(code: int) -> ToolError:
            errors.seek(0)
            return ToolError(f"pg_restore failed (exit {code}): "
                             f"{tools.mask(tools.stderr_tail(errors.read()), inv.secrets)}")
        try:
            yield proc.stdout
        except BaseException:
            code = proc.poll()
            if code is not None and code > 0:
                raise failed(code) from None
            proc.kill()
            raise
        finally:
            proc.stdout.close()
            code = proc.wait()
        if code != 0:
            raise failed(code)


def scan_archive(server: Server, dump: Path, trust: Collection[str] = ()) -> sqlscan.Scanned:
    """The SQL of every entry of an archive read through ``sqlscan`` before any of it runs."""
    with _archive_script(server, dump, []) as script:
        scanned = sqlscan.require_harmless(script, f"the archive {dump}", trust)
        script.read()
    return scanned


def load_dump(server: Server, backup: Backup, dbname: str,
              trust: Collection[str] = ()) -> dict[str, int] | None:
    """Load a backup's dump into an (empty) database; the first error stops it. What it
    would run is read through first (``sqlscan``), and it runs as a role that cannot reach
    beyond ``dbname`` (``asrole``): a backup is data, never code. The row counts, when that
    role read them (else None: count as the server's user)."""
    dump = backup.dump
    assert dump is not None
    _require_streamable(backup, server)
    loaded = asrole.Loaded()
    if reader_tool(dump) != "pg_restore":
        load_sql(server, dump, dbname, trust=trust, loaded=loaded)
        return loaded.counts
    scanned = scan_archive(server, dump, trust)
    with _as(server, dbname, scanned, loaded) as role, \
            _entries_for(server, dump, role) as listing:
        _restore_archive(server, dump, dbname, role, listing)
    return loaded.counts


def _restore_archive(server: Server, dump: Path, dbname: str, role: asrole.Role | None,
                     listing: Path | None) -> None:
    """The archive into ``dbname``: as ``role`` without owners and the entries the
    superuser runs after (``listing``), else as it is."""
    if unknown_settings(server.major):
        # pg_restore 17+ SETs transaction_timeout whatever the server: an older server
        # gets the archive as the SQL script pg_restore writes, without those lines.
        restore_through_script(server, dump, dbname, role=role, listing=listing)
        return
    args = ["--no-password", "--exit-on-error", "-d", dbname]
    if role is not None:
        args += ["--no-owner", "-L", str(listing)]
    if server.mode == "docker":
        # The file stays here and is streamed in; a stream allows one job only.
        with dump.open("rb") as fh:
            tools.run(_inv(server.tool("pg_restore", args, dbname), role), stdin=fh,
                      what="pg_restore")
    else:
        tools.run(_inv(server.tool("pg_restore", [*args, "-j", str(restore_jobs()),
                                                  str(dump)], dbname), role),
                  what="pg_restore")


@contextmanager
def _as(server: Server, dbname: str, scanned: sqlscan.Scanned,
        loaded: asrole.Loaded | None = None) -> Iterator[asrole.Role | None]:
    """The role to load as: none (the server's user) with ``TRUST_BACKUPS=1``, when a
    function in a language the user trusts needs a superuser, or in docker mode (the tools
    run in the container, as its superuser; the archive's list cannot be handed in)."""
    if scanned.trusted or scanned.languages or server.mode == "docker":
        yield None
        return
    with asrole.loading_role(server, dbname, scanned, loaded or asrole.Loaded()) as role:
        yield role


def _inv(inv: tools.Invocation, role: asrole.Role | None) -> tools.Invocation:
    return inv if role is None else role.tool(inv)


@contextmanager
def _entries_for(server: Server, dump: Path, role: asrole.Role | None) -> Iterator[Path | None]:
    """The archive's entries less those the superuser runs after the load (``asrole``:
    default privileges, comments on extensions), as a ``pg_restore -L`` file (none: all)."""
    if role is None:
        yield None
        return
    proc = tools.run(server.tool("pg_restore", ["--list", str(dump)]), what="pg_restore --list")
    with tempfile.NamedTemporaryFile(prefix="dbkit-list-", suffix=".txt") as listing:
        for line in proc.stdout.splitlines(keepends=True):
            if re.match(rb"^\d+; \d+ \d+ (ACL|DEFAULT ACL|COMMENT - EXTENSION) ", line):
                line = b";" + line
            listing.write(line)
        listing.flush()
        yield Path(listing.name)


def restore_through_script(server: Server, dump: Path, dbname: str, *,
                           role: asrole.Role | None = None, listing: Path | None = None) -> None:
    """pg_restore's SQL script of an archive (custom or directory), filtered, into psql (one
    job), as ``role`` when given."""
    picked = ["--no-owner", "-L", str(listing)] if role is not None and listing else []
    with _archive_script(server, dump, picked, dbname) as script:
        _psql_load(server, dbname, script, what=f"the script of {dump}", role=role)


def load_sql(server: Server, path: Path, dbname: str, *, written_now: bool = False,
             trust: Collection[str] = (),
             then: Callable[[psycopg2.extensions.connection], None] | None = None,
             loaded: asrole.Loaded | None = None) -> None:
    """Run an SQL file (a plain dump) with psql, streamed in; the first error stops it.
    Read through first (``sqlscan``): nothing runs when it holds what pg_dump never writes;
    not a file pg_dump ``written_now`` into a folder only this process writes. ``then``
    runs on a connection of the loading role, before the owners are set."""
    if written_now:  # its own \restrict key is found where it stands (copy_without_settings)
        with path.open("rb") as fh:
            _psql_load(server, dbname, fh, what=str(path))
        _then(server, dbname, None, then)
        return
    with path.open("rb") as fh:
        scanned = sqlscan.require_harmless(fh, str(path), trust)
    with _as(server, dbname, scanned, loaded) as role:
        with path.open("rb") as fh:
            _psql_load(server, dbname, fh, what=str(path), dump_key=scanned.key, role=role,
                       skip=scanned.skipped_lines() if role is not None else set())
        _then(server, dbname, role, then)


def _then(server: Server, dbname: str, role: asrole.Role | None,
          then: Callable[[psycopg2.extensions.connection], None] | None) -> None:
    if then is None:
        return
    conn = server.connect(dbname, as_role=(role.name, role.password) if role else None)
    try:
        then(conn)
    finally:
        conn.close()


def _psql_load(server: Server, dbname: str, src: BinaryIO, *, what: str,
               dump_key: bytes | None = None, role: asrole.Role | None = None,
               skip: set[int] | frozenset[int] = frozenset()) -> None:
    """psql reads ``src`` through a pipe: in its restricted mode under a key of dbkit's own
    (``\\restrict``: every meta-command refused, where psql knows it), without the dump's
    own ``\\restrict``/``\\unrestrict`` lines (``dump_key``) and, on a server older than a
    setting the dump's header SETs (``_NEW_SETTINGS``), without those lines; as ``role``
    when given, without the lines ``skip`` names (the superuser runs them, ``asrole``)."""
    args = ["--no-password", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dbname]
    inv = _inv(server.tool("psql", args, dbname), role)
    read_fd, write_fd = os.pipe()
    failed: list[OSError] = []
    own_key = secrets.token_hex(24).encode() if psql_restricts(server) else None

    def feed() -> None:
        try:
            with os.fdopen(write_fd, "wb") as out:
                if own_key is not None:
                    out.write(b"\\restrict " + own_key + b"\n")
                copy_without_settings(src, out, server.major, dump_key, skip)
        except BrokenPipeError:
            pass  # psql stopped reading: its own error says why
        except OSError as err:
            failed.append(err)

    writer = threading.Thread(target=feed, name="load_sql", daemon=True)
    writer.start()
    try:
        with os.fdopen(read_fd, "rb") as pipe:
            tools.run(inv, stdin=pipe, stdout=subprocess.DEVNULL, what="psql")
    finally:
        writer.join()
    if failed:  # psql may have loaded a truncated file without complaint
        raise ToolError(f"reading {what} failed: {failed[0].strerror or failed[0]}")


def compare_with_manifest(server: Server, dbname: str, backup: Backup,
                          trust: Collection[str] = (),
                          counts: dict[str, int] | None = None) -> list[str]:
    """Where a database differs from the schema fingerprint and row counts of a manifest.

    A backup taken on an older major: the same schema reads differently from a newer
    catalog (18 lists NOT NULL constraints, 16 drops needless table qualifiers in views), so
    the restored database is compared with the backup's own schema.sql (its checksum checked
    before) loaded on this server, instead of with the fingerprint the old major recorded.
    """
    manifest = backup.manifest
    conn = server.connect(dbname, pinned=True)
    try:
        if counts is None:
            counts = catalog.table_row_counts(conn)
        fingerprint = catalog.fingerprint(conn)
        matviews = populated_matviews(conn)
    finally:
        conn.close()
    problems = []
    expected = manifest.get("schema_fingerprint")
    source = _major(manifest.get("server_version"))
    if source is not None and source != server.major and (backup.path / "schema.sql").is_file():
        expected = recreated_fingerprint(server, backup.path / "schema.sql", matviews,
                                        trust=trust)
    if fingerprint != expected:
        problems.append("the schema differs from the one recorded in the manifest")
    expected = manifest.get("row_counts") or {}
    for table in sorted(set(counts) | set(expected)):
        if table not in counts:
            problems.append(f"{table}: missing")
        elif table not in expected:
            problems.append(f"{table}: not in the manifest")
        elif counts[table] != expected[table]:
            problems.append(f"{table}: {counts[table]} rows, the manifest says {expected[table]}")
    return problems


def trial_restore(server: Server, backup: Backup, out: Console, dbname: str,
                  trust: Collection[str] = ()) -> None:
    """Load into ``dbname`` and compare with the manifest; BackupCorrupt if they differ."""
    with out.step(f"Restoring {backup.name} into a scratch database"):
        try:
            counts = load_dump(server, backup, dbname, trust)
        except ToolError as err:
            raise BackupCorrupt(f"backup {backup.name} does not restore: {err.message}; "
                                "nothing was changed") from None
    with out.step("Comparing it with the manifest (schema fingerprint, row counts)"):
        problems = compare_with_manifest(server, dbname, backup, trust, counts)
    if problems:
        raise BackupCorrupt(
            f"backup {backup.name} restores to something else than it recorded: "
            f"{summary(problems)}; nothing was changed",
            detail="\n".join(problems),
        )


def verify_backup(server: Server | None, backup: Backup, out: Console,
                  trust: Collection[str] = ()) -> list[str]:
    """Every check a backup can pass; the problems found (none: it is good)."""
    with out.step(f"Checking the checksums of {len(backup.manifest['files'])} files"):
        problems = check_files(backup)
    if problems or backup.kind != "full":
        return problems
    assert server is not None
    require_loadable(backup, server)
    dump = backup.dump
    assert dump is not None
    try:
        if reader_tool(dump) == "pg_restore":
            with out.step("Listing the archive (pg_restore --list)"):
                entries = list_archive(server, backup)
            out.say(f"  {entries} entries")
        with scratch.scratch_database(server, "verify") as dbname:
            trial_restore(server, backup, out, dbname, trust)
    except ToolError as err:
        problems.append(err.message)
    except BackupCorrupt as err:
        problems.extend(err.detail.splitlines() if err.detail else [err.message])
    for problem in problems:
        if tools.server_failed(problem):
            raise ToolError(f"could not verify backup {backup.name}: the server failed, not "
                            f"the backup ({problem}); its manifest is unchanged") from None
    return problems



def populated_matviews(conn: psycopg2.extensions.connection) -> list[str]:
    """Materialized views holding data (a restore refreshes exactly these), quoted names."""
    with conn.cursor() as cur:
        cur.execute("SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) "
                    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE c.relkind = 'm' AND c.relispopulated ORDER BY 1")
        return [row[0] for row in cur.fetchall()]


def recreated_fingerprint(server: Server, schema_sql: Path, matviews: list[str], *,
                          written_now: bool = False, trust: Collection[str] = ()) -> str:
    """The schema fingerprint of what this dump recreates: schema.sql loaded into a scratch
    database, its populated materialized views refreshed as a restore would.

    Not the live database's own fingerprint: PostgreSQL re-deparses some expressions on
    reload (``col IN ('a', 'b')`` on a varchar column comes back as ``ANY (ARRAY[...::text])``),
    so a faithful restore never matches the live text. This is also the proof, made before
    the backup is published, that its schema loads.
    """
    with scratch.scratch_database(server, "schemacheck") as dbname:
        try:
            # refreshed by the loading role: a view's query is the backup's code
            load_sql(server, schema_sql, dbname, written_now=written_now, trust=trust,
                     then=lambda conn: _refresh(conn, matviews))
        except ToolError as err:
            raise ToolError(f"the schema dump does not load into a scratch database, so this "
                            f"backup could never be restored: {err.message}") from None
        conn = server.connect(dbname)
        try:
            return catalog.fingerprint(conn)
        finally:
            conn.close()


def _refresh(conn: psycopg2.extensions.connection, matviews: list[str]) -> None:
    """REFRESH each; one that reads another not yet refreshed waits for the next round."""
    pending = list(matviews)
    while pending:
        failed = []
        for name in pending:
            try:
                with conn.cursor() as cur:
                    cur.execute(f"REFRESH MATERIALIZED VIEW {name}")  # quoted by quote_ident
            except psycopg2.errors.ObjectNotInPrerequisiteState:
                failed.append(name)
        if len(failed) == len(pending):
            raise DbkitError(f"cannot refresh materialized views {', '.join(failed)} in the "
                             "scratch copy of the schema")
        pending = failed
