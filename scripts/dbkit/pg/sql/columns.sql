-- The columns of some relations (the parameter: their OIDs), each relation's in order of
-- appearance (attnum gaps left by dropped columns do not matter); relid: whose.
SELECT a.attrelid AS relid, a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
       CASE WHEN a.attgenerated = '' THEN pg_get_expr(ad.adbin, ad.adrelid) END AS default,
       a.attnotnull AS not_null,
       CASE a.attidentity WHEN 'a' THEN 'always' WHEN 'd' THEN 'by default' END AS identity,
       CASE WHEN a.attgenerated <> '' THEN pg_get_expr(ad.adbin, ad.adrelid) END
           AS generated,
       CASE a.attgenerated WHEN 's' THEN 'stored' WHEN 'v' THEN 'virtual' END
           AS generated_kind,
       CASE WHEN a.attcollation <> t.typcollation THEN
           (SELECT quote_ident(cn.nspname) || '.' || quote_ident(co.collname)
              FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace
             WHERE co.oid = a.attcollation) END AS collation,
       NULLIF(a.attstorage, t.typstorage) AS storage,
       NULLIF(NULLIF(a.attstattarget::int, -1), NULL) AS statistics,
       NULLIF(a.attcompression::text, '') AS compression,
       a.attoptions AS options,
       col_description(a.attrelid, a.attnum) AS comment,
       a.attacl::text[] AS acl
  FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
 WHERE a.attrelid = ANY (%s::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attrelid, a.attnum
