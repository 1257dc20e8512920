"""Shopify's calculated query cost and its leaky bucket, as the sandbox applies them.

Requested cost is computed from the document before anything runs (Shopify's documented rules):

* a scalar or enum field costs 0; a field returning an object costs 1 plus its selection;
* a connection (a type with ``edges``, ``nodes`` and ``pageInfo``) costs 2 plus ``first`` (or
  ``last``) times the cost of one node's selection (object 1 + its selection);
* a plain list of objects (``Order.fulfillments(first:)``, ``trackingInfo(first:)``) costs what
  one element costs. Multiplying by its ``first`` would price the client's ``FulfilledOrders``
  document (``fulfillments(first: 50) { trackingInfo(first: 20) }``) at 1051 points per order,
  over the 1000 point limit for any page size, which is not what Shopify does with it; pass
  ``multiply_plain_lists=True`` to :func:`requested_cost` for that stricter rule;
* every mutation field costs 10, whatever its payload selects.

Actual cost walks the returned data the same way: a connection costs 2 plus the nodes it really
returned, a null object costs nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
    is_leaf_type,
    value_from_ast_untyped,
)

MUTATION_COST = 10
CONNECTION_BASE_COST = 2
SINGLE_QUERY_MAX_COST = 1000


@dataclass(frozen=True)
class _Walk:
    schema: GraphQLSchema
    fragments: Mapping[str, FragmentDefinitionNode]
    variables: Mapping[str, Any]
    multiply_plain_lists: bool = False


def _fields(walk: _Walk, selection_set: SelectionSetNode | None) -> Iterator[FieldNode]:
    """The fields of a selection set, fragments spread in place."""
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


def _argument(walk: _Walk, field: FieldNode, name: str) -> Any:
    for argument in field.arguments or ():
        if argument.name.value == name:
            return value_from_ast_untyped(argument.value, dict(walk.variables))
    return None


def _page_size(walk: _Walk, field: FieldNode) -> int:
    for name in ("first", "last"):
        value = _argument(walk, field, name)
        if isinstance(value, int) and value > 0:
            return value
    return 0


def _is_connection(type_: GraphQLObjectType) -> bool:
    return {"edges", "nodes", "pageInfo"} <= set(type_.fields)


def _is_list(type_: GraphQLOutputType) -> bool:
    if isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    return isinstance(type_, GraphQLList)


def _node_selections(walk: _Walk, connection_field: FieldNode) -> Iterator[tuple[str, FieldNode]]:
    """``("nodes", field)`` and ``("edges", node field)`` selections of a connection field."""
    for field in _fields(walk, connection_field.selection_set):
        if field.name.value == "nodes":
            yield "nodes", field
        elif field.name.value == "edges":
            for inner in _fields(walk, field.selection_set):
                if inner.name.value == "node":
                    yield "edges", inner


def _selection_cost(walk: _Walk, parent: GraphQLObjectType, selection: SelectionSetNode) -> int:
    total = 0
    for field in _fields(walk, selection):
        definition = parent.fields.get(field.name.value)
        if definition is None:  # __typename and other introspection fields
            continue
        named = get_named_type(definition.type)
        if is_leaf_type(named) or not isinstance(named, GraphQLObjectType):
            continue
        if _is_connection(named):
            node_type = get_named_type(named.fields["nodes"].type)
            assert isinstance(node_type, GraphQLObjectType)
            per_node = max(
                (_object_cost(walk, node_type, node) for _, node in _node_selections(walk, field)),
                default=0,
            )
            total += CONNECTION_BASE_COST + _page_size(walk, field) * per_node
        elif _is_list(definition.type) and walk.multiply_plain_lists:
            total += max(_page_size(walk, field), 1) * _object_cost(walk, named, field)
        else:
            total += _object_cost(walk, named, field)
    return total


def _object_cost(walk: _Walk, type_: GraphQLObjectType, field: FieldNode) -> int:
    if field.selection_set is None:
        return 1
    return 1 + _selection_cost(walk, type_, field.selection_set)


def _walk(
    schema: GraphQLSchema,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any] | None,
    multiply_plain_lists: bool = False,
) -> _Walk:
    return _Walk(schema, fragments, variables or {}, multiply_plain_lists)


def requested_cost(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any] | None = None,
    *,
    multiply_plain_lists: bool = False,
) -> int:
    """The cost Shopify would reserve for ``operation`` before running it (a validated document)."""
    walk = _walk(schema, fragments, variables, multiply_plain_lists)
    if operation.operation == OperationType.MUTATION:
        return MUTATION_COST * sum(1 for _ in _fields(walk, operation.selection_set))
    root = schema.query_type if operation.operation == OperationType.QUERY else None
    if root is None:
        return 0
    return _selection_cost(walk, root, operation.selection_set)


def _data_object_cost(
    walk: _Walk, type_: GraphQLObjectType, field: FieldNode, value: Mapping[str, Any]
) -> int:
    if field.selection_set is None:
        return 1
    return 1 + _data_selection_cost(walk, type_, field.selection_set, value)


def _data_selection_cost(
    walk: _Walk, parent: GraphQLObjectType, selection: SelectionSetNode, data: Mapping[str, Any]
) -> int:
    total = 0
    for field in _fields(walk, selection):
        definition = parent.fields.get(field.name.value)
        value = data.get(field.alias.value if field.alias else field.name.value)
        if definition is None or value is None:
            continue
        named = get_named_type(definition.type)
        if is_leaf_type(named) or not isinstance(named, GraphQLObjectType):
            continue
        if _is_connection(named):
            total += CONNECTION_BASE_COST + _returned_nodes_cost(walk, named, field, value)
        elif isinstance(value, list):
            total += max(
                (_data_object_cost(walk, named, field, item) for item in value if item), default=0
            )
        else:
            total += _data_object_cost(walk, named, field, value)
    return total


def _returned_nodes_cost(
    walk: _Walk, connection: GraphQLObjectType, field: FieldNode, value: Mapping[str, Any]
) -> int:
    node_type = get_named_type(connection.fields["nodes"].type)
    assert isinstance(node_type, GraphQLObjectType)
    per_index: dict[int, int] = {}
    for where, node_field in _node_selections(walk, field):
        container = _container_key(walk, field, where)
        items = value.get(container) or []
        for index, item in enumerate(items):
            node = (
                item.get(node_field.alias.value if node_field.alias else "node")
                if (where == "edges")
                else item
            )
            if node:
                cost = _data_object_cost(walk, node_type, node_field, node)
                per_index[index] = max(per_index.get(index, 0), cost)
    return sum(per_index.values())


def _container_key(walk: _Walk, connection_field: FieldNode, name: str) -> str:
    for field in _fields(walk, connection_field.selection_set):
        if field.name.value == name:
            return field.alias.value if field.alias else name
    return name


def actual_cost(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any] | None,
    data: Mapping[str, Any] | None,
) -> int:
    """The cost of what ``operation`` really returned (``data`` of the execution result)."""
    walk = _walk(schema, fragments, variables)
    if operation.operation == OperationType.MUTATION:
        fields = list(_fields(walk, operation.selection_set))
        executed = [
            f for f in fields if (data or {}).get(f.alias.value if f.alias else f.name.value)
        ]
        return MUTATION_COST * len(executed)
    if data is None or schema.query_type is None:
        return 0
    return _data_selection_cost(walk, schema.query_type, operation.selection_set, data)


class LeakyBucket:
    """Shopify's cost bucket: ``size`` points, refilled continuously at ``restore_rate`` per second.

    ``clock`` is a monotonic clock in seconds (``time.monotonic`` by default); tests pass their
    own to move time without sleeping.
    """

    def __init__(
        self,
        size: float = 1000.0,
        restore_rate: float = 50.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.size = float(size)
        self.restore_rate = float(restore_rate)
        self._clock = clock
        self._available = float(size)
        self._at = clock()

    def available(self) -> float:
        """Points available now (refilled up to ``size`` for the time elapsed)."""
        now = self._clock()
        self._available = min(self.size, self._available + (now - self._at) * self.restore_rate)
        self._at = now
        return self._available

    def try_take(self, cost: float) -> bool:
        """Take ``cost`` points if that many are available; False (nothing taken) otherwise."""
        if cost > self.available():
            return False
        self._available -= cost
        return True

    def refund(self, points: float) -> None:
        """Give back points reserved but not spent (requested minus actual cost)."""
        if points > 0:
            self._available = min(self.size, self.available() + points)

    def drain(self, points: float | None = None) -> None:
        """Remove ``points`` (all when None), as if other calls had spent them."""
        available = self.available()
        self._available = 0.0 if points is None else max(0.0, available - points)

    def throttle_status(self) -> dict[str, float]:
        """``extensions.cost.throttleStatus`` as Shopify sends it."""
        return {
            "maximumAvailable": self.size,
            "currentlyAvailable": round(self.available(), 1),
            "restoreRate": self.restore_rate,
        }
