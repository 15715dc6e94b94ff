-- Views or materialized views: the parameter is the relkind, 'v' or 'm'.
SELECT c.oid, n.nspname AS schema, c.relname AS name,
       pg_get_viewdef(c.oid) AS definition, c.reloptions AS options,
       c.relispopulated AS populated,
       obj_description(c.oid, 'pg_class') AS comment, c.relacl::text[] AS acl
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE {user_schema} AND {not_ext_class} AND c.relkind = %s
 ORDER BY 2, 3
