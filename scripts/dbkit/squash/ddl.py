"""What the old chain built, read from the database it built, as SQL in dependency order.

The database is the truth (not the models): ``capture`` reads it through ``catalog.snapshot``
plus ``pg_depend``, and returns every object to create as SQL statements taken from the
catalog (``pg_get_viewdef``, ``pg_get_functiondef``, ``pg_get_indexdef``, ...), ordered so
that each object comes after what it needs, together with the rows the migrations left in
each table and the position of every sequence. Objects that an empty database already has
(``public``, ``plpgsql``) and objects owned by an extension are left out.

What each snapshot entry holds is written down in ``pg/shapes.py``; its queries: ``pg/sql/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg2.extensions

from dbkit.errors import CannotSquash
from dbkit.pg import catalog, queries, shapes
from dbkit.pg.queries import fetch
from dbkit.squash import refuse, seed
from dbkit.squash.counts import count_objects
from dbkit.squash.depend import Graph, Node, NodeId, add_edges, order
from dbkit.squash.grants import column_grants, grants
from dbkit.squash.sqltext import (
    INT_BOUNDS,
    Quoter,
    literal,
    owner_column,
    owner_table,
    plain,
    reparsable,
)


@dataclass
class Capture:
    """Everything the old chain built, ready to render."""

    nodes: list[Node]
    counts: dict[str, int]
    snapshot: catalog.Snapshot
    target: int | None = None  # TARGET_PG: the oldest major the revision is written for


# -- the capture ------------------------------------------------------------------------------

def capture(
    conn: psycopg2.extensions.connection,
    *,
    baseline: catalog.Snapshot,
    version_table: tuple[str | None, str],
    data_files: tuple[int, int] | None = None,
    target: int | None = None,
) -> Capture:
    """Read everything the chain built into the database behind ``conn``.

    ``baseline`` is the snapshot of an empty database on the same server (what the chain did
    not create); ``version_table`` is Alembic's (schema or None, name), which is left out;
    ``target`` the oldest PostgreSQL major the revision must build on (``refuse``).
    """
    vt_key = f"{version_table[0] or _first_schema(conn)}.{version_table[1]}"
    with catalog.qualified_names(conn):
        with conn.cursor() as cur:
            for stmt in seed.SESSION:
                cur.execute(stmt)
        snap = catalog.snapshot(conn)
        q = Quoter(conn)
        refuse.unsupported(snap, vt_key)
        if target is not None:
            major = int(fetch(conn, "SHOW server_version_num")[0][0]) // 10000
            refuse.target_lacks(snap, target, vt_key, major)
        graph = Graph(conn)
        builder = _Builder(conn, snap, baseline, q, (vt_key, data_files))
        nodes = builder.build()
        add_edges(nodes, graph)
        ordered = order(nodes)
        counts = count_objects(builder.nodes.values(), builder.new, vt_key)
    return Capture(nodes=ordered, counts=counts, snapshot=snap, target=target)


def _first_schema(conn: psycopg2.extensions.connection) -> str:
    # Alembic puts its table in the first schema of the default search_path.
    row = fetch(conn, "SELECT (current_schemas(false))[1]")
    return str(row[0][0] or "public")


class _Builder:
    """Turns the snapshot into nodes with SQL statements."""

    def __init__(self, conn: psycopg2.extensions.connection, snap: catalog.Snapshot,
                 baseline: catalog.Snapshot, q: Quoter, keys: tuple[str, Any]) -> None:
        self.conn, self.snap, self.base, self.q = conn, snap, baseline, q
        self.version_key, self.data_files = keys  # Alembic's table; seed.read_rows' limits
        self.nodes: dict[NodeId, Node] = {}
        self.names = {  # key -> (schema, name), exactly as the catalog has them
            f"{s}.{n}": (s, n) for s, n in fetch(conn, queries.load(__file__, "names"))
        }
        self.functions = {  # key -> (schema, name, identity arguments)
            key: (schema, name, args) for key, schema, name, args
            in fetch(conn, queries.load(__file__, "function_names"))
        }

    def qn(self, key: str) -> str:
        return self.q.qual(*self.names[key])

    def _column_comments(self, name: str, columns: list[dict[str, Any]]) -> list[str]:
        return [f"COMMENT ON COLUMN {name}.{self.q.ident(col['name'])} IS "
                f"{literal(col['comment'])}" for col in columns if col["comment"] is not None]

    def add(self, kind: str, key: str, create: list[str], drop: str | None = None) -> Node:
        if kind != "function":  # function bodies are kept verbatim
            create = [stmt if stmt.startswith("COMMENT ON ") else reparsable(stmt)
                      for stmt in create]
        node = Node(kind=kind, key=key, create=create, drop=drop)
        self.nodes[node.id] = node
        return node

    def new(self, section: str) -> dict[str, Any]:
        """Objects of one snapshot section that an empty database does not already have
        (their shape per section: ``pg.shapes.Snapshot``, e.g. ``shapes.Table``)."""
        have = self.base.get(section, {})
        return {k: v for k, v in self.snap[section].items() if k not in have}

    def build(self) -> dict[NodeId, Node]:
        self._schemas()
        self._extensions()
        self._types()
        self._sequences()
        self._functions()
        self._tables()
        self._views()
        self._roles()
        return self.nodes

    def _roles(self) -> None:
        """Roles the grants and policies name. They belong to the server, not the database;
        a fresh server may not have them, so they are made when missing (NOLOGIN: their
        attributes and passwords are not the squash's to copy) and never dropped."""
        acls: list[str] = []
        policy_roles: set[str] = set()
        for section in ("schemas", "types", "sequences", "functions", "tables", "views",
                        "materialized_views"):
            for info in self.new(section).values():
                acls += info.get("acl") or []
                for col in info.get("columns", []):
                    acls += col.get("acl") or []
                for policy in info.get("policies", {}).values():
                    policy_roles.update(policy["roles"])
        names = dict(fetch(self.conn, queries.load(__file__, "acl_roles"), (acls,)))
        names.update(fetch(self.conn, """
            SELECT rolname, quote_ident(rolname) FROM pg_roles
            WHERE quote_ident(rolname) = ANY (%s) AND rolname <> current_user""",
                           (sorted(policy_roles),)))
        for name, quoted in sorted(names.items()):
            self.add("role", name, [
                f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = "
                f"{literal(name)}) THEN CREATE ROLE {quoted} NOLOGIN; END IF; END $$"])

    # -- schemas, extensions, types --------------------------------------------------------
    def _schemas(self) -> None:
        for name, info in self.new("schemas").items():
            stmts = [f"CREATE SCHEMA {self.q.ident(name)}"]
            if info["comment"] is not None:
                stmts.append(f"COMMENT ON SCHEMA {self.q.ident(name)} IS "
                             f"{literal(info['comment'])}")
            stmts += grants(self.conn, "pg_namespace", name, f"SCHEMA {self.q.ident(name)}",
                             info["acl"])
            self.add("schema", name, stmts, f"DROP SCHEMA {self.q.ident(name)}")

    def _extensions(self) -> None:
        defaults = dict(fetch(self.conn,
                              "SELECT name, default_version FROM pg_available_extensions"))
        for name, info in self.new("extensions").items():
            stmt = (f"CREATE EXTENSION IF NOT EXISTS {self.q.ident(name)} "
                    f"WITH SCHEMA {self.q.ident(info['schema'])}")
            if defaults.get(name) != info["version"]:
                stmt += f" VERSION {literal(info['version'])}"
            self.add("extension", name, [stmt], f"DROP EXTENSION {self.q.ident(name)}")

    def _types(self) -> None:
        for key, info in self.new("types").items():
            name = self.qn(key)
            kind = info["kind"]
            if kind == "multirange":
                continue  # made by its range type
            if kind == "enum":
                labels = ", ".join(literal(label) for label in info["labels"])
                stmts = [f"CREATE TYPE {name} AS ENUM ({labels})"]
            elif kind == "domain":
                stmts = self._domain(name, info)
            elif kind == "composite":
                attrs = ",\n".join(f"    {self.q.ident(a['name'])} {a['type']}"
                                   for a in info["attributes"])
                stmts = [f"CREATE TYPE {name} AS (\n{attrs}\n)"]
                stmts += [f"COMMENT ON COLUMN {name}.{self.q.ident(a['name'])} IS "
                          f"{literal(a['comment'])}" for a in info["attributes"] if a["comment"]]
            else:  # range
                r = info["range"]
                opts = [f"SUBTYPE = {r['subtype']}"]
                if r.get("subtype_opclass"):
                    opts.append(f"SUBTYPE_OPCLASS = {r['subtype_opclass']}")
                if r.get("subtype_diff"):
                    opts.append(f"SUBTYPE_DIFF = {r['subtype_diff']}")
                if r.get("canonical"):
                    opts.append(f"CANONICAL = {r['canonical']}")
                if r.get("multirange"):
                    opts.append(f"MULTIRANGE_TYPE_NAME = {r['multirange']}")
                stmts = [f"CREATE TYPE {name} AS RANGE ({', '.join(opts)})"]
            word = "DOMAIN" if kind == "domain" else "TYPE"
            if info["comment"] is not None:
                stmts.append(f"COMMENT ON {word} {name} IS {literal(info['comment'])}")
            stmts += grants(self.conn, "pg_type", key, f"{word} {name}", info["acl"])
            self.add("type", key, stmts, f"DROP {word} {name}")

    def _domain(self, name: str, info: shapes.Type) -> list[str]:
        parts = [f"CREATE DOMAIN {name} AS {info['base']}"]
        if info["collation"]:
            parts.append(f"COLLATE {info['collation']}")
        if info["default"] is not None:
            parts.append(f"DEFAULT {info['default']}")
        later: list[str] = []
        named_not_null = False
        for cname, con in info["constraints"].items():
            clause = f"CONSTRAINT {self.q.ident(cname)} {con['definition']}"
            if con["definition"] == "NOT NULL":
                named_not_null = True
            if con["validated"]:
                parts.append(clause)
            else:
                later.append(f"ALTER DOMAIN {name} ADD {clause}")
            if con["comment"] is not None:
                later.append(f"COMMENT ON CONSTRAINT {self.q.ident(cname)} ON DOMAIN {name} "
                             f"IS {literal(con['comment'])}")
        if info["not_null"] and not named_not_null:
            parts.append("NOT NULL")
        return ["\n    ".join(parts), *later]

    # -- sequences, functions --------------------------------------------------------------
    def _sequences(self) -> None:
        for key, s in self.new("sequences").items():
            if s["identity"]:
                continue  # part of its column's definition
            name = self.qn(key)
            stmts = [f"CREATE {'UNLOGGED ' if s['unlogged'] else ''}SEQUENCE {name}\n"
                     f"    AS {s['type']} START WITH {s['start']} INCREMENT BY {s['increment']}"
                     f"\n    MINVALUE {s['min']} MAXVALUE {s['max']} CACHE {s['cache']}"
                     f"{' CYCLE' if s['cycle'] else ''}"]
            if s["comment"] is not None:
                stmts.append(f"COMMENT ON SEQUENCE {name} IS {literal(s['comment'])}")
            stmts += grants(self.conn, "pg_class", key, f"SEQUENCE {name}", s["acl"])
            # Dropped with the table that owns it.
            drop = None if s["owned_by"] else f"DROP SEQUENCE {name}"
            self.add("sequence", key, stmts, drop)
        self._positions()

    def _positions(self) -> None:
        positions = catalog.sequence_positions(self.conn)
        for key, s in self.snap["sequences"].items():
            last, called = positions[key]
            if not called and last == s["start"]:
                continue  # untouched: nothing to set
            node = self.add("setval", key, [
                f"SELECT pg_catalog.setval({literal(self.qn(key))}, {last}, "
                f"{'true' if called else 'false'})"])
            if s["identity"]:
                node.deps.add(("table", owner_table(s["owned_by"])))
            else:
                node.deps.add(("sequence", key))

    def _functions(self) -> None:
        for key, f in self.new("functions").items():
            schema, fname, args = self.functions[key]
            word = "PROCEDURE" if f["kind"] == "procedure" else "FUNCTION"
            if f["kind"] == "aggregate":
                raise CannotSquash(f"the chain creates the aggregate {key}; dbkit cannot "
                                   "reproduce aggregates yet (nothing was changed)")
            signature = f"{self.q.qual(schema, fname)}({args})"
            stmts = [f["definition"].rstrip("\n")]
            if f["comment"] is not None:
                stmts.append(f"COMMENT ON {word} {signature} IS {literal(f['comment'])}")
            stmts += grants(self.conn, "pg_proc", key, f"{word} {signature}", f["acl"])
            self.add("function", key, stmts, f"DROP {word} {signature}")

    # -- tables ----------------------------------------------------------------------------
    def _tables(self) -> None:
        for key, t in self.new("tables").items():
            if key == self.version_key:
                continue
            name = self.qn(key)
            table_name = self.names[key][1]
            lines: list[str] = []
            after: list[str] = []
            not_null_names = {
                c["definition"][len("NOT NULL "):]: cname
                for cname, c in t["constraints"].items() if c["type"] == "not null"
            }
            for col in t["columns"]:
                lines.append(self._column(key, table_name, col, not_null_names, after))
            for cname, con in t["constraints"].items():
                clause = f"CONSTRAINT {self.q.ident(cname)} {con['definition']}"
                if con["type"] == "not null":
                    continue
                if con["type"] in ("foreign key",) or not con["validated"]:
                    node = self.add("constraint", f"{key}.{cname}",
                                    [f"ALTER TABLE {name} ADD {clause}"],
                                    f"ALTER TABLE {name} DROP CONSTRAINT {self.q.ident(cname)}")
                    if con["comment"] is not None:
                        node.create.append(f"COMMENT ON CONSTRAINT {self.q.ident(cname)} ON "
                                           f"{name} IS {literal(con['comment'])}")
                    node.deps.add(("table", key))
                    continue
                lines.append(clause)
                if con["comment"] is not None:
                    after.append(f"COMMENT ON CONSTRAINT {self.q.ident(cname)} ON {name} IS "
                                 f"{literal(con['comment'])}")
            head = f"CREATE {'UNLOGGED ' if t['unlogged'] else ''}TABLE {name} ("
            body = ",\n".join(f"    {line}" for line in lines)
            stmt = f"{head}\n{body}\n)" if lines else f"{head})"
            if t["options"]:
                stmt += f" WITH ({', '.join(t['options'])})"
            stmts = [stmt]
            if t["comment"] is not None:
                stmts.append(f"COMMENT ON TABLE {name} IS {literal(t['comment'])}")
            stmts += self._column_comments(name, t["columns"])
            stmts += after
            if t["row_security"]:
                stmts.append(f"ALTER TABLE {name} ENABLE ROW LEVEL SECURITY")
            if t["force_row_security"]:
                stmts.append(f"ALTER TABLE {name} FORCE ROW LEVEL SECURITY")
            if t["replica_identity"] in ("f", "n"):
                word = "FULL" if t["replica_identity"] == "f" else "NOTHING"
                stmts.append(f"ALTER TABLE {name} REPLICA IDENTITY {word}")
            for s_key, s in self.snap["sequences"].items():
                if s["owned_by"] and not s["identity"] and owner_table(s["owned_by"]) == key:
                    column = self.q.ident(owner_column(s["owned_by"]))
                    stmts.append(f"ALTER SEQUENCE {self.qn(s_key)} OWNED BY {name}.{column}")
            stmts += grants(self.conn, "pg_class", key, f"TABLE {name}", t["acl"])
            stmts += column_grants(self.conn, key, name, self.q.ident)
            self.add("table", key, stmts, f"DROP TABLE {name}")
            self._indexes(key, name, t["indexes"], "table")
            self._triggers(key, name, t["triggers"])
            self._policies(key, name, t["policies"])
            self._seed(key, t)

    def _column(self, key: str, table: str, col: shapes.Column, not_null: dict[str, str],
                after: list[str]) -> str:
        q = self.q
        parts = [q.ident(col["name"]), col["type"]]
        if col["collation"]:
            parts.append(f"COLLATE {col['collation']}")
        if col["generated"] is not None:
            parts.append(f"GENERATED ALWAYS AS ({col['generated']}) "
                         f"{(col['generated_kind'] or 'stored').upper()}")
        if col["identity"]:
            parts.append(f"GENERATED {col['identity'].upper()} AS IDENTITY"
                         + self._identity_options(key, table, col))
        if col["default"] is not None:
            parts.append(f"DEFAULT {col['default']}")
        if col["not_null"]:
            cname = not_null.get(q.ident(col["name"])) or not_null.get(col["name"])
            if cname and cname != f"{table}_{col['name']}_not_null":
                parts.append(f"CONSTRAINT {q.ident(cname)} NOT NULL")
            else:
                parts.append("NOT NULL")
        target = f"ALTER TABLE {self.qn(key)} ALTER COLUMN {q.ident(col['name'])}"
        if col["storage"]:
            storage = {"p": "PLAIN", "e": "EXTERNAL", "m": "MAIN", "x": "EXTENDED"}
            after.append(f"{target} SET STORAGE {storage[col['storage']]}")
        if col["statistics"] is not None:
            after.append(f"{target} SET STATISTICS {col['statistics']}")
        if col["compression"]:
            method = {"p": "pglz", "l": "lz4"}.get(col["compression"], col["compression"])
            after.append(f"{target} SET COMPRESSION {method}")
        if col["options"]:  # user options only (catalog.USER_ATTOPTIONS), e.g. n_distinct=-0.5
            after.append(f"{target} SET ({', '.join(col['options'])})")
        return " ".join(parts)

    def _identity_options(self, key: str, table: str, col: shapes.Column) -> str:
        owner = f"{key}.{col['name']}"
        found = [(k, s) for k, s in self.snap["sequences"].items()
                 if s["identity"] and plain(s["owned_by"]) == owner]
        if not found:
            return ""
        seq_key, s = found[0]
        bits, opts = INT_BOUNDS.get(s["type"], (None, None)), []
        if seq_key != f"{self.names[key][0]}.{table}_{col['name']}_seq":
            opts.append(f"SEQUENCE NAME {self.qn(seq_key)}")
        low, high = bits
        ascending = s["increment"] > 0
        default_min = 1 if ascending else low
        default_max = high if ascending else -1
        if s["increment"] != 1:
            opts.append(f"INCREMENT BY {s['increment']}")
        if s["min"] != default_min:
            opts.append(f"MINVALUE {s['min']}")
        if s["max"] != default_max:
            opts.append(f"MAXVALUE {s['max']}")
        if s["start"] != (s["min"] if ascending else s["max"]):
            opts.append(f"START WITH {s['start']}")
        if s["cache"] != 1:
            opts.append(f"CACHE {s['cache']}")
        if s["cycle"]:
            opts.append("CYCLE")
        return f" ({' '.join(opts)})" if opts else ""

    def _indexes(self, key: str, name: str, indexes: dict[str, shapes.Index],
                 owner: str) -> None:
        """The indexes of a table or a materialized view (``owner``: its node kind)."""
        for iname, ix in indexes.items():
            if ix["constraint"]:
                extra = []
            else:
                extra = [ix["definition"]]
            if ix["clustered"]:
                extra.append(f"ALTER TABLE {name} CLUSTER ON {self.q.ident(iname)}")
            if ix["replica_identity"]:
                extra.append(f"ALTER TABLE {name} REPLICA IDENTITY USING INDEX "
                             f"{self.q.ident(iname)}")
            if ix["comment"] is not None:
                schema = self.names[key][0]
                extra.append(f"COMMENT ON INDEX {self.q.qual(schema, iname)} IS "
                             f"{literal(ix['comment'])}")
            if not extra:
                continue
            node = self.add("index" if owner == "table" else "matview index", f"{key}.{iname}",
                            extra)
            node.deps.add((owner, key))
            if ix["constraint"]:
                node.deps.add(("constraint", key, iname))

    def _triggers(self, key: str, name: str, triggers: dict[str, shapes.Trigger]) -> None:
        for tname, tg in triggers.items():
            stmts = [tg["definition"]]
            state = {"D": "DISABLE", "R": "ENABLE REPLICA", "A": "ENABLE ALWAYS"}
            if tg["enabled"] in state:
                stmts.append(f"ALTER TABLE {name} {state[tg['enabled']]} TRIGGER "
                             f"{self.q.ident(tname)}")
            if tg["comment"] is not None:
                stmts.append(f"COMMENT ON TRIGGER {self.q.ident(tname)} ON {name} IS "
                             f"{literal(tg['comment'])}")
            self.add("trigger", f"{key}.{tname}", stmts)

    def _policies(self, key: str, name: str, policies: dict[str, shapes.Policy]) -> None:
        commands = {"r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE", "*": "ALL"}
        for pname, p in policies.items():
            stmt = (f"CREATE POLICY {self.q.ident(pname)} ON {name} AS "
                    f"{'PERMISSIVE' if p['permissive'] else 'RESTRICTIVE'} "
                    f"FOR {commands[p['command']]} TO {', '.join(p['roles'])}")
            if p["using"] is not None:
                stmt += f" USING ({p['using']})"
            if p["with_check"] is not None:
                stmt += f" WITH CHECK ({p['with_check']})"
            stmts = [stmt]
            if p["comment"] is not None:
                stmts.append(f"COMMENT ON POLICY {self.q.ident(pname)} ON {name} IS "
                             f"{literal(p['comment'])}")
            node = self.add("policy", f"{key}.{pname}", stmts)
            node.deps.add(("table", key))

    def _seed(self, key: str, table: shapes.Table) -> None:
        rows = seed.read_rows(self.conn, self.names[key], table, self.q.ident, self.data_files)
        if rows is not None:
            self.add("rows", key, []).seed = rows

    # -- views -----------------------------------------------------------------------------
    def _views(self) -> None:
        for section, kind in (("views", "view"), ("materialized_views", "matview")):
            for key, v in self.new(section).items():
                name = self.qn(key)
                word = "VIEW" if kind == "view" else "MATERIALIZED VIEW"
                options = f" WITH ({', '.join(v['options'])})" if v["options"] else ""
                body = v["definition"].rstrip().rstrip(";")
                stmt = f"CREATE {word} {name}{options} AS\n{body}"
                if kind == "matview":
                    stmt += "\nWITH DATA" if v["populated"] else "\nWITH NO DATA"
                stmts = [stmt]
                for col in v["columns"]:
                    if col["default"] is not None:
                        stmts.append(f"ALTER VIEW {name} ALTER COLUMN {self.q.ident(col['name'])}"
                                     f" SET DEFAULT {col['default']}")
                if v["comment"] is not None:
                    stmts.append(f"COMMENT ON {word} {name} IS {literal(v['comment'])}")
                stmts += self._column_comments(name, v["columns"])
                stmts += grants(self.conn, "pg_class", key, f"TABLE {name}", v["acl"])
                self.add(kind, key, stmts, f"DROP {word} {name}")
                if kind == "matview":
                    self._indexes(key, name, v["indexes"], "matview")
                self._triggers(key, name, v["triggers"])
