"""Registry of the database objects the app relies on that are not ORM models.

Autogenerate only sees tables, columns, indexes and constraints. Everything
below is created by hand-written migrations and would silently disappear from
a schema rebuilt from the models alone, so it is listed here, exactly as it
exists at the head of the migration chain.

Rules for this module:

* plain data and stdlib only: tools import it by path without the app;
* dicts are in dependency order (an entry only uses entries before it), so
  creating them in iteration order works;
* definitions describe the *head* state, which is not always the text of the
  migration that created the object. For example ``genes.symbol`` was renamed
  to ``approved_symbol`` after ``evidence_source_counts`` was created;
  PostgreSQL rewrote the view, the old migration text still says ``g.symbol``.
"""

from __future__ import annotations

from typing import Any

SCHEMAS: tuple[str, ...] = ("public", "audit")

VIEWS: dict[str, str] = {
    "public.static_evidence_counts": """
SELECT scg.gene_id,
       p.name AS source_name,
       count(DISTINCT scp.id) AS panel_count,
       max(scp.imported_at) AS last_imported_at
FROM static_content_genes scg
JOIN static_content_panels scp ON scp.id = scg.panel_id
JOIN static_content_providers p ON p.id = scp.provider_id
WHERE scg.gene_id IS NOT NULL AND p.is_active
GROUP BY scg.gene_id, p.name
""",
    "public.static_panel_summary": """
SELECT p.id AS provider_id,
       p.name AS provider_name,
       p.source_type,
       count(DISTINCT scp.id) AS panel_count,
       count(scg.id) AS gene_rows,
       count(scg.id) FILTER (WHERE scg.gene_id IS NULL) AS unmatched_rows
FROM static_content_providers p
LEFT JOIN static_content_panels scp ON scp.provider_id = p.id
LEFT JOIN static_content_genes scg ON scg.panel_id = scp.id
GROUP BY p.id, p.name, p.source_type
""",
    "public.unmatched_static_genes": """
SELECT scg.id AS static_gene_id,
       scg.symbol_raw,
       p.name AS provider_name,
       scp.panel_name,
       scg.created_at
FROM static_content_genes scg
JOIN static_content_panels scp ON scp.id = scg.panel_id
JOIN static_content_providers p ON p.id = scp.provider_id
WHERE scg.gene_id IS NULL
""",
    # Output column is still called "symbol": only the source column was
    # renamed (f1a7c3e9b5d2), the view was never recreated.
    "public.evidence_source_counts": """
SELECT ge.gene_id,
       g.approved_symbol AS symbol,
       ge.source_name,
       count(*) AS evidence_rows,
       sum(CASE
               WHEN jsonb_typeof(ge.evidence_data -> 'panels') = 'array'
               THEN jsonb_array_length(ge.evidence_data -> 'panels')
               ELSE 1
           END) AS source_count
FROM gene_evidence ge
JOIN genes g ON g.id = ge.gene_id
GROUP BY ge.gene_id, g.approved_symbol, ge.source_name
UNION ALL
SELECT sec.gene_id,
       g.approved_symbol AS symbol,
       sec.source_name,
       sec.panel_count AS evidence_rows,
       sec.panel_count AS source_count
FROM static_evidence_counts sec
JOIN genes g ON g.id = sec.gene_id
""",
    "public.evidence_count_percentiles": """
SELECT esc.gene_id,
       esc.symbol,
       esc.source_name,
       esc.source_count,
       cume_dist() OVER (
           PARTITION BY esc.source_name ORDER BY esc.source_count
       ) AS percentile_score
FROM evidence_source_counts esc
""",
    "public.evidence_aggregated_scores": """
SELECT ecp.gene_id,
       ecp.symbol,
       count(DISTINCT ecp.source_name) AS source_count,
       sum(ecp.percentile_score) AS raw_score,
       round((sum(ecp.percentile_score)
              / NULLIF((SELECT count(DISTINCT esc.source_name)
                        FROM evidence_source_counts esc), 0)
              * 100)::numeric, 2) AS percentage_score,
       jsonb_object_agg(ecp.source_name,
                        round(ecp.percentile_score::numeric, 3)) AS source_scores
FROM evidence_count_percentiles ecp
GROUP BY ecp.gene_id, ecp.symbol
""",
    "public.gene_scores": """
SELECT g.id AS gene_id,
       g.approved_symbol,
       g.hgnc_id,
       COALESCE(eas.source_count, 0) AS source_count,
       COALESCE(eas.percentage_score, 0) AS percentage_score,
       eas.source_scores,
       tier.tier_name AS evidence_tier,
       gc.updated_at AS curated_at
FROM genes g
LEFT JOIN evidence_aggregated_scores eas ON eas.gene_id = g.id
LEFT JOIN gene_curations gc ON gc.gene_id = g.id
LEFT JOIN LATERAL (
    SELECT et.tier_name
    FROM evidence_tiers et
    WHERE COALESCE(eas.percentage_score, 0) >= et.min_score
    ORDER BY et.min_score DESC
    LIMIT 1
) tier ON true
""",
    "public.gene_evidence_summary": """
SELECT g.id AS gene_id,
       g.approved_symbol AS symbol,
       count(ge.id) AS evidence_count,
       array_agg(DISTINCT ge.source_name ORDER BY ge.source_name)
           FILTER (WHERE ge.source_name IS NOT NULL) AS sources,
       max(ge.evidence_date) AS latest_evidence_date,
       max(ge.updated_at) AS last_updated
FROM genes g
LEFT JOIN gene_evidence ge ON ge.gene_id = g.id
GROUP BY g.id, g.approved_symbol
""",
    # Created as ingestion_run_history on ingestion_runs; both renamed in
    # a4e2c8f6d091.
    "public.pipeline_run_history": """
SELECT r.id,
       r.run_number,
       r.status,
       r.sources,
       r.triggered_by,
       r.started_at,
       r.finished_at,
       r.finished_at - r.started_at AS duration
FROM pipeline_runs r
ORDER BY r.started_at DESC
""",
    "audit.recent_changes": """
SELECT cl.id,
       cl.table_name,
       cl.record_id,
       cl.operation,
       cl.changed_at,
       u.username,
       cl.changed_by AS db_role
FROM audit.change_log cl
LEFT JOIN public.users u ON u.id = cl.user_id
WHERE cl.changed_at > now() - interval '30 days'
""",
}

MATERIALIZED_VIEWS: dict[str, str] = {
    # Has UNIQUE index uq_gene_score_snapshot_gene_id (needed by REFRESH
    # CONCURRENTLY) and ix_gene_score_snapshot_percentage_score.
    "public.gene_score_snapshot": """
SELECT gs.gene_id,
       gs.approved_symbol,
       gs.hgnc_id,
       gs.source_count,
       gs.percentage_score,
       gs.evidence_tier,
       now() AS refreshed_at
FROM gene_scores gs
""",
}

FUNCTIONS: dict[str, str] = {
    "public.set_updated_at": """
CREATE OR REPLACE FUNCTION public.set_updated_at()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$
""",
    "public.touch_gene_curation": """
CREATE OR REPLACE FUNCTION public.touch_gene_curation()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE gene_curations SET updated_at = now() WHERE gene_id = OLD.gene_id;
    ELSE
        UPDATE gene_curations SET updated_at = now() WHERE gene_id = NEW.gene_id;
    END IF;
    RETURN NULL;
END;
$$
""",
    "audit.log_change": """
CREATE OR REPLACE FUNCTION audit.log_change()
RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    acting_user integer := NULLIF(current_setting('app.user_id', true), '')::integer;
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO audit.change_log (table_name, record_id, operation, old_data, user_id)
        VALUES (TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, OLD.id::text, TG_OP,
                to_jsonb(OLD), acting_user);
        RETURN OLD;
    END IF;

    INSERT INTO audit.change_log (table_name, record_id, operation, old_data, new_data, user_id)
    VALUES (TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME,
            NEW.id::text,
            TG_OP,
            CASE WHEN TG_OP = 'UPDATE' THEN to_jsonb(OLD) END,
            to_jsonb(NEW),
            acting_user);
    RETURN NEW;
END;
$$
""",
    "public.refresh_gene_score_snapshot": """
CREATE OR REPLACE FUNCTION public.refresh_gene_score_snapshot()
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    REFRESH MATERIALIZED VIEW CONCURRENTLY public.gene_score_snapshot;
END;
$$
""",
}

TRIGGERS: dict[str, str] = {
    "public.genes.trg_genes_updated_at": (
        "CREATE TRIGGER trg_genes_updated_at BEFORE UPDATE ON public.genes "
        "FOR EACH ROW EXECUTE FUNCTION set_updated_at()"
    ),
    "public.gene_evidence.trg_gene_evidence_updated_at": (
        "CREATE TRIGGER trg_gene_evidence_updated_at BEFORE UPDATE ON public.gene_evidence "
        "FOR EACH ROW EXECUTE FUNCTION set_updated_at()"
    ),
    "public.gene_curations.trg_gene_curations_updated_at": (
        "CREATE TRIGGER trg_gene_curations_updated_at BEFORE UPDATE ON public.gene_curations "
        "FOR EACH ROW EXECUTE FUNCTION set_updated_at()"
    ),
    "public.data_source_progress.trg_data_source_progress_updated_at": (
        "CREATE TRIGGER trg_data_source_progress_updated_at "
        "BEFORE UPDATE ON public.data_source_progress "
        "FOR EACH ROW EXECUTE FUNCTION set_updated_at()"
    ),
    "public.app_settings.trg_app_settings_updated_at": (
        "CREATE TRIGGER trg_app_settings_updated_at BEFORE UPDATE ON public.app_settings "
        "FOR EACH ROW EXECUTE FUNCTION set_updated_at()"
    ),
    "public.users.trg_users_updated_at": (
        "CREATE TRIGGER trg_users_updated_at BEFORE UPDATE ON public.users "
        "FOR EACH ROW EXECUTE FUNCTION set_updated_at()"
    ),
    "public.gene_evidence.trg_gene_evidence_touch_curation": (
        "CREATE TRIGGER trg_gene_evidence_touch_curation "
        "AFTER INSERT OR DELETE OR UPDATE ON public.gene_evidence "
        "FOR EACH ROW EXECUTE FUNCTION touch_gene_curation()"
    ),
    "public.gene_curations.trg_gene_curations_audit": (
        "CREATE TRIGGER trg_gene_curations_audit "
        "AFTER INSERT OR DELETE OR UPDATE ON public.gene_curations "
        "FOR EACH ROW EXECUTE FUNCTION audit.log_change()"
    ),
}

# Tables created by migrations that deliberately have no ORM model.
MIGRATION_ONLY_TABLES: tuple[str, ...] = ("public.gene_normalization_log",)

_DEFAULT_SCHEMA = "public"

# Relations autogenerate must neither create nor drop.
_HIDDEN_RELATIONS = frozenset(VIEWS) | frozenset(MATERIALIZED_VIEWS) | frozenset(
    MIGRATION_ONLY_TABLES
)


def _qualified(schema: str | None, name: str) -> str:
    return f"{schema or _DEFAULT_SCHEMA}.{name}"


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Alembic ``include_object`` hook: hide views and migration-only tables.

    Columns, indexes and constraints are hidden together with their table.
    """
    if type_ == "table":
        return _qualified(getattr(obj, "schema", None), name or "") not in _HIDDEN_RELATIONS
    table = getattr(obj, "table", None)
    table_name = getattr(table, "name", None)
    if table_name is not None:
        return _qualified(getattr(table, "schema", None), table_name) not in _HIDDEN_RELATIONS
    return True


def include_name(name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
    """Alembic ``include_name`` hook: only reflect the schemas the app owns.

    Alembic reports the default schema as ``None``.
    """
    if type_ == "schema":
        return name is None or name in SCHEMAS
    return True
