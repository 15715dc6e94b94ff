"""The sample kidney-genetics backend: its chain builds, tears down and matches its models.

pytest-alembic's built-in tests (single head, upgrade, model definitions match DDL, up/down
consistency) run here too, against a fresh PostgreSQL database each, never SQLite.
"""

from __future__ import annotations

from dbkit.pg.catalog import object_counts, table_row_counts
from dbkit.pg.embedded import EmbeddedServer
from dbkit.project.chain import AlembicProject
from dbkit.settings import Settings


def _counts(server: EmbeddedServer, db: str) -> dict[str, int]:
    conn = server.connect(db)
    try:
        return object_counts(conn)
    finally:
        conn.close()


def test_chain_builds_everything_the_issue_asks_for(settings: Settings,
                                                    server: EmbeddedServer) -> None:
    project = AlembicProject(settings, server)
    revisions = project.revisions()
    assert len(revisions) >= 16
    assert any(r.is_merge for r in revisions)
    project.upgrade(settings.postgres_db, "head")
    counts = _counts(server, settings.postgres_db)
    assert counts["views"] >= 8
    assert counts["materialized views"] >= 1
    assert counts["functions"] >= 2
    assert counts["triggers"] >= 1
    assert counts["schemas"] >= 1  # audit
    conn = server.connect(settings.postgres_db)
    try:
        rows = table_row_counts(conn)
    finally:
        conn.close()
    seeded = {t: n for t, n in rows.items() if n and t != "public.alembic_version"}
    assert seeded, "the chain seeds rows (providers, tiers, settings)"


def test_downgrade_to_base_leaves_only_alembic_version(settings: Settings,
                                                        server: EmbeddedServer) -> None:
    project = AlembicProject(settings, server)
    db = settings.postgres_db
    project.upgrade(db, "head")
    project.downgrade(db, "base")
    counts = _counts(server, db)
    assert counts["tables"] == 1  # alembic_version
    for kind in ("views", "materialized views", "functions", "triggers", "types", "sequences",
                 "schemas"):
        assert counts[kind] == 0, kind
    project.upgrade(db, "head")
    assert project.current(db) == project.heads()
