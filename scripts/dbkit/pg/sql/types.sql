-- Enums (labels in order), domains, composite types, ranges and multiranges.
SELECT n.nspname AS schema, t.typname AS name, t.typtype AS kind, t.oid AS oid,
       obj_description(t.oid, 'pg_type') AS comment, t.typacl::text[] AS acl,
       CASE WHEN t.typtype = 'e' THEN ARRAY(
           SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid
           ORDER BY e.enumsortorder) END AS labels,
       CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END AS base,
       t.typdefault AS default, t.typnotnull AS not_null,
       CASE WHEN t.typcollation <> 0 AND t.typcollation <> bt.typcollation THEN
           (SELECT quote_ident(cn.nspname) || '.' || quote_ident(co.collname)
            FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace
            WHERE co.oid = t.typcollation) END AS collation
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
  LEFT JOIN pg_type bt ON bt.oid = t.typbasetype
  LEFT JOIN pg_class rc ON rc.oid = t.typrelid
 WHERE {user_schema}
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
       WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')
   AND (t.typtype IN ('e', 'd', 'r', 'm') OR (t.typtype = 'c' AND rc.relkind = 'c'))
 ORDER BY 1, 2
