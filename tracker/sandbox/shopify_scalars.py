"""The sandbox's custom GraphQL scalars: Shopify's ``DateTime`` and ``UnsignedInt64``.

``DateTime`` is served in UTC to the second (``2026-01-31T12:00:00Z``) and read from the
timestamps the order search accepts; ``UnsignedInt64`` is served as a string of digits and read
from a string or an int. Scalars built from SDL have no coercion of their own:
:func:`bind_scalars` gives them theirs, for graphql-core 3.2 and 3.3 alike.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from graphql import (
    GraphQLError,
    GraphQLScalarType,
    GraphQLSchema,
    IntValueNode,
    StringValueNode,
    ValueNode,
    print_ast,
)

from tracker.sandbox.order_search import parse_timestamp


def serialize_datetime(value: Any) -> str:
    """Shopify's DateTime: UTC to the second, ``2026-01-31T12:00:00Z``."""
    if not isinstance(value, datetime):
        raise GraphQLError(f"DateTime cannot represent {value!r}")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_datetime(value: Any) -> datetime:
    moment = parse_timestamp(value) if isinstance(value, str) else None
    if moment is None:
        raise GraphQLError(f"Invalid DateTime: {value!r}")
    return moment


def _parse_unsigned(value: Any) -> int:
    if isinstance(value, int | str) and str(value).isdigit():
        return int(value)
    raise GraphQLError(f"Invalid UnsignedInt64: {value!r}")


def _implement_scalar(
    scalar: Any, output: Callable[[Any], Any], parse_input: Callable[[Any], Any]
) -> None:
    """Give a scalar built from SDL its coercion, for graphql-core 3.2 and 3.3 alike."""

    def parse_node(node: ValueNode, _variables: dict[str, Any] | None = None) -> Any:
        if not isinstance(node, StringValueNode | IntValueNode):
            raise GraphQLError(f"{scalar.name} cannot represent {print_ast(node)}")
        return parse_input(node.value)

    assert isinstance(scalar, GraphQLScalarType)
    implementation = {
        "serialize": output,  # graphql-core 3.2
        "parse_value": parse_input,
        "parse_literal": parse_node,
        "coerce_output_value": output,  # graphql-core 3.3
        "coerce_input_value": parse_input,
        "coerce_input_literal": parse_node,
    }
    for attribute, function in implementation.items():
        setattr(scalar, attribute, function)


def bind_scalars(schema: GraphQLSchema) -> None:
    _implement_scalar(schema.type_map["DateTime"], serialize_datetime, _parse_datetime)
    _implement_scalar(schema.type_map["UnsignedInt64"], lambda v: str(int(v)), _parse_unsigned)
