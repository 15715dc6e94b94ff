"""Which captured object needs which, and the order the revision creates them in.

``pg_depend`` is mapped onto the revision's nodes (a column default that calls a function,
a view on a view, an index on an expression, a function returning a table's row type, ...),
a few rules are added for the data (seed rows before foreign keys and triggers, materialized
views filled after the rows), and the nodes are sorted so that each comes after what it
needs, in a readable order otherwise.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import psycopg2.extensions

from dbkit.errors import CannotSquash
from dbkit.pg import queries
from dbkit.pg.queries import fetch
from dbkit.squash.kinds import KIND
from dbkit.squash.seed import SeedRows

NodeId = tuple[str, ...]

@dataclass
class Node:
    """One object to create: its statements, the statement that drops it, or seed rows."""

    kind: str
    key: str
    create: list[str] = field(default_factory=list)
    drop: str | None = None
    seed: SeedRows | None = None
    deps: set[NodeId] = field(default_factory=set)

    @property
    def id(self) -> NodeId:
        return (self.kind, self.key)



class Graph:
    """Catalog objects mapped onto the nodes of the revision, and the edges between them."""

    def __init__(self, conn: psycopg2.extensions.connection) -> None:
        self.objects: dict[tuple[int, int], tuple[str, ...]] = {}
        for cls, oid, kind, key, _schema, sub in fetch(conn, queries.load(__file__, "objects")):
            if kind in ("constraint", "index", "trigger", "policy"):
                self.objects[(cls, oid)] = (kind, key, sub)
            else:
                self.objects[(cls, oid)] = (kind, key)
        self.pg_class, self.pg_type = fetch(
            conn, "SELECT 'pg_class'::regclass::oid, 'pg_type'::regclass::oid")[0]
        self.type_owner = {oid: (rel, elem) for oid, rel, elem
                           in fetch(conn, queries.load(__file__, "type_owners"))}
        self.identity_owner = {
            oid: refoid for oid, refoid in fetch(conn, """
                SELECT objid, refobjid FROM pg_depend
                WHERE classid = 'pg_class'::regclass AND refclassid = 'pg_class'::regclass
                  AND deptype = 'i' AND objsubid = 0 AND refobjsubid > 0""")
        }
        ext_name = dict(fetch(conn, "SELECT oid, extname FROM pg_extension"))
        self.member_of = {
            (cls, oid): ext_name[ext] for cls, oid, ext in fetch(conn, """
                SELECT classid, objid, refobjid FROM pg_depend
                WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'""")
        }
        self.depend = fetch(conn, """
            SELECT classid, objid, refclassid, refobjid, deptype FROM pg_depend
            WHERE deptype IN ('n', 'a', 'i')""")

    def resolve(self, cls: int, oid: int) -> NodeId | None:
        """The node a catalog object belongs to (None: a system object)."""
        if (cls, oid) in self.member_of:
            return ("extension", self.member_of[(cls, oid)])
        if cls == self.pg_type and oid in self.type_owner:
            rel, elem = self.type_owner[oid]
            node = self.resolve(self.pg_class, rel) if rel else self.resolve(cls, elem)
            if node is not None:
                return node
        if cls == self.pg_class and oid in self.identity_owner:
            return self.resolve(cls, self.identity_owner[oid])
        return self.objects.get((cls, oid))

    def edges(self) -> set[tuple[NodeId, NodeId]]:
        """(dependent, dependency) pairs between distinct nodes."""
        found = set()
        for cls, oid, refcls, refoid, deptype in self.depend:
            a, b = self.resolve(cls, oid), self.resolve(refcls, refoid)
            if a is None or b is None or a == b:
                continue
            # A sequence OWNED BY a column is created before its table (the table's default
            # uses it); the ownership itself is set after the table.
            if deptype == "a" and a[0] == "sequence" and b[0] == "table":
                continue
            found.add((a, b))
        return found


def add_edges(nodes: dict[NodeId, Node], graph: Graph) -> None:
    """Dependencies from pg_depend, mapped onto the nodes, plus the data-phase rules."""
    alias: dict[NodeId, NodeId] = {}
    for node_id in list(nodes):
        kind, key = node_id
        if kind == "constraint":
            table, cname = key.rsplit(".", 1)
            alias[("constraint", table, cname)] = node_id
        elif KIND[kind].part:
            table, sub = key.rsplit(".", 1)
            alias[(KIND[kind].in_pg_depend or kind, table, sub)] = node_id

    def find(raw: NodeId) -> NodeId | None:
        if raw in nodes:
            return raw
        if raw in alias:
            return alias[raw]
        if raw[0] in ("constraint", "index", "trigger", "policy") and len(raw) == 3:
            # Inline constraint or constraint index: part of its table (or matview).
            for kind in ("table", "matview"):
                if (kind, raw[1]) in nodes:
                    return (kind, raw[1])
        if raw[0] == "rowtype":
            for kind in ("table", "view", "matview", "type"):
                if (kind, raw[1]) in nodes:
                    return (kind, raw[1])
        return None

    for a_raw, b_raw in graph.edges():
        a, b = find(a_raw), find(b_raw)
        if a is not None and b is not None and a != b:
            nodes[a].deps.add(b)
    rows = [n.id for n in nodes.values() if n.kind == "rows"]
    for node in nodes.values():
        if node.kind == "rows":
            node.deps.add(("table", node.key))
        if KIND[node.kind].after_rows:
            # Foreign keys and triggers must not see the seed inserts; materialized views
            # are filled from the seeded tables.
            node.deps.update(rows)
        if KIND[node.kind].part:
            table = node.key.rsplit(".", 1)[0]
            for kind in ("table", "view", "matview"):
                if (kind, table) in nodes:
                    node.deps.add((kind, table))
    for node in nodes.values():
        node.deps = {d for d in node.deps if d in nodes and d != node.id}


def _priority(node: Node) -> tuple:
    rank = KIND[node.kind].rank
    if KIND[node.kind].follows_owner:
        return (rank, node.key.rsplit(".", 1)[0], 1, node.key)
    return (rank, node.key, 0, "")


def order(nodes: dict[NodeId, Node]) -> list[Node]:
    """Dependencies first; among the ready ones, the reading order of ``kinds.KINDS``."""
    waiting = {nid: set(n.deps) for nid, n in nodes.items()}
    dependents: dict[NodeId, list[NodeId]] = {nid: [] for nid in nodes}
    for nid, deps in waiting.items():
        for dep in deps:
            dependents[dep].append(nid)
    ready = [(_priority(nodes[nid]), nid) for nid, deps in waiting.items() if not deps]
    heapq.heapify(ready)
    ordered: list[Node] = []
    while ready:
        _, nid = heapq.heappop(ready)
        ordered.append(nodes[nid])
        for other in dependents[nid]:
            waiting[other].discard(nid)
            if not waiting[other]:
                heapq.heappush(ready, (_priority(nodes[other]), other))
    if len(ordered) != len(nodes):
        stuck = sorted(f"{k} {n}" for (k, n), deps in waiting.items() if deps)
        raise CannotSquash("objects depend on each other in a cycle dbkit cannot order: "
                           + ", ".join(stuck[:8]))
    return ordered
