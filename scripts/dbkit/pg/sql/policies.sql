-- The row-security policies of some tables (the parameter: their OIDs); relid: whose.
SELECT p.polrelid AS relid, p.polname AS name, p.polcmd::text AS command,
       p.polpermissive AS permissive,
       ARRAY(SELECT CASE WHEN r = 0 THEN 'public' ELSE quote_ident(pg_get_userbyid(r)) END
               FROM unnest(p.polroles) r ORDER BY 1) AS roles,
       pg_get_expr(p.polqual, p.polrelid) AS using,
       pg_get_expr(p.polwithcheck, p.polrelid) AS with_check,
       obj_description(p.oid, 'pg_policy') AS comment
  FROM pg_policy p WHERE p.polrelid = ANY (%s::oid[])
 ORDER BY p.polrelid, p.polname
