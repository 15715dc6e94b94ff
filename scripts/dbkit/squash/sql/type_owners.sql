-- What a pg_type row stands for when it is not a type of its own: a table's row type is the
-- table, an array type is its element type.
SELECT t.oid, t.typrelid, t.typelem
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE {user_schema} AND (t.typrelid <> 0 OR (t.typelem <> 0 AND t.typlen = -1))
