-- The roles an ACL (the parameter: a list of aclitems) grants to, but the current user.
SELECT DISTINCT r.rolname, quote_ident(r.rolname)
  FROM unnest(%s::aclitem[]) item, aclexplode(ARRAY[item]) x
  JOIN pg_roles r ON r.oid = x.grantee
 WHERE r.rolname <> current_user
