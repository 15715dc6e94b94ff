"""The folders are the architecture: this keeps them so, computed from the source.

pg/ knows only PostgreSQL; project/ knows the user's Alembic project on top of pg/; the verbs in
commands/ are leaves that only cli imports; and no two modules import each other in a circle
(lazy imports inside functions count: they hide a cycle, they do not remove it).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "scripts" / "dbkit"
BACKBONE = {"cli", "errors", "settings", "discover", "console", "safety", "retry", "files",
            "__init__",
            "__main__"}
LIMIT = 500  # lines; a longer module says why at its top ("Long because ...")


def _module(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE).with_suffix("").parts)


def _imports() -> dict[str, set[str]]:
    """``{module: {dbkit modules it imports}}``, e.g. ``{"pg.scratch": {"pg.server", ...}}``."""
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                    and node.module.split(".")[0] == "dbkit":
                base = node.module.removeprefix("dbkit").lstrip(".")
                for alias in node.names:
                    sub = f"{base}.{alias.name}" if base else alias.name
                    found.add(sub if sub in modules else base or "__init__")
            elif isinstance(node, ast.Import):
                found |= {a.name.removeprefix("dbkit.") for a in node.names
                          if a.name.startswith("dbkit.")}
        graph[name] = {m.removesuffix(".__init__") for m in found if m != name} - {""}
    return graph


def _third_party(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
    return names


def _folder(module: str) -> str:
    return module.split(".")[0] if "." in module else "backbone"


GRAPH = _imports()


def test_the_graph_sees_every_folder() -> None:
    # Guards the guard: a parser that found nothing would pass every rule below.
    folders = {_folder(m) for m in GRAPH}
    assert {"backbone", "commands", "pg", "project", "squash", "backup", "validate"} <= folders
    assert "pg.server" in GRAPH["pg.scratch"]


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if _folder(m) == "pg"))
def test_pg_knows_only_postgresql(module: str) -> None:
    assert {_folder(m) for m in GRAPH[module]} <= {"backbone", "pg"}, GRAPH[module]
    path = PACKAGE / (module.replace(".", "/") + ".py")
    assert "alembic" not in _third_party(path)


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if _folder(m) == "project"))
def test_project_builds_only_on_pg(module: str) -> None:
    assert {_folder(m) for m in GRAPH[module]} <= {"backbone", "pg", "project"}, GRAPH[module]


def test_the_child_is_self_contained() -> None:
    # The project's interpreter runs runner.py by path, with nothing of dbkit installed.
    names = _third_party(PACKAGE / "project" / "runner.py")
    allowed = set(sys.stdlib_module_names) | {"alembic", "sqlalchemy", "__future__"}
    assert names <= allowed, names - allowed
    assert {"alembic", "sqlalchemy"} <= names  # guards the guard


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_only_cli_imports_the_verbs(module: str) -> None:
    if module == "cli" or _folder(module) == "commands":
        return
    assert not {m for m in GRAPH[module] if _folder(m) == "commands"}


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if _folder(m) == "commands"))
def test_verbs_are_leaves(module: str) -> None:
    assert not {m for m in GRAPH[module] if _folder(m) == "commands"}, GRAPH[module]


def test_no_import_cycles() -> None:
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycle = path[path.index(module):] + [module]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        for dep in sorted(GRAPH.get(module, ())):
            visit(dep, [*path, module])
        done.add(module)

    for module in sorted(GRAPH):
        visit(module, [])


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: _module(p))
def test_long_modules_say_why(path: Path) -> None:
    text = path.read_text()
    if len(text.splitlines()) > LIMIT:
        head = ast.get_docstring(ast.parse(text)) or ""
        assert "Long because" in head, f"{path.name} has over {LIMIT} lines and no reason"
