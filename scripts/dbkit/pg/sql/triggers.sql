SELECT t.tgname AS name, pg_get_triggerdef(t.oid) AS definition,
       t.tgenabled::text AS enabled, obj_description(t.oid, 'pg_trigger') AS comment
  FROM pg_trigger t
 WHERE t.tgrelid = %s AND NOT t.tgisinternal
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
       WHERE d.classid = 'pg_trigger'::regclass AND d.objid = t.oid AND d.deptype = 'e')
 ORDER BY 1
