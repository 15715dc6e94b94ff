"""The rules every destructive verb obeys: confirm, refuse production or remote, one at a time."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dbkit.console import Console
from dbkit.errors import Refused
from dbkit.pg.server import Server
from dbkit.settings import Settings

YES = "\x00--yes"  # not something CONFIRM=... can contain


def guard_destructive(settings: Settings, server: Server, what: str) -> None:
    """Refuse production and non-local servers unless ALLOW_DESTRUCTIVE=1."""
    if settings.allow_destructive:
        return
    if settings.environment in ("production", "prod"):
        raise Refused(f"ENVIRONMENT={settings.environment}: refusing to {what} "
                      "(set ALLOW_DESTRUCTIVE=1 if you really mean it)")
    if not server.is_local():
        raise Refused(f"{server.describe()} is not on this machine: refusing to {what} "
                      "(set ALLOW_DESTRUCTIVE=1 if you really mean it)")


def confirm(console: Console, *, word: str, given: str | None, what: str) -> None:
    console.confirm(word=word, given=word if given == YES else given, what=what)


@contextmanager
def project_lock(settings: Settings, verb: str) -> Iterator[None]:
    """One destructive dbkit run per project directory; a second one refuses at once."""
    path = settings.project_dir / ".dbkit.lock"
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
