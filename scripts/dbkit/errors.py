"""The one exception family. Only ``dbkit.cli`` turns these into a message and an exit code.

Exit codes: 0 success, 1 the job ran and found a problem (proof failed, drift, corrupt backup),
2 the job could not run (bad configuration, server unreachable, refused, bad input), 130 Ctrl-C.
"""

from __future__ import annotations


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (its class name if it has none)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


class DbkitError(Exception):
    """Base class: a message fit for one line, and the exit code that goes with it."""

    exit_code = 2
    reported = False  # True once a verb has put it in its own output (validate --json)

    def __init__(
        self, message: str, *, detail: str | None = None, trace: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        # Longer context (a diff, a list of problems): shown under the line, never instead of it.
        self.detail = detail
        # Where it came from (a child process's traceback): shown only with --debug.
        self.trace = trace


class ConfigError(DbkitError):
    """A setting is missing, malformed or points at nothing."""


class ServerUnreachable(DbkitError):
    """The PostgreSQL server does not answer, or cannot be started."""


class ToolError(DbkitError):
    """A client tool (pg_dump, pg_restore, psql, docker) is missing, too old, or failed."""


class Refused(DbkitError):
    """A safety rule said no: no confirmation, production, non-local server, lock held."""


class ChainBuildFailed(DbkitError):
    """Alembic could not run the project's migrations."""

    revision: str | None = None  # the revision whose file raised, when the child knew
    error: str = ""  # the project's own error, without "alembic X failed in revision Y"


class AppNotLoadable(DbkitError):
    """The project's env.py, models or objects registry fail to import or run."""


class CannotSquash(DbkitError):
    """The chain builds something the squash cannot reproduce (yet); nothing was changed."""


class BackupCorrupt(DbkitError):
    """A backup is missing files, or a checksum does not match."""

    exit_code = 1


class ProofFailed(DbkitError):
    """Two databases that must be identical are not."""

    exit_code = 1

    def __init__(self, message: str, *, diff: list[str] | None = None,
                 trace: str | None = None) -> None:
        super().__init__(message, detail="\n".join(diff or []) or None, trace=trace)
        self.diff = diff or []
