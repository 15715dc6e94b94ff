"""The squashed revision's downgrade() on a server with PostgreSQL's default lock table.

Dropping an object locks everything the drop deletes, to the end of the transaction; with
max_locks_per_transaction = 64 one transaction cannot drop 1,000 tables ("out of shared
memory"). Past ``drops.RUNTIME_ABOVE`` estimated locks the revision's ``_drop_all`` reads the
server's limits when it runs, and splits the drops where they do not fit and Alembic owns the
transaction (tests/test_squash_transactions.py: the other modes, a server with a small lock
table). The test session's server runs with the default settings.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from squash_helpers import copy_project, dry_run, report_of, squash_env, squashed_file

from conftest import FIXTURES, REPO
from dbkit.pg.embedded import EmbeddedServer
from dbkit.squash import drops, render
from dbkit.squash.ddl import Capture
from dbkit.squash.depend import Node

PROOF = [
    "A and B identical: pg_dump schema, catalog, rows, sequence positions",
    "downgrade() leaves nothing but alembic_version",
    "upgrade() after downgrade() identical to A again",
]
REPLACED = render.Replaced(count=1, first="a", first_doc="", last="a", last_doc="")


def _table(columns: int) -> dict:
    return {"columns": [{"name": f"c{i}"} for i in range(columns)], "indexes": {},
            "constraints": {}, "triggers": {}, "policies": {}}


def _downgrade(cap: Capture) -> str:
    return render.render_revision(cap, revision="a", replaced=REPLACED).split(
        "def downgrade() -> None:\n", 1)[1]


def test_a_small_downgrade_is_plain_drops_a_big_one_decides_when_it_runs() -> None:
    small = Capture(nodes=[Node("table", f"public.t{i}", drop=f"DROP TABLE public.t{i}")
                           for i in range(3)],
                    counts={}, snapshot={"tables": {f"public.t{i}": _table(5) for i in range(3)}})
    assert _downgrade(small) == ("    op.execute(\"DROP TABLE public.t2\")\n"
                                 "    op.execute(\"DROP TABLE public.t1\")\n"
                                 "    op.execute(\"DROP TABLE public.t0\")\n")
    n = 1000
    big = Capture(nodes=[Node("table", f"public.t{i}", drop=f"DROP TABLE public.t{i}")
                         for i in range(n)],
                  counts={}, snapshot={"tables": {f"public.t{i}": _table(5) for i in range(n)}})
    text = _downgrade(big)
    body, helper = text.split("\ndef _drop_all(", 1)
    # Each table weighs 5 + 5 columns; every drop is listed once, in reverse order.
    assert f"    _drop_all({n * 10}, [\n" in body
    assert body.count('        (10, "DROP TABLE public.t') == n
    assert body.index("DROP TABLE public.t999") < body.index("DROP TABLE public.t0\"")
    assert "with op.get_context()" not in body  # only _drop_all enters autocommit_block()
    assert "context.autocommit_block()" in helper and "max_locks_per_transaction" in helper
    compile("def downgrade() -> None:\n" + text, "downgrade", "exec")


def test_a_downgrade_that_decides_when_it_runs_proves(
        pgdata: Path, fresh_db: str, project_dir: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Schemas, an extension, a view and tables: _drop_all on a server with room for them."""
    monkeypatch.setattr(drops, "RUNTIME_ABOVE", 10)
    backend = copy_project(FIXTURES / "second_schema", project_dir)
    result, folder = dry_run(squash_env(pgdata, fresh_db, project_dir, backend),
                             project_dir, tmp_path)
    assert result.code == 0, result.err + result.out
    assert folder is not None
    assert report_of(folder)["proof"] == PROOF
    down = squashed_file(folder / "versions").read_text().split("def downgrade() -> None:")[1]
    assert "_drop_all(" in down


def _gen_schema():  # noqa: ANN202 - the bench's generator, not a package of the tests
    spec = importlib.util.spec_from_file_location("gen_schema", REPO / "bench" / "gen_schema.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_a_schema_of_1000_tables_squashes_on_a_server_with_default_settings(
        pgdata: Path, fresh_db: str, project_dir: Path, tmp_path: Path,
        server: EmbeddedServer) -> None:
    conn = server.connect("postgres")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_setting('max_locks_per_transaction')::int, "
                        "current_setting('max_connections')::int")
            locks, connections = cur.fetchone()
    finally:
        conn.close()
    assert locks == 64 and connections <= 100, "the test needs a server with default settings"
    backend = project_dir / "schema_1000"
    _gen_schema().write_project(backend, 1000)
    result, folder = dry_run(squash_env(pgdata, fresh_db, project_dir, backend),
                             project_dir, tmp_path)
    assert result.code == 0, result.err + result.out
    assert folder is not None
    report = report_of(folder)
    assert report["proof"] == PROOF
    assert report["captured"]["tables"] == 1000
