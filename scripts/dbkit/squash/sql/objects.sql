-- Every catalog object of the project's schemas as (class, oid, node kind, node key, schema,
-- part name): what pg_depend's rows are mapped onto.
SELECT 'pg_namespace'::regclass::oid, n.oid, 'schema', n.nspname, n.nspname, NULL
  FROM pg_namespace n WHERE {user_schema}
UNION ALL
SELECT 'pg_extension'::regclass::oid, e.oid, 'extension', e.extname, NULL, e.extname
  FROM pg_extension e
UNION ALL
SELECT 'pg_class'::regclass::oid, c.oid,
       CASE WHEN c.relkind IN ('r', 'p') THEN 'table' WHEN c.relkind = 'v' THEN 'view'
            WHEN c.relkind = 'm' THEN 'matview' WHEN c.relkind = 'c' THEN 'type'
            WHEN EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                         AND d.objid = c.oid AND d.deptype = 'i') THEN 'identity'
            ELSE 'sequence' END,
       n.nspname || '.' || c.relname, n.nspname, c.relname
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'c', 'S') AND {user_schema}
UNION ALL
SELECT 'pg_class'::regclass::oid, i.indexrelid,
       CASE WHEN co.oid IS NULL THEN 'index' ELSE 'constraint' END,
       n.nspname || '.' || t.relname, n.nspname, COALESCE(co.conname, ic.relname)
  FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
  JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace
  LEFT JOIN pg_constraint co ON co.conindid = i.indexrelid AND co.conrelid = i.indrelid
       AND co.contype IN ('p', 'u', 'x')
 WHERE {user_schema}
UNION ALL
SELECT 'pg_type'::regclass::oid, t.oid,
       CASE WHEN t.typtype IN ('e', 'd', 'r', 'm') THEN 'type' ELSE 'rowtype' END,
       n.nspname || '.' || t.typname, n.nspname, t.typname
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE {user_schema} AND (t.typtype IN ('e', 'd', 'r', 'm', 'c'))
UNION ALL
SELECT 'pg_proc'::regclass::oid, p.oid, 'function',
       n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
       n.nspname, p.proname
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {user_schema}
UNION ALL
SELECT 'pg_constraint'::regclass::oid, co.oid,
       CASE WHEN co.conrelid <> 0 THEN 'constraint' ELSE 'type' END,
       n.nspname || '.' || COALESCE(t.relname, ty.typname), n.nspname,
       CASE WHEN co.conrelid <> 0 THEN co.conname ELSE ty.typname END
  FROM pg_constraint co JOIN pg_namespace n ON n.oid = co.connamespace
  LEFT JOIN pg_class t ON t.oid = co.conrelid LEFT JOIN pg_type ty ON ty.oid = co.contypid
 WHERE {user_schema}
UNION ALL
SELECT 'pg_attrdef'::regclass::oid, ad.oid,
       CASE WHEN c.relkind = 'v' THEN 'view' ELSE 'table' END,
       n.nspname || '.' || c.relname, n.nspname, c.relname
  FROM pg_attrdef ad JOIN pg_class c ON c.oid = ad.adrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {user_schema}
UNION ALL
SELECT 'pg_rewrite'::regclass::oid, r.oid,
       CASE WHEN c.relkind = 'm' THEN 'matview' WHEN c.relkind = 'v' THEN 'view'
            ELSE 'table' END,
       n.nspname || '.' || c.relname, n.nspname, c.relname
  FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class
  JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {user_schema}
UNION ALL
SELECT 'pg_trigger'::regclass::oid, tg.oid, 'trigger', n.nspname || '.' || c.relname,
       n.nspname, tg.tgname
  FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE NOT tg.tgisinternal AND {user_schema}
UNION ALL
SELECT 'pg_policy'::regclass::oid, pol.oid, 'policy', n.nspname || '.' || c.relname,
       n.nspname, pol.polname
  FROM pg_policy pol JOIN pg_class c ON c.oid = pol.polrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {user_schema}
