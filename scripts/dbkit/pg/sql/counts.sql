-- How many of each kind of object the project's schemas hold (one row, a column per kind).
SELECT
  (SELECT count(*) FROM pg_namespace n
    WHERE {user_schema} AND n.nspname <> 'public') AS "schemas",
  (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND {user_schema} AND {not_ext_class}) AS "tables",
  (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'v' AND {user_schema} AND {not_ext_class}) AS "views",
  (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'm' AND {user_schema}) AS "materialized views",
  (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'i' AND {user_schema} AND {not_ext_class}) AS "indexes",
  (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'S' AND {user_schema} AND {not_ext_class}) AS "sequences",
  (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE {user_schema} AND NOT EXISTS (SELECT 1 FROM pg_depend d
      WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'))
    AS "functions",
  (SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE NOT t.tgisinternal AND {user_schema}) AS "triggers",
  (SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
    WHERE t.typtype IN ('e', 'd', 'r') AND {user_schema} AND NOT EXISTS (SELECT 1
      FROM pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid
      AND d.deptype = 'e')) AS "types",
  (SELECT count(*) FROM pg_extension WHERE extname <> 'plpgsql') AS "extensions"
