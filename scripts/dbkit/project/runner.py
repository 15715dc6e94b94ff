"""The child process that runs the user's Alembic project; dbkit never imports the project.

Long because it must be one self-contained file: the project's own interpreter
(``BACKEND_PYTHON``) runs it by path, with nothing of dbkit installed, so it may import only
the standard library, Alembic (1.10 and later), SQLAlchemy (1.4, 2.0, 2.1) and the project's
code. Everything that needs psycopg2 or the catalog stays in dbkit's process.

One child serves one target database for its whole life (``chain.AlembicChild``): apps cache
their settings at import, so a process that ran env.py for database X must never run it for Y.
The target comes in the environment variable ``DBKIT_CHILD`` (JSON, never argv: it holds the
password) and is handed to the project every way an env.py looks for it, before any of the
project's code is imported: ``config.attributes["connection"]``, the ``sqlalchemy.url``
option, ``DATABASE_URL`` and each name in ``url_env``. A guard on every SQLAlchemy pool then
refuses any connection to another database, so a project that builds its own URL cannot
touch the wrong database.

Protocol: the first line on stdout is a greeting (versions, driver, or why this interpreter
cannot serve); then each JSON operation on stdin (``op``, ``args``, ``version_locations``)
gets one JSON line back. The project's own output goes to stderr.
"""

from __future__ import annotations

import gc
import hashlib
import importlib
import importlib.util
import inspect
import io
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from inspect import unwrap
from pathlib import Path
from typing import Any

# Run by path, this file's folder comes first on sys.path: dbkit's own modules (versions.py,
# chain.py) would shadow the project's. ``main`` puts the project's folder there instead.
_HERE = os.path.dirname(os.path.abspath(__file__))
if sys.path and os.path.abspath(sys.path[0] or ".") == _HERE:
    del sys.path[0]

try:
    import alembic
    import sqlalchemy
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.config import Config
    from alembic.runtime.environment import EnvironmentContext
    from alembic.script import ScriptDirectory
    from alembic.util import coerce_resource_to_filename
    from sqlalchemy import (
        Column,
        Computed,
        Enum,
        Identity,
        Index,
        MetaData,
        create_engine,
        event,
        inspect,
    )
    from sqlalchemy.engine import Connection, Dialect
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.pool import NullPool, Pool
    from sqlalchemy.schema import ForeignKeyConstraint, UniqueConstraint
except ImportError as err:  # said in the greeting: this interpreter cannot run the project
    _MISSING: str | None = f"{type(err).__name__}: {err}"
else:
    _MISSING = None

MESSAGE_LINES = 20  # an error's message is sent whole (a pydantic error lists each field), to here
GUARD_HELP = 'README, "If your env.py builds its own URL"'
_IDENTITY = ("SELECT current_database(), "
             "(extract(epoch FROM pg_postmaster_start_time()) * 1000000)::bigint::text, "
             "current_setting('port')")


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits or 0))
        if not piece.isdigit():
            break
    return tuple(parts)


# -- the target: handed over every way, and guarded ---------------------------------------------
class WrongDatabase(RuntimeError):
    """The project's code opened a connection to something other than the target."""


class Target:
    """The one database this child serves (``url`` None: none, for chain-only operations)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.config = Path(spec["config"]).resolve()
        self.toml: str | None = spec.get("toml")
        self.expect: dict[str, str] | None = spec.get("expect")
        self.driver = _driver()
        self.url: str | None = None
        if spec.get("url"):
            if self.driver is None:
                raise RuntimeError("this interpreter has neither psycopg2 nor psycopg (3) "
                                   "(SQLAlchemy 2.0 or later) to reach PostgreSQL with")
            # The project's driver. Named only when it is not its SQLAlchemy's default for
            # postgresql:// (psycopg2 up to 2.0, psycopg from 2.1): apps that check the
            # scheme (== "postgresql") take the plain form.
            if _default_driver() != self.driver:
                self.url = spec["url"].replace("postgresql://", f"postgresql+{self.driver}://",
                                               1)
            else:
                self.url = spec["url"]
        # The database operations may reach: none when the guard expects none (chain-only
        # children still hand the development database's URL over, for apps that need one
        # to import).
        self.reach = self.url if self.expect is not None else None
        self.refused: str | None = None  # set once the guard refused a connection
        self.env = {name: self.url for name in ["DATABASE_URL", *spec.get("url_env", [])]
                    if self.url}
        for key, name in (("pghost", "PGHOST"), ("pgport", "PGPORT"),
                          ("password", "PGPASSWORD")):
            if spec.get(key):
                self.env[name] = spec[key]

    def hand_over(self) -> None:
        """Before any of the project's code runs: its environment, folder and sys.path."""
        os.environ.update(self.env)
        # Where the owner runs `alembic`: an app reading `.env` relative to it finds its own.
        os.chdir(self.config.parent)
        # `python -m alembic` from that folder has it first on sys.path; the project's
        # prepend_sys_path is added by Alembic's Config as usual.
        sys.path.insert(0, str(self.config.parent))

    def guard(self, dbapi_conn: Any, record: Any) -> None:
        """Pool "connect" listener for every engine: only the target may be reached.

        Runs before SQLAlchemy's own first-connect queries. The database's name, when the
        driver tells it, is compared before any statement runs; then the server's identity
        (its start time and port) with one read-only query.
        """
        named: str | None = None
        where = ""
        try:
            info = getattr(dbapi_conn, "info", None)
            named = getattr(info, "dbname", None)
            where = _where(info)
            if self.expect is None:
                problem = "this operation needs no database"
            elif named is not None and named != self.expect["database"]:
                problem = f"it is not the target {self.expect['database']!r}"
            else:
                cur = dbapi_conn.cursor()
                try:
                    cur.execute(_IDENTITY)
                    got = [str(v) for v in cur.fetchone()]
                finally:
                    cur.close()
                dbapi_conn.rollback()
                named = got[0]
                want = [self.expect[k] for k in ("database", "started", "port")]
                if got == want:
                    return
                problem = (f"it is not the target {self.expect['database']!r}"
                           if got[0] != want[0] else
                           f"it is on another server than the target {want[0]!r}")
        except WrongDatabase:
            raise
        except Exception as err:  # noqa: BLE001 - not provably the target: refused as well
            problem = f"its identity could not be read ({type(err).__name__}: {err})"
        try:
            dbapi_conn.close()
        except Exception:  # noqa: BLE001, S110 - closing is a courtesy; the refusal stands
            pass
        self.refused = (
            f"the project's code connected to database {named or '(unknown)'!r}{where}, and "
            f"{problem}: dbkit stopped it before any of the project's statements ran. "
            "The project's env.py builds its own URL; make it use the connection or URL "
            f"dbkit hands over ({GUARD_HELP})"
        )
        raise WrongDatabase(self.refused)


def _where(info: Any) -> str:
    host = getattr(info, "host", None)
    port = getattr(info, "port", None)
    if not host:
        return ""
    return f" at {host}" + (f":{port}" if port and not str(host).startswith("/") else "")


def _driver() -> str | None:
    """The PostgreSQL driver this interpreter has: psycopg2 (what most projects' URLs name,
    and the one a project with both was written against), else psycopg 3 (SQLAlchemy 2)."""
    if _MISSING is not None:
        return None
    usable = ["psycopg2"]
    if _version(sqlalchemy.__version__) >= (2, 0):
        usable.append("psycopg")
    for name in usable:
        if importlib.util.find_spec(name) is not None:
            return name
    return None


def _default_driver() -> str | None:
    from sqlalchemy.engine import make_url  # imports the dialect, not its driver

    try:
        return str(make_url("postgresql://").get_dialect().driver)
    except Exception:  # noqa: BLE001 - then the driver is named in the URL
        return None


def greeting() -> dict[str, Any]:
    """What dbkit says about the interpreter in each verb's first lines; or why it cannot."""
    hello: dict[str, Any] = {"python": sys.executable,
                             "python_version": sys.version.split()[0]}
    if _MISSING is not None:
        hello["error"] = f"cannot import Alembic and SQLAlchemy ({_MISSING})"
        return hello
    hello.update(sqlalchemy=sqlalchemy.__version__, alembic=alembic.__version__,
                 driver=_driver())
    if _version(sqlalchemy.__version__) < (1, 4):
        hello["error"] = f"has SQLAlchemy {sqlalchemy.__version__}; dbkit needs 1.4 or later"
    elif _version(alembic.__version__) < (1, 10):
        hello["error"] = f"has Alembic {alembic.__version__}; dbkit needs 1.10 or later"
    return hello


# -- running the project's env.py ---------------------------------------------------------------
def _with_env(cfg: Config, fn: Callable[[Any], Any], *, script: ScriptDirectory | None = None,
              witness: Witness | None = None) -> Any:
    """Run the project's env.py with ``fn(context)`` as the migration function (``witness``:
    told the folders env.py chose, for the chain read from ``script`` afterwards)."""
    script = script or ScriptDirectory.from_config(cfg)
    box: dict[str, Any] = {}

    def capture(rev: Any, context: Any) -> list:
        if witness is not None:
            witness.settle(script)
        box["value"] = fn(context)
        return []

    with Witnessed(cfg, script, witness, fn=capture, dont_mutate=True):
        run_env(script)
    return box.get("value")


def _failing_revision(err: BaseException, script: ScriptDirectory) -> str | None:
    """The revision whose file is deepest in the traceback: the one that broke."""
    try:
        by_path = {Path(s.path).resolve(): s.revision for s in script.walk_revisions()}
    except Exception:  # noqa: BLE001 - a broken chain has no map; the error says enough
        return None
    found = None
    for frame, _ in traceback.walk_tb(err.__traceback__):
        found = by_path.get(Path(frame.f_code.co_filename).resolve(), found)
    return found


def _end(conn: Any, *, commit: bool) -> None:
    """Commit or roll back what is open on ``conn``: SQLAlchemy 1.4's legacy Connection has
    no ``commit()``, but both versions have its transaction."""
    if conn.in_transaction():
        trans = conn.get_transaction()
        if trans is not None:
            trans.commit() if commit else trans.rollback()


@contextmanager
def _connection(url: str, **kw: Any) -> Iterator[Any]:
    """A connection with no transaction open, as plain ``alembic`` gives env.py.

    Alembic then runs its own transactions (per run, or per migration when the project asks
    for ``transaction_per_migration``), and ``autocommit_block()`` works. Whatever the
    project's env.py leaves open is committed at the end, like a successful CLI run.
    """
    engine = create_engine(url, poolclass=NullPool, **kw)
    try:
        with engine.connect() as conn:
            yield conn
            _end(conn, commit=True)
    finally:
        engine.dispose()


def _as_list(value: str | tuple[str, ...] | list[str] | None) -> list[str]:
    """Alembic's down_revision (None, one id, or several) as a list."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def message(err: BaseException) -> str:
    """``Type: message``, every line of it (a pydantic error lists each field), capped."""
    lines = str(err).strip().splitlines()
    if len(lines) > MESSAGE_LINES:
        lines = [*lines[:MESSAGE_LINES], f"... ({len(lines) - MESSAGE_LINES} more lines)"]
    return f"{type(err).__name__}: " + "\n".join(lines) if lines else raised_at(err)


def raised_at(err: BaseException) -> str:
    """An error without a message (a bare ``assert``) named by the line that raised it:
    ``AssertionError at alembic/runtime/migration.py:290 (autocommit_block): assert ...``."""
    frames = traceback.extract_tb(err.__traceback__)
    if not frames:
        return type(err).__name__
    last = frames[-1]
    parts = Path(last.filename).parts
    # From the package folder on: site-packages/alembic/... reads as alembic/...
    cut = max((i + 1 for i, p in enumerate(parts) if p in ("site-packages", "dist-packages")),
              default=max(len(parts) - 3, 0))
    where = "/".join(parts[cut:])
    code = f": {last.line.strip()}" if last.line else ""
    return f"{type(err).__name__} at {where}:{last.lineno} ({last.name}){code}"


def _backup_info(cfg: Config, script: ScriptDirectory, url: str | None) -> dict[str, Any]:
    """What a backup records about the project, in one child process instead of four.

    Only the versions directory is required: a backup must still be possible when the chain
    or the app is broken (that is when people need one), so the rest records its error.
    ``script``: as env.py leaves it (``discover``).
    """
    info: dict[str, Any] = {
        "versions_dir": script.versions,  # raises when several version_locations are set
        "heads": None, "history": None, "current": None, "errors": [],
    }
    try:
        info["heads"] = list(script.get_heads())
        info["history"] = history_text(script)
    except Exception as err:  # noqa: BLE001 - recorded, the backup goes on
        info["errors"].append(f"alembic history: {message(err)}")
    if url:
        try:
            with _connection(url) as conn:
                cfg.attributes["connection"] = conn
                info["current"] = list(_with_env(cfg, lambda ctx: ctx.get_current_heads()))
        except WrongDatabase:
            raise
        except Exception as err:  # noqa: BLE001 - recorded, the backup goes on
            info["errors"].append(f"alembic current: {message(err)}")
    return info


def _model_diffs(ctx: Any) -> list[dict[str, str | None]] | dict[str, int] | None:
    """What autogenerate would change to make the database match the models (None: no
    target_metadata; ``{"model_tables": 0}``: one that holds no tables, ``model_table_count``)."""
    metadata = ctx.opts.get("target_metadata")
    if metadata is None:
        return None
    if not model_table_count(metadata):
        return {"model_tables": 0}
    return model_differences(ctx, metadata)


def model_table_count(metadata: Any) -> int:
    """The tables of env.py's target_metadata (one MetaData or a list). None of them: the
    models were never imported (warehouse's env.py imports only the module that defines its
    MetaData), and comparing would call every table of the database "removed"."""
    metadatas = metadata if isinstance(metadata, (list, tuple)) else [metadata]
    return sum(len(m.tables) for m in metadatas if m is not None)


# -- what Alembic really loads and runs: the evidence dbkit checks -----------------------------
# env.py is the project's code and may choose its folders at run time: assign or append to
# ``context.script.version_locations`` (Prefect picks versions/postgresql or versions/sqlite
# by dialect), or move ``context.script.dir``. So dbkit never assumes that the folder it
# named is the one that ran: upgrades and downgrades go through dbkit's own migration
# function (what ``alembic.command`` does, nothing more), which, once env.py has made its
# choice and before anything runs,
# - lets the folder dbkit staged stand in for the project's folder env.py chose
#   (``stands_for``: the squash's staged directory, an archive for the catch-up),
# - refuses any step whose file is not one dbkit expects, by path and sha256 (``allow``),
# - and chains a callback onto env.py's own ``on_version_apply`` that records every step
#   that ran: revision, file, sha256, and the file its upgrade()/downgrade() code is in.
# Chain-only operations (revisions, heads, history, backup_info) run env.py offline first
# (``--sql`` mode: it connects nowhere) with a function that runs nothing, to see its choice.


class NotExpected(RuntimeError):
    """Alembic would run a file dbkit did not expect: refused before any step ran."""


def sha256_of(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def effective_locations(script: ScriptDirectory) -> list[Path]:
    """The folders ``script`` loads its revisions from, computed as Alembic does (not read
    from Alembic's memo of them, which an env.py that assigns new ones may leave stale)."""
    if script.version_locations:
        return [Path(coerce_resource_to_filename(str(p))).absolute()
                for p in script.version_locations]
    return [Path(script.dir, "versions").absolute()]


class Witness:
    """One operation's folders (as given, as env.py chose, as used) and the steps that ran."""

    def __init__(self, spec: dict[str, Any]) -> None:
        # {the project's folder: the folder dbkit put in its place}
        self.stands_for = {Path(k).resolve(): Path(v)
                           for k, v in (spec.get("stands_for") or {}).items()}
        allow = spec.get("allow")  # {resolved path: sha256}; None: any file may run
        self.allow: dict[str, str] | None = dict(allow) if allow is not None else None
        self.given: list[str] = []
        self.env_chose: list[str] | None = None  # set when env.py changed the folders
        self.used: list[str] | None = None
        self.env_error: str | None = None  # env.py could not be run offline to see its choice
        self.steps: list[dict[str, Any]] = []
        self.script: ScriptDirectory | None = None

    def start(self, script: ScriptDirectory) -> ScriptDirectory:
        self.script = script
        self.given = [str(p) for p in effective_locations(script)]
        return script

    def settle(self, script: ScriptDirectory) -> None:
        """Called from the migration function: env.py has chosen, nothing is loaded yet."""
        chosen = effective_locations(script)
        if [str(p) for p in chosen] != self.given:
            self.env_chose = [str(p) for p in chosen]
        steered: list[Path] = []
        for p in chosen:  # an env.py that appends to dbkit's folder would name it twice
            p = self.stands_for.get(p.resolve(), p)
            if p not in steered:
                steered.append(p)
        if steered != chosen:
            script.version_locations = [str(p) for p in steered]
            # Alembic memoizes the folders; env.py files that change them reset it so too.
            for memo in ("_version_locations", "_singular_version_location"):
                script.__dict__.pop(memo, None)
        self.used = [str(p) for p in effective_locations(script)]

    def check(self, steps: list[Any]) -> None:
        """Every step's file must be one dbkit expects, byte for byte; else nothing runs."""
        if self.allow is None:
            return
        for step in steps:
            rev = step.revision
            path = Path(rev.path).resolve()
            want = self.allow.get(str(path))
            if want is None:
                folders = sorted({str(Path(p).parent) for p in self.allow}) or ["none"]
                raise NotExpected(
                    f"Alembic would run revision {rev.revision} from {path}, which is not one "
                    f"of the files dbkit expects (in {', '.join(folders)}); env.py's folders: "
                    f"{', '.join(self.used or self.given)}; refused before anything ran")
            if sha256_of(path) != want:
                raise NotExpected(f"Alembic would run revision {rev.revision} from {path}, "
                                  "whose content is not the file dbkit expects (sha256 differs)")

    def applied(self, ctx: Any, step: Any, heads: Any, run_args: Any) -> None:
        """``on_version_apply``: one step has run."""
        if step.is_stamp:
            self.steps.append({"revision": step.up_revision_id, "stamp": True})
            return
        rev = step.up_revision
        fn = getattr(rev.module, "upgrade" if step.is_upgrade else "downgrade", None)
        code = getattr(unwrap(fn), "__code__", None) if callable(fn) else None
        self.steps.append({
            "revision": rev.revision, "path": str(Path(rev.path).resolve()),
            "sha256": sha256_of(rev.path), "upgrade": bool(step.is_upgrade),
            "code": str(Path(code.co_filename).resolve()) if code is not None else None,
        })

    def hook(self, context: Any) -> None:
        """Chain ``applied`` onto the callbacks env.py configured (never replace them)."""
        if self.applied not in context.on_version_apply_callbacks:
            context.on_version_apply_callbacks = (*context.on_version_apply_callbacks,
                                                  self.applied)

    def report(self) -> dict[str, Any]:
        return {"given": self.given, "env": self.env_chose, "used": self.used,
                "env_error": self.env_error, "steps": self.steps}


def Witnessed(cfg: Config, script: ScriptDirectory, witness: Witness | None,  # noqa: N802
              **kw: Any) -> EnvironmentContext:
    """The EnvironmentContext env.py sees, whose ``configure`` first tells the witness: by
    then env.py has chosen its folders, and Alembic has loaded none (offline with a start
    revision, it resolves that start before the migration function is called). The method
    is wrapped on the instance: Alembic's ``context`` module proxies its class's methods."""
    ctx = EnvironmentContext(cfg, script, **kw)
    if witness is not None:
        configure = ctx.configure

        def settled(*args: Any, **kwargs: Any) -> None:
            witness.settle(ctx.script)
            configure(*args, **kwargs)

        ctx.configure = settled  # type: ignore[method-assign]
    return ctx


def run_env(script: ScriptDirectory) -> None:
    """The project's env.py, under whatever EnvironmentContext is entered."""
    script.run_env()


def migrate(cfg: Config, witness: Witness, op: str, target: str, *,
            sql: bool = False) -> ScriptDirectory:
    """``alembic upgrade/downgrade target`` (``--sql``: offline), witnessed."""
    script = witness.start(ScriptDirectory.from_config(cfg))
    start = None
    if ":" in target:
        if not sql:
            raise ValueError("a range start:end needs SQL (offline) mode")
        start, target = target.split(":", 1)
    elif sql and op == "downgrade":
        raise ValueError("an offline downgrade needs start:end")

    def steps(rev: Any, context: Any) -> list[Any]:
        witness.settle(script)
        # What alembic.command.upgrade/downgrade run (the same calls, by design).
        todo = (script._upgrade_revs(target, rev) if op == "upgrade"
                else script._downgrade_revs(target, rev))
        witness.check(todo)
        witness.hook(context)
        return todo

    with Witnessed(cfg, script, witness, fn=steps, as_sql=sql, starting_rev=start,
                            destination_rev=target):
        run_env(script)
    return script


def discover(cfg: Config, witness: Witness, target: Target) -> ScriptDirectory:
    """The revisions' ScriptDirectory as env.py leaves it: env.py run offline (it connects
    nowhere) with a migration function that runs nothing. An env.py that cannot run offline
    leaves the folders alembic.ini names, and ``env_error`` says why."""
    script = witness.start(ScriptDirectory.from_config(cfg))
    seen: list[bool] = []

    def nothing(rev: Any, context: Any) -> list[Any]:
        witness.settle(script)
        seen.append(True)
        return []

    refused = target.refused
    try:
        with Witnessed(cfg, script, witness, fn=nothing, as_sql=True, dont_mutate=True,
                                output_buffer=io.StringIO()):
            run_env(script)
    except Exception as err:  # noqa: BLE001 - then the ini's folders, and why
        witness.env_error = message(err)
    if not seen:
        target.refused = refused  # a connection refused offline touched nothing
        witness.env_error = witness.env_error or "env.py did not run migrations offline"
        witness.env_chose = witness.used = None
        return witness.start(ScriptDirectory.from_config(cfg))
    return script


def history_text(script: ScriptDirectory) -> str:
    """What ``alembic history`` prints, from the revisions alone: history needs no database,
    so env.py (``revision_environment``) is not run online for it."""
    lines = [sc.cmd_format(verbose=False, include_branches=True, include_doc=True,
                           include_parents=True)
             for sc in script.walk_revisions(base="base", head="heads")]
    return "".join(line + "\n" for line in lines)


_NEEDS_DATABASE = ("validate", "upgrade", "downgrade", "stamp", "current", "diff")


def _config(target: Target, out: io.StringIO) -> Config:
    """The project's Config as ``alembic`` builds it: alembic.ini, and pyproject.toml's
    ``[tool.alembic]`` when the project has one (Alembic 1.16+ reads it)."""
    if target.toml is None:
        return Config(str(target.config), stdout=out)
    if "toml_file" not in inspect.signature(Config.__init__).parameters:
        raise RuntimeError(f"the project's settings are in [tool.alembic] of {target.toml}, "
                           f"which Alembic {alembic.__version__} does not read (1.16 and "
                           "later do)")
    return Config(str(target.config), toml_file=target.toml, stdout=out)


def run(target: Target, spec: dict[str, Any]) -> dict[str, Any]:
    out = io.StringIO()
    cfg = _config(target, out)
    if target.url:
        # The URL has no "%" (dbkit leaves the password and a socket path with odd
        # characters to PGPASSWORD and PGHOST), so ConfigParser takes it as it is.
        cfg.set_main_option("sqlalchemy.url", target.url.replace("%", "%%"))
    url = target.reach
    if spec.get("version_locations"):
        # The squash proves a new versions directory before it replaces the project's. Only
        # this one option is split on the deprecated separator, so a path with spaces stays
        # whole; a project that sets path_separator splits on that instead.
        cfg.set_main_option("version_locations", spec["version_locations"].replace("%", "%%"))
        if cfg.get_main_option("path_separator") is None:
            cfg.set_main_option("version_path_separator", "newline")
    op, args = spec["op"], spec.get("args", [])
    witness = Witness(spec)
    data: Any = None
    started = time.perf_counter()
    try:
        if op in _NEEDS_DATABASE and not url:
            raise RuntimeError(f"{op} needs a database, and this child was given none")
        if op in ("heads", "revisions", "history", "backup_info"):
            script = discover(cfg, witness, target)
        if op == "heads":
            data = list(script.get_heads())
        elif op == "revisions":
            data = [
                {
                    "revision": s.revision,
                    "down_revision": _as_list(s.down_revision),
                    "path": s.path,
                    "doc": s.doc,
                    "branch_labels": sorted(s.branch_labels or ()),
                }
                for s in script.walk_revisions()
            ]
        elif op == "history":
            out.write(history_text(script))
        elif op == "backup_info":
            data = _backup_info(cfg, script, url)
        elif op == "validate":
            data = validation_facts(cfg, witness, url, args[0])
        elif op == "upgrade_sql":
            # Offline (``alembic upgrade --sql``): the SQL, not run; no connection is made
            # (the guard refuses any). sqlalchemy.url names the dialect.
            cfg.output_buffer = io.StringIO()
            migrate(cfg, witness, "upgrade", args[0], sql=True)
            data = cfg.output_buffer.getvalue()
        else:
            with _connection(url) as conn:
                cfg.attributes["connection"] = conn
                if op in ("upgrade", "downgrade"):
                    migrate(cfg, witness, op, args[0])
                elif op == "stamp":
                    command.stamp(cfg, *args)
                elif op == "current":
                    data = list(_with_env(cfg, lambda ctx: ctx.get_current_heads()))
                elif op == "diff":
                    data = _with_env(cfg, _model_diffs)
                else:
                    raise ValueError(f"unknown operation {op}")
        if target.refused:  # refused, and the project carried on: it still failed
            raise WrongDatabase(target.refused)
    except BaseException as err:  # noqa: BLE001 - everything goes back to the parent as data
        return {
            "ok": False,
            "error": message(err),
            "guard": target.refused,
            "wrong_files": str(err) if isinstance(err, NotExpected) else None,
            "revision": _failing_revision(err, witness.script) if witness.script else None,
            "traceback": traceback.format_exc(),
            "output": out.getvalue(),
            "ran": witness.report(),
        }
    # The operation's own time: dbkit reports build times without the interpreter's start.
    return {"ok": True, "output": out.getvalue(), "data": data, "ran": witness.report(),
            "seconds": time.perf_counter() - started}


# -- what validate asks of the project ----------------------------------------------------------
def validation_facts(cfg: Config, witness: Witness, url: str, registry: str) -> dict[str, Any]:
    """Everything ``dbkit validate`` needs from the project, in one process and one session.

    The chain (heads, revision graph), the database's revision, the models compared with the
    database (``model_differences`` through the project's env.py) and the objects registry
    (none asked for when ``registry`` is empty). The session is read-only, so no hook of the
    project can write. A failure comes back as data, with the stage it happened in: ``app``
    (env.py or the models do not import), ``database`` (a query failed: no connection, no
    privilege), ``compare``, ``registry`` (does not import) or ``registry shape`` (imports,
    but is not a registry).
    """
    project = Path(cfg.config_file_name).resolve().parent
    # The chain is read once env.py has run (it may choose the folders: ``Witness``).
    script = witness.start(ScriptDirectory.from_config(cfg))
    facts: dict[str, Any] = {}
    stage = ["database"]

    def inspect_db(ctx: Any) -> None:
        stage[0] = "compare"
        default_schema = ctx.dialect.default_schema_name
        facts["has_version_table"] = inspect(ctx.connection).has_table(
            ctx.version_table, schema=ctx.version_table_schema
        )
        facts["version_table"] = _table(ctx.version_table_schema or default_schema,
                                        ctx.version_table)
        facts["current"] = list(ctx.get_current_heads())
        metadata = ctx.opts.get("target_metadata")
        metadatas = metadata if isinstance(metadata, (list, tuple)) else [metadata]
        tables = [t for m in metadatas if m is not None for t in m.tables.values()]
        facts["default_schema"] = default_schema
        facts["model_tables"] = len(tables)
        facts["model_schemas"] = sorted({t.schema or default_schema for t in tables})
        facts["diff"] = None if metadata is None else model_differences(ctx, metadata)

    try:
        with _connection(url, connect_args={
                "options": "-c default_transaction_read_only=on"}) as conn:
            # From here until inspect_db runs, env.py imports the app and configures Alembic.
            stage[0] = "app"
            cfg.attributes["connection"] = conn
            _with_env(cfg, inspect_db, script=script, witness=witness)
            _end(conn, commit=False)
        if "current" not in facts:
            raise RuntimeError("env.py never called context.run_migrations() online")
        stage[0] = "registry"
        facts["registry"] = load_registry(registry) if registry else None
    except Exception as err:  # noqa: BLE001 - the parent says what failed, in one line
        facts["failure"] = failure(err, stage[0], project)
    facts.update(
        heads=list(script.get_heads()),
        graph={s.revision: _as_list(s.down_revision) for s in script.walk_revisions()},
        # The file of each revision: the chain check builds from exactly these.
        files={s.revision: str(Path(s.path).resolve()) for s in script.walk_revisions()},
        # What a build of the chain depends on: its versions directories and env.py.
        chain_files=[str(p) for p in effective_locations(script)]
        + [str(Path(script.dir) / "env.py")])
    return facts


def failure(err: BaseException, stage: str, project: Path) -> dict[str, str | None]:
    """A failure as the parent reports it: stage, message, where in the project, traceback.

    A query the database refused is a database error whatever was running (Alembic reading
    alembic_version, or env.py itself); the location is then of no use.
    """
    where = None
    if isinstance(err, DBAPIError):
        stage = "database"
        error = message(err.orig if err.orig is not None else err)
    elif isinstance(err, RegistryError):
        stage, error = "registry shape", str(err)
    elif isinstance(err, SyntaxError):
        # The file that does not compile never ran: it is in no frame, only in the error.
        error = f"{type(err).__name__}: {err.msg}"
        if err.filename and not err.filename.startswith("<"):
            where = _place(err.filename, err.lineno, project)
    else:
        error = message(err)
    if where is None and stage != "database":
        # The deepest line of the project's own code: where the developer has to look.
        # Frames named <frozen ...> or <string> are Python's, not files of the project.
        frames = [f for f in traceback.extract_tb(err.__traceback__)
                  if not f.filename.startswith("<") and _inside(f.filename, project)]
        if frames:
            where = _place(frames[-1].filename, frames[-1].lineno, project)
    return {"stage": stage, "error": error, "where": where,
            "traceback": "".join(traceback.format_exception(type(err), err,
                                                            err.__traceback__))}


def _inside(filename: str, project: Path) -> bool:
    try:
        Path(filename).resolve().relative_to(project)
    except ValueError:
        return False
    return True


def _place(filename: str, lineno: int | None, project: Path) -> str:
    path = Path(filename).resolve()
    shown = path.relative_to(project) if _inside(filename, project) else path
    return f"{shown}, line {lineno}" if lineno else str(shown)


# -- the objects registry (APP_OBJECTS): imported here, compared in dbkit (validate.declared) --
# Registry attribute -> (shape, number of dotted parts in each name).
REGISTRY_FIELDS: dict[str, tuple[type, int]] = {
    "SCHEMAS": (tuple, 1),
    "VIEWS": (dict, 2),
    "MATERIALIZED_VIEWS": (dict, 2),
    "FUNCTIONS": (dict, 2),
    "TRIGGERS": (dict, 3),
    "MIGRATION_ONLY_TABLES": (tuple, 2),
}


class RegistryError(ValueError):
    """The registry module exists but does not have the expected shape."""


def load_registry(module: str) -> dict[str, Any] | None:
    """Import the registry and return it as plain data; None when there is no such module.

    Runs after the project's env.py has set up ``sys.path`` (``prepend_sys_path``; the
    alembic.ini folder is first, as for ``alembic`` run from there). A module that defines
    none of the registry's names is not a registry (a typo in APP_OBJECTS that happens to name
    some other module): RegistryError.
    """
    if not module:
        return None
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as err:
        # Only the registry itself being absent means "no registry"; a module it imports
        # that is missing is a broken app, and that error must surface.
        if err.name and (module == err.name or module.startswith(err.name + ".")):
            return None
        raise
    data: dict[str, Any] = {}
    for attr, (shape, parts) in REGISTRY_FIELDS.items():
        value = getattr(mod, attr, None)
        if value is None:
            continue
        where = f"{module}.{attr}"
        if shape is dict:
            if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()
            ):
                raise RegistryError(f"{where} is not a dict of name -> SQL text")
            names = list(value)
            data[attr] = dict(value)
        else:
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise RegistryError(f"{where} is not a tuple of names")
            names = list(value)
            data[attr] = names
        for name in names:
            if len(name.split(".")) != parts or not all(name.split(".")):
                shape_text = ("schema", "schema.name", "schema.table.trigger")[parts - 1]
                raise RegistryError(f"{where}: {name!r} is not {shape_text}")
    if not data:
        raise RegistryError(
            f"{module} defines none of {', '.join(REGISTRY_FIELDS)}: "
            "is APP_OBJECTS the app's objects registry?"
        )
    return data




# -- the models against the database: Alembic's comparison as plain data ----------------------
_CONSTRAINT_OPS = ("add_index", "remove_index", "add_constraint", "remove_constraint",
                   "add_fk", "remove_fk")


def model_differences(context: Any, metadata: MetaData | list[MetaData]) -> list[dict[str, Any]]:
    """Everything that differs between the models and the database ``context`` is bound to.

    Alembic's own comparison (so the project's ``include_object``, ``compare_type`` and the
    like apply) plus the enum labels, which Alembic does not compare.
    """
    dialect = context.dialect
    metadatas = list(metadata) if isinstance(metadata, (list, tuple)) else [metadata]
    records = [record for d in compare_metadata(context, metadata)
               for record in describe(d, dialect)]
    return records + enum_records(metadatas, context.connection, dialect.default_schema_name)


def describe(diff: Any, dialect: Dialect | None = None) -> list[dict[str, str | None]]:
    """One autogenerate difference (a tuple, or a list of column changes) as records.

    Names without a schema get the connection's default schema (``dialect``'s).
    """
    default_schema = dialect.default_schema_name if dialect is not None else None
    if isinstance(diff, list):  # the changes to one column come as a list of tuples
        return [_one(d, dialect, default_schema) for d in diff]
    return [_one(diff, dialect, default_schema)]


def enum_records(
    metadatas: list[MetaData], conn: Connection, default_schema: str | None
) -> list[dict[str, str | None]]:
    """The models' native enum types against the database's: missing, or other labels.

    Alembic's comparison does not look at enum labels, yet "the migration added a value the
    model lacks" (or the reverse) is a classic drift.
    """
    wanted: dict[tuple[str | None, str], list[str]] = {}
    for metadata in metadatas:
        for table in metadata.tables.values():
            for column in table.columns:
                type_ = column.type
                if isinstance(type_, Enum) and type_.native_enum and type_.name:
                    wanted[(type_.schema or default_schema, type_.name)] = list(type_.enums)
    if not wanted:
        return []
    have = {(e["schema"], e["name"]): list(e["labels"])
            for e in inspect(conn).get_enums(schema="*")}
    records: list[dict[str, str | None]] = []
    for (schema, name), labels in sorted(wanted.items(), key=lambda kv: (kv[0][0] or "", kv[0][1])):
        found = have.get((schema, name))
        if found == labels:
            continue
        records.append({
            "op": "modify_enum" if found is not None else "add_type",
            "object": _table(schema, name), "detail": None, "kind": "type",
            "db": _enum(found) if found is not None else None, "app": _enum(labels),
        })
    return records


def _enum(labels: list[str]) -> str:
    return "ENUM (" + ", ".join("'" + label.replace("'", "''") + "'" for label in labels) + ")"


def _one(
    diff: tuple[Any, ...], dialect: Dialect | None, default_schema: str | None
) -> dict[str, str | None]:
    op = diff[0]

    def qualified(schema: str | None, name: str) -> str:
        return _table(schema or default_schema, name)

    out: dict[str, str | None] = {"op": op, "object": "", "detail": None, "kind": "other",
                                  "db": None, "app": None}
    adding = op.startswith("add_")
    if op in ("add_table", "remove_table"):
        out.update(kind="table", object=qualified(diff[1].schema, diff[1].name))
        out["app" if adding else "db"] = table_size(len(diff[1].columns))
    elif op in ("add_table_comment", "remove_table_comment"):
        table = diff[1]
        # Alembic keeps the text of a comment it would drop only in the operation, not in
        # the diff tuple: "a comment" is all we can say.
        out.update(kind="table", object=qualified(table.schema, table.name),
                   db=_comment(diff[2]) if adding else "a comment",
                   app=_comment(table.comment) if adding else "no comment")
    elif op in ("add_column", "remove_column"):
        column = diff[3]
        out.update(kind="column", object=f"{qualified(diff[1], diff[2])}.{column.name}",
                   detail=_type(column.type, dialect))
        out["app" if adding else "db"] = _column(column, dialect)
    elif op.startswith("modify_"):
        out.update(kind="column", object=f"{qualified(diff[1], diff[2])}.{diff[3]}",
                   detail=f"{diff[-2]!r} -> {diff[-1]!r}")
        show = {
            "modify_type": lambda v: _type(v, dialect),
            "modify_nullable": lambda v: "NULL" if v else "NOT NULL",
            "modify_default": lambda v: _default(v, dialect) or "no default",
            "modify_comment": _comment,
        }.get(op, repr)
        out.update(db=show(diff[-2]), app=show(diff[-1]))
    elif op in _CONSTRAINT_OPS:
        obj = diff[1]
        table = getattr(obj, "table", None)
        cols = [str(c.name) for c in getattr(obj, "columns", ())]
        name = obj.name or f"({', '.join(cols)})"
        owner = f"{qualified(table.schema, table.name)}." if table is not None else ""
        out.update(object=f"{owner}{name}", detail=", ".join(cols) or None)
        if isinstance(obj, Index):
            out.update(kind="index")
            text = _index(obj, dialect)
        elif isinstance(obj, ForeignKeyConstraint):
            out.update(kind="foreign key")
            text = _foreign_key(obj)
        elif isinstance(obj, UniqueConstraint):
            out.update(kind="unique constraint")
            text = f"UNIQUE ({', '.join(cols)})"
        else:
            out.update(kind="constraint")
            text = f"{type(obj).__name__} ({', '.join(cols)})"
        out["app" if adding else "db"] = text
    else:
        out.update(_other_op(diff, default_schema))
    return out


def _other_op(diff: tuple[Any, ...], default_schema: str | None) -> dict[str, str | None]:
    """An operation Alembic's own comparison does not make: a plugin's, most often
    alembic-postgresql-enum's ``create_enum`` / ``drop_enum`` (``(op, name, schema, labels)``)
    and ``change_enum_variants`` (``(op, old labels, new labels, columns)``). Named, and put
    on the side that has it: a ``drop_``/``remove_`` is something the database has."""
    op = diff[0]
    if op in ("create_enum", "drop_enum") and len(diff) == 4 and isinstance(diff[1], str):
        side = "app" if op == "create_enum" else "db"
        return {"kind": "type", "object": _table(diff[2] or default_schema, diff[1]),
                side: _enum([str(v) for v in diff[3]])}
    if op == "change_enum_variants" and len(diff) == 4:
        columns = []
        for ref in diff[3]:
            table = getattr(ref, "table_name", None) or (ref[0] if isinstance(ref, tuple) else "")
            column = getattr(ref, "column_name", None) or (ref[1] if isinstance(ref, tuple)
                                                           else "")
            schema = getattr(ref, "table_schema", None)
            schema = schema if isinstance(schema, str) else default_schema
            columns.append(f"{_table(schema, str(table))}.{column}")
        return {"kind": "type", "object": "the enum of " + (", ".join(columns) or "no column"),
                "db": _enum([str(v) for v in diff[1]]), "app": _enum([str(v) for v in diff[2]])}
    text = repr(diff[1:])
    return {"detail": text, "db" if op.startswith(("drop_", "remove_")) else "app": text}


def _table(schema: str | None, name: str) -> str:
    """``schema.name``; a bare name only where no schema is known (not PostgreSQL)."""
    return f"{schema}.{name}" if schema else name


def _sql(clause: Any, dialect: Dialect | None) -> str:
    if isinstance(clause, str):
        return clause
    text = getattr(clause, "text", None)  # text() clauses: their SQL as written
    if isinstance(text, str):
        return text
    try:
        return str(clause.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    except Exception:  # noqa: BLE001 - an odd construct still deserves a readable line
        return str(clause)


def _type(type_: Any, dialect: Dialect | None) -> str:
    try:
        return str(type_.compile(dialect=dialect))
    except Exception:  # noqa: BLE001 - a type this dialect cannot render: say what it is
        return repr(type_)


def _comment(text: str | None) -> str:
    return f"comment {text!r}" if text else "no comment"


def _default(value: Any, dialect: Dialect | None) -> str | None:
    """A server default as SQL: DEFAULT ..., an identity, or a generated expression."""
    if value is None:
        return None
    if isinstance(value, Identity):
        return f"GENERATED {'ALWAYS' if value.always else 'BY DEFAULT'} AS IDENTITY"
    if isinstance(value, Computed):
        return f"GENERATED ALWAYS AS ({_sql(value.sqltext, dialect)})"
    arg = getattr(value, "arg", value)
    if isinstance(arg, str):
        # A plain string server_default is a literal: that is how it reaches the table.
        return "DEFAULT '" + arg.replace("'", "''") + "'"
    return f"DEFAULT {_sql(arg, dialect)}"


def _column(column: Column[Any], dialect: Dialect | None) -> str:
    parts = [_type(column.type, dialect)]
    if not column.nullable:
        parts.append("NOT NULL")
    default = _default(column.server_default, dialect)
    if default:
        parts.append(default)
    return " ".join(parts)


def _index(index: Index, dialect: Dialect | None) -> str:
    ops = index.dialect_kwargs.get("postgresql_ops") or {}
    exprs = []
    for e in index.expressions:
        name = e.name if isinstance(e, Column) else _sql(e, dialect)
        exprs.append(f"{name} {ops[name]}" if name in ops else name)
    text = f"{'UNIQUE ' if index.unique else ''}INDEX ({', '.join(exprs)})"
    using = index.dialect_kwargs.get("postgresql_using")
    if using:
        text += f" USING {using}"
    where = index.dialect_kwargs.get("postgresql_where")
    if where is not None:
        text += f" WHERE {_sql(where, dialect)}"
    return text


def _foreign_key(fk: ForeignKeyConstraint) -> str:
    targets = [e.target_fullname for e in fk.elements]
    referred = targets[0].rsplit(".", 1)[0] if targets else "?"
    text = (f"FOREIGN KEY ({', '.join(fk.column_keys)}) REFERENCES {referred} "
            f"({', '.join(t.rsplit('.', 1)[-1] for t in targets)})")
    for clause, value in (("ON DELETE", fk.ondelete), ("ON UPDATE", fk.onupdate)):
        if value and value.upper() != "NO ACTION":
            text += f" {clause} {value.upper()}"
    if fk.deferrable:
        text += " DEFERRABLE"
    if fk.initially:
        text += f" INITIALLY {fk.initially.upper()}"
    return text


def table_size(columns: int) -> str:
    """``a table of 3 columns`` (as ``dbkit.validate.drift`` words it)."""
    return f"a table of {columns} column{'' if columns == 1 else 's'}"


# -- the loop ------------------------------------------------------------------------------------
def main() -> None:
    # stdout carries only our JSON answers: whatever the project prints goes to stderr.
    answer = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)

    def send(obj: dict[str, Any]) -> None:
        answer.write(json.dumps(obj) + "\n")
        answer.flush()

    hello = greeting()
    target = None
    if "error" not in hello:
        try:
            target = Target(json.loads(os.environ.pop("DBKIT_CHILD")))
        except Exception as err:  # noqa: BLE001 - said in the greeting, one line
            hello["error"] = message(err)
    send({"hello": hello})
    if target is None:
        sys.exit(2)
    target.hand_over()
    # Before any of the project's code: every engine it makes, now or later, is guarded.
    event.listen(Pool, "connect", target.guard)
    # One operation per line, answered by one line, until the end of the input: a session
    # (chain.AlembicChild) starts this process early and sends operations as they come.
    failed = False
    for line in iter(sys.stdin.readline, ""):
        if line.strip():
            result = run(target, json.loads(line))
            failed = failed or not result["ok"]
            send(result)
    answer.close()
    # Exit without a last collection of everything the project imported (a tenth of a
    # second that dbkit waits for); atexit handlers still run.
    gc.freeze()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
