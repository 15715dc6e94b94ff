"""Where dbkit stands: the project, its Alembic config, and where each setting comes from.

dbkit is run from a project's folder the way ``alembic`` is: ``-c`` / ``ALEMBIC_CONFIG``, else
``alembic.ini`` (or ``[tool.alembic]`` in ``pyproject.toml``, Alembic 1.16+) in the folder it
stands in. Settings are read in layers, each one generic over every setting name, so a
setting added to ``settings.DEFAULTS`` flows through all of them:

1. ``-c`` on the command line (``ALEMBIC_CONFIG`` only);
2. the process environment;
3. dbkit's own settings file: ``env-file`` in ``[tool.dbkit]`` (this repository names its
   ``.env``), or the ``env_file`` a caller passes;
4. ``[tool.dbkit]`` in the project's ``pyproject.toml`` (committed, the team's);
5. the project's ``.env`` when it is the *app's* (not named as dbkit's own): only the app's
   database (``DATABASE_URL``) and its ``ENVIRONMENT`` are read from it, never a setting of
   dbkit's such as ``POSTGRES_PASSWORD``, which there means the app's own compose service;
6. the defaults.

Every value remembers its layer, so a verb can say which ``DATABASE_URL`` it took and from
where.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from dotenv.parser import parse_stream

from dbkit.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

# What dbkit takes from an app's own .env: facts about the app, never dbkit's own settings.
APP_ENV_KEYS = ("DATABASE_URL", "ENVIRONMENT")
# [tool.dbkit] keys that are not settings but say how to read them.
TABLE_ONLY = ("env-file",)
# The .gitignore dbkit writes into its state folder: nothing in it belongs in git.
# Layers whose relative paths are taken from where dbkit stands.
STARTING_LAYERS = ("the command line (-c)", "the environment")
STATE_GITIGNORE = "# dbkit's own state (embedded server, backups, lock): never commit it\n*\n"


@dataclass(frozen=True)
class Layer:
    """One source of settings: what it is called in messages, and its values."""

    name: str
    values: Mapping[str, str]


@dataclass(frozen=True)
class Sources:
    """The project's root folder and the layers its settings come from, first wins."""

    start: Path  # where dbkit stands (the current folder)
    project_dir: Path  # where relative settings and dbkit's state folder are anchored
    layers: tuple[Layer, ...]
    defaults: Mapping[str, str]
    pyproject: Path | None = None  # the pyproject.toml holding [tool.dbkit], if any
    explicit: frozenset[str] = field(default_factory=frozenset)

    def get(self, name: str) -> str:
        for layer in self.layers:
            if name in layer.values:
                return layer.values[name]
        return self.defaults[name]

    def origin(self, name: str) -> str:
        """Where ``name``'s value came from ("the environment", "the app's .env /x/.env")."""
        for layer in self.layers:
            if name in layer.values:
                return layer.name
        return "the default"

    def base(self, name: str) -> Path:
        """What a relative path in ``name`` is relative to: the current folder for the command
        line and the environment (as for alembic's ``-c``), else the project's root."""
        for layer in self.layers:
            if name in layer.values:
                return self.start if layer.name in STARTING_LAYERS else self.project_dir
        return self.project_dir

    def is_set(self, name: str) -> bool:
        return any(name in layer.values for layer in self.layers)


def setting_name(key: str) -> str:
    """``backend-dir``, ``backend_dir`` and ``BACKEND_DIR`` all name BACKEND_DIR."""
    return key.strip().replace("-", "_").upper()


def _toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path} does not parse as TOML ({err})") from None


def _tool(path: Path, name: str) -> dict[str, Any] | None:
    """``[tool.<name>]`` of a pyproject.toml, or None when the file or the table is absent."""
    if not path.is_file():
        return None
    table = _toml(path).get("tool", {}).get(name)
    return table if isinstance(table, dict) else None


def has_tool_alembic(folder: Path) -> bool:
    """Alembic 1.16+ reads its source settings from ``[tool.alembic]`` of pyproject.toml."""
    return _tool(folder / "pyproject.toml", "alembic") is not None


def find_tool_dbkit(start: Path) -> Path | None:
    """The nearest pyproject.toml with ``[tool.dbkit]``, from ``start`` up to the repository's
    root (the folder holding .git), like ruff or pytest find theirs."""
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if _tool(candidate, "dbkit") is not None:
            return candidate
        if (folder / ".git").exists():
            return None
    return None


def _value(key: str, raw: Any, where: Path) -> str:
    """A TOML value as the string the environment would hold (lists: comma-separated)."""
    if isinstance(raw, bool):
        return "1" if raw else "0"
    if isinstance(raw, (int, float, str)):
        return str(raw)
    if isinstance(raw, list) and all(isinstance(v, (str, int)) for v in raw):
        return ",".join(str(v) for v in raw)
    raise ConfigError(f"[tool.dbkit] in {where}: {key} must be a string, number, true/false "
                      "or a list of strings")


def tool_table(pyproject: Path, known: Iterable[str]) -> tuple[dict[str, str], dict[str, str]]:
    """``[tool.dbkit]`` as settings (names normalised) and its own keys (``env-file``).

    An unknown key is an error naming it: a typo must not be silently ignored."""
    table = _tool(pyproject, "dbkit") or {}
    names = set(known)
    settings: dict[str, str] = {}
    own: dict[str, str] = {}
    for key, raw in table.items():
        if key.replace("_", "-").lower() in TABLE_ONLY:
            own[key.replace("_", "-").lower()] = _value(key, raw, pyproject)
            continue
        name = setting_name(key)
        if name not in names:
            raise ConfigError(f"[tool.dbkit] in {pyproject}: {key!r} is not a dbkit setting "
                              "(see README, Configuration)")
        settings[name] = _value(key, raw, pyproject)
    return settings, own


def read_env_file(path: Path) -> dict[str, str]:
    """A dotenv file's values; a line that does not parse is an error, not a warning."""
    if not path.is_file():
        return {}
    with path.open(encoding="utf-8") as fh:
        for binding in parse_stream(fh):
            if binding.error:
                raise ConfigError(f"{path} line {binding.original.line} does not parse "
                                  "(expected NAME=value)")
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def sources(
    start: Path,
    environ: Mapping[str, str],
    defaults: Mapping[str, str],
    *,
    env_file: Path | None = None,
    overrides: Mapping[str, str] | None = None,
) -> Sources:
    """The layers of settings for a run standing in ``start``.

    The project's root is the folder of the nearest ``[tool.dbkit]``; without one, ``start``
    itself (dbkit works where it is run, as alembic does)."""
    overrides = dict(overrides or {})
    pyproject = find_tool_dbkit(start)
    table, own = tool_table(pyproject, defaults) if pyproject else ({}, {})
    project_dir = pyproject.parent if pyproject else start
    layers = [Layer("the command line (-c)", overrides),
              Layer("the environment", {k: v for k, v in environ.items() if k in defaults})]
    if env_file is None and own.get("env-file"):
        env_file = Path(own["env-file"]).expanduser()
        env_file = env_file if env_file.is_absolute() else project_dir / env_file
    if env_file is not None:
        layers.append(Layer(f"dbkit's settings file {env_file}",
                            {k: v for k, v in read_env_file(env_file).items() if k in defaults}))
    if table:
        layers.append(Layer(f"[tool.dbkit] in {pyproject}", table))
    app_env = project_dir / ".env"
    if env_file is None or app_env.resolve() != env_file.resolve():
        values = read_env_file(app_env)
        layers.append(Layer(f"the app's .env ({app_env})",
                            {k: values[k] for k in APP_ENV_KEYS if k in values}))
    return Sources(start=start, project_dir=project_dir, layers=tuple(layers),
                   defaults=defaults, pyproject=pyproject)


@dataclass(frozen=True)
class AlembicPlace:
    """Where the Alembic project is: its folder, its ini (which may be absent when
    ``[tool.alembic]`` holds everything) and that pyproject.toml, and how it was found."""

    folder: Path
    ini: Path
    toml: Path | None
    how: str


def locate_alembic(src: Sources, path_of: Any) -> AlembicPlace:
    """The Alembic project, as ``alembic`` finds it: ``-c``/``ALEMBIC_CONFIG`` (an ini, or a
    pyproject.toml), else ``BACKEND_DIR`` when set, else the current folder (then the
    project's root) holding alembic.ini or ``[tool.alembic]``."""
    if src.get("ALEMBIC_CONFIG").strip():
        given = path_of("ALEMBIC_CONFIG")
        how = f"ALEMBIC_CONFIG from {src.origin('ALEMBIC_CONFIG')}"
        if given.name == "pyproject.toml":
            return AlembicPlace(given.parent, given.parent / "alembic.ini", given, how)
        toml = given.parent / "pyproject.toml"
        return AlembicPlace(given.parent, given, toml if has_tool_alembic(given.parent)
                            else None, how)
    if src.is_set("BACKEND_DIR") and src.get("BACKEND_DIR").strip():
        folder = path_of("BACKEND_DIR")
        return _in(folder, f"BACKEND_DIR from {src.origin('BACKEND_DIR')}")
    for folder in dict.fromkeys((src.start, src.project_dir)):
        if (folder / "alembic.ini").is_file() or has_tool_alembic(folder):
            return _in(folder, "the current folder" if folder == src.start
                       else "the project's root")
    return _in(src.start, "the current folder")


def _in(folder: Path, how: str) -> AlembicPlace:
    toml = folder / "pyproject.toml"
    return AlembicPlace(folder, folder / "alembic.ini",
                        toml if has_tool_alembic(folder) else None, how)


def state_folder(path: Path, state_dir: Path) -> None:
    """Before dbkit writes ``path``: when it lies in dbkit's state folder, make that folder
    (private) with the .gitignore that keeps all of it out of git."""
    try:
        path.resolve().relative_to(state_dir.resolve())
    except ValueError:
        return
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    ignore = state_dir / ".gitignore"
    if not ignore.exists():
        fd = os.open(ignore, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "w") as fh:
            fh.write(STATE_GITIGNORE)
