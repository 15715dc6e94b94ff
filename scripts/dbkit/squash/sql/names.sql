-- Relations and types of the project's schemas: key -> (schema, name) exactly as the catalog
-- has them.
SELECT n.nspname, c.relname FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {user_schema}
UNION
SELECT n.nspname, t.typname FROM pg_type t
  JOIN pg_namespace n ON n.oid = t.typnamespace WHERE {user_schema}
