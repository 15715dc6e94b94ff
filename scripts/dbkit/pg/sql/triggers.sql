-- The triggers of some relations (the parameter: their OIDs); relid: whose.
SELECT t.tgrelid AS relid, t.tgname AS name, pg_get_triggerdef(t.oid) AS definition,
       t.tgenabled::text AS enabled, obj_description(t.oid, 'pg_trigger') AS comment
  FROM pg_trigger t
 WHERE t.tgrelid = ANY (%s::oid[]) AND NOT t.tgisinternal
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
       WHERE d.classid = 'pg_trigger'::regclass AND d.objid = t.oid AND d.deptype = 'e')
 ORDER BY t.tgrelid, t.tgname
