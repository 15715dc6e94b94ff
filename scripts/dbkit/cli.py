"""The command line: generated from the verb functions, errors mapped to exit codes here only.

Each verb is a plain function ``verb(settings, out, *, option=default, ...)``. Its docstring's
first line is its help; each keyword option becomes ``--option`` and may also come from the
environment variable of the same name in capitals (``BACKUP=... make db-restore-full``), which
is how Make passes them without logic of its own.
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import traceback
from collections.abc import Callable, Mapping
from typing import TextIO

from dbkit import __version__
from dbkit.commands import (
    archive,
    backup,
    check,
    demo,
    everyday,
    makefile,
    reset,
    restore,
    squash,
    validate,
    verify,
)
from dbkit.console import Console
from dbkit.errors import ConfigError, DbkitError
from dbkit.pg import locks
from dbkit.pg.mode import get_server
from dbkit.project.recovery import repair
from dbkit.retry import Terminated, terminate_like_interrupt
from dbkit.safety import YES
from dbkit.settings import Settings, _bool, load_settings

Verb = Callable[..., "int | None"]

# The verbs that read the versions directory: each first repairs a swap a killed run left.
READS_VERSIONS = {"upgrade", "current", "history", "reset", "demo", "migration-backup",
                  "backup-full", "migration-restore", "restore-full", "validate", "squash",
                  "archive-prune", "check"}

VERBS: dict[str, Verb] = {
    "up": everyday.up,
    "down": everyday.down,
    "url": everyday.url,
    "psql": everyday.psql,
    "upgrade": everyday.upgrade,
    "current": everyday.current,
    "history": everyday.history,
    "reset": reset.reset,
    "demo": demo.demo,
    "migration-backup": backup.migration_backup,
    "backup-full": backup.backup_full,
    "backups": backup.backups,
    "backup-verify": verify.backup_verify,
    "backup-prune": backup.backup_prune,
    "migration-restore": restore.migration_restore,
    "restore-full": restore.restore_full,
    "validate": validate.validate,
    "squash": squash.squash,
    "archive-prune": archive.archive_prune,
    "check": check.check,
    "make-include": makefile.make_include,
}
# Verbs that need no project and read no setting nor environment variable: make-include runs
# inside every `make` of a project that includes dbkit's targets, whatever its variables.
NO_SETTINGS = {"make-include"}


def _help(fn: Verb) -> str:
    return (inspect.getdoc(fn) or "").splitlines()[0]


def _options(fn: Verb) -> list[inspect.Parameter]:
    return [
        p for p in inspect.signature(fn).parameters.values() if p.kind is p.KEYWORD_ONLY
    ]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dbkit",
        description="Squash, back up, restore and validate Alembic + PostgreSQL projects.",
        epilog="Exit codes: 0 success, 1 the job found a problem (proof failed, drift, damaged "
               "backup), 2 it could not run, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"dbkit {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only results, no progress")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("-c", "--config", metavar="FILE",
                        help="the project's alembic.ini (or pyproject.toml with [tool.alembic]); "
                             "default: ALEMBIC_CONFIG, else the one in the current folder")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for name, fn in VERBS.items():
        p = sub.add_parser(name, help=_help(fn), description=inspect.getdoc(fn))
        for param in _options(fn):
            flag = "--" + param.name.replace("_", "-")
            env_help = f"(env {param.name.upper()}; default {param.default!r})"
            # SUPPRESS: an option not given on the command line is absent from the namespace,
            # so the environment (then the function's default) can fill it in.
            if isinstance(param.default, bool):
                p.add_argument(flag, action=argparse.BooleanOptionalAction,
                               default=argparse.SUPPRESS, help=env_help)
            else:
                kind = int if isinstance(param.default, int) else str
                p.add_argument(flag, type=kind, default=argparse.SUPPRESS, help=env_help)
            if param.name == "confirm":
                p.add_argument("-y", "--yes", dest="confirm", action="store_const", const=YES,
                               default=argparse.SUPPRESS, help="confirm without asking")
    return parser


def verb_options(fn: Verb, args: argparse.Namespace,
                 environ: Mapping[str, str]) -> dict[str, object]:
    """Each option from the command line, else its environment variable, else its default.

    Only the chosen verb's variables are read, so a stray ``JSON=pretty`` in a user's shell
    cannot break a verb that has no such option.
    """
    kwargs: dict[str, object] = {}
    for param in _options(fn):
        name, env_name = param.name, param.name.upper()
        if hasattr(args, name):
            kwargs[name] = getattr(args, name)
        elif environ.get(env_name, "") != "":
            raw = environ[env_name]
            if isinstance(param.default, bool):
                kwargs[name] = _bool(env_name, raw)
            elif isinstance(param.default, int):
                try:
                    kwargs[name] = int(raw)
                except ValueError:
                    raise ConfigError(f"{env_name}={raw!r} is not a whole number") from None
            else:
                kwargs[name] = raw
        else:
            kwargs[name] = param.default
    return kwargs


def run(
    argv: list[str],
    out: TextIO,
    err: TextIO,
    *,
    environ: Mapping[str, str] | None = None,
    stdin: TextIO | None = None,
) -> int:
    """Parse, build settings once, run one verb, map errors to exit codes. Never exits."""
    environ = os.environ if environ is None else environ
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed its usage line
        return int(exc.code or 0)
    if not args.verb:
        parser.print_help(out)
        return 0
    fn = VERBS[args.verb]
    console = Console(out, err=err, quiet=args.quiet, stdin=stdin,
                      colour=None if "NO_COLOR" not in environ else False)
    if "MAKELEVEL" not in environ:  # make sets it for its recipes: not run by make
        console.targets = makefile.verbs_of_targets
    options: dict = {}
    settings: Settings | None = None
    try:
        if args.verb in NO_SETTINGS:
            return int(fn(None, console, **verb_options(fn, args, {})) or 0)
        options = verb_options(fn, args, environ)
        settings = load_settings(environ=environ, overrides={"ALEMBIC_CONFIG": args.config}
                                 if args.config else None)
        console.secrets = active_secrets(settings)
        if args.verb in READS_VERSIONS:
            # On stderr: stdout may be JSON (validate --json).
            for line in repair(settings):
                err.write(f"dbkit: {console.mask(line)}\n")
        code = fn(settings, console, **options)
        return int(code or 0)
    except DbkitError as exc:
        if args.debug:
            # The project's code failed in its child: that traceback, not dbkit's; else
            # dbkit's own. Either way the exit status is the one without --debug.
            err.write(console.mask((exc.trace or traceback.format_exc()).rstrip()) + "\n")
        error_json = getattr(sys.modules[fn.__module__], "error_json", None)
        if options.get("json") and error_json is not None and not exc.reported:
            # CI reads stdout: --json gets its keys even when a setting stopped the run.
            out.write(error_json(console.mask(exc.message)) + "\n")
        err.write(f"dbkit {args.verb}: error: {console.mask(exc.message)}\n")
        if exc.detail and not args.quiet:
            err.write(console.mask(exc.detail.rstrip()) + "\n")
        return exc.exit_code
    except Terminated:
        err.write(f"\ndbkit {args.verb}: terminated (SIGTERM); cleaned up as for Ctrl-C\n")
        return 143
    except KeyboardInterrupt:
        err.write(f"\ndbkit {args.verb}: interrupted\n")
        return 130
    except OSError as exc:
        if args.debug:
            err.write(console.mask(traceback.format_exc().rstrip()) + "\n")
        where = f": {exc.filename}" if exc.filename else ""
        err.write(f"dbkit {args.verb}: error: {exc.strerror or exc}{where}\n")
        return 2
    except Exception as exc:  # noqa: BLE001 - a bug of ours: one line, traceback on --debug
        if settings is not None and locks.timed_out(exc):
            # Not a bug: a statement of dbkit's own met LOCK_WAIT_TIMEOUT (pg/locks.py).
            if args.debug:
                err.write(console.mask(traceback.format_exc().rstrip()) + "\n")
            err.write(f"dbkit {args.verb}: error: "
                      f"{console.mask(_lock_waited(settings, exc, 'dbkit ' + args.verb))}\n")
            return 2
        if args.debug:
            err.write(console.mask(traceback.format_exc().rstrip()) + "\n")
        err.write(f"dbkit {args.verb}: internal error: {type(exc).__name__}: "
                  f"{console.mask(str(exc))}"
                  f"{'' if args.debug else ' (run with --debug for the traceback)'}\n")
        return 3


def _lock_waited(settings: Settings, err: Exception, what: str) -> str:
    """``locks.waited`` for a statement that met LOCK_WAIT_TIMEOUT outside a verb's own
    handling: the database is the one of the connection it ran on."""
    server = get_server(settings)
    cursor = getattr(err, "cursor", None)
    try:
        dbname = cursor.connection.info.dbname if cursor is not None else server.dev_db
    except Exception:  # noqa: BLE001 - a closed connection: the development database
        dbname = server.dev_db
    return locks.waited(server, dbname, what)


def active_secrets(settings: Settings) -> list[str]:
    """The passwords this run can meet: the ones of its mode (auto: both that may apply)."""
    url_password = [str(settings.database_url.password)] if (
        settings.database_url is not None and settings.database_url.password) else []
    docker_password = [settings.postgres_password] if settings.postgres_password else []
    return {"url": url_password, "docker": docker_password, "embedded": []}.get(
        settings.db_mode, url_password + docker_password)


def main() -> None:
    terminate_like_interrupt()
    sys.exit(run(sys.argv[1:], sys.stdout, sys.stderr))
