-- The project's relations of some kinds (kinds: pg_class.relkind letters), by name, not an
-- extension's; populated: only the materialized views that hold data.
SELECT n.nspname, c.relname
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind::text = ANY (%(kinds)s) AND {user_schema} AND {not_ext_class}
   AND (c.relkind <> 'm' OR c.relispopulated OR NOT %(populated)s)
 ORDER BY 1, 2
