-- What dbkit cannot yet reproduce, as (kind, name): a squash refuses clearly instead of
-- losing it. Kinds an extension can own leave its members out (cls, oid: the object).
WITH found (kind, cls, oid, name) AS (
  SELECT 'rule', NULL::regclass, NULL::oid, n.nspname || '.' || c.relname || ': ' || r.rulename
    FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class
    JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE r.rulename <> '_RETURN' AND {user_schema}
  UNION ALL
  SELECT 'extended statistics', NULL, NULL, n.nspname || '.' || s.stxname
    FROM pg_statistic_ext s JOIN pg_namespace n ON n.oid = s.stxnamespace WHERE {user_schema}
  UNION ALL
  SELECT 'foreign table', 'pg_class'::regclass, c.oid, n.nspname || '.' || c.relname
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE {user_schema} AND c.relkind = 'f'
  UNION ALL
  SELECT 'operator', 'pg_operator'::regclass, o.oid, n.nspname || '.' || o.oprname
    FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace WHERE {user_schema}
  UNION ALL
  SELECT 'collation', 'pg_collation'::regclass, co.oid, n.nspname || '.' || co.collname
    FROM pg_collation co JOIN pg_namespace n ON n.oid = co.collnamespace WHERE {user_schema}
  UNION ALL
  SELECT 'text search configuration', 'pg_ts_config'::regclass, t.oid,
         n.nspname || '.' || t.cfgname
    FROM pg_ts_config t JOIN pg_namespace n ON n.oid = t.cfgnamespace WHERE {user_schema}
  UNION ALL
  SELECT 'event trigger', 'pg_event_trigger'::regclass, e.oid, e.evtname::text
    FROM pg_event_trigger e
  UNION ALL
  SELECT 'default privileges', NULL, NULL,
         coalesce(n.nspname, '(all schemas)') || ': ' || d.defaclobjtype::text
    FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
  UNION ALL
  SELECT 'publication', NULL, NULL, pubname::text FROM pg_publication
)
SELECT f.kind, f.name FROM found f
 WHERE f.cls IS NULL OR NOT EXISTS (SELECT 1 FROM pg_depend d
       WHERE d.classid = f.cls AND d.objid = f.oid AND d.deptype = 'e')
 ORDER BY 1, 2
