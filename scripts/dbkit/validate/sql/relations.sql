-- Tables, views and materialized views of the app's schemas (parameter schemas), not an
-- extension's: key, relkind, the name as definitions print it, the view's definition.
SELECT n.nspname || '.' || c.relname, c.relkind,
       quote_ident(n.nspname) || '.' || quote_ident(c.relname),
       CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'm') AND n.nspname = ANY(%(schemas)s)
   AND {not_ext_class}
