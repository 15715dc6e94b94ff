-- Every sequence, with what owns it: a column (serial, OWNED BY) or an identity column.
SELECT n.nspname AS schema, c.relname AS name,
       format_type(s.seqtypid, NULL) AS type, s.seqstart AS start,
       s.seqincrement AS increment, s.seqmin AS min, s.seqmax AS max,
       s.seqcache AS cache, s.seqcycle AS cycle, c.relpersistence = 'u' AS unlogged,
       (SELECT quote_ident(tn.nspname) || '.' || quote_ident(tc.relname) || '.'
               || quote_ident(a.attname)
          FROM pg_depend d JOIN pg_class tc ON tc.oid = d.refobjid
          JOIN pg_namespace tn ON tn.oid = tc.relnamespace
          JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
         WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
           AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i'))
           AS owned_by,
       EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
               AND d.objid = c.oid AND d.deptype = 'i') AS identity,
       obj_description(c.oid, 'pg_class') AS comment, c.relacl::text[] AS acl
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_sequence s ON s.seqrelid = c.oid
 WHERE c.relkind = 'S' AND {user_schema} AND {not_ext_class}
 ORDER BY 1, 2
