"""The user's Alembic project, run by ``runner.py`` in a child process of the project's own.

The child is the project's interpreter (``BACKEND_PYTHON``) running ``runner.py`` by path,
serving one target database for its life: ``AlembicChild`` keeps one warm for a run of
operations on one database, and any operation on another database gets a child of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any
from urllib.parse import quote

from dbkit.console import Console, mask
from dbkit.errors import ChainBuildFailed, ConfigError, DbkitError
from dbkit.pg import extensions
from dbkit.pg.server import Server
from dbkit.project import watch
from dbkit.project.ran import Expected, Ran, WrongFiles, hashes_of
from dbkit.settings import Settings

RUNNER = Path(__file__).resolve().with_name("runner.py")
# Characters a URL may carry as they are: anything else would need a %-escape, which
# ConfigParser's interpolation (config.set_main_option) rejects.
_PLAIN = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~")
_IDENTITY = ("SELECT (extract(epoch FROM pg_postmaster_start_time()) * 1000000)::bigint::text, "
             "current_setting('port')")


MODELS_HOLD_NO_TABLES = ("the models env.py gives hold no tables (its target_metadata is "
                         "empty): not compared; import your models in env.py")


class ModelsHoldNoTables(DbkitError):
    """env.py's target_metadata holds no tables: the models were never imported."""


class WrongDatabase(DbkitError):
    """The project's code tried to reach another database than dbkit's target (exit 2)."""


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


def reachable(starts: Iterable[str], edges: Mapping[str, Iterable[str]]) -> set[str]:
    """``starts`` and every revision reached from them along ``edges`` (parents or children)."""
    seen: set[str] = set()
    todo = list(starts)
    while todo:
        rev = todo.pop()
        if rev not in seen:
            seen.add(rev)
            todo.extend(edges.get(rev, ()))
    return seen


def one_head(revisions: list[Revision], project: Path) -> str:
    """The chain's one head; several are refused with the ``alembic merge`` that joins them."""
    if not revisions:
        raise ConfigError(f"the Alembic project at {project} has no revisions")
    parents = {parent for r in revisions for parent in r.down_revision}
    heads = sorted(r.revision for r in revisions if r.revision not in parents)
    if len(heads) > 1:
        docs = {r.revision: r.doc for r in revisions}
        named = ", ".join(f"{h} ({docs.get(h, '').strip() or 'no message'})" for h in heads)
        raise ConfigError(
            f"the chain has {len(heads)} heads: {named}. Join them into one first with "
            f"`alembic merge -m \"merge heads\" {' '.join(heads)}` (or squash from an "
            "existing merge revision), then run the squash again"
        )
    return heads[0]


# -- the target, as the child gets it -------------------------------------------------------------

def target_spec(settings: Settings, server: Server | None, dbname: str | None,
                identity: tuple[str, str] | None = None) -> dict[str, Any]:
    """What ``runner.Target`` reads from ``DBKIT_CHILD``: the alembic.ini, the URL to hand
    over (driver chosen by the child), and the identity its guard expects.

    ``dbname`` None: chain-only operations. The app may still need a URL to import (its
    revision files import its settings), so it gets the development database's, but the
    guard lets no connection through. The URL never holds a ``%``: a password or a socket
    folder that would need escaping travels in PGPASSWORD / PGHOST instead, which every
    libpq driver reads.
    """
    spec: dict[str, Any] = {"config": str(settings.require_alembic()),
                            "url_env": list(settings.url_env)}
    if settings.alembic_toml is not None:  # [tool.alembic], read by Alembic 1.16+
        spec["toml"] = str(settings.alembic_toml)
    if server is None:
        return spec
    reach = dbname is not None
    dbname = dbname or server.dev_db
    p = {k: v for k, v in server.params(dbname).items() if v}
    host, port, user, password = (p.pop(k, "") for k in ("host", "port", "user", "password"))
    p.pop("dbname", None)
    netloc, query = "", []
    if user:
        netloc = _plain(user) or ""
        if not netloc:
            spec["pguser"] = user
    if password:
        spec["password"] = password
        if netloc and _plain(password):
            netloc += f":{password}"
    if netloc:
        netloc += "@"
    if host.startswith("/"):
        spec["pghost"], spec["pgport"] = host, port
        if all(c in _PLAIN or c == "/" for c in host):
            query.append(f"host={host}")  # a path is valid in a query as it is
    elif host:
        netloc += (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "")
    query += [f"{k}={v}" for k, v in sorted(p.items()) if _plain(k) and _plain(v)]
    spec["url"] = (f"postgresql://{netloc}/{quote(dbname, safe='')}"
                   + ("?" + "&".join(query) if query else ""))
    if reach:
        started, srv_port = identity or server_identity(server)
        spec["expect"] = {"database": dbname, "started": started, "port": srv_port}
    return spec


def _plain(text: str) -> str | None:
    return text if set(text) <= _PLAIN else None


def server_identity(server: Server) -> tuple[str, str]:
    """The server's start time (microseconds) and port: with the database's name, what the
    child's guard compares every connection against."""
    conn = server.connect(server.maintenance_db)
    try:
        with conn.cursor() as cur:
            cur.execute(_IDENTITY)
            started, port = cur.fetchone()
            return str(started), str(port)
    finally:
        conn.close()


def _child_env(spec: dict[str, Any]) -> dict[str, str]:
    env = dict(os.environ)
    env["DBKIT_CHILD"] = json.dumps(spec)
    if spec.get("pguser"):
        env["PGUSER"] = spec["pguser"]
    return env


def _greeted(settings: Settings, hello: dict[str, Any], out: Console | None,
             server: Server | None = None) -> None:
    """The child's first line: say which interpreter runs the project, or why it cannot,
    and which database dbkit took from where."""
    python = settings.backend_python
    if "error" in hello:
        raise ConfigError(f"BACKEND_PYTHON {python} ({settings.backend_python_source}) cannot "
                          f"run the project: {hello['error']}")
    if out is not None:
        where = f"; database: {database_source(settings, server)}" if server else ""
        out.once(f"Project: {settings.alembic_config.parent} (python: {python}, "
                 f"{settings.backend_python_source}; SQLAlchemy {hello['sqlalchemy']}, "
                 f"Alembic {hello['alembic']}{where})")


def database_source(settings: Settings, server: Server) -> str:
    """Which database dbkit works on and where that came from: an app's DATABASE_URL must
    never be taken silently for dbkit's own."""
    if server.mode == "url":
        return f"DATABASE_URL from {settings.origin('DATABASE_URL')}"
    if server.mode == "embedded":
        return f"dbkit's embedded server, data in {settings.pgdata_dir}"
    return f"the compose container {settings.postgres_container}"


def _split(stdout: str) -> tuple[dict[str, Any] | None, str]:
    """A one-shot child's stdout: its greeting and its answer."""
    first, _, rest = stdout.partition("\n")
    try:
        hello = json.loads(first)["hello"]
    except (ValueError, KeyError, TypeError):
        return None, stdout
    return hello, rest


class AlembicProject:
    """One Alembic project (its alembic.ini) and the server its databases live on."""

    def __init__(
        self, settings: Settings, server: Server | None, *, version_locations: Path | None = None,
        stands_for: Path | None = None, expect: Expected | None = None,
        child: AlembicChild | None = None, out: Console | None = None,
    ) -> None:
        self.settings = settings
        self.server = server
        self.config = settings.require_alembic()
        settings.require_python()
        # Set: revisions come from this directory instead of the project's own (the squash's
        # staged directory, an archive). ``stands_for``: the project's folder it replaces,
        # also where env.py picks that folder itself (it may: Prefect's does).
        self.version_locations = version_locations
        self.stands_for = stands_for
        # The only files an upgrade or downgrade may run (None: with version_locations, the
        # files in it, hashed at each operation; else any, as plain ``alembic`` would).
        self.expect = expect
        self.last_ran = Ran()  # what the last operation ran, as the child saw it
        # Set: operations on its database (and those needing none) run in this warm child;
        # any other database gets a child of its own.
        self.child = child
        self.out = out if out is not None else (child.out if child else None)
        self._identity: tuple[str, str] | None = None

    def _run(self, op: str, *args: str, dbname: str | None = None) -> dict[str, Any]:
        spec: dict[str, Any] = {"op": op, "args": list(args)}
        if self.version_locations is not None:
            spec["version_locations"] = str(self.version_locations)
            if self.stands_for is not None:
                spec["stands_for"] = {str(self.stands_for.resolve()):
                                      str(self.version_locations)}
        expect = self.expected() if op in _RUNS_REVISIONS else None
        if expect is not None:
            spec["allow"] = expect.allow()
        answer, stderr, code = self._watched(spec, dbname, " ".join(["alembic", op, *args]))
        secrets = self.server.secrets if self.server else ()
        try:
            result = json.loads(answer)
        except ValueError:
            tail = mask(stderr.strip().splitlines()[-1] if stderr.strip() else
                        f"exit {code}", secrets)
            raise ChainBuildFailed(
                f"alembic {op} crashed: the project's Python "
                f"({self.settings.backend_python}) ended without an answer: {tail}") from None
        result["stderr"] = stderr
        self.last_ran = Ran.from_json(result.get("ran"))
        if result.get("wrong_files"):
            raise WrongFiles(mask(result["wrong_files"], secrets))
        if expect is not None and result["ok"]:
            # The child refused other files before they ran; its report is read here too.
            expect.check(self.last_ran, op=" ".join(["alembic", op, *args]))
        if result.get("guard"):
            raise WrongDatabase(mask(result["guard"], secrets),
                                trace=mask(result.get("traceback", ""), secrets))
        if not result["ok"]:
            where = f" in revision {result['revision']}" if result.get("revision") else ""
            what = " ".join(["alembic", op, *args])
            error = mask(result["error"], secrets)
            lacking = extensions.missing_extension(result["error"])
            if lacking is not None and self.server is not None:
                error = extensions.explain(self.server, lacking)  # no migration can fix that
            failed = ChainBuildFailed(f"{what} failed{where}: {error}",
                                      trace=mask(result.get("traceback", ""), secrets))
            failed.revision = result.get("revision")  # the revision whose file raised
            failed.error = error
            raise failed
        return result

    def expected(self) -> Expected | None:
        """The files an upgrade or downgrade may run now."""
        if self.expect is not None:
            return self.expect
        if self.version_locations is None:
            return None
        files = [p for p in Path(self.version_locations).rglob("*.py")
                 if "__pycache__" not in p.parts]
        return Expected(hashes_of(files), f"{self.version_locations}")

    def _watched(self, spec: dict[str, Any], dbname: str | None,
                 what: str) -> tuple[str, str, int | None]:
        """``_exchange``, with ``dbname`` watched for lock waits and the time limit
        (``watch``): the child is killed, and ``MigrationStuck`` raised, when one is passed."""
        if dbname is None or self.server is None:
            return self._exchange(spec, dbname)
        with ExitStack() as stack:
            child = self.child
            if child is None or child.dbname != dbname:  # one that serves dbname, can be killed
                if self._identity is None:
                    self._identity = server_identity(self.server)
                child = stack.enter_context(AlembicChild(self.settings, self.server, dbname,
                                                         out=self.out, identity=self._identity))
            stack.enter_context(watch.watch(
                self.server, dbname, child.kill, lock_wait=self.settings.lock_wait_timeout,
                total=self.settings.migration_timeout, what=f"{what} on database {dbname}"))
            return child.exchange(spec)

    def _exchange(self, spec: dict[str, Any],
                  dbname: str | None) -> tuple[str, str, int | None]:
        """One operation in a child serving ``dbname``: its JSON answer, stderr, exit status."""
        if self.child is not None and dbname in (None, self.child.dbname):
            return self.child.exchange(spec)
        if dbname is not None and self.server is not None and self._identity is None:
            self._identity = server_identity(self.server)
        target = target_spec(self.settings, self.server, dbname, self._identity)
        # The child answers with JSON on stdout (the project's own output goes to stderr);
        # nothing is written to disk, so a killed run leaves nothing behind.
        proc = subprocess.run(_command(self.settings), input=json.dumps(spec) + "\n",
                              capture_output=True, text=True, env=_child_env(target))
        hello, answer = _split(proc.stdout)
        if hello is not None:
            _greeted(self.settings, hello, self.out, self.server)
        return answer, proc.stderr, proc.returncode

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

    def backup_info(self, dbname: str | None = None) -> dict[str, Any]:
        """versions_dir, heads, history (text) and, given a database, its current revisions."""
        return dict(self._run("backup_info", dbname=dbname)["data"])

    def history_text(self) -> str:
        return str(self._run("history")["output"])

    def single_head(self) -> str:
        return one_head(self.revisions(), self.config.parent)

    # -- against a database -----------------------------------------------------------------
    def upgrade(self, dbname: str, target: str = "head") -> str:
        return str(self._run("upgrade", target, dbname=dbname)["stderr"])

    def build(self, dbname: str, target: str = "head") -> float:
        """``alembic upgrade head`` (or ``target``); the seconds the upgrade took in the child
        (its interpreter's start not counted, so that every build is timed alike)."""
        return float(self._run("upgrade", target, dbname=dbname)["seconds"])

    def upgrade_sql(self, dbname: str, start: str | None, target: str = "head") -> str:
        """``alembic upgrade --sql start:target``: the SQL an upgrade of ``dbname`` from
        ``start`` (None: base) would run, for review. dbkit opens no connection (the URL
        names the dialect); an env.py that connects even offline reaches ``dbname`` only."""
        span = f"{start}:{target}" if start else target
        return str(self._run("upgrade_sql", span, dbname=dbname)["data"])

    def downgrade(self, dbname: str, target: str = "base") -> str:
        return str(self._run("downgrade", target, dbname=dbname)["stderr"])

    def stamp(self, dbname: str, revision: str) -> None:
        self._run("stamp", revision, dbname=dbname)

    def current(self, dbname: str) -> list[str]:
        return list(self._run("current", dbname=dbname)["data"])

    def validation_facts(self, dbname: str, module: str) -> dict[str, Any]:
        """Heads, revision graph, ``dbname``'s revision, model diff and registry, in one child.

        A project that does not load is reported in ``failure`` (stage, error, traceback)
        rather than raised, so the caller can say it in one line.
        """
        return dict(self._run("validate", module, dbname=dbname)["data"])

    def model_diff(self, dbname: str) -> list[dict[str, str]] | None:
        """What autogenerate would change to make ``dbname`` match the models (None: no models).

        Raises ModelsHoldNoTables when env.py's target_metadata is there but empty."""
        data = self._run("diff", dbname=dbname)["data"]
        if isinstance(data, dict):  # {"model_tables": 0}: nothing to compare with
            raise ModelsHoldNoTables(MODELS_HOLD_NO_TABLES)
        return data


# The operations that run revision files (upgrade_sql renders them): witnessed (ran.py).
_RUNS_REVISIONS = ("upgrade", "downgrade", "upgrade_sql")


class AlembicChild:
    """One child serving ``dbname`` (None: no database, for chain-only operations), started
    now, that runs operations one after another.

    Its start (the interpreter, Alembic and SQLAlchemy: a third of a second) then happens
    while the caller does other work, and once for all the operations. It imports nothing of
    the project before the first operation; after that the project's modules stay imported,
    with the settings the app cached from this target: so one child, one database (and one
    versions directory). Between operations it holds no database connection. A context
    manager: leaving it ends the child (killed at once when leaving on an error: it may be
    running a migration in a database about to go).
    """

    def __init__(self, settings: Settings, server: Server | None, dbname: str | None, *,
                 out: Console | None = None, identity: tuple[str, str] | None = None) -> None:
        self.settings, self.dbname, self.out, self.server = settings, dbname, out, server
        env = _child_env(target_spec(settings, server, dbname, identity))
        # stderr (the project's log) goes to an unnamed file: a pipe nobody reads could fill.
        self._log: IO[bytes] = tempfile.TemporaryFile()
        self._lock = threading.Lock()
        self._greeted = False
        self._proc = subprocess.Popen(_command(settings), stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=self._log, text=True,
                                      env=env)

    def exchange(self, spec: dict[str, Any]) -> tuple[str, str, int | None]:
        """Send one operation, wait for its answer (one JSON line); "" when the child is gone."""
        assert self._proc.stdin is not None and self._proc.stdout is not None
        with self._lock:
            if self._log.closed:  # closed: the child has ended
                return "", "", self._proc.returncode
            logged = os.fstat(self._log.fileno()).st_size  # this operation's log starts here
            try:
                if not self._greeted:
                    hello, _ = _split(self._proc.stdout.readline())
                    self._greeted = True
                    if hello is not None:
                        _greeted(self.settings, hello, self.out, self.server)
                self._proc.stdin.write(json.dumps(spec) + "\n")
                self._proc.stdin.flush()
                answer = self._proc.stdout.readline()
            except (BrokenPipeError, ValueError):  # the child is gone, or was finished
                answer = ""
            code = None if answer else self._proc.wait()
            self._log.seek(logged)
            return answer, self._log.read().decode(errors="replace"), code

    def finish(self) -> None:
        """No more operations: the child ends by itself (``close`` waits for it)."""
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            try:
                self._proc.stdin.close()
            except BrokenPipeError:
                pass

    def kill(self) -> None:
        """At once, whatever it is doing (then ``close`` to wait for it)."""
        if self._proc.poll() is None:
            self._proc.kill()

    def stop(self, kind: type[BaseException] | None, err: BaseException | None = None,
             tb: TracebackType | None = None) -> None:
        """Leaving a context without the wait: killed after a failure, else finished.

        For ``ExitStack.push``: the child is stopped before the databases it used are
        dropped, and waited for (``close``) after.
        """
        if kind is not None:
            self.kill()
        self.finish()

    def close(self, *, kill: bool = False) -> None:
        """End the child (at the end of its input, or killed) and wait for it."""
        if kill:
            self.kill()
        self.finish()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        with self._lock:  # an operation sent from another thread has seen the end by now
            if self._proc.stdout is not None:
                self._proc.stdout.close()
            self._log.close()

    def __enter__(self) -> AlembicChild:
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close(kill=kind is not None)


def _command(settings: Settings) -> list[str]:
    """The project's interpreter running the runner by path: nothing of dbkit is imported."""
    return [str(settings.require_python()), str(RUNNER)]
