-- Ordinary and partitioned tables (their columns, constraints, ... are read per table).
SELECT c.oid, n.nspname AS schema, c.relname AS name, c.relkind AS kind,
       c.relpersistence = 'u' AS unlogged, c.reloptions AS options,
       c.relrowsecurity AS row_security, c.relforcerowsecurity AS force_row_security,
       c.relreplident AS replica_identity, c.relispartition AS is_partition,
       CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END AS partition_key,
       CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END
           AS partition_bound,
       ARRAY(SELECT i.inhparent::regclass::text FROM pg_inherits i
             WHERE i.inhrelid = c.oid ORDER BY i.inhseqno) AS parents,
       obj_description(c.oid, 'pg_class') AS comment, c.relacl::text[] AS acl
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE {user_schema} AND {not_ext_class} AND c.relkind IN ('r', 'p')
 ORDER BY 2, 3
