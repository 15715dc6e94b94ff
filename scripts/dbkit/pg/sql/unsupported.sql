-- What dbkit cannot yet reproduce, as (kind, name): a squash refuses clearly instead of
-- losing it.
SELECT 'rule', n.nspname || '.' || c.relname || ': ' || r.rulename
  FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE r.rulename <> '_RETURN' AND {user_schema}
UNION ALL
SELECT 'extended statistics', n.nspname || '.' || s.stxname
  FROM pg_statistic_ext s JOIN pg_namespace n ON n.oid = s.stxnamespace
 WHERE {user_schema}
UNION ALL
SELECT 'foreign table', n.nspname || '.' || c.relname
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE {user_schema} AND {not_ext_class} AND c.relkind = 'f'
UNION ALL
SELECT 'operator', n.nspname || '.' || o.oprname
  FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace
 WHERE {user_schema} AND NOT EXISTS (SELECT 1 FROM pg_depend d
       WHERE d.classid = 'pg_operator'::regclass AND d.objid = o.oid AND d.deptype = 'e')
UNION ALL
SELECT 'collation', n.nspname || '.' || co.collname
  FROM pg_collation co JOIN pg_namespace n ON n.oid = co.collnamespace
 WHERE {user_schema} AND NOT EXISTS (SELECT 1 FROM pg_depend d
       WHERE d.classid = 'pg_collation'::regclass AND d.objid = co.oid AND d.deptype = 'e')
UNION ALL
SELECT 'text search configuration', n.nspname || '.' || t.cfgname
  FROM pg_ts_config t JOIN pg_namespace n ON n.oid = t.cfgnamespace
 WHERE {user_schema} AND NOT EXISTS (SELECT 1 FROM pg_depend d
       WHERE d.classid = 'pg_ts_config'::regclass AND d.objid = t.oid AND d.deptype = 'e')
UNION ALL
SELECT 'event trigger', e.evtname::text
  FROM pg_event_trigger e
 WHERE NOT EXISTS (SELECT 1 FROM pg_depend d
       WHERE d.classid = 'pg_event_trigger'::regclass AND d.objid = e.oid AND d.deptype = 'e')
UNION ALL
SELECT 'default privileges', coalesce(n.nspname, '(all schemas)') || ': '
       || d.defaclobjtype::text
  FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
UNION ALL
SELECT 'publication', pubname::text FROM pg_publication
ORDER BY 1, 2
