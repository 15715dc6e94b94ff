-- What turns an object's default privileges into its ACL: GRANT what the ACL has beyond the
-- default, REVOKE what it lacks. Parameters: the ACL, the object's oid, its acldefault kind;
-- the owner_col and catalog_name fields name its catalog (pg_class and relowner, ...).
WITH a AS (SELECT (aclexplode(%s::aclitem[])).*),
     o AS (SELECT {owner_col} AS owner FROM {catalog_name} WHERE oid = %s),
     d AS (SELECT (aclexplode(acldefault(%s, (SELECT owner FROM o)))).*)
SELECT 'GRANT', privilege_type, grantee, is_grantable FROM a
 WHERE (privilege_type, grantee, is_grantable) NOT IN
       (SELECT privilege_type, grantee, is_grantable FROM d)
UNION ALL
SELECT 'REVOKE', privilege_type, grantee, is_grantable FROM d
 WHERE (privilege_type, grantee, is_grantable) NOT IN
       (SELECT privilege_type, grantee, is_grantable FROM a)
ORDER BY 1 DESC, 3, 2
