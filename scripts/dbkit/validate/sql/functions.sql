-- Functions and procedures (which: the caller's condition), with every attribute a declaration sets and the
-- body (for a body-less definition, pg_get_functiondef without its first line).
SELECT n.nspname || '.' || p.proname, pg_get_function_identity_arguments(p.oid),
       pg_get_function_arguments(p.oid), pg_get_function_result(p.oid), l.lanname, p.prokind,
       p.provolatile, p.proisstrict, p.prosecdef, p.proparallel, p.proleakproof,
       array_to_string(p.proconfig, ', '),
       CASE WHEN p.prosrc <> '' THEN p.prosrc
            ELSE regexp_replace(pg_get_functiondef(p.oid), '^[^\n]*\n', '') END
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
  JOIN pg_language l ON l.oid = p.prolang
 WHERE p.prokind IN ('f', 'p') AND {where}
