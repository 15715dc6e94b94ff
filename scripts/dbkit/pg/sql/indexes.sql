-- The indexes of some relations (the parameter: their OIDs; relid: whose); ``constraint``: the index of a primary key, unique or exclusion
-- constraint (created by the constraint).
SELECT i.indrelid AS relid, ic.relname AS name, pg_get_indexdef(i.indexrelid) AS definition,
       EXISTS (SELECT 1 FROM pg_constraint co WHERE co.conindid = i.indexrelid
               AND co.conrelid = i.indrelid AND co.contype IN ('p', 'u', 'x')) AS constraint,
       i.indisclustered AS clustered, i.indisreplident AS replica_identity,
       obj_description(ic.oid, 'pg_class') AS comment
  FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
 WHERE i.indrelid = ANY (%s::oid[])
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
       WHERE d.classid = 'pg_class'::regclass AND d.objid = ic.oid AND d.deptype = 'e')
 ORDER BY i.indrelid, ic.relname
