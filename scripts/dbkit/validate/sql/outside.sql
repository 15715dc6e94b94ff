-- Relations of some relkinds (parameter kinds) in project schemas the app does not use
-- (schemas), but those it says to ignore: key, relkind, the view's definition, the number of columns.
SELECT n.nspname || '.' || c.relname, c.relkind,
       CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END,
       (SELECT count(*) FROM pg_attribute a
         WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind::text = ANY(%(kinds)s) AND NOT c.relispartition
   AND {user_schema} AND n.nspname <> ALL(%(schemas)s) AND {not_ext_class}
   AND n.nspname || '.' || c.relname <> ALL(%(ignore)s)
 ORDER BY 1
