"""Backup folders and their manifest: names, checksums, reading, listing and choosing one.

A backup is a folder ``BACKUP_DIR/YYYYMMDD_HHMMSS[_N]`` holding ``manifest.json``. The
manifest lists every other file with its size and sha256; it is rewritten atomically and is
the one file not listed in itself. Folders are only ever published complete (see
``backup.draft``), so a folder that has a manifest is a finished backup.
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from dbkit.console import Console
from dbkit.errors import BackupCorrupt, ConfigError
from dbkit.files import file_digest, fsync_dir

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MIGRATIONS = "migrations"
DUMP_CUSTOM = "database_full.dump"
DUMP_PLAIN = "database_full.sql"
DUMP_DIRECTORY = "database_full.dir"  # pg_dump -Fd: a folder; the manifest lists each file
_MANIFEST_TMP = re.compile(r"^\.manifest\.json\.\d+\.tmp$")
NAME_RE = re.compile(r"^(\d{8}_\d{6})(?:_([2-9]|[1-9]\d+))?$")


@dataclass(frozen=True)
class Backup:
    """A finished backup folder and its manifest."""

    name: str
    path: Path
    manifest: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.manifest.get("kind", "?"))

    @property
    def dump(self) -> Path | None:
        """The full dump, whichever format it was written in (a folder for directory)."""
        return dump_in(self.path, self.manifest.get("files", {}))

    @property
    def size(self) -> int:
        return sum(int(f["size"]) for f in self.manifest.get("files", {}).values())


def dump_in(folder: Path, files: dict[str, Any]) -> Path | None:
    """The dump a manifest's file list holds: its file, or its folder (directory format)."""
    for name in (DUMP_CUSTOM, DUMP_PLAIN):
        if name in files:
            return folder / name
    if any(isinstance(rel, str) and rel.startswith(DUMP_DIRECTORY + "/") for rel in files):
        return folder / DUMP_DIRECTORY
    return None


def sort_key(name: str) -> tuple[str, int]:
    """Oldest first: by timestamp, then by the collision suffix (``_2`` after none)."""
    match = NAME_RE.match(name)
    assert match, name
    return match.group(1), int(match.group(2) or 1)


def created_utc(manifest: dict[str, Any]) -> datetime | None:
    """The manifest's ``created_at`` as an aware UTC time (None: missing or unreadable).

    Old backups wrote local time with its offset, new ones UTC: both compare correctly here,
    whatever their folder names say (time zones, daylight saving)."""
    try:
        when = datetime.fromisoformat(str(manifest.get("created_at")))
    except ValueError:
        return None
    if when.tzinfo is None:  # no offset: the best guess is this machine's zone
        when = when.astimezone()
    return when.astimezone(timezone.utc)


def newest_first(backups: list[Backup]) -> list[Backup]:
    """By the manifest's UTC creation time, newest first (folder name for a tie or none)."""
    oldest = datetime.min.replace(tzinfo=timezone.utc)
    return sorted(backups, key=lambda b: (created_utc(b.manifest) or oldest, sort_key(b.name)),
                  reverse=True)



def checksum_files(folder: Path) -> dict[str, dict[str, Any]]:
    """``{relative path: {size, sha256}}`` for every file in a folder but the manifest."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.relative_to(folder).as_posix() != MANIFEST:
            found[path.relative_to(folder).as_posix()] = file_digest(path)
    return found


def write_private(path: Path, data: bytes) -> None:
    """Write a new 0600 file and flush it to disk (a backup must survive a power cut)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)



def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Replace the manifest atomically: a reader sees the old one or the new one, never half."""
    tmp = folder / f".{MANIFEST}.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    try:
        write_private(tmp, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
        os.replace(tmp, folder / MANIFEST)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(folder)


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if path.is_symlink():
        raise BackupCorrupt(f"backup {folder.name} is damaged: {MANIFEST} is a symbolic link; "
                            "it is not used")
    if not path.is_file():
        raise BackupCorrupt(
            f"backup {folder.name} has no {MANIFEST} (unfinished, or not made by dbkit); "
            "it cannot be checked, so it is not used"
        )
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise BackupCorrupt(f"backup {folder.name}: {MANIFEST} is unreadable ({err})") from None
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
        raise BackupCorrupt(f"backup {folder.name}: {MANIFEST} has no file list")
    if data.get("kind") == "full" and dump_in(folder, data["files"]) is None:
        raise BackupCorrupt(f"backup {folder.name}: {MANIFEST} lists no database dump")
    if data.get("format_version") != FORMAT_VERSION:
        raise BackupCorrupt(
            f"backup {folder.name}: manifest format {data.get('format_version')!r} is not "
            f"{FORMAT_VERSION} (written by another dbkit version)"
        )
    problems = layout_problems(folder, data["files"])
    if problems:
        raise BackupCorrupt(
            f"backup {folder.name} is damaged: {summary(problems)}; it is not used",
            detail="\n".join(problems),
        )
    return data


def bad_key(key: object) -> str | None:
    """Why a manifest key is not a plain relative path inside the backup (None: it is)."""
    if not isinstance(key, str) or not key:
        return "is not a file name"
    if "\\" in key or "\x00" in key:
        return "is not a plain relative path"
    path = PurePosixPath(key)
    if path.is_absolute():
        return "is an absolute path"
    if ".." in path.parts:
        return "goes outside the backup (..)"
    if path.as_posix() != key or "." in key.split("/") or key == MANIFEST:
        return "is not a normalised relative path"
    return None


def layout_problems(folder: Path, files: dict[str, Any]) -> list[str]:
    """A backup is trusted only as far as its manifest: every key a plain relative path,
    nothing a symbolic link (files or folders), every file listed and every listed file
    there. Checked before anything in the backup is read or written."""
    problems = [f"manifest entry {key!r} {why}" for key in sorted(files, key=str)
                if (why := bad_key(key)) is not None]
    if problems:
        return problems
    present: set[str] = set()
    for here, dirs, names in os.walk(folder):
        for name in sorted(dirs + names):
            path = Path(here) / name
            rel = path.relative_to(folder).as_posix()
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                problems.append(f"{rel} is a symbolic link")
            elif stat.S_ISREG(mode):
                present.add(rel)
            elif not stat.S_ISDIR(mode):
                problems.append(f"{rel} is not a regular file")
        dirs[:] = [d for d in dirs if not (Path(here) / d).is_symlink()]
    present.discard(MANIFEST)
    present -= {p for p in present if _MANIFEST_TMP.match(p)}  # a manifest being rewritten
    problems += [f"{rel} is not listed in the manifest" for rel in sorted(present - set(files))]
    problems += [f"{rel}: missing" for rel in sorted(set(files) - present)]
    return problems


def check_files(backup: Backup, *, only: str | None = None) -> list[str]:
    """Every listed file present with its size and sha256; ``only`` limits to a subfolder."""
    problems = []
    for rel, expected in sorted(backup.manifest["files"].items()):
        if only is not None and not rel.startswith(only + "/"):
            continue
        path = backup.path / rel
        if not path.is_file():
            problems.append(f"{rel}: missing")
            continue
        actual = file_digest(path)
        if actual["size"] != expected.get("size"):
            problems.append(f"{rel}: {actual['size']} bytes, manifest says {expected.get('size')}")
        elif actual["sha256"] != expected.get("sha256"):
            problems.append(f"{rel}: sha256 does not match the manifest")
    return problems


def require_intact(backup: Backup, *, only: str | None = None) -> None:
    """BackupCorrupt naming the first bad file (all of them in the detail)."""
    problems = check_files(backup, only=only)
    if problems:
        raise BackupCorrupt(
            f"backup {backup.name} is damaged: {summary(problems)}; nothing was changed",
            detail="\n".join(problems),
        )


def summary(problems: list[str]) -> str:
    """The first problem for the one-line message, and how many more the detail lists."""
    return problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")


def backup_names(backup_dir: Path) -> list[str]:
    """Names of the folders in BACKUP_DIR that look like backups, newest name first."""
    if not backup_dir.is_dir():
        return []
    names = [
        p.name for p in backup_dir.iterdir()
        if NAME_RE.match(p.name) and p.is_dir() and not p.is_symlink()
    ]
    return sorted(names, key=sort_key, reverse=True)


def list_backups(backup_dir: Path) -> list[tuple[str, Backup | None, str]]:
    """``(name, backup or None, why not)`` for every backup-looking folder, newest first (by
    the manifest's UTC creation time; unusable ones after the good ones, by name)."""
    good: list[Backup] = []
    unusable: list[tuple[str, Backup | None, str]] = []
    for name in backup_names(backup_dir):
        try:
            good.append(Backup(name, backup_dir / name, read_manifest(backup_dir / name)))
        except BackupCorrupt as err:
            unusable.append((name, None, err.message))
    return [(b.name, b, "") for b in newest_first(good)] + unusable


def find_backup(backup_dir: Path, name: str) -> Backup:
    """The backup called ``name``; anything that is not an existing backup name is refused."""
    name = name.strip()
    if not name:
        raise ConfigError("BACKUP is empty; name a backup (make db-backups lists them)")
    if not NAME_RE.match(name):
        raise ConfigError(
            f"BACKUP={name!r} is not a backup name (expected YYYYMMDD_HHMMSS from "
            "make db-backups; paths are not accepted)"
        )
    path = backup_dir / name
    if path.is_symlink():
        raise ConfigError(f"{path} is a symbolic link, not a backup folder")
    if not path.exists():
        raise ConfigError(f"no backup named {name} in {backup_dir} (make db-backups lists them)")
    if not path.is_dir():
        raise ConfigError(f"{path} is a file, not a backup folder")
    return Backup(name, path, read_manifest(path))


def choose_backup(
    backup_dir: Path, out: Console, given: str, *, kinds: tuple[str, ...], action: str
) -> Backup:
    """``BACKUP=name`` if given, else a numbered list (newest first) on a terminal."""
    if given:
        chosen = find_backup(backup_dir, given)
        if chosen.kind not in kinds:
            raise ConfigError(
                f"backup {chosen.name} is a {chosen.kind} backup; {action} needs a "
                f"{' or '.join(kinds)} backup"
                + (" (use make db-migration-restore for migrations)" if "full" in kinds else "")
            )
        return chosen
    usable = [b for _, b, _ in list_backups(backup_dir) if b is not None and b.kind in kinds]
    if not out.interactive:
        raise ConfigError(f"set BACKUP=<name> to choose the backup to {action} "
                          "(make db-backups lists them)")
    if not usable:
        raise ConfigError(f"no {' or '.join(kinds)} backups in {backup_dir}")
    out.result(f"Backups in {backup_dir} (newest first):")
    for number, item in enumerate(usable, 1):
        out.result(f"  {number:>3}  {describe(item)}")
    answer = out.ask(f"Number or name of the backup to {action} (empty to cancel): ")
    if not answer:
        raise ConfigError("cancelled: nothing was changed")
    if answer.isdigit() and 1 <= int(answer) <= len(usable):
        return usable[int(answer) - 1]
    return choose_backup(backup_dir, out, answer, kinds=kinds, action=action)


def describe(backup: Backup) -> str:
    """One line: name, kind, size, revision, verified."""
    m = backup.manifest
    revision = ",".join(m.get("current_revision") or m.get("alembic_heads") or []) or "-"
    check = m.get("verification") or {}
    verified = ("verified" if check.get("ok") else "VERIFY FAILED") if check else "not verified"
    note = f"  ({m['note']})" if m.get("note") else ""
    kind = backup.kind
    if kind == "full" and backup.dump is not None and backup.dump.name != DUMP_CUSTOM:
        kind += {DUMP_PLAIN: "-plain", DUMP_DIRECTORY: "-dir"}[backup.dump.name]
    return (f"{backup.name:<18} {kind:<10} {human_size(backup.size):>9}  "
            f"{revision:<14} {verified}{note}")


def human_size(size: float) -> str:
    if size < 1024:
        return f"{size:.0f} B"
    for unit in ("KB", "MB", "GB"):
        size /= 1024
        if size < 1024 or unit == "GB":
            break
    return f"{size:.1f} {unit}"
