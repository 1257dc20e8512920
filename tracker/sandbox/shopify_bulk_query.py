"""The inner query of a sandbox bulk operation: checked against Shopify's bulk rules, flattened.

Pure: no store, no I/O. :func:`plan_bulk_query` validates the text against the request's schema
and Shopify's limits for bulk queries (at least one connection, at most five, at most two levels
of nesting, no connection inside a plain list, ``id`` on the parent of a nested connection) and
returns a :class:`BulkPlan`; :func:`flatten` turns one root node of the executed query into the
JSONL objects Shopify writes: the node without its nested connections, then each nested node on
its own line with ``__parentId`` (grouped: children right after their parent).

Sandbox limits, reported as ``INVALID`` like Shopify's own refusals: the query's one root field
must be ``orders``, and nested connections must be selected directly on a connection's node.
Nested connections without ``first`` get ``first: 250`` (Shopify returns all of them).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    ArgumentNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    NameNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    StringValueNode,
    Visitor,
    get_named_type,
    parse,
    validate,
    visit,
)

MAX_CONNECTIONS = 5
MAX_NESTING = 2
NESTED_PAGE_SIZE = 250
ROOT_CONNECTIONS = frozenset({"orders"})


class BulkQueryError(ValueError):
    """The text cannot run as a bulk query; the message is the userError Shopify would give."""


@dataclass(frozen=True)
class BulkPlan:
    """A validated bulk query, ready to execute one window of root objects at a time."""

    document: DocumentNode
    operation_name: str | None
    root_key: str
    """Response key of the root connection field (``orders``)."""
    search: str | None
    """The root field's ``query:`` argument (a literal string; variables are not allowed)."""
    connections: frozenset[tuple[str, ...]]
    """Response-key paths of every connection, the root one being ``(root_key,)``."""


@dataclass
class _Walk:
    fragments: Mapping[str, FragmentDefinitionNode]
    connections: set[tuple[str, ...]] = field(default_factory=set)
    nested: set[int] = field(default_factory=set)  # id() of nested connection FieldNodes


def _fields(walk: _Walk, selection_set: SelectionSetNode | None) -> Iterator[FieldNode]:
    if selection_set is None:
        return
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            yield selection
        elif isinstance(selection, InlineFragmentNode):
            yield from _fields(walk, selection.selection_set)
        elif isinstance(selection, FragmentSpreadNode):
            fragment = walk.fragments.get(selection.name.value)
            if fragment is not None:
                yield from _fields(walk, fragment.selection_set)


def _key(node: FieldNode) -> str:
    return node.alias.value if node.alias else node.name.value


def _is_connection(type_: GraphQLObjectType) -> bool:
    return {"edges", "nodes", "pageInfo"} <= set(type_.fields)


def _is_list(type_: GraphQLOutputType) -> bool:
    if isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    return isinstance(type_, GraphQLList)


def _node_selections(walk: _Walk, connection: FieldNode) -> Iterator[FieldNode]:
    """The ``nodes`` field and the ``edges { node }`` fields selected on a connection."""
    for selected in _fields(walk, connection.selection_set):
        if selected.name.value == "nodes":
            yield selected
        elif selected.name.value == "edges":
            yield from (f for f in _fields(walk, selected.selection_set) if f.name.value == "node")


def _check_connection(
    walk: _Walk,
    connection_type: GraphQLObjectType,
    node: FieldNode,
    path: tuple[str, ...],
    level: int,
) -> None:
    if level > MAX_NESTING:
        raise BulkQueryError(
            f"Bulk queries cannot contain connections nested more than {MAX_NESTING} levels deep."
        )
    walk.connections.add(path)
    if len(walk.connections) > MAX_CONNECTIONS:
        raise BulkQueryError(
            f"Bulk queries cannot contain more than {MAX_CONNECTIONS} connections."
        )
    if level > 1:
        walk.nested.add(id(node))
    node_type = get_named_type(connection_type.fields["nodes"].type)
    assert isinstance(node_type, GraphQLObjectType)
    for selection in _node_selections(walk, node):
        before = len(walk.connections)
        _check_selection(walk, node_type, selection.selection_set, path, level, direct=True)
        has_id = any(
            f.name.value == "id" and f.alias is None for f in _fields(walk, selection.selection_set)
        )
        if len(walk.connections) > before and not has_id:
            raise BulkQueryError(
                "The parent 'node' field for a nested connection must select the 'id' field."
            )


def _check_selection(
    walk: _Walk,
    parent: GraphQLObjectType,
    selection_set: SelectionSetNode | None,
    path: tuple[str, ...],
    level: int,
    *,
    direct: bool,
    in_list: bool = False,
) -> None:
    for node in _fields(walk, selection_set):
        definition = parent.fields.get(node.name.value)
        if definition is None:  # __typename
            continue
        named = get_named_type(definition.type)
        if not isinstance(named, GraphQLObjectType):
            continue
        if _is_connection(named):
            if in_list:
                raise BulkQueryError(
                    "Queries that contain a connection field within a list field are not "
                    "currently supported."
                )
            if not direct:
                raise BulkQueryError(
                    "The sandbox runs nested connections only when they are selected directly "
                    "on a connection's node."
                )
            _check_connection(walk, named, node, (*path, _key(node)), level + 1)
        else:
            _check_selection(
                walk,
                named,
                node.selection_set,
                path,
                level,
                direct=False,
                in_list=in_list or _is_list(definition.type),
            )


def _with_page_size(document: DocumentNode, nested: set[int]) -> DocumentNode:
    """``first: 250`` on nested connections that have no ``first``/``last``."""
    if not nested:
        return document

    class AddFirst(Visitor):
        def enter_field(self, node: FieldNode, *_args: Any) -> FieldNode | None:
            names = {a.name.value for a in node.arguments or ()}
            if id(node) not in nested or names & {"first", "last"}:
                return None
            first = ArgumentNode(
                name=NameNode(value="first"), value=IntValueNode(value=str(NESTED_PAGE_SIZE))
            )
            return FieldNode(
                alias=node.alias,
                name=node.name,
                arguments=(*(node.arguments or ()), first),
                directives=node.directives,
                selection_set=node.selection_set,
            )

    result = visit(document, AddFirst())
    assert isinstance(result, DocumentNode)
    return result


def plan_bulk_query(schema: GraphQLSchema, text: str) -> BulkPlan:
    """Check ``text`` as Shopify checks a bulk query; :class:`BulkQueryError` says why not."""
    try:
        document = parse(text)
    except GraphQLError as error:
        raise BulkQueryError(f"Invalid bulk query: {error.message}") from None
    problems = validate(schema, document)
    if problems:
        raise BulkQueryError(f"Invalid bulk query: {problems[0].message}")
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) != 1:
        raise BulkQueryError("Bulk queries must contain exactly one operation.")
    operation = operations[0]
    if operation.operation != OperationType.QUERY:
        raise BulkQueryError("Bulk queries must be queries, not mutations or subscriptions.")
    if operation.variable_definitions:
        raise BulkQueryError("Bulk queries cannot use variables.")
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    walk = _Walk(fragments)
    root_type = schema.query_type
    assert root_type is not None
    _check_selection(walk, root_type, operation.selection_set, (), 0, direct=True)
    if not walk.connections:
        raise BulkQueryError("Bulk queries must contain at least one connection.")
    roots = list(_fields(walk, operation.selection_set))
    if len(roots) != 1 or roots[0].name.value not in ROOT_CONNECTIONS:
        raise BulkQueryError("The sandbox runs bulk queries with one root field: orders.")
    search = None
    for argument in roots[0].arguments or ():
        if argument.name.value == "query" and isinstance(argument.value, StringValueNode):
            search = argument.value.value
    return BulkPlan(
        document=_with_page_size(document, walk.nested),
        operation_name=operation.name.value if operation.name else None,
        root_key=_key(roots[0]),
        search=search,
        connections=frozenset(walk.connections),
    )


def connection_nodes(connection: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The nodes of an executed connection, selected as ``edges { node }`` or ``nodes``."""
    if not connection:
        return []
    if isinstance(connection.get("edges"), list):
        return [e["node"] for e in connection["edges"] if e and e.get("node") is not None]
    nodes = connection.get("nodes")
    return [n for n in nodes if n is not None] if isinstance(nodes, list) else []


def flatten(
    node: Mapping[str, Any],
    plan: BulkPlan,
    path: tuple[str, ...] | None = None,
    parent_id: str | None = None,
) -> Iterator[dict[str, Any]]:
    """JSONL objects for one node: itself without nested connections, then its children."""
    path = (plan.root_key,) if path is None else path
    line: dict[str, Any] = {}
    nested: list[tuple[str, Any]] = []
    for key, value in node.items():
        if (*path, key) in plan.connections:
            nested.append((key, value))
        else:
            line[key] = value
    if parent_id is not None:
        line["__parentId"] = parent_id
    yield line
    own_id = node.get("id")
    for key, value in nested:
        for child in connection_nodes(value):
            yield from flatten(child, plan, (*path, key), own_id if own_id else None)
