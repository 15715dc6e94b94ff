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
from dbkit import cli
from dbkit.pg import scratch
from dbkit.pg.embedded import EmbeddedServer
from dbkit.project.chain import AlembicProject
from dbkit.settings import load_settings
from dbkit.validate.drift import KINDS

BASE = FIXTURES / "validate_base"
HEAD = "c3_gene_location"
# The JSON report's keys, whatever the outcome (in sync, drift, could not check).
REPORT_KEYS = {"ok", "error", "database", "revision", "differences", "counts", "registry", "notes",
               "checks", "migrations"}

# (case, SQL that makes the drift, the line validate must print)
DRIFTS = [
    ("missing table", "DROP TABLE sources",
     "table public.sources: database has no such table, app expects a table of 4 columns"),
    ("extra table", "CREATE TABLE gene_notes (id int)",
     "table public.gene_notes: database has a table of 1 column, app declares no such table"),
    ("missing column", "ALTER TABLE sources DROP COLUMN url",
     "column public.sources.url: database has no such column, app expects VARCHAR(200)"),
    ("extra column", "ALTER TABLE sources ADD COLUMN legacy int",
     "column public.sources.legacy: database has INTEGER, app declares no such column"),
    ("column type", "ALTER TABLE sources ALTER COLUMN name TYPE varchar(100)",
     "column public.sources.name: database has VARCHAR(100), app expects VARCHAR(50)"),
    ("nullability", "ALTER TABLE sources ALTER COLUMN url SET NOT NULL",
     "column public.sources.url: database has NOT NULL, app expects NULL"),
    ("default", "ALTER TABLE genes ALTER COLUMN status SET DEFAULT 'retired'",
     "column public.genes.status: database has DEFAULT 'retired'::character varying, "
     "app expects DEFAULT 'active'"),
    ("enum labels", "ALTER TYPE source_kind ADD VALUE 'curated'",
     "type public.source_kind: database has ENUM ('panel', 'literature', 'curated'), "
     "app expects ENUM ('panel', 'literature')"),
    ("table comment", "COMMENT ON TABLE sources IS 'where from'",
     "table public.sources: database has a comment, app expects no comment"),
    ("column comment", "COMMENT ON COLUMN sources.url IS 'where'",
     "column public.sources.url: database has comment 'where', app expects no comment"),
    ("missing index", "DROP INDEX ix_genes_symbol",
     "index public.genes.ix_genes_symbol: database has no such index, app expects INDEX (symbol)"),
    ("missing unique constraint", "ALTER TABLE genes DROP CONSTRAINT uq_genes_hgnc_id",
     "unique constraint public.genes.uq_genes_hgnc_id: database has no such unique constraint, "
     "app expects UNIQUE (hgnc_id)"),
    ("missing foreign key", "ALTER TABLE evidence DROP CONSTRAINT fk_evidence_gene_id_genes",
     "foreign key public.evidence.fk_evidence_gene_id_genes: database has no such foreign key, "
     "app expects FOREIGN KEY (gene_id) REFERENCES genes (id) ON DELETE CASCADE"),
    ("changed foreign key action",
     "ALTER TABLE evidence DROP CONSTRAINT fk_evidence_gene_id_genes; "
     "ALTER TABLE evidence ADD CONSTRAINT fk_evidence_gene_id_genes FOREIGN KEY (gene_id) "
     "REFERENCES genes (id) ON DELETE SET NULL",
     "foreign key public.evidence.fk_evidence_gene_id_genes: database has FOREIGN KEY (gene_id) "
     "REFERENCES genes (id) ON DELETE SET NULL, app expects FOREIGN KEY (gene_id) "
     "REFERENCES genes (id) ON DELETE CASCADE"),
    ("missing view", "DROP VIEW audit.recent_changes",
     "view audit.recent_changes: database has no such view, app expects it"),
    # pg_get_viewdef qualifies columns with their table up to PostgreSQL 15
    # (gene_evidence_counts.evidence_count) and not from 16 on: the same view, so either line
    # is right (the longer one is shortened to the part that differs).
    ("changed view definition",
     "CREATE OR REPLACE VIEW top_genes AS "
     "SELECT gene_id, symbol FROM gene_evidence_counts WHERE evidence_count > 1",
     ("view public.top_genes: database has SELECT gene_id, symbol FROM gene_evidence_counts "
      "WHERE (evidence_count > 1);, app expects SELECT gene_id, symbol FROM "
      "gene_evidence_counts WHERE (evidence_count > 0);",
      "view public.top_genes: database has …(gene_evidence_counts.evidence_count > 1);, "
      "app expects …(gene_evidence_counts.evidence_count > 0);")),
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
    ("table in another schema", "CREATE SCHEMA other; CREATE TABLE other.t (id int)",
     "table other.t: database has a table of 1 column, app declares no such table"),
    ("view in another schema", "CREATE SCHEMA other; CREATE VIEW other.v AS SELECT 1 AS one",
     "view other.v: database has SELECT 1 AS one;, app declares no such view"),
    ("unknown revision", "UPDATE alembic_version SET version_num = 'ffffffffffff'",
     "revision public.alembic_version: database has ffffffffffff (not in this chain: newer, "
     "deleted or squashed), app expects c3_gene_location (head)"),
    ("no alembic_version", "DROP TABLE alembic_version",
     "revision public.alembic_version: database has no public.alembic_version table, "
     "app expects c3_gene_location (head)"),
]


@pytest.fixture(scope="module")
def at_head(server: EmbeddedServer, pgdata: Path, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[str]:
    """The fixture project built once to head: the template every case copies."""
    name = scratch.scratch_name("validatehead")
    server.create_database(name)
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
    server.create_database(name, template=at_head)
    try:
        yield name
    finally:
        scratch.drop_database(server, name)


@pytest.fixture
def reader(server: EmbeddedServer, copy: str) -> Iterator[str]:
    """A login role of this test's own, with no privileges but PUBLIC's."""
    role = f"dbkit_reader_{copy.rsplit('_', 1)[-1]}"
    _sql(server, copy, f"CREATE ROLE {role} LOGIN")
    try:
        yield role
    finally:
        _sql(server, copy, f"DROP OWNED BY {role}; DROP ROLE {role}")


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


def _project(tmp_path: Path, base: Path = BASE) -> Path:
    """A private copy of a fixture project, to break."""
    return shutil.copytree(base, tmp_path / "app", ignore=shutil.ignore_patterns("__pycache__"))


def _lines(out: str) -> list[str]:
    return [line.strip() for line in out.splitlines()]


def test_in_sync_at_head_exits_0(copy: str, pgdata: Path, project_dir: Path) -> None:
    # The registry's texts are formatted unlike the migrations': formatting must not count.
    result = run_cli(["validate"], _env(pgdata, copy, project_dir), cwd=project_dir)
    assert result.code == 0, result.out + result.err
    assert _lines(result.out)[-1] == (
        f"In sync: {copy} matches the app at {HEAD} (4 model tables, 8 declared objects, "
        "its migrations checked)"
    )


@pytest.mark.parametrize(("case", "statements", "line"), DRIFTS, ids=[d[0] for d in DRIFTS])
def test_each_drift_is_one_line_and_exit_1(
    case: str, statements: str, line: str | tuple[str, ...], copy: str, server: EmbeddedServer,
    pgdata: Path, project_dir: Path,
) -> None:
    _sql(server, copy, statements)
    # All checks run: what the chain check also sees is said once. A schema made by hand is
    # one more object only the chain check reports (tested in test_validate_chain.py).
    extra = {"CHECKS": "models,registry"} if "another schema" in case else {}
    result = run_cli(["validate"], _env(pgdata, copy, project_dir, **extra), cwd=project_dir)
    assert result.code == 1, result.out + result.err
    lines = _lines(result.out)
    accepted = line if isinstance(line, tuple) else (line,)  # a tuple: one line per rendering
    assert any(one in lines for one in accepted), result.out
    line = accepted[0]
    kind = next(k for k in reversed(KINDS) if line.startswith(k + " "))
    assert lines[-1] == f"Drift in {copy}: 1 difference ({kind}: 1)", result.out  # nothing else
    assert result.err == ""


def test_database_behind_head(copy: str, server: EmbeddedServer, pgdata: Path,
                              project_dir: Path) -> None:
    env = _env(pgdata, copy, project_dir)
    AlembicProject(load_settings(project_dir, env), server).downgrade(copy, "b2_objects")
    result = run_cli(["validate"], env, cwd=project_dir)
    assert result.code == 1
    lines = _lines(result.out)
    assert ("revision public.alembic_version: database has b2_objects, 1 revision behind, "
            f"app expects {HEAD} (head)") in lines
    # What the missing revision would have added is reported too.
    assert ("column public.genes.location: database has no such column, app expects "
            "VARCHAR(100)") in lines
    assert lines[-1] == f"Drift in {copy}: 2 differences (revision: 1, column: 1)"
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
    assert ("column public.genes.symbol: database has no such column, app expects VARCHAR(50) "
            "NOT NULL") in lines
    assert ("index public.genes.ix_genes_symbol: database has INDEX (gene_symbol), app expects "
            "INDEX (symbol)") in lines


def test_several_heads(copy: str, pgdata: Path, tmp_path: Path) -> None:
    project = _project(tmp_path)
    (project / "versions" / "d4_branch.py").write_text(
        '"""a second head"""\n\nrevision = "d4_branch"\ndown_revision = "b2_objects"\n'
        "branch_labels = None\ndepends_on = None\n\n\ndef upgrade():\n    pass\n\n\n"
        "def downgrade():\n    pass\n"
    )
    result = run_cli(["validate"], _env(pgdata, copy, tmp_path, project), cwd=tmp_path)
    assert result.code == 1
    assert ("revision public.alembic_version: database has c3_gene_location, app expects one "
            "head, but the project has 2 (c3_gene_location, d4_branch): merge them"
            ) in _lines(result.out)


def test_json_output_has_stable_keys(copy: str, server: EmbeddedServer, pgdata: Path,
                                     project_dir: Path) -> None:
    _sql(server, copy, "DROP INDEX ix_genes_symbol; CREATE VIEW public.stale AS SELECT 1 AS one")
    env = _env(pgdata, copy, project_dir, JSON="1")  # what `make db-validate-schema JSON=1` sets
    result = run_cli(["validate"], env, cwd=project_dir)
    assert result.code == 1
    report = json.loads(result.out)  # nothing but the JSON on stdout
    assert set(report) == REPORT_KEYS
    assert report["ok"] is False and report["error"] is None
    assert report["database"] == copy
    assert report["revision"] == {"status": "in sync", "database": [HEAD], "heads": [HEAD],
                                  "behind": 0}
    assert report["differences"] == [
        {"kind": "index", "object": "public.genes.ix_genes_symbol", "problem": "missing",
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


@pytest.mark.parametrize("case", ["registry typo", "no such database"])
def test_json_when_it_cannot_check(case: str, copy: str, pgdata: Path,
                                   project_dir: Path) -> None:
    # CI parses stdout: it gets the report's keys and the error, not an empty stream.
    db, extra = (copy, {"APP_OBJECTS": "app.db.nothing"}) if case == "registry typo" else (
        "no_such_db", {})
    result = run_cli(["validate", "--json"], _env(pgdata, db, project_dir, **extra),
                     cwd=project_dir)
    assert result.code == 2
    report = json.loads(result.out)
    assert set(report) == REPORT_KEYS
    assert report["ok"] is False and report["differences"] == [] and report["database"] == db
    assert result.err.splitlines()[-1] == f"dbkit validate: error: {report['error']}"
    assert ("no such module" if case == "registry typo" else "does not exist") in report["error"]


def test_squash_and_validate_see_the_same_model_drift(
    copy: str, server: EmbeddedServer, pgdata: Path, project_dir: Path
) -> None:
    # The squash checks the models with AlembicProject.model_diff; validate must agree with
    # it, enum labels included.
    _sql(server, copy, "ALTER TYPE source_kind ADD VALUE 'curated'; DROP INDEX ix_genes_symbol")
    env = _env(pgdata, copy, project_dir, JSON="1")
    squash_sees = AlembicProject(load_settings(project_dir, env), server).model_diff(copy)
    report = json.loads(run_cli(["validate"], env, cwd=project_dir).out)
    assert squash_sees is not None
    assert (sorted(r["object"] for r in squash_sees)
            == sorted(d["object"] for d in report["differences"])
            == ["public.genes.ix_genes_symbol", "public.source_kind"])


def test_extension_objects_and_empty_schemas_are_not_drift(
    copy: str, server: EmbeddedServer, pgdata: Path, project_dir: Path
) -> None:
    # An extension brings views of its own; a schema with nothing in it holds no drift.
    # (For the models and the registry: against its migrations, all three are hand-made.)
    _sql(server, copy, "CREATE SCHEMA ext; CREATE EXTENSION pg_buffercache SCHEMA ext; "
                       "CREATE SCHEMA spare")
    result = run_cli(["validate"], _env(pgdata, copy, project_dir, CHECKS="models,registry"),
                     cwd=project_dir)
    assert result.code == 0, result.out


def test_app_that_does_not_import_exits_2_in_one_line(copy: str, pgdata: Path,
                                                       tmp_path: Path) -> None:
    project = _project(tmp_path)
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


@pytest.mark.parametrize("path", ["env.py", "app/models.py"])
def test_syntax_error_is_placed_in_the_app_file(path: str, copy: str, pgdata: Path,
                                                 tmp_path: Path) -> None:
    project = _project(tmp_path)
    text = (project / path).read_text().rstrip("\n") + "\n\ndef broken(:\n"
    (project / path).write_text(text)
    result = run_cli(["validate"], _env(pgdata, copy, tmp_path, project), cwd=tmp_path)
    assert result.code == 2
    head = (f"dbkit validate: error: the app in {project} does not load (env.py or its models): "
            "SyntaxError: ")
    assert result.err.startswith(head), result.err
    # Not "<frozen importlib._bootstrap>": the file and line the developer has to fix.
    assert result.err.endswith(
        f" ({path}, line {text.count(chr(10))}); --debug shows the traceback\n"), result.err
    assert "<" not in result.err


def test_a_refusal_of_the_database_is_not_a_broken_app(
    copy: str, reader: str, server: EmbeddedServer, pgdata: Path, project_dir: Path
) -> None:
    # This role may not read alembic_version: env.py and the models are fine.
    url = f"postgresql://{reader}@/{copy}?host={server.socket_dir}"
    env = _env(pgdata, copy, project_dir, DB_MODE="url", DATABASE_URL=url)
    result = run_cli(["validate"], env, cwd=project_dir)
    assert result.code == 2
    assert result.err == (f"dbkit validate: error: cannot read the database {copy}: "
                          "InsufficientPrivilege: permission denied for table alembic_version\n")


def test_role_without_temporary_objects_is_one_plain_line(
    copy: str, reader: str, server: EmbeddedServer, pgdata: Path, project_dir: Path
) -> None:
    _sql(server, copy, f"GRANT SELECT ON alembic_version TO {reader}; "
                       f"GRANT USAGE ON SCHEMA audit TO {reader}; "
                       f"REVOKE TEMPORARY ON DATABASE {copy} FROM PUBLIC")
    url = f"postgresql://{reader}@/{copy}?host={server.socket_dir}"
    env = _env(pgdata, copy, project_dir, DB_MODE="url", DATABASE_URL=url)
    result = run_cli(["validate"], env, cwd=project_dir)
    assert result.code == 2
    assert result.err == (
        f"dbkit validate: error: could not compare definitions in {copy}: this role cannot "
        f'create temporary objects (permission denied to create temporary tables in database '
        f'"{copy}")\n')


def test_malformed_registry_exits_2(copy: str, pgdata: Path, tmp_path: Path) -> None:
    project = _project(tmp_path)
    with (project / "app" / "db" / "objects.py").open("a") as f:
        f.write("\nTRIGGERS = {'genes.trg': 'CREATE TRIGGER ...'}\n")
    result = run_cli(["validate"], _env(pgdata, copy, tmp_path, project), cwd=tmp_path)
    assert result.code == 2
    assert result.err == (
        "dbkit validate: error: the objects registry app.db.objects is not usable: "
        "app.db.objects.TRIGGERS: 'genes.trg' is not schema.table.trigger\n")


def test_project_without_the_default_registry_says_so_and_checks_models(
    copy: str, server: EmbeddedServer, pgdata: Path, tmp_path: Path
) -> None:
    project = _project(tmp_path)
    # The app keeps its Alembic hooks, but under another name than the default registry's.
    (project / "app" / "db" / "objects.py").rename(project / "app" / "db" / "hooks.py")
    env_py = project / "env.py"
    env_py.write_text(env_py.read_text().replace("app.db.objects", "app.db.hooks"))
    _sql(server, copy, "ALTER TABLE sources ADD COLUMN legacy int")
    result = run_cli(["validate"], _env(pgdata, copy, tmp_path, project), cwd=tmp_path)
    assert result.code == 1, result.err
    lines = _lines(result.out)
    assert ("Not checked: views, functions and triggers (no objects registry "
            "app.db.objects in the app; APP_OBJECTS names it)") in lines
    assert "column public.sources.legacy: database has INTEGER, app declares no such column" \
        in lines


@pytest.mark.parametrize(("value", "line"), [
    ("app.db.nothing", "APP_OBJECTS=app.db.nothing: no such module in the app in {project} "
                       "(leave APP_OBJECTS empty to skip the registry checks)"),
    ("os", "the objects registry os is not usable: os defines none of SCHEMAS, VIEWS, "
           "MATERIALIZED_VIEWS, FUNCTIONS, TRIGGERS, MIGRATION_ONLY_TABLES: is APP_OBJECTS the "
           "app's objects registry?"),
], ids=["no such module", "not a registry"])
def test_app_objects_that_names_no_registry_exits_2(
    value: str, line: str, copy: str, pgdata: Path, project_dir: Path
) -> None:
    # A typo must not quietly switch half of the checks off.
    env = _env(pgdata, copy, project_dir, APP_OBJECTS=value)
    result = run_cli(["validate"], env, cwd=project_dir)
    assert result.code == 2, result.out
    assert result.err == f"dbkit validate: error: {line.format(project=BASE)}\n"


def test_empty_app_objects_turns_the_registry_checks_off(
    copy: str, server: EmbeddedServer, pgdata: Path, project_dir: Path
) -> None:
    # Only the registry and the chain check see a view; the chain check is left out here.
    _sql(server, copy, "CREATE VIEW public.stale AS SELECT 1 AS one")
    env = _env(pgdata, copy, project_dir, APP_OBJECTS="", CHECKS="models,registry")
    result = run_cli(["validate"], env, cwd=project_dir)
    assert result.code == 0, result.out + result.err
    assert _lines(result.out)[-3:] == [
        "Not checked: views, functions and triggers (APP_OBJECTS is empty: the registry checks "
        "are off)",
        "Not checked: database vs its migrations (CHECKS leaves it out)",
        f"In sync: {copy} matches the app at {HEAD} (4 model tables checked)",
    ]


def test_project_with_nothing_to_compare_exits_2(copy: str, pgdata: Path,
                                                project_dir: Path) -> None:
    # No target_metadata and no registry: "in sync" would mean only "the revision matches"
    # (with the chain check left out: with it, see test_validate_chain.py).
    env = _env(pgdata, copy, project_dir, FIXTURES / "validate_bare", CHECKS="models,registry")
    result = run_cli(["validate"], env, cwd=project_dir)
    assert result.code == 2, result.out
    assert result.err == (
        "dbkit validate: error: nothing to validate against: the project's env.py sets no "
        "target_metadata and the app has no objects registry (APP_OBJECTS); only the revision "
        "could be checked\n")


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
    assert "\x1b[31m  index public.genes.ix_genes_symbol" in out.getvalue()
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
    assert "column public.sources.legacy: database has INTEGER, app declares no such column" in \
        _lines(result.out)


def test_sample_backend_at_head_is_in_sync(fresh_db: str, server: EmbeddedServer,
                                           pgdata: Path, project_dir: Path) -> None:
    env = _env(pgdata, fresh_db, project_dir, BACKEND)
    AlembicProject(load_settings(project_dir, env), server).upgrade(fresh_db, "head")
    result = run_cli(["validate"], env, cwd=project_dir)
    assert result.code == 0, result.out + result.err
    assert _lines(result.out)[-1].startswith(f"In sync: {fresh_db} matches the app at ")
