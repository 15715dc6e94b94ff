-- The named constraints of some tables (the parameter: their OIDs; constraint triggers are
-- listed with the triggers); relid: whose.
SELECT co.conrelid AS relid, co.conname AS name,
       CASE co.contype WHEN 'p' THEN 'primary key' WHEN 'u' THEN 'unique'
           WHEN 'c' THEN 'check' WHEN 'f' THEN 'foreign key' WHEN 'x' THEN 'exclusion'
           WHEN 'n' THEN 'not null' ELSE co.contype::text END AS type,
       pg_get_constraintdef(co.oid) AS definition,
       co.condeferrable AS deferrable, co.condeferred AS deferred,
       co.convalidated AS validated, co.conislocal AS local,
       obj_description(co.oid, 'pg_constraint') AS comment
  FROM pg_constraint co
 WHERE co.conrelid = ANY (%s::oid[]) AND co.contype <> 't'
 ORDER BY co.conrelid, co.conname
