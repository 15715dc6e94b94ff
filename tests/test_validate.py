"""``dbkit validate``: every kind of drift is found, said in one line, and sets the exit code.

The fixture project ``fixtures/validate_base`` is built once to head into a template
database; each case copies it (CREATE DATABASE ... TEMPLATE, fast), drifts the copy with a
few SQL statements, and checks the exact line a developer would read and the exit code.
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import BACKEND, FIXTURES, base_env, run_cli, run_dbkit
from dbkit import cli, scratch
from dbkit.chain import AlembicProject
from dbkit.drift import KINDS
from dbkit.server import EmbeddedServer
from dbkit.settings import load_settings

BASE = FIXTURES / "validate_base"
HEAD = "c3_gene_location"

# (case, SQL that makes the drift, the line validate must print)
DRIFTS = [
    ("missing table", "DROP TABLE sources",
     "table sources: database has no such table, app expects a table of 4 columns"),
    ("extra table", "CREATE TABLE gene_notes (id int)",
     "table gene_notes: database has a table of 1 column, app declares no such table"),
    ("missing column", "ALTER TABLE sources DROP COLUMN url",
     "column sources.url: database has no such column, app expects VARCHAR(200)"),
    ("extra column", "ALTER TABLE sources ADD COLUMN legacy int",
     "column sources.legacy: database has INTEGER, app declares no such column"),
    ("column type", "ALTER TABLE sources ALTER COLUMN name TYPE varchar(100)",
     "column sources.name: database has VARCHAR(100), app expects VARCHAR(50)"),
    ("nullability", "ALTER TABLE sources ALTER COLUMN url SET NOT NULL",
     "column sources.url: database has NOT NULL, app expects NULL"),
    ("default", "ALTER TABLE genes ALTER COLUMN status SET DEFAULT 'retired'",
     "column genes.status: database has DEFAULT 'retired'::character varying, "
     "app expects DEFAULT 'active'"),
    ("enum labels", "ALTER TYPE source_kind ADD VALUE 'curated'",
     "type source_kind: database has ENUM ('panel', 'literature', 'curated'), "
     "app expects ENUM ('panel', 'literature')"),
    ("table comment", "COMMENT ON TABLE sources IS 'where from'",
     "table sources: database has a comment, app expects no comment"),
    ("column comment", "COMMENT ON COLUMN sources.url IS 'where'",
     "column sources.url: database has comment 'where', app expects no comment"),
    ("missing index", "DROP INDEX ix_genes_symbol",
     "index genes.ix_genes_symbol: database has no such index, app expects INDEX (symbol)"),
    ("missing unique constraint", "ALTER TABLE genes DROP CONSTRAINT uq_genes_hgnc_id",
     "unique constraint genes.uq_genes_hgnc_id: database has no such unique constraint, "
     "app expects UNIQUE (hgnc_id)"),
    ("missing foreign key", "ALTER TABLE evidence DROP CONSTRAINT fk_evidence_gene_id_genes",
     "foreign key evidence.fk_evidence_gene_id_genes: database has no such foreign key, "
     "app expects FOREIGN KEY (gene_id) REFERENCES genes (id) ON DELETE CASCADE"),
    ("changed foreign key action",
     "ALTER TABLE evidence DROP CONSTRAINT fk_evidence_gene_id_genes; "
     "ALTER TABLE evidence ADD CONSTRAINT fk_evidence_gene_id_genes FOREIGN KEY (gene_id) "
     "REFERENCES genes (id) ON DELETE SET NULL",
     "foreign key evidence.fk_evidence_gene_id_genes: database has FOREIGN KEY (gene_id) "
     "REFERENCES genes (id) ON DELETE SET NULL, app expects FOREIGN KEY (gene_id) "
     "REFERENCES genes (id) ON DELETE CASCADE"),
    ("missing view", "DROP VIEW audit.recent_changes",
     "view audit.recent_changes: database has no such view, app expects it"),
    ("changed view definition",
     "CREATE OR REPLACE VIEW top_genes AS "
     "SELECT gene_id, symbol FROM gene_evidence_counts WHERE evidence_count > 1",
     "view public.top_genes: database has SELECT gene_id, symbol FROM gene_evidence_counts "
     "WHERE (evidence_count > 1);, app expects SELECT gene_id, symbol FROM "
     "gene_evidence_counts WHERE (evidence_count > 0);"),
    ("extra view", "CREATE VIEW public.stale_genes AS SELECT 1 AS one",
     "view public.stale_genes: database has SELECT 1 AS one;, app declares no such view"),
    ("materialized view became a view",
     "DROP MATERIALIZED VIEW gene_score_snapshot; CREATE VIEW gene_score_snapshot AS "
     "SELECT gene_id, evidence_count FROM gene_evidence_counts",
     "materialized view public.gene_score_snapshot: database has a view, "
     "app expects a materialized view"),
    ("missing function", "DROP FUNCTION gene_label(text)",
     "function public.gene_label: database has no such function, app expects it"),
    ("changed function",
     "CREATE OR REPLACE FUNCTION gene_label(symbol text) RETURNS text LANGUAGE sql STABLE "
     "AS $$ SELECT lower(symbol) $$",
     "function public.gene_label(symbol text): database has volatility STABLE; "
     "body SELECT lower(symbol), app expects volatility IMMUTABLE; body SELECT upper(symbol)"),
    ("extra function", "CREATE FUNCTION public.helper() RETURNS int LANGUAGE sql AS 'SELECT 1'",
     "function public.helper(): database has a function returning integer, "
     "app declares no such function"),
    ("changed trigger",
     "DROP TRIGGER trg_genes_updated_at ON genes; CREATE TRIGGER trg_genes_updated_at "
     "BEFORE INSERT OR UPDATE ON genes FOR EACH ROW EXECUTE FUNCTION set_updated_at()",
     "trigger public.genes.trg_genes_updated_at: database has …trg_genes_updated_at BEFORE "
     "INSERT OR UPDATE ON public.genes FOR EACH ROW EXECUTE FUNCTION…, app expects "
     "…trg_genes_updated_at BEFORE UPDATE ON public.genes FOR EACH ROW EXECUTE FUNCTION "
     "set_updat…"),
    ("extra trigger",
     "CREATE TRIGGER trg_extra AFTER DELETE ON sources FOR EACH ROW "
     "EXECUTE FUNCTION set_updated_at()",
     "trigger public.sources.trg_extra: database has CREATE TRIGGER trg_extra AFTER DELETE ON "
     "public.sources FOR EACH ROW EXECUTE FUNCTION set_…, app declares no such trigger"),
    ("missing migration-only table", "DROP TABLE import_log",
     "table public.import_log: database has no such table, app expects a migration-only table"),
    ("unknown revision", "UPDATE alembic_version SET version_num = 'ffffffffffff'",
     "revision alembic_version: database has ffffffffffff (not in this chain: newer, deleted "
     "or squashed), app expects c3_gene_location (head)"),
    ("no alembic_version", "DROP TABLE alembic_version",
     "revision alembic_version: database has no alembic_version table, "
     "app expects c3_gene_location (head)"),
]


@pytest.fixture(scope="module")
def at_head(server: EmbeddedServer, pgdata: Path, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[str]:
    """The fixture project built once to head: the template every case copies."""
    name = scratch.scratch_name("validatehead")
    scratch.create_database(server, name)
    try:
        where = tmp_path_factory.mktemp("validate")
        settings = load_settings(where, base_env(pgdata, name, where, BACKEND_DIR=str(BASE)))
        AlembicProject(settings, server).upgrade(name, "head")
        yield name
    finally:
        scratch.drop_database(server, name)


@pytest.fixture
def copy(server: EmbeddedServer, at_head: str) -> Iterator[str]:
    """A private copy of the database at head, for one test to drift."""
    name = scratch.scratch_name("validate")
    scratch.create_database(server, name, template=at_head)
    try:
        yield name
    finally:
        scratch.drop_database(server, name)


def _env(pgdata: Path, db: str, project_dir: Path, backend: Path = BASE, **extra: str
         ) -> dict[str, str]:
    return base_env(pgdata, db, project_dir, BACKEND_DIR=str(backend), **extra)


def _sql(server: EmbeddedServer, db: str, statements: str) -> None:
    conn = server.connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute(statements)
    finally:
        conn.close()


def _lines(out: str) -> list[str]:
    return [line.strip() for line in out.splitlines()]


def test_in_sync_at_head_exits_0(copy: str, pgdata: Path, project_dir: Path) -> None:
    # The registry's texts are formatted unlike the migrations': formatting must not count.
    result = run_cli(["validate"], _env(pgdata, copy, project_dir), cwd=project_dir)
    assert result.code == 0, result.out + result.err
    assert _lines(result.out)[-1] == (
        f"In sync: {copy} matches the app at {HEAD} (4 model tables, 8 declared objects checked)"
    )


@pytest.mark.parametrize(("case", "statements", "line"), DRIFTS, ids=[d[0] for d in DRIFTS])
def test_each_drift_is_one_line_and_exit_1(
    case: str, statements: str, line: str, copy: str, server: EmbeddedServer, pgdata: Path,
    project_dir: Path,
) -> None:
    _sql(server, copy, statements)
    result = run_cli(["validate"], _env(pgdata, copy, project_dir), cwd=project_dir)
    assert result.code == 1, result.out + result.err
    lines = _lines(result.out)
    assert line in lines, result.out
    kind = next(k for k in reversed(KINDS) if line.startswith(k + " "))
    assert lines[-1] == f"Drift: 1 difference (1 {kind}) in {copy}", result.out  # nothing else
    assert result.err == ""


def test_database_behind_head(copy: str, server: EmbeddedServer, pgdata: Path,
                              project_dir: Path) -> None:
    env = _env(pgdata, copy, project_dir)
    AlembicProject(load_settings(project_dir, env), server).downgrade(copy, "b2_objects")
    result = run_cli(["validate"], env, cwd=project_dir)
    assert result.code == 1
    lines = _lines(result.out)
    assert ("revision alembic_version: database has b2_objects, 1 revision behind, "
            f"app expects {HEAD} (head)") in lines
    # What the missing revision would have added is reported too.
    assert "column genes.location: database has no such column, app expects VARCHAR(100)" in lines
    assert lines[-1] == f"Drift: 2 differences (1 revision, 1 column) in {copy}"
    # Groups come in a fixed order: the revision first.
    assert lines.index("Revision") < lines.index("Columns")


def test_renamed_column_breaks_the_declared_view(copy: str, server: EmbeddedServer,
                                                 pgdata: Path, project_dir: Path) -> None:
    # PostgreSQL rewrote the live view; the app's text no longer applies to this database.
    _sql(server, copy, "ALTER TABLE genes RENAME COLUMN symbol TO gene_symbol")
    result = run_cli(["validate"], _env(pgdata, copy, project_dir), cwd=project_dir)
    assert result.code == 1
    lines = _lines(result.out)
    assert ("view public.gene_evidence_counts: database has SELECT g.id AS gene_id, "
            "g.gene_symbol AS symbol, count(e.id) AS evidence_count FROM (genes…, app expects "
            "a definition PostgreSQL rejects here (column g.symbol does not exist)") in lines
    assert ("column genes.symbol: database has no such column, app expects VARCHAR(50) NOT NULL"
            in lines)
    assert ("index genes.ix_genes_symbol: database has INDEX (gene_symbol), app expects "
            "INDEX (symbol)") in lines


def test_several_heads(copy: str, pgdata: Path, tmp_path: Path) -> None:
    project = shutil.copytree(BASE, tmp_path / "app", ignore=shutil.ignore_patterns("__pycache__"))
    (project / "versions" / "d4_branch.py").write_text(
        '"""a second head"""\n\nrevision = "d4_branch"\ndown_revision = "b2_objects"\n'
        "branch_labels = None\ndepends_on = None\n\n\ndef upgrade():\n    pass\n\n\n"
        "def downgrade():\n    pass\n"
    )
    result = run_cli(["validate"], _env(pgdata, copy, tmp_path, project), cwd=tmp_path)
    assert result.code == 1
    assert ("revision alembic_version: database has c3_gene_location, app expects one head, but "
            "the project has 2 (c3_gene_location, d4_branch): merge them") in _lines(result.out)


def test_json_output_has_stable_keys(copy: str, server: EmbeddedServer, pgdata: Path,
                                     project_dir: Path) -> None:
    _sql(server, copy, "DROP INDEX ix_genes_symbol; CREATE VIEW public.stale AS SELECT 1 AS one")
    env = _env(pgdata, copy, project_dir, JSON="1")  # what `make db-validate-schema JSON=1` sets
    result = run_cli(["validate"], env, cwd=project_dir)
    assert result.code == 1
    report = json.loads(result.out)  # nothing but the JSON on stdout
    assert set(report) == {"ok", "database", "revision", "differences", "counts", "registry",
                           "notes"}
    assert report["ok"] is False
    assert report["database"] == copy
    assert report["revision"] == {"status": "in sync", "database": [HEAD], "heads": [HEAD],
                                  "behind": 0}
    assert report["differences"] == [
        {"kind": "index", "object": "genes.ix_genes_symbol", "problem": "missing",
         "database": None, "app": "INDEX (symbol)"},
        {"kind": "view", "object": "public.stale", "problem": "extra",
         "database": "SELECT 1 AS one;", "app": None},
    ]
    assert report["counts"] == {"total": 2, "by_kind": {"index": 1, "view": 1},
                                "by_problem": {"extra": 1, "missing": 1}}


def test_json_in_sync(copy: str, pgdata: Path, project_dir: Path) -> None:
    result = run_cli(["validate", "--json"], _env(pgdata, copy, project_dir), cwd=project_dir)
    assert result.code == 0
    report = json.loads(result.out)
    assert report["ok"] is True and report["differences"] == []
    assert report["counts"]["total"] == 0


def test_app_that_does_not_import_exits_2_in_one_line(copy: str, pgdata: Path,
                                                       tmp_path: Path) -> None:
    project = shutil.copytree(BASE, tmp_path / "app", ignore=shutil.ignore_patterns("__pycache__"))
    with (project / "app" / "models.py").open("a") as f:
        f.write("\nraise RuntimeError('models are broken')\n")
    env = _env(pgdata, copy, tmp_path, project)
    result = run_cli(["validate"], env, cwd=tmp_path)
    assert result.code == 2
    assert result.err.count("\n") == 1, result.err
    assert "RuntimeError: models are broken (app/models.py, line " in result.err
    assert "Traceback" not in result.err + result.out

    debug = run_dbkit(["--debug", "validate"], env, cwd=tmp_path)
    assert debug.returncode != 0
    assert "Traceback (most recent call last)" in debug.stderr
    assert 'app/models.py", line' in debug.stderr  # the child's own traceback, not just ours


def test_malformed_registry_exits_2(copy: str, pgdata: Path, tmp_path: Path) -> None:
    project = shutil.copytree(BASE, tmp_path / "app", ignore=shutil.ignore_patterns("__pycache__"))
    with (project / "app" / "db" / "objects.py").open("a") as f:
        f.write("\nTRIGGERS = {'genes.trg': 'CREATE TRIGGER ...'}\n")
    result = run_cli(["validate"], _env(pgdata, copy, tmp_path, project), cwd=tmp_path)
    assert result.code == 2
    assert ("the objects registry app.db.objects does not load: RegistryError: "
            "app.db.objects.TRIGGERS: 'genes.trg' is not schema.table.trigger") in result.err


def test_project_without_registry_says_so_and_checks_models(
    copy: str, server: EmbeddedServer, pgdata: Path, project_dir: Path
) -> None:
    _sql(server, copy, "ALTER TABLE sources ADD COLUMN legacy int")
    env = _env(pgdata, copy, project_dir, APP_OBJECTS="app.no_registry_here")
    result = run_cli(["validate"], env, cwd=project_dir)
    assert result.code == 1
    lines = _lines(result.out)
    assert ("Not checked: views, functions and triggers (no objects registry "
            "app.no_registry_here in the app; APP_OBJECTS names it)") in lines
    assert "column sources.legacy: database has INTEGER, app declares no such column" in lines


def test_server_down_exits_2(pgdata: Path, project_dir: Path) -> None:
    env = _env(pgdata, "x", project_dir, DB_MODE="url",
               DATABASE_URL="postgresql://nobody@127.0.0.1:9/kidney")
    result = run_cli(["validate"], env, cwd=project_dir)
    assert result.code == 2
    assert result.err.startswith("dbkit validate: error: cannot connect to")
    assert result.err.count("\n") == 1


def test_missing_database_exits_2(server: EmbeddedServer, pgdata: Path,
                                  project_dir: Path) -> None:
    result = run_cli(["validate"], _env(pgdata, "no_such_db", project_dir), cwd=project_dir)
    assert result.code == 2
    assert "'no_such_db'" in result.err and "does not exist" in result.err


def test_validate_never_writes(copy: str, server: EmbeddedServer, pgdata: Path,
                               project_dir: Path) -> None:
    _sql(server, copy, "CREATE OR REPLACE VIEW top_genes AS SELECT gene_id, symbol "
                       "FROM gene_evidence_counts WHERE evidence_count > 1")
    snapshot = (
        "SELECT string_agg(x, ',' ORDER BY x) FROM ("
        " SELECT relnamespace::regnamespace || '.' || relname || relkind::text AS x FROM pg_class"
        " UNION ALL SELECT pronamespace::regnamespace || '.' || proname FROM pg_proc"
        " UNION ALL SELECT tgname FROM pg_trigger"
        " UNION ALL SELECT pg_get_viewdef(oid) FROM pg_class WHERE relkind IN ('v', 'm')"
        " UNION ALL SELECT version_num FROM alembic_version) s"
    )

    def state() -> str:
        conn = server.connect(copy)
        try:
            with conn.cursor() as cur:
                cur.execute(snapshot)
                return str(cur.fetchone()[0])
        finally:
            conn.close()

    before = state()
    assert run_cli(["validate"], _env(pgdata, copy, project_dir), cwd=project_dir).code == 1
    assert state() == before


def test_colour_on_a_terminal_only(copy: str, server: EmbeddedServer, pgdata: Path,
                                   project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _sql(server, copy, "DROP INDEX ix_genes_symbol")
    env = _env(pgdata, copy, project_dir)
    env.pop("NO_COLOR")
    monkeypatch.delenv("NO_COLOR", raising=False)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    monkeypatch.chdir(project_dir)
    assert cli.run(["validate"], out, io.StringIO(), environ=env) == 1
    assert "\x1b[31m  index genes.ix_genes_symbol" in out.getvalue()
    piped = run_dbkit(["validate"], env, cwd=project_dir)  # a pipe, no NO_COLOR
    assert piped.returncode == 1 and "\x1b[" not in piped.stdout
    monkeypatch.setenv("NO_COLOR", "1")
    out = Terminal()
    assert cli.run(["validate"], out, io.StringIO(), environ=env) == 1
    assert "\x1b[" not in out.getvalue()


def test_url_mode_gives_the_same_answer(copy: str, server: EmbeddedServer, pgdata: Path,
                                        project_dir: Path) -> None:
    _sql(server, copy, "ALTER TABLE sources ADD COLUMN legacy int")
    url = f"postgresql://postgres@/{copy}?host={server.socket_dir}"
    env = _env(pgdata, copy, project_dir, DB_MODE="url", DATABASE_URL=url)
    result = run_cli(["validate"], env, cwd=project_dir)
    assert result.code == 1
    assert "(url)" in result.out
    assert "column sources.legacy: database has INTEGER, app declares no such column" in \
        _lines(result.out)


def test_sample_backend_at_head_is_in_sync(fresh_db: str, server: EmbeddedServer,
                                           pgdata: Path, project_dir: Path) -> None:
    env = _env(pgdata, fresh_db, project_dir, BACKEND)
    AlembicProject(load_settings(project_dir, env), server).upgrade(fresh_db, "head")
    result = run_cli(["validate"], env, cwd=project_dir)
    assert result.code == 0, result.out + result.err
    assert _lines(result.out)[-1].startswith(f"In sync: {fresh_db} matches the app at ")
