"""The user's Alembic project, driven through ``dbkit.alembic_child`` one operation at a time."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from dbkit.errors import ChainBuildFailed, ConfigError
from dbkit.server import Server
from dbkit.settings import Settings
from dbkit.tools import mask


@dataclass(frozen=True)
class Revision:
    revision: str
    down_revision: tuple[str, ...]
    path: Path
    doc: str
    branch_labels: tuple[str, ...]

    @property
    def is_merge(self) -> bool:
        return len(self.down_revision) > 1


class AlembicProject:
    """One Alembic project (its alembic.ini) and the server its databases live on."""

    def __init__(
        self, settings: Settings, server: Server | None, *, version_locations: Path | None = None
    ) -> None:
        self.settings = settings
        self.server = server
        self.config = settings.require_alembic()
        # Set: revisions come from this directory instead of the project's own (squash proof).
        self.version_locations = version_locations

    def _run(self, op: str, *args: str, dbname: str | None = None) -> dict[str, Any]:
        spec: dict[str, Any] = {"config": str(self.config), "op": op, "args": list(args)}
        if self.version_locations is not None:
            spec["version_locations"] = str(self.version_locations)
        if dbname is not None:
            assert self.server is not None
            spec["url"] = self.server.sa_url(dbname).render_as_string(hide_password=False)
        answer, stderr, code = self._exchange(spec)
        try:
            result = json.loads(answer)
        except ValueError:
            secrets = self.server.secrets if self.server else ()
            tail = mask(stderr.strip().splitlines()[-1] if stderr.strip() else
                        f"exit {code}", secrets)
            raise ChainBuildFailed(f"alembic {op} crashed: {tail}") from None
        result["stderr"] = stderr
        if not result["ok"]:
            secrets = self.server.secrets if self.server else ()
            where = f" in revision {result['revision']}" if result.get("revision") else ""
            what = " ".join(["alembic", op, *args])
            raise ChainBuildFailed(
                f"{what} failed{where}: {mask(result['error'], secrets)}",
                trace=mask(result.get("traceback", ""), secrets),
            )
        return result

    def _exchange(self, spec: dict[str, Any]) -> tuple[str, str, int | None]:
        """One operation in a child of its own: its JSON answer, stderr and exit status."""
        # The child answers with JSON on stdout (the project's own output goes to stderr);
        # nothing is written to disk, so a killed run leaves nothing behind.
        proc = subprocess.run(
            [sys.executable, "-m", "dbkit.alembic_child"],
            input=json.dumps(spec), capture_output=True, text=True,
        )
        return proc.stdout, proc.stderr, proc.returncode

    def session(self) -> AlembicSession:
        """This project with every operation run in one child started now (see AlembicSession)."""
        return AlembicSession(self)

    # -- the chain, no database needed -------------------------------------------------------
    def heads(self) -> list[str]:
        return list(self._run("heads")["data"])

    def revisions(self) -> list[Revision]:
        """Every revision, newest first (Alembic's walk order)."""
        return [
            Revision(
                revision=r["revision"],
                down_revision=tuple(r["down_revision"]),
                path=Path(r["path"]),
                doc=r["doc"] or "",
                branch_labels=tuple(r["branch_labels"]),
            )
            for r in self._run("revisions")["data"]
        ]

    def versions_dirs(self) -> list[Path]:
        """The directories that hold revision files (usually one: alembic/versions)."""
        dirs: list[Path] = []
        for rev in self.revisions():
            if rev.path.parent not in dirs:
                dirs.append(rev.path.parent)
        return dirs

    def backup_info(self, dbname: str | None = None) -> dict[str, Any]:
        """versions_dir, heads, history (text) and, given a database, its current revisions."""
        return dict(self._run("backup_info", dbname=dbname)["data"])

    def history_text(self) -> str:
        return str(self._run("history")["output"])

    def single_head(self) -> str:
        heads = self.heads()
        if not heads:
            raise ConfigError(f"the Alembic project at {self.config.parent} has no revisions")
        if len(heads) > 1:
            raise ConfigError(
                f"the chain has {len(heads)} heads ({', '.join(sorted(heads))}); join them with "
                "`alembic merge heads -m merge` first"
            )
        return heads[0]

    # -- against a database -----------------------------------------------------------------
    def upgrade(self, dbname: str, target: str = "head") -> str:
        return str(self._run("upgrade", target, dbname=dbname)["stderr"])

    def build(self, dbname: str) -> float:
        """``alembic upgrade head``; the seconds the upgrade took in the child (its
        interpreter's start not counted, so that every build is timed alike)."""
        return float(self._run("upgrade", "head", dbname=dbname)["seconds"])

    def downgrade(self, dbname: str, target: str = "base") -> str:
        return str(self._run("downgrade", target, dbname=dbname)["stderr"])

    def stamp(self, dbname: str, revision: str) -> None:
        self._run("stamp", revision, dbname=dbname)

    def current(self, dbname: str) -> list[str]:
        return list(self._run("current", dbname=dbname)["data"])

    def declared(self, module: str) -> dict[str, Any] | None:
        """The app's objects registry (``APP_OBJECTS``) as data; None if the app has none."""
        return self._run("declared", module)["data"]

    def validation_facts(self, dbname: str, module: str) -> dict[str, Any]:
        """Heads, revision graph, ``dbname``'s revision, model diff and registry, in one child.

        A project that does not load is reported in ``failure`` (stage, error, traceback)
        rather than raised, so the caller can say it in one line.
        """
        return dict(self._run("validate", module, dbname=dbname)["data"])

    def model_diff(self, dbname: str) -> list[dict[str, str]] | None:
        """What autogenerate would change to make ``dbname`` match the models (None: no models)."""
        return self._run("diff", dbname=dbname)["data"]


class AlembicSession(AlembicProject):
    """The same project, its operations run one after another in one child started at once.

    A child's start (the interpreter, Alembic and SQLAlchemy: a third of a second) then
    happens while the caller does other work, and once for all its operations. The child
    still imports nothing of the project before its first operation, and one session never
    mixes two versions directories. A context manager: leaving it ends the child (at once,
    killed, when leaving on an error: it may be running a migration whose database is about
    to be dropped).
    """

    def __init__(self, project: AlembicProject) -> None:
        super().__init__(project.settings, project.server,
                         version_locations=project.version_locations)
        # stderr (the project's log) goes to an unnamed file: a pipe nobody reads could fill.
        self._log: IO[bytes] = tempfile.TemporaryFile()
        self._lock = threading.Lock()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "dbkit.alembic_child"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True,
        )

    def _exchange(self, spec: dict[str, Any]) -> tuple[str, str, int | None]:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        with self._lock:
            try:
                self._proc.stdin.write(json.dumps(spec) + "\n")
                self._proc.stdin.flush()
                answer = self._proc.stdout.readline()
            except (BrokenPipeError, ValueError):  # the child is gone, or we closed it
                answer = ""
            if answer:
                return answer, "", None  # the log is the session's, not this operation's
            code = self._proc.wait()
            self._log.seek(0)
            return "", self._log.read().decode(errors="replace"), code

    def close(self, *, kill: bool = False) -> None:
        """End the child: at the end of its input, or killed; wait for it either way."""
        if kill:
            self._proc.kill()
        try:
            if self._proc.stdin is not None:
                self._proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            self._proc.wait(timeout=None if kill else 10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._log.close()

    def __enter__(self) -> AlembicSession:
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close(kill=kind is not None)
