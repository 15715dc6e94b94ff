SELECT n.nspname AS name, obj_description(n.oid, 'pg_namespace') AS comment,
       n.nspacl::text[] AS acl
  FROM pg_namespace n
 WHERE {user_schema} AND NOT EXISTS (SELECT 1 FROM pg_depend d
       WHERE d.classid = 'pg_namespace'::regclass AND d.objid = n.oid AND d.deptype = 'e')
 ORDER BY 1
