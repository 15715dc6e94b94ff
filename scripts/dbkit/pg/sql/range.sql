SELECT format_type(r.rngsubtype, NULL) AS subtype,
       (SELECT quote_ident(on_.nspname) || '.' || quote_ident(oc.opcname)
          FROM pg_opclass oc JOIN pg_namespace on_ ON on_.oid = oc.opcnamespace
         WHERE oc.oid = r.rngsubopc) AS subtype_opclass,
       NULLIF(r.rngcanonical, 0)::regproc::text AS canonical,
       NULLIF(r.rngsubdiff, 0)::regproc::text AS subtype_diff,
       format_type(r.rngmultitypid, NULL) AS multirange
  FROM pg_range r WHERE r.rngtypid = %s
