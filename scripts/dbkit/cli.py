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

from dbkit import __version__, backup, database, demo, reset, restore, squash, validate, verify
from dbkit.console import Console
from dbkit.errors import ConfigError, DbkitError
from dbkit.safety import YES
from dbkit.settings import _bool, load_settings

Verb = Callable[..., "int | None"]

VERBS: dict[str, Verb] = {
    "up": database.up,
    "down": database.down,
    "url": database.url,
    "psql": database.psql,
    "upgrade": database.upgrade,
    "current": database.current,
    "history": database.history,
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
}


def _help(fn: Verb) -> str:
    return (inspect.getdoc(fn) or "").splitlines()[0]


def _options(fn: Verb) -> list[inspect.Parameter]:
    return [
        p for p in inspect.signature(fn).parameters.values() if p.kind is p.KEYWORD_ONLY
    ]


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dbkit",
        description="Squash, back up, restore and validate Alembic + PostgreSQL projects.",
    )
    parser.add_argument("--version", action="version", version=f"dbkit {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only results, no progress")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for name, fn in VERBS.items():
        p = sub.add_parser(name, help=_help(fn), description=inspect.getdoc(fn))
        for param in _options(fn):
            flag = "--" + param.name.replace("_", "-")
            env_name = param.name.upper()
            default = param.default
            if isinstance(default, bool):
                if env_name in environ:
                    default = _bool(env_name, environ[env_name])
                p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default,
                               help=f"(env {env_name})")
            else:
                if env_name in environ and environ[env_name] != "":
                    default = environ[env_name]
                kind = int if isinstance(param.default, int) else str
                p.add_argument(flag, type=kind, default=default, help=f"(env {env_name})")
            if param.name == "confirm":
                p.add_argument("-y", "--yes", dest="confirm", action="store_const", const=YES,
                               help="confirm without asking")
    return parser


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
    try:
        parser = build_parser(environ)
    except ConfigError as exc:
        err.write(f"dbkit: error: {exc.message}\n")
        return exc.exit_code
    args = parser.parse_args(argv)
    if not args.verb:
        parser.print_help(out)
        return 0
    fn = VERBS[args.verb]
    console = Console(out, quiet=args.quiet, stdin=stdin)
    try:
        settings = load_settings(environ=environ)
        console.secrets = settings.secrets
        kwargs = {p.name: getattr(args, p.name) for p in _options(fn)}
        code = fn(settings, console, **kwargs)
        return int(code or 0)
    except DbkitError as exc:
        if args.debug:
            raise
        err.write(f"dbkit {args.verb}: error: {console.mask(exc.message)}\n")
        if exc.detail and not args.quiet:
            err.write(console.mask(exc.detail.rstrip()) + "\n")
        return exc.exit_code
    except KeyboardInterrupt:
        err.write(f"\ndbkit {args.verb}: interrupted; nothing was left half-done\n")
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug of ours: one line, traceback on --debug
        if args.debug:
            raise
        err.write(f"dbkit {args.verb}: internal error: {type(exc).__name__}: "
                  f"{console.mask(str(exc))} (run with --debug for the traceback)\n")
        if os.environ.get("DBKIT_TRACEBACK"):
            traceback.print_exc(file=err)
        return 3


def main() -> None:
    sys.exit(run(sys.argv[1:], sys.stdout, sys.stderr))
