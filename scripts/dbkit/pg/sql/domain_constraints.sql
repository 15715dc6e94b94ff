SELECT co.conname AS name, pg_get_constraintdef(co.oid) AS definition,
       co.convalidated AS validated, obj_description(co.oid, 'pg_constraint') AS comment
  FROM pg_constraint co WHERE co.contypid = %s ORDER BY 1
