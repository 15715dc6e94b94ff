"""The squashed revision's section headers say what follows them, and none is written twice.

The headers come from ``squash.kinds``; what an object *is* is read here from the rendered SQL
itself (``CREATE INDEX ... ON <relation>`` is a table's index when ``<relation>`` is created by
a ``CREATE TABLE``), so a header over objects of another kind fails whatever the registry says.
"""

from __future__ import annotations

import ast
import re
from datetime import datetime
from pathlib import Path

import pytest
from squash_helpers import copy_project, dry_run, squash_env, squashed_file

from conftest import BACKEND, FIXTURES
from dbkit.squash.ddl import Capture
from dbkit.squash.depend import Node
from dbkit.squash.kinds import KIND, KINDS
from dbkit.squash.render import Replaced, render_revision

_HEADER = re.compile(r"^    # -- (.+?) -{4,}$")
_PART = re.compile(r", part \d+ \(.*\)$")
_NAME = r'((?:"[^"]*"|[\w$]+)(?:\.(?:"[^"]*"|[\w$]+))?)'
# What a statement creates, read from its text: (pattern, what).
_CREATES = [
    (re.compile(rf"CREATE (?:UNLOGGED )?TABLE {_NAME}"), "table"),
    (re.compile(rf"CREATE (?:UNIQUE )?INDEX \S+ ON (?:ONLY )?{_NAME}"), "index"),
    (re.compile(rf"CREATE MATERIALIZED VIEW {_NAME}"), "matview"),
    (re.compile(rf"CREATE VIEW {_NAME}"), "view"),
    (re.compile(r"CREATE POLICY "), "policy"),
    (re.compile(r"CREATE (?:CONSTRAINT )?TRIGGER "), "trigger"),
    (re.compile(r"CREATE (?:OR REPLACE )?(?:FUNCTION|PROCEDURE) "), "function"),
    (re.compile(r"CREATE SCHEMA "), "schema"),
    (re.compile(r"CREATE EXTENSION "), "extension"),
    (re.compile(r"CREATE (?:TYPE|DOMAIN) "), "type"),
    (re.compile(r"CREATE (?:UNLOGGED )?SEQUENCE "), "sequence"),
    (re.compile(r"SELECT pg_catalog\.setval\("), "setval"),
    (re.compile(r"ALTER TABLE \S+ ADD CONSTRAINT "), "constraint"),
    (re.compile(r"DO \$\$ BEGIN IF NOT EXISTS \(SELECT FROM pg_roles"), "role"),
]
# Which of those each node kind's header may stand over ("index" split by what it is on).
_ALLOWED = {
    "role": {"role"}, "schema": {"schema"}, "extension": {"extension"}, "type": {"type"},
    "sequence": {"sequence"}, "function": {"function"},
    "table": {"table", "index on a table", "policy"}, "view": {"view"}, "rows": {"rows"},
    "setval": {"setval"}, "constraint": {"constraint"},
    "matview": {"matview", "index on a materialized view"}, "trigger": {"trigger"},
}


def _sections(text: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """upgrade()'s headers in order, each with what its statements create: (what, name)."""
    upgrade = text.split("def upgrade() -> None:\n", 1)[1].split("\ndef downgrade", 1)[0]
    chunks: list[tuple[str, list[str]]] = []
    for line in upgrade.splitlines():
        match = _HEADER.match(line)
        if match:
            chunks.append((match.group(1), []))
        elif chunks:
            chunks[-1][1].append(line)
    sections = []
    for header, lines in chunks:
        created: list[tuple[str, str | None]] = []
        for call in ast.walk(ast.parse("def f():\n" + "\n".join(lines) + "\n    pass")):
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)):
                continue
            if call.func.attr == "bulk_insert":
                created.append(("rows", None))
            elif call.func.attr == "execute":
                statement = ast.literal_eval(call.args[0]).strip()
                for pattern, what in _CREATES:
                    match = pattern.match(statement)
                    if match:
                        created.append((what, match.group(1) if match.groups() else None))
                        break
        sections.append((header, created))
    return sections


def check_sections(text: str) -> list[str]:
    """Problems with the headers of a rendered revision (empty: every header is right)."""
    sections = _sections(text)
    problems = []
    headers = [header for header, _ in sections]
    problems += [f"header written twice: {h}" for h in sorted({h for h in headers
                                                                 if headers.count(h) > 1})]
    tables = {name for _, created in sections for what, name in created if what == "table"}
    matviews = {name for _, created in sections for what, name in created if what == "matview"}
    by_section = {k.section: k.name for k in KINDS if k.name in _ALLOWED}
    for header, created in sections:
        kind = by_section.get(_PART.sub("", header))
        if kind is None:
            problems.append(f"unknown header: {header}")
            continue
        for what, name in created:
            if what == "index":
                what = ("index on a table" if name in tables else
                        "index on a materialized view" if name in matviews else f"index on {name}")
            if what not in _ALLOWED[kind]:
                problems.append(f"{what} {name or ''} under '# -- {header}'")
    return problems


def test_every_header_kind_is_known() -> None:
    assert {k.name for k in KINDS} - {"index", "policy", "matview index"} == set(_ALLOWED)
    assert {KIND[k].section for k in ("index", "policy")} == {KIND["table"].section}
    assert KIND["matview index"].section == KIND["matview"].section


def test_a_section_brought_back_by_a_dependency_says_so() -> None:
    nodes = [Node(kind="view", key="public.a", create=["CREATE VIEW public.a AS SELECT 1"]),
             Node(kind="matview", key="public.m",
                  create=["CREATE MATERIALIZED VIEW public.m AS SELECT 1 FROM public.a"]),
             Node(kind="view", key="public.b",
                  create=["CREATE VIEW public.b AS SELECT 1 FROM public.m"])]
    text = render_revision(Capture(nodes=nodes, counts={}, snapshot={}), revision="abc",
                           replaced=Replaced(count=2, first="x", first_doc="", last="abc",
                                             last_doc=""),
                           created=datetime(2025, 1, 1))
    assert [h for h, _ in _sections(text)] == [
        "views", "materialized views and their indexes",
        "views, part 2 (they need what is above)"]
    assert check_sections(text) == []
    assert check_sections(text.replace(", part 2 (they need what is above)", "")) == [
        "header written twice: views"]


@pytest.mark.parametrize("case", ["backend", "comments", "indexes", "matview_index",
                                  "function_trigger", "constraints", "grants"])
def test_rendered_headers_match_what_follows_them(case: str, pgdata: Path, fresh_db: str,
                                                  project_dir: Path, tmp_path: Path) -> None:
    """The sample backend and fixtures with table indexes, materialized views and their
    indexes, triggers, constraints added after the data, roles."""
    backend = copy_project(BACKEND if case == "backend" else FIXTURES / case, project_dir)
    result, folder = dry_run(squash_env(pgdata, fresh_db, project_dir, backend), project_dir,
                             tmp_path)
    assert result.code == 0, result.err + result.out
    text = squashed_file(folder / "versions").read_text()
    sections = _sections(text)
    assert sum(len(created) for _, created in sections) > 0
    assert check_sections(text) == []
    if case in ("backend", "comments"):
        kinds = {what for _, created in sections for what, _ in created}
        assert {"table", "index", "matview"} <= kinds
