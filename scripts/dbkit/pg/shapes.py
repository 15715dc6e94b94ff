"""The shape of a catalog snapshot, written down once: what ``catalog.snapshot`` returns.

Every key is named as the query in ``pg/sql/`` that reads it names its column (for example
``Table.replica_identity`` is ``pg_class.relreplident`` in ``sql/tables.sql``). Objects are
keyed by schema-qualified name, unquoted (``"public.genes"``); functions by
``schema.name(identity arguments)``; parts of a table (constraints, indexes, triggers,
policies) by their own name. ``acl`` is a sorted list of aclitem strings, None for the default
privileges; ``comment`` is None when there is none.
"""

from __future__ import annotations

from typing import Any, TypedDict


class Schema(TypedDict):
    comment: str | None
    acl: list[str] | None


class Extension(TypedDict):
    version: str
    schema: str


class DomainConstraint(TypedDict):
    definition: str
    validated: bool
    comment: str | None


class CompositeAttribute(TypedDict):
    name: str
    type: str
    comment: str | None


class Range(TypedDict):
    subtype: str
    subtype_opclass: str | None
    canonical: str | None
    subtype_diff: str | None
    multirange: str | None


class Type(TypedDict, total=False):
    kind: str  # enum, domain, composite, range, multirange
    comment: str | None
    acl: list[str] | None
    labels: list[str]  # enum
    base: str  # domain: its base type, as format_type prints it
    default: str | None  # domain
    not_null: bool  # domain
    collation: str | None  # domain
    constraints: dict[str, DomainConstraint]  # domain
    attributes: list[CompositeAttribute]  # composite
    range: Range  # range


class Sequence(TypedDict):
    type: str
    start: int
    increment: int
    min: int
    max: int
    cache: int
    cycle: bool
    unlogged: bool
    owned_by: str | None  # "schema.table.column", quoted as needed; serial, OWNED BY, identity
    identity: bool  # the sequence of an identity column
    comment: str | None
    acl: list[str] | None


class Column(TypedDict):
    name: str
    type: str  # format_type
    default: str | None  # pg_get_expr of the default (not of a generated column)
    not_null: bool
    identity: str | None  # "always", "by default"
    generated: str | None  # the expression of a generated column
    generated_kind: str | None  # "stored", "virtual"
    collation: str | None  # only when not the type's own
    storage: str | None  # pg_attribute.attstorage, only when not the type's own
    statistics: int | None
    compression: str | None
    options: list[str] | None
    comment: str | None
    acl: list[str] | None


class ViewColumn(TypedDict, total=False):
    name: str
    type: str
    default: str | None
    comment: str | None
    collation: str | None
    acl: list[str] | None


class Constraint(TypedDict):
    type: str  # primary key, unique, check, foreign key, exclusion, not null
    definition: str  # pg_get_constraintdef
    deferrable: bool
    deferred: bool
    validated: bool
    local: bool
    comment: str | None


class Index(TypedDict):
    definition: str  # pg_get_indexdef
    constraint: bool  # the index of a primary key, unique or exclusion constraint
    clustered: bool  # pg_index.indisclustered
    replica_identity: bool  # pg_index.indisreplident
    comment: str | None


class Trigger(TypedDict):
    definition: str  # pg_get_triggerdef
    enabled: str  # pg_trigger.tgenabled: O, D, R, A
    comment: str | None


class Policy(TypedDict):
    command: str  # pg_policy.polcmd: r, a, w, d, *
    permissive: bool
    roles: list[str]
    using: str | None
    with_check: str | None
    comment: str | None


class Table(TypedDict):
    kind: str  # "table", "partitioned table"
    unlogged: bool
    options: list[str] | None  # reloptions
    row_security: bool
    force_row_security: bool
    replica_identity: str  # pg_class.relreplident: d, n, f, i
    is_partition: bool
    partition_key: str | None
    partition_bound: str | None
    parents: list[str]
    comment: str | None
    acl: list[str] | None
    columns: list[Column]
    constraints: dict[str, Constraint]
    indexes: dict[str, Index]
    triggers: dict[str, Trigger]
    policies: dict[str, Policy]


class View(TypedDict, total=False):
    definition: str  # pg_get_viewdef
    options: list[str] | None
    populated: bool  # materialized views only
    comment: str | None
    acl: list[str] | None
    columns: list[ViewColumn]
    indexes: dict[str, Index]  # materialized views only
    triggers: dict[str, Trigger]


class Function(TypedDict):
    kind: str  # function, procedure, window function, aggregate
    definition: str | None  # pg_get_functiondef; None for aggregates
    comment: str | None
    acl: list[str] | None


class Snapshot(TypedDict):
    schemas: dict[str, Schema]
    extensions: dict[str, Extension]
    types: dict[str, Type]
    sequences: dict[str, Sequence]
    tables: dict[str, Table]
    views: dict[str, View]
    materialized_views: dict[str, View]
    functions: dict[str, Function]
    unsupported: dict[str, list[str]]  # kind -> names of what dbkit cannot reproduce yet


Row = dict[str, Any]
