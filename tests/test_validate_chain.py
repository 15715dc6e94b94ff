"""``dbkit validate``'s third check: the database against a fresh build of its own migrations.

The sample backend (24 revisions) is built once to head; each case copies it (CREATE DATABASE
... TEMPLATE), makes one change by hand, and validates with no registry (``APP_OBJECTS=``):
the change must be named in the text and in the JSON. The chain check's own build is cached
as a template database on this (embedded) server after the first run.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import BACKEND, FIXTURES, base_env, run_cli
from dbkit.pg import scratch, tools
from dbkit.pg.embedded import EmbeddedServer
from dbkit.project.chain import AlembicProject
from dbkit.settings import load_settings
from dbkit.validate import seed_check

_VIEW_EDIT = (
    "DO $$ BEGIN EXECUTE 'CREATE OR REPLACE VIEW public.unmatched_static_genes AS ' || "
    "rtrim(pg_get_viewdef('public.unmatched_static_genes'::regclass), ';') || ' LIMIT 1000'; "
    "END $$"
)
# (case, SQL run by hand, the line validate prints, where the JSON has it)
HAND_CHANGES = [
    ("index dropped", "DROP INDEX ix_static_content_genes_unmatched",
     "index public.static_content_genes.ix_static_content_genes_unmatched: database has no "
     "such index, migrations build CREATE INDEX ix_static_content_genes_unmatched ON "
     "public.static_content_genes USING btree"),
    ("index added", "CREATE INDEX ix_by_hand ON genes (created_at)",
     "index public.genes.ix_by_hand: database has CREATE INDEX ix_by_hand ON public.genes "
     "USING btree (created_at), migrations build no such index"),
    ("view body edited", _VIEW_EDIT, "view public.unmatched_static_genes: database has "),
    ("function body edited",
     "CREATE OR REPLACE FUNCTION public.set_updated_at() RETURNS trigger LANGUAGE plpgsql "
     "AS $$ BEGIN NEW.updated_at := clock_timestamp(); RETURN NEW; END $$",
     "function public.set_updated_at(): database has "),
    ("trigger disabled", "ALTER TABLE genes DISABLE TRIGGER trg_genes_updated_at",
     "trigger public.genes.trg_genes_updated_at: database has disabled, migrations build "
     "enabled"),
    ("column default changed",
     "ALTER TABLE gene_evidence ALTER COLUMN source_detail SET DEFAULT 'n/a'",
     "column public.gene_evidence.source_detail: database has character varying(255) NOT NULL "
     "DEFAULT 'n/a'::character varying, migrations build character varying(255) NOT NULL "
     "DEFAULT ''::character varying"),
    ("table created by hand", "CREATE TABLE public.notes_by_hand (id int PRIMARY KEY, t text)",
     "table public.notes_by_hand: database has a table of 2 columns, migrations build no such "
     "table"),
    ("grant added", "GRANT SELECT ON evidence_tiers TO PUBLIC",
     "table public.evidence_tiers: database has grants "),
]


@pytest.fixture(scope="module")
def sample_at_head(server: EmbeddedServer, pgdata: Path,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The sample backend built once to head: the database every case copies."""
    name = scratch.scratch_name("chainhead")
    server.create_database(name)
    try:
        where = tmp_path_factory.mktemp("chain")
        settings = load_settings(where, base_env(pgdata, name, where))
        AlembicProject(settings, server).upgrade(name, "head")
        yield name
    finally:
        scratch.drop_database(server, name)


@pytest.fixture
def live(server: EmbeddedServer, sample_at_head: str) -> Iterator[str]:
    with scratch.scratch_database(server, "chainlive", template=sample_at_head) as name:
        yield name


def _env(pgdata: Path, db: str, project_dir: Path, **extra: str) -> dict[str, str]:
    return base_env(pgdata, db, project_dir, APP_OBJECTS="", **extra)


def _sql(server: EmbeddedServer, db: str, statements: str) -> None:
    conn = server.connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute(statements)
    finally:
        conn.close()


def _lines(out: str) -> list[str]:
    return [line.strip() for line in out.splitlines()]


@pytest.mark.parametrize(("case", "statements", "line"), HAND_CHANGES,
                         ids=[c[0] for c in HAND_CHANGES])
def test_each_hand_change_is_named(case: str, statements: str, line: str, live: str,
                                   server: EmbeddedServer, pgdata: Path,
                                   project_dir: Path) -> None:
    _sql(server, live, statements)
    # Text, the chain check alone: its own line under its own heading.
    result = run_cli(["validate"], _env(pgdata, live, project_dir, CHECKS="chain"),
                     cwd=project_dir)
    assert result.code == 1, result.out + result.err
    lines = _lines(result.out)
    assert "Database vs its migrations" in lines, result.out
    assert any(x.startswith(line) for x in lines), result.out
    assert lines[-1].endswith(": 1 difference (" + line.split(" public.")[0] + ": 1)") or \
        case == "grant added", lines[-1]
    # JSON, every check that applies: named once, by the models when they see it too.
    result = run_cli(["validate", "--json"], _env(pgdata, live, project_dir), cwd=project_dir)
    assert result.code == 1, result.out + result.err
    report = json.loads(result.out)
    chain = report["migrations"]
    assert chain["status"] == "compared" and chain["template"] in ("made", "reused")
    kind, name = line.split(": ", 1)[0].rsplit(" ", 1)  # a kind may have two words
    named = [(d["kind"], d["object"]) for d in report["differences"] + chain["differences"]]
    assert named == [(kind, name)], named
    for d in chain["differences"]:
        assert set(d) == {"kind", "object", "problem", "database", "migrations"}
    assert report["counts"]["total"] == 1 and report["ok"] is False


def test_seed_row_changed_is_a_warning(live: str, server: EmbeddedServer, pgdata: Path,
                                       project_dir: Path) -> None:
    _sql(server, live, "UPDATE app_settings SET value = '3' WHERE key = 'scoring.version'; "
                       "DELETE FROM evidence_tiers WHERE id = 1")
    result = run_cli(["validate"], _env(pgdata, live, project_dir), cwd=project_dir)
    assert result.code == 0, result.out + result.err  # a warning, not drift
    lines = _lines(result.out)
    assert "Seed rows changed by hand (warnings, not drift)" in lines
    changed = next(x for x in lines if x.startswith("seed row public.app_settings"))
    assert changed.startswith("seed row public.app_settings (key)=(scoring.version): "
                              "database has (scoring.version,3,"), changed
    assert any(x.startswith("seed row public.evidence_tiers (id)=(1): deleted by hand "
                            "(migrations insert (1,") for x in lines), result.out
    report = json.loads(run_cli(["validate", "--json"], _env(pgdata, live, project_dir),
                                cwd=project_dir).out)
    seeds = {(w["table"], w["key"], w["problem"]) for w in report["migrations"]["seed_rows"]}
    assert seeds == {("public.app_settings", "(key)=(scoring.version)", "changed"),
                     ("public.evidence_tiers", "(id)=(1)", "deleted")}
    assert report["ok"] is True


def test_restored_database_is_in_sync(live: str, server: EmbeddedServer, pgdata: Path,
                                      project_dir: Path, tmp_path: Path) -> None:
    # pg_dump + reload re-renders `varchar IN (...)` checks and `= ANY (ARRAY[...])`: equal
    # expressions in other words are not differences.
    dump = tmp_path / "dump.sql"
    tools.run(server.tool("pg_dump", ["--no-password", "-f", str(dump)], live), what="pg_dump")
    with scratch.scratch_database(server, "chainrestored") as restored:
        tools.run(server.tool("psql", ["-q", "-v", "ON_ERROR_STOP=1", "-f", str(dump)],
                              restored), what="psql")
        conn = server.connect(restored)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                            "WHERE conname = 'ck_static_content_providers_source_type'")
                rendered = cur.fetchone()[0]
        finally:
            conn.close()
        result = run_cli(["validate"], _env(pgdata, restored, project_dir, CHECKS="chain"),
                         cwd=project_dir)
    assert "::text" in rendered  # the restored check is worded differently ...
    assert result.code == 0, result.out + result.err  # ... and is the same check
    assert "Checked: database vs its migrations at " in result.out


def test_project_without_registry_or_models_gets_the_chain_check(
    fresh_db: str, server: EmbeddedServer, pgdata: Path, project_dir: Path
) -> None:
    bare = FIXTURES / "validate_bare"
    env = base_env(pgdata, fresh_db, project_dir, BACKEND_DIR=str(bare))
    AlembicProject(load_settings(project_dir, env), server).upgrade(fresh_db, "head")
    result = run_cli(["validate"], env, cwd=project_dir)
    assert result.code == 0, result.out + result.err
    lines = _lines(result.out)
    assert any(x.startswith("Checked: database vs its migrations at ") for x in lines), lines
    assert "Not checked: models (the project's env.py sets no target_metadata)" in lines
    assert lines[-1].endswith("(its migrations checked)"), lines
    _sql(server, fresh_db, "CREATE INDEX ix_by_hand ON notes (id)")
    result = run_cli(["validate"], env, cwd=project_dir)
    assert result.code == 1, result.out
    assert "Database vs its migrations" in _lines(result.out)


def test_unknown_revision_is_one_line(live: str, server: EmbeddedServer, pgdata: Path,
                                      project_dir: Path) -> None:
    # After a squash the database's revision is gone from the chain: nothing to build.
    _sql(server, live, "UPDATE alembic_version SET version_num = 'ffffffffffff'; "
                       "DROP INDEX ix_static_content_genes_unmatched")
    result = run_cli(["validate"], _env(pgdata, live, project_dir, CHECKS="chain"),
                     cwd=project_dir)
    assert result.code == 1, result.out + result.err
    lines = _lines(result.out)
    assert ("Not checked: database vs its migrations (the database is at ffffffffffff, a "
            "revision this chain does not contain (newer, deleted or squashed): nothing to "
            "build)") in lines
    assert lines[-1].endswith(": 1 difference (revision: 1)"), lines


def test_templates_are_kept_recognisable_and_not_swept(
    live: str, server: EmbeddedServer, pgdata: Path, project_dir: Path
) -> None:
    run_cli(["validate"], _env(pgdata, live, project_dir, CHECKS="chain"), cwd=project_dir)
    kept = scratch.templates(server)
    mine = [json.loads(c) for c in kept.values()
            if json.loads(c).get("config") == str(BACKEND / "alembic.ini")]
    assert len(mine) == 1 and mine[0]["dbkit"] == "validate template", kept
    assert not set(kept) & set(scratch.stale_scratch_databases(server))
    assert all(scratch.is_template(name) for name in kept)
    assert not scratch.is_template(scratch.scratch_name("validatetpl"))


def test_checks_names_what_runs(live: str, pgdata: Path, project_dir: Path) -> None:
    result = run_cli(["validate"], _env(pgdata, live, project_dir, CHECKS="models,typo"),
                     cwd=project_dir)
    assert result.code == 2
    assert "CHECKS='models,typo': typo is not a check (choose from models, chain, registry)" \
        in result.err
    result = run_cli(["validate", "--json"], _env(pgdata, live, project_dir, CHECKS="models"),
                     cwd=project_dir)
    report = json.loads(result.out)
    assert report["checks"] == ["models"] and report["migrations"]["status"] == "not checked"


def test_a_bad_checks_setting_still_gives_json(live: str, pgdata: Path,
                                               project_dir: Path) -> None:
    # CI parses stdout: a setting that stops the run before validate starts must still
    # give the report's keys, with the error line.
    result = run_cli(["validate", "--json"], _env(pgdata, live, project_dir, CHECKS="bogus"),
                     cwd=project_dir)
    assert result.code == 2
    report = json.loads(result.out)
    assert report["ok"] is False
    assert report["error"].startswith("CHECKS='bogus': bogus is not a check")
    assert {"differences", "counts", "migrations", "checks"} <= set(report)


def test_registry_only_without_a_registry_names_checks_not_the_models(
        live: str, pgdata: Path, project_dir: Path) -> None:
    # _env sets APP_OBJECTS= (no registry), as a project without one has.
    result = run_cli(["validate"], _env(pgdata, live, project_dir, CHECKS="registry"),
                     cwd=project_dir)
    assert result.code == 2
    assert "CHECKS=registry leaves the models out" in result.err
    assert "sets no target_metadata" not in result.err


_ODD = "c'ol %(name)s ü"  # a quote, a psycopg2 placeholder and a non-ASCII letter
_ODD_SQL = '"' + _ODD + '"'
_ODD_REVISION = f'''"""odd column names, with seed rows

Revision ID: b2_odd
Revises: a1_notes
"""

from alembic import op

revision = "b2_odd"
down_revision = "a1_notes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""CREATE TABLE keyed (id int PRIMARY KEY, {_ODD_SQL} text)""")
    op.execute("""CREATE TABLE "odd %s table" ({_ODD_SQL} text, "n%" int)""")
    op.execute("""INSERT INTO keyed VALUES (1, 'one %s'), (2, 'two')""")
    op.execute("""INSERT INTO "odd %s table" VALUES ('a %(x)s', 1), ('b', 2)""")


def downgrade() -> None:
    op.execute("""DROP TABLE "odd %s table", keyed""")
'''


def test_seed_rows_of_columns_with_odd_names_are_checked(
    fresh_db: str, server: EmbeddedServer, pgdata: Path, project_dir: Path, tmp_path: Path
) -> None:
    # Names reach the SQL as identifiers: a % in one is not a placeholder of psycopg2's.
    odd = tmp_path / "odd"
    shutil.copytree(FIXTURES / "validate_bare", odd)
    (odd / "versions" / "b2_odd.py").write_text(_ODD_REVISION)
    env = base_env(pgdata, fresh_db, project_dir, BACKEND_DIR=str(odd), CHECKS="chain")
    AlembicProject(load_settings(project_dir, env), server).upgrade(fresh_db, "head")
    result = run_cli(["validate"], env, cwd=project_dir)
    assert result.code == 0, result.out + result.err
    assert "Seed rows changed by hand" not in result.out
    _sql(server, fresh_db, f"UPDATE keyed SET {_ODD_SQL} = 'changed' WHERE id = 2; "
                           f'DELETE FROM "odd %s table" WHERE "n%" = 2')
    result = run_cli(["validate"], env, cwd=project_dir)
    assert result.code == 0, result.out + result.err  # warnings, not drift
    lines = _lines(result.out)
    assert "seed row public.keyed (id)=(2): database has (2,changed), migrations insert " \
        "(2,two)" in lines, result.out
    assert "seed row public.odd %s table (b,2): deleted by hand (migrations insert (b,2))" \
        in lines, result.out


def test_an_internal_error_is_not_drift(fresh_db: str, server: EmbeddedServer, pgdata: Path,
                                        project_dir: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # CI tells 1 (drift) from the rest: a bug of dbkit's must not read as drift.
    env = base_env(pgdata, fresh_db, project_dir, BACKEND_DIR=str(FIXTURES / "validate_bare"),
                   CHECKS="chain")
    AlembicProject(load_settings(project_dir, env), server).upgrade(fresh_db, "head")

    def broken(*args: object, **kwargs: object) -> None:
        raise TypeError("list indices must be integers or slices, not str")

    monkeypatch.setattr(seed_check, "compare", broken)
    for argv in (["validate"], ["validate", "--json"]):
        result = run_cli(argv, env, cwd=project_dir)
        assert result.code == 3, result.out + result.err
        assert result.err.splitlines()[-1] == (
            "dbkit validate: internal error: TypeError: list indices must be integers or "
            "slices, not str (run with --debug for the traceback)"), result.err
        assert "Drift" not in result.out
