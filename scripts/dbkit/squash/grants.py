"""Privileges: the GRANT and REVOKE statements that give a captured object its ACL."""

from __future__ import annotations

from collections.abc import Callable

import psycopg2.extensions

from dbkit.pg import queries
from dbkit.pg.queries import fetch
from dbkit.squash.seed import regclass_name

_ACL_KIND = {"pg_class": "r", "pg_proc": "f", "pg_type": "T", "pg_namespace": "n"}


def grants(conn: psycopg2.extensions.connection, catalog_name: str, key: str, target: str,
            acl: list[str] | None) -> list[str]:
    """GRANT/REVOKE statements that turn the default privileges into ``acl``."""
    if acl is None:
        return []
    owner_col = {"pg_class": "relowner", "pg_proc": "proowner", "pg_type": "typowner",
                 "pg_namespace": "nspowner"}[catalog_name]
    kind = _ACL_KIND[catalog_name]
    if catalog_name == "pg_class":
        row = fetch(conn, "SELECT relkind FROM pg_class WHERE oid = %s::regclass",
                    (_regname(key),))
        kind = "s" if row and row[0][0] == "S" else "r"
    query = queries.load(__file__, "privileges").format(owner_col=owner_col,
                                                       catalog_name=catalog_name)
    rows = fetch(conn, query, ("{" + ",".join(acl) + "}", _oid(conn, catalog_name, key), kind))
    stmts = []
    for verb, privilege, grantee, grantable in rows:
        who = "PUBLIC" if grantee == 0 else _role(conn, grantee)
        if verb == "GRANT":
            stmts.append(f"GRANT {privilege} ON {target} TO {who}"
                         + (" WITH GRANT OPTION" if grantable else ""))
        else:
            stmts.append(f"REVOKE {privilege} ON {target} FROM {who}")
    return stmts


def column_grants(conn: psycopg2.extensions.connection, key: str, name: str,
                   ident: Callable[[str], str]) -> list[str]:
    rows = fetch(conn, """
        SELECT a.attname, x.privilege_type, x.grantee, x.is_grantable
        FROM pg_attribute a, aclexplode(a.attacl) x
        WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum, 2, 3""", (_regname(key),))
    return [
        f"GRANT {priv} ({ident(col)}) ON TABLE {name} TO "
        f"{'PUBLIC' if grantee == 0 else _role(conn, grantee)}"
        + (" WITH GRANT OPTION" if grantable else "")
        for col, priv, grantee, grantable in rows
    ]


def _regname(key: str) -> str:
    schema, _, name = key.partition(".")
    return regclass_name(schema, name)


def _oid(conn: psycopg2.extensions.connection, catalog_name: str, key: str) -> int:
    if catalog_name == "pg_class":
        return int(fetch(conn, "SELECT %s::regclass::oid", (_regname(key),))[0][0])
    if catalog_name == "pg_type":
        return int(fetch(conn, "SELECT %s::regtype::oid", (_regname(key),))[0][0])
    if catalog_name == "pg_namespace":
        return int(fetch(conn, "SELECT oid FROM pg_namespace WHERE nspname = %s", (key,))[0][0])
    return int(fetch(conn, """
        SELECT p.oid FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid)
              || ')' = %s""", (key,))[0][0])


def _role(conn: psycopg2.extensions.connection, oid: int) -> str:
    return str(fetch(conn, "SELECT quote_ident(rolname) FROM pg_roles WHERE oid = %s",
                     (oid,))[0][0])


