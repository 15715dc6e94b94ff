"""Taking backups (migrations only, or migrations + the whole database), listing, pruning.

A backup is written into a hidden temporary folder beside its final place and renamed into
place only once every file is on disk and checksummed; a failure (or a kill) leaves nothing
that looks like a finished backup. Folders are 0700 and files 0600: backups hold data.

``take_full_backup`` and ``take_migrations_backup`` are the functions other verbs (restore,
squash) call; the verbs below are thin wrappers around them.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

import psycopg2

from dbkit import __version__
from dbkit.backup.load import populated_matviews, recreated_fingerprint, restore_jobs
from dbkit.backup.manifest import (
    DUMP_CUSTOM,
    DUMP_DIRECTORY,
    DUMP_PLAIN,
    FORMAT_VERSION,
    MIGRATIONS,
    Backup,
    checksum_files,
    write_manifest,
    write_private,
)
from dbkit.console import Console, mask
from dbkit.errors import ConfigError, DbkitError, ServerUnreachable
from dbkit.files import fsync_dir
from dbkit.pg import catalog, locks, tools
from dbkit.pg.mode import chain_server
from dbkit.pg.server import Server
from dbkit.project import versions
from dbkit.project.chain import AlembicProject
from dbkit.settings import Settings

FORMATS = {"custom": DUMP_CUSTOM, "plain": DUMP_PLAIN, "directory": DUMP_DIRECTORY}
TMP_PREFIX = ".tmp-"
_TMP_RE = re.compile(r"^\.tmp-.*-(\d+)-[0-9a-f]{8}$")


class Draft:
    """A backup being written: a private temporary folder that becomes the backup on publish."""

    def __init__(self, backup_dir: Path) -> None:
        self.backup_dir = backup_dir
        # UTC: names and order must not depend on the machine's time zone or daylight saving
        # (older backups have local-time names; their manifest's offset orders them right).
        self.started = datetime.now(timezone.utc)
        self.clock = time.monotonic()
        self.stamp = self.started.strftime("%Y%m%d_%H%M%S")
        self.path = backup_dir / (
            f"{TMP_PREFIX}backup-{self.stamp}-{os.getpid()}-{secrets.token_hex(4)}"
        )
        self.path.mkdir(mode=0o700)
        self.path.chmod(0o700)

    def file(self, rel: str) -> Path:
        """The path for a new file in the draft, its folders created private."""
        path = self.path / rel
        for parent in reversed(path.relative_to(self.path).parents[:-1]):
            folder = self.path / parent
            if not folder.is_dir():
                folder.mkdir(mode=0o700)
                folder.chmod(0o700)
        return path

    def write(self, rel: str, data: bytes | str) -> None:
        write_private(self.file(rel), data.encode() if isinstance(data, str) else data)

    @contextmanager
    def open(self, rel: str) -> Iterator[BinaryIO]:
        """A new 0600 file for a tool to write into; flushed to disk when closed."""
        fd = os.open(self.file(rel), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())

    def publish(self, manifest: dict[str, Any]) -> Backup:
        """Checksum, write the manifest, and rename into the first free name of the timestamp."""
        manifest["files"] = checksum_files(self.path)
        manifest["duration_s"] = round(time.monotonic() - self.clock, 2)
        for folder in [p for p in self.path.rglob("*") if p.is_dir()]:
            fsync_dir(folder)
        write_manifest(self.path, manifest)
        number = 1
        while True:
            name = self.stamp if number == 1 else f"{self.stamp}_{number}"
            target = self.backup_dir / name
            number += 1
            if target.exists() or target.is_symlink():
                continue
            try:
                os.rename(self.path, target)
            except OSError as err:
                if err.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    continue  # another run took this name a moment ago
                raise
            fsync_dir(self.backup_dir)
            return Backup(name, target, manifest)


@contextmanager
def draft(backup_dir: Path, settings: Settings | None = None) -> Iterator[Draft]:
    """A Draft that is removed if anything goes wrong; disk errors become one line."""
    try:
        if not backup_dir.exists():
            if settings is not None:
                settings.prepare(backup_dir)
            backup_dir.mkdir(parents=True, mode=0o700)
        sweep_unfinished(backup_dir)
        current = Draft(backup_dir)
    except OSError as err:
        raise ConfigError(f"cannot write to BACKUP_DIR {backup_dir}: {err.strerror}") from None
    try:
        yield current
    except OSError as err:
        shutil.rmtree(current.path, ignore_errors=True)
        raise DbkitError(
            f"cannot write the backup in {backup_dir}: {err.strerror}; "
            "the unfinished backup was removed"
        ) from None
    except DbkitError as err:
        shutil.rmtree(current.path, ignore_errors=True)
        err.message += "; the unfinished backup was removed"
        raise
    except BaseException:
        shutil.rmtree(current.path, ignore_errors=True)
        raise


def sweep_unfinished(backup_dir: Path) -> list[str]:
    """Remove temporary folders left by killed runs (their pid is gone)."""
    swept = []
    for path in backup_dir.iterdir():
        match = _TMP_RE.match(path.name)
        if match and path.is_dir() and not tools.pid_alive(int(match.group(1))):
            shutil.rmtree(path, ignore_errors=True)
            swept.append(path.name)
    return swept


def copy_migrations(d: Draft, versions_dir: Path) -> None:
    """The versions directory, layout kept, into the backup's migrations/."""
    if not versions_dir.is_dir():
        raise ConfigError(f"the versions directory {versions_dir} does not exist")
    d.file(f"{MIGRATIONS}/x")  # the folder exists even for an empty chain
    for rel, path in versions.file_paths(versions_dir):
        d.write(f"{MIGRATIONS}/{rel}", path.read_bytes())


def git_commit(folder: Path) -> str | None:
    try:
        proc = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else None


def current_text(info: dict[str, Any]) -> str:
    """What ``alembic current`` prints: one revision per line, ``(head)`` where it is one."""
    if info["current"] is None:
        return "unknown: alembic current failed (see the manifest's alembic_errors)\n"
    heads = set(info["heads"] or [])
    lines = [f"{rev} (head)" if rev in heads else rev for rev in info["current"]]
    return "\n".join(lines or ["(no revision: the database is at base)"]) + "\n"


def read_project(project: AlembicProject, out: Console, dbname: str | None = None,
                 ) -> dict[str, Any]:
    """Versions dir, heads, history, current; a broken chain is recorded, not fatal."""
    return checked_info(project, out, project.backup_info(dbname))


def checked_info(project: AlembicProject, out: Console, info: dict[str, Any]) -> dict[str, Any]:
    """What ``backup_info`` found, its errors masked and said once."""
    hidden = project.server.secrets if project.server else ()
    info["errors"] = [mask(e, hidden) for e in info["errors"]]
    for error in info["errors"]:
        out.result(f"warning: {error} (backing up anyway)")
    if info["history"] is None:
        info["history"] = "unknown: alembic history failed (see the manifest's alembic_errors)\n"
    return info


def _manifest(kind: str, d: Draft, settings: Settings, info: dict[str, Any],
              note: str | None) -> dict[str, Any]:
    versions = Path(info["versions_dir"])
    try:
        versions_rel = versions.relative_to(settings.alembic_config.parent).as_posix()
    except ValueError:
        versions_rel = versions.as_posix()
    return {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "tool_version": __version__,
        "created_at": d.started.isoformat(timespec="seconds"),
        "duration_s": None,
        "server_version": None,
        "pg_dump_version": None,
        "database": None,
        "mode": None,
        "alembic_heads": sorted(info["heads"]) if info["heads"] is not None else None,
        "current_revision": info["current"],
        "alembic_errors": info["errors"],
        "versions_dir": versions_rel,
        "git_commit": git_commit(settings.backend_dir),
        "note": note,
        "files": {},
    }


def take_migrations_backup(
    settings: Settings, out: Console, *, project: AlembicProject | None = None,
    note: str | None = None, info: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Backup:
    """Copy the versions directory into a new backup (no database needed). ``info``: what
    ``project.backup_info()`` already returned (saves an Alembic child); ``extra``: more
    manifest fields."""
    project = project or AlembicProject(settings, chain_server(settings), out=out)
    with draft(settings.backup_dir, settings) as d:
        info = (read_project(project, out) if info is None
                else checked_info(project, out, dict(info)))
        with out.step("Backing up the migrations"):
            copy_migrations(d, Path(info["versions_dir"]))
            d.write("migration_history.txt", info["history"])
            manifest = _manifest("migrations", d, settings, info, note)
            manifest.update(extra or {})
            return d.publish(manifest)


def take_full_backup(
    settings: Settings, server: Server, out: Console, *, project: AlembicProject | None = None,
    dbname: str | None = None, fmt: str = "custom", note: str | None = None,
) -> Backup:
    """Migrations, the whole database, its schema, history and current revision."""
    if fmt not in FORMATS:
        raise ConfigError(f"FORMAT={fmt!r} is not one of {', '.join(FORMATS)}")
    if fmt == "directory" and server.mode == "docker":
        raise ConfigError("FORMAT=directory is not available in docker mode: pg_dump runs in "
                          "the container and a directory dump cannot be streamed out of it; "
                          "use FORMAT=custom (the default)")
    dbname = dbname or server.dev_db
    project = project or AlembicProject(settings, server, out=out)
    with draft(settings.backup_dir, settings) as d, ThreadPoolExecutor(max_workers=1) as pool:
        # An Alembic child process takes a moment: it reads the chain while pg_dump works.
        reading = pool.submit(project.backup_info, dbname)
        with out.step(f"Dumping {dbname} ({fmt} format) and checking its schema loads"):
            try:
                facts = dump_database(server, d, dbname, fmt)
            except DbkitError as err:
                if locks.timed_out(err):
                    raise DbkitError(locks.waited(server, dbname, "the backup")) from None
                raise
        info = checked_info(project, out, reading.result())
        with out.step("Backing up the migrations"):
            copy_migrations(d, Path(info["versions_dir"]))
            d.write("migration_history.txt", info["history"])
            d.write("current_revision.txt", current_text(info))
        manifest = _manifest("full", d, settings, info, note)
        manifest.update(facts, database=dbname, mode=server.mode)
        with out.step("Writing checksums"):
            return d.publish(manifest)


def dump_database(server: Server, d: Draft, dbname: str, fmt: str) -> dict[str, Any]:
    """pg_dump (data, and schema only) with the row counts, all from one snapshot, and the
    fingerprint of the schema the dump recreates.

    The counts are read in the snapshot both pg_dump runs import, so they describe exactly
    what the dump holds even while the application keeps writing. One connection only holds
    the snapshot: an error while reading cannot pull it from under pg_dump. Everything but
    the data dump itself happens while that runs.
    """
    version = tools.run(server.tool("pg_dump", ["--version"], dbname), what="pg_dump --version")
    pg_dump_version = version.stdout.decode().strip().split()[-1]
    holder = _snapshot_session(server, dbname)
    reader = None
    try:
        with holder.cursor() as cur:
            cur.execute("SHOW server_version")
            server_version = cur.fetchone()[0].split()[0]
            cur.execute("SELECT pg_export_snapshot()")
            snapshot = cur.fetchone()[0]
        reader = _snapshot_session(server, dbname, snapshot)
        common = ["--no-password", f"--snapshot={snapshot}"]
        if server.settings.lock_wait_timeout > 0:
            ms = int(server.settings.lock_wait_timeout * 1000)
            common.append(f"--lock-wait-timeout={ms}")
        with ExitStack() as files, ThreadPoolExecutor(max_workers=2) as pool:
            schema_fh = files.enter_context(d.open("schema.sql"))
            if fmt == "directory":
                # pg_dump -j writes one file per table into a folder it creates (0700).
                jobs = ["--jobs", str(restore_jobs()), "-f", str(d.path / DUMP_DIRECTORY)]
                data = pool.submit(
                    tools.run, server.tool("pg_dump", ["--format=directory", *jobs, *common],
                                           dbname),
                    stdout=subprocess.DEVNULL, what="pg_dump",
                )
            else:
                data_fh = files.enter_context(d.open(FORMATS[fmt]))
                data = pool.submit(
                    tools.run, server.tool("pg_dump", [f"--format={fmt}", *common], dbname),
                    stdout=data_fh, what="pg_dump",
                )
            schema = pool.submit(
                tools.run, server.tool("pg_dump", ["--schema-only", *common], dbname),
                stdout=schema_fh, what="pg_dump --schema-only",
            )
            failed: psycopg2.Error | None = None
            try:
                row_counts = catalog.table_row_counts(reader)
                matviews = populated_matviews(reader)
            except psycopg2.Error as err:
                failed = err
            schema_error = schema.exception()
            if failed is None and schema_error is None:
                fingerprint = pool.submit(recreated_fingerprint, server,
                                          d.path / "schema.sql", matviews, written_now=True)
            data.result()  # the data dump's failure is the better message: raise it first
            if schema_error is not None:
                raise schema_error
        if fmt == "directory":
            make_private(d.path / DUMP_DIRECTORY)
        if failed is not None:
            first = str(failed).strip().splitlines()[0] if str(failed).strip() else "error"
            raise DbkitError(f"reading {dbname} for the manifest failed: "
                             f"{mask(first, server.secrets)}")
    finally:
        for conn in (reader, holder):
            if conn is not None:
                try:
                    conn.close()
                except psycopg2.Error:
                    pass
    return {
        "server_version": server_version,
        "pg_dump_version": pg_dump_version,
        "dump_format": fmt,
        "row_counts": row_counts,
        "schema_fingerprint": fingerprint.result(),
    }


def make_private(folder: Path) -> None:
    """What a tool wrote into a backup, made 0700 (folders) and 0600 (files), and on disk."""
    folder.chmod(0o700)
    for here, dirs, names in os.walk(folder):
        for name in dirs:
            (Path(here) / name).chmod(0o700)
        for name in names:
            path = Path(here) / name
            path.chmod(0o600)
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _snapshot_session(server: Server, dbname: str, snapshot: str | None = None,
                      ) -> psycopg2.extensions.connection:
    """A read-only repeatable-read transaction, in ``snapshot`` if given."""
    conn = server.connect(dbname, autocommit=False)
    try:
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        if snapshot is not None:
            with conn.cursor() as cur:
                cur.execute("SET TRANSACTION SNAPSHOT %s", (snapshot,))
    except psycopg2.Error as err:
        conn.close()
        raise ServerUnreachable(f"lost {server.describe(dbname)}: {str(err).strip()}") from None
    return conn
